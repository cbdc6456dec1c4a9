"""Cost of ``report build``: wall time, CPU time and peak memory of the general report in HTML
and PDF on given databases (issue 14, target 6: html ≤ 10 s and pdf ≤ 30 s on 10M trials,
≤ 1 GB peak RSS; html ≤ 2 s on the default experiment's database).

    python bench/report.py DB [DB ...] [--formats html,pdf] [--runs 1] [--code DIR ...]
                           [--markdown FILE]

Each case is a child process ``python -m reports.cli build --format F --db DB --out TMP``
(the report written to a temporary folder, removed afterwards). ``--code DIR`` runs the same
case with ``DIR`` first on ``PYTHONPATH`` (e.g. a ``git archive`` of an older commit, to measure
before and after back to back; repeatable, ``.`` is this checkout). The cases run interleaved
(one run of each, then the next round), so drift in the machine's load spreads over all of them.
Per case: median wall seconds, median CPU seconds (user + sys of the child, from ``os.wait4``),
the largest peak RSS, and the load average when the rounds started. Prints a markdown table;
``--markdown FILE`` also writes it.
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


@dataclass(frozen=True)
class Case:
    db: Path
    fmt: str
    code: str  # "." for this checkout, else a folder put first on PYTHONPATH

    @property
    def label(self) -> str:
        code = "" if self.code == "." else f" [{self.code}]"
        return f"{self.db.name} {self.fmt}{code}"


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
        "| case | runs | wall s (median) | CPU s (median) | peak RSS MB | output |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for case in cases:
        got = results[case]
        wall = statistics.median(t.wall_s for t in got)
        cpu = statistics.median(t.cpu_s for t in got)
        rss = max(t.rss_mb for t in got)
        out = got[-1].note if all(t.ok for t in got) else f"FAILED: {got[-1].note}"
        lines.append(f"| {case.label} | {len(got)} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {out} |")
    codes = list(dict.fromkeys(c.code for c in cases))
    if len(codes) > 1:
        lines += ["", "Ratios (CPU s of the first code over each other, same database and format):"]
        first = codes[0]
        for case in cases:
            if case.code == first:
                continue
            base = next(
                c for c in cases if c.code == first and (c.db, c.fmt) == (case.db, case.fmt)
            )
            a = statistics.median(t.cpu_s for t in results[base])
            b = statistics.median(t.cpu_s for t in results[case])
            lines.append(f"- {case.db.name} {case.fmt}: {base.label} / {case.label} = {a / b:.1f}×")
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
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = ap.parse_args(argv)
    for db in args.db:
        if not db.is_file():
            ap.error(f"no database at {db}")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    codes = args.code or ["."]
    cases = [Case(db, f, c) for db in args.db for f in formats for c in codes]
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
