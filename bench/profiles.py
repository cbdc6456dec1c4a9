"""Where each default `analyze` case of bench/analysis.py spends its samples: py-spy profiles.

    python bench/profiles.py [--db /tmp/trialkit-bench-10000000.duckdb] [--case NAME]...
                            [--rate 200] [--markdown bench/PROFILES.md] [--keep DIR]
                            [--summary FILE]

For each default case (the command lines of ``bench/analysis.py``'s ``build_cases``, run on
``--db``, opened read-only by ``analyze``), runs the ``analyze`` console script under
``py-spy record --format raw --native --threads -r RATE`` with ``TRIALKIT_DUCKDB_THREADS=1``
(DuckDB then runs each query on the calling thread; py-spy samples Python threads only, not
DuckDB's workers, so this way its samples cover all the process's CPU) and summarises them:

- imports: any frame of Python's import machinery (``<frozen importlib...>``), by the top-level
  package of the innermost ``<module>`` (the module whose code runs);
- DuckDB: any frame of DuckDB (its extension module or its Python package), by the analysis
  function that issued the query (the innermost ``analysis/`` frame above DuckDB's);
- numpy/scipy: frames of numpy, scipy or their BLAS (outside imports);
- gc: Python's cycle collector (outside imports);
- the rest, by its innermost ``analysis/`` frame;

then the top frames by self samples (the leaf frame) and by cumulative samples (any frame of the
stack, each counted once per sample). Each case also runs once unprofiled (its CPU seconds,
which the shares divide) and bench/floor.py's GROUP BY for it (the floor), both with DuckDB on
one thread, so the DuckDB part of a case compares with its floor directly.
``bench/results.py`` runs this as its ``profile`` section (``--skip profile`` leaves it out):
bench/PROFILES.md in full, the summary table (``--summary``) in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DB = Path(tempfile.gettempdir()) / "trialkit-bench-10000000.duckdb"

#: frame text: ``function (file:line)`` for Python, ``symbol (library)`` for native frames
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _analysis_module() -> object:
    spec = importlib.util.spec_from_file_location("bench_analysis", BENCH / "analysis.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_analysis"] = mod
    spec.loader.exec_module(mod)
    return mod


def _is_import(frame: str) -> bool:
    return "<frozen importlib" in frame


def _is_duckdb(frame: str) -> bool:
    return "_duckdb.cpython" in frame or "duckdb::" in frame or "(duckdb/" in frame


def _is_numeric(frame: str) -> bool:
    return any(
        s in frame
        for s in ("(numpy/", "(scipy/", "_multiarray_umath", "openblas", "(_ufuncs", "scipy_")
    )


#: helpers every query passes through: the caller above them is named instead
PASS_THROUGH = ("data.execute", "data.connect", "data._connect")

#: the frames every sample of a case shares (the CLI's layers), left out of the cumulative top
SHARED = ("(typer/", "(click/", "(runner/climain", "(analyze:", "(analysis/cli.py", "cli_common.py")


def _analysis_frame(frames: Sequence[str], upto: int | None = None) -> str:
    """The innermost ``analysis/`` frame of ``frames[:upto]`` (past the pass-through helpers)
    as ``module.function``."""
    for frame in reversed(frames[:upto]):
        m = FRAME.match(frame)
        if m and m.group("file").startswith("analysis/"):
            module = m.group("file").removeprefix("analysis/").removesuffix(".py")
            name = f"{module}.{m.group('func')}"
            if name not in PASS_THROUGH:
                return name
    return "(outside analysis/)"


def _imported(frames: Sequence[str], first: int) -> str:
    """The top-level package of the innermost ``<module>`` (the module whose code runs: an
    analysis module importing scipy at its top counts as scipy)."""
    for frame in reversed(frames[first:]):
        m = FRAME.match(frame)
        if m and m.group("func") == "<module>" and not _is_import(frame):
            path = m.group("file")
            top = path.split("/", 1)[0].removesuffix(".py")
            return top or path
    return "(import machinery)"


def _short(frame: str, width: int = 90) -> str:
    m = FRAME.match(frame)
    if m and m.group("line"):
        frame = f"{m.group('func')} ({m.group('file')}:{m.group('line')})"
    elif m:
        frame = f"{m.group('func')} ({m.group('file').split('.cpython')[0]})"
    frame = re.sub(r"0x[0-9a-f]{6,}", "0x…", frame)
    return frame if len(frame) <= width else frame[: width - 1] + "…"


@dataclass
class Profile:
    """The summary of one raw py-spy file."""

    samples: int = 0
    threads: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    imports: Counter[str] = field(default_factory=Counter)
    duckdb: Counter[str] = field(default_factory=Counter)
    rest: Counter[str] = field(default_factory=Counter)
    self_: Counter[str] = field(default_factory=Counter)
    cumulative: Counter[str] = field(default_factory=Counter)


def summarise(raw: str) -> Profile:
    """Classify each sample of py-spy's raw (collapsed-stack) output; see the module docstring."""
    p = Profile()
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread (", "process ")):
            p.threads[frames[0].split(")")[0]] += n
            frames = [f for f in frames[1:] if not f.startswith(("thread (", "process "))]
        frames = [f for f in frames if f]
        if not frames:
            continue
        p.samples += n
        p.self_[_short(frames[-1])] += n
        for f in {_short(f) for f in frames}:
            p.cumulative[f] += n
        first_import = next((i for i, f in enumerate(frames) if _is_import(f)), None)
        first_duck = next((i for i, f in enumerate(frames) if _is_duckdb(f)), None)
        if first_import is not None:
            p.kinds["imports"] += n
            p.imports[_imported(frames, first_import)] += n
        elif first_duck is not None:
            p.kinds["DuckDB"] += n
            p.duckdb[_analysis_frame(frames, first_duck)] += n
        elif any(_is_numeric(f) for f in frames):
            p.kinds["numpy/scipy"] += n
        elif "gc_collect" in frames[-1]:
            p.kinds["gc"] += n
        else:
            p.kinds["rest"] += n
            p.rest[_analysis_frame(frames)] += n
    return p


@dataclass
class Run:
    name: str
    argv: tuple[str, ...]
    wall: float
    rc: int
    profile: Profile
    error: str = ""
    cpu_s: float = math.nan  # the same command unprofiled: the child's user + system seconds
    floor_cpu_s: float = math.nan  # bench/floor.py's GROUP BY for this case

    def duckdb_seconds(self, functions: Callable[[str], bool]) -> float:
        """CPU seconds inside DuckDB calls issued by the analysis functions ``functions`` picks."""
        t = self.profile.samples
        n = sum(c for f, c in self.profile.duckdb.items() if functions(f))
        return n / t * self.cpu_s if t else math.nan

    def seconds(self, kind: str) -> float:
        """CPU seconds of one kind of sample: its share of the samples times :attr:`cpu_s`."""
        t = self.profile.samples
        return self.profile.kinds[kind] / t * self.cpu_s if t else math.nan


#: DuckDB on the calling thread only, so py-spy (which samples Python threads) sees all of its
#: work: the shares are of every CPU second of the process
ENV = {"TRIALKIT_DUCKDB_THREADS": "1"}


#: DuckDB calls that are not the analysis's statistics: the plan of what to hold fixed
#: (cells.load_cells, strata), the notes on unfinished runs (provenance) and catalogue lookups
PLAN = ("cells.", "strata.")
OVERHEAD = ("provenance.", "data.view_columns", "data._joined_columns", "runs.", "query.configure")


def is_plan(function: str) -> bool:
    return function.startswith(PLAN)


def is_statistics(function: str) -> bool:
    """A DuckDB call of the analysis's own statistics (moments, quantiles, ranks' values,
    residuals, checks): what the floor's one GROUP BY stands for."""
    return not function.startswith(PLAN + OVERHEAD)


def child_cpu(cmd: Sequence[str]) -> float:
    """User + system seconds of ``cmd`` (run to its end, output discarded)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(list(cmd), capture_output=True, env=os.environ | ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def profile_case(
    analyze: str,
    db: Path,
    name: str,
    argv: Sequence[str],
    *,
    rate: int,
    keep: Path | None,
    floor_key: str | None = None,
) -> Run:
    """``analyze ARGV --db DB --format json`` under py-spy, its summary, the CPU seconds of the
    same command unprofiled and of bench/floor.py's GROUP BY for ``floor_key``."""
    spy = str(Path(sys.executable).parent / "py-spy")
    args = [analyze, *argv, "--db", str(db), "--format", "json"]
    with tempfile.TemporaryDirectory() as tmp:
        out = (keep or Path(tmp)) / (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".txt")
        cmd = [spy, "record", "--format", "raw", "--native", "--threads", "-r", str(rate)]
        cmd += ["-o", str(out), "--", *args]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | ENV)
        wall = time.perf_counter() - started
        raw = out.read_text() if out.exists() else ""
    err = "" if proc.returncode == 0 else "\n".join(proc.stderr.strip().splitlines()[-3:])
    run = Run(name, tuple(argv), wall, proc.returncode, summarise(raw), err)
    run.cpu_s = child_cpu(args)
    if floor_key:
        got = subprocess.run(
            [sys.executable, str(BENCH / "floor.py"), str(db), floor_key, "--repeat", "1"],
            capture_output=True,
            text=True,
            env=os.environ | ENV,
        )
        if got.returncode == 0:
            run.floor_cpu_s = float(json.loads(got.stdout)["cpu_s"])
    return run


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.0f}%" if total else "-"


def _top(counter: Counter[str], total: int, k: int) -> str:
    return ", ".join(f"{key} {_pct(n, total)}" for key, n in counter.most_common(k)) or "-"


def markdown(runs: Sequence[Run], *, db: Path, rate: int, top: int) -> str:
    import duckdb

    out = [
        "# Profiles of the default analyses (py-spy)",
        "",
        f"Made by `python bench/profiles.py` on `{db.name}`: each default case of "
        "bench/analysis.py run once under "
        f"`py-spy record --format raw --native --threads -r {rate}` (duckdb "
        f"{duckdb.__version__}, python {sys.version.split()[0]}; load average at the end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}), with `TRIALKIT_DUCKDB_THREADS=1`: "
        "DuckDB runs every query on the calling thread, which py-spy samples (it does not "
        "sample DuckDB's own worker threads), so the samples cover every CPU second of the "
        f"process. A sample is one running thread seen at one tick ({rate} per second). Shares "
        "are of all "
        "samples of the case; imports = Python's import machinery (by top-level package), "
        "DuckDB = inside a DuckDB call (by the analysis function that issued it), gc = Python's "
        "cycle collector.",
        "",
        "| case | samples | CPU s | imports | DuckDB | numpy/scipy | gc | rest | DuckDB CPU s "
        "| floor CPU s | DuckDB / floor | of it: plan (held fixed) CPU s | statistics CPU s "
        "| statistics / floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        p, t = r.profile, r.profile.samples
        duck = r.seconds("DuckDB")
        stats = r.duckdb_seconds(is_statistics)
        out.append(
            f"| `{' '.join(r.argv)}` | {t} | {r.cpu_s:.2f} | "
            + " | ".join(
                _pct(p.kinds[k], t) for k in ("imports", "DuckDB", "numpy/scipy", "gc", "rest")
            )
            + f" | {duck:.2f} | {r.floor_cpu_s:.2f} | {duck / r.floor_cpu_s:.1f}x"
            + f" | {r.duckdb_seconds(is_plan):.2f} | {stats:.2f} | {stats / r.floor_cpu_s:.1f}x |"
        )
    out += [
        "",
        "CPU s: the same command unprofiled (user + system of the child, DuckDB on one thread "
        "as in the profile); a kind's CPU s is its share of the samples times that. The floor: "
        "bench/floor.py's one GROUP BY for the case, in-process (no start-up, no imports), "
        "DuckDB on one thread. Of the DuckDB part: the plan is the scan that finds the "
        "configurations to hold fixed (cells.load_cells, strata), which the floor leaves out; "
        "statistics is every DuckDB call of the analysis itself (moments, quantiles, the rank "
        "test's values, residuals, checks), leaving out the plan, the notes on unfinished runs "
        "(provenance) and catalogue lookups: the issue's 'sufficient-statistics part'.",
    ]
    for r in runs:
        p, t = r.profile, r.profile.samples
        out += ["", f"## `analyze {' '.join(r.argv)}`", ""]
        if r.rc:
            out += [f"exit {r.rc}: {r.error}", ""]
        out += [
            f"- {t} samples in {len(p.threads) or 1} thread(s); "
            + ", ".join(f"{k} {_pct(n, t)}" for k, n in p.kinds.most_common()),
            f"- imports by package: {_top(p.imports, t, 6)}",
            f"- DuckDB by the analysis function that queried: {_top(p.duckdb, t, 6)}",
            f"- the rest by analysis function: {_top(p.rest, t, 6)}",
            "",
            "| self samples | frame | | cumulative samples | frame |",
            "|---:|---|---|---:|---|",
        ]
        selfs = p.self_.most_common(top)
        # the cumulative top without the CLI's layers (every sample of the analysis has them)
        cums = [
            (f, n)
            for f, n in p.cumulative.most_common()
            if not any(s in f for s in SHARED) and not _is_import(f) and "0x…" not in f
        ]
        cums = cums[:top]
        for i in range(max(len(selfs), len(cums))):
            s = selfs[i] if i < len(selfs) else ("", 0)
            c = cums[i] if i < len(cums) else ("", 0)
            out.append(
                f"| {_pct(s[1], t) if s[0] else ''} | {s[0].replace('|', '/')} | | "
                f"{_pct(c[1], t) if c[0] else ''} | {c[0].replace('|', '/')} |"
            )
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DB)
    parser.add_argument("--case", action="append", default=[], help="case name prefix")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--markdown", type=Path, default=BENCH / "PROFILES.md")
    parser.add_argument("--keep", type=Path, help="keep the raw py-spy files in this folder")
    parser.add_argument(
        "--summary", type=Path, help="also write the summary table alone (bench/results.py)"
    )
    parser.add_argument("--analyze", help="The analyze console script (default: beside python).")
    args = parser.parse_args(argv)
    analyze = args.analyze or str(Path(sys.executable).parent / "analyze")
    if not args.db.exists():
        parser.error(f"--db {args.db} does not exist: make it with bench/analysis.py make-db")
    cases, _ = _analysis_module().build_cases(analyze)  # type: ignore[attr-defined]
    if args.case:
        cases = [c for c in cases if any(c.name.startswith(p) for p in args.case)]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    runs = []
    for case in cases:
        print(f"[profile] {case.name}", file=sys.stderr, flush=True)
        runs.append(
            profile_case(
                analyze,
                args.db,
                case.name,
                case.argv,
                rate=args.rate,
                keep=args.keep,
                floor_key=case.floor_key,
            )
        )
    text = markdown(runs, db=args.db, rate=args.rate, top=args.top)
    args.markdown.write_text(text)
    print(f"wrote {args.markdown}", file=sys.stderr)
    if args.summary:
        # the first part (up to the first case's own section) and where the rest is
        head = text.split("\n## ", 1)[0].rstrip()
        where = args.markdown.resolve()
        shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
        args.summary.write_text(f"{head}\n\nEach case's top frames: `{shown}`.\n")
    return 0 if all(r.rc == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
