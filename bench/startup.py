"""Start-up cost of the console scripts: how long ``runner``, ``analyze`` and ``report`` take to
print their ``--help`` (issue 14, target 5: each ≤ 0.3 s wall on an idle machine).

    python bench/startup.py [--runs 15] [--only TEXT] [--markdown FILE]

Each case is a child process of the real console script (next to this interpreter, as installed
by ``pip install -e .``): ``runner --help``, ``analyze --help``, ``report --help`` and ``--help``
of every subcommand each app lists, beside ``python -c pass`` as the floor. The cases run
interleaved (one run of each, then the next round), so drift in the machine's load spreads over
all of them. Per case: the median wall time, the median CPU time (user + sys of the child, from
``os.wait4``) and the wall time above the floor. Prints a markdown table; ``--markdown FILE``
also writes it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: the target of issue 14: ``--help`` within this many seconds of wall time
TARGET_S = 0.3
SCRIPTS = ("runner", "analyze", "report")


@dataclass(frozen=True)
class Case:
    label: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float


def _script(name: str) -> str:
    """The console script ``name`` installed beside this interpreter."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise SystemExit(f"error: {path} not found; install trialkit with `pip install -e .`")
    return str(path)


def _subcommands(name: str) -> list[str]:
    """The subcommands ``name --help`` lists, read from its Typer app in a child process (this
    script's folder holds a ``bench/analysis.py`` that would shadow the package here)."""
    module = {"runner": "runner.cli", "analyze": "analysis.cli", "report": "reports.cli"}[name]
    code = (
        f"import typer; from {module} import app; "
        "print(*sorted(getattr(typer.main.get_command(app), 'commands', {})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    return out.stdout.split()


def cases(only: str | None = None) -> list[Case]:
    """``python -c pass``, then each script's ``--help`` and each subcommand's."""
    found = [Case("python -c pass", (sys.executable, "-c", "pass"))]
    for name in SCRIPTS:
        script = _script(name)
        found.append(Case(f"{name} --help", (script, "--help")))
        for sub in _subcommands(name):
            found.append(Case(f"{name} {sub} --help", (script, sub, "--help")))
    if only:
        found = [found[0], *(c for c in found[1:] if only in c.label)]
    return found


def run_once(case: Case) -> Timing:
    """One child process: wall time and user + sys CPU seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(case.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(case.argv)} exited {proc.returncode}: {err.strip()}")
    return Timing(wall, usage.ru_utime + usage.ru_stime)


def measure(found: list[Case], runs: int) -> dict[str, list[Timing]]:
    """``runs`` rounds, each running every case once (one warm-up round first, not kept)."""
    for case in found:
        run_once(case)
    timings: dict[str, list[Timing]] = {c.label: [] for c in found}
    for _ in range(runs):
        for case in found:
            timings[case.label].append(run_once(case))
    return timings


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def _busy() -> bool:
    """Whether the 1-minute load average exceeds the number of CPUs."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:  # pragma: no cover
        return False


def table(timings: dict[str, list[Timing]], runs: int, load_before: str, busy: bool) -> str:
    """The markdown report: machine line, then one row per case."""
    floor = statistics.median(t.wall_s for t in timings["python -c pass"])
    lines = [
        f"Start-up of the console scripts: median of {runs} runs per case, interleaved "
        f"(`python bench/startup.py`). Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; load average {load_before} before, {_load()} after.",
        "",
        *(
            [
                "The machine was busy (load above its CPU count): wall times wait for a CPU; "
                "the CPU column is the better guide to what an idle machine takes.",
                "",
            ]
            if busy
            else []
        ),
        "| case | wall s (median) | CPU s user+sys (median) | wall − `python -c pass` s | "
        f"≤ {TARGET_S} s wall |",
        "|---|---:|---:|---:|:---:|",
    ]
    for label, rows in timings.items():
        wall = statistics.median(t.wall_s for t in rows)
        cpu = statistics.median(t.cpu_s for t in rows)
        above = "—" if label == "python -c pass" else f"{wall - floor:.3f}"
        ok = "—" if label == "python -c pass" else ("yes" if wall <= TARGET_S else "**no**")
        lines.append(f"| `{label}` | {wall:.3f} | {cpu:.3f} | {above} | {ok} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per case (default 15)")
    parser.add_argument("--only", help="only the cases whose label contains this text")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    load_before, busy = _load(), _busy()
    found = cases(args.only)
    timings = measure(found, args.runs)
    text = table(timings, args.runs, load_before, busy or _busy())
    sys.stdout.write(text)
    if args.markdown is not None:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
