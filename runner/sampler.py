"""Resource sampling: while a trial runs, sample the whole process tree that runs it (the
configuration worker and everything it started: Dask worker processes, a Spark JVM, Ray workers)
at about 10 Hz from a thread of the trial loop's process.

Each sample: CPU % summed over the tree (100 = one core busy), resident memory summed (MB), disk
bytes read / written by the tree since the trial started, and network bytes received / sent by the
whole machine since the trial started (the OS keeps no per-process network counters). Processes of
an existing cluster elsewhere are not in the tree and are not measured.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

INTERVAL_S = 0.1


@dataclass
class _Proc:
    proc: Any  # psutil.Process
    cpu0: float  # cpu seconds when first seen (or at trial start)
    io0: tuple[int, int]
    cpu_last: float = 0.0
    io_last: tuple[int, int] = (0, 0)


@dataclass
class SampleSet:
    rows: list[tuple[float, float, float, int, int, int, int]] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0

    def metrics(self) -> dict[str, float]:
        if not self.rows:
            return {}
        return {"peak_rss_mb": self.peak_rss_mb, "cpu_s": self.cpu_s}


def _cpu(proc: Any) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _io(proc: Any) -> tuple[int, int]:
    try:
        counters = proc.io_counters()
    except (AttributeError, OSError, NotImplementedError):
        return (0, 0)
    return (int(counters.read_bytes), int(counters.write_bytes))


class TreeSampler:
    """Samples the process tree rooted at ``pid`` until ``stop()``; use one per trial."""

    def __init__(self, pid: int, interval_s: float = INTERVAL_S) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._procs: dict[int, _Proc] = {}
        self._gone_cpu = 0.0
        self._gone_io = (0, 0)
        self.result = SampleSet()

    def _tree(self) -> list[Any]:
        import psutil

        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _refresh(self, at_start: bool) -> None:
        import psutil

        seen: set[int] = set()
        for proc in self._tree():
            try:
                key = proc.pid
                if key not in self._procs:
                    cpu, io = _cpu(proc), _io(proc)
                    # A process born during the trial counts from zero; at the start, from now.
                    base_cpu, base_io = (cpu, io) if at_start else (0.0, (0, 0))
                    self._procs[key] = _Proc(proc, base_cpu, base_io, cpu, io)
                    proc.cpu_percent(None)  # prime the per-process CPU % counter
                else:
                    entry = self._procs[key]
                    entry.cpu_last, entry.io_last = _cpu(entry.proc), _io(entry.proc)
                seen.add(key)
            except psutil.Error:
                continue
        for key in list(self._procs):
            if key not in seen:  # ended: keep what it used
                entry = self._procs.pop(key)
                self._gone_cpu += entry.cpu_last - entry.cpu0
                self._gone_io = (
                    self._gone_io[0] + entry.io_last[0] - entry.io0[0],
                    self._gone_io[1] + entry.io_last[1] - entry.io0[1],
                )

    def _sample(self, t_s: float) -> None:
        import psutil

        self._refresh(at_start=False)
        cpu_percent = rss = 0.0
        for entry in self._procs.values():
            try:
                cpu_percent += entry.proc.cpu_percent(None)
                rss += entry.proc.memory_info().rss
            except psutil.Error:
                continue
        read, write = self._io_total()
        net = psutil.net_io_counters()
        rss_mb = rss / 2**20
        self.result.rows.append(
            (
                t_s,
                cpu_percent,
                rss_mb,
                read,
                write,
                int(net.bytes_recv - self._net0[0]),
                int(net.bytes_sent - self._net0[1]),
            )
        )
        self.result.peak_rss_mb = max(self.result.peak_rss_mb, rss_mb)

    def _io_total(self) -> tuple[int, int]:
        read = self._gone_io[0] + sum(e.io_last[0] - e.io0[0] for e in self._procs.values())
        write = self._gone_io[1] + sum(e.io_last[1] - e.io0[1] for e in self._procs.values())
        return read, write

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample(time.perf_counter() - self._t0)

    def start(self) -> TreeSampler:
        import psutil

        net = psutil.net_io_counters()
        self._net0 = (net.bytes_recv, net.bytes_sent)
        self._refresh(at_start=True)
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="trialkit-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> SampleSet:
        """Stop sampling (one last sample), and total the tree's CPU seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(time.perf_counter() - self._t0)
        self.result.cpu_s = self._gone_cpu + sum(e.cpu_last - e.cpu0 for e in self._procs.values())
        return self.result
