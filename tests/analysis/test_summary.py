from __future__ import annotations

import math
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
