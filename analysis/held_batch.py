"""The stratified t-test, power analysis and one-way ANOVA of :mod:`analysis.held`, batched: the
per-level statistics of every stratum come from one pair of plain GROUP BY passes
(:func:`analysis.query.level_stats`) instead of a handful of queries per stratum. A stratum the
batch cannot answer (a level missing, values that need scaling) runs the plain analysis, which
says what is wrong or scales."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from analysis.data import Database, Filter, Selection, connect, format_level, select
from analysis.errors import AnalysisError
from analysis.held import Pool, _two_levels, plan
from analysis.options import ALPHA, CONFIDENCE, DEFAULT_SEED, N_BOOT
from analysis.strata import Plan, StratifiedResult, level_matches, run_strata

if TYPE_CHECKING:
    import duckdb

    from analysis.anova import AnovaResult
    from analysis.data import GroupMoments
    from analysis.power import PowerResult
    from analysis.query import LevelStats
    from analysis.ttest import TtestResult


def level_extent(
    p: Plan, *, metric: str, keys: Sequence[str]
) -> dict[tuple[Any, ...], tuple[int, float, float]] | None:
    """Per combination of ``keys`` (stored values, none NULL): the trial count, the minimum of
    ``metric`` and its largest magnitude, from the cells the plan was made from (pass 1 of
    :func:`analysis.query.level_stats` without a scan); None when the plan has no extents."""
    cells = p.cells
    if cells is None or metric not in cells.extents:
        return None
    idx = [cells.index(k) for k in keys]
    out: dict[tuple[Any, ...], tuple[int, float, float]] = {}
    for (values, _, n), (lo, hi) in zip(cells.rows, cells.extents[metric], strict=True):
        key = tuple(values[i] for i in idx)
        if any(v is None for v in key):
            continue
        c, m, big = out.get(key, (0, lo, 0.0))
        out[key] = (c + n, min(m, lo), max(big, abs(lo), abs(hi)))
    return out


def _pair_batch(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    p: Plan,
    *,
    metric: str,
    group: str,
    a: str,
    b: str,
    medians: bool = True,
) -> dict[tuple[Any, ...], dict[str, LevelStats]]:
    """Per stratum (its values as :class:`Filter` text): the statistics of the levels matching
    ``a`` or ``b``, from one GROUP BY pass over every stratum (two without the plan's extents:
    :func:`analysis.query.level_stats`). A stratum whose values need scaling (in any level) is
    left out: the plain analysis scales it."""
    from analysis.data import quote
    from analysis.query import level_stats, power_of_two_scale

    out: dict[tuple[Any, ...], dict[str, LevelStats]] = {}
    n = len(p.split)
    keys = [*p.split, group]
    extent = level_extent(p, metric=metric, keys=keys)
    where: list[str] = []
    params: list[Any] = []
    if extent is not None:
        big: dict[tuple[Any, ...], float] = {}
        for k, (_, _, m) in extent.items():
            big[k[:n]] = max(big.get(k[:n], 0.0), m)
        keep = {s for s, m in big.items() if power_of_two_scale(m) == 1.0}
        two = _two_levels(a, b)
        extent = {k: v for k, v in extent.items() if k[:n] in keep and two((k[-1],))}
        stored = sorted({k[-1] for k in extent}, key=repr)
        if not stored:
            return out
        where = [f"{quote(group)} IN ({', '.join('?' * len(stored))})"]
        params = stored
    for r in level_stats(con, sel, metric=metric, keys=keys, strata=n, quartiles=medians,
                         spread=False, extent=extent, where=where, params=params):  # fmt: skip
        key = tuple(None if v is None else format_level(v) for v in r.key[:n])
        out.setdefault(key, {})[format_level(r.key[-1])] = r
    return out


def _pair_of(
    levels: dict[str, LevelStats], a: str, b: str, group: str
) -> tuple[LevelStats, LevelStats] | None:
    """The two levels' statistics when both are present, distinct and at unit scale (else
    None: the plain analysis then runs and says what is wrong, or scales)."""
    from analysis.data import GroupMoments
    from analysis.pair_levels import find_level

    moments = {k: GroupMoments(k, v.n, v.shift, v.mean_dev, v.var) for k, v in levels.items()}
    try:
        la = find_level(moments, str(a), option="--a", group=group).level
        lb = find_level(moments, str(b), option="--b", group=group).level
    except AnalysisError:
        return None
    if la == lb or levels[la].scale != 1.0:
        return None
    return levels[la], levels[lb]


R = TypeVar("R")


def _pair_strata(
    db: Database,
    *,
    group: str,
    a: str,
    b: str,
    metric: str,
    where: Sequence[str | Filter],
    include_warmup: bool,
    pool: Pool,
    title: str,
    medians: bool,
    plain: Callable[..., R],
    options: dict[str, Any],
    of_pair: Callable[[duckdb.DuckDBPyConnection, Selection, tuple[LevelStats, LevelStats]], R],
) -> StratifiedResult[R]:
    """A comparison of ``group=a`` with ``group=b`` once per stratum: the plan, the statistics
    of both levels in every stratum from one batch (:func:`_pair_batch`; ``medians``: with the
    quartiles), then per stratum ``of_pair(con, stratum selection, (level a, level b))``, or
    the unbatched analysis ``plain`` with ``options`` (it scales, or says what is wrong) where
    the batch has no unit-scale pair."""
    if str(a) == str(b):
        raise AnalysisError(f"--a and --b are both {a!r}; give two different levels of {group}")
    with connect(db) as con:
        sel = select(con, metric=metric, group=[group], where=where,
                     include_warmup=include_warmup)  # fmt: skip
        p = plan(con, sel, compared=[group], required=[metric, group], pool=pool,
                 keep=_two_levels(a, b))  # fmt: skip
        batch = _pair_batch(con, sel, p, metric=metric, group=group, a=a, b=b, medians=medians)

        def run(extra: tuple[Filter, ...]) -> R:
            pair = None
            if len(extra) == len(p.split):
                pair = _pair_of(batch.get(tuple(f.value for f in extra), {}), a, b, group)
            filters = [*sel.filters, *extra]
            if pair is None:
                return plain(con, metric=metric, group=group, a=a, b=b,
                             include_warmup=include_warmup, where=filters, **options)  # fmt: skip
            stratum = select(con, metric=metric, group=[group], where=filters,
                             include_warmup=include_warmup, columns=sel.columns)  # fmt: skip
            return of_pair(con, stratum, pair)

        present = {lv[0] for s in p.strata for lv in s.levels}
        if not all(any(level_matches(v, str(x)) for v in present) for x in (a, b)):
            run(())  # raises: a level is not present
            raise AssertionError("unreachable")  # pragma: no cover
        return run_strata(p, run, title=title, where=sel.where_text)


def _moments(pair: tuple[LevelStats, LevelStats]) -> tuple[GroupMoments, GroupMoments]:
    from analysis.data import GroupMoments

    ga, gb = (GroupMoments(format_level(v.key[-1]), v.n, v.shift, v.mean_dev, v.var) for v in pair)
    return ga, gb


def ttest(
    db: Database,
    *,
    group: str,
    a: str,
    b: str,
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    pool: Pool = None,
    **options: Any,
) -> StratifiedResult[TtestResult]:
    """:func:`analysis.ttest.ttest` of ``group=a`` against ``group=b`` once per stratum; the
    moments and medians of every stratum come from one pair of GROUP BY passes."""
    from analysis.ttest import TITLES, check_options, ttest_of_pair
    from analysis.ttest import ttest as plain

    test = "student" if options.get("student") else str(options.get("test", "welch"))
    name, n_boot, seed, confidence = check_options(
        options.get("test", "welch"), bool(options.get("student", False)),
        options.get("n_boot", N_BOOT), options.get("seed", DEFAULT_SEED),
        options.get("confidence_level", CONFIDENCE),
    )  # fmt: skip

    def of_pair(
        con: duckdb.DuckDBPyConnection, stratum: Selection, pair: tuple[LevelStats, LevelStats]
    ) -> TtestResult:
        moments = _moments(pair)
        return ttest_of_pair(con, stratum, (pair[0].key[-1], pair[1].key[-1]),
                             moments, moments, 1.0, (pair[0].quartiles[1], pair[1].quartiles[1]),
                             metric=metric, group=group, test=name, n_boot=n_boot, seed=seed,
                             confidence_level=confidence)  # fmt: skip

    return _pair_strata(
        db, group=group, a=a, b=b, metric=metric, where=where, include_warmup=include_warmup,
        pool=pool, title=f"{TITLES.get(test, test)} of {metric}: {group}={a} vs {b}",
        medians=True, plain=plain, options=options, of_pair=of_pair,
    )  # fmt: skip


def power(
    db: Database,
    *,
    group: str,
    a: str,
    b: str,
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    pool: Pool = None,
    **options: Any,
) -> StratifiedResult[PowerResult]:
    """:func:`analysis.power.power` of ``group=a`` against ``group=b`` once per stratum; the
    moments of every stratum come from one pair of GROUP BY passes."""
    from analysis.power import power as plain
    from analysis.power import power_of_pair

    def of_pair(
        _: duckdb.DuckDBPyConnection, stratum: Selection, pair: tuple[LevelStats, LevelStats]
    ) -> PowerResult:
        moments = _moments(pair)
        return power_of_pair(stratum, moments, moments, 1.0, group=group, metric=metric,
                             effect=options.get("effect", 0.1), alpha=options.get("alpha", ALPHA),
                             target_power=options.get("target_power", 0.8))  # fmt: skip

    return _pair_strata(
        db, group=group, a=a, b=b, metric=metric, where=where, include_warmup=include_warmup,
        pool=pool, title=f"power of a t-test of {metric}: {group}={a} vs {b}",
        medians=False, plain=plain, options=options, of_pair=of_pair,
    )  # fmt: skip


def anova(
    db: Database,
    *,
    group: str,
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    pool: Pool = None,
    **options: Any,
) -> StratifiedResult[AnovaResult]:
    """:func:`analysis.anova.anova` across the levels of ``group`` once per stratum; the
    per-level statistics of every stratum come from one pair of GROUP BY passes
    (:func:`analysis.anova.anova_levels`), not a query per stratum."""
    from analysis.anova import anova as plain
    from analysis.anova import anova_levels, anova_of_levels, check_options

    opts = check_options(**options)
    title = f"One-way ANOVA of {metric} by {group}"
    with connect(db) as con:
        sel = select(con, metric=metric, group=[group], where=where,
                     include_warmup=include_warmup)  # fmt: skip
        p = plan(con, sel, compared=[group], required=[metric, group], pool=pool)
        batch = anova_levels(
            con,
            sel,
            metric=metric,
            group=group,
            strata=p.split,
            extent=level_extent(p, metric=metric, keys=[*p.split, group]),
        )
        texts = {tuple(None if v is None else format_level(v) for v in k): v
                 for k, v in batch.items()}  # fmt: skip

        def run(extra: tuple[Filter, ...]) -> AnovaResult:
            if len(extra) != len(p.split):  # the whole selection (too few levels): as plain
                return plain(con, metric=metric, group=group, where=[*sel.filters, *extra],
                             include_warmup=include_warmup, **opts)  # fmt: skip
            stratum = select(con, metric=metric, group=[group], where=[*sel.filters, *extra],
                             include_warmup=include_warmup, columns=sel.columns)  # fmt: skip
            levels = texts.get(tuple(f.value for f in extra), [])
            return anova_of_levels(con, stratum, levels, metric=metric, group=group, **opts)

        return run_strata(p, run, title=title, where=sel.where_text)
