"""What a verdict is, and the levels a claim compares: per level n, mean and sd of the metric
(from :func:`analysis.summarize`), refusing a level that pools configurations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from analysis.data import Database, Filter, connect
from analysis.errors import AnalysisError
from analysis.verdict_text import _label


@dataclass(frozen=True)
class Verdict:
    """One decision: the verdict word, the test that decided it and the numbers behind it."""

    verdict: str
    test: str
    detail: str
    n: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Level:
    """A level of the compared factor: its value, trial count, mean and sd of the metric."""

    value: Any
    n: int
    mean: float
    sd: float


def _same(a: Any, b: Any) -> bool:
    """Level values compare as numbers when both read as numbers (2 == 2.0 == "2")."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def levels(
    db: Database,
    *,
    metric: str,
    factor: str,
    where: Sequence[str | Filter],
    only: Sequence[Any] | None = None,
) -> tuple[Level, ...]:
    """Per level of ``factor`` (only those in ``only``, when given): n, mean and sd of
    ``metric`` over the ok, non-warm-up trials of the selection; levels sorted by value. Raises
    AnalysisError when a level mixes configurations (trials of more than one ``config_id``)."""
    from analysis.summary import summarize

    res = summarize(db, by=[factor, "config_id"], metrics=[metric], where=where, n_boot=0)
    by_level: dict[str, list[dict[str, Any]]] = {}
    for row in res.rows:
        if only is not None and not any(_same(row[factor], v) for v in only):
            continue
        if row["n"] and not math.isnan(row[f"{metric}_mean"]):
            by_level.setdefault(_label(row[factor]), []).append(row)
    mixed = {k: len(v) for k, v in by_level.items() if len(v) > 1}
    if mixed:
        shown = ", ".join(f"{factor}={k}: {n}" for k, n in sorted(mixed.items()))
        raise AnalysisError(
            f"the selection pools configurations ({shown} configurations); fix the other "
            "factors with where conditions so each level is one configuration"
        )
    out = []
    for rows in by_level.values():
        row = rows[0]
        out.append(Level(row[factor], int(row["n"]), row[f"{metric}_mean"], row[f"{metric}_sd"]))

    def key(level: Level) -> tuple[int, Any]:
        try:
            return (0, float(level.value))
        except (TypeError, ValueError):
            return (1, str(level.value))

    return tuple(sorted(out, key=key))


def _pick(found: Sequence[Level], value: Any, factor: str) -> Level:
    for level in found:
        if _same(level.value, value):
            return level
    have = ", ".join(_label(lv.value) for lv in found) or "none"
    raise AnalysisError(f"no trials at {factor}={_label(value)} (levels present: {have})")


def _restrict(where: Sequence[str | Filter], factor: str, found: Sequence[Level]) -> list[Filter]:
    """``where`` plus bounds that keep the tests to the range of the levels in ``found`` (numeric
    factors only: the levels a claim names must be a contiguous range of those present)."""
    from analysis.data import as_filters

    filters = as_filters(where)
    try:
        values = [float(lv.value) for lv in found]
    except (TypeError, ValueError):
        return filters
    if not values:
        return filters
    return [
        *filters,
        Filter(factor, ">=", _label(min(values))),
        Filter(factor, "<=", _label(max(values))),
    ]


def _replicated(found: Sequence[Level]) -> bool:
    return all(lv.n >= 2 for lv in found)


def _single(consistent: bool, detail: str) -> Verdict:
    if consistent:
        return Verdict("one run per cell", "none (one number per cell)", detail + "; consistent")
    return Verdict("does not follow", "none (one number per cell)", detail + "; contradicts it")


def has_trials(db: Database, where: Sequence[str | Filter]) -> int:
    """How many ok, non-warm-up trials the selection holds (0 when a column it names is absent)."""
    from analysis.data import VIEW, as_filters, view_columns, where_clause

    with connect(db) as con:
        columns = view_columns(con)
        filters = as_filters(where)
        if any(f.column not in columns for f in filters):
            return 0
        sql, params = where_clause(columns, filters)
        row = con.execute(f"SELECT count(*) FROM {VIEW}{sql}", params).fetchone()
    return int(row[0]) if row else 0
