"""Two `runner trials` on one database at once, with `analyze summary` (and `report build`)
reading it in a loop the whole time: every reader succeeds and sees a count that never goes
down, and in the end every trial of every run is there, once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb

from runner.store import open_store
from tests.conftest import run_cli

BIN = Path(sys.executable).parent
#: seconds the writers keep starting runs (the readers read all along; the last runs end later)
WRITE_S = 35.0
N = 40  # two configurations x 40 trials per run


def _runner(db: Path, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "runner"), "trials", "--engine", "local", "--workload", "noop", "--param",
         "spin=0,30000", "--n", str(N), "--warmup", "0", "--rounds", "1", "--seed", str(seed),
         "--db", str(db), "-q", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _count(db: Path) -> int:
    proc = run_cli("analyze", "summary", "--db", db, "--format", "json", "--bootstrap", "0",
                   timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return sum(int(row["n"]) for row in json.loads(proc.stdout)["rows"])


def test_two_runners_and_readers_share_one_database(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    open_store(db).close()
    counts: list[int] = []
    failures: list[str] = []
    writing = threading.Event()
    writing.set()

    def read() -> None:
        html = tmp_path / "report.html"
        reported = False
        while writing.is_set():
            try:
                counts.append(_count(db))
                if counts[-1] and not reported:  # a whole report too, once, mid-run
                    reported = True
                    proc = run_cli("report", "build", "--format", "html", "--db", db, "--out",
                                   html, "-q", timeout=300)  # fmt: skip
                    if proc.returncode != 0 or not html.exists() or not html.stat().st_size:
                        failures.append(f"report build: {proc.returncode} {proc.stderr[-500:]}")
            except AssertionError as exc:
                failures.append(f"analyze summary: {exc}")

    reader = threading.Thread(target=read)
    reader.start()
    expected, runs = 0, 0
    t0 = time.monotonic()
    slots: list[subprocess.Popen[str] | None] = [_runner(db, 1), _runner(db, 2)]
    seed = 2
    try:  # two runners at once all along: a new one starts when one ends, until WRITE_S
        while any(p is not None for p in slots):
            time.sleep(0.2)
            for i, proc in enumerate(slots):
                if proc is None or proc.poll() is None:
                    continue
                out, err = proc.communicate()
                assert proc.returncode == 0, err
                result = json.loads(out)
                assert result["n_ok"] == 2 * N and "stayed busy" not in " ".join(result["notes"])
                expected += result["n_ok"]
                runs += 1
                slots[i] = (
                    _runner(db, seed := seed + 1) if time.monotonic() - t0 < WRITE_S else None
                )
    finally:
        for proc in slots:
            if proc is not None and proc.poll() is None:
                proc.kill()
        writing.clear()
        reader.join(timeout=300)
    assert failures == []
    assert (tmp_path / "report.html").exists()
    assert len(counts) >= 5, counts
    assert counts == sorted(counts), counts  # never fewer than before
    assert _count(db) == expected
    con = duckdb.connect(str(db), read_only=True)
    try:
        per_run = con.execute(
            "SELECT r.status, count(t.trial_id), count(DISTINCT (t.config_id, t.repetition)) "
            "FROM runs r LEFT JOIN trials t USING (run_id) GROUP BY r.run_id, r.status"
        ).fetchall()
    finally:
        con.close()
    assert len(per_run) == runs >= 4
    assert all(row == ("finished", 2 * N, 2 * N) for row in per_run), per_run
    assert not Path(f"{db}.journal").exists()
    print(f"{runs} runs, {expected} trials, {len(counts)} reads: {counts}")
