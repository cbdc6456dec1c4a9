"""Does a claim hold? Decisions over a selection of trials, from the other analyses' results.

A claim names a metric, a factor and what it says about the factor's levels: that one level is
lower (``less``) or higher (``greater``) than another, that the metric falls or rises along the
factor (``trend``), that the levels do not differ (``no_difference``) or do (``differs``), which
levels are best (``best``), what value the metric has (``value``), or how much of its variance
a numeric column explains (``r_squared``).

Two readings of the same claim:

* on **repeated trials** (``replicated=True``): the test that decides it — Welch's t-test with
  Hedges' g and the ratio of means, Welch's one-way ANOVA, Spearman's rank correlation, the
  t interval of a mean, OLS — gives ``agrees``, ``disagrees`` or ``inconclusive`` (with the power
  to detect the claimed effect where a t-test decides);
* on **published numbers** (``replicated=False``), usually one number per cell: no test is
  possible, so a claim consistent with the numbers is ``one run per cell`` and one they
  contradict ``does not follow``; a claim the numbers decide exactly (an R², a count of pairs,
  a sign test over many pairs) ``follows``.

Every decision first checks that each compared level is one configuration (the selection holds
fixed what the claim does not compare); otherwise it says so instead of pooling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from analysis.data import Database, Filter
from analysis.errors import AnalysisError
from analysis.options import ALPHA, DEFAULT_SEED, N_BOOT
from analysis.verdict_levels import (
    Level,
    Verdict,
    _pick,
    _replicated,
    _restrict,
    _same,
    _single,
    has_trials,
    levels,
)
from analysis.verdict_text import _label, _means, _num, _p

__all__ = [
    "ALPHA",
    "DEFAULT_EFFECT",
    "KINDS",
    "NO_DIFFERENCE_TOLERANCE",
    "Level",
    "Verdict",
    "best",
    "compare_pairs",
    "compare_two",
    "has_trials",
    "levels",
    "r_squared",
    "spread",
    "trend",
    "value",
]

KINDS = ("less", "greater", "trend", "no_difference", "differs", "best", "value", "r_squared")
#: Relative spread of level means below which ``no_difference`` calls levels equal.
NO_DIFFERENCE_TOLERANCE = 0.10
#: Effect size (relative) the power of an inconclusive t-test is reported for, when the claim
#: gives none.
DEFAULT_EFFECT = 0.10


# -- two levels ----------------------------------------------------------------------------------


def compare_two(
    db: Database,
    *,
    metric: str,
    factor: str,
    a: Any,
    b: Any,
    expect: str,
    where: Sequence[str | Filter],
    effect: float | None = None,
    alpha: float = ALPHA,
) -> Verdict:
    """``metric`` at ``factor=a`` is ``expect`` (``less`` or ``greater``) than at ``factor=b``.

    Replicated: Welch's t-test (and Mann-Whitney's U as a check). When p >= alpha, the claimed
    size ``effect`` (relative to b: ratio 1 - effect for ``less``, 1 + effect for ``greater``)
    outside the ratio's Fieller interval (consistent with Welch's t) ``disagrees`` (the claimed
    effect is ruled out);
    otherwise ``inconclusive``, with the power to detect ``effect`` (10% when not given). One
    number per level: direction only."""
    from analysis.power import power
    from analysis.ttest import ttest

    if expect not in ("less", "greater"):
        raise AnalysisError(f"expect must be less or greater, not {expect!r}")
    found = levels(db, metric=metric, factor=factor, where=where)
    la, lb = _pick(found, a, factor), _pick(found, b, factor)
    ratio = la.mean / lb.mean if lb.mean else math.nan
    holds = la.mean < lb.mean if expect == "less" else la.mean > lb.mean
    if not _replicated((la, lb)):
        detail = f"{_means((la, lb), factor, metric)}; ratio {_num(ratio, 3)}"
        return _single(holds, detail)
    pair: dict[str, Any] = {
        "group": factor,
        "a": _label(a),
        "b": _label(b),
        "metric": metric,
        "where": where,
    }
    res = ttest(db, **pair, n_boot=N_BOOT, seed=DEFAULT_SEED)
    try:
        mwu = ttest(db, **pair, test="mwu", n_boot=0).p_value
    except AnalysisError:
        mwu = math.nan
    # Fieller's interval of the ratio: from the same variances and df as Welch's t, so it
    # excludes 1 exactly when the test rejects (unbounded, NaN, when mean_b is near 0)
    lo, hi = res.ratio_fieller_low, res.ratio_fieller_high
    if math.isnan(lo) or math.isnan(hi):
        lo, hi, shown = -math.inf, math.inf, "unbounded"
    else:
        shown = f"[{_num(lo, 3)}, {_num(hi, 3)}]"
    detail = (
        f"{_means((la, lb), factor, metric)}; ratio {_num(res.ratio, 3)}, Fieller 95% CI "
        f"{shown}; Welch t = "
        f"{_num(res.statistic)}, {_p(res.p_value)}; Hedges' g = {_num(res.hedges_g, 3)}; "
        f"Mann-Whitney {_p(mwu)}"
    )
    n = la.n + lb.n
    test = "Welch t-test"
    claimed = None if effect is None else (1 - effect if expect == "less" else 1 + effect)
    if res.p_value < alpha:
        if holds and claimed is not None and not lo <= claimed <= hi:
            detail += f"; the direction holds, the claimed ratio {_num(claimed, 3)} does not"
        return Verdict("agrees" if holds else "disagrees", test, detail, n)
    if claimed is not None and not lo <= claimed <= hi:
        detail += f"; the claimed ratio {_num(claimed, 3)} lies outside the interval"
        return Verdict("disagrees", test, detail, n)
    size = effect if effect is not None else DEFAULT_EFFECT
    try:
        pw = power(db, **pair, effect=size, alpha=alpha)
        detail += f"; power to detect a {size:.0%} difference: {pw.achieved_power:.2f}"
    except AnalysisError as exc:
        detail += f"; power not computed ({exc})"
    return Verdict("inconclusive", test, detail, n)


def compare_pairs(
    db: Database,
    *,
    metric: str,
    factor: str,
    a: Any,
    b: Any,
    expect: str,
    pair_by: str,
    where: Sequence[str | Filter],
    alpha: float = ALPHA,
) -> Verdict:
    """``a`` is ``expect`` than ``b`` within each level of ``pair_by`` (e.g. on every machine):
    the count of pairs that agree and an exact two-sided sign test (binomial, p = 1/2)."""
    from scipy.stats import binomtest

    from analysis.summary import summarize

    res = summarize(db, by=[pair_by, factor], metrics=[metric], where=where, n_boot=0)
    cells: dict[str, dict[str, float]] = {}
    for row in res.rows:
        mean = row[f"{metric}_mean"]
        if row["n"] and not math.isnan(mean):
            cells.setdefault(_label(row[pair_by]), {})[_label(row[factor])] = mean
    pairs = [
        (k, v[_label(a)], v[_label(b)])
        for k, v in sorted(cells.items())
        if _label(a) in v and _label(b) in v
    ]
    if not pairs:
        raise AnalysisError(f"no {pair_by} has trials at both {factor}={a} and {factor}={b}")
    wins = sum((x < y) if expect == "less" else (x > y) for _, x, y in pairs)
    p = binomtest(wins, len(pairs), 0.5).pvalue
    ratios = [x / y for _, x, y in pairs if y]
    detail = (
        f"{wins} of {len(pairs)} {pair_by} pairs have {factor}={_label(a)} {expect} than "
        f"{_label(b)}; ratios {_num(min(ratios), 3)}..{_num(max(ratios), 3)}; sign test {_p(p)}"
    )
    if wins == len(pairs) and p < alpha:
        verdict = "follows"
    elif wins == len(pairs):
        verdict = "one run per cell"
    else:
        verdict = "does not follow"
    return Verdict(verdict, "sign test over pairs", detail, len(pairs))


# -- several levels ------------------------------------------------------------------------------


def trend(
    db: Database,
    *,
    metric: str,
    factor: str,
    expect: str,
    where: Sequence[str | Filter],
    only: Sequence[Any] | None = None,
    alpha: float = ALPHA,
) -> Verdict:
    """``metric`` falls (``decreasing``) or rises (``increasing``) along numeric ``factor``.

    Replicated: Spearman's rank correlation of the trials with the factor (its sign and p) and
    Welch's ANOVA across the levels. One number per level: the first and last levels decide;
    the steps between are described."""
    from analysis.anova import anova
    from analysis.regress import regress

    if expect not in ("decreasing", "increasing"):
        raise AnalysisError(f"expect must be decreasing or increasing, not {expect!r}")
    found = levels(db, metric=metric, factor=factor, where=where, only=only)
    where = _restrict(where, factor, found)
    if len(found) < 2:
        raise AnalysisError(f"a trend needs at least two levels of {factor}; found {len(found)}")
    first, last = found[0], found[-1]
    holds = last.mean < first.mean if expect == "decreasing" else last.mean > first.mean
    steps = [b.mean - a.mean for a, b in zip(found, found[1:], strict=False)]
    monotone = all(s < 0 for s in steps) if expect == "decreasing" else all(s > 0 for s in steps)
    change = (last.mean - first.mean) / first.mean if first.mean else math.nan
    detail = (
        f"{_means(found, factor, metric)}; {_label(first.value)} -> {_label(last.value)}: "
        f"{change:+.1%}" + ("" if monotone else " (not monotone)")
    )
    if not _replicated(found):
        return _single(holds, detail)
    fit = regress(db, y=metric, x=[factor], where=where).fits[0]
    corr = fit.correlations[0]
    res = anova(db, group=factor, metric=metric, where=where)
    detail += (
        f"; Spearman rho = {_num(corr.spearman_rho, 3)}, {_p(corr.spearman_p)}; Welch ANOVA "
        f"F = {_num(res.welch_statistic, 4)}, {_p(res.welch_p_value)}"
    )
    n = sum(lv.n for lv in found)
    test = "Spearman rank correlation"
    if corr.spearman_p < alpha:
        right_sign = corr.spearman_rho < 0 if expect == "decreasing" else corr.spearman_rho > 0
        return Verdict("agrees" if right_sign else "disagrees", test, detail, n)
    return Verdict("inconclusive", test, detail, n)


def spread(
    db: Database,
    *,
    metric: str,
    factor: str,
    expect: str,
    where: Sequence[str | Filter],
    tolerance: float = NO_DIFFERENCE_TOLERANCE,
    only: Sequence[Any] | None = None,
    alpha: float = ALPHA,
) -> Verdict:
    """The levels of ``factor`` differ (``expect="differs"``) or do not (``"same"``).

    Replicated: Welch's one-way ANOVA; for ``same`` the levels must also lie within
    ``tolerance`` of each other (relative range of the means), since a non-significant test
    alone does not show equality. One number per level: the relative range decides ``same``;
    ``differs`` cannot be read off single numbers."""
    from analysis.anova import anova

    if expect not in ("differs", "same"):
        raise AnalysisError(f"expect must be differs or same, not {expect!r}")
    found = levels(db, metric=metric, factor=factor, where=where, only=only)
    where = _restrict(where, factor, found)
    if len(found) < 2:
        raise AnalysisError(f"a comparison needs two levels of {factor}; found {len(found)}")
    means = [lv.mean for lv in found]
    rel = (max(means) - min(means)) / min(means) if min(means) > 0 else math.nan
    detail = f"{_means(found, factor, metric)}; range {rel:.1%} of the smallest"
    if not _replicated(found):
        if expect == "same":
            return _single(rel <= tolerance, detail + f" (tolerance {tolerance:.0%})")
        return _single(rel > tolerance, detail + f" (tolerance {tolerance:.0%})")
    res = anova(db, group=factor, metric=metric, where=where)
    detail += (
        f"; Welch ANOVA F = {_num(res.welch_statistic, 4)} (df {_num(res.welch_df_num, 3)}, "
        f"{_num(res.welch_df_den, 3)}), {_p(res.welch_p_value)}; omega² = {_num(res.omega_sq, 3)}"
    )
    n = sum(lv.n for lv in found)
    test = "Welch's one-way ANOVA"
    significant = res.welch_p_value < alpha
    if expect == "differs":
        return Verdict("agrees" if significant else "inconclusive", test, detail, n)
    if significant and rel > tolerance:
        return Verdict("disagrees", test, detail, n)
    if not significant and rel <= tolerance:
        return Verdict("agrees", test, detail + f" (within {tolerance:.0%})", n)
    return Verdict("inconclusive", test, detail + f" (tolerance {tolerance:.0%})", n)


def best(
    db: Database,
    *,
    metric: str,
    factor: str,
    expect: Sequence[Any],
    goal: str,
    where: Sequence[str | Filter],
    tolerance: float = 0.0,
) -> Verdict:
    """The level(s) with the highest (``goal="max"``) or lowest (``"min"``) mean are among
    ``expect``: every level within ``tolerance`` (absolute) of the best counts as best."""
    if goal not in ("max", "min"):
        raise AnalysisError(f"goal must be max or min, not {goal!r}")
    found = levels(db, metric=metric, factor=factor, where=where)
    if not found:
        raise AnalysisError(f"no trials of {metric} for any {factor}")
    top = max(lv.mean for lv in found) if goal == "max" else min(lv.mean for lv in found)
    slack = tolerance + 1e-9 * abs(top)  # printed decimals: 0.99 - 0.985 is 0.005000000000000004
    winners = [lv for lv in found if abs(lv.mean - top) <= slack]
    inside = all(any(_same(w.value, e) for e in expect) for w in winners)
    detail = (
        f"{_means(found, factor, metric)}; best ({goal}) {factor}: "
        f"{', '.join(_label(w.value) for w in winners)}; claimed "
        f"{', '.join(_label(e) for e in expect)}"
    )
    n = sum(lv.n for lv in found)
    if not _replicated(found):
        return _single(inside, detail)
    return Verdict("agrees" if inside else "disagrees", f"{goal} of the level means", detail, n)


def value(
    db: Database,
    *,
    metric: str,
    expect: float,
    where: Sequence[str | Filter],
    tolerance: float,
    compare: str = "near",
) -> Verdict:
    """The mean of ``metric`` is near ``expect`` (within ``tolerance``, absolute), or at least
    (``compare="at_least"``) / at most (``"at_most"``) it."""
    from analysis.summary import summarize

    configs = summarize(db, by=["config_id"], metrics=[metric], where=where, n_boot=0).rows
    configs = [r for r in configs if r["n"] and not math.isnan(r[f"{metric}_mean"])]
    if len(configs) > 1:
        raise AnalysisError(
            f"the selection pools {len(configs)} configurations; fix the other factors with "
            "where conditions so it is one configuration"
        )
    res = summarize(db, by=[], metrics=[metric], where=where, n_boot=0)
    if not res.rows or not res.rows[0]["n"]:
        raise AnalysisError(f"no trials with {metric}")
    row = res.rows[0]
    n, mean = int(row["n"]), row[f"{metric}_mean"]
    lo, hi = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    if compare == "near":
        holds = abs(mean - expect) <= tolerance
        claim = f"within {_num(tolerance, 2)} of {_num(expect)}"
    elif compare == "at_least":
        holds = mean >= expect - tolerance
        claim = f"at least {_num(expect)}"
    elif compare == "at_most":
        holds = mean <= expect + tolerance
        claim = f"at most {_num(expect)}"
    else:
        raise AnalysisError(f"compare must be near, at_least or at_most, not {compare!r}")
    detail = f"mean {metric} {_num(mean)} over {n} trial{'s' if n != 1 else ''}"
    if n >= 2 and not math.isnan(lo):
        detail += f", 95% CI [{_num(lo)}, {_num(hi)}]"
    detail += f"; claimed {claim}"
    if n < 2:
        return _single(holds, detail)
    return Verdict("agrees" if holds else "disagrees", "mean with t interval", detail, n)


def r_squared(
    db: Database,
    *,
    y: str,
    x: str,
    where: Sequence[str | Filter],
    expect: float | None = None,
    tolerance: float = 0.0005,
) -> Verdict:
    """OLS of ``y`` on ``x``: R² (reproduces ``expect`` to ``tolerance``), slope and its p.
    With ``expect``, the verdict is whether the published R² is reproduced (``follows``);
    without, whether the slope is significant (``agrees`` / ``inconclusive``)."""
    from analysis.regress import regress

    fit = regress(db, y=y, x=[x], where=where).fits[0]
    slope = next(c for c in fit.coefficients if c.term != "intercept")
    detail = (
        f"n = {fit.n}; R² = {fit.r_squared:.3f}; slope {_num(slope.estimate, 3)} per unit of "
        f"{x}, {_p(slope.p_value)}; Pearson r = {_num(fit.correlations[0].pearson_r, 3)}"
    )
    if expect is not None:
        ok = abs(fit.r_squared - expect) <= tolerance
        detail += f"; claimed R² = {expect:g}"
        return Verdict("follows" if ok else "does not follow", "OLS", detail, fit.n)
    verdict = "agrees" if slope.p_value < ALPHA else "inconclusive"
    return Verdict(verdict, "OLS", detail, fit.n)
