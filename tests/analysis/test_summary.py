from __future__ import annotations

import math
import sys
from datetime import datetime

import numpy as np
import pytest
from matplotlib import cbook
from scipy import stats

from analysis import (
    DEFAULT_BY,
    AnalysisError,
    BoxStatsResult,
    RunInfo,
    SummaryResult,
    box_stats,
    list_runs,
    summarize,
)
from analysis.bootstrap import median_ranks, medians_from_ranks

RTOL = 1e-9


def expected_row(values: np.ndarray) -> dict[str, float]:
    mean, sd = values.mean(), values.std(ddof=1)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sd / np.sqrt(len(values)))
    q1, q3 = np.percentile(values, [25, 75])
    fence = 1.5 * (q3 - q1)
    return {
        "mean": mean,
        "sd": sd,
        "median": np.median(values),
        "ci_low": low,
        "ci_high": high,
        "mad": stats.median_abs_deviation(values),
        "min": values.min(),
        "max": values.max(),
        "cv": stats.variation(values, ddof=1),
        "q1": q1,
        "q3": q3,
        "outliers": int(np.sum((values < q1 - fence) | (values > q3 + fence))),
    }


def test_summary_matches_numpy_and_scipy(db, groups):
    res = summarize(db)
    assert isinstance(res, SummaryResult)
    assert res.by == DEFAULT_BY
    assert [r["workers"] for r in res.rows] == [1, 2, 4]
    for row, (level, values) in zip(res.rows, groups.items(), strict=True):
        assert row["workers"] == level and row["engine"] == "dask"
        assert row["n"] == len(values)
        for key, want in expected_row(values).items():
            assert row[f"train_s_{key}"] == pytest.approx(want, rel=RTOL), key
        assert 0.9 <= row["accuracy_mean"] <= 1.0
    # failed/timeout counts of non-warm-up trials (the failed warm-up is not counted)
    assert [(r["failed"], r["timeout"]) for r in res.rows] == [(0, 0), (1, 0), (1, 1)]
    want_rate = [0.0, 1 / (len(groups[2]) + 1), 2 / (len(groups[4]) + 2)]
    assert [r["failure_rate"] for r in res.rows] == pytest.approx(want_rate, rel=1e-12)


def test_tukey_outliers_are_counted_not_dropped(make_db, trials_for, rng):
    values = np.concatenate([rng.normal(10.0, 0.1, 20), [25.0, -3.0]])
    res = summarize(make_db(trials_for({1: values})), by=["workers"], metrics=["train_s"])
    row = res.rows[0]
    assert row["train_s_outliers"] == 2 and row["n"] == 22
    assert row["train_s_max"] == 25.0 and row["train_s_mean"] == pytest.approx(values.mean())
    assert row["train_s_mad"] == pytest.approx(stats.median_abs_deviation(values), rel=RTOL)


def test_spread_statistics_with_a_large_offset(make_db, trials_for, rng):
    values = 1e12 + rng.normal(0.0, 0.01, 25)
    row = summarize(make_db(trials_for({1: values})), by=["workers"], metrics=["train_s"]).rows[0]
    assert row["train_s_mad"] == pytest.approx(stats.median_abs_deviation(values), rel=1e-3)
    q1, q3 = np.percentile(values, [25, 75])
    assert (row["train_s_q1"], row["train_s_q3"]) == pytest.approx((q1, q3), rel=1e-15)
    assert row["train_s_cv"] == pytest.approx(values.std(ddof=1) / values.mean(), rel=1e-6)


def test_summary_frame_columns(db):
    frame = summarize(db, by=["workers"], metrics=["train_s"]).to_frame()
    assert list(frame.columns) == [
        "workers",
        "n",
        "train_s_mean",
        "train_s_sd",
        "train_s_median",
        "train_s_ci_low",
        "train_s_ci_high",
        "train_s_median_ci_low",
        "train_s_median_ci_high",
        "train_s_mad",
        "train_s_min",
        "train_s_max",
        "train_s_cv",
        "train_s_q1",
        "train_s_q3",
        "train_s_outliers",
        "accuracy_mean",
        "failed",
        "timeout",
        "failure_rate",
    ]
    assert len(frame) == 3


def test_summary_without_accuracy_and_by_nothing(make_db, trials_for, rng):
    values = rng.normal(10, 1, 7)
    path = make_db(trials_for({2: values}))
    res = summarize(path, by=[], metrics=["train_s"])
    (row,) = res.rows
    assert row["n"] == 7
    assert math.isnan(row["accuracy_mean"])
    assert row["train_s_mean"] == pytest.approx(values.mean(), rel=RTOL)
    assert row["train_s_median_ci_low"] < np.median(values) < row["train_s_median_ci_high"]
    assert "Summary by (all trials)" in str(res)


def test_summary_single_trial_group_has_nan_spread(make_db, trials_for):
    path = make_db(trials_for({1: [3.0], 2: [1.0, 2.0]}))
    rows = summarize(path, by=["workers"], metrics=["train_s"]).rows
    assert rows[0]["train_s_mean"] == 3.0
    assert math.isnan(rows[0]["train_s_sd"]) and math.isnan(rows[0]["train_s_ci_low"])
    assert rows[1]["train_s_sd"] == pytest.approx(np.std([1.0, 2.0], ddof=1))


def test_summary_ill_conditioned(make_db, trials_for, rng):
    offset = 1e12
    a = offset + rng.normal(0, 0.01, 25)
    b = 5.0 + rng.normal(0, 0.01, 25)  # another group on a wholly different scale
    rows = summarize(make_db(trials_for({1: a, 2: b})), by=["workers"], metrics=["train_s"]).rows
    assert rows[0]["train_s_sd"] == pytest.approx((a - offset).std(ddof=1), rel=1e-6)
    # the mean itself is correctly rounded at 1e12 (one ulp there is 1.2e-4)
    exact_mean = offset + (a - offset).mean()
    assert abs(rows[0]["train_s_mean"] - exact_mean) <= np.spacing(offset)
    assert rows[1]["train_s_sd"] == pytest.approx(b.std(ddof=1), rel=1e-9)


def test_summary_errors(db):
    with pytest.raises(AnalysisError, match="--by 'nope' is not a column"):
        summarize(db, by=["nope"])
    with pytest.raises(AnalysisError, match="--metric 'engine' is a VARCHAR column"):
        summarize(db, metrics=["engine"])
    with pytest.raises(AnalysisError, match="names workers twice"):
        summarize(db, by=["workers", "workers"])


def test_summary_include_warmup(db):
    rows = summarize(db, by=["workers"], metrics=["train_s"], include_warmup=True).rows
    assert rows[0]["n"] == 13  # 12 + one ok warm-up
    assert rows[0]["failed"] == 1  # the failed warm-up now counts


def tukey(values: np.ndarray) -> dict[str, object]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    lo, hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    inside = values[(values >= lo) & (values <= hi)]
    return {
        "q1": q1,
        "median": med,
        "q3": q3,
        "whislo": inside.min(),
        "whishi": inside.max(),
        "fliers": tuple(sorted(values[(values < lo) | (values > hi)])),
    }


def test_box_stats_match_numpy_tukey_and_matplotlib(make_db, trials_for, rng):
    a = np.concatenate([rng.normal(2.0, 0.1, 30), [3.5, 0.2, 4.0]])
    b = np.concatenate([rng.normal(5.0, 0.5, 21), [9.0]])
    path = make_db(
        trials_for({1: a}, engine="dask", workload="knn")
        + trials_for({2: b}, engine="spark", workload="mlp")
    )
    res = box_stats(path)
    assert isinstance(res, BoxStatsResult)
    assert [box.label for box in res.boxes] == ["dask / knn / workers=1", "spark / mlp / workers=2"]
    for box, values in zip(res.boxes, (a, b), strict=True):
        want = tukey(values)
        assert box.n == len(values)
        for key in ("q1", "median", "q3", "whislo", "whishi"):
            assert getattr(box, key) == pytest.approx(want[key], rel=1e-12), key
        assert box.fliers == pytest.approx(want["fliers"], rel=1e-12)
        assert len(box.fliers) >= 1
        (mpl,) = cbook.boxplot_stats(values, whis=1.5)
        assert (box.whislo, box.whishi) == pytest.approx((mpl["whislo"], mpl["whishi"]))
        assert sorted(box.fliers) == pytest.approx(sorted(mpl["fliers"]))
    frame = res.to_frame()
    assert list(frame.columns)[:3] == ["label", "n", "q1"]
    assert res.to_dict()["boxes"][0]["fliers"] == list(res.boxes[0].fliers)
    assert "dask / knn / workers=1" in str(res)


def test_box_stats_degenerate_iqr(make_db, trials_for):
    values = np.array([1.0, 1.0, 1.0, 1.0, 5.0])
    (box,) = box_stats(make_db(trials_for({1: values})), by=["workers"]).boxes
    (mpl,) = cbook.boxplot_stats(values, whis=1.5)
    assert (box.q1, box.q3, box.whislo, box.whishi) == (1.0, 1.0, mpl["whislo"], mpl["whishi"])
    assert box.fliers == (5.0,)
    assert box.label == "workers=1"


def test_box_stats_excludes_warmup_and_failed(db, groups):
    boxes = box_stats(db, by=["workers"]).boxes
    assert [b.n for b in boxes] == [len(v) for v in groups.values()]
    assert max(max(b.fliers, default=0) for b in boxes) < 100


def test_list_runs(make_db, trials_for, db):
    runs = list_runs(db)
    assert len(runs) == 1
    (run,) = runs
    assert isinstance(run, RunInfo)
    assert run.source == "import:test"
    assert run.argv == ["test"] and run.env == {"python": "3.11"}
    assert run.n_trials == 36 + 7
    assert isinstance(run.started_at, datetime) and run.finished_at is not None
    assert run.experiments == ()
    path = make_db(trials_for({1: [1.0, 2.0]}, experiment="paper000"))
    assert list_runs(path)[0].experiments == ("paper000",)


def test_list_runs_counts_each_run_and_keeps_a_run_without_trials(make_db, trials_for):
    from runner.store import open_store

    path = make_db(trials_for({1: [1.0, 2.0, 3.0]}, experiment="b"))
    store = open_store(path)
    try:
        empty = store.begin_run(source="import:empty", argv=["e"], env={})
        store.finish_run(empty)
    finally:
        store.close()
    got = {r.source: r for r in list_runs(path)}
    assert set(got) == {"import:test", "import:empty"}
    assert got["import:test"].n_trials == 3 and got["import:test"].experiments == ("b",)
    assert got["import:empty"].n_trials == 0 and got["import:empty"].experiments == ()
    assert got["import:empty"].argv == ["e"] and got["import:empty"].env == {}


# -- bootstrap CI of the median ---------------------------------------------------------------
# References: brute-force resampling in NumPy, scipy.stats.binom (the exact law of the resampled
# median's rank) and scipy.stats.bootstrap on the raw rows; never our own numbers.
BOOT = 20_000  # resamples, ours and scipy's, for the interval comparisons


def middle_rank(n: int) -> int:
    """m: the median of n values is x_(m) (odd n) or the mean of x_(m), x_(m+1) (even n)."""
    return (n + 1) // 2 if n % 2 else n // 2


def rank_cdf(n: int, k: np.ndarray, j: int) -> np.ndarray:
    """P(the j-th order statistic of a resample of n values has rank <= k): at least j of the n
    draws fall among the k smallest values, each with probability k/n."""
    return stats.binom.sf(j - 1, n, k / n)


def ideal_endpoint_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """Odd n: ranks k of the (1 -/+ confidence)/2 quantiles of the resampled median's exact law
    (B -> infinity): the smallest k with P(rank <= k) >= p."""
    k = np.arange(1, n + 1)
    cdf = rank_cdf(n, k, middle_rank(n))
    alpha = (1 - confidence) / 2
    return int(k[np.argmax(cdf >= alpha)]), int(k[np.argmax(cdf >= 1 - alpha)])


def frac_rank(values: np.ndarray, v: float) -> float:
    """Position of v among the sorted (tie-free) values, 1-based, linear in between."""
    xs = np.sort(values)
    return float(np.interp(v, xs, np.arange(1, len(xs) + 1)))


def scipy_median_ci(values: np.ndarray, seed: int = 3) -> tuple[float, float]:
    res = stats.bootstrap(
        (values,), np.median, method="percentile", n_resamples=BOOT, rng=np.random.default_rng(seed)
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def assert_ci_near(values: np.ndarray, got: tuple[float, float], want: tuple[float, float]):
    """Each endpoint within two order statistics of the reference's (ties allowed)."""
    xs = np.sort(values)
    for g, w in zip(got, want, strict=True):
        first = int(np.searchsorted(xs, w, side="left"))  # first x_(i) >= w (0-based)
        last = int(np.searchsorted(xs, w, side="right")) - 1  # last x_(i) <= w
        band = xs[max(first - 2, 0)], xs[min(last + 2, len(xs) - 1)]
        assert band[0] <= g <= band[1], (got, want)


SMALL_SAMPLES = {
    "odd": [4.0, 1.0, 7.0, 2.0, 9.0, 5.0, 3.0],
    "odd-ties": [1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 9.0],
    "even": [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0],
    "even-ties": [1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 8.0, 10.0],
}


@pytest.mark.parametrize("name", SMALL_SAMPLES)
def test_simulated_medians_have_the_resampling_distribution(name):
    """Our order-statistic draws against np.median of rows resampled with replacement: the
    probabilities of every possible median value agree (chi-square test of homogeneity)."""
    x = np.array(SMALL_SAMPLES[name])
    draws = 200_000
    lo, hi = median_ranks(len(x), draws, np.random.default_rng(11))
    ours = medians_from_ranks(np.sort(x), 1, lo, hi)
    brute = np.median(np.random.default_rng(12).choice(x, (draws, len(x))), axis=1)
    support = np.union1d(ours, brute)
    assert set(np.unique(ours)) <= set(np.unique(brute))  # only values np.median can give
    table = np.array([[np.sum(ours == v), np.sum(brute == v)] for v in support])
    common, rare = table[table.sum(axis=1) >= 50], table[table.sum(axis=1) < 50]
    table = np.vstack([common, rare.sum(axis=0)]) if len(rare) else common
    assert len(table) >= 3
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # and the same by a two-sample KS test on the draws themselves
    assert stats.ks_2samp(ours, brute).pvalue > 1e-3


@pytest.mark.parametrize("n", [7, 8, 41, 1000, 1001])
def test_median_ranks_follow_the_exact_binomial_law(n):
    """P(rank of the resample's j-th order statistic <= k) = P(Binomial(n, k/n) >= j), for the
    middle rank(s) j: empirical CDF of 100,000 draws within 5 standard errors everywhere."""
    draws = 100_000
    lo, hi = median_ranks(n, draws, np.random.default_rng(5))
    assert lo.dtype.kind == "i" and lo.min() >= 1 and hi.max() <= n and (hi >= lo).all()
    m = middle_rank(n)
    k = np.arange(1, n + 1)
    tol = 5 * math.sqrt(0.25 / draws)
    pairs = [(lo, m)] + ([] if n % 2 else [(hi, m + 1)])
    for ranks, j in pairs:
        empirical = np.searchsorted(np.sort(ranks), k, side="right") / draws
        assert np.max(np.abs(empirical - rank_cdf(n, k, j))) < tol
    if n % 2:
        assert (lo == hi).all()


def test_odd_sample_median_cdf_is_binomial():
    """P(median* <= x_(k)) = P(Binomial(n, k/n) >= m) on the median values themselves."""
    x = np.array(SMALL_SAMPLES["odd"])
    n, draws = len(x), 200_000
    xs = np.sort(x)
    lo, hi = median_ranks(n, draws, np.random.default_rng(8))
    medians = medians_from_ranks(xs, 1, lo, hi)
    empirical = np.array([np.mean(medians <= v) for v in xs])
    exact = rank_cdf(n, np.arange(1, n + 1), middle_rank(n))
    assert np.max(np.abs(empirical - exact)) < 5 * math.sqrt(0.25 / draws)


@pytest.mark.parametrize("n", [41, 40])
def test_median_ci_matches_scipy_bootstrap(make_db, trials_for, n):
    values = np.random.default_rng(100 + n).normal(10.0, 2.0, n)
    path = make_db(trials_for({1: values}))
    (row,) = summarize(path, by=["workers"], metrics=["train_s"], n_boot=BOOT).rows
    got = (row["train_s_median_ci_low"], row["train_s_median_ci_high"])
    assert_ci_near(values, got, scipy_median_ci(values))
    assert got[0] < np.median(values) < got[1]
    if n % 2:  # the exact (B -> infinity) percentile endpoints are order statistics
        for g, k in zip(got, ideal_endpoint_ranks(n), strict=True):
            assert abs(frac_rank(values, g) - k) <= 1


def test_median_ci_with_a_large_offset(make_db, trials_for):
    """1e12 + noise of 0.01 (one ulp at 1e12 is 1.2e-4): scipy on x - 1e12 (exact), shifted."""
    offset = 1e12
    rng = np.random.default_rng(7)
    a = offset + rng.normal(0.0, 0.01, 41)
    b = 5.0 + rng.normal(0.0, 0.01, 40)  # another group on another scale
    path = make_db(trials_for({1: a, 2: b}))
    rows = summarize(path, by=["workers"], metrics=["train_s"], n_boot=BOOT).rows
    got = (rows[0]["train_s_median_ci_low"], rows[0]["train_s_median_ci_high"])
    low, high = scipy_median_ci(a - offset)
    want = (offset + low, offset + high)
    assert got[0] < np.median(a) < got[1]
    assert_ci_near(a, got, want)
    # the width is that of the shifted reference, to within the spacing of two order statistics
    gaps = np.diff(np.sort(a - offset))
    assert got[1] - got[0] > 0 and abs((got[1] - got[0]) - (high - low)) <= 4 * gaps.max()
    assert_ci_near(b, (rows[1]["train_s_median_ci_low"], rows[1]["train_s_median_ci_high"]),
                   scipy_median_ci(b))  # fmt: skip


def test_median_ci_per_group_excludes_warmup_and_failed(db, groups):
    rows = summarize(db, by=["workers"], metrics=["train_s"], n_boot=BOOT).rows
    for row, (level, values) in zip(rows, groups.items(), strict=True):
        assert row["workers"] == level and row["n"] == len(values)
        got = (row["train_s_median_ci_low"], row["train_s_median_ci_high"])
        assert values.min() <= got[0] < np.median(values) < got[1] <= values.max()
        assert_ci_near(values, got, scipy_median_ci(values))
        if len(values) % 2:
            for g, k in zip(got, ideal_endpoint_ranks(len(values)), strict=True):
                assert abs(frac_rank(values, g) - k) <= 1


def test_median_ci_ignores_many_warmup_and_failed_trials(make_db, trials_for, rng):
    values = rng.normal(3.0, 0.1, 9)
    noise = trials_for({1: np.full(20, 999.0)}, warmup=True)
    # below the data: if they reached the sorted values, every rank would point at them
    noise += [{**t, "status": "failed"} for t in trials_for({1: np.full(20, -555.0)})]
    path = make_db(trials_for({1: values}) + noise)
    (row,) = summarize(path, by=["workers"], metrics=["train_s"], n_boot=BOOT).rows
    assert row["n"] == 9 and row["failed"] == 20
    got = (row["train_s_median_ci_low"], row["train_s_median_ci_high"])
    assert_ci_near(values, got, scipy_median_ci(values))


def test_median_ci_nan_for_one_trial_and_groups_stay_aligned(make_db, trials_for, rng):
    """n = 1 and n = 0 (only failed trials) rows get NaN; the rows around them (a NULL level
    sorts last) keep their own intervals."""
    big, null = rng.normal(8.0, 1.0, 31), rng.normal(1.0, 0.1, 21)
    trials = trials_for({1: [3.0], 2: big, None: null})
    trials += [{**t, "status": "failed"} for t in trials_for({3: [1.0, 2.0]})]
    rows = summarize(make_db(trials), by=["workers"], metrics=["train_s"], n_boot=BOOT).rows
    assert [r["workers"] for r in rows] == [1, 2, 3, None]
    assert [r["n"] for r in rows] == [1, 31, 0, 21]
    for r in (rows[0], rows[2]):
        assert math.isnan(r["train_s_median_ci_low"]) and math.isnan(r["train_s_median_ci_high"])
    for r, values in ((rows[1], big), (rows[3], null)):
        got = (r["train_s_median_ci_low"], r["train_s_median_ci_high"])
        assert_ci_near(values, got, scipy_median_ci(values))


def test_median_ci_reproducible_and_seeded(db):
    def cis(**kw):
        rows = summarize(db, by=["workers"], metrics=["train_s", "wall_s"], **kw).rows
        return [r[f"{m}_median_ci_{e}"] for r in rows for m in ("train_s", "wall_s")
                for e in ("low", "high")]  # fmt: skip

    first = cis(seed=1)
    assert cis(seed=1) == first
    assert cis(seed=2) != first
    assert cis() == cis(seed=0)
    # a row's interval depends on its own data, the metric and the seed only
    alone = summarize(db, by=["workers"], metrics=["wall_s", "train_s"], where=["workers=2"],
                      seed=1).rows[0]  # fmt: skip
    assert [alone[f"train_s_median_ci_{e}"] for e in ("low", "high")] == first[4:6]


def test_median_ci_without_bootstrap_and_bad_arguments(db):
    res = summarize(db, by=["workers"], metrics=["train_s"], n_boot=0)
    assert all(math.isnan(r["train_s_median_ci_low"]) for r in res.rows)
    assert all(math.isnan(r["train_s_median_ci_high"]) for r in res.rows)
    assert not math.isnan(res.rows[0]["train_s_ci_low"])  # the t interval is still there
    assert res.to_dict()["n_boot"] == 0
    for kwargs, needle in (
        ({"n_boot": -1}, "--bootstrap -1 is not a number of resamples"),
        ({"n_boot": 10}, "outside 100"),
        ({"seed": -1}, "--seed -1 is not a seed"),
    ):
        with pytest.raises(AnalysisError, match=needle) as info:
            summarize(db, by=["workers"], **kwargs)
        assert "\n" not in str(info.value)


def test_median_ci_in_dict_and_table(db):
    res = summarize(db, by=["workers"], metrics=["train_s"], seed=4)
    assert (res.to_dict()["n_boot"], res.to_dict()["seed"]) == (2000, 4)
    row = res.rows[0]
    text = str(res)
    low, high = row["train_s_median_ci_low"], row["train_s_median_ci_high"]
    assert f"[{low:.4g}, {high:.4g}]" in text
    assert "percentile bootstrap, 2000 draws, seed 4" in text
    frame = res.to_frame()
    assert frame["train_s_median_ci_low"].tolist() == [r["train_s_median_ci_low"] for r in res.rows]


def test_median_ci_refetches_a_group_whose_draws_leave_the_window(db, monkeypatch):
    """The rank window fetched first is a shortcut: with a window of just the middle ranks every
    group is fetched again whole, and the intervals are the same."""
    import analysis.bootstrap

    want = summarize(db, by=["workers"], metrics=["train_s", "wall_s"]).rows
    monkeypatch.setattr(analysis.bootstrap, "WINDOW_SQRT_N", 0.0)
    assert analysis.bootstrap.median_window(15) == (8, 9)
    got = summarize(db, by=["workers"], metrics=["train_s", "wall_s"]).rows
    assert got == want


def test_median_ci_refetches_a_group_whose_range_misses_its_draws(db, monkeypatch):
    """The value range fetched with the moments is a guess: a range of just the median misses
    the drawn ranks of every group of more than the few values fetched whole, which are then
    fetched whole in a scan of their own, and the intervals are the same."""
    import analysis.bootstrap
    import analysis.summary_tails as tails

    monkeypatch.setattr(analysis.bootstrap, "WINDOW_SQRT_N", 0.0)  # no group fetched whole
    want = summarize(db, by=["workers"], metrics=["train_s", "wall_s"]).rows
    scans = []
    real = tails.execute
    monkeypatch.setattr(tails, "execute", lambda *a: scans.append(a[1]) or real(*a))
    assert summarize(db, by=["workers"], metrics=["train_s", "wall_s"]).rows == want
    assert scans == []  # the guessed ranges rode the moments scan and held every draw
    monkeypatch.setattr(tails, "WINDOW_MARGIN", 0.0)
    assert summarize(db, by=["workers"], metrics=["train_s", "wall_s"]).rows == want
    assert len(scans) == 1  # one scan fetched the missed groups whole


def test_columns_named_like_internal_aliases_do_not_collide(make_db, trials_for, rng):
    # a metric "s0" and a factor "acc" used as --by columns, and a metric named "shift"
    values = rng.normal(2.5, 0.3, 40)
    trials = trials_for({1: values})
    for i, t in enumerate(trials):
        acc = 0.7 + 0.1 * (i % 2)
        t["metrics"] = {"s0": float(i % 2), "acc": float(i % 3 == 0), "accuracy": acc}
    path = make_db(trials)
    res = summarize(path, by=["s0"], metrics=["train_s"], n_boot=0)
    for row in res.rows:
        mask = np.arange(40) % 2 == int(row["s0"])
        assert row["train_s_mean"] == pytest.approx(values[mask].mean(), rel=1e-12)
        assert row["accuracy_mean"] == pytest.approx(0.7 + 0.1 * int(row["s0"]), rel=1e-12)
    res = summarize(path, by=["acc"], metrics=["train_s"], n_boot=0)
    for row in res.rows:
        mask = (np.arange(40) % 3 == 0) == bool(row["acc"])
        acc = 0.7 + 0.1 * (np.arange(40)[mask] % 2)
        assert row["accuracy_mean"] == pytest.approx(acc.mean(), rel=1e-12)


def test_positive_metric_interval_is_geometric_and_stays_above_zero(make_db, trials_for):
    """Few, spread times: the mean's t interval reaches below 0; the geometric one (t on ln x,
    pinned against scipy on the raw values) cannot, and the text shows it."""
    values = np.array([0.5, 1.0, 4.0])
    res = summarize(make_db(trials_for({1: values})), by=["workers"], metrics=["train_s"])
    row = res.rows[0]
    old = stats.t.interval(0.95, 2, loc=values.mean(), scale=stats.sem(values))
    assert (row["train_s_ci_low"], row["train_s_ci_high"]) == pytest.approx(old, rel=1e-12)
    assert row["train_s_ci_low"] < 0  # the arithmetic interval, kept as it was
    logs = np.log(values)
    low, high = np.exp(stats.t.interval(0.95, 2, loc=logs.mean(), scale=stats.sem(logs)))
    assert row["train_s_gmean"] == pytest.approx(stats.gmean(values), rel=1e-13)
    assert (row["train_s_gmean_ci_low"], row["train_s_gmean_ci_high"]) == pytest.approx(
        (low, high), rel=1e-12
    )
    assert row["train_s_gmean_ci_low"] > 0
    text = str(res)
    assert "geomean" in text and "t on ln x" in text and "[0.09079, 17.48]" in text
    frame = res.table_frame()
    assert frame["train_s_gmean_ci_low"].iloc[0] == pytest.approx(low, rel=1e-12)


def test_geometric_interval_keeps_digits_at_an_offset_and_skips_nonpositive(make_db, trials_for):
    rng = np.random.default_rng(3)
    big = 1e9 + rng.normal(0, 1e-3, 12)
    signed = np.array([-1.0, 2.0, 3.0, 5.0])
    res = summarize(make_db(trials_for({1: big, 2: signed})), by=["workers"], metrics=["train_s"])
    row1, row2 = res.rows
    logs = np.log(big / big.min())  # the reference on the raw rows, in float64
    low, high = stats.t.interval(0.95, 11, loc=logs.mean(), scale=stats.sem(logs))
    assert row1["train_s_gmean_ci_high"] - row1["train_s_gmean_ci_low"] == pytest.approx(
        big.min() * (np.exp(high) - np.exp(low)), rel=1e-6
    )
    assert math.isnan(row2["train_s_gmean"]) and math.isnan(row2["train_s_gmean_ci_low"])
    assert not res.positive("train_s")
    assert "mean CI of train_s: t" in str(res)


def test_time_interval_below_zero_is_explained_and_the_shown_one_is_not(make_db, trials_for):
    """n = 3 times with a large spread ([0.1, 0.2, 5.0]): the text's interval is the geometric
    one (> 0, scipy's t on ln x); the arithmetic t interval (csv/json) reaches below 0, and the
    note and that row's <metric>_ci_note say so; a row whose t interval stays above 0 has none."""
    from analysis.summary_result import BELOW_ZERO

    spread = np.array([0.1, 0.2, 5.0])
    tight = np.array([1.0, 1.1, 1.2, 1.3, 1.4])
    res = summarize(make_db(trials_for({1: spread, 2: tight})), by=["workers"],
                    metrics=["train_s"])  # fmt: skip
    row1, row2 = res.rows
    t_low, t_high = stats.t.interval(0.95, 2, loc=spread.mean(), scale=stats.sem(spread))
    assert t_low < 0 and row1["train_s_ci_low"] == pytest.approx(t_low, rel=1e-12)
    logs = np.log(spread)
    g_low, g_high = np.exp(stats.t.interval(0.95, 2, loc=logs.mean(), scale=stats.sem(logs)))
    assert row1["train_s_gmean_ci_low"] == pytest.approx(g_low, rel=1e-12) and g_low > 0
    assert row1["train_s_gmean_ci_high"] == pytest.approx(g_high, rel=1e-12)
    text = str(res)
    shown = f"[{g_low:.4g}, {g_high:.4g}]"
    assert shown in text
    table_line = next(line for line in text.splitlines() if line.lstrip().startswith("1 "))
    assert f"{t_low:.4g}" not in table_line and "[-" not in table_line
    assert "reaches below 0 for train_s in workers=1" in text and "workers=2" not in text
    tail = text[text.index("CI of the geometric mean") :]  # the table's width is render_table's
    assert all(len(line) <= 120 for line in tail.splitlines())
    main, notes = res.tables()[0], res.tables()[-1]
    assert main.name == "summary" and notes.name == "notes"
    assert list(main.frame["train_s_ci_note"]) == [BELOW_ZERO, ""]
    assert main.frame["train_s_gmean_ci_low"].iloc[0] == pytest.approx(g_low, rel=1e-12)
    assert any("reaches below 0" in n for n in notes.frame["note"])


def test_summary_tables_carry_every_statistic_of_the_text(db, groups):
    res = summarize(db, by=["workers"], metrics=["train_s"])
    tables = res.tables()
    assert [t.name for t in tables][0] == "summary"
    frame = tables[0].frame
    # text columns: n, mean, geomean and its CI, sd, median and its CI, cv, outliers,
    # accuracy, failed, timeout
    shown = ["n", "train_s_mean", "train_s_gmean", "train_s_gmean_ci_low",
             "train_s_gmean_ci_high", "train_s_sd", "train_s_median", "train_s_median_ci_low",
             "train_s_median_ci_high", "train_s_cv", "train_s_outliers", "accuracy_mean",
             "failed", "timeout"]  # fmt: skip
    assert set(shown) <= set(frame.columns)
    for (level, values), row in zip(groups.items(), frame.itertuples(), strict=True):
        assert row.workers == level and row.n == len(values)
        assert row.train_s_mean == pytest.approx(values.mean(), rel=RTOL)
        assert row.train_s_gmean == pytest.approx(stats.gmean(values), rel=RTOL)
        assert row.train_s_cv == pytest.approx(stats.variation(values, ddof=1), rel=RTOL)
    assert "percentile bootstrap, 2000 draws, seed 0" in tables[0].caption


def test_box_stats_tables(db, groups):
    res = box_stats(db, by=["workers"], metric="train_s")
    boxes, fliers = res.tables()
    assert (boxes.name, fliers.name) == ("boxes", "fliers")
    for (level, values), row in zip(groups.items(), boxes.frame.itertuples(), strict=True):
        ref = cbook.boxplot_stats(values, whis=1.5)[0]
        assert row.label == f"workers={level}" and row.n == len(values)
        assert (row.q1, row.median, row.q3) == pytest.approx((ref["q1"], ref["med"], ref["q3"]))
        assert (row.whislo, row.whishi) == pytest.approx((ref["whislo"], ref["whishi"]))
        assert row.n_fliers == len(ref["fliers"])
        mine = fliers.frame[fliers.frame["label"] == row.label]["value"]
        assert sorted(mine) == pytest.approx(sorted(ref["fliers"]))
    assert len(fliers.frame) == int(boxes.frame["n_fliers"].sum())


@pytest.mark.parametrize("batch", [0, 50])
def test_quartiles_and_mad_in_batches_of_configurations(db, groups, monkeypatch, batch):
    # a store of more metric values than HELD_MAX: quartiles and MADs come from one scan per
    # batch of configurations of at most BATCH_VALUES values (0: one configuration each; 50:
    # several per batch)
    import analysis.summary_tails as tails

    monkeypatch.setattr(sys.modules["analysis.query"], "HELD_MAX", 1)
    monkeypatch.setattr(sys.modules["analysis.summary"], "BATCH_VALUES", batch)
    scans = []
    real = tails.execute
    monkeypatch.setattr(tails, "execute", lambda *a: scans.append(a[1]) or real(*a))
    res = summarize(db, metrics=["train_s", "wall_s"])
    assert sum("mad(" in sql for sql in scans) == (len(groups) if batch == 0 else 2)
    for row, (level, values) in zip(res.rows, groups.items(), strict=True):
        assert row["workers"] == level and row["n"] == len(values)
        for key, want in expected_row(values).items():
            assert row[f"train_s_{key}"] == pytest.approx(want, rel=RTOL), key
        assert not math.isnan(row["wall_s_mad"]) and not math.isnan(row["wall_s_q1"])


def test_batched_quartiles_keep_digits_at_an_offset(make_db, trials_for, rng, monkeypatch):
    monkeypatch.setattr(sys.modules["analysis.query"], "HELD_MAX", 1)
    monkeypatch.setattr(sys.modules["analysis.summary"], "BATCH_VALUES", 0)
    values = {1: 1e12 + rng.normal(0.0, 0.01, 25), 2: 1e12 + rng.normal(0.0, 0.02, 30)}
    res = summarize(make_db(trials_for(values)), by=["workers"], metrics=["train_s"])
    for row, vals in zip(res.rows, values.values(), strict=True):
        assert row["train_s_mad"] == pytest.approx(stats.median_abs_deviation(vals), rel=1e-3)
        q1, med, q3 = np.percentile(vals, [25, 50, 75])
        assert (row["train_s_q1"], row["train_s_median"], row["train_s_q3"]) == pytest.approx(
            (q1, med, q3), rel=1e-15
        )
