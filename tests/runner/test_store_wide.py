"""Many new metric columns at once (a wide CSV): registered as one batch, by ALTER TABLE or by
rebuilding ``trials`` (whichever is estimated cheaper), with the same result either way."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import runner.store as store_module
from runner.store import StoreError, TrialRecord, open_store

WIDE = 400
_OID = "SELECT table_oid FROM duckdb_tables() WHERE table_name = 'trials'"


def _fill(path: Path, n_metrics: int) -> bool:
    """Three trials with a metric each, then a staged table of two trials with ``n_metrics`` new
    metrics (``m0`` = 0.5 + row, ``m{i}`` = i + row) imported in one transaction; True when
    ``trials`` was rebuilt (a new table: ALTER TABLE keeps its oid)."""
    with open_store(path) as store:
        run = store.begin_run(source="measured")
        ids = [
            store.append_trial(TrialRecord(run, "ok", {"engine": e, "wall_s": w}, {"acc": a}))
            for e, w, a in (("local", 1.0, 0.5), ("dask", 2.0, 0.25), ("spark", 3.0, 0.125))
        ]
        names = [f"m{i}" for i in range(n_metrics)]
        cols = ", ".join(f"m{i} DOUBLE" for i in range(n_metrics))
        store.con.execute(f"CREATE TEMP TABLE staged (engine VARCHAR, status VARCHAR, {cols})")
        for row in (0, 1):
            values = [0.5 + row] + [float(i + row) for i in range(1, n_metrics)]
            store.con.execute(
                f"INSERT INTO staged VALUES ('imp{row}', 'ok', {', '.join('?' * n_metrics)})",
                values,
            )
        oid = store.con.execute(_OID).fetchone()
        with store.transaction():
            imported = store.begin_run(source="import:wide.csv")
            assert store.insert_staged("staged", run_id=imported, metrics=names) == 2
            store.finish_run(imported)
        assert ids == [1, 2, 3]
        return store.con.execute(_OID).fetchone() != oid


def _check(path: Path, n_metrics: int) -> None:
    with open_store(path, read_only=True) as store:
        columns = list(store.view_columns())
        # the view: trial columns, source, then the metrics in name order
        metrics = sorted(["acc", *(f"m{i}" for i in range(n_metrics))])
        assert columns[-len(metrics) :] == metrics
        rows = store.con.execute(
            f"SELECT engine, wall_s, acc, m0, m1, m{n_metrics - 1} FROM observations "
            "ORDER BY trial_id"
        ).fetchall()
        assert rows == [
            ("local", 1.0, 0.5, None, None, None),
            ("dask", 2.0, 0.25, None, None, None),
            ("spark", 3.0, 0.125, None, None, None),
            ("imp0", None, None, 0.5, 1.0, float(n_metrics - 1)),
            ("imp1", None, None, 1.5, 2.0, float(n_metrics)),
        ]
        # every value of the second imported row: m_i = i + 1 (m0 = 1.5)
        got = store.con.execute(
            f"SELECT {', '.join(f'm{i}' for i in range(n_metrics))} FROM trials "
            "WHERE engine = 'imp1'"
        ).fetchone()
        assert list(got) == [1.5] + [float(i + 1) for i in range(1, n_metrics)]
        kinds = store.con.execute(
            "SELECT kind, type, count(*) FROM observation_columns GROUP BY ALL"
        ).fetchall()
        assert kinds == [("metric", "DOUBLE", n_metrics + 1)]


@pytest.mark.parametrize("way", ["rebuild", "alter"])
def test_many_new_metrics_land_the_same_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    # a handful of trials and 400 new columns: the estimate picks the rebuild; force ALTERs
    if way == "alter":
        monkeypatch.setattr(store_module, "_REBUILD_MIN_COLUMNS", 10**9)
    path = tmp_path / "r.duckdb"
    rebuilt = _fill(path, WIDE)
    assert rebuilt == (way == "rebuild")
    _check(path, WIDE)
    # the sequence goes on, and a later trial can set one of the new metrics
    with open_store(path) as store:
        tid = store.append_trial(TrialRecord("x", "ok", {}, {"m7": 70.0}))
        assert tid == 6
        assert store.con.execute("SELECT m7 FROM trials WHERE trial_id = 6").fetchone() == (70.0,)


def test_a_rebuild_is_undone_with_the_callers_transaction(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    with open_store(path) as store:
        run = store.begin_run(source="measured")
        store.append_trial(TrialRecord(run, "ok", {"engine": "local"}, {"acc": 0.5}))
        before = store.con.execute("DESCRIBE trials").fetchall()
        names = [f"m{i}" for i in range(WIDE)]
        store.con.execute(
            f"CREATE TEMP TABLE staged (status VARCHAR, {', '.join(f'{n} DOUBLE' for n in names)})"
        )
        store.con.execute(f"INSERT INTO staged VALUES ('ok', {', '.join(['1.0'] * WIDE)})")
        with pytest.raises(RuntimeError, match="later"), store.transaction():
            store.insert_staged("staged", run_id=run, metrics=names)
            assert len(store.con.execute("DESCRIBE trials").fetchall()) == len(before) + WIDE
            raise RuntimeError("later")
        assert store.con.execute("DESCRIBE trials").fetchall() == before
        assert set(store.observation_columns()) == {"acc"}
        assert store.con.execute("SELECT engine, acc FROM observations").fetchall() == [
            ("local", 0.5)
        ]


def test_a_bad_name_among_many_writes_nothing(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.duckdb") as store:
        before = store.con.execute("DESCRIBE trials").fetchall()
        metrics = {f"m{i}": 1.0 for i in range(WIDE)} | {"Bad Name": 1.0}
        with pytest.raises(StoreError, match="'Bad Name' is not a snake_case identifier"):
            store.append_trial(TrialRecord("r", "ok", {}, metrics))
        assert store.con.execute("DESCRIBE trials").fetchall() == before
        assert store.observation_columns() == {}


def test_param_names_of_a_configuration_are_one_batch(tmp_path: Path) -> None:
    # add_params outside any transaction: the new names and the type change commit together
    with open_store(tmp_path / "r.duckdb") as store:
        store.add_params({f"p{i}": i for i in range(WIDE)} | {"q": "x"})
        store.add_params({"p0": "zero", "q": "y"})
        cols = store.observation_columns()
        assert len(cols) == WIDE + 1
        assert cols["p0"] == ("param", "VARCHAR") and cols["p1"] == ("param", "DOUBLE")
        assert cols["q"] == ("param", "VARCHAR")
        got = store.con.execute(
            "SELECT name, type FROM observation_columns WHERE name IN ('p0', 'p1')"
        ).fetchall()
        assert sorted(got) == [("p0", "VARCHAR"), ("p1", "DOUBLE")]


def test_three_thousand_new_metrics_take_seconds_not_minutes(tmp_path: Path) -> None:
    # before the batch: one ALTER TABLE each, ~16 s for 3,000 on an idle machine
    start = time.monotonic()
    _fill(tmp_path / "r.duckdb", 3000)
    assert time.monotonic() - start < 8
    _check(tmp_path / "r.duckdb", 3000)
