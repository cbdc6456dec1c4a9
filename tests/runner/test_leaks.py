"""No engine process and no scratch folder outlives a run, however it ends: SIGKILL of the runner
(during a Spark standalone start-up, during Spark, Dask, Ray and TensorFlow multiworker trials),
SIGTERM and Ctrl-C during a Spark standalone start-up, Ctrl-C during a trial of every engine, a
trial over ``--timeout``, a normal end; and a runner SIGKILLed together with its worker (the OOM
killer): the next run sweeps what they left.

Each run is a real ``runner trials`` subprocess with an environment variable of its own (TAG_ENV,
inherited by every process it and its engines start, daemons that leave its process group
included) and a TMPDIR of its own. Afterwards no process carries the tag and the TMPDIR is empty.
While a Spark run is up, every JVM it started keeps its ``java.io.tmpdir`` (spark-submit's
``spark-*`` folders and the like) under that TMPDIR, not in /tmp.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

RUNNER = Path(sys.executable).parent / "runner"
#: The environment variable that tags every process of one test's run.
TAG_ENV = "TRIALKIT_LEAK_TEST"
#: Seconds the runner's worker (or its watchdog, after a SIGKILL) gets to end everything.
CLEANUP_S = 15.0
#: Seconds an engine gets to come up on a loaded 2-core machine.
UP_S = 300.0


def _default_signals() -> None:
    # a child of a non-interactive shell may start with SIGINT ignored; a user's terminal does not
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tagged(tag: str) -> list[psutil.Process]:
    """This user's processes whose environment carries ``TAG_ENV=tag``."""
    needle = f"\0{TAG_ENV}={tag}\0".encode()
    found = []
    for proc in psutil.process_iter():
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                if needle in b"\0" + f.read():
                    found.append(proc)
        except OSError:
            continue
    return found


def describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            out.append(f"{proc.pid} {' '.join(proc.cmdline())[:160]}")
    return out


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


class Run:
    """One ``runner trials`` subprocess, tagged, with its own TMPDIR and database."""

    def __init__(self, folder: Path, *args: str, tmp: Path | None = None) -> None:
        self.tag = uuid.uuid4().hex
        # short by default (the engine need not shorten Ray's root: a Unix socket's path has at
        # most 107 bytes); ``tmp`` to share one with another run, or to make it long
        self.tmp = tmp if tmp is not None else Path(tempfile.mkdtemp(prefix="tk-", dir="/tmp"))
        folder.mkdir(parents=True)
        self.db = folder / "r.duckdb"
        env = {**os.environ, TAG_ENV: self.tag, "TMPDIR": str(self.tmp)}
        self.proc = subprocess.Popen(
            [str(RUNNER), "trials", *args, "--db", str(self.db), "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=_default_signals,
        )
        self.out = self.err = ""

    def processes(self) -> list[psutil.Process]:
        """The run's processes but the runner itself."""
        return [p for p in tagged(self.tag) if p.pid != self.proc.pid]

    def wait_until(self, what: str, ready: Callable[[], bool], timeout: float = UP_S) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                pytest.fail(f"the runner ended before {what}: {out[-1500:]} {err[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:g} s")
            time.sleep(0.2)

    def has(self, text: str) -> bool:
        """Whether one of the run's processes has ``text`` in its command line."""
        return any(text in cmdline(p) for p in self.processes())

    def trials_recorded(self) -> int:
        """Trials the run has journaled so far (``<db>.journal/*.jsonl``)."""
        folder = Path(f"{self.db}.journal")
        n = 0
        for path in folder.glob("*.jsonl"):
            with contextlib.suppress(OSError):
                n += path.read_bytes().count(b'"e":"trial"')
        return n

    def wait_for_trials(self, n: int = 1) -> None:
        self.wait_until(f"{n} trial(s) recorded", lambda: self.trials_recorded() >= n)

    def end(self, sig: int | None = None, timeout: float = 300) -> int:
        """Send ``sig`` to the runner (none: let it finish); its exit code."""
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            self.out, self.err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.out, self.err = self.proc.communicate()
            pytest.fail(f"the runner did not end within {timeout:g} s: {self.err[-3000:]}")
        return self.proc.returncode

    def left(self) -> tuple[list[str], list[str]]:
        """What is left once the cleanup had CLEANUP_S: the run's processes and its TMPDIR's
        entries. Leftover processes are killed (they would spoil later tests)."""
        deadline = time.monotonic() + CLEANUP_S
        procs = tagged(self.tag)
        while procs and time.monotonic() < deadline:
            time.sleep(0.2)
            procs = tagged(self.tag)
        names = describe(procs)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        files = sorted(str(p.relative_to(self.tmp)) for p in self.tmp.iterdir())
        return names, files

    def assert_clean(self) -> None:
        procs, files = self.left()
        assert procs == [], f"processes left running: {procs}"
        assert files == [], f"left in TMPDIR: {files}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        for proc in tagged(self.tag):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def jvm_temp_dirs(self) -> list[str]:
        """The run's JVMs (but Spark's launcher, which builds a command and exits) whose
        ``java.io.tmpdir`` is not under the run's TMPDIR."""
        wrong = []
        for proc in self.processes():
            line = cmdline(proc)
            if not line.split(" ", 1)[0].endswith("java") or "launcher.Main" in line:
                continue
            if f"-Djava.io.tmpdir={self.tmp}/" not in line:
                wrong.append(line[:200])
        return wrong


class Runs:
    """Starts Runs in a test's folder (``runs(*args)``); ``close`` ends what is still there."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: list[Run] = []

    def __call__(self, *args: str, tmp: Path | None = None) -> Run:
        run = Run(self.folder / f"run{len(self.made)}", *args, tmp=tmp)
        self.made.append(run)
        return run

    def close(self) -> None:
        for run in self.made:
            run.close()


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    started = Runs(tmp_path)
    yield started
    started.close()


SPARK_STANDALONE = ("--engine", "spark", "--spark-mode", "standalone", "--workload", "knn",
                    "--dataset", "digits", "--workers", "1", "--threads", "1")  # fmt: skip
MASTER = "org.apache.spark.deploy.master.Master"
EXECUTOR = "CoarseGrainedExecutorBackend"


def test_sigkill_of_the_runner_during_a_local_trial(runs: Runs) -> None:
    run = runs("--engine", "local", "--workload", "noop", "--param", "spin=200000",
               "--n", "100000")  # fmt: skip
    run.wait_until("the worker", lambda: bool(run.processes()))
    time.sleep(1.0)
    assert run.end(signal.SIGKILL) == -signal.SIGKILL
    run.assert_clean()


@pytest.mark.engine
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_spark_standalone_start_up(runs: Runs, sig: int) -> None:
    run = runs(*SPARK_STANDALONE, "--n", "2")
    run.wait_until("a Spark master", lambda: run.has(MASTER))
    assert run.jvm_temp_dirs() == []
    code = run.end(sig)
    assert code == {signal.SIGKILL: -9, signal.SIGTERM: 143, signal.SIGINT: 130}[sig], run.err
    run.assert_clean()


@pytest.mark.engine
def test_sigkill_of_the_runner_during_a_spark_standalone_trial(runs: Runs) -> None:
    run = runs(*SPARK_STANDALONE, "--n", "1000", "--rounds", "1")
    run.wait_for_trials(1)
    assert run.has(MASTER) and run.has(EXECUTOR)
    assert run.jvm_temp_dirs() == []
    assert run.end(signal.SIGKILL) == -signal.SIGKILL
    run.assert_clean()


@pytest.mark.engine
def test_a_spark_trial_over_its_timeout(runs: Runs) -> None:
    """The trial is killed with its engine (Spark local[1]'s JVM and Python workers) and the run
    ends as usual (exit 1: a trial did not finish): nothing of the killed engine is left."""
    run = runs("--engine", "spark", "--workload", "knn", "--dataset", "digits", "--workers", "1",
               "--timeout", "0.1", "--n", "1", "--rounds", "1", "--warmup", "0")  # fmt: skip
    assert run.end() == 1, run.err
    assert "0 ok trials, 1 failed or timed out" in run.out, run.out
    assert "exceeded --timeout 0.1 s" in run.out
    run.assert_clean()


@pytest.mark.engine
@pytest.mark.parametrize(
    "args",
    [
        ("--engine", "dask", "--workload", "knn", "--workers", "2"),
        ("--engine", "ray", "--workload", "knn", "--workers", "2"),
    ],
    ids=["dask", "ray"],
)
def test_sigkill_of_the_runner_during_a_trial(runs: Runs, args: tuple[str, ...]) -> None:
    run = runs(*args, "--dataset", "digits", "--n", "1000", "--rounds", "1")
    run.wait_for_trials(1)
    assert len(run.processes()) > 2  # the worker and the engine's own processes
    assert run.end(signal.SIGKILL) == -signal.SIGKILL
    run.assert_clean()


TF_MULTIWORKER = """\
[[matrix]]
engine = "tensorflow"
workload = "cnn"
dataset = "digits"
strategy = "multiworker"
workers = 2
epochs = 1
data_fraction = 0.2
"""
TF_WORKER = "runner.engines.tf_multiworker"


def _tf_multiworker(folder: Path) -> tuple[str, ...]:
    spec = folder / "tf.toml"
    spec.write_text(TF_MULTIWORKER, encoding="utf-8")
    return ("-e", str(spec))


@pytest.mark.engine
def test_sigkill_of_the_runner_during_a_tensorflow_multiworker_trial(
    runs: Runs, tmp_path: Path
) -> None:
    run = runs(*_tf_multiworker(tmp_path), "--n", "1000", "--rounds", "1")
    run.wait_for_trials(1)
    assert sum(TF_WORKER in cmdline(p) for p in run.processes()) == 2
    assert run.end(signal.SIGKILL) == -signal.SIGKILL
    run.assert_clean()


#: A TMPDIR far longer than Ray's socket paths allow under it (Ray's root is TMPDIR/ray there).
LONG_TMPDIR = "tk-a-temporary-folder-whose-path-is-too-long-for-ray-sockets-"
RAY_ROOT = re.compile(r"/tmp/tk-ray-\w+")


@pytest.mark.engine
@pytest.mark.parametrize(
    "engine",
    ["dask", "spark", "ray-long-tmpdir", "tensorflow-multiworker"],
)
def test_ctrl_c_during_a_trial(runs: Runs, tmp_path: Path, engine: str) -> None:
    """Ctrl-C (SIGINT) while the engine runs trials: the runner stops the trial in flight, says
    how to resume, exits 130, and nothing of the engine is left. Ray runs under a TMPDIR too long
    for its Unix sockets: it gets a short root of its own in /tmp, removed with it."""
    tmp = None
    if engine == "tensorflow-multiworker":
        args = _tf_multiworker(tmp_path)
    else:
        args = ("--engine", engine.split("-")[0], "--workload", "knn", "--dataset", "digits",
                "--workers", "2")  # fmt: skip
        if engine == "ray-long-tmpdir":
            tmp = Path(tempfile.mkdtemp(prefix=LONG_TMPDIR, dir="/tmp"))
    run = runs(*args, "--n", "1000", "--rounds", "1", tmp=tmp)
    run.wait_for_trials(1)
    roots = {m for p in run.processes() for m in RAY_ROOT.findall(cmdline(p))}
    if tmp is not None:  # the raylet and its workers name their session under the short root
        assert len(roots) == 1, describe(run.processes())
    time.sleep(0.3)  # into the next trial
    assert run.end(signal.SIGINT) == 130, run.err
    assert "--resume" in run.out + run.err, run.out + run.err
    run.assert_clean()
    assert [r for r in roots if Path(r).exists()] == []


def _sigkill_with_its_worker(run: Run) -> None:
    """SIGKILL the runner and its configuration worker together, as the OOM killer or ``kill -9``
    of both groups does: no watchdog is left to clean up. The worker (the runner's child that
    leads a process group: not multiprocessing's resource tracker, which ends with the runner)
    is stopped first, so it cannot act on the runner's end before it dies too."""
    workers = [p for p in psutil.Process(run.proc.pid).children() if os.getpgid(p.pid) == p.pid]
    assert len(workers) == 1, describe(run.processes())
    workers[0].suspend()
    run.proc.kill()
    os.killpg(workers[0].pid, signal.SIGKILL)  # the worker and the group it leads
    assert run.end(timeout=60) == -signal.SIGKILL


@pytest.mark.engine
def test_the_next_run_sweeps_what_a_runner_killed_with_its_worker_left(runs: Runs) -> None:
    """A runner and its worker SIGKILLed together mid Spark standalone trial leave the master,
    worker and executor JVMs (each leads a session of its own) and the worker's folder; the next
    `runner trials` (here Spark standalone again, ended with Ctrl-C mid-trial) kills them and
    removes the folder before it starts its own engine, and leaves nothing of its own either."""
    first = runs(*SPARK_STANDALONE, "--n", "1000", "--rounds", "1")
    first.wait_for_trials(1)
    _sigkill_with_its_worker(first)
    left = first.processes()
    assert any(MASTER in cmdline(p) for p in left), describe(left)  # what the sweep is for
    assert [p.name for p in first.tmp.iterdir()] != []
    second = runs(*SPARK_STANDALONE, "--n", "1000", "--rounds", "1", tmp=first.tmp)
    second.wait_until("a Spark master", lambda: second.has(MASTER))
    assert first.processes() == []  # swept before the second run's engine started
    second.wait_for_trials(1)
    assert second.end(signal.SIGINT) == 130, second.err
    first.assert_clean()
    second.assert_clean()


def test_the_sweep_kills_and_removes_only_what_dead_runners_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """workerproc.sweep_stale on made-up leftovers: a process marked by a worker whose runner is
    dead (or whose pid now belongs to a later process) is killed, its folder (and the short
    folder it lists) removed; a live runner's marked process and folder, a process without a
    worker's mark and a folder without an owner file are left alone."""
    from runner import workerproc as wp

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the sweep looks, with /tmp
    tag = uuid.uuid4().hex
    started: list[int] = []
    extra = tempfile.mkdtemp(prefix="tk-ray-", dir="/tmp")

    def orphan(**env: str) -> int:
        """A ``sleep`` whose parent has exited (as a dead worker's processes are): its pid."""
        out = subprocess.run(
            ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"],
            env={**os.environ, TAG_ENV: tag, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        started.append(int(out))
        return int(out)

    try:
        live = wp.process_id(orphan())
        gone = subprocess.Popen(["sleep", "60"])
        dead = wp.process_id(gone.pid)
        assert live is not None and dead is not None
        gone.kill()
        gone.wait()
        reused = f"{live.split(':')[0]}:1"  # the live pid with another start time: not it
        marked = {
            owner: orphan(**{wp.MARK_ENV: "m", wp.RUNNER_ENV: owner})
            for owner in (live, dead, reused)
        }
        unmarked = orphan(**{wp.RUNNER_ENV: dead})
        folders = {}
        for name, owner in (("live", live), ("dead", dead), ("reused", reused)):
            folders[name] = tempfile.mkdtemp(prefix=wp.TEMP_PREFIX)
            wp._write_owner(folders[name], owner, "m")
        with open(Path(folders["dead"]) / wp.OWNER_FILE, "a", encoding="utf-8") as f:
            f.write(f"extra {extra}\n")
        bare = tempfile.mkdtemp(prefix=wp.TEMP_PREFIX)  # an older runner's: no owner file

        t = time.monotonic()
        swept = wp.sweep_stale()
        assert time.monotonic() - t < 3.0

        assert swept.processes >= 2 and swept.folders >= 2
        for owner, pid in marked.items():
            assert (wp.process_id(pid) is not None) == (owner == live), owner
        assert wp.process_id(unmarked) is not None
        assert {n for n, f in folders.items() if Path(f).exists()} == {"live"}
        assert not Path(extra).exists() and Path(bare).exists()
    finally:
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(extra, ignore_errors=True)
