"""Results databases holding runs that did not finish, for the tests of what ``analyze`` and
``report`` say about them: one written through the store API (any status, any run id), one by
the real runner killed with SIGKILL mid-way."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import psutil

from runner.store import TrialRecord, open_store

RUNNER = Path(sys.executable).parent / "runner"
#: the real runner's quick finished run, then the long one that is killed
FINISHED_ARGS = ["--engine", "local", "--workload", "noop", "--param", "spin=0,20000",
                 "--n", "5", "--seed", "1", "-q"]  # fmt: skip
LONG_ARGS = ["--engine", "local", "--workload", "noop", "--param", "spin=0,20000",
             "--n", "100000", "--seed", "2", "-q"]  # fmt: skip
START = datetime(2026, 12, 7, 2, 0, 0)


def add_run(
    db: Path,
    run_id: str,
    status: str,
    n: int,
    *,
    source: str = "measured",
    engine: str = "local",
    error: str | None = None,
    signal: str | None = None,
    minute: int = 0,
) -> None:
    """A run of ``n`` ok trials (train_s 1..n, started a second apart from ``START`` plus
    ``minute``), ended ``status`` (``running``: not ended); ``error``: its recorded end error
    (the journal state in ``meta``); ``signal``: one more trial ``interrupted`` by it."""
    with open_store(db) as store:
        t0 = START + timedelta(minutes=minute)
        store.begin_run(source=source, run_id=run_id, started_at=t0)

        def values(i: int, **more: object) -> dict:
            return {"experiment": "x", "engine": engine, "workload": "noop", "dataset": "digits",
                    "workers": 1, "warmup": False, "repetition": i,
                    "started_at": t0 + timedelta(seconds=i), **more}  # fmt: skip

        records = [
            TrialRecord(run_id, "ok", values(i, train_s=float(i), wall_s=float(i) + 0.5))
            for i in range(1, n + 1)
        ]
        if signal is not None:
            error_text = f"interrupted by {signal} after 0.250 s; resume the run"
            records.append(TrialRecord(run_id, "interrupted", values(n + 1, error=error_text)))
        store.append_trials(records)
        if error is not None:
            store.set_journal_state(run_id, {"seq": 0, "setups": {}, "error": error})
        if status != "running":
            store.finish_run(run_id, status)


def db_count(db: Path, sql: str, params: list | None = None) -> int:
    """One number from the database file, read with DuckDB directly (not through trialkit)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute(sql, params or []).fetchone()[0])
    finally:
        con.close()


def _trials_of_new_run(db: Path, known: set[str]) -> tuple[str | None, int]:
    """(run id, ok trials) of the run not in ``known``, as far as merged; None when none yet."""
    if not db.exists():
        return None, 0
    try:
        with open_store(db, read_only=True, wait=2) as store:
            rows = store.con.execute(
                "SELECT run_id, count(*) FILTER (WHERE t.status = 'ok' AND NOT t.warmup) FROM runs "
                "LEFT JOIN trials t USING (run_id) GROUP BY run_id"
            ).fetchall()
    except Exception:  # noqa: BLE001 - busy or mid-merge: try again
        return None, 0
    for run_id, n in rows:
        if run_id not in known:
            return str(run_id), int(n)
    return None, 0


def make_killed_db(db: Path, *, min_trials: int = 30, timeout: float = 180) -> tuple[str, str]:
    """A finished run of the real runner, then a long one SIGKILLed once at least
    ``min_trials`` of its trials are merged into ``db`` (its run stays ``running``; its
    journal keeps what it did after the last merge). Returns (finished run id, killed run id)."""
    done = subprocess.run([str(RUNNER), "trials", *FINISHED_ARGS, "--db", str(db)],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        finished = str(con.execute("SELECT run_id FROM runs").fetchone()[0])
    finally:
        con.close()
    proc = subprocess.Popen([str(RUNNER), "trials", *LONG_ARGS, "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    runner = psutil.Process(proc.pid)
    killed = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            killed, n = _trials_of_new_run(db, {finished})
            if killed is not None and n >= min_trials:
                break
            assert proc.poll() is None, "the long run ended before it was killed"
            time.sleep(0.5)
        else:
            raise AssertionError(f"no {min_trials} merged trials within {timeout} s")
    finally:
        try:
            tree = runner.children(recursive=True)
        except psutil.Error:
            tree = []
        proc.kill()
        proc.wait()
        for child in tree:  # its worker
            with contextlib.suppress(psutil.Error):
                child.kill()
    assert killed is not None
    return finished, killed
