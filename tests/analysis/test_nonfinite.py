"""One rule for NaN and inf in a metric, the same in every analysis (a one-line refusal naming
the column and how many trials), and finite, correct statistics for magnitudes up to 1e300
(scaled before squaring), pinned against numpy/scipy on the raw rows."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from analysis import AnalysisError, box_stats, compare, held, summarize
from analysis.ttest import ttest as plain_ttest

BY = ("workers",)
MESSAGE = (
    "train_s is NaN or infinite in 2 of the 12 selected trials (1 NaN, 1 +inf); no statistic "
    "is computed from them: fix the data, or exclude them with --where 'train_s<1e308'"
)


@pytest.fixture
def nan_db(make_db: Callable[..., Path], trials_for: Callable[..., list]) -> Path:
    groups = {1: [1.0, 2.0, 3.0, math.nan, 4.0, math.inf], 2: [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]}
    return make_db(trials_for(groups))


CALLS: dict[str, Callable[[Path], Any]] = {
    "summary": lambda db: summarize(db, by=BY, metrics=["train_s"]),
    "box_stats": lambda db: box_stats(db, by=BY),
    "anova": lambda db: held.anova(db, group="workers"),
    "twoway": lambda db: held.twoway(db, groups=("workers", "engine")),
    "ttest": lambda db: held.ttest(db, group="workers", a="1", b="2"),
    "ttest_plain": lambda db: plain_ttest(db, group="workers", a="1", b="2"),
    "power": lambda db: held.power(db, group="workers", a="1", b="2"),
    "regress": lambda db: held.regress(db, y="train_s", x="workers"),
    "scaling": lambda db: held.scaling(db, x="workers"),
    "cost": lambda db: held.cost(db, usd_per_core_hour=1.0),
    "cost_metric": lambda db: held.cost_metric(db),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_every_analysis_refuses_nan_and_inf_the_same_way(nan_db: Path, name: str) -> None:
    with pytest.raises(AnalysisError) as exc:
        CALLS[name](nan_db)
    assert str(exc.value) == MESSAGE


def test_compare_refuses_with_the_count_of_its_side(nan_db: Path) -> None:
    with pytest.raises(AnalysisError, match=r"^train_s is NaN or infinite in 2 of the 6 "):
        compare(nan_db, base=["workers=1"], new=["workers=2"])


def test_the_suggested_where_excludes_them(nan_db: Path) -> None:
    res = summarize(nan_db, by=BY, metrics=["train_s"], where=["train_s<1e308"])
    assert [r["n"] for r in res.rows] == [4, 6]
    assert res.rows[0]["train_s_mean"] == pytest.approx(2.5)
    assert res.rows[0]["train_s_median"] == pytest.approx(2.5)


def test_minus_inf_gets_its_own_hint(
    make_db: Callable[..., Path], trials_for: Callable[..., list]
) -> None:
    db = make_db(trials_for({1: [1.0, 2.0, -math.inf], 2: [2.0, 3.0, 4.0]}))
    with pytest.raises(AnalysisError, match=r"\(1 -inf\).*--where 'train_s>-1e308'$"):
        summarize(db, by=BY, metrics=["train_s"])


# -- magnitudes ---------------------------------------------------------------------------------
def _draws(scale: float) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(11)
    return {1: rng.normal(3, 1, 8) * scale, 2: rng.normal(5, 1, 9) * scale}


@pytest.mark.parametrize("scale", [1e154, 1e300])
def test_summary_is_finite_and_right_for_huge_values(
    make_db: Callable[..., Path], trials_for: Callable[..., list], scale: float
) -> None:
    groups = _draws(scale)
    res = summarize(make_db(trials_for(groups)), by=BY, metrics=["train_s"], n_boot=0)
    for row, x in zip(res.rows, groups.values(), strict=True):
        # numpy on the raw rows divided by a power of two (exact), then multiplied back
        k = 2.0 ** math.frexp(scale)[1]
        sd = float(np.std(x / k, ddof=1)) * k
        assert row["train_s_sd"] == pytest.approx(sd, rel=1e-12)
        assert row["train_s_mean"] == pytest.approx(float(np.mean(x / k)) * k, rel=1e-14)
        n = len(x)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        mean = float(np.mean(x / k)) * k
        assert row["train_s_ci_low"] == pytest.approx(mean - half, rel=1e-12)
        assert row["train_s_ci_high"] == pytest.approx(mean + half, rel=1e-12)
        assert row["train_s_cv"] == pytest.approx(stats.variation(x / k, ddof=1), rel=1e-12)


def test_mad_keeps_its_digits_at_a_large_offset(
    make_db: Callable[..., Path], trials_for: Callable[..., list]
) -> None:
    rng = np.random.default_rng(5)
    groups = {1: 1e9 + rng.normal(0, 1, 21), 2: 1e9 + rng.normal(1, 1, 20)}
    res = summarize(make_db(trials_for(groups)), by=BY, metrics=["train_s"], n_boot=0)
    for row, x in zip(res.rows, groups.values(), strict=True):
        assert row["train_s_mad"] == pytest.approx(stats.median_abs_deviation(x), rel=1e-12)


@pytest.mark.parametrize("scale", [1e154, 1e300])
@pytest.mark.parametrize("test", ["welch", "student"])
def test_ttest_is_finite_and_right_for_huge_values(
    make_db: Callable[..., Path], trials_for: Callable[..., list], scale: float, test: str
) -> None:
    groups = _draws(scale)
    a, b = groups[1], groups[2]
    res = plain_ttest(make_db(trials_for(groups)), group="workers", a="1", b="2", test=test)
    k = 2.0 ** math.frexp(scale)[1]  # scipy on the raw rows over a power of two (exact)
    ref = stats.ttest_ind(a / k, b / k, equal_var=test == "student")
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert res.df == pytest.approx(ref.df, rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert res.ci_low == pytest.approx(ci.low * k, rel=1e-12)
    assert res.ci_high == pytest.approx(ci.high * k, rel=1e-12)
    assert res.sd_a == pytest.approx(np.std(a / k, ddof=1) * k, rel=1e-12)
    pooled = np.sqrt(((len(a) - 1) * np.var(a / k, ddof=1) + (len(b) - 1) * np.var(b / k, ddof=1))
                     / (len(a) + len(b) - 2))  # fmt: skip
    assert res.cohens_d == pytest.approx((np.mean(a / k) - np.mean(b / k)) / pooled, rel=1e-12)
    assert res.cohens_d < -0.5
    assert res.ratio == pytest.approx(np.mean(a) / np.mean(b), rel=1e-12)


def test_power_is_finite_for_huge_values(
    make_db: Callable[..., Path], trials_for: Callable[..., list]
) -> None:
    from analysis.power import power

    groups = _draws(1e300)
    res = power(make_db(trials_for(groups)), group="workers", a="1", b="2")
    k = 2.0**997
    a, b = groups[1] / k, groups[2] / k
    pooled = math.sqrt((7 * np.var(a, ddof=1) + 8 * np.var(b, ddof=1)) / 15)
    assert res.sd_pooled == pytest.approx(pooled * k, rel=1e-12)
    assert math.isfinite(res.mde) and res.n_per_group > 2
