"""A --db that is not a usable results file: one line naming the real cause, exit 2, nothing
written, no hang."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_cli

COMMANDS = [
    ["analyze", "summary"],
    ["report", "build", "--format", "html", "--out", "{tmp}/r.html"],
    ["runner", "trials", "--engine", "local", "--workload", "noop", "--n", "1", "--quiet"],
    ["runner", "import", "csv", "{csv}"],
]


def _run(tmp: Path, command: list[str], db: Path):
    csv = tmp / "t.csv"
    csv.write_text("engine,workload,train_s\nlocal,knn,1.0\n")
    args = [a.format(tmp=tmp, csv=csv) for a in command]
    return run_cli(args[0], *args[1:], "--db", db, timeout=120)


def _one_line(proc, needle: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] + " " + c[1] for c in COMMANDS])
def test_a_fifo_is_refused_without_hanging(tmp_path: Path, command: list[str]) -> None:
    fifo = tmp_path / "results.duckdb"
    os.mkfifo(fifo)
    proc = _run(tmp_path, command, fifo)  # run_cli's timeout fails the test on a hang
    _one_line(proc, "is not a regular file")
    assert not (tmp_path / "r.html").exists()


def test_a_malformed_schema_version_is_named(tmp_path: Path) -> None:
    db = tmp_path / "bad.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', 'three')")
    con.close()
    before = db.read_bytes()
    for command in COMMANDS:
        proc = _run(tmp_path, command, db)
        _one_line(proc, "malformed schema version")
    assert db.read_bytes() == before


def test_a_damaged_file_is_not_called_in_use(tmp_path: Path) -> None:
    csv = tmp_path / "many.csv"
    rows = [f"local,knn,{1 + i % 97 / 100},{i % 13}" for i in range(20000)]
    csv.write_text("engine,workload,train_s,accuracy\n" + "\n".join(rows) + "\n")
    good = tmp_path / "good.duckdb"
    assert run_cli("runner", "import", "csv", csv, "--db", good).returncode == 0
    db = tmp_path / "damaged.duckdb"
    shutil.copy(good, db)
    data = bytearray(db.read_bytes())
    # keep the file's headers (its first 12 KiB), overwrite every block after them: DuckDB's
    # checksums fail on read
    data[12288:] = b"\xa5" * (len(data) - 12288)
    db.write_bytes(bytes(data))
    proc = run_cli("analyze", "summary", "--db", db, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "in use by another process" not in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
