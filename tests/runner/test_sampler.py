"""Resource sampling over a real process tree."""

from __future__ import annotations

import subprocess
import sys
import time

from runner.sampler import TREE_REFRESH_S, TreeSampler

# A parent that allocates ~150 MB and starts a child that burns CPU for ~1 s and writes 2 MB.
SCRIPT = r"""
import subprocess, sys, time
block = bytearray(150 * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
child = subprocess.Popen([sys.executable, "-c", '''
import os, tempfile, time
t = time.process_time()
while time.process_time() - t < 1.0:
    pass
with tempfile.NamedTemporaryFile() as fh:
    fh.write(os.urandom(2 * 2**20)); fh.flush(); os.fsync(fh.fileno())
time.sleep(0.3)
'''])
child.wait()
time.sleep(0.3)
"""


def test_sampler_sees_the_whole_tree() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT])
    sampler = TreeSampler(proc.pid).start()
    proc.wait(30)
    time.sleep(0.05)
    result = sampler.stop()
    # ~10 Hz over ~2 s
    assert len(result.rows) >= 10
    ts = [row[0] for row in result.rows]
    assert ts == sorted(ts)
    assert result.peak_rss_mb >= 140  # the parent's 150 MB block
    assert 0.8 <= result.cpu_s <= 5.0  # the child's 1 s of CPU, counted though it ended
    # CPU % over time adds up to the CPU seconds, less what the grandchild used before it was
    # first seen (at most a period, or TREE_REFRESH_S when walking the tree is slow)
    missed = TREE_REFRESH_S + 0.1
    assert result.cpu_s - missed <= _cpu_seconds(result.rows) <= result.cpu_s + 0.05
    assert max(row[4] for row in result.rows) >= 2 * 2**20  # the child's disk writes
    assert set(result.metrics()) == {"peak_rss_mb", "cpu_s"}


def test_sampler_on_a_process_that_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    result = TreeSampler(proc.pid).start().stop()
    assert result.peak_rss_mb == 0.0 and result.cpu_s == 0.0


def test_one_sampler_for_many_trials_short_ones_take_no_sample(monkeypatch) -> None:
    import psutil

    from runner import sampler as module

    walks = []
    real_tree = module._tree
    monkeypatch.setattr(module, "_tree", lambda pid: walks.append(pid) or real_tree(pid))
    # a child holding ~60 MB, asleep: its RSS is known from psutil, independently of /proc/stat
    proc = subprocess.Popen(
        [sys.executable, "-c", "b = bytearray(60 * 2**20)\nimport time; time.sleep(60)"]
    )
    try:
        time.sleep(1.0)
        rss_mb = psutil.Process(proc.pid).memory_info().rss / 2**20
        sampler = TreeSampler(proc.pid)
        results = []
        for _ in range(5):  # trials far shorter than one period
            sampler.begin()
            results.append(sampler.end())
        thread = sampler._thread
        assert thread is not None and thread.is_alive()
        assert walks == [proc.pid]  # the tree was walked once, not per trial
        for result in results:
            assert result.rows == []  # no sample
            assert set(result.metrics()) == {"peak_rss_mb", "cpu_s"}
            assert abs(result.peak_rss_mb - rss_mb) < 2
            assert 0 <= result.cpu_s < 0.05
        # a trial longer than a period is sampled at ~10 Hz, by the same thread
        sampler.begin()
        time.sleep(0.55)
        long = sampler.end()
        assert sampler._thread is thread
        assert 4 <= len(long.rows) <= 8  # 5 periodic samples and the last one
        assert all(abs(row[2] - rss_mb) < 2 for row in long.rows)
        sampler.close()
        assert not thread.is_alive()
    finally:
        proc.kill()
        proc.wait()


def test_sampled_cpu_matches_the_process_own_count() -> None:
    # a child that burns ~0.6 s of CPU and prints its own process_time
    code = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6:\n    pass\n"
        "print(time.process_time())\nimport sys; sys.stdout.flush(); time.sleep(5)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        sampler = TreeSampler(proc.pid).start()
        assert proc.stdout is not None
        own = float(proc.stdout.readline())
        result = sampler.stop()
    finally:
        proc.kill()
        proc.wait()
    # what the tree used during the trial: the child's own count, less its start-up before
    # the sampler began (interpreter start, < 0.3 s), at the kernel's tick resolution
    assert own - 0.3 <= result.cpu_s <= own + 0.05
    assert abs(_cpu_seconds(result.rows) - result.cpu_s) < 0.02


def _cpu_seconds(rows: list[tuple]) -> float:
    """The CPU seconds the samples' CPU % add up to (each covers the time since the last)."""
    total, last = 0.0, 0.0
    for row in rows:
        total += row[1] / 100 * (row[0] - last)
        last = row[0]
    return total
