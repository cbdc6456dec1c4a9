"""The report's boxes come from the summary's own scans (``summarize_with_boxes``): each box
as matplotlib's ``cbook.boxplot_stats`` (whis=1.5) computes it from the raw values, and the same
as ``keyed_box_stats``, which the report used before; the summary unchanged."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib import cbook

from analysis import summarize
from analysis.boxstats import keyed_box_stats
from analysis.summary import summarize_with_boxes
from runner.store import TrialRecord, open_store

BY = ("workload", "engine", "workers", "data_fraction")


def _write(path: Path) -> dict[tuple, list[float]]:
    """Ok trials in 8 configurations (heavy tails: values beyond both fences; one with a NULL
    data_fraction, one of 3 trials, one of 1), warm-ups, a failed trial and a NULL metric;
    returns each configuration's ok values."""
    rng = np.random.default_rng(7)
    store = open_store(path)
    values: dict[tuple, list[float]] = {}
    try:
        run = store.begin_run(source="measured", argv=["runner"])
        records = []
        configs = [("knn", "dask", w, f) for w in (1, 2) for f in (0.5, 1.0)] + [
            ("mlp", "local", 1, None),
            ("mlp", "ray", 4, 1.0),
            ("mlp", "ray", 2, 1.0),
        ]
        sizes = [400, 250, 90, 31, 40, 3, 1]
        for (workload, engine, workers, frac), n in zip(configs, sizes, strict=True):
            xs = 1.0 + workers + rng.standard_t(2, size=n) * 0.2
            xs[: n // 40] *= 6.0  # far above the upper fence
            for k, x in enumerate(xs):
                vals = {"workload": workload, "engine": engine, "workers": workers,
                        "data_fraction": frac, "warmup": False, "repetition": k,
                        "train_s": float(x)}  # fmt: skip
                records.append(TrialRecord(run, "ok", vals))
            values[(workload, engine, workers, frac)] = [float(x) for x in xs]
            warm = {"workload": workload, "engine": engine, "workers": workers,
                    "data_fraction": frac, "warmup": True, "train_s": 99.0}  # fmt: skip
            records.append(TrialRecord(run, "ok", warm))
        base = {"workload": "knn", "engine": "dask", "workers": 1, "data_fraction": 0.5}
        records.append(TrialRecord(run, "failed", base | {"train_s": -50.0}))
        records.append(TrialRecord(run, "ok", base | {"infer_s": 0.1}))  # no train_s
        store.append_trials(records)
        store.finish_run(run)
    finally:
        store.close()
    return values


def test_boxes_from_the_summary_are_tukeys_and_keyed_box_stats(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    values = _write(path)
    result, (columns, boxes) = summarize_with_boxes(
        path, by=BY, metrics=("train_s",), box_metric="train_s", n_boot=0
    )
    # the summary itself is summarize's
    plain = summarize(path, by=BY, metrics=("train_s",), n_boot=0)
    assert result.rows == plain.rows
    # the same boxes, labels and order as the separate box pass
    cols_b, keyed = keyed_box_stats(path, by=BY, metric="train_s")
    assert columns == cols_b
    assert boxes == keyed
    # each box as matplotlib computes it from the raw values
    assert sorted(map(repr, (k for k, _ in boxes))) == sorted(map(repr, values))
    n_fliers = 0
    for key, box in boxes:
        xs = values[key]
        (ref,) = cbook.boxplot_stats(xs, whis=1.5)
        assert box.n == len(xs)
        assert (box.q1, box.median, box.q3) == pytest.approx(
            (ref["q1"], ref["med"], ref["q3"]), rel=1e-15, abs=0
        )
        assert (box.whislo, box.whishi) == (ref["whislo"], ref["whishi"])
        assert list(box.fliers) == sorted(float(v) for v in ref["fliers"])
        n_fliers += len(box.fliers)
    assert n_fliers > 10  # the tails were exercised
    # in the order keyed_box_stats documents: by values ascending, NULL last
    assert [k for k, _ in boxes] == sorted(
        (k for k, _ in boxes), key=lambda k: tuple((v is None, 0 if v is None else v) for v in k)
    )


def test_without_spread_only_the_mad_and_geometric_mean_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    _write(path)
    lean, (_, boxes) = summarize_with_boxes(
        path, by=BY, metrics=("train_s",), box_metric="train_s", n_boot=0, spread=False
    )
    full, (_, boxes_full) = summarize_with_boxes(
        path, by=BY, metrics=("train_s",), box_metric="train_s", n_boot=0
    )
    assert boxes == boxes_full
    left_out = {"train_s_mad", "train_s_gmean", "train_s_gmean_ci_low", "train_s_gmean_ci_high"}
    assert len(lean.rows) == len(full.rows)
    for a, b in zip(lean.rows, full.rows, strict=True):
        assert a.keys() == b.keys()
        assert {k: v for k, v in a.items() if k not in left_out} == {
            k: v for k, v in b.items() if k not in left_out
        }
        assert all(math.isnan(a[k]) for k in left_out)
        assert math.isfinite(b["train_s_mad"])
    assert any(math.isfinite(b["train_s_gmean"]) for b in full.rows)


def test_box_metric_must_be_summarized(tmp_path: Path) -> None:
    from analysis import AnalysisError

    path = tmp_path / "r.duckdb"
    _write(path)
    with pytest.raises(AnalysisError, match="box metric"):
        summarize_with_boxes(path, by=BY, metrics=("train_s",), box_metric="infer_s")


def _write_values(path: Path, groups: dict[str, list[float]]) -> None:
    store = open_store(path)
    try:
        run = store.begin_run(source="measured", argv=["runner"])
        store.append_trials(
            TrialRecord(run, "ok", {"workload": "knn", "engine": g, "workers": 1, "train_s": x})
            for g, xs in groups.items()
            for x in xs
        )
        store.finish_run(run)
    finally:
        store.close()


@pytest.mark.parametrize(
    "groups",
    [
        {"a": [1e300], "b": [1e-300, 2e-300]},  # 1e300 / 2^-997 overflowed: NaN mean
        {"a": [1e300, 1.5e300], "b": [1e-300, 2e-300, 3e-300]},  # b's squares underflowed
        {"a": [1.0, 1.657120488341629e-269]},  # the geometric interval's exp overflowed
        {"a": [1.0, 2.0, 4.0], "b": [10.0, 30.0]},  # ordinary: one scale
    ],
)
def test_summary_of_mixed_magnitudes_is_exact(tmp_path: Path, groups: dict) -> None:
    import statistics

    path = tmp_path / "m.duckdb"
    _write_values(path, groups)
    res, (_, boxes) = summarize_with_boxes(
        path, by=("engine",), metrics=("train_s",), box_metric="train_s", n_boot=0
    )
    rows = {r["engine"]: r for r in res.rows}
    for g, xs in groups.items():
        row = rows[g]
        assert row["n"] == len(xs)
        assert row["train_s_mean"] == pytest.approx(statistics.fmean(xs), rel=1e-15)
        if len(xs) > 1:
            assert row["train_s_sd"] == pytest.approx(statistics.stdev(xs), rel=1e-14)
            assert row["train_s_mad"] == pytest.approx(
                statistics.median(abs(x - statistics.median(xs)) for x in xs), rel=1e-15
            )
        if all(x > 0 for x in xs):
            gmean = statistics.geometric_mean(xs)
            assert row["train_s_gmean"] == pytest.approx(gmean, rel=1e-12)
            if len(xs) > 1:
                assert row["train_s_gmean_ci_low"] <= gmean <= row["train_s_gmean_ci_high"]
    assert [b.n for _, b in boxes] == [len(xs) for _, xs in sorted(groups.items())]
