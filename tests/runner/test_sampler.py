"""Resource sampling over a real process tree."""

from __future__ import annotations

import subprocess
import sys
import time

from runner.sampler import TreeSampler

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
    assert max(row[1] for row in result.rows) >= 50  # a busy core shows as CPU %
    assert max(row[4] for row in result.rows) >= 2 * 2**20  # the child's disk writes
    assert set(result.metrics()) == {"peak_rss_mb", "cpu_s"}


def test_sampler_on_a_process_that_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    result = TreeSampler(proc.pid).start().stop()
    assert result.peak_rss_mb == 0.0 and result.cpu_s == 0.0
