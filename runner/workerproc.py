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
- When the runner and its worker die together (the OOM killer, ``kill -9`` of both groups), no
  watchdog is left: what they started (Spark standalone's daemons and executors, which leave the
  worker's group; Dask's and Ray's processes) lives on. So every marked process also carries
  :data:`RUNNER_ENV`, the runner's pid and start time, and every folder a worker owns holds an
  :data:`OWNER_FILE` naming them; each new :class:`Worker` first runs :func:`sweep_stale`, which
  kills this user's marked processes and removes such folders whose runner is no longer alive
  (never those of a live runner, nor anything unmarked, such as a cluster the user pointed at).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import Terminated

#: The environment variable every process a worker starts carries, its value naming the worker.
MARK_ENV = "TRIALKIT_WORKER"
#: The environment variable every process a worker starts carries, naming the runner that owns
#: the worker: ``<pid>:<start time in clock ticks>`` (:func:`process_id`; a reused pid differs).
RUNNER_ENV = "TRIALKIT_RUNNER"
#: The prefix of a worker's own temporary folder.
TEMP_PREFIX = "trialkit-w-"
#: Prefixes of the short folders in /tmp a worker may make besides (:func:`short_folder`).
SHORT_PREFIXES = ("tk-ray-",)
#: The file in every folder a worker owns: ``runner <id>``, ``mark <mark>`` and, in the worker's
#: own folder, one ``extra <path>`` line per other folder it made (removed with it).
OWNER_FILE = ".trialkit-owner"
#: A new Worker sweeps stale leftovers (:func:`sweep_stale`) at most this often, in seconds.
SWEEP_EVERY_S = 60.0
_LAST_SWEEP: list[float] = []

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
        import uuid

        from runner.sampler import TreeSampler
        from runner.worker import config_worker

        if not _LAST_SWEEP or time.monotonic() - _LAST_SWEEP[0] > SWEEP_EVERY_S:
            _LAST_SWEEP[:] = [time.monotonic()]
            #: what the sweep before this worker found of dead runners (None: none made)
            self.swept: Swept | None = sweep_stale()
        else:
            self.swept = None
        self.mark = uuid.uuid4().hex
        owner = process_id(os.getpid())
        self.tmpdir: str | None = tempfile.mkdtemp(prefix=TEMP_PREFIX)
        if owner is not None:
            _write_owner(self.tmpdir, owner, self.mark)
        #: processes of this worker still alive after it stopped normally (killed then)
        self.leftover = 0
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=config_worker,
            args=(child, dict(config)),
            kwargs={
                "mark": self.mark,
                "tmpdir": self.tmpdir,
                "runner_pid": os.getpid(),
                "owner": owner,
            },
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
            remove_owned(self.tmpdir)
            self.tmpdir = None


# -- what a worker owns, and what dead runners left ----------------------------------------------


def process_id(pid: int) -> str | None:
    """``<pid>:<start time in clock ticks>`` of a process that is alive (not a zombie), from
    /proc; None when there is none. Two processes that had the same pid differ in start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] in (b"Z", b"X"):  # killed, not yet reaped: gone for our purpose
            return None
        return f"{pid}:{int(fields[19])}"
    except (OSError, ValueError, IndexError):
        return None


def _runner_alive(owner: str, cache: dict[str, bool]) -> bool:
    if owner not in cache:
        pid = owner.split(":", 1)[0]
        cache[owner] = pid.isdigit() and process_id(int(pid)) == owner
    return cache[owner]


def _write_owner(folder: str, owner: str, mark: str) -> None:
    with open(os.path.join(folder, OWNER_FILE), "w", encoding="utf-8") as f:
        f.write(f"runner {owner}\nmark {mark}\n")


def _read_owner(folder: str) -> dict[str, list[str]] | None:
    """The owner file of ``folder`` as key -> values; None when it has none (not ours, or made by
    a runner that wrote none: left alone)."""
    try:
        text = Path(folder, OWNER_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, []).append(value)
    return out if out.get("runner") else None


def _ours(path: str) -> bool:
    """A folder (not a link) of this user whose name has one of our prefixes."""
    name = os.path.basename(path)
    if not name.startswith((TEMP_PREFIX, *SHORT_PREFIXES)):
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()


def remove_owned(folder: str) -> None:
    """Remove a worker's folder and the folders its owner file lists as its (``extra``)."""
    owner = _read_owner(folder) or {}
    for extra in owner.get("extra", []):
        if os.path.isabs(extra) and _ours(extra):
            shutil.rmtree(extra, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


def short_folder(prefix: str = SHORT_PREFIXES[0]) -> str:
    """A new folder ``/tmp/<prefix>XXXXXXXX`` (a short path, whatever TMPDIR is: Unix socket
    paths have at most 107 bytes). In a worker it is the worker's: listed in the owner file of the
    worker's folder (TMPDIR there) and removed with it, however the worker ends; the caller
    removes it when done with it."""
    if prefix not in SHORT_PREFIXES:
        raise ValueError(f"short_folder: prefix {prefix!r} is not one of {SHORT_PREFIXES}")
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    owner, mark = os.environ.get(RUNNER_ENV), os.environ.get(MARK_ENV)
    worker_dir = os.environ.get("TMPDIR")
    if owner and mark and worker_dir:
        mine = _read_owner(worker_dir)
        if mine is not None and mine.get("mark") == [mark]:
            _write_owner(path, owner, mark)
            with open(os.path.join(worker_dir, OWNER_FILE), "a", encoding="utf-8") as f:
                f.write(f"extra {path}\n")
    return path


@dataclass(frozen=True)
class Swept:
    """What :func:`sweep_stale` found of runners no longer alive."""

    processes: int  # killed
    folders: int  # removed


def _environ(pid: int) -> dict[bytes, bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:  # gone, or another user's
        return {}
    return dict(item.partition(b"=")[::2] for item in raw.split(b"\0") if item)


def stale_processes() -> list[Any]:
    """This user's processes (psutil) that a worker started (:data:`MARK_ENV`) for a runner
    (:data:`RUNNER_ENV`) that is no longer alive; never this process or its ancestors."""
    import psutil

    me, uid = os.getpid(), os.getuid()
    skip = {me}
    with contextlib.suppress(psutil.Error):
        skip.update(p.pid for p in psutil.Process(me).parents())
    mark_key, runner_key = MARK_ENV.encode(), RUNNER_ENV.encode()
    alive: dict[str, bool] = {}
    found = []
    for proc in psutil.process_iter(["uids"]):
        if proc.pid in skip or proc.info["uids"] is None or proc.info["uids"].real != uid:
            continue
        env = _environ(proc.pid)
        owner = env.get(runner_key)
        if not owner or not env.get(mark_key):
            continue
        if not _runner_alive(owner.decode(errors="replace"), alive):
            found.append(proc)
    return found


def _stale_folders(bases: Iterator[str]) -> list[str]:
    alive: dict[str, bool] = {}
    found = []
    for base in bases:
        try:
            entries = [e.path for e in os.scandir(base)]
        except OSError:
            continue
        for path in entries:
            if not _ours(path):
                continue
            owner = _read_owner(path)
            if owner is not None and not _runner_alive(owner["runner"][0], alive):
                found.append(path)
    return found


def sweep_stale(rounds: int = 4) -> Swept:
    """Kill what workers of runners no longer alive left running (:func:`stale_processes`, again
    until a look finds none: a process may start another while dying), then remove their
    folders: the worker folders and short folders with an owner file naming a dead runner, in
    this process's temporary folder and in /tmp. A runner SIGKILLed together with its worker
    leaves these; a live runner's are never touched."""
    killed = _kill_until_none(stale_processes, rounds)
    folders = _stale_folders(iter(dict.fromkeys([tempfile.gettempdir(), "/tmp"])))
    for folder in folders:
        remove_owned(folder)
    return Swept(killed, len(folders))


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
    return _kill_until_none(lambda: marked_processes(mark, group), rounds)


def _kill_until_none(find: Callable[[], list[Any]], rounds: int) -> int:
    """SIGKILL what ``find`` returns (psutil processes) and wait for them, again until a look
    finds none or ``rounds`` looks are done. Returns how many were killed."""
    import psutil

    killed = 0
    for _ in range(rounds):
        procs = find()
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
