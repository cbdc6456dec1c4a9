from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis import AnalysisError, TtestResult, ttest

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
