"""Resource sampling: while a trial runs, sample the whole process tree that runs it (the
configuration worker and everything it started: Dask worker processes, a Spark JVM, Ray workers)
at about 10 Hz from a thread of the trial loop's process.

Each sample: CPU % summed over the tree (100 = one core busy), resident memory summed (MB), disk
bytes read / written by the tree since the trial started, and network bytes received / sent by the
whole machine since the trial started (the OS keeps no per-process network counters). Processes of
an existing cluster elsewhere are not in the tree and are not measured.

Cheap enough to leave on (a trial of a few milliseconds pays about 0.1 ms):

- one :class:`TreeSampler` per configuration worker, its thread started once and parked between
  trials; :meth:`TreeSampler.begin` and :meth:`TreeSampler.end` bracket each trial;
- the tree (which processes) is cached: walked from ``/proc/<pid>/task/<tid>/children``
  (psutil's ``children()``, which reads every process of the machine, only where those files do
  not exist) when a trial begins if the last walk is older than :data:`TREE_REFRESH_S`, by each
  periodic sample (every :data:`TREE_REFRESH_S` only when a walk is slow, a JVM's hundred
  threads) and by a trial's last sample;
- a sample reads only ``/proc/<pid>/stat`` (CPU, RSS) and ``/proc/<pid>/io`` of the tree's
  processes and ``/proc/net/dev`` (psutil where there is no ``/proc``);
- a trial shorter than one period takes no sample (no ``samples`` rows): only its tree's CPU and
  memory at the start and the end are read, for its ``cpu_s`` and ``peak_rss_mb`` metrics.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

INTERVAL_S = 0.1
#: Most seconds between two walks of the process tree while a trial is sampled (every sample
#: walks it when a walk takes less than :data:`CHEAP_WALK_S`).
TREE_REFRESH_S = 0.5
CHEAP_WALK_S = 0.0005
_PROC = os.path.exists("/proc/self/stat")
_TICKS = os.sysconf("SC_CLK_TCK") if _PROC else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if _PROC else 4096


@dataclass
class SampleSet:
    rows: list[tuple[float, float, float, int, int, int, int]] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    #: False when nothing was read (sampling off, or the tree was gone)
    measured: bool = False

    def metrics(self) -> dict[str, float]:
        if not self.measured:
            return {}
        return {"peak_rss_mb": self.peak_rss_mb, "cpu_s": self.cpu_s}


class _Gone(Exception):
    """The process ended (or is no longer ours)."""


# -- reading one process: /proc, or psutil where there is none ---------------------------------


def _stat(pid: int) -> tuple[float, int, int]:
    """(CPU seconds, RSS bytes, start time) of a process."""
    if _PROC:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise _Gone from exc
        fields = data[data.rindex(b")") + 2 :].split()
        # fields from the state on (field 3 of proc(5)): utime 14, stime 15, starttime 22, rss 24
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS
        return cpu, int(fields[21]) * _PAGE, int(fields[19])
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            times = proc.cpu_times()
            return (
                float(times.user + times.system),
                int(proc.memory_info().rss),
                int(proc.create_time() * 1000),
            )
    except psutil.Error as exc:
        raise _Gone from exc


def _io(pid: int) -> tuple[int, int]:
    """Bytes the process read from and wrote to storage; (0, 0) when the OS does not say."""
    if _PROC:
        try:
            with open(f"/proc/{pid}/io", "rb") as fh:
                data = fh.read()
        except OSError:
            return (0, 0)
        read = write = 0
        for line in data.splitlines():
            if line.startswith(b"read_bytes:"):
                read = int(line[11:])
            elif line.startswith(b"write_bytes:"):
                write = int(line[12:])
        return read, write
    import psutil

    try:
        counters = psutil.Process(pid).io_counters()
    except (psutil.Error, AttributeError, NotImplementedError):
        return (0, 0)
    return int(counters.read_bytes), int(counters.write_bytes)


def _net() -> tuple[int, int]:
    """Bytes received and sent by the whole machine (every interface)."""
    if _PROC:
        try:
            with open("/proc/net/dev", "rb") as fh:
                lines = fh.read().splitlines()[2:]
        except OSError:
            lines = []
        recv = sent = 0
        for line in lines:
            parts = line.partition(b":")[2].split()
            if len(parts) >= 9:
                recv += int(parts[0])
                sent += int(parts[8])
        return recv, sent
    import psutil

    net = psutil.net_io_counters()
    return (int(net.bytes_recv), int(net.bytes_sent)) if net else (0, 0)


def _children(pid: int) -> list[int]:
    """The direct children of a process, from its threads' ``children`` files."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                out.extend(int(p) for p in fh.read().split())
        except OSError:  # the thread ended
            continue
    return out


#: Whether the kernel lists a thread's children (CONFIG_PROC_CHILDREN); else psutil walks.
_CHILDREN_FILES = _PROC and os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    if _CHILDREN_FILES:
        found, todo = [], [root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(_children(pid))
        return found
    import psutil

    try:
        proc = psutil.Process(root)
        return [root, *(p.pid for p in proc.children(recursive=True))]
    except psutil.Error:
        return []


# -- the sampler --------------------------------------------------------------------------------


@dataclass
class _Proc:
    start: int  # start time: tells a reused pid from the process first seen
    cpu0: float  # CPU seconds when first seen in this trial (0 if born during it)
    io0: tuple[int, int]
    cpu: float  # CPU seconds at the last reading
    io: tuple[int, int]
    rss: int = 0


@dataclass
class _Trial:
    t0: float
    net0: tuple[int, int]
    procs: dict[int, _Proc]
    next_at: float
    last_at: float
    gone_cpu: float = 0.0
    gone_io: tuple[int, int] = (0, 0)
    result: SampleSet = field(default_factory=SampleSet)


class TreeSampler:
    """Samples the process tree rooted at ``pid`` during each trial.

    One per worker: ``begin()`` when a trial starts, ``end()`` (its :class:`SampleSet`) when it
    ends, as often as there are trials, then ``close()``. ``start()`` / ``stop()`` do the same
    for a single trial (``TreeSampler(pid).start() ... .stop()``)."""

    def __init__(self, pid: int, interval_s: float = INTERVAL_S) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._trial: _Trial | None = None
        #: pid -> start time of the tree's processes, as last walked
        self._pids: dict[int, int] | None = None
        self._tree_at = 0.0
        self._walk_s = 0.0

    # -- the tree -----------------------------------------------------------------------------

    def _walk(self) -> None:
        began = time.perf_counter()
        pids = {}
        for pid in _tree(self.pid):
            try:
                pids[pid] = _stat(pid)[2]
            except _Gone:
                continue
        self._pids = pids
        self._tree_at = time.perf_counter()
        self._walk_s = self._tree_at - began

    def _read(self, trial: _Trial, *, io: bool, first: bool) -> float:
        """Read every known process of the tree: CPU and RSS, and storage bytes if ``io``.
        Processes not seen before count from now at the trial's start (``first``), from zero
        after it; a process that ended keeps what it used. Returns the CPU seconds the processes
        already seen used since their last reading."""
        assert self._pids is not None
        procs = trial.procs
        seen = set()
        used = 0.0
        for pid, start in list(self._pids.items()):
            try:
                cpu, rss, started = _stat(pid)
            except _Gone:
                self._pids.pop(pid, None)
                continue
            if started != start:  # the pid was reused: not ours
                self._pids.pop(pid, None)
                continue
            reads = _io(pid) if io else None
            entry = procs.get(pid)
            if entry is None:
                base_io = reads if first and reads is not None else (0, 0)
                entry = procs[pid] = _Proc(start, cpu if first else 0.0, base_io, cpu, base_io)
            else:
                used += cpu - entry.cpu
            entry.cpu, entry.rss = cpu, rss
            if reads is not None:
                entry.io = reads
            seen.add(pid)
        for pid in [p for p in procs if p not in seen]:  # ended: keep what it used
            entry = procs.pop(pid)
            trial.gone_cpu += entry.cpu - entry.cpu0
            trial.gone_io = (
                trial.gone_io[0] + entry.io[0] - entry.io0[0],
                trial.gone_io[1] + entry.io[1] - entry.io0[1],
            )
        return used

    def _cpu_total(self, trial: _Trial) -> float:
        return trial.gone_cpu + sum(e.cpu - e.cpu0 for e in trial.procs.values())

    def _sample(self, t_s: float) -> None:
        """One sample of the current trial, the tree walked first."""
        if self._trial is not None:
            self._take(self._trial, t_s, refresh=True)

    def _take(self, trial: _Trial, t_s: float, *, refresh: bool) -> None:
        """One sample of ``trial`` (walking the tree first if ``refresh``)."""
        if refresh:
            self._walk()
        used = self._read(trial, io=True, first=False)
        now = time.perf_counter()
        elapsed, trial.last_at = now - trial.last_at, now
        cpu_percent = 100.0 * used / elapsed if elapsed > 0 else 0.0
        rss_mb = sum(e.rss for e in trial.procs.values()) / 2**20
        read = trial.gone_io[0] + sum(e.io[0] - e.io0[0] for e in trial.procs.values())
        write = trial.gone_io[1] + sum(e.io[1] - e.io0[1] for e in trial.procs.values())
        recv, sent = _net()
        result = trial.result
        result.rows.append(
            (t_s, cpu_percent, rss_mb, read, write, recv - trial.net0[0], sent - trial.net0[1])
        )
        result.peak_rss_mb = max(result.peak_rss_mb, rss_mb)

    # -- the thread ---------------------------------------------------------------------------

    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                trial = self._trial
                if trial is None:
                    self._cond.wait()
                    continue
                delay = trial.next_at - time.perf_counter()
                if delay > 0:
                    self._cond.wait(delay)
                    continue  # the trial may have ended, or another begun
                now = time.perf_counter()
                due = self._walk_s < CHEAP_WALK_S or now - self._tree_at >= TREE_REFRESH_S
                self._take(trial, now - trial.t0, refresh=due)
                trial.next_at = max(trial.next_at + self.interval_s, now + self.interval_s / 2)

    # -- a trial ------------------------------------------------------------------------------

    def begin(self) -> None:
        """A trial starts now: note the tree's CPU, storage and network counters."""
        with self._cond:
            if self._pids is None or time.perf_counter() - self._tree_at >= TREE_REFRESH_S:
                self._walk()
            now = time.perf_counter()
            trial = _Trial(
                t0=now, net0=_net(), procs={}, next_at=now + self.interval_s, last_at=now
            )
            self._read(trial, io=True, first=True)
            trial.t0 = trial.last_at = time.perf_counter()
            trial.next_at = trial.t0 + self.interval_s
            self._trial = trial
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="trialkit-sampler", daemon=True
                )
                self._thread.start()
            else:
                self._cond.notify()

    def end(self) -> SampleSet:
        """The trial ended: its samples (a last one if any was taken during it; none for a
        trial shorter than one period), its tree's CPU seconds and peak memory."""
        with self._cond:
            trial, self._trial = self._trial, None
            if trial is None:
                return SampleSet()
            if trial.result.rows:
                self._take(trial, time.perf_counter() - trial.t0, refresh=True)
            else:  # shorter than one period: the tree's CPU and memory now, no sample
                self._read(trial, io=False, first=False)
                rss_mb = sum(e.rss for e in trial.procs.values()) / 2**20
                trial.result.peak_rss_mb = rss_mb
            result = trial.result
            result.cpu_s = self._cpu_total(trial)
            result.measured = bool(trial.procs) or trial.gone_cpu > 0 or bool(result.rows)
            return result

    def close(self) -> None:
        """Stop the thread (a trial still open is dropped)."""
        with self._cond:
            self._closed = True
            self._trial = None
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def start(self) -> TreeSampler:
        """:meth:`begin`, for a sampler used for a single trial."""
        self.begin()
        return self

    def stop(self) -> SampleSet:
        """:meth:`end` and :meth:`close`, for a sampler used for a single trial."""
        result = self.end()
        self.close()
        return result
