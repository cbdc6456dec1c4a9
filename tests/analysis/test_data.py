from __future__ import annotations

import duckdb
import pytest

from analysis import AnalysisError, Filter, connect, parse_where
from analysis.data import format_level, view_columns, where_clause


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("workers=2", Filter("workers", "=", "2")),
        ("engine!=local", Filter("engine", "!=", "local")),
        ("train_s<=3", Filter("train_s", "<=", "3")),
        ("train_s >= 1.5", Filter("train_s", ">=", "1.5")),
        ("workers<4", Filter("workers", "<", "4")),
        ("workers>1", Filter("workers", ">", "1")),
        ("engine==dask", Filter("engine", "=", "dask")),
        ("dataset=fashion=mnist", Filter("dataset", "=", "fashion=mnist")),
    ],
)
def test_parse_where(text, want):
    assert parse_where([text]) == [want]


@pytest.mark.parametrize("bad", ["workers", "=2", "workers=", "2x=1", "a b=1", "workers~2"])
def test_parse_where_malformed(bad):
    with pytest.raises(AnalysisError, match="is not COLUMN OP VALUE") as info:
        parse_where([bad])
    assert "\n" not in str(info.value)


def test_filter_rejects_unknown_operator():
    with pytest.raises(AnalysisError, match="operator"):
        Filter("workers", "<>", "2")


@pytest.mark.parametrize(
    ("value", "text"),
    [(2, "2"), (5.0, "5"), (2.5, "2.5"), (True, "true"), ("dask", "dask"), (None, "NULL")],
)
def test_format_level(value, text):
    assert format_level(value) == text


def test_connect_is_read_only(db):
    with connect(db) as con:
        assert "train_s" in view_columns(con)
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM trials")


def test_connect_errors(tmp_path):
    with pytest.raises(AnalysisError, match="no database at"), connect(tmp_path / "none.duckdb"):
        pass
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database at all")
    with pytest.raises(AnalysisError, match="not a DuckDB database"), connect(junk):
        pass


def test_where_values_are_parameters(db):
    with connect(db) as con:
        cols = view_columns(con)
        sql, params = where_clause(
            cols, parse_where(["engine=x'; DROP TABLE trials; --", "workers>=2", "k=5"])
        )
        assert "DROP" not in sql
        assert params == ["x'; DROP TABLE trials; --", 2, 5.0]
        assert sql.count("?") == 3
        assert "status = 'ok'" in sql and "warmup" in sql
        sql, _ = where_clause(cols, parse_where(["warmup=true"]), include_warmup=False)
        assert "warmup = false" not in sql


def test_a_none_filter_selects_missing_values(make_db, trials_for):
    from analysis import ttest

    trials = trials_for({1: [1.0, 2.0, 3.0], 2: [2.0, 3.0, 4.0]}, dataset="digits")
    trials += trials_for({1: [100.0, 200.0], 2: [300.0, 400.0]}, dataset=None)
    path = make_db(trials)
    res = ttest(path, group="workers", a="1", b="2", where=[Filter("dataset", "=", None)],
                n_boot=0)  # fmt: skip
    assert (res.n_a, res.n_b, res.mean_a) == (2, 2, 150.0)
    res = ttest(path, group="workers", a="1", b="2", where=[Filter("dataset", "!=", None)],
                n_boot=0)  # fmt: skip
    assert (res.n_a, res.mean_a) == (3, 2.0)
    assert str(Filter("dataset", "=", None)) == "dataset=NULL"
    with pytest.raises(AnalysisError, match="use = or !="):
        Filter("dataset", "<", None)
