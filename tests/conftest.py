"""Shared test helpers: run the installed console scripts for real; and what the engine suites
share within one pytest session so CI starts each engine for a check once, and runs the long
experiments two at a time (see RUNS and background)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent

#: Databases `runner trials` filled in this pytest session (run_spec and the engine suites'
#: fixtures add theirs). tests/runner/test_registry.py's every-cell test takes the engine x
#: workload cells whose ok trials there pass its checks instead of starting those engines again;
#: run alone, it runs every cell itself.
RUNS: list[Path] = []


def remember_run(db: Path) -> Path:
    """Add ``db`` (written by a finished `runner trials`) to RUNS; returns it."""
    RUNS.append(db)
    return db


def run_cli(
    tool: str,
    *args: str | Path,
    cwd: Path | None = None,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``tool`` (runner / analyze / report) from this interpreter's environment."""
    return subprocess.run(
        [str(BIN / tool), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


def digest(path: Path) -> str | None:
    """sha256 of a file, or None when it does not exist."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def assert_user_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit code 2, exactly one line on stderr, no traceback. Returns that line."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a test cluster, or an unreachable
    address)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_spec(tmp: Path, spec: str, ok_trials: int, timeout: float = 1200) -> Path:
    """Write ``spec`` to ``tmp``, run `runner trials` on it into ``tmp/results.duckdb`` and check
    that every one of its ``ok_trials`` trials came out ok. Returns the database path."""
    path = tmp / "spec.toml"
    path.write_text(spec, encoding="utf-8")
    db = tmp / "results.duckdb"
    proc = run_cli("runner", "trials", "-e", path, "--db", db, "--quiet", timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{ok_trials} ok trials, 0 failed" in proc.stdout
    return remember_run(db)


#: README tour's two lines that make papers.duckdb, in README's order (tests/test_tour.py checks
#: they are still there). test_tour and test_papers' paper 000 share the database they make.
PAPERS_DB_LINES = (
    ("runner", "trials", "--experiment", "000", "--quick", "--db", "papers.duckdb"),
    ("runner", "import", "published", "--paper", "all", "--db", "papers.duckdb"),
)
#: Background jobs of a group run at once: a quick experiment or an engine suite's run keeps
#: about one of CI's two cores busy (engine start-ups, single-threaded trials), so two take about
#: the time of one. One under pytest-xdist, whose workers already share the cores.
AT_ONCE = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


def paper_pdf(db: Path, key: str) -> Path:
    """Where _paper_db leaves paper ``key``'s section of the report, built from ``db``."""
    return db.with_name(f"paper{key}.pdf")


def _paper_db(key: str, folder: Path) -> Path:
    """Paper ``key``'s quick experiment, then published tables, in ``folder``: for 000 the
    tour's PAPERS_DB_LINES as they are (papers.duckdb, every paper's tables); otherwise
    paper<key>.duckdb with that paper's tables. Then the paper's section of the report as a PDF
    from it (paper_pdf; in the job, so tests/test_papers.py does not build it in its own time)."""
    if key == "000":
        db, lines = folder / "papers.duckdb", PAPERS_DB_LINES
    else:
        db = folder / f"paper{key}.duckdb"
        lines = (
            ("runner", "trials", "--experiment", key, "--quick", "--quiet", "--db", db.name),
            ("runner", "import", "published", "--paper", key, "--db", db.name),
        )
    pdf = ("report", "build", "--paper", key, "--format", "pdf", "--db", db.name, "--out",
           paper_pdf(db, key).name)  # fmt: skip
    for tool, *args in (*lines, pdf):
        proc = run_cli(tool, *args, cwd=folder, timeout=1200)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-4000:])
    return db


@dataclass(frozen=True)
class Job:
    """Work a fixture's tests share, run by Background beside other such work."""

    #: the work, given a folder of its own; what it returns is what ``Background.result`` gives
    run: Callable[[Path], Any]
    #: jobs of one group start together, when a test first asks for one of them
    group: str
    #: about how long it takes on CI's machine: the longest start first
    minutes: float
    #: whether a selected test needs it (jobs no selected test needs do not run)
    needed_by: Callable[[pytest.Item], bool]


def uses(fixture: str) -> Callable[[pytest.Item], bool]:
    """Job.needed_by for the tests that use ``fixture``."""
    return lambda item: fixture in getattr(item, "fixturenames", ())


def _needs_paper(key: str) -> Callable[[pytest.Item], bool]:
    """tests/test_papers.py's tests of paper ``key``; for 000 also the tour's (papers.duckdb)."""

    def needed_by(item: pytest.Item) -> bool:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("key") == key:
            return uses("background")(item)
        return key == "000" and uses("tour")(item)

    return needed_by


#: The shared work: the papers' quick experiments here (tests/test_papers.py; paper000 is also
#: README tour's papers.duckdb); test modules add theirs when pytest imports them (the tour's
#: runs, the engine suites' module runs).
JOBS: dict[str, Job] = {
    f"paper{key}": Job(partial(_paper_db, key), "papers", minutes, _needs_paper(key))
    for key, minutes in (("000", 5), ("001", 2), ("002", 2), ("003", 2.5), ("004", 1.5))
}


TESTS = Path(__file__).resolve().parent


def _under(item: pytest.Item, *folders: str) -> bool:
    return item.path.parent in {TESTS / folder for folder in folders}


def _engines_early(item: pytest.Item) -> int | None:
    """The engine suites' runs start one at a time with tests/analysis and tests/reports (tests
    in one process, on one core), and none more starts in tests/runner until an engine suite
    asks (its modules before them start clusters of their own, or are timed)."""
    if _under(item, "analysis", "reports"):
        return 1
    return 0 if _under(item, "runner") else None


def _papers_early(item: pytest.Item) -> int | None:
    """The papers' quick experiments and the tour's runs start one at a time with tests/runner
    and run AT_ONCE at a time from the modules directly under tests/ on."""
    if item.path.parent == TESTS:
        return AT_ONCE
    return 1 if _under(item, "runner") else None


#: Groups that start early: from the first selected test this says a number for, that many of
#: their jobs run at once (0: none more starts), until a test asks for one of them (then AT_ONCE).
#: The engine suites' runs start with tests/analysis (_engines_early), which with pytest keep
#: both cores busy (load 3-5 in a local CI run on 1f180db). The papers' quick experiments and the
#: tour's runs start with tests/runner (_papers_early): there, one core was idle most of the
#: time (load 1.2-2.9), and the papers' jobs, run two at a time only from the modules under
#: tests/, made the last 12 of that run's 45 minutes. Their processes carry no test's tag and
#: their runners stay alive, so the leak tests (which look for their own tagged processes) and
#: the sweep of dead runners' leftovers leave them alone.
EARLY: dict[str, Callable[[pytest.Item], int | None]] = {
    "engines": _engines_early,
    "papers": _papers_early,
}


class _Gate:
    """Lets a group's jobs run ``limit`` at a time, in the order they were submitted."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running = 0
        self._tickets = 0
        self._next = 0
        self._cond = threading.Condition()

    def ticket(self) -> int:
        with self._cond:
            self._tickets += 1
            return self._tickets - 1

    def run(self, ticket: int, work: Callable[[Path], Any], folder: Path) -> Any:
        with self._cond:
            self._cond.wait_for(lambda: self._next == ticket and self._running < self.limit)
            self._next += 1
            self._running += 1
            self._cond.notify_all()
        try:
            return work(folder)
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def set(self, limit: int) -> None:
        with self._cond:
            self.limit = limit
            self._cond.notify_all()


class Background:
    """Runs JOBS in threads, AT_ONCE at a time per group: when a test first asks for a job, every
    job of its group that a selected test needs starts, longest first (of equal ones, the one a
    test asks for first); a group in EARLY starts before that, as few at a time as it says. Each
    job's module waits for it, so a group is done when its modules are (no job runs under later,
    timing-sensitive tests)."""

    def __init__(self, items: list[pytest.Item], folder: Callable[[str], Path]) -> None:
        #: needed job -> the index of the first selected test that needs it
        self._needed: dict[str, int] = {}
        for name, job in JOBS.items():
            first = next((i for i, item in enumerate(items) if job.needed_by(item)), None)
            if first is not None:
                self._needed[name] = first
        self._folder = folder
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._gates: dict[str, _Gate] = {}
        self._futures: dict[str, Future[Any]] = {}
        #: groups a test asked for a job of: AT_ONCE from then on
        self._asked: set[str] = set()

    def _submit(self, name: str) -> None:
        group = JOBS[name].group
        gate = self._gates[group]
        ticket = gate.ticket()
        folder = self._folder(name)
        self._futures[name] = self._pools[group].submit(gate.run, ticket, JOBS[name].run, folder)

    def _start(self, group: str, limit: int) -> None:
        """Start ``group``'s needed jobs (once); at most ``limit`` of them run at once."""
        if group in self._pools:
            self._gates[group].set(limit)
            return
        self._pools[group] = ThreadPoolExecutor(AT_ONCE, f"background-{group}")
        self._gates[group] = _Gate(limit)
        names = [n for n in self._needed if JOBS[n].group == group]
        for n in sorted(names, key=lambda n: (-JOBS[n].minutes, self._needed[n])):
            self._submit(n)

    def starting(self, item: pytest.Item) -> None:
        """Test ``item`` is about to run: the EARLY groups' limits from it on."""
        for group, early in EARLY.items():
            limit = early(item)
            if limit is None or group in self._asked:
                continue
            if group in self._pools or (
                limit and any(JOBS[n].group == group for n in self._needed)
            ):
                self._start(group, min(limit, AT_ONCE))

    def result(self, name: str) -> Any:
        """What job ``name`` returned (waiting for it); raises what went wrong in it."""
        group = JOBS[name].group
        self._asked.add(group)
        self._start(group, AT_ONCE)
        if name not in self._futures:  # no selected test seemed to need it
            self._submit(name)
        return self._futures[name].result()

    def close(self) -> None:
        for gate in self._gates.values():
            gate.set(AT_ONCE)
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Background]:
    """The session's Background. Databases its jobs return are to be read only: copy one to
    write to it."""
    runner = Background(request.session.items, tmp_path_factory.mktemp)
    yield runner
    runner.close()


@pytest.fixture(autouse=True)
def _early_background(request: pytest.FixtureRequest) -> None:
    """Sets the EARLY groups' limits at each test (Background.starting); no Background is made
    for a test no group has a limit for."""
    if any(early(request.node) is not None for early in EARLY.values()):
        request.getfixturevalue("background").starting(request.node)


def copy_db(db: Path, to: Path) -> Path:
    """Copy a DuckDB file (and its write-ahead log, if one was left) to ``to``; returns ``to``."""
    shutil.copy(db, to)
    wal = db.with_name(db.name + ".wal")
    if wal.exists():
        shutil.copy(wal, to.with_name(to.name + ".wal"))
    return to
