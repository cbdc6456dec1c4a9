"""The one command behind bench/RESULTS.md: every figure of issue 14 measured in one run.

    python bench/results.py [--out bench/RESULTS.md] [--trials 10000000] [--big 0] [--skip NAME]...

Runs, in turn and as child processes, each benchmark of this folder with ``--markdown`` into a
temporary file, and writes one markdown file: the machine (CPU, cores, memory), the code (commit),
the load average before and after each section, and each section's own tables (wall and CPU
seconds, peak RSS, ratios measured in the same run). Sections:

- ``startup``: ``--help`` of the three console scripts (bench/startup.py)
- ``storage``: bytes per trial on disk (bench/storage.py)
- ``runner``: per-trial bookkeeping and the sampler's cost (bench/runner_overhead.py)
- ``import``: ``runner import csv`` against DuckDB's own ``read_csv`` (bench/importcsv.py)
- ``analysis``: every ``analyze`` subcommand at ``--trials`` against pandas+scipy and the floor
  (bench/analysis.py; the synthetic database is made once and kept in the temp folder)
- ``big``: every analysis once at ``--big`` trials (e.g. 100000000; 0 skips it), time and RSS
- ``profile``: each default analysis under py-spy, where its CPU goes (imports, DuckDB by the
  analysis function that queried, numpy/scipy, the rest) against its floor (bench/profiles.py;
  the top frames of each in bench/PROFILES.md)
- ``report``: ``report build`` html and pdf on the ``--trials`` database (bench/report.py)

A section whose script is missing or fails is reported as such, with its stderr's last lines;
the others still run. Keep the machine otherwise idle while it runs (about half an hour).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    argv: Callable[[argparse.Namespace, Path], list[str] | None]  # None: skipped


def _py(script: str, *args: str) -> list[str]:
    return [sys.executable, str(BENCH / script), *args]


def _db(args: argparse.Namespace, trials: int) -> Path:
    return Path(tempfile.gettempdir()) / f"trialkit-bench-{trials}.duckdb"


def _make_db(args: argparse.Namespace, trials: int) -> Path:
    """The synthetic database of ``trials`` trials, made once (kept across runs)."""
    db = _db(args, trials)
    if not db.exists():
        subprocess.run(
            _py("analysis.py", "make-db", str(db), "--trials", str(trials), "--seed", "0"),
            check=True,
        )
    return db


SECTIONS = [
    Section(
        "startup",
        "Start-up: `--help` of the console scripts",
        lambda a, md: _py("startup.py", "--markdown", str(md)),
    ),
    Section(
        "storage",
        "Storage: bytes per trial",
        lambda a, md: _py("storage.py", "--db", str(_make_db(a, a.trials)), "--markdown", str(md)),
    ),
    Section(
        "runner",
        "Runner: bookkeeping per trial and the resource sampler",
        lambda a, md: _py("runner_overhead.py", "--markdown", str(md)),
    ),
    Section(
        "import",
        "Import: `runner import csv` against DuckDB's bulk `read_csv`",
        lambda a, md: _py(
            "importcsv.py",
            "--rows",
            "100000",
            "1000000",
            *(["--10m"] if a.trials >= 10_000_000 else []),
            "--markdown",
            str(md),
        ),
    ),
    Section(
        "analysis",
        "Analysis at the large database",
        lambda a, md: _py(
            "analysis.py",
            "run",
            str(_make_db(a, a.trials)),
            "--repeat",
            str(a.repeat),
            "--analyze",
            str(Path(sys.executable).parent / "analyze"),
            "--markdown",
            str(md),
        ),
    ),
    Section(
        "big",
        "Analysis at the very large database (each once; time and memory)",
        lambda a, md: (
            None
            if not a.big
            else _py(
                "analysis.py",
                "run",
                str(_make_db(a, a.big)),
                "--repeat",
                "1",
                "--no-naive",
                "--analyze",
                str(Path(sys.executable).parent / "analyze"),
                "--markdown",
                str(md),
            )
        ),
    ),
    Section(
        "profile",
        "Profiles: where each analysis spends its CPU (py-spy)",
        lambda a, md: _py(
            "profiles.py",
            "--db",
            str(_make_db(a, a.trials)),
            "--markdown",
            str(BENCH / "PROFILES.md"),
            "--summary",
            str(md),
        ),
    ),
    Section(
        "report",
        "Reports: `report build` on the large database",
        lambda a, md: _py("report.py", str(_make_db(a, a.trials)), "--markdown", str(md)),
    ),
]


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _machine() -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    import duckdb

    return [
        f"- machine: {cpu}, {os.cpu_count()} logical CPUs, {mem:.1f} GiB memory; "
        f"{platform.system()} {platform.release()}",
        f"- python {platform.python_version()}, duckdb {duckdb.__version__}",
        f"- code: {commit}{' (with uncommitted changes)' if dirty else ''}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]


def run(args: argparse.Namespace) -> str:
    out = ["# trialkit benchmarks (issue 14)", ""]
    out += [
        "Made by `python bench/results.py`; every figure below comes from this one run. "
        "Times are wall seconds of whole processes unless a table says otherwise; CPU s is the "
        "child's user + system time (less sensitive to other load on a shared machine); "
        "peak RSS is the child's `ru_maxrss`.",
        "",
        "Which of issue 14's targets these figures meet, and the profiles that explain the "
        "ones they do not: `bench/TARGETS.md` (written by hand from them).",
        "",
        *_machine(),
        "",
    ]
    for section in SECTIONS:
        if section.name in args.skip:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            md = Path(tmp) / "section.md"
            before = _load()
            started = time.perf_counter()
            try:
                argv = section.argv(args, md)
            except subprocess.CalledProcessError as exc:
                argv, error = None, f"preparing the section failed: {exc}"
            else:
                error = None
            if argv is None and error is None:
                continue
            out += [f"## {section.title}", ""]
            if argv is not None:
                script = Path(argv[1])
                if not script.exists():
                    error = f"{script.relative_to(ROOT)} does not exist yet"
                else:
                    print(f"[{section.name}] {' '.join(argv[1:])}", file=sys.stderr, flush=True)
                    proc = subprocess.run(argv, capture_output=True, text=True)
                    if proc.returncode != 0 or not md.exists():
                        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
                        error = f"exit {proc.returncode}:\n\n```\n{tail}\n```"
            took = time.perf_counter() - started
            if error:
                out += [f"Not measured: {error}", ""]
            else:
                text = md.read_text().strip().splitlines()
                # a section's own top heading becomes this file's section heading
                if text and text[0].startswith("# "):
                    text = text[1:]
                out += [*text, ""]
            out += [f"_Section took {took:.0f} s; load average before {before}, after {_load()}._"]
            out += [""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--trials", type=int, default=10_000_000)
    parser.add_argument("--big", type=int, default=0, help="e.g. 100000000; 0 skips it")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip", action="append", default=[], choices=[s.name for s in SECTIONS])
    args = parser.parse_args(argv)
    text = run(args)
    args.out.write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
