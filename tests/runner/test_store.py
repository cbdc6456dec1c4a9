"""The results store: schema versions, migration, and the per-epoch ``curves`` table."""

from __future__ import annotations

import json
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
    tables = _tables(path)
    assert {"meta", "runs", "setups", "trials", "params", "samples", "curves", "prices"} <= tables
    assert "metrics" not in tables
    with open_store(path, read_only=True) as store:
        assert store.schema_version() == SCHEMA_VERSION == 4


#: Schema 3 as trialkit 3 created it (trials with a PRIMARY KEY and a params JSON column, the
#: long metrics table), written out here rather than imported from old code.
_V3_DDL = [
    "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    """CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP, argv JSON, spec JSON, env JSON, source VARCHAR NOT NULL,
        status VARCHAR NOT NULL DEFAULT 'running')""",
    """CREATE TABLE setups (setup_id BIGINT PRIMARY KEY, run_id VARCHAR NOT NULL,
        config_id VARCHAR NOT NULL, params JSON, started_at TIMESTAMP NOT NULL, setup_s DOUBLE,
        load_s DOUBLE, status VARCHAR NOT NULL, error VARCHAR, round INTEGER, load JSON)""",
    "CREATE SEQUENCE setup_id_seq START 1",
    "CREATE SEQUENCE trial_id_seq START 1",
    """CREATE TABLE trials (trial_id BIGINT PRIMARY KEY, run_id VARCHAR, config_id VARCHAR,
        experiment VARCHAR, engine VARCHAR, workload VARCHAR, dataset VARCHAR, workers INTEGER,
        threads_per_worker INTEGER, memory_gb DOUBLE, batch_size INTEGER, epochs INTEGER,
        data_fraction DOUBLE, params JSON, repetition INTEGER, round INTEGER, warmup BOOLEAN,
        seed BIGINT, status VARCHAR, error VARCHAR, started_at TIMESTAMP, wall_s DOUBLE,
        setup_s DOUBLE, load_s DOUBLE, train_s DOUBLE, infer_s DOUBLE)""",
    """CREATE TABLE metrics (trial_id BIGINT NOT NULL, name VARCHAR NOT NULL, value DOUBLE,
        PRIMARY KEY (trial_id, name))""",
    """CREATE TABLE samples (trial_id BIGINT NOT NULL, t_s DOUBLE NOT NULL, cpu_percent DOUBLE,
        rss_mb DOUBLE, read_bytes BIGINT, write_bytes BIGINT, net_bytes_recv BIGINT,
        net_bytes_sent BIGINT)""",
    """CREATE TABLE curves (trial_id BIGINT NOT NULL, part INTEGER NOT NULL,
        name VARCHAR NOT NULL, step INTEGER NOT NULL, value DOUBLE,
        PRIMARY KEY (trial_id, part, name, step))""",
    """CREATE TABLE stops (run_id VARCHAR NOT NULL, config_id VARCHAR NOT NULL,
        n_ok INTEGER NOT NULL, rounds INTEGER NOT NULL, reason VARCHAR NOT NULL, metric VARCHAR,
        statistic VARCHAR, estimate DOUBLE, ci_low DOUBLE, ci_high DOUBLE,
        rel_half_width DOUBLE, target DOUBLE, PRIMARY KEY (run_id, config_id))""",
    """CREATE TABLE prices (name VARCHAR NOT NULL, vcpu INTEGER, memory_gb DOUBLE,
        usd_per_hour DOUBLE NOT NULL, source VARCHAR NOT NULL)""",
    """CREATE TABLE observation_columns (name VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL,
        type VARCHAR NOT NULL)""",
    "INSERT INTO meta VALUES ('schema_version', '3')",
]
_P1 = '{"engine": "local", "impl": "sklearn", "k": 5}'
_P2 = '{"engine": "dask", "k": 7}'
#: (trial_id, engine, workers, params, round, status, wall_s, {metric: value})
_V3_TRIALS = [
    (1, "local", 1, _P1, 1, "ok", 1.25, {"accuracy": 0.9, "f1": 0.8, "wall_s": 99.0}),
    (2, "local", 1, _P1, 1, "ok", 1.5, {"accuracy": 0.95}),
    (3, "dask", 2, _P2, 2, "failed", None, {}),
    (4, "dask", 4, None, None, "ok", 3.0, {"f1": 0.7, "accuracy": -1e300}),
    (5, "dask", 2, _P2, 2, "ok", 2.0, {"accuracy": 0.5, "f1": 1e-300}),
]


def _make_v3(path: Path) -> None:
    """A schema-3 database holding one run of :data:`_V3_TRIALS`, with samples, curves, a
    setup and a stop."""
    con = duckdb.connect(str(path))
    for ddl in _V3_DDL:
        con.execute(ddl)
    con.execute(
        "INSERT INTO runs VALUES ('r1', TIMESTAMP '2025-01-02 03:04:05', NULL, '[]', '{}', "
        "'{}', 'measured', 'finished')"
    )
    for tid, engine, workers, params, rnd, status, wall, metrics in _V3_TRIALS:
        con.execute("SELECT nextval('trial_id_seq')")
        con.execute(
            "INSERT INTO trials (trial_id, run_id, engine, workers, params, round, status, "
            "wall_s) VALUES (?, 'r1', ?, ?, ?, ?, ?, ?)",
            [tid, engine, workers, params, rnd, status, wall],
        )
        for name, value in metrics.items():
            con.execute("INSERT INTO metrics VALUES (?, ?, ?)", [tid, name, value])
    con.execute(
        "INSERT INTO observation_columns VALUES ('accuracy', 'metric', 'DOUBLE'), "
        "('f1', 'metric', 'DOUBLE'), ('impl', 'param', 'VARCHAR'), ('k', 'param', 'DOUBLE')"
    )
    con.execute("INSERT INTO samples VALUES (1, 0.1, 50.0, 10.0, 1, 2, 3, 4)")
    con.execute("INSERT INTO curves VALUES (1, 0, 'loss', 1, 0.5)")
    con.execute(
        "INSERT INTO setups VALUES (nextval('setup_id_seq'), 'r1', 'c1', '{}', "
        "TIMESTAMP '2025-01-02 03:04:05', 0.5, 0.1, 'ok', NULL, 1, NULL)"
    )
    con.execute(
        "INSERT INTO stops (run_id, config_id, n_ok, rounds, reason) VALUES ('r1', 'c1', 2, 1, 'n')"
    )
    con.close()


def _expected_v3_observations() -> list[tuple[object, ...]]:
    out = []
    for tid, engine, workers, params, rnd, status, wall, metrics in _V3_TRIALS:
        p = json.loads(params) if params else {}
        out.append(
            (
                tid,
                engine,
                workers,
                json.dumps(p, sort_keys=True) if params else None,
                rnd,
                status,
                wall,
                "measured",
                metrics.get("accuracy"),
                metrics.get("f1"),
                p.get("impl"),
                None if "k" not in p else float(p["k"]),
            )
        )
    return out


_V3_QUERY = (
    "SELECT trial_id, engine, workers, params::VARCHAR, round, status, wall_s, source, "
    "accuracy, f1, impl, k FROM observations ORDER BY trial_id"
)


def test_version_3_database_is_migrated_keeping_every_value(tmp_path: Path) -> None:
    path = tmp_path / "v3.duckdb"
    _make_v3(path)
    with open_store(path) as store:
        assert store.schema_version() == 4
        assert store.con.execute(_V3_QUERY).fetchall() == _expected_v3_observations()
        assert store.con.execute("SELECT count(*) FROM params").fetchone() == (2,)
        tables = _tables_of(store.con)
        assert "metrics" not in tables and "trials_v4" not in tables
        assert store.con.execute("SELECT * FROM samples").fetchall() == [
            (1, 0.1, 50.0, 10.0, 1, 2, 3, 4)
        ]
        assert store.con.execute("SELECT * FROM curves").fetchall() == [(1, 0, "loss", 1, 0.5)]
        assert store.con.execute("SELECT reason FROM stops").fetchall() == [("n",)]
        # the sequence goes on after the migrated trials; old and new params share rows
        new = store.append_trial(
            TrialRecord("r1", "ok", {"params": json.loads(_P2)}, {"accuracy": 0.25})
        )
        assert new == 6
        assert store.con.execute("SELECT count(*) FROM params").fetchone() == (2,)
        assert store.con.execute(
            "SELECT k, accuracy FROM observations WHERE trial_id = 6"
        ).fetchall() == [(7.0, 0.25)]


def test_version_3_database_opened_read_only_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "v3.duckdb"
    _make_v3(path)
    before = path.read_bytes()
    with open_store(path, read_only=True) as store:
        # not migrated: the current shape through temporary views (tests/runner/
        # test_readonly_schema.py has the rest)
        assert store.read_only and store.schema_version() == 3 and store.legacy_version == 3
        assert store.con.execute(_V3_QUERY).fetchall() == _expected_v3_observations()
    assert path.read_bytes() == before


def test_failed_migration_leaves_the_file_at_version_3(tmp_path: Path) -> None:
    path = tmp_path / "v3.duckdb"
    _make_v3(path)
    con = duckdb.connect(str(path))
    # a stray table where the migration creates ``params``: its inserts fail halfway
    con.execute("CREATE TABLE params (a INTEGER, b INTEGER, c INTEGER)")
    con.close()
    with pytest.raises(duckdb.Error):
        open_store(path)
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT value FROM meta").fetchone() == ("3",)
    assert con.execute("SELECT count(*) FROM metrics").fetchone() == (8,)
    con.close()


def _tables_of(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _as_version_1(path: Path) -> None:
    """Make a schema-3 database look like one written before ``curves`` existed (version 1)."""
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE curves")
    _drop_version_3(con)
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()


def _drop_version_3(con: duckdb.DuckDBPyConnection) -> None:
    """Remove what schema version 3 added: rounds, setups' load, ``stops``."""
    con.execute("ALTER TABLE trials DROP COLUMN round")
    con.execute("ALTER TABLE setups DROP COLUMN round")
    con.execute("ALTER TABLE setups DROP COLUMN load")
    con.execute("DROP TABLE stops")


def test_version_1_database_is_migrated_and_keeps_its_trials(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _make_v3(path)
    _as_version_1(path)
    assert "curves" not in _tables(path)
    expected = [
        (e, wall, m.get("accuracy"), None if p is None else float(json.loads(p)["k"]), None)
        for _, e, _, p, _, _, wall, m in _V3_TRIALS
    ]
    query = "SELECT engine, wall_s, accuracy, k, round FROM observations ORDER BY trial_id"
    # a read-only open reads it as it is (no curves table is written)
    with open_store(path, read_only=True) as store:
        assert store.schema_version() == 1
        assert store.con.execute(query).fetchall() == expected
        assert store.con.execute("SELECT count(*) FROM curves").fetchone() == (0,)
    assert "curves" not in _tables(path)
    # a writable open migrates
    with open_store(path) as store:
        assert store.schema_version() == 4
        assert store.con.execute(query).fetchall() == expected
    assert "curves" in _tables(path)


def test_version_2_database_gets_rounds_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    _make_v3(path)
    con = duckdb.connect(str(path))
    _drop_version_3(con)
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    with open_store(path) as store:
        assert store.schema_version() == 4
        assert store.con.execute(
            "SELECT DISTINCT engine, round FROM observations ORDER BY 1"
        ).fetchall() == [("dask", None), ("local", None)]
        run = "r1"
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
