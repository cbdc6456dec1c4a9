"""Reading the ``observations`` view: connections, column checks, filters and group statistics.

Everything here pushes work into DuckDB: callers get per-group sufficient statistics (count,
mean, variance), never the raw rows. Every aggregate is taken over ``metric - shift`` with a
per-group shift (the group's minimum, a data value), so subtraction is exact for data such as
``1e12 + noise`` and DuckDB's streaming ``var_samp`` stays accurate.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from analysis.errors import AnalysisError
from analysis.latex import latex_escape

VIEW = "observations"
OPS = ("=", "!=", "<", ">", "<=", ">=")
_WHERE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=|<=|>=|=|<|>)\s*(.*?)\s*$")

_INT_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class Filter:
    """One ``--where`` condition: ``column op value`` (value as typed by the user)."""

    column: str
    op: str
    #: as typed; None (library callers only) means ``IS NULL`` (``=``) or ``IS NOT NULL`` (``!=``)
    value: str | None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise AnalysisError(
                f"--where operator {self.op!r} is not supported; use one of {' '.join(OPS)}"
            )
        if self.value is None and self.op not in ("=", "!="):
            raise AnalysisError(f"--where {self.column}{self.op}NULL: use = or != with NULL")

    def __str__(self) -> str:
        return f"{self.column}{self.op}{'NULL' if self.value is None else self.value}"


def parse_where(items: Sequence[str]) -> list[Filter]:
    """Parse ``--where`` items such as ``workers=2``, ``engine!=local``, ``train_s<=3``."""
    filters = []
    for item in items:
        match = _WHERE_RE.match(item)
        if not match or not match.group(3):
            raise AnalysisError(
                f"--where {item!r} is not COLUMN OP VALUE; write e.g. --where workers=2 "
                f"(operators: {' '.join(OPS)})"
            )
        column, op, value = match.groups()
        filters.append(Filter(column, "=" if op == "==" else op, value))
    return filters


def as_filters(where: Sequence[str | Filter]) -> list[Filter]:
    if isinstance(where, str | Filter):
        where = [where]
    return [w if isinstance(w, Filter) else parse_where([w])[0] for w in where]


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
    from runner.store import StoreError, open_store

    try:
        store = open_store(db, read_only=True)
    except StoreError as exc:
        raise AnalysisError(str(exc)) from None
    try:
        yield store.con
    finally:
        store.close()


# -- columns ----------------------------------------------------------------------------------
def view_columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Columns of the observations view: name -> DuckDB type."""
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE {VIEW}").fetchall()}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_numeric_type(sql_type: str) -> bool:
    base = sql_type.split("(")[0].upper()
    return base in _INT_TYPES or base in _FLOAT_TYPES or base == "DECIMAL"


def check_column(columns: dict[str, str], name: str, option: str, *, numeric: bool = False) -> str:
    """Return the SQL type of ``name``; raise a one-line error when it is not a view column."""
    if name not in columns:
        close = difflib.get_close_matches(name, list(columns), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise AnalysisError(
            f"{option} {name!r} is not a column of the observations view; {hint}"
            f"available: {', '.join(columns)}"
        )
    sql_type = columns[name]
    if numeric and not is_numeric_type(sql_type):
        numeric_cols = [c for c, t in columns.items() if is_numeric_type(t)]
        raise AnalysisError(
            f"{option} {name!r} is a {sql_type} column, not numeric; pick a numeric one: "
            f"{', '.join(numeric_cols)}"
        )
    return sql_type


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


# -- WHERE ------------------------------------------------------------------------------------
def _bind_value(f: Filter, sql_type: str) -> tuple[str, Any]:
    """SQL for ``"col" op ?`` with the value converted for the column's type."""
    col = quote(f.column)
    base = sql_type.split("(")[0].upper()
    if is_numeric_type(sql_type):
        try:
            number = float(f.value)
        except ValueError:
            raise AnalysisError(
                f"--where {f}: {f.column} is numeric ({sql_type}) but {f.value!r} is not a "
                f"number; give a number, e.g. --where {f.column}{f.op}2"
            ) from None
        if not math.isfinite(number):
            raise AnalysisError(f"--where {f}: give a finite number")
        value: Any = int(number) if base in _INT_TYPES and number.is_integer() else number
        return f"{col} {f.op} ?", value
    if base == "BOOLEAN":
        text = f.value.strip().lower()
        if text not in _TRUE | _FALSE:
            raise AnalysisError(
                f"--where {f}: {f.column} is true/false but {f.value!r} is neither; "
                f"write {f.column}=true or {f.column}=false"
            )
        return f"{col} {f.op} ?", text in _TRUE
    if base == "VARCHAR":
        return f"{col} {f.op} ?", f.value
    # Timestamps, JSON and others: compare their text form.
    return f"CAST({col} AS VARCHAR) {f.op} ?", f.value


def where_clause(
    columns: dict[str, str],
    filters: Sequence[Filter],
    *,
    include_warmup: bool = False,
    only_ok: bool = True,
) -> tuple[str, list[Any]]:
    """``WHERE`` text and its parameters for the default selection plus ``filters``.

    By default only ``status = 'ok'`` trials that are not warm-ups are kept; a filter on
    ``status`` or ``warmup`` replaces the corresponding default.
    """
    conditions: list[str] = []
    params: list[Any] = []
    filtered = {f.column for f in filters}
    if only_ok and "status" not in filtered and "status" in columns:
        conditions.append("status = 'ok'")
    if not include_warmup and "warmup" not in filtered and "warmup" in columns:
        conditions.append("(warmup = false OR warmup IS NULL)")
    for f in filters:
        sql_type = check_column(columns, f.column, "--where")
        if f.value is None:
            conditions.append(f"{quote(f.column)} IS {'' if f.op == '=' else 'NOT '}NULL")
            continue
        sql, value = _bind_value(f, sql_type)
        conditions.append(sql)
        params.append(value)
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


def describe_where(filters: Sequence[Filter]) -> str:
    return " ".join(f"--where {f}" for f in filters) if filters else "(no --where)"


def execute(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    """Run a query; conversion problems caused by user values become AnalysisError."""
    try:
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
) -> Selection:
    columns = view_columns(con)
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
    """
    m, g = quote(metric), quote(group)
    where_sql = sel.where_and(f"{m} IS NOT NULL", f"{g} IS NOT NULL")
    sql = (
        f"SELECT __g, count(*), any_value(__shift), avg(__d), var_samp(__d) FROM ("
        f"SELECT {g} AS __g, CAST({m} AS DOUBLE) / ? - __shift AS __d, __shift FROM ("
        f"SELECT {g}, {m}, min(CAST({m} AS DOUBLE) / ?) OVER (PARTITION BY {g}) AS __shift "
        f"FROM {VIEW}{where_sql})) GROUP BY __g ORDER BY __g"
    )
    rows = execute(con, sql, [scale, scale, *sel.params])
    return [
        GroupMoments(
            level=format_level(level),
            n=int(n),
            shift=float(shift),
            mean_dev=float(mean_dev),
            var=float("nan") if var is None else float(var),
        )
        for level, n, shift, mean_dev, var in rows
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


# -- terminal formatting (used by the results' __str__) ----------------------------------------
def fmt(value: Any, digits: int = 6) -> str:
    """A number for the terminal: ``digits`` significant digits; NaN as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}g}"
    return str(value)


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "-"
    return "< 1e-16" if p < 1e-16 else f"{p:.4g}"


def p_text(p: float) -> str:
    """``p = 0.0123``, or ``p < 1e-16``."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain aligned text table: text columns left, numbers right."""
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        all(isinstance(row[i], int | float) and not isinstance(row[i], bool) for row in rows)
        and bool(rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


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


def latex_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A LaTeX ``tabular`` (booktabs rules): every header and text cell escaped, numbers with
    six significant digits (minus signs in math mode), missing values as ``--``."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "--"
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = fmt(value)
            return "$-$" + text[1:] if text.startswith("-") else text
        return latex_escape(fmt(value))

    align = "".join(
        "r"
        if rows
        and all(
            isinstance(r[i], int | float) and not isinstance(r[i], bool) or r[i] is None
            for r in rows
        )
        else "l"
        for i in range(len(headers))
    )
    lines = [f"\\begin{{tabular}}{{{align}}}", "\\toprule"]
    lines.append(" & ".join(latex_escape(h) for h in headers) + r" \\")
    lines.append("\\midrule")
    lines += [" & ".join(cell(v) for v in row) + r" \\" for row in rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)


def frame_to_latex(frame: Any) -> str:
    """:func:`latex_table` of a pandas DataFrame (NaN as ``--``)."""
    rows = [
        [None if _is_missing(v) else _plain(v) for v in record]
        for record in frame.itertuples(index=False, name=None)
    ]
    return latex_table([str(c) for c in frame.columns], rows)


def _is_missing(value: Any) -> bool:
    try:
        return value is None or bool(value != value)
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """NumPy scalars as Python numbers; other values unchanged."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            return value.item()
        except (TypeError, ValueError):
            return value
    return value
