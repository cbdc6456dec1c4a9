"""Schema 4: metrics as columns of ``trials``, params stored once, ``insert_staged``, and the
migration from schema 3 (built here with schema 3's own DDL)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from runner.store import StoreError, TrialRecord, open_store


def _cfg(workers: int) -> dict[str, object]:
    return {"engine": "dask", "workload": "knn", "workers": workers, "k": 5}


def test_params_are_stored_once_per_configuration(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    with open_store(path) as store:
        run = store.begin_run(source="measured")
        for i in range(100):
            workers = 1 + i % 2
            store.append_trial(
                TrialRecord(
                    run,
                    "ok",
                    {"engine": "dask", "workers": workers, "params": _cfg(workers)},
                    {"accuracy": 0.5 + i / 1000, "f1": 0.25 if i % 2 else None},
                )
            )
        con = store.con
        assert con.execute("SELECT count(*) FROM params").fetchone() == (2,)
        text = json.dumps(_cfg(2), sort_keys=True)
        want_id = hashlib.sha256(text.encode()).hexdigest()[:16]
        assert con.execute(
            "SELECT params_id, params::VARCHAR FROM params WHERE params_id = ?", [want_id]
        ).fetchall() == [(want_id, text)]
        # metrics are DOUBLE columns of trials; no long metrics table, no params column
        columns = dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'trials'"
            ).fetchall()
        )
        assert columns["accuracy"] == columns["f1"] == "DOUBLE"
        assert columns["params_id"] == "VARCHAR" and "params" not in columns
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert "metrics" not in tables
        # no index on trials
        assert con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'trials'"
        ).fetchone() == (0,)
        rows = con.execute(
            "SELECT workers, k, accuracy, f1, params::VARCHAR FROM observations "
            "ORDER BY trial_id LIMIT 2"
        ).fetchall()
        assert rows == [
            (1, 5.0, 0.5, None, json.dumps(_cfg(1), sort_keys=True)),
            (2, 5.0, 0.501, 0.25, text),
        ]
        assert store.view_columns()["params"] == "JSON"


def test_view_columns_keep_their_order(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.duckdb") as store:
        run = store.begin_run(source="measured")
        store.append_trial(
            TrialRecord(run, "ok", {"params": {"k": 3, "impl": "x"}}, {"recall": 1.0, "acc": 2.0})
        )
        cols = list(store.view_columns())
    # trial columns (params in its place), source, run_status, metrics sorted, params sorted
    assert cols[cols.index("data_fraction") + 1] == "params"
    assert cols[-6:] == ["source", "run_status", "acc", "recall", "impl", "k"]


def test_metric_and_param_name_checks_still_hold(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.duckdb") as store:
        run = store.begin_run(source="measured")
        store.append_trial(TrialRecord(run, "ok", {"params": {"k": 3}}, {"acc": 1.0}))
        with pytest.raises(StoreError, match="already a param"):
            store.append_trial(TrialRecord(run, "ok", {}, {"k": 1.0}))
        with pytest.raises(StoreError, match="used by the store"):
            store.append_trial(TrialRecord(run, "ok", {}, {"params_id": 1.0}))
        # the failed trials left no column, no catalogue entry, no row
        assert store.count_trials() == 1
        assert "params_id" not in store.observation_columns()
        store.append_trial(TrialRecord(run, "ok", {"params": {"k": "three"}}, {"acc": 2.0}))
        assert store.observation_columns()["k"] == ("param", "VARCHAR")
        got = store.con.execute("SELECT k, acc FROM observations ORDER BY trial_id").fetchall()
    assert got == [("3", 1.0), ("three", 2.0)]


def test_samples_and_curves_in_one_statement_each(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.duckdb") as store:
        run = store.begin_run(source="measured")
        samples = [(0.1 * i, 50.0 + i, 100.0, i, 2 * i, None, 0) for i in range(5)]
        tid = store.append_trial(
            TrialRecord(run, "ok", {}, samples=samples, curves=[(0, "loss", 1, 0.5)])
        )
        got = store.con.execute("SELECT * FROM samples ORDER BY t_s").fetchall()
        assert got == [(tid, *row) for row in samples]
        assert store.con.execute("SELECT * FROM curves").fetchall() == [(tid, 0, "loss", 1, 0.5)]
        with pytest.raises(ValueError, match="samples rows need 7 values"):
            store.append_trial(TrialRecord(run, "ok", {}, samples=[(0.1, 2.0)]))
        assert store.count_trials() == 1


def _stage(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TEMP TABLE staged (engine VARCHAR, workers INTEGER, params JSON, status VARCHAR, "
        "wall_s DOUBLE, line INTEGER, accuracy DOUBLE, cpu_s DOUBLE)"
    )
    rows = [
        ("local", 1, '{"k": 5, "engine": "local"}', "ok", 1.0, 2, 0.9, None),
        ("dask", 2, '{"engine": "dask", "k": 7}', "ok", 2.0, 3, 0.8, 4.0),
        ("local", 1, '{"engine":"local","k":5}', "failed", None, 4, None, None),
        ("dask", 4, None, "timeout", 600.0, 5, None, 1.5),
        ("dask", 2, '{"engine": "dask", "k": "seven"}', "ok", 3.0, 6, 0.7, 5.0),
    ]
    con.executemany("INSERT INTO staged VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def test_insert_staged_copies_rows_in_order_and_registers_columns(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.duckdb") as store:
        run0 = store.begin_run(source="measured")
        first = store.append_trial(TrialRecord(run0, "ok", {"params": {"engine": "local", "k": 5}}))
        with store.transaction():
            run = store.begin_run(source="import:x.csv")
            _stage(store.con)
            n = store.insert_staged("staged", run_id=run, metrics=["accuracy", "cpu_s"])
            store.finish_run(run)
        assert n == 5
        rows = store.con.execute(
            "SELECT trial_id, run_id, engine, workers, status, wall_s, accuracy, cpu_s, k, "
            "params::VARCHAR FROM observations WHERE run_id = ? ORDER BY trial_id",
            [run],
        ).fetchall()
        # params text is canonical (sorted keys), the local configuration is not stored twice
        p_local = json.dumps({"engine": "local", "k": 5}, sort_keys=True)
        p_dask = json.dumps({"engine": "dask", "k": 7}, sort_keys=True)
        p_seven = json.dumps({"engine": "dask", "k": "seven"}, sort_keys=True)
        assert rows == [
            (first + 1, run, "local", 1, "ok", 1.0, 0.9, None, "5", p_local),
            (first + 2, run, "dask", 2, "ok", 2.0, 0.8, 4.0, "7", p_dask),
            (first + 3, run, "local", 1, "failed", None, None, None, "5", p_local),
            (first + 4, run, "dask", 4, "timeout", 600.0, None, 1.5, None, None),
            (first + 5, run, "dask", 2, "ok", 3.0, 0.7, 5.0, "seven", p_seven),
        ]
        assert store.con.execute("SELECT count(*) FROM params").fetchone() == (3,)
        assert store.observation_columns()["k"] == ("param", "VARCHAR")
        assert store.observation_columns()["cpu_s"] == ("metric", "DOUBLE")
        assert "line" not in store.view_columns()
        # the next appended trial continues the sequence
        assert store.append_trial(TrialRecord(run, "ok", {})) == first + 6


def test_insert_staged_is_undone_with_the_callers_transaction(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.duckdb") as store:
        with pytest.raises(RuntimeError, match="later failure"), store.transaction():
            run = store.begin_run(source="import:x.csv")
            _stage(store.con)
            store.insert_staged("staged", run_id=run, metrics=["accuracy", "cpu_s"])
            raise RuntimeError("later failure")
        assert store.count_trials() == 0
        assert store.observation_columns() == {}
        assert store.con.execute("SELECT count(*) FROM params").fetchone() == (0,)
        columns = {r[0] for r in store.con.execute("DESCRIBE trials").fetchall()}
        assert "accuracy" not in columns


def test_insert_staged_refuses_bad_input(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.duckdb") as store:
        run = store.begin_run(source="import:x.csv")
        _stage(store.con)
        with pytest.raises(StoreError, match="no column for metrics \\['recall'\\]"):
            store.insert_staged("staged", run_id=run, metrics=["accuracy", "recall"])
        with pytest.raises(StoreError, match="no table 'nope'"):
            store.insert_staged("nope", run_id=run, metrics=[])
        store.con.execute("UPDATE staged SET status = 'done' WHERE line = 3")
        with pytest.raises(StoreError, match="rows of 'staged' have a status other than .*'done'"):
            store.insert_staged("staged", run_id=run, metrics=["accuracy"])
        store.con.execute("UPDATE staged SET status = 'ok'")
        store.con.execute('ALTER TABLE staged ADD COLUMN "Bad Name" DOUBLE')
        with pytest.raises(StoreError, match="not a snake_case identifier"):
            store.insert_staged("staged", run_id=run, metrics=["Bad Name"])


def test_a_failed_append_of_a_known_configuration_leaves_nothing(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.duckdb") as store:
        run = store.begin_run(source="measured")
        first = store.append_trial(TrialRecord(run, "ok", {"params": {"k": 1}}, {"acc": 1.0}))
        with pytest.raises(duckdb.ConversionException):
            store.append_trial(
                TrialRecord(run, "ok", {"workers": "many", "params": {"k": 1}}, {"acc": 2.0})
            )
        second = store.append_trial(TrialRecord(run, "ok", {"params": {"k": 1}}, {"acc": 3.0}))
        rows = store.con.execute("SELECT trial_id, k, acc FROM observations ORDER BY 1").fetchall()
    assert [r[1:] for r in rows] == [(1.0, 1.0), (1.0, 3.0)]
    assert [r[0] for r in rows] == [first, second]


def test_insert_staged_with_params_keys_from_a_view(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.duckdb") as store:
        con = store.con
        con.execute(
            "CREATE TEMP TABLE raw AS SELECT * FROM (VALUES (1, 'ok', 0.5), (2, 'failed', NULL), "
            "(1, 'ok', 0.7), (NULL, 'timeout', 0.1)) t(key, status, accuracy)"
        )
        con.execute("CREATE TEMP VIEW v AS SELECT key AS params_id, status, accuracy FROM raw")
        params = {1: {"k": 5}, 2: {"k": "x", "impl": "sk"}}
        with store.transaction():
            run = store.begin_run(source="import:x.csv")
            n = store.insert_staged("v", run_id=run, metrics=["accuracy"], params=params)
        assert n == 4
        got = con.execute(
            "SELECT status, accuracy, params::VARCHAR, k, impl FROM observations ORDER BY trial_id"
        ).fetchall()
        one = json.dumps({"k": 5}, sort_keys=True)
        two = json.dumps({"impl": "sk", "k": "x"}, sort_keys=True)
        assert got == [
            ("ok", 0.5, one, "5", None),
            ("failed", None, two, "x", "sk"),
            ("ok", 0.7, one, "5", None),
            ("timeout", 0.1, None, None, None),
        ]
        # a key params does not name; an id-like key that is not stored
        with pytest.raises(StoreError, match="a params_id of 'v' is not a key of params: 2"):
            store.insert_staged("v", run_id=run, metrics=["accuracy"], params={1: {"k": 5}})
        con.execute("CREATE TEMP VIEW w AS SELECT '0123456789abcdef' AS params_id, 'ok' status")
        with pytest.raises(StoreError, match="1 rows of 'w' have a params_id that is not a key"):
            store.insert_staged("w", run_id=run, metrics=[], params={})
        with pytest.raises(StoreError, match="no params_id column"):
            store.insert_staged("raw", run_id=run, metrics=[], params={})


def test_run_status_is_the_run_s_status_and_an_older_view_gains_it_at_a_writable_open(
    tmp_path: Path,
) -> None:
    """The view's ``run_status`` is ``runs.status`` of each trial's run; a schema-4 file whose
    view predates it keeps its view in a read-only open (nothing written) and gains the column
    at the next writable open; a metric of that name is skipped like one named ``source``."""
    db = tmp_path / "r.duckdb"
    with open_store(db) as store:
        done = store.begin_run(source="measured")
        store.append_trials([TrialRecord(done, "ok", {"repetition": i}) for i in range(3)])
        store.finish_run(done)
        cut = store.begin_run(source="measured")
        store.append_trials([TrialRecord(cut, "ok", {"repetition": i}) for i in range(2)])
        store.finish_run(cut, "killed")
        got = store.con.execute(
            "SELECT run_id, run_status, count(*) FROM observations GROUP BY ALL ORDER BY 3"
        ).fetchall()
        assert got == [(cut, "killed", 2), (done, "finished", 3)]
        # a metric of that name is skipped, as one named source is: the view shows the run's
        store.append_trial(TrialRecord(done, "ok", {"repetition": 9}, {"run_status": 1.0}))
        assert "run_status" not in store.observation_columns()
        got = store.con.execute("SELECT run_status FROM observations WHERE repetition = 9")
        assert got.fetchall() == [("finished",)]
        store.con.execute("DELETE FROM trials WHERE repetition = 9")
        # the view as trialkit wrote it before run_status
        sql = store.con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'observations'"
        ).fetchone()[0]
        store.con.execute(sql.replace(", r.status AS run_status", "").replace(
            "CREATE VIEW", "CREATE OR REPLACE VIEW"))  # fmt: skip
        assert "run_status" not in store.view_columns()
    before = db.read_bytes()
    with open_store(db, read_only=True) as store:
        assert "run_status" not in store.view_columns()
    assert db.read_bytes() == before
    with open_store(db) as store:
        assert list(store.view_columns())[-2:] == ["source", "run_status"]
        n = store.con.execute(
            "SELECT count(*) FROM observations WHERE run_status = 'finished'"
        ).fetchone()[0]
    assert n == 3
