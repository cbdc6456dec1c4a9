"""Columns and ``--where``: checking column names against the observations view, parsing
``COLUMN OP VALUE`` filters and turning them into a parametrised ``WHERE`` (values are bound,
never pasted into SQL). Re-exported by :mod:`analysis.data`."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from analysis.errors import AnalysisError

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


def describe_where(filters: Sequence[Filter]) -> str:
    return " ".join(f"--where {f}" for f in filters) if filters else "(no --where)"


# -- columns ----------------------------------------------------------------------------------
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


# -- WHERE ------------------------------------------------------------------------------------
def _bind_value(f: Filter, sql_type: str) -> tuple[str, Any]:
    """SQL for ``"col" op ?`` with the value converted for the column's type."""
    assert f.value is not None
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
