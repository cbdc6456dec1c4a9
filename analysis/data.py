"""Reading the ``observations`` view: connections, selections, group statistics, the rule for
non-finite values.

Everything here pushes work into DuckDB: callers get per-group sufficient statistics (count,
mean, variance), never the raw rows. Every aggregate is taken over ``metric - shift`` with a
per-group shift (the group's minimum, a data value), so subtraction is exact for data such as
``1e12 + noise`` and DuckDB's streaming ``var_samp`` stays accurate.

Column checks and ``--where`` live in :mod:`analysis.where`, terminal formatting in
:mod:`analysis.render`, LaTeX tables in :mod:`analysis.latex`; their names are re-exported here,
where callers have always imported them.
"""

from __future__ import annotations

import contextlib
import math
import re
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from analysis.errors import AnalysisError
from analysis.latex import frame_to_latex, latex_table
from analysis.render import fmt, fmt_p, p_text, render_table, wrap_text
from analysis.where import (
    OPS,
    Filter,
    as_filters,
    check_column,
    describe_where,
    is_numeric_type,
    parse_where,
    quote,
    where_clause,
)

__all__ = [
    "OPS",
    "VIEW",
    "Database",
    "Filter",
    "GroupMoments",
    "Selection",
    "as_filters",
    "check_column",
    "check_distinct",
    "connect",
    "describe_where",
    "execute",
    "lean_sql",
    "finite_check",
    "fmt",
    "fmt_p",
    "format_level",
    "frame_to_latex",
    "group_moments",
    "is_numeric_type",
    "latex_table",
    "level_label",
    "load_groups",
    "moment_scale",
    "no_trials_error",
    "nonfinite_message",
    "p_text",
    "parse_where",
    "quote",
    "render_table",
    "select",
    "view_columns",
    "where_clause",
    "wrap_text",
]

VIEW = "observations"


#: A results database: its path, or a connection already open on it (several analyses for one
#: report then share one connection).
Database = str | Path | duckdb.DuckDBPyConnection


@contextmanager
def connect(db: Database) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open a results database read-only; store problems become :class:`AnalysisError`.

    An open connection is used as it is and left open for its owner to close.
    """
    if isinstance(db, duckdb.DuckDBPyConnection):
        yield db
        return
    with open_read_store(db) as store:
        yield store.con


@contextmanager
def open_read_store(db: str | Path) -> Iterator[Any]:
    """The store (``runner.store``) of ``db`` opened read-only, its connection configured for
    the analyses (:func:`analysis.query.configure`); store problems become
    :class:`AnalysisError`. Closed on leaving."""
    from runner.store import StoreError, open_store

    try:
        store = open_store(db, read_only=True)
    except StoreError as exc:
        raise AnalysisError(str(exc)) from None
    from analysis.query import configure

    configure(store.con)
    try:
        yield store
    finally:
        store.close()


# -- columns ----------------------------------------------------------------------------------
def view_columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Columns of the observations view: name -> DuckDB type."""
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE {VIEW}").fetchall()}


def format_level(value: Any) -> str:
    """A group level as text: ``2`` not ``2.0``; booleans as ``true``/``false``."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    return str(value)


def level_label(by: Sequence[str], level: Sequence[Any]) -> str:
    """One level of the ``by`` columns as ``engine=dask, workers=2`` (empty without ``by``)."""
    return ", ".join(f"{b}={format_level(v)}" for b, v in zip(by, level, strict=True))


# -- reading trials without the view's joins --------------------------------------------------
#: The store's view: ``trials`` (columns ``t.<name>``, passed through) joined to ``runs`` (its
#: ``source``) and ``params`` (``params`` and one column per workload param).
_VIEW_SQL = re.compile(
    r"CREATE VIEW observations AS SELECT (?P<cols>.*?) FROM \(\(trials AS t INNER JOIN runs AS r "
    r"USING \(run_id\)\) LEFT JOIN \(SELECT params_id, params(?:, .*)? FROM params\) AS p "
    r"USING \(params_id\)\);?\s*$",
    re.DOTALL,
)
_IDENT = r'"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_]*'
#: ``t.name``, ``r."source"`` or ``r.status AS run_status``: the alias names the view's column
_VIEW_COL = re.compile(rf"([tpr])\.({_IDENT})(?: AS ({_IDENT}))?")
_FROM_VIEW = re.compile(rf"\b(FROM|JOIN)\s+{VIEW}\b(?!\s*\.)", re.IGNORECASE)
_STAR_FROM_VIEW = re.compile(rf"\*\s*(?:EXCLUDE\s*\([^)]*\)\s*)?FROM\s+{VIEW}\b", re.IGNORECASE)
_JOINED: weakref.WeakKeyDictionary[Any, frozenset[str] | None] = weakref.WeakKeyDictionary()


def _joined_columns(con: duckdb.DuckDBPyConnection) -> frozenset[str] | None:
    """The view's columns that come from ``runs`` or ``params`` (lower case), or None when the
    view is not the store's current one (an older schema's temporary view, anything else):
    looked up once per connection."""
    try:
        return _JOINED[con]
    except (KeyError, TypeError):
        pass
    rows = con.execute(
        "SELECT temporary, sql FROM duckdb_views() WHERE view_name = ?", [VIEW]
    ).fetchall()
    got: frozenset[str] | None = None
    if len(rows) == 1 and not rows[0][0] and (m := _VIEW_SQL.match(rows[0][1] or "")):
        items = _VIEW_COL.findall(m.group("cols"))
        text = ", ".join(f"{a}.{n}" + (f" AS {alias}" if alias else "") for a, n, alias in items)
        if text == m.group("cols"):
            names = [
                (a, x[1:-1].replace('""', '"') if x.startswith('"') else x)
                for a, n, alias in items
                for x in [alias or n]
            ]
            got = frozenset(n.lower() for a, n in names if a != "t")
    with contextlib.suppress(TypeError):  # no weak reference: looked up again next time
        _JOINED[con] = got
    return got


def lean_sql(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """``sql`` reading ``trials`` itself instead of the ``observations`` view when it names none
    of the view's columns from ``runs`` or ``params`` (and no ``*`` of the view): the view's
    joins cost about a third of a scan. Every trial has its run (the store writes a run before
    its trials and deletes neither), so the view's inner join to ``runs`` drops no row, and its
    left join to ``params`` adds only the columns the query does not name: the same rows, the
    same values. Anything else (another view, a name that may be one of those columns, the view
    qualified by name) keeps the view."""
    if VIEW not in sql.lower():
        return sql
    joined = _joined_columns(con)
    if joined is None or _STAR_FROM_VIEW.search(sql):
        return sql
    if len(_FROM_VIEW.findall(sql)) != len(re.findall(rf"\b{VIEW}\b", sql, re.IGNORECASE)):
        return sql
    words = {w.lower() for w in re.findall(r'[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")*"', sql)}
    words |= {w[1:-1].replace('""', '"') for w in words if w.startswith('"')}
    if words & joined:
        return sql
    return _FROM_VIEW.sub(r"\1 trials", sql)


def execute(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    """Run a query (on ``trials`` itself when it can: :func:`lean_sql`); conversion problems
    caused by user values become AnalysisError."""
    lean = lean_sql(con, sql)
    try:
        try:
            return con.execute(lean, list(params)).fetchall()
        except duckdb.BinderException:
            if lean == sql:
                raise
            # the view changed on this connection since it was read (a writer added a param
            # column): the view itself, as asked
            _JOINED.pop(con, None)
            return con.execute(sql, list(params)).fetchall()
    except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
        first = str(exc).splitlines()[0]
        raise AnalysisError(f"a --where value cannot be used: {first}; fix the value") from None


# -- group statistics -------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupMoments:
    """Sufficient statistics of one group: ``mean = shift + mean_dev``."""

    level: str
    n: int
    shift: float
    mean_dev: float
    var: float  # sample variance (n-1); NaN when n < 2

    @property
    def mean(self) -> float:
        return self.shift + self.mean_dev


@dataclass(frozen=True)
class Selection:
    """A checked metric/group selection: the SQL pieces every analysis needs."""

    columns: dict[str, str]
    where_sql: str
    params: list[Any]
    filters: tuple[Filter, ...]

    @property
    def where_text(self) -> tuple[str, ...]:
        return tuple(str(f) for f in self.filters)

    def where_and(self, *conds: str) -> str:
        """``where_sql`` with ``conds`` ANDed on (a fresh `` WHERE`` when there is none)."""
        cond = " AND ".join(conds)
        if not cond:
            return self.where_sql
        return f"{self.where_sql} AND {cond}" if self.where_sql else f" WHERE {cond}"


def select(
    con: duckdb.DuckDBPyConnection,
    *,
    metric: str | None,
    group: Sequence[str] = (),
    group_option: str = "--group",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    only_ok: bool = True,
    columns: dict[str, str] | None = None,
) -> Selection:
    """The checked selection; ``columns``: the view's columns when the caller has them (a
    stratum of a selection: :attr:`Selection.columns`), else read from the view."""
    columns = view_columns(con) if columns is None else columns
    if metric is not None:
        check_column(columns, metric, "--metric", numeric=True)
    for g in group:
        check_column(columns, g, group_option)
    filters = as_filters(where)
    sql, params = where_clause(columns, filters, include_warmup=include_warmup, only_ok=only_ok)
    return Selection(columns, sql, params, tuple(filters))


#: Values whose magnitude passes this have their squares near overflow: :func:`moment_scale`
#: then gives a power of two to divide them by before any sum of squares.
SCALE_ABOVE = 2.0**400


def moment_scale(con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str) -> float:
    """1, or for values beyond :data:`SCALE_ABOVE` in magnitude (1e120 and more, whose sums of
    squares overflow) the power of two at or below their largest magnitude: dividing by it is
    exact, and statistics of the scaled values are finite up to 1.8e308."""
    x = f"CAST({quote(metric)} AS DOUBLE)"
    where_sql = sel.where_and(f"{quote(metric)} IS NOT NULL")
    (big,) = execute(con, f"SELECT max(abs({x})) FROM {VIEW}{where_sql}", sel.params)[0]
    if big is None or not math.isfinite(big) or big <= SCALE_ABOVE:
        return 1.0
    return math.ldexp(1.0, math.frexp(big)[1] - 1)


def group_moments(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    metric: str,
    group: str,
    scale: float = 1.0,
) -> list[GroupMoments]:
    """Per-level count, mean and sample variance of ``metric`` / ``scale`` (a power of two from
    :func:`moment_scale`: 1 unless the values are huge), computed in DuckDB.

    Rows with a NULL metric or a NULL group value are left out. Levels are sorted by value.
    Computed by :func:`analysis.query.moments` (two passes of plain GROUP BY).
    """
    from analysis.query import moments

    rows = moments(con, sel, metrics=[metric], keys=[group], scale=scale)
    return [
        GroupMoments(
            level=format_level(r.key[0]),
            n=r.n,
            shift=r.stat.shift,
            mean_dev=r.stat.mean_dev,
            var=r.stat.var,
        )
        for r in rows
    ]


def no_trials_error(sel: Selection, columns: str) -> AnalysisError:
    """No selected trial has a value for ``columns`` (e.g. ``"train_s and workers"``)."""
    return AnalysisError(
        f"no trials match {describe_where(sel.filters)} with a value for {columns}; "
        "loosen --where, or check the database with `analyze summary`"
    )


def load_groups(
    db: Database,
    *,
    metric: str,
    group: str,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> tuple[Selection, list[GroupMoments]]:
    """Check the selection and compute the per-level moments of ``metric`` by ``group``.

    Raises :func:`no_trials_error` when no level has a trial with a value for ``metric``.
    """
    with connect(db) as con:
        sel = select(con, metric=metric, group=[group], where=where, include_warmup=include_warmup)
        finite_check(con, sel, [metric])
        groups = group_moments(con, sel, metric=metric, group=group)
    if not groups:
        raise no_trials_error(sel, metric)
    return sel, groups


# -- helpers shared by the regression and scaling analyses ------------------------------------
def check_distinct(names: Sequence[str] | str, option: str) -> tuple[str, ...]:
    """``names`` as a tuple; a name listed twice is a one-line error."""
    if isinstance(names, str):
        names = [names]
    names = tuple(names)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AnalysisError(f"{option} names {', '.join(dupes)} twice; list each column once")
    return names


def finite_check(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    columns: Sequence[tuple[str, str] | str],
    *,
    positive: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> int:
    """The one rule for non-finite values, used by every analysis: a selected trial whose value
    in one of ``columns`` is NaN or infinite is refused with one line naming the column, how
    many of the selected trials have such values (NaN, +inf, -inf counted apart) and the
    ``--where`` that excludes them; so is a value <= 0 in a ``positive`` column (one about to
    be logged). Nothing is dropped silently.

    ``columns`` are column names (or ``(column, option)`` pairs, the option being ignored: the
    message names the column); ``extra`` are SQL conditions ANDed to the selection (e.g.
    ``status = 'ok'``). Returns the number of selected rows with a value in every column.
    """
    names = [c if isinstance(c, str) else c[0] for c in columns]
    names = list(dict.fromkeys(names))
    not_null = [f"{quote(c)} IS NOT NULL" for c in names]
    aggs = ["count(*)"]
    for c in names:
        x = f"CAST({quote(c)} AS DOUBLE)"
        aggs += [
            f"count(*) FILTER (WHERE isnan({x}))",
            f"count(*) FILTER (WHERE {x} = 'inf'::DOUBLE)",
            f"count(*) FILTER (WHERE {x} = '-inf'::DOUBLE)",
        ]
    for c in positive:
        aggs.append(f"count(*) FILTER (WHERE CAST({quote(c)} AS DOUBLE) <= 0)")
    sql = f"SELECT {', '.join(aggs)} FROM {VIEW}{sel.where_and(*extra, *not_null)}"
    counts = execute(con, sql, sel.params)[0]
    n = int(counts[0])
    for i, c in enumerate(names):
        nan, pos, neg = (int(v) for v in counts[1 + 3 * i : 4 + 3 * i])
        if nan or pos or neg:
            raise AnalysisError(nonfinite_message(c, n, nan=nan, pos_inf=pos, neg_inf=neg))
    for c, bad in zip(positive, counts[1 + 3 * len(names) :], strict=True):
        if bad:
            raise AnalysisError(
                f"{c} is zero or negative in {bad} of the {n} selected trials, so its log is "
                f"undefined; drop the log option, or exclude them with --where '{c}>0'"
            )
    return n


def nonfinite_message(column: str, n: int, *, nan: int, pos_inf: int, neg_inf: int) -> str:
    """The one-line refusal of NaN/inf values in ``column`` (``n`` selected trials)."""
    kinds = ", ".join(
        f"{k} {name}" for k, name in ((nan, "NaN"), (pos_inf, "+inf"), (neg_inf, "-inf")) if k
    )
    bad = nan + pos_inf + neg_inf
    hints = []
    if nan or pos_inf:  # NaN sorts above every number in DuckDB, +inf too
        hints.append(f"--where '{column}<1e308'")
    if neg_inf:
        hints.append(f"--where '{column}>-1e308'")
    return (
        f"{column} is NaN or infinite in {bad} of the {n} selected trials ({kinds}); "
        f"no statistic is computed from them: fix the data, or exclude them with "
        f"{' '.join(hints)}"
    )
