from __future__ import annotations

import duckdb
import pytest

from analysis import AnalysisError, Filter, connect, parse_where
from analysis.data import fmt, format_level, render_table, view_columns, where_clause, wrap_text
from analysis.render import wide_tables


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


# -- terminal output: 4 significant digits, 120 columns ------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0103607, "0.01036"),
        (46.51873, "46.52"),
        (2 / 3, "0.6667"),
        (9.63937e-05, "9.639e-05"),
        (12345.6, "12346"),  # whole numbers below 1e9 in full, as the report writes them
        (9999.7, "10000"),
        (1.5e12, "1.5e+12"),
        (float("nan"), "-"),
        (None, "-"),
        (7, "7"),
    ],
)
def test_fmt_four_significant_digits(value, text):
    assert fmt(value) == text


def _wide_table() -> tuple[list[str], list[list[object]]]:
    headers = ["configuration", *(f"statistic_{i:02d}" for i in range(20))]
    rows = [[f"engine=e{r}", *(1000.0 / (r + i + 1) for i in range(20))] for r in range(4)]
    return headers, rows


def test_render_table_fits_120_columns_and_names_what_it_leaves_out():
    headers, rows = _wide_table()
    lines = render_table(headers, rows).splitlines()
    assert max(map(len, lines)) <= 120
    shown = lines[0].split()
    assert shown[0] == "configuration" and shown == headers[: len(shown)]
    assert 1 < len(shown) < len(headers)
    note = " ".join(line.strip() for line in lines[2 + len(rows) :])
    hidden = headers[len(shown) :]
    assert note == f"({len(hidden)} columns not shown: {', '.join(hidden)}; --wide shows all)"
    # numbers right-aligned at 4 significant digits: 1000 / 3 in row 0, column statistic_02
    col = shown.index("statistic_02")
    assert lines[2].split()[col] == "333.3"


def test_render_table_wide_shows_every_column():
    headers, rows = _wide_table()
    with wide_tables():
        text = render_table(headers, rows)
    lines = text.splitlines()
    assert lines[0].split() == headers and len(lines) == 2 + len(rows)
    assert max(map(len, lines)) > 120
    assert render_table(headers, rows) != text  # the setting ends with the block


def test_render_table_cuts_a_key_column_too_wide_alone():
    lines = render_table(["label", "n"], [["x" * 200, 3]]).splitlines()
    assert max(map(len, lines)) <= 120
    assert lines[2] == "x" * 119 + "…"
    assert lines[3] == "(1 column not shown: n; --wide shows all)"


def test_wrap_text_wraps_only_long_lines():
    long = "  note: " + " ".join(["word"] * 60)
    text = wrap_text(f"short\n{long}\n" + "-" * 50)
    lines = text.splitlines()
    assert lines[0] == "short" and lines[-1] == "-" * 50
    assert max(map(len, lines)) <= 120 and len(lines) == 5  # 306 characters: three lines
    assert lines[1].startswith("  note: word") and lines[2].startswith("    word")
    assert " ".join(" ".join(lines[1:-1]).split()) == " ".join(long.split())


# -- reading trials without the view's joins ---------------------------------------------------
def test_lean_sql_reads_trials_only_when_the_view_adds_nothing_named(make_db, trials_for):
    """A query naming no column of runs or params reads trials itself, with the same rows as the
    view; naming a param column, ``source`` or ``*`` of the view keeps the view."""
    from analysis.data import execute, lean_sql

    trials = trials_for({1: [1.0, 2.0, 3.0], 2: [2.0, 3.0, 40.0]}, params={"k": 3})
    trials += trials_for({1: [5.0], 2: [7.0]}, params={"k": 4})
    path = make_db(trials)
    with connect(path) as con:
        assert "k" in view_columns(con) and "source" in view_columns(con)
        q = "SELECT workers, count(*), sum(train_s) FROM observations WHERE status = ? GROUP BY 1"
        lean = lean_sql(con, q)
        assert lean == q.replace("FROM observations", "FROM trials")
        order = " ORDER BY 1"
        want = con.execute(q + order, ["ok"]).fetchall()
        assert execute(con, q + order, ["ok"]) == want == [(1, 4, 11.0), (2, 4, 52.0)]
        for kept in (
            'SELECT count(*) FROM observations WHERE "k" = 3',
            "SELECT count(*) FROM observations WHERE k = 3",
            "SELECT source, count(*) FROM observations GROUP BY 1",
            "SELECT * FROM observations",
            "SELECT observations.workers FROM observations",
        ):
            assert lean_sql(con, kept) == kept, kept
        assert execute(con, 'SELECT count(*) FROM observations WHERE "k" = 3') == [(6,)]
        # a view of that name that is not the store's: kept
        fresh = duckdb.connect(":memory:")
        fresh.execute("CREATE VIEW observations AS SELECT 1 AS workers")
        assert lean_sql(fresh, "SELECT workers FROM observations") == (
            "SELECT workers FROM observations"
        )
