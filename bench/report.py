"""Cost of ``report build``: wall time, CPU time and peak memory of the general report in HTML
and PDF on given databases, and of the HTML on the default experiment's database (issue 14,
target 6: html ≤ 10 s and pdf ≤ 30 s on 10M trials, ≤ 1 GB peak RSS; html ≤ 2 s on the default
experiment's database).

    python bench/report.py DB [DB ...] [--formats html,pdf] [--runs 1] [--code DIR ...]
                           [--default-db PATH | --no-default] [--markdown FILE]

Each case is a child process ``python -m reports.cli build --format F --db DB --out TMP``
(the report written to a temporary folder, removed afterwards). ``--code DIR`` runs the same
case with ``DIR`` first on ``PYTHONPATH`` (e.g. a ``git archive`` of an older commit, to measure
before and after back to back; repeatable, ``.`` is this checkout). The cases run interleaved
(one run of each, then the next round), so drift in the machine's load spreads over all of them.
Per case: median wall seconds, median CPU seconds (user + sys of the child, from ``os.wait4``),
the largest peak RSS, and the load average when the rounds started. Prints a markdown table
with each target and whether it was met; ``--markdown FILE`` also writes it.

The default experiment's case (``default-db html``) uses ``--default-db`` when given, else a
database made here the shape ``runner trials --n 10`` leaves (its six configurations: local and
dask, knn and mlp, 1 and 2 dask workers; 2 rounds of 1 warm-up + 5 trials each; seeded times),
through the store's own API, without running an engine (that takes minutes); the report's
fixed cost (imports, figure, template) does not depend on the times.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: issue 14, target 6 (seconds of wall time on the 10M database)
TARGETS_S = {"html": 10.0, "pdf": 30.0}
TARGET_RSS_MB = 1024.0
#: issue 14, target 6: the html report's fixed cost on the default experiment's database
TARGET_DEFAULT_S = 2.0
#: The default experiment's configurations (``runner trials --dry-run``) and a typical median
#: train_s of each (seconds).
DEFAULT_CONFIGS = (
    ("local", "knn", 1, 0.05),
    ("local", "mlp", 1, 3.0),
    ("dask", "knn", 1, 0.7),
    ("dask", "knn", 2, 0.55),
    ("dask", "mlp", 1, 3.7),
    ("dask", "mlp", 2, 2.6),
)
_KNN = {"k": 5}
_MLP = {"activation": "relu", "hidden": [100], "impl": "sklearn", "solver": "adam"}


def make_default_db(path: Path, *, seed: int = 0) -> None:
    """A database of the default experiment's shape at ``path`` (see the module text)."""
    import random
    from datetime import datetime, timedelta

    from runner.store import TrialRecord, open_store

    rng = random.Random(seed)
    store = open_store(path)
    try:
        start = datetime(2026, 1, 1, 12, 0, 0)
        run_id = store.begin_run(
            source="measured",
            argv=["runner", "trials", "--n", "10"],
            spec={"experiment": "default", "n": 10},
            env={"generator": "bench/report.py", "python": platform.python_version()},
            started_at=start,
        )
        records = []
        t = 0
        for rnd in (1, 2):
            for c, (engine, workload, workers, base) in enumerate(DEFAULT_CONFIGS):
                for rep in range(6):  # a warm-up, then 5 trials
                    t += 1
                    values = {
                        "config_id": f"default-{c}",
                        "experiment": "default",
                        "engine": engine,
                        "workload": workload,
                        "dataset": "digits",
                        "workers": workers,
                        "threads_per_worker": 1,
                        "data_fraction": 1.0,
                        "params": dict(_KNN if workload == "knn" else _MLP),
                        "repetition": rep + 5 * (rnd - 1),
                        "round": rnd,
                        "warmup": rep == 0,
                        "seed": 0,
                        "started_at": start + timedelta(seconds=5 * t),
                        "train_s": base * rng.lognormvariate(0.0, 0.08) * (1.6 if rep == 0 else 1),
                        "infer_s": 0.1 * base * rng.lognormvariate(0.0, 0.1),
                        "wall_s": 1.2 * base + 0.5,
                        "setup_s": 0.0 if engine == "local" else 4.0,
                        "load_s": 0.05,
                    }
                    acc = {"accuracy": 0.97 + 0.01 * rng.random()}
                    records.append(TrialRecord(run_id, "ok", values, acc))
        store.append_trials(records)
        store.finish_run(run_id, finished_at=start + timedelta(seconds=5 * t + 5))
    finally:
        store.close()


@dataclass(frozen=True)
class Case:
    db: Path
    fmt: str
    code: str  # "." for this checkout, else a folder put first on PYTHONPATH
    default: bool = False  # the default experiment's database (its own target)

    @property
    def label(self) -> str:
        code = "" if self.code == "." else f" [{self.code}]"
        name = "default-experiment database" if self.default else self.db.name
        return f"{name} {self.fmt}{code}"

    @property
    def target_s(self) -> float | None:
        return TARGET_DEFAULT_S if self.default else TARGETS_S.get(self.fmt)


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float
    rss_mb: float
    ok: bool
    note: str


def run_once(case: Case) -> Timing:
    """One child process building the report; wall, user + sys CPU and peak RSS."""
    env = dict(os.environ)
    if case.code != ".":
        code = str(Path(case.code).resolve())
        env["PYTHONPATH"] = code + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        out = Path(tmp) / f"report.{case.fmt}"
        argv = [sys.executable, "-m", "reports.cli", "build", "--format", case.fmt]
        argv += ["--db", str(case.db.resolve()), "--out", str(out), "--quiet"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        ok = proc.returncode == 0 and out.exists()
        note = "" if ok else (err.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        size = out.stat().st_size if ok else 0
    return Timing(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024.0,  # KiB on Linux
        ok=ok,
        note=note or f"{size / 1e6:.2f} MB",
    )


def table(cases: list[Case], results: dict[Case, list[Timing]], loads: list[float]) -> str:
    lines = [
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average at the start of each round: {', '.join(f'{x:.1f}' for x in loads)}.",
        "",
        "| case | runs | wall s (median) | CPU s (median) | peak RSS MB | target | output |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for case in cases:
        got = results[case]
        wall = statistics.median(t.wall_s for t in got)
        cpu = statistics.median(t.cpu_s for t in got)
        rss = max(t.rss_mb for t in got)
        ok = all(t.ok for t in got)
        out = got[-1].note if ok else f"FAILED: {got[-1].note}"
        target = "—"
        if case.target_s is not None:
            met = ok and wall <= case.target_s and rss <= TARGET_RSS_MB
            target = f"≤ {case.target_s:g} s, ≤ {TARGET_RSS_MB:.0f} MB: {'met' if met else 'short'}"
        lines.append(
            f"| {case.label} | {len(got)} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {target} | {out} |"
        )
    lines += [
        "",
        f"Targets (issue 14, 6): wall ≤ {TARGETS_S['html']:g} s html and ≤ {TARGETS_S['pdf']:g} s "
        f"pdf on the 10M database, ≤ {TARGET_DEFAULT_S:g} s html on the default experiment's, "
        f"each ≤ {TARGET_RSS_MB:.0f} MB peak RSS; they are meant for an idle machine (see the "
        "load above).",
    ]
    codes = list(dict.fromkeys(c.code for c in cases))
    if len(codes) > 1:
        lines += ["", "Ratios (CPU s of the first code over each other, same database and format):"]
        first = codes[0]
        for case in cases:
            if case.code == first:
                continue
            base = next(
                c
                for c in cases
                if c.code == first and (c.db, c.fmt, c.default) == (case.db, case.fmt, case.default)
            )
            a = statistics.median(t.cpu_s for t in results[base])
            b = statistics.median(t.cpu_s for t in results[case])
            lines.append(f"- {case.label}: {base.label} / {case.label} = {a / b:.2f}×")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db", nargs="+", type=Path, help="results database(s)")
    ap.add_argument("--formats", default="html,pdf", help="comma-separated: html, pdf, tex")
    ap.add_argument("--runs", type=int, default=1, help="rounds (default 1)")
    ap.add_argument(
        "--code",
        action="append",
        default=None,
        help="folder first on PYTHONPATH (repeatable; '.' = this checkout; default '.')",
    )
    ap.add_argument(
        "--default-db",
        type=Path,
        help="the default experiment's database for the html fixed-cost case "
        "(default: one made here, see the module text)",
    )
    ap.add_argument("--no-default", action="store_true", help="leave out the default-database case")
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = ap.parse_args(argv)
    for db in [*args.db, *([args.default_db] if args.default_db else [])]:
        if not db.is_file():
            ap.error(f"no database at {db}")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    codes = args.code or ["."]
    with tempfile.TemporaryDirectory(prefix="bench-report-db-") as tmp:
        cases = [Case(db, f, c) for db in args.db for f in formats for c in codes]
        if not args.no_default:
            default_db = args.default_db
            if default_db is None:
                default_db = Path(tmp) / "default.duckdb"
                make_default_db(default_db)
            cases += [Case(default_db, "html", c, default=True) for c in codes]
        results: dict[Case, list[Timing]] = {c: [] for c in cases}
        loads = []
        for _ in range(args.runs):
            loads.append(os.getloadavg()[0])
            for case in cases:
                t = run_once(case)
                results[case].append(t)
                print(
                    f"{case.label}: {t.wall_s:.2f} s wall, {t.cpu_s:.2f} s CPU, {t.rss_mb:.0f} MB"
                    + ("" if t.ok else f" FAILED: {t.note}"),
                    file=sys.stderr,
                )
    text = table(cases, results, loads)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
