"""A configuration's worker process, seen from the runner: start it, wait for its messages (acting
on a stop request while waiting), stop or kill it with every process it started.

How no engine process outlives its worker, whatever ends the run:

- The worker leads its own session and process group (``os.setsid`` first thing), so a terminal's
  Ctrl-C reaches only the runner, which then stops the worker; every process the engine starts
  stays in that group unless it makes its own session.
- It exports :data:`MARK_ENV` (a value of its own) before any engine starts: every process the
  engine starts inherits it, including daemons that leave the group (Spark standalone's master
  and worker JVMs, their executors and pyspark daemons; Ray's and Dask's processes).
- It has a temporary folder of its own (``TMPDIR`` there; the engines put their scratch, logs,
  JVM ``java.io.tmpdir``, Spark local dirs and Ray's session folder under it), made by the runner
  and removed with the worker.
- :meth:`Worker.kill` and :meth:`Worker.stop` kill the group and every marked process and remove
  the folder; if the runner itself dies (SIGKILL), the worker's watchdog thread sees it
  (``runner.worker``) and does the same before it exits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Mapping
from typing import Any

from runner.errors import Terminated

#: The environment variable every process a worker starts carries, its value naming the worker.
MARK_ENV = "TRIALKIT_WORKER"
#: The prefix of a worker's own temporary folder.
TEMP_PREFIX = "trialkit-w-"

#: The signal that asked the run to stop ("SIGINT" or "SIGTERM"), set by :func:`request_stop`
#: from a signal handler and acted on by :func:`check_stop` where stopping is safe (never in the
#: middle of a database write).
_STOP_REQUESTED: list[str] = []
#: How often a wait for the worker looks at a stop request, in seconds.
_STOP_POLL_S = 0.25
#: Seconds a trial's result may take beyond its timeout once the worker says it is restarting a
#: broken engine (as long as ``runner.trials`` gives an engine's first start-up).
RESTART_GRACE_S = 120.0


def request_stop(signal_name: str) -> None:
    """Ask the running experiment to stop at its next safe point (a signal handler calls this);
    a second request while the first is pending stops at once."""
    if _STOP_REQUESTED:
        raise Terminated() if signal_name == "SIGTERM" else KeyboardInterrupt()
    _STOP_REQUESTED.append(signal_name)


def clear_stop() -> None:
    """Forget a stop request left from an earlier run in this process."""
    _STOP_REQUESTED.clear()


def check_stop() -> None:
    """Raise :class:`Terminated` (SIGTERM) or KeyboardInterrupt (SIGINT) if a stop was asked."""
    if _STOP_REQUESTED:
        name = _STOP_REQUESTED.pop()
        _STOP_REQUESTED.clear()
        raise Terminated() if name == "SIGTERM" else KeyboardInterrupt()


class Worker:
    """A running configuration worker process, and the sampler of its process tree (one for all
    its trials; None with ``--no-sample``)."""

    def __init__(self, config: Mapping[str, Any], sample: bool = True) -> None:
        import multiprocessing
        import tempfile
        import uuid

        from runner.sampler import TreeSampler
        from runner.worker import config_worker

        self.mark = uuid.uuid4().hex
        self.tmpdir: str | None = tempfile.mkdtemp(prefix=TEMP_PREFIX)
        #: processes of this worker still alive after it stopped normally (killed then)
        self.leftover = 0
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=config_worker,
            args=(child, dict(config)),
            kwargs={"mark": self.mark, "tmpdir": self.tmpdir, "runner_pid": os.getpid()},
        )
        try:
            self.process.start()
        except BaseException:
            self._remove_tmpdir()
            raise
        child.close()
        self.sampler = TreeSampler(self.process.pid) if sample else None

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or None if none came within ``timeout`` or the worker died. A stop
        request (Ctrl-C, SIGTERM) is acted on while waiting (:func:`check_stop`). When the worker
        says it is restarting its engine, the wait grows by :data:`RESTART_GRACE_S`."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                check_stop()
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if self.conn.poll(min(left, _STOP_POLL_S)):
                    message: dict[str, Any] = self.conn.recv()
                    if message.get("kind") == "restarting":  # the engine broke: start-up time
                        deadline = max(deadline, time.monotonic() + RESTART_GRACE_S)
                        continue
                    return message
                if not self.process.is_alive() and not self.conn.poll(0):
                    return None
        except (EOFError, OSError):
            pass
        return None

    def alive(self) -> bool:
        return self.process.is_alive()

    def close_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None

    def kill(self) -> None:
        """Kill the worker, its process group and every process carrying its mark (also those
        that left the group), and remove its temporary folder."""
        import psutil

        self.close_sampler()
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            children = []
        if self.process.exitcode is None:  # alive and not reaped: its pid is its group's id
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.kill()
        for child in children:  # any that had not taken the mark or the group yet
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.process.join(10)
        kill_marked(self.mark, group=self.process.pid)
        self.conn.close()
        self._remove_tmpdir()

    def stop(self) -> None:
        """Ask the worker to close its engine and exit; kill it if it has not within a minute.
        Whatever of its processes is still alive then is killed, and its folder removed."""
        self.close_sampler()
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send({"kind": "stop"})
        self.process.join(60)
        if self.process.is_alive():
            self.kill()
            return
        self.leftover = kill_marked(self.mark, group=self.process.pid)
        self.conn.close()
        self._remove_tmpdir()

    def _remove_tmpdir(self) -> None:
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def _marked(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in b"\0" + f.read()
    except OSError:  # gone, or another user's
        return False


def marked_processes(mark: str, group: int | None = None) -> list[Any]:
    """This user's processes (psutil) whose environment carries ``MARK_ENV=mark``, or in process
    group ``group``; never this process."""
    import psutil

    needle = f"\0{MARK_ENV}={mark}\0".encode()
    me, uid = os.getpid(), os.getuid()
    found = []
    for proc in psutil.process_iter(["uids"]):
        if proc.pid == me or proc.info["uids"] is None or proc.info["uids"].real != uid:
            continue
        in_group = False
        if group is not None:
            with contextlib.suppress(OSError):
                in_group = os.getpgid(proc.pid) == group
        if in_group or _marked(proc.pid, needle):
            found.append(proc)
    return found


def kill_marked(mark: str, group: int | None = None, rounds: int = 4) -> int:
    """SIGKILL every process :func:`marked_processes` finds, again until a look finds none (a
    process may start another while it is being killed). Returns how many were killed."""
    import psutil

    killed = 0
    for _ in range(rounds):
        procs = marked_processes(mark, group)
        if not procs:
            break
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
                killed += 1
        psutil.wait_procs(procs, timeout=5)
    return killed


def start_worker(
    config: Mapping[str, Any], grace: float, sample: bool = True
) -> tuple[Worker | None, dict[str, Any]]:
    """Start a worker and wait until its engine is up and the data loaded.

    Returns the worker and its ``ready`` message, or None and a message whose ``error`` says why
    start-up failed (the worker is then already gone)."""
    worker = Worker(config, sample)
    try:
        message = worker.receive(grace)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM during start-up: no half-started engine left
        worker.kill()
        raise
    if message is not None and message["kind"] == "ready":
        return worker, message
    if message is None:
        message = {
            "error": f"engine start-up did not finish within {grace:g} s"
            if worker.alive()
            else f"engine worker died during start-up (exit code {worker.process.exitcode})"
        }
    worker.kill()
    return None, message
