"""Ctrl-C and SIGTERM end a run cleanly: what finished is stored, the run is marked
interrupted, the command says so and exits 128 + the signal, and no worker process is left."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

RUNNER = Path(sys.executable).parent / "runner"


def _default_signals() -> None:
    # a child of a non-interactive shell may start with SIGINT ignored; a user's terminal does not
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"),
                                                   (signal.SIGINT, 130, "SIGINT")])  # fmt: skip
def test_a_signal_ends_the_run_cleanly(tmp_path: Path, sig: int, code: int, name: str) -> None:
    db = tmp_path / "r.duckdb"
    proc = subprocess.Popen(
        [str(RUNNER), "trials", "--engine", "local", "--workload", "noop", "--n", "1000000",
         "--db", str(db), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals,
    )  # fmt: skip
    runner = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and not workers:  # wait until the worker runs trials
        time.sleep(0.5)
        workers = runner.children(recursive=True)
    assert workers, "the runner started no worker process"
    # trials are committed one by one: the write-ahead log grows while they run
    wal, sizes = Path(f"{db}.wal"), []
    while time.monotonic() < deadline and len(set(sizes)) < 4:
        time.sleep(0.3)
        if wal.exists():
            sizes.append(wal.stat().st_size)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"interrupted ({name})" in err and "marked interrupted" in err
    assert "Traceback" not in err
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == [], f"left running: {alive}"
    con = duckdb.connect(str(db), read_only=True)
    try:
        (status,) = con.execute("SELECT status FROM runs").fetchone()
        (n,) = con.execute("SELECT count(*) FROM trials").fetchone()
    finally:
        con.close()
    assert status == "interrupted"
    assert n > 0  # the trials that finished were kept
