"""The results store: schema versions, migration, and the per-epoch ``curves`` table."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pytest

from runner.store import (
    SCHEMA_VERSION,
    StoreError,
    TrialRecord,
    curve_rows,
    open_store,
)


def _tables(path: Path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    finally:
        con.close()


def test_new_database_has_every_table(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    open_store(path).close()
    assert {"meta", "runs", "setups", "trials", "metrics", "samples", "curves", "prices"} <= (
        _tables(path)
    )
    with open_store(path, read_only=True) as store:
        assert store.schema_version() == SCHEMA_VERSION == 3


def _as_version_1(path: Path) -> None:
    """Make a database look like one written before ``curves`` existed (schema version 1)."""
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE curves")
    _drop_version_3(con)
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()


def _drop_version_3(con: duckdb.DuckDBPyConnection) -> None:
    """Remove what schema version 3 added: rounds, setups' load, ``stops``."""
    con.execute("DROP VIEW IF EXISTS observations")
    con.execute("ALTER TABLE trials DROP COLUMN round")
    con.execute("ALTER TABLE setups DROP COLUMN round")
    con.execute("ALTER TABLE setups DROP COLUMN load")
    con.execute("DROP TABLE stops")


def test_version_1_database_is_migrated_and_keeps_its_trials(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with open_store(path) as store:
        run = store.begin_run(source="measured")
        store.append_trial(
            TrialRecord(run, "ok", {"engine": "local", "train_s": 1.5}, {"accuracy": 0.9})
        )
    _as_version_1(path)
    assert "curves" not in _tables(path)
    # a read-only open migrates first, then reads
    with open_store(path, read_only=True) as store:
        assert store.schema_version() == 3
        rows = store.con.execute("SELECT engine, train_s, accuracy FROM observations").fetchall()
    assert rows == [("local", 1.5, 0.9)]
    assert "curves" in _tables(path)


def test_version_2_database_gets_rounds_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    with open_store(path) as store:
        run = store.begin_run(source="measured")
        store.append_trial(TrialRecord(run, "ok", {"engine": "local", "train_s": 2.0}))
    con = duckdb.connect(str(path))
    _drop_version_3(con)
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    with open_store(path) as store:
        assert store.schema_version() == 3
        assert store.con.execute("SELECT engine, round FROM observations").fetchall() == [
            ("local", None)
        ]
        store.append_trial(TrialRecord(run, "ok", {"engine": "dask", "round": 2}))
        store.add_stop(run_id=run, config_id="c", n_ok=1, rounds=1, reason="n")
        assert store.con.execute("SELECT max(round) FROM trials").fetchone() == (2,)
        assert store.con.execute("SELECT reason FROM stops").fetchall() == [("n",)]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    open_store(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="schema version 99, newer than this trialkit"):
        open_store(path, read_only=True)


def test_curve_rows_from_one_history_and_from_several_trainers() -> None:
    one = {"loss": [0.9, 0.5], "val_accuracy": [0.7, float("nan")]}
    assert curve_rows(one) == [
        (0, "loss", 1, 0.9),
        (0, "loss", 2, 0.5),
        (0, "val_accuracy", 1, 0.7),
    ]
    two = [{"loss": [1.0]}, {"loss": [2.0, math.inf, 3.0]}]
    assert curve_rows(two) == [(0, "loss", 1, 1.0), (1, "loss", 1, 2.0), (1, "loss", 3, 3.0)]
    assert curve_rows(None) == [] and curve_rows({}) == []


def test_curves_are_appended_with_their_trial_and_rolled_back_with_it(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    with open_store(path) as store:
        run = store.begin_run(source="measured")
        curves = curve_rows({"loss": [0.8, 0.4, 0.2], "accuracy": [0.5, 0.7, 0.9]})
        tid = store.append_trial(TrialRecord(run, "ok", {"engine": "tensorflow"}, curves=curves))
        bad = TrialRecord(run, "ok", {"engine": "x"}, {"Not A Name": 1.0}, curves=curves)
        with pytest.raises(StoreError, match="not a snake_case identifier"):
            store.append_trial(bad)
        got = store.con.execute(
            "SELECT trial_id, part, name, step, value FROM curves ORDER BY name, step"
        ).fetchall()
    assert got == [
        (tid, 0, "accuracy", 1, 0.5),
        (tid, 0, "accuracy", 2, 0.7),
        (tid, 0, "accuracy", 3, 0.9),
        (tid, 0, "loss", 1, 0.8),
        (tid, 0, "loss", 2, 0.4),
        (tid, 0, "loss", 3, 0.2),
    ]
