from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pingouin as pg
import pytest
from scipy import special, stats

from analysis import AnalysisError, TtestResult, ttest

# the modules whose bounds the tests lower (``analysis.ttest`` re-exports their values)
mwu_module = importlib.import_module("analysis.mwu")
ratio_module = importlib.import_module("analysis.ratio")
ROOT = Path(__file__).resolve().parents[2]

RTOL = 1e-9


def cohens_d(x: np.ndarray, y: np.ndarray) -> float:
    nx, ny = len(x), len(y)
    pooled = ((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2)
    return (x.mean() - y.mean()) / np.sqrt(pooled)


@pytest.mark.parametrize("student", [False, True])
def test_matches_scipy_ttest_ind(db, groups, student):
    x, y = groups[1], groups[4]
    res = ttest(db, group="workers", a="1", b="4", student=student)
    ref = stats.ttest_ind(x, y, equal_var=student)
    assert isinstance(res, TtestResult)
    assert res.equal_var is student
    assert res.statistic == pytest.approx(ref.statistic, rel=RTOL)
    assert res.p_value == pytest.approx(ref.pvalue, rel=RTOL)
    assert res.df == pytest.approx(ref.df, rel=RTOL)
    ci = ref.confidence_interval()
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), rel=RTOL)
    ci99 = ref.confidence_interval(confidence_level=0.99)
    assert res.confidence_interval(0.99) == pytest.approx((ci99.low, ci99.high), rel=RTOL)
    assert res.confidence_interval() == pytest.approx((res.ci_low, res.ci_high), rel=1e-12)
    assert res.mean_diff == pytest.approx(x.mean() - y.mean(), rel=RTOL)
    assert res.cohens_d == pytest.approx(cohens_d(x, y), rel=RTOL)
    assert (res.n_a, res.n_b) == (len(x), len(y))
    assert res.mean_a == pytest.approx(x.mean(), rel=1e-12)
    assert res.sd_b == pytest.approx(y.std(ddof=1), rel=1e-12)


def test_direction_follows_a_minus_b(db, groups):
    ab = ttest(db, group="workers", a="1", b="2")
    ba = ttest(db, group="workers", a="2", b="1")
    assert ab.mean_diff > 0
    assert ba.statistic == pytest.approx(-ab.statistic, rel=1e-12)
    assert (ba.ci_low, ba.ci_high) == pytest.approx((-ab.ci_high, -ab.ci_low), rel=1e-12)


def test_warmup_and_failed_excluded(db, groups):
    # workers=2 has a failed trial with train_s=555 and a warm-up at 999
    res = ttest(db, group="workers", a="1", b="2")
    assert res.n_b == len(groups[2])
    assert res.mean_b == pytest.approx(groups[2].mean(), rel=1e-12)


@pytest.mark.parametrize("student", [False, True])
def test_ill_conditioned_large_offset(make_db, rng, trials_for, student):
    offset = 1e12
    x = offset + rng.normal(0.0, 0.01, 30)
    y = offset + 0.005 + rng.normal(0.0, 0.01, 40)
    path = make_db(trials_for({1: x, 2: y}))
    res = ttest(path, group="workers", a="1", b="2", student=student)
    # t is shift-invariant and x - 1e12 is exact in float64: the accurate reference is scipy on
    # the exactly shifted data (scipy on the raw data loses digits to np.mean at 1e12 itself).
    ref = stats.ttest_ind(x - offset, y - offset, equal_var=student)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-6)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert res.df == pytest.approx(ref.df, rel=1e-6)
    ci = ref.confidence_interval()
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-6)
    assert res.mean_diff == pytest.approx((x - offset).mean() - (y - offset).mean(), rel=1e-6)
    assert res.cohens_d == pytest.approx(cohens_d(x - offset, y - offset), rel=1e-6)
    # and scipy on the raw float64 rows agrees to the precision it has there
    raw = stats.ttest_ind(x.astype(np.float64), y.astype(np.float64), equal_var=student)
    assert res.statistic == pytest.approx(raw.statistic, rel=1e-2)


def test_level_given_as_float_text_or_number(make_db, rng, trials_for):
    path = make_db(trials_for({1: rng.normal(size=4), 2: rng.normal(size=4)}))
    assert ttest(path, group="workers", a="1", b="2").n_a == 4
    res = ttest(path, group="workers", a="1.0", b="2")
    assert (res.a, res.b) == ("1", "2")
    with pytest.raises(AnalysisError, match="same level"):
        ttest(path, group="workers", a="1.0", b="1")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"a": "1", "b": "8"}, r"--b '8' is not a level of workers.*levels present: 1, 2, 4"),
        ({"a": "x", "b": "1"}, r"--a 'x' is not a level of workers"),
        ({"a": "1", "b": "1"}, r"--a and --b are both '1'"),
        ({"a": "1", "b": "2", "metric": "bogus"}, r"--metric 'bogus' is not a column"),
        ({"a": "1", "b": "2", "where": ["workers>4"]}, r"no trials match --where workers>4"),
    ],
)
def test_user_errors(db, kwargs, match):
    with pytest.raises(AnalysisError, match=match) as info:
        ttest(db, group="workers", **kwargs)
    assert "\n" not in str(info.value)


def test_level_with_one_trial(make_db, trials_for):
    path = make_db(trials_for({1: [1.0, 2.0, 3.0], 2: [5.0]}))
    with pytest.raises(AnalysisError, match="level 2 has only 1 trial"):
        ttest(path, group="workers", a="1", b="2")


def test_zero_variance_in_both_levels(make_db, trials_for):
    path = make_db(trials_for({1: [1.0, 1.0], 2: [5.0, 5.0, 5.0]}))
    with pytest.raises(AnalysisError, match="zero variance"):
        ttest(path, group="workers", a="1", b="2")


def test_result_shapes(db):
    res = ttest(db, group="workers", a="1", b="2", where=["engine=dask"])
    d = res.to_dict()
    for key in ("statistic", "p_value", "df", "mean_diff", "ci_low", "ci_high", "cohens_d"):
        assert isinstance(d[key], float)
    assert d["where"] == ["engine=dask"]
    assert d["a"] == "1" and d["b"] == "2" and d["equal_var"] is False
    frame = res.to_frame()
    assert len(frame) == 1 and "cohens_d" in frame.columns
    text = str(res)
    assert "Welch t-test" in text and "95% CI" in text and "where engine=dask" in text


def table_db(groups: dict[int, np.ndarray]):
    """An in-memory database whose ``observations`` is a plain table (workers, train_s): quick to
    fill with thousands of rows; ``ttest`` takes the open connection."""
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE observations (workers INTEGER, train_s DOUBLE)")
    rows = [(int(w), float(v)) for w, values in groups.items() for v in values]
    con.executemany("INSERT INTO observations VALUES (?, ?)", rows)
    return con


# -- test selection ------------------------------------------------------------------------------
def test_test_argument_and_student_alias(db, groups):
    by_name = ttest(db, group="workers", a="1", b="4", test="student", n_boot=0)
    by_flag = ttest(db, group="workers", a="1", b="4", student=True, n_boot=0)
    assert by_name == by_flag
    assert (by_name.test, by_name.equal_var, by_name.method) == ("student", True, "t")
    welch = ttest(db, group="workers", a="1", b="4", test="welch", n_boot=0)
    assert (welch.test, welch.equal_var) == ("welch", False)
    assert welch == ttest(db, group="workers", a="1", b="4", n_boot=0)
    ref = stats.ttest_ind(groups[1], groups[4], equal_var=True)
    assert by_name.statistic == pytest.approx(ref.statistic, rel=RTOL)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"test": "anova"}, r"--test 'anova' is not a test; use one of welch, student, mwu"),
        ({"test": "mwu", "student": True}, r"--student .* --test is mwu"),
        ({"n_boot": -1}, r"--bootstrap -1 is not a number of resamples"),
        ({"n_boot": 2.5}, r"--bootstrap 2.5"),
        ({"seed": -3}, r"--seed -3"),
        ({"confidence_level": 1.0}, r"--confidence 1.0 is not between 0 and 1"),
        ({"confidence_level": 0.0}, r"--confidence 0.0 is not between 0 and 1"),
    ],
)
def test_option_errors(db, kwargs, match):
    with pytest.raises(AnalysisError, match=match) as info:
        ttest(db, group="workers", a="1", b="2", **kwargs)
    assert "\n" not in str(info.value)


# -- Cohen's d and Hedges' g -----------------------------------------------------------------
def hedges_j(df: float) -> float:
    """Hedges' exact small-sample factor from scipy.special.gamma (its log beyond df = 340,
    where Gamma(df / 2) overflows)."""
    if df < 340:
        return special.gamma(df / 2) / (np.sqrt(df / 2) * special.gamma((df - 1) / 2))
    return np.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / np.sqrt(df / 2)


@pytest.mark.parametrize("test", ["welch", "student", "mwu"])
@pytest.mark.parametrize(("a", "b"), [(1, 4), (2, 1), (4, 2)])
def test_cohens_d_and_hedges_g(db, groups, test, a, b):
    x, y = groups[a], groups[b]
    res = ttest(db, group="workers", a=str(a), b=str(b), test=test, n_boot=0)
    df = len(x) + len(y) - 2
    assert res.cohens_d == pytest.approx(cohens_d(x, y), rel=RTOL)
    assert res.cohens_d == pytest.approx(pg.compute_effsize(x, y, eftype="cohen"), rel=RTOL)
    assert res.hedges_g == pytest.approx(cohens_d(x, y) * hedges_j(df), rel=RTOL)
    # pingouin's g uses the approximation J ~ 1 - 3 / (4 df - 1), about 0.035 / df^2 relative
    # above the exact factor (1.4e-4 here, df = 19 .. 25)
    g_pg = pg.compute_effsize(x, y, eftype="hedges")
    assert res.hedges_g == pytest.approx(g_pg, rel=0.04 / df**2 + 1e-12)
    assert res.hedges_g != pytest.approx(g_pg, rel=1e-9)  # the exact factor, not the approximation
    assert abs(res.hedges_g) < abs(res.cohens_d)


def test_hedges_g_factor_for_small_and_large_samples(rng):
    for n_a, n_b in ((2, 3), (90, 80), (2000, 1500)):
        x, y = rng.normal(1.0, 1.0, n_a), rng.normal(0.0, 2.0, n_b)
        res = ttest(table_db({1: x, 2: y}), group="workers", a="1", b="2", n_boot=0)
        assert res.hedges_g == pytest.approx(cohens_d(x, y) * hedges_j(n_a + n_b - 2), rel=1e-10)


# -- Mann-Whitney U ----------------------------------------------------------------------------
def mwu_db(make_db, trials_for, x, y):
    return make_db(trials_for({1: np.asarray(x, float), 2: np.asarray(y, float)}))


def check_mwu(res, x, y, *, method: str, offset: float = 0.0) -> None:
    """U, p (scipy's default method="auto"), effect sizes (pingouin) and medians (NumPy);
    ``offset`` is subtracted (exactly) before NumPy's means, which lose digits at 1e12."""
    ref = stats.mannwhitneyu(x, y)
    assert res.test == "mwu" and res.method == method
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ref_pg = pg.mwu(x, y)
    assert res.rank_biserial == pytest.approx(ref_pg["RBC"].iloc[0], rel=1e-12, abs=1e-15)
    assert res.cles == pytest.approx(ref_pg["CLES"].iloc[0], rel=1e-12)
    assert res.cles == pytest.approx(np.mean(np.sign(np.subtract.outer(x, y)) / 2 + 0.5))
    if method == "asymptotic" and ref.pvalue < 1:
        # scipy's p is 2 sf(|z|): |z| follows from it; z > 0 when x tends to be larger
        assert abs(res.z) == pytest.approx(stats.norm.isf(ref.pvalue / 2), rel=1e-7)
        assert np.sign(res.z) == np.sign(res.rank_biserial)
    assert (res.median_a, res.median_b) == pytest.approx((np.median(x), np.median(y)), rel=1e-12)
    assert np.isnan(res.df) and np.isnan(res.ci_low) and np.isnan(res.ci_high)
    assert res.mean_diff == pytest.approx(np.mean(x - offset) - np.mean(y - offset), rel=1e-9)


def test_mwu_with_ties(make_db, trials_for, rng):
    x = np.round(rng.normal(4.0, 0.3, 14), 1)  # rounded: ties within and across levels
    y = np.round(rng.normal(3.8, 0.4, 11), 1)
    assert len(np.unique(np.r_[x, y])) < len(x) + len(y)
    res = ttest(mwu_db(make_db, trials_for, x, y), group="workers", a="1", b="2", test="mwu")
    check_mwu(res, x, y, method="asymptotic")


def test_mwu_small_samples_with_ties_are_asymptotic(make_db, trials_for):
    x, y = [1.0, 2.0, 2.0, 5.0, 7.0], [2.0, 3.0, 4.0, 4.0, 6.0, 8.0]
    res = ttest(mwu_db(make_db, trials_for, x, y), group="workers", a="1", b="2", test="mwu")
    check_mwu(res, np.array(x), np.array(y), method="asymptotic")


@pytest.mark.parametrize(("n_a", "n_b"), [(6, 7), (3, 40), (8, 8), (2, 5)])
def test_mwu_small_samples_without_ties_are_exact(make_db, trials_for, rng, n_a, n_b):
    x, y = rng.normal(0.5, 1.0, n_a), rng.normal(0.0, 1.0, n_b)
    res = ttest(mwu_db(make_db, trials_for, x, y), group="workers", a="1", b="2", test="mwu")
    check_mwu(res, x, y, method="exact")
    ref = stats.mannwhitneyu(x, y, method="exact")
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_mwu_exact_cap_falls_back_to_asymptotic(make_db, trials_for, rng, monkeypatch):
    x, y = rng.normal(0.5, 1.0, 6), rng.normal(0.0, 1.0, 9)
    monkeypatch.setattr(mwu_module, "MWU_EXACT_MAX_U", 0)
    res = ttest(mwu_db(make_db, trials_for, x, y), group="workers", a="1", b="2", test="mwu")
    ref = stats.mannwhitneyu(x, y, method="asymptotic")
    assert res.method == "asymptotic"
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_mwu_large_samples(rng):
    x = rng.gamma(2.0, 1.0, 400)
    y = rng.gamma(2.0, 1.1, 500)
    res = ttest(table_db({1: x, 2: y}), group="workers", a="1", b="2", test="mwu")
    check_mwu(res, x, y, method="asymptotic")
    assert res.p_value == pytest.approx(
        stats.mannwhitneyu(x, y, method="asymptotic").pvalue, rel=1e-9
    )


def test_mwu_direction_follows_a_then_b(db, groups):
    ab = ttest(db, group="workers", a="2", b="4", test="mwu", n_boot=0)
    ba = ttest(db, group="workers", a="4", b="2", test="mwu", n_boot=0)
    assert ab.statistic + ba.statistic == pytest.approx(ab.n_a * ab.n_b)
    assert ab.rank_biserial == pytest.approx(-ba.rank_biserial, rel=1e-12)
    assert ab.z == pytest.approx(-ba.z, rel=1e-12)
    assert ab.p_value == pytest.approx(ba.p_value, rel=1e-12)
    assert ab.rank_biserial > 0  # workers=2 is slower than workers=4
    check_mwu(ab, groups[2], groups[4], method="asymptotic")


def test_mwu_every_value_tied_mirrors_scipy(make_db, trials_for):
    x, y = [3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0]
    path = mwu_db(make_db, trials_for, x, y)
    res = ttest(path, group="workers", a="1", b="2", test="mwu")
    ref = stats.mannwhitneyu(x, y)
    assert (res.statistic, res.p_value) == (ref.statistic, ref.pvalue) == (6.0, 1.0)
    assert (res.z, res.rank_biserial, res.cles) == (0.0, 0.0, 0.5)
    assert np.isnan(res.cohens_d) and np.isnan(res.hedges_g)
    assert res.ratio == 1.0 and (res.ratio_ci_low, res.ratio_ci_high) == (1.0, 1.0)
    assert "cohens_d and hedges_g undefined (neither level varies)" in str(res)
    with pytest.raises(AnalysisError, match="zero variance"):
        ttest(path, group="workers", a="1", b="2")


def test_mwu_constant_levels_that_differ(make_db, trials_for):
    x, y = [1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 5.0]
    res = ttest(mwu_db(make_db, trials_for, x, y), group="workers", a="1", b="2", test="mwu")
    check_mwu(res, np.array(x), np.array(y), method="asymptotic")
    assert res.rank_biserial == -1.0 and res.cles == 0.0 and np.isnan(res.cohens_d)


def test_mwu_at_large_offset(make_db, trials_for, rng):
    offset = 1e12
    x = offset + rng.normal(0.0, 0.01, 30)
    y = offset + 0.005 + rng.normal(0.0, 0.01, 40)
    res = ttest(mwu_db(make_db, trials_for, x, y), group="workers", a="1", b="2", test="mwu")
    check_mwu(res, x, y, method="asymptotic", offset=offset)  # ranks of raw float64 are exact
    assert res.median_a - offset == pytest.approx(np.median(x - offset), abs=2e-4)  # 1 ulp


def test_mwu_needs_two_trials_per_level(make_db, trials_for):
    path = mwu_db(make_db, trials_for, [1.0, 2.0, 3.0], [5.0])
    with pytest.raises(AnalysisError, match="level 2 has only 1 trial") as info:
        ttest(path, group="workers", a="1", b="2", test="mwu")
    assert "\n" not in str(info.value)


# -- medians -----------------------------------------------------------------------------------
@pytest.mark.parametrize("test", ["welch", "mwu"])
def test_medians_match_numpy(db, groups, test):
    res = ttest(db, group="workers", a="2", b="4", test=test, n_boot=0)  # odd n 9 and 15
    assert res.median_a == pytest.approx(np.median(groups[2]), rel=1e-12)
    res = ttest(db, group="workers", a="1", b="2", test=test, n_boot=0)  # even n 12
    assert res.median_a == pytest.approx(np.median(groups[1]), rel=1e-12)


# -- ratio of means ----------------------------------------------------------------------------
def exact_ratio(x: np.ndarray, y: np.ndarray) -> Fraction:
    return (sum(map(Fraction, x)) / len(x)) / (sum(map(Fraction, y)) / len(y))


def ratio_stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return x.mean(axis=axis) / y.mean(axis=axis)


def scipy_ratio_ci(
    x, y, *, confidence_level=0.95, statistic=ratio_stat, seed=1, n_resamples=100_000
):
    return stats.bootstrap(
        (x, y),
        statistic,
        method="percentile",
        n_resamples=n_resamples,
        paired=False,
        vectorized=True,
        confidence_level=confidence_level,
        rng=np.random.default_rng(seed),
    ).confidence_interval


@pytest.mark.parametrize("test", ["welch", "student", "mwu"])
def test_ratio_ci_matches_scipy_bootstrap(db, groups, test):
    x, y = groups[1], groups[4]
    res = ttest(db, group="workers", a="1", b="4", test=test, n_boot=20_000, seed=3)
    assert res.ratio == pytest.approx(float(exact_ratio(x, y)), rel=1e-15)
    ref = scipy_ratio_ci(x, y)
    # Monte Carlo error of 20k vs 100k resamples: about 0.2% of the endpoints here
    assert res.ratio_ci_method == "bootstrap" and (res.n_boot, res.seed) == (20_000, 3)
    assert (res.ratio_ci_low, res.ratio_ci_high) == pytest.approx((ref.low, ref.high), rel=0.01)
    assert res.ratio_ci_low < res.ratio < res.ratio_ci_high


def test_ratio_ci_other_confidence_level(db, groups):
    x, y = groups[2], groups[4]
    res = ttest(db, group="workers", a="2", b="4", n_boot=20_000, confidence_level=0.9)
    ref = scipy_ratio_ci(x, y, confidence_level=0.9)
    assert (res.ratio_ci_low, res.ratio_ci_high) == pytest.approx((ref.low, ref.high), rel=0.01)
    ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(confidence_level=0.9)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), rel=RTOL)
    assert "90% CI" in str(res)


def test_ratio_ci_normal_limit_for_large_samples(rng, monkeypatch):
    x = rng.gamma(4.0, 1.0, 300)
    y = rng.gamma(3.0, 1.0, 250)
    monkeypatch.setattr(ratio_module, "BOOT_MAX_DRAWS", 1000)
    res = ttest(table_db({1: x, 2: y}), group="workers", a="1", b="2", n_boot=20_000)
    assert res.ratio_ci_method == "bootstrap-normal"
    ref = scipy_ratio_ci(x, y, n_resamples=40_000)
    # the normal limit of each resample mean vs resampled rows: within 0.2% here
    assert (res.ratio_ci_low, res.ratio_ci_high) == pytest.approx((ref.low, ref.high), rel=0.01)
    assert "seed 0, normal limit of the means)" in str(res)


def test_ratio_bootstrap_is_seeded_and_chunking_does_not_change_it(db, monkeypatch):
    first = ttest(db, group="workers", a="1", b="2", n_boot=500, seed=7)
    assert first == ttest(db, group="workers", a="1", b="2", n_boot=500, seed=7)
    other = ttest(db, group="workers", a="1", b="2", n_boot=500, seed=8)
    assert other.ratio_ci_low != first.ratio_ci_low
    monkeypatch.setattr(ratio_module, "BOOT_CHUNK", 5)  # one resample per chunk
    assert first == ttest(db, group="workers", a="1", b="2", n_boot=500, seed=7)


def test_ratio_without_bootstrap(db, groups):
    res = ttest(db, group="workers", a="1", b="2", n_boot=0)
    assert res.ratio == pytest.approx(float(exact_ratio(groups[1], groups[2])), rel=1e-15)
    assert np.isnan(res.ratio_ci_low) and np.isnan(res.ratio_ci_high)
    assert res.ratio_ci_method == "none" and res.n_boot == 0
    assert "(no bootstrap interval)" in str(res)


def test_ratio_with_mean_b_zero(make_db, trials_for):
    path = make_db(trials_for({1: [1.0, 2.0, 3.0], 2: [-1.0, 1.0, -2.0, 2.0]}))
    with pytest.raises(AnalysisError, match=r"mean of train_s at workers=2 is 0") as info:
        ttest(path, group="workers", a="1", b="2")
    assert "\n" not in str(info.value)
    res = ttest(path, group="workers", a="1", b="2", n_boot=0)
    assert np.isnan(res.ratio) and res.ratio_ci_method == "none"
    assert "ratio (1 / 2) undefined (mean of 2 is 0)" in str(res)
    assert res.p_value == pytest.approx(
        stats.ttest_ind([1.0, 2.0, 3.0], [-1.0, 1.0, -2.0, 2.0], equal_var=False).pvalue,
        rel=RTOL,
    )


def test_ratio_bootstrap_hitting_mean_b_zero(make_db, trials_for):
    path = make_db(trials_for({1: [1.0, 2.0, 3.0], 2: [-1.0, 1.0, 1.0, -1.0, 1.0, 1.0]}))
    with pytest.raises(AnalysisError, match=r"0 in \d+ of 2000 bootstrap resamples"):
        ttest(path, group="workers", a="1", b="2")


@pytest.mark.parametrize("normal_limit", [False, True])
def test_ratio_at_large_offset(make_db, rng, trials_for, monkeypatch, normal_limit):
    offset = 1e12
    x = offset + rng.normal(0.0, 1.0, 30)
    y = offset + 0.5 + rng.normal(0.0, 1.0, 40)
    path = make_db(trials_for({1: x, 2: y}))
    if normal_limit:
        monkeypatch.setattr(ratio_module, "BOOT_MAX_DRAWS", 10)
    res = ttest(path, group="workers", a="1", b="2", n_boot=20_000)
    assert res.ratio_ci_method == ("bootstrap-normal" if normal_limit else "bootstrap")
    exact = exact_ratio(x, y)
    # within half an ulp of 1 of the exact rational ratio (ratio - 1 is about -5e-13)
    assert abs(Fraction(res.ratio) - exact) <= Fraction(2**-53)

    # reference: scipy's bootstrap of ratio - 1 = (mean x - mean y) / mean y on the exactly
    # shifted rows (x - 1e12 is exact), which keeps its digits at this offset
    def ratio_minus_one(u, v, axis=-1):
        return (u.mean(axis=axis) - v.mean(axis=axis)) / (offset + v.mean(axis=axis))

    ref = scipy_ratio_ci(x - offset, y - offset, statistic=ratio_minus_one)
    width = ref.high - ref.low
    assert 1e-13 < width < 1e-11
    low, high = res.ratio_ci_low - 1.0, res.ratio_ci_high - 1.0  # exact: both near 1
    assert abs(low - ref.low) < 0.03 * width
    assert abs(high - ref.high) < 0.03 * width


# -- bad values and size ---------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("test", ["welch", "mwu"])
def test_nan_or_inf_values_are_refused(make_db, trials_for, bad, test):
    path = make_db(trials_for({1: [1.0, 2.0, 3.0], 2: [4.0, bad, 5.0, 6.0]}))
    with pytest.raises(AnalysisError, match=r"^train_s is NaN or infinite in 1 of the 7 selected"):
        ttest(path, group="workers", a="1", b="2", test=test)


def test_million_trials_fast_and_small(tmp_path):
    """1,000,000 trials: the t-test, MWU and ratio from DuckDB in about a second each, NumPy's
    peak allocation small (the bootstrap falls back to the normal limit of the means)."""
    import duckdb

    con = duckdb.connect(str(tmp_path / "big.duckdb"))
    con.execute(
        "CREATE TABLE observations AS SELECT CAST(i % 2 + 1 AS INTEGER) AS workers, "
        "1000.0 + (i % 2) * 0.002 + sin(i) AS train_s FROM range(1000000) t(i)"
    )
    x, y = (
        con.execute(f"SELECT train_s FROM observations WHERE workers = {w}").fetchnumpy()["train_s"]
        for w in (1, 2)
    )
    ttest(con, group="workers", a="1", b="2", n_boot=100)  # warm up imports
    for test in ("welch", "mwu"):
        tracemalloc.start()
        res = ttest(con, group="workers", a="1", b="2", test=test)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 100e6
        assert res.ratio_ci_method == "bootstrap-normal"
        assert res.ratio == pytest.approx(x.mean() / y.mean(), rel=1e-12)
        ref = (
            stats.ttest_ind(x, y, equal_var=False)
            if test == "welch"
            else stats.mannwhitneyu(x, y, method="asymptotic")
        )
        assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)
        assert res.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    con.close()


NEW_FIELDS = {
    "test": str,
    "method": str,
    "hedges_g": float,
    "median_a": float,
    "median_b": float,
    "z": float,
    "rank_biserial": float,
    "cles": float,
    "ratio": float,
    "ratio_ci_low": float,
    "ratio_ci_high": float,
    "ratio_ci_method": str,
    "n_boot": int,
    "seed": int,
    "confidence_level": float,
}


@pytest.mark.parametrize("test", ["welch", "student", "mwu"])
def test_result_shapes_every_test(db, test):
    res = ttest(db, group="workers", a="1", b="2", test=test, n_boot=200, seed=5)
    d = res.to_dict()
    for key, kind in NEW_FIELDS.items():
        assert type(d[key]) is kind, key
    assert (d["test"], d["n_boot"], d["seed"], d["confidence_level"]) == (test, 200, 5, 0.95)
    json.dumps(d)
    frame = res.to_frame()
    assert len(frame) == 1 and set(NEW_FIELDS) <= set(frame.columns)
    assert list(frame.columns[: len(OLD_FIELDS)]) == OLD_FIELDS  # old columns first, in order
    text = str(res)
    assert "median" in text and "ratio (1 / 2) = " in text and "200 resamples, seed 5" in text
    if test == "mwu":
        assert text.startswith("Mann-Whitney U test of train_s: workers=1 vs 2")
        assert "U = " in text and "rank_biserial = " in text and "cles = P(1 > 2)" in text
        assert "hedges_g = " in text and "t(" not in text
        with pytest.raises(AnalysisError, match="no t interval"):
            res.confidence_interval()
    else:
        assert text.startswith(f"{test.capitalize()} t-test of train_s")
        assert "95% CI [" in text and "hedges_g = " in text and "rank_biserial" not in text
        assert res.method == "t" and np.isnan(res.z) and np.isnan(res.cles)


OLD_FIELDS = [
    "metric",
    "group",
    "a",
    "b",
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "sd_a",
    "sd_b",
    "statistic",
    "df",
    "p_value",
    "mean_diff",
    "ci_low",
    "ci_high",
    "cohens_d",
    "equal_var",
    "where",
]


def test_module_import_stays_light():
    code = "import sys, analysis.ttest; print(sorted({'scipy', 'numpy'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def _fieller_by_root(a: np.ndarray, b: np.ndarray, *, equal_var: bool) -> tuple[float, float]:
    """Fieller's limits found independently: the ratios r where the t statistic of
    ``mean(a) - r mean(b)`` (computed by numpy on the raw rows) reaches the t quantile."""
    from scipy.optimize import brentq

    na, nb = len(a), len(b)
    va, vb = a.var(ddof=1), b.var(ddof=1)
    if equal_var:
        sp = ((na - 1) * va + (nb - 1) * vb) / (na + nb - 2)
        se2a, se2b, df = sp / na, sp / nb, na + nb - 2
    else:
        se2a, se2b = va / na, vb / nb
        df = stats.ttest_ind(a, b, equal_var=False).df
    q = stats.t.ppf(0.975, df)
    ratio = a.mean() / b.mean()

    def excess(r: float) -> float:
        return abs(a.mean() - r * b.mean()) / np.sqrt(se2a + r * r * se2b) - q

    return brentq(excess, -1e3, ratio), brentq(excess, ratio, 1e3)


def test_ratio_interval_is_fieller_and_agrees_with_the_test(make_db, trials_for):
    """Few, spread trials (the default experiment's mlp local vs dask): Welch p = 0.25 while the
    bootstrap interval of the ratio excludes 1; Fieller's interval, pinned by root-finding on the
    raw rows, includes 1 as the test says, and a note explains the bootstrap's disagreement."""
    a, b = np.array([2.0, 2.4, 5.6]), np.array([1.45, 1.5, 1.6])
    path = make_db(trials_for({"dask": a, "local": b}, column="engine"))
    res = ttest(path, group="engine", a="dask", b="local")
    low, high = _fieller_by_root(a, b, equal_var=False)
    assert (res.ratio_fieller_low, res.ratio_fieller_high) == pytest.approx((low, high), rel=1e-9)
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    assert res.p_value == pytest.approx(p, rel=1e-12) and p > 0.05
    assert res.ratio_fieller_low < 1 < res.ratio_fieller_high  # consistent with the test
    assert res.ratio_ci_low > 1  # the bootstrap's (kept) disagrees
    assert any("bootstrap interval of the ratio excludes 1" in n for n in res.notes)
    assert "(Fieller, from" in str(res)


@pytest.mark.parametrize("test", ["welch", "student"])
def test_fieller_excludes_one_exactly_when_the_test_rejects(make_db, trials_for, test):
    rng = np.random.default_rng(11)
    for _ in range(6):
        a, b = rng.lognormal(0.3, 0.4, 6), rng.lognormal(0.0, 0.3, 7)
        path = make_db(trials_for({1: a, 2: b}))
        res = ttest(path, group="workers", a="1", b="2", n_boot=0, test=test)
        low, high = _fieller_by_root(a, b, equal_var=test == "student")
        assert (res.ratio_fieller_low, res.ratio_fieller_high) == pytest.approx((low, high))
        rejects = stats.ttest_ind(a, b, equal_var=test == "student").pvalue < 0.05
        assert rejects == (not low <= 1 <= high)


def test_fieller_unbounded_when_the_denominator_is_not_away_from_zero(make_db, trials_for):
    path = make_db(trials_for({1: np.array([1.0, 2.0, 3.0]), 2: np.array([-5.0, 0.5, 6.0])}))
    res = ttest(path, group="workers", a="1", b="2", n_boot=0)
    assert np.isnan(res.ratio_fieller_low) and "CI unbounded (Fieller" in str(res)


def test_mwu_says_up_front_when_p_is_the_normal_approximation(make_db, trials_for):
    """8 vs 4,000 trials: scipy's rule would be exact, but U is too large, so p is the normal
    approximation (pinned against scipy's asymptotic p) and the text and notes say so first."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(1.0, 0.1, 8), rng.normal(1.0, 0.1, 4000)
    res = ttest(make_db(trials_for({1: a, 2: b})), group="workers", a="1", b="2", test="mwu",
                n_boot=0)  # fmt: skip
    assert res.method == "asymptotic"
    p = stats.mannwhitneyu(a, b, method="asymptotic").pvalue
    assert res.p_value == pytest.approx(p, rel=1e-9)
    assert any("normal approximation" in n and "U is too large" in n for n in res.notes)
    head = str(res).splitlines()[:2]
    assert "normal approximation, not the exact distribution" in head[1]
    assert "normal approximation" in res.to_frame()["notes"].iloc[0]
    tied = ttest(make_db(trials_for({1: [1.0, 2.0, 2.0], 2: [2.0, 3.0, 4.0]})), group="workers",
                 a="1", b="2", test="mwu", n_boot=0)  # fmt: skip
    assert tied.method == "asymptotic" and any("values are tied" in n for n in tied.notes)
    exact = ttest(make_db(trials_for({1: [1.0, 2.0, 3.5], 2: [2.5, 3.0, 4.0]})), group="workers",
                  a="1", b="2", test="mwu", n_boot=0)  # fmt: skip
    assert exact.method == "exact" and not any("approximation" in n for n in exact.notes)


# -- tables() and the text's width -------------------------------------------------------------
@pytest.mark.parametrize("test", ["welch", "mwu"])
def test_tables_carry_every_statistic_of_the_text(db, groups, test):
    """Each statistic the text shows has a column: the test row (scipy on the raw rows) and the
    levels table (numpy); every text line fits 120 columns."""
    x, y = groups[1], groups[4]
    res = ttest(db, group="workers", a="1", b="4", test=test)
    main, levels = res.tables()
    assert (main.name, levels.name) == ("test", "levels")
    row = main.frame.iloc[0]
    shown = ["statistic", "p_value", "mean_diff", "cohens_d", "hedges_g", "ratio",
             "ratio_fieller_low", "ratio_fieller_high", "ratio_ci_low", "ratio_ci_high",
             "n_boot", "seed", "confidence_level", "method", "notes"]  # fmt: skip
    shown += ["df", "ci_low", "ci_high"] if test == "welch" else ["z", "rank_biserial", "cles"]
    assert set(shown) <= set(main.frame.columns)
    if test == "welch":
        ref = stats.ttest_ind(x, y, equal_var=False)
        assert (row["statistic"], row["df"]) == pytest.approx((ref.statistic, ref.df), rel=RTOL)
    else:
        ref = stats.mannwhitneyu(x, y, method="asymptotic")
        assert row["statistic"] == ref.statistic
        assert row["cles"] == pytest.approx(ref.statistic / (len(x) * len(y)), rel=1e-12)
    assert row["p_value"] == pytest.approx(ref.pvalue, rel=RTOL)
    assert row["mean_diff"] == pytest.approx(x.mean() - y.mean(), rel=RTOL)
    assert list(levels.frame.columns) == ["group", "level", "n", "mean", "sd", "median"]
    for values, lv in zip((x, y), levels.frame.itertuples(), strict=True):
        assert lv.n == len(values)
        assert (lv.mean, lv.sd, lv.median) == pytest.approx(
            (values.mean(), values.std(ddof=1), np.median(values)), rel=1e-12
        )
    assert all(len(line) <= 120 for line in str(res).splitlines())


def test_long_notes_wrap_within_120_columns(make_db, trials_for):
    """Three trials a level: the small-sample note (and a long level name) wrap, nothing is cut."""
    name = "a-rather-long-level-name-" * 2
    path = make_db(trials_for({name: np.array([1.0, 1.2, 1.4]), "b": np.array([2.0, 2.1, 2.5])},
                              column="engine"))  # fmt: skip
    text = str(ttest(path, group="engine", a=name, b="b"))
    assert all(len(line) <= 120 for line in text.splitlines())
    assert "run at least 5 trials per group" in text.replace("\n  ", " ")
