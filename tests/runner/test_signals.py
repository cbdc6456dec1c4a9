"""Ctrl-C and SIGTERM end a run cleanly: what finished is stored, the trial in flight is
recorded ``interrupted``, the run is marked interrupted, the command says so (and how to resume)
and exits 128 + the signal, and no worker process is left."""

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
         "--param", "spin=25000000", "--warmup", "0", "--db", str(db), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals,
    )  # fmt: skip
    runner = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and not workers:  # wait until the worker runs trials
        time.sleep(0.5)
        workers = runner.children(recursive=True)
    assert workers, "the runner started no worker process"
    # each trial is journaled the moment it ends; trials of about 2 s: once the first is in the
    # journal, the signal lands early in the second (the runner looks for it every 0.25 s)
    folder = Path(f"{db}.journal")
    while time.monotonic() < deadline and not any(
        b'"e":"trial"' in p.read_bytes() for p in folder.glob("*.jsonl")
    ):
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"interrupted ({name})" in err and "marked interrupted" in err
    assert "to run the rest: runner trials --resume " in err and str(db) in err
    assert "Traceback" not in err
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == [], f"left running: {alive}"
    con = duckdb.connect(str(db), read_only=True)
    try:
        (run_id, status) = con.execute("SELECT run_id, status FROM runs").fetchone()
        (n,) = con.execute("SELECT count(*) FROM trials WHERE status = 'ok'").fetchone()
        cut = con.execute(
            "SELECT wall_s, error, seed FROM trials WHERE status = 'interrupted'"
        ).fetchall()
        (last_seed,) = con.execute("SELECT max(seed) FROM trials WHERE status = 'ok'").fetchone()
    finally:
        con.close()
    assert status == "interrupted"
    assert f"--resume {run_id}" in err
    assert n > 0  # the trials that finished were kept
    # the trial in flight: its wall time so far, the signal named, the next seed
    assert len(cut) == 1, cut
    wall, error, seed = cut[0]
    assert wall > 0 and error.startswith(f"interrupted by {name} after ") and "--resume" in error
    assert seed == last_seed + 1
    assert not Path(f"{db}.journal").exists()  # merged at the end, then deleted
