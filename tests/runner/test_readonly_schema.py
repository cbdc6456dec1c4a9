"""A read-only open of an older schema (1, 2, 3) writes nothing: the file's bytes stay as they
were (also when the file is read-only), and analysis and reports read the same numbers as from a
migrated copy."""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
from pathlib import Path

import duckdb
import pytest

from runner.store import SCHEMA_VERSION, open_store
from tests.conftest import run_cli
from tests.runner.test_store import _V3_DDL, _drop_version_3

#: (engine, workers, params, train_s per repetition, accuracy per repetition): written as raw
#: rows of the old tables, and the reference the observations are checked against.
_CONFIGS = [
    (
        "local",
        1,
        {"impl": "sklearn", "k": 5},
        [1.0, 1.5, 1.25, 2.0, 1.75],
        [0.9, 0.8, 0.85, 0.9, 1],
    ),
    ("dask", 2, {"impl": "dask", "k": 7}, [3.0, 2.5, 2.75, 4.0, 3.5], [0.7, 0.75, 0.8, 0.7, 0.65]),
    ("dask", 4, None, [2.0, 2.25, 1.75, 2.5, 3.25], [0.6, 0.55, 0.5, 0.6, 0.7]),
]


def _make_old(path: Path, version: int) -> list[tuple[object, ...]]:
    """A schema-``version`` file built with schema 3's DDL (then stripped to 2 or 1); returns the
    observations it holds as (trial_id, engine, workers, params JSON, train_s, accuracy, k,
    impl) rows."""
    con = duckdb.connect(str(path))
    for ddl in _V3_DDL:
        con.execute(ddl)
    con.execute(
        "INSERT INTO runs VALUES ('r1', TIMESTAMP '2025-01-02 03:04:05', NULL, '[]', '{}', "
        "'{}', 'measured', 'finished')"
    )
    con.execute(
        "INSERT INTO observation_columns VALUES ('accuracy', 'metric', 'DOUBLE'), "
        "('impl', 'param', 'VARCHAR'), ('k', 'param', 'DOUBLE')"
    )
    expected = []
    tid = 0
    for engine, workers, params, trains, accs in _CONFIGS:
        text = None if params is None else json.dumps(params, sort_keys=True)
        for rep, (train, acc) in enumerate(zip(trains, accs, strict=True), 1):
            tid = con.execute("SELECT nextval('trial_id_seq')").fetchone()[0]
            con.execute(
                "INSERT INTO trials (trial_id, run_id, config_id, experiment, engine, workload, "
                "dataset, workers, params, repetition, round, warmup, status, wall_s, train_s) "
                "VALUES (?, 'r1', ?, 'e1', ?, 'knn', 'iris', ?, ?, ?, 1, false, 'ok', ?, ?)",
                [tid, f"{engine}{workers}", engine, workers, text, rep, train + 0.5, train],
            )
            con.execute("INSERT INTO metrics VALUES (?, 'accuracy', ?)", [tid, float(acc)])
            # a name only the metrics table knows: the migration (and the views) add it
            con.execute("INSERT INTO metrics VALUES (?, 'loss', ?)", [tid, 1.0 - acc])
            p = params or {}
            expected.append(
                (
                    tid,
                    engine,
                    workers,
                    text,
                    train,
                    float(acc),
                    1.0 - acc,
                    p.get("k"),
                    p.get("impl"),
                )
            )
    con.execute("INSERT INTO samples VALUES (1, 0.1, 50.0, 10.0, 1, 2, 3, 4)")
    con.execute("INSERT INTO curves VALUES (1, 0, 'loss', 1, 0.5)")
    con.execute(
        "INSERT INTO setups VALUES (nextval('setup_id_seq'), 'r1', 'local1', '{}', "
        "TIMESTAMP '2025-01-02 03:04:05', 0.5, 0.1, 'ok', NULL, 1, NULL)"
    )
    con.execute(
        "INSERT INTO stops (run_id, config_id, n_ok, rounds, reason) "
        "VALUES ('r1', 'local1', 5, 1, 'n')"
    )
    # trialkit 3 kept a view of its own; a read-only open must not use (or replace) it
    con.execute("CREATE VIEW observations AS SELECT trial_id FROM trials")
    if version < 3:
        _drop_version_3(con)
    if version < 2:
        con.execute("DROP TABLE curves")
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version)])
    con.close()
    return expected


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_QUERY = (
    "SELECT trial_id, engine, workers, params::VARCHAR, train_s, accuracy, loss, k, impl "
    "FROM observations ORDER BY trial_id"
)
#: what analysis and reports read besides the view, each in a comparable order
_READS = [
    "SELECT * FROM observations ORDER BY trial_id",
    "SELECT name, kind, type FROM observation_columns ORDER BY name",
    "SELECT * FROM trials ORDER BY trial_id",
    "SELECT * FROM params ORDER BY params_id",
    "SELECT * FROM runs",
    "SELECT * FROM setups",
    "SELECT * FROM stops",
    "SELECT * FROM samples",
    "SELECT * FROM curves",
    "SELECT * FROM prices",
]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_read_only_open_shows_the_current_shape_without_writing(
    tmp_path: Path, version: int
) -> None:
    old = tmp_path / "old.duckdb"
    expected = _make_old(old, version)
    migrated = tmp_path / "migrated.duckdb"
    shutil.copy(old, migrated)
    old.chmod(0o444)
    before, mtime = _digest(old), old.stat().st_mtime_ns
    with open_store(old, read_only=True) as store:
        assert store.legacy_version == version and store.schema_version() == version
        assert store.con.execute(_QUERY).fetchall() == expected
        assert store.count_trials() == len(expected)
        legacy = {sql: store.con.execute(sql).fetchall() for sql in _READS}
        legacy_columns = store.view_columns()
    assert _digest(old) == before and old.stat().st_mtime_ns == mtime
    assert not Path(f"{old}.wal").exists()
    with open_store(migrated) as store:  # a writable open migrates, as before
        assert store.legacy_version is None and store.schema_version() == SCHEMA_VERSION
    with open_store(migrated, read_only=True) as store:
        assert store.view_columns() == legacy_columns
        for sql, rows in legacy.items():
            assert store.con.execute(sql).fetchall() == rows, sql
    con = duckdb.connect(str(old), read_only=True)
    assert con.execute("SELECT value FROM meta").fetchall() == [(str(version),)]
    assert con.execute("SELECT count(*) FROM metrics").fetchone() == (2 * len(expected),)
    con.close()


@pytest.mark.parametrize("version", [1, 3])
def test_analyze_and_report_read_a_read_only_old_file(tmp_path: Path, version: int) -> None:
    old = tmp_path / "old.duckdb"
    _make_old(old, version)
    migrated = tmp_path / "migrated.duckdb"
    shutil.copy(old, migrated)
    old.chmod(0o444)
    before = _digest(old)
    outputs = {}
    for db in (old, migrated):
        summary = run_cli("analyze", "summary", "--db", db, "--format", "json", timeout=300)
        assert summary.returncode == 0, summary.stderr
        html = tmp_path / f"{db.stem}.html"
        report = run_cli(
            "report", "build", "--format", "html", "--db", db, "--out", html, timeout=300
        )
        assert report.returncode == 0, report.stderr
        outputs[db.stem] = (summary.stdout, html.read_text().replace(str(db), "DB"))
    assert _digest(old) == before
    assert outputs["old"] == outputs["migrated"]
    # the numbers themselves, from the raw values: train_s mean and median, accuracy mean
    rows = {(r["engine"], r["workers"]): r for r in json.loads(outputs["old"][0])["rows"]}
    assert len(rows) == len(_CONFIGS)
    for engine, workers, _, trains, accs in _CONFIGS:
        row = rows[(engine, workers)]
        assert row["n"] == len(trains)
        assert row["train_s_mean"] == pytest.approx(statistics.fmean(trains), rel=1e-12)
        assert row["train_s_median"] == pytest.approx(statistics.median(trains), rel=1e-12)
        assert row["accuracy_mean"] == pytest.approx(statistics.fmean(accs), rel=1e-12)


def test_a_reader_is_told_of_a_dead_runners_unmerged_trials(tmp_path: Path) -> None:
    from tests.runner.test_journal import _begin, _record

    db = tmp_path / "r.duckdb"
    log = _begin(db)
    for i in (1, 2):
        log.append_trial(_record(log.run_id, i))
    assert log.merge(wait=5)
    for i in (3, 4, 5):
        log.append_trial(_record(log.run_id, i))
    path = log.journal.path
    with open_store(db, read_only=True) as store:
        assert store.notes == []  # its runner is alive (holds the lock) and merges them itself
    log.journal.close()  # the runner dies with three trials journaled, not merged
    before, journal = _digest(db), path.read_bytes()
    with open_store(db, read_only=True) as store:
        assert store.count_trials() == 2
        assert store.notes == [
            f"run {log.run_id} was killed; 3 finished trials are kept in {path} and are not in "
            f"the database yet; `runner trials --resume {log.run_id}` merges them (so does any "
            "command that writes to the database)"
        ]
    assert _digest(db) == before and path.read_bytes() == journal  # the reader wrote nothing
    with open_store(db) as store:  # a writer merges them
        assert store.count_trials() == 5
    with open_store(db, read_only=True) as store:
        assert store.notes == []
    assert not path.exists()


def test_a_dead_runners_journal_that_is_all_merged_is_no_news(tmp_path: Path) -> None:
    from tests.runner.test_journal import _begin, _record

    db = tmp_path / "r.duckdb"
    log = _begin(db)
    log.append_trial(_record(log.run_id, 1))
    assert log.merge(wait=5)
    log.journal.close()
    with open_store(db, read_only=True) as store:
        assert store.notes == [] and store.count_trials() == 1
    # a damaged journal does not stop a reader either
    with log.journal.path.open("ab") as fh:
        fh.write(b"not json\n")
    with open_store(db, read_only=True) as store:
        assert store.notes == [] and store.count_trials() == 1
