"""Post-hoc comparisons (``anova(..., posthoc=...)``), pinned against scipy, statsmodels and
pingouin on the raw rows."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats
from statsmodels.stats.multicomp import pairwise_tukeyhsd
from statsmodels.stats.multitest import multipletests

from analysis import AnalysisError, anova
from analysis.posthoc import (
    PAIR_COLUMNS,
    POSTHOC_METHODS,
    PosthocResult,
    check_method,
    holm,
)

RTOL = 1e-9
OFFSET = 1e12


@pytest.fixture
def four(rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Four levels, unequal sizes and spreads (one pair close, so not every pair rejects)."""
    return {
        1: rng.normal(4.0, 0.30, 12),
        2: rng.normal(3.1, 0.20, 9),
        4: rng.normal(3.0, 0.45, 15),
        8: rng.normal(2.7, 0.25, 7),
    }


@pytest.fixture
def four_db(make_db, trials_for, four):
    return make_db(trials_for(four))


def frame_of(groups: dict) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": np.concatenate(list(groups.values())),
            "g": np.repeat([str(k) for k in groups], [len(v) for v in groups.values()]),
        }
    )


def pair_index(groups: dict) -> list[tuple[int, int]]:
    return list(combinations(range(len(groups)), 2))


# -- Tukey-Kramer ---------------------------------------------------------------------------
def test_tukey_matches_scipy_tukey_hsd(four_db, four):
    res = anova(four_db, group="workers", posthoc="tukey").posthoc
    assert isinstance(res, PosthocResult) and res.method == "tukey"
    ref = stats.tukey_hsd(*four.values())
    ci = ref.confidence_interval(confidence_level=0.95)
    levels = [str(k) for k in four]
    assert [(p.a, p.b) for p in res.pairs] == [(levels[i], levels[j]) for i, j in pair_index(four)]
    for p, (i, j) in zip(res.pairs, pair_index(four), strict=True):
        assert p.mean_diff == pytest.approx(ref.statistic[i, j], rel=RTOL)
        assert p.p_value == pytest.approx(ref.pvalue[i, j], rel=1e-6, abs=1e-12)
        assert p.ci_low == pytest.approx(ci.low[i, j], rel=1e-7)
        assert p.ci_high == pytest.approx(ci.high[i, j], rel=1e-7)
        assert p.df == sum(len(v) for v in four.values()) - 4
        assert p.reject == (ref.pvalue[i, j] < 0.05)
    assert {p.reject for p in res.pairs} == {True, False}


def test_tukey_matches_statsmodels_and_pingouin(four_db, four):
    res = anova(four_db, group="workers", posthoc="tukey").posthoc
    df = frame_of(four)
    sm = pairwise_tukeyhsd(df["x"], df["g"])  # groups sorted as text: "1" "2" "4" "8" here
    conf = np.asarray(sm.confint)
    for k, p in enumerate(res.pairs):
        # statsmodels reports group2 - group1, we report a - b
        assert p.mean_diff == pytest.approx(-sm.meandiffs[k], rel=RTOL)
        assert p.p_value == pytest.approx(sm.pvalues[k], rel=1e-6, abs=1e-12)
        assert p.ci_low == pytest.approx(-conf[k, 1], rel=1e-6)
        assert p.ci_high == pytest.approx(-conf[k, 0], rel=1e-6)
        assert p.reject == bool(sm.reject[k])
    pt = pg.pairwise_tukey(data=df, dv="x", between="g")
    for p, row in zip(res.pairs, pt.itertuples(), strict=True):
        assert (p.a, p.b) == (row.A, row.B)
        assert p.se == pytest.approx(row.se, rel=RTOL)
        assert p.statistic == pytest.approx(row.T, rel=RTOL)


def test_tukey_alpha_sets_ci_level_and_reject(four_db, four):
    res = anova(four_db, group="workers", posthoc="tukey", alpha=0.01).posthoc
    ref = stats.tukey_hsd(*four.values())
    ci = ref.confidence_interval(confidence_level=0.99)
    for p, (i, j) in zip(res.pairs, pair_index(four), strict=True):
        assert p.ci_low == pytest.approx(ci.low[i, j], rel=1e-7)
        assert p.ci_high == pytest.approx(ci.high[i, j], rel=1e-7)
        assert p.reject == (ref.pvalue[i, j] < 0.01)
    assert res.alpha == 0.01


# -- Games-Howell ---------------------------------------------------------------------------
def test_games_howell_matches_pingouin(four_db, four):
    res = anova(four_db, group="workers", posthoc="games-howell").posthoc
    ref = pg.pairwise_gameshowell(data=frame_of(four), dv="x", between="g")
    assert len(ref) == len(res.pairs) == 6
    for p, row in zip(res.pairs, ref.itertuples(), strict=True):
        assert (p.a, p.b) == (row.A, row.B)
        assert p.mean_diff == pytest.approx(row.diff, rel=RTOL)
        assert p.se == pytest.approx(row.se, rel=RTOL)
        assert p.statistic == pytest.approx(row.T, rel=RTOL)
        assert p.df == pytest.approx(row.df, rel=RTOL)
        assert p.p_value == pytest.approx(row.pval, rel=1e-6, abs=1e-12)


def test_games_howell_matches_scipy_unequal_var_tukey(four_db, four):
    # scipy >= 1.15: tukey_hsd(equal_var=False) is Games-Howell, with its intervals
    res = anova(four_db, group="workers", posthoc="games-howell").posthoc
    ref = stats.tukey_hsd(*four.values(), equal_var=False)
    ci = ref.confidence_interval(confidence_level=0.95)
    for p, (i, j) in zip(res.pairs, pair_index(four), strict=True):
        assert p.mean_diff == pytest.approx(ref.statistic[i, j], rel=RTOL)
        assert p.p_value == pytest.approx(ref.pvalue[i, j], rel=1e-6, abs=1e-12)
        assert p.ci_low == pytest.approx(ci.low[i, j], rel=1e-6)
        assert p.ci_high == pytest.approx(ci.high[i, j], rel=1e-6)
        assert p.reject == (ref.pvalue[i, j] < 0.05)


# -- pairwise Welch + Holm ------------------------------------------------------------------
def test_pairwise_welch_holm_matches_scipy_and_statsmodels(four_db, four):
    res = anova(four_db, group="workers", posthoc="pairwise").posthoc
    values = list(four.values())
    tests = [stats.ttest_ind(values[i], values[j], equal_var=False) for i, j in pair_index(four)]
    reject, adjusted, _, _ = multipletests([t.pvalue for t in tests], alpha=0.05, method="holm")
    for p, t, adj, rej, (i, j) in zip(
        res.pairs, tests, adjusted, reject, pair_index(four), strict=True
    ):
        assert p.mean_diff == pytest.approx(values[i].mean() - values[j].mean(), rel=RTOL)
        assert p.statistic == pytest.approx(t.statistic, rel=RTOL)
        assert p.df == pytest.approx(t.df, rel=RTOL)
        assert p.se == pytest.approx(p.mean_diff / t.statistic, rel=RTOL)
        assert p.p_value == pytest.approx(adj, rel=1e-7)
        assert p.reject == bool(rej)
        assert math.isnan(p.ci_low) and math.isnan(p.ci_high)  # Holm: no simultaneous CI
    assert {p.reject for p in res.pairs} == {True, False}


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(3)
    p = [*rng.uniform(0, 0.08, 9), 0.02, 0.02, 1.0, 0.0]  # ties, a 1 and a 0
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), rel=1e-12)
    # NaN stays NaN and is not counted in the family
    with_nan = holm([0.01, math.nan, 0.04])
    assert with_nan[0] == pytest.approx(multipletests([0.01, 0.04], method="holm")[1][0])
    assert math.isnan(with_nan[1])


# -- ill-conditioned data -------------------------------------------------------------------
@pytest.mark.parametrize("method", POSTHOC_METHODS)
def test_large_offset_matches_scipy_on_offset_free_data(make_db, rng, trials_for, method):
    samples = {
        1: OFFSET + rng.normal(0.0, 0.01, 20),
        2: OFFSET + 0.006 + rng.normal(0.0, 0.02, 25),
        3: OFFSET + 0.012 + rng.normal(0.0, 0.01, 22),
    }
    # scipy's group means of values near 1e12 round at ulp(1e12) ~ 1.2e-4, a sizeable part of
    # the 0.006 steps; x - 1e12 is exact here (Sterbenz), so scipy on it is the reference
    free = [v - OFFSET for v in samples.values()]
    res = anova(make_db(trials_for(samples)), group="workers", posthoc=method).posthoc
    pairs = pair_index(samples)
    if method == "pairwise":
        tests = [stats.ttest_ind(free[i], free[j], equal_var=False) for i, j in pairs]
        adjusted = multipletests([t.pvalue for t in tests], method="holm")[1]
        for p, t, adj in zip(res.pairs, tests, adjusted, strict=True):
            assert p.statistic == pytest.approx(t.statistic, rel=1e-6)
            assert p.p_value == pytest.approx(adj, rel=1e-5)
        return
    ref = stats.tukey_hsd(*free, equal_var=method == "tukey")
    ci = ref.confidence_interval()
    for p, (i, j) in zip(res.pairs, pairs, strict=True):
        assert p.mean_diff == pytest.approx(ref.statistic[i, j], rel=1e-6)
        assert p.p_value == pytest.approx(ref.pvalue[i, j], rel=1e-5, abs=1e-12)
        assert p.ci_low == pytest.approx(ci.low[i, j], rel=1e-6)
        assert p.ci_high == pytest.approx(ci.high[i, j], rel=1e-6)


@pytest.mark.parametrize("scale", [1e300, 1e-300])
@pytest.mark.parametrize("method", POSTHOC_METHODS)
def test_extreme_magnitudes_match_scipy_on_the_unit_data(make_db, rng, trials_for, method, scale):
    """Issue 12: 1e300 (squares overflow) and 1e-300 (squares underflow): scipy's answer on the
    data at unit scale, differences, standard errors and intervals multiplied back."""
    unit = {1: rng.normal(3.0, 0.2, 9), 2: rng.normal(3.3, 0.4, 11), 3: rng.normal(3.1, 0.2, 8)}
    samples = {k: v * scale for k, v in unit.items()}
    free = [v / scale for v in samples.values()]
    res = anova(make_db(trials_for(samples)), group="workers", posthoc=method).posthoc
    pairs = pair_index(samples)
    if method == "pairwise":
        tests = [stats.ttest_ind(free[i], free[j], equal_var=False) for i, j in pairs]
        adjusted = multipletests([t.pvalue for t in tests], method="holm")[1]
        for p, t, adj, (i, j) in zip(res.pairs, tests, adjusted, pairs, strict=True):
            assert p.statistic == pytest.approx(t.statistic, rel=1e-6)
            assert p.p_value == pytest.approx(adj, rel=1e-5)
            diff = free[i].mean() - free[j].mean()
            assert p.mean_diff == pytest.approx(diff * scale, rel=1e-6)
            assert p.se == pytest.approx(diff / t.statistic * scale, rel=1e-6)
        return
    ref = stats.tukey_hsd(*free, equal_var=method == "tukey")
    ci = ref.confidence_interval()
    for p, (i, j) in zip(res.pairs, pairs, strict=True):
        assert math.isfinite(p.se) and p.se > 0
        assert p.mean_diff == pytest.approx(ref.statistic[i, j] * scale, rel=1e-6)
        assert p.p_value == pytest.approx(ref.pvalue[i, j], rel=1e-5, abs=1e-12)
        assert p.ci_low == pytest.approx(ci.low[i, j] * scale, rel=1e-6)
        assert p.ci_high == pytest.approx(ci.high[i, j] * scale, rel=1e-6)


def test_tables_carry_every_statistic_of_the_text(four_db):
    res = anova(four_db, group="workers", posthoc="games-howell").posthoc
    tables = res.tables()
    assert tables[0].name == "pairs"
    frame = tables[0].frame
    # the text: a, b, mean_diff, se, t, df, p_adj, ci_low, ci_high, reject; method and alpha
    for column in (*PAIR_COLUMNS, "method", "alpha"):
        assert column in frame.columns, column
    assert len(frame) == len(res.pairs) and set(frame["method"]) == {"games-howell"}
    assert list(frame["p_value"]) == [p.p_value for p in res.pairs]


# -- degenerate pairs, errors, shapes ----------------------------------------------------------
@pytest.mark.parametrize("method", ["games-howell", "pairwise"])
@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, on [2, 2, 2]
def test_pair_of_zero_variance_levels_is_nan_with_a_note(make_db, trials_for, method):
    samples = {1: np.array([2.0, 2.0, 2.0]), 2: np.array([3.0, 3.0]), 4: np.array([1.0, 2.5, 4.0])}
    res = anova(make_db(trials_for(samples)), group="workers", posthoc=method).posthoc
    first = res.pairs[0]
    assert (first.a, first.b) == ("1", "2")
    assert first.mean_diff == -1.0
    assert math.isnan(first.statistic) and math.isnan(first.p_value) and not first.reject
    assert res.notes == (
        "1 vs 2: both levels have zero variance, so the pair's test is undefined (left out of "
        "the comparison)",
    )
    assert "note: 1 vs 2" in str(res)
    if method == "pairwise":  # the Holm family is the two defined pairs
        tests = [stats.ttest_ind(samples[1], samples[4], equal_var=False)]
        tests.append(stats.ttest_ind(samples[2], samples[4], equal_var=False))
        adjusted = multipletests([t.pvalue for t in tests], method="holm")[1]
        assert [p.p_value for p in res.pairs[1:]] == pytest.approx(list(adjusted), rel=1e-7)


def test_unknown_method_lists_the_allowed_names(db):
    with pytest.raises(AnalysisError, match=r"tukey, games-howell, pairwise") as info:
        anova(db, group="workers", posthoc="bonferroni")
    assert "\n" not in str(info.value)
    with pytest.raises(AnalysisError, match="'Tukey' is not a post-hoc method"):
        check_method("Tukey")


def test_result_shapes(db):
    res = anova(db, group="workers", posthoc="games-howell").posthoc
    d = res.to_dict()
    assert list(d) == ["method", "metric", "group", "alpha", "pairs", "notes"]
    assert list(d["pairs"][0]) == list(PAIR_COLUMNS)
    frame = res.to_frame()
    assert list(frame.columns) == list(PAIR_COLUMNS)
    assert list(zip(frame["a"], frame["b"], strict=True)) == [("1", "2"), ("1", "4"), ("2", "4")]
    assert frame["reject"].dtype == bool
    text = str(res)
    assert text.startswith("Post-hoc comparisons of train_s by workers: Games-Howell")
    assert "ci_low (95%)" in text and "p_adj" in text
    tex = res.to_latex()
    assert tex.startswith("\\begin{tabular}") and "mean\\_diff" in tex
    holm_text = str(anova(db, group="workers", posthoc="pairwise").posthoc)
    assert "Holm has no simultaneous CI" in holm_text and "ci_low" not in holm_text
