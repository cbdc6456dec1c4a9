"""bench/analysis.py make-db: inserting in chunks (each its own transaction) gives the same
database as one INSERT for the same seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]


def _make(path: Path, *extra: str) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "analysis.py"), "make-db", str(path)]
    subprocess.run([*cmd, "--trials", "30000", "--seed", "3", *extra], check=True, cwd=ROOT)


def test_chunked_make_db_equals_one_piece(tmp_path: Path) -> None:
    one, chunked = tmp_path / "one.duckdb", tmp_path / "chunked.duckdb"
    _make(one)
    _make(chunked, "--chunk", "10000")
    con = duckdb.connect(str(one), read_only=True)
    con.execute(f"ATTACH '{chunked}' AS c (READ_ONLY)")
    # run_id is a fresh id per make-db; every other column must match row for row
    cols = "* EXCLUDE (run_id)"
    a = f"SELECT {cols} FROM observations"
    b = f"SELECT {cols} FROM c.observations"
    assert con.execute("SELECT count(*) FROM observations").fetchone() == (30000,)
    assert con.execute("SELECT count(*) FROM c.observations").fetchone() == (30000,)
    assert con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone() == (0,)
    assert con.execute(f"SELECT count(*) FROM ({b} EXCEPT ALL {a})").fetchone() == (0,)
    # the chunks really were several INSERTs: ids continue across them without a gap
    ids = con.execute("SELECT min(trial_id), max(trial_id) FROM c.trials").fetchone()
    assert ids[1] - ids[0] + 1 == 30000
    con.close()
