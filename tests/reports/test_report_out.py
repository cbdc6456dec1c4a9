"""`report build --out` writes only its own kind of file: never the results database, another
DuckDB file, a device, FIFO or socket, or an existing file of another kind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("out")
    csv = folder / "t.csv"
    rows = [f"{e},knn,{w},{1 + i / 10 + w}" for e in ("dask", "ray") for w in (1, 2)
            for i in range(5)]  # fmt: skip
    csv.write_text("engine,workload,workers,train_s\n" + "\n".join(rows) + "\n")
    db = folder / "r.duckdb"
    proc = run_cli("runner", "import", "csv", csv, "--db", db)
    assert proc.returncode == 0, proc.stderr
    return db


def _refused(proc, needle: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_out_is_never_the_database(small_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    shutil.copy(small_db, db)
    before = db.read_bytes()
    proc = run_cli("report", "build", "--format", "html", "--db", db, "--out", db)
    _refused(proc, "is the results database")
    link = tmp_path / "link.html"
    link.symlink_to(db)
    proc = run_cli("report", "build", "--format", "html", "--db", db, "--out", link)
    _refused(proc, "is the results database")
    other = tmp_path / "other.html"
    shutil.copy(small_db, other)  # a DuckDB file whatever its name
    proc = run_cli("report", "build", "--format", "html", "--db", db, "--out", other)
    _refused(proc, "is a DuckDB database")
    assert db.read_bytes() == before and other.read_bytes() == small_db.read_bytes()


def test_out_is_never_a_device_or_fifo(small_db: Path, tmp_path: Path) -> None:
    proc = run_cli("report", "build", "--format", "html", "--db", small_db, "--out", "/dev/null")
    _refused(proc, "not a regular file")
    assert Path("/dev/null").is_char_device()
    fifo = tmp_path / "pipe.html"
    os.mkfifo(fifo)
    proc = run_cli("report", "build", "--format", "html", "--db", small_db, "--out", fifo,
                   timeout=120)  # fmt: skip
    _refused(proc, "not a regular file")


def test_out_replaces_only_its_own_kind(small_db: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    proc = run_cli("report", "build", "--format", "html", "--db", small_db, "--out", notes)
    _refused(proc, "is not a .html file")
    assert notes.read_text() == "mine"
    old = tmp_path / "report.html"
    old.write_text("an older report")
    proc = run_cli("report", "build", "--format", "html", "--db", small_db, "--out", old)
    assert proc.returncode == 0, proc.stderr
    assert old.read_text().startswith("<!DOCTYPE html") or "<html" in old.read_text()
