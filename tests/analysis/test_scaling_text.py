"""`analysis.scaling_text`: every statistic the text of a scaling result shows has a column in
its ``tables()`` (main table first), with the same value; text lines within 120 columns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.scaling import scaling


def _trial(m: float, t: float, engine: str = "dask", **extra: object) -> dict:
    return {"engine": engine, "workload": "knn", "workers": m, "train_s": float(t), **extra}


@pytest.fixture
def result(make_db, rng):
    trials = []
    for m in (1, 2, 4, 8, 16):
        for frac in (0.5, 1.0):
            t = frac * 60 * (0.1 + 0.9 / m) + 0.3 * math.log(m) + 0.01 * m
            trials += [_trial(m, v, data_fraction=frac) for v in t * rng.lognormal(0, 0.02, 4)]
    trials += [_trial(m, 50.0 / m, engine="ray", data_fraction=1.0) for m in (1, 2, 4)]
    return scaling(make_db(trials), by="engine", predict=[32, 64], n_boot=200, seed=2)


def test_tables_carry_every_statistic_of_the_text(result) -> None:
    tables = {t.name: t.frame for t in result.tables()}
    assert [t.name for t in result.tables()] == ["levels", "fits", "predictions", "groups"]
    text = str(result)
    levels = tables["levels"]
    # the level table's columns: x, n, median, speedup, efficiency, change %, karp_flatt
    for col in ("workers", "n", "median", "speedup", "efficiency", "change_pct", "karp_flatt"):
        assert col in levels.columns
    dask = next(g for g in result.groups if g.level == ("dask",))
    rows = levels[levels["engine"] == "dask"]
    np.testing.assert_array_equal(rows["median"], [lv.median for lv in dask.levels])
    np.testing.assert_array_equal(rows["speedup"], [lv.speedup for lv in dask.levels])
    # fits: each parameter with its interval, R^2, AIC, peak throughput and the best model
    fits = tables["fits"]
    for f in dask.fits:
        assert f"{f.model}" in text and "R^2 =" in text
        sub = fits[(fits["engine"] == "dask") & (fits["model"] == f.model)]
        assert list(sub["param"]) == [p.name for p in f.params]
        np.testing.assert_array_equal(sub["estimate"], [p.estimate for p in f.params])
        np.testing.assert_array_equal(sub["ci_low"], [p.ci_low for p in f.params])
        np.testing.assert_array_equal(sub["ci_high"], [p.ci_high for p in f.params])
        assert set(sub["r_squared"]) == {f.r_squared} and set(sub["aic"]) == {f.aic}
        assert set(sub["best"]) == {f.model == dask.best_model}
        peak = sub["peak_x"].iloc[0]
        assert (f.peak_x is None and (peak is None or math.isnan(peak))) or peak == f.peak_x
    # predictions with their interval
    preds = tables["predictions"]
    assert {"model", "workers", "time", "ci_low", "ci_high", "measured"} <= set(preds.columns)
    assert len(preds) == sum(len(g.predictions) for g in result.groups)
    # knees, models not fitted and groups without intervals
    groups = tables["groups"].set_index("engine")
    assert groups.loc["dask", "knee"] == dask.knee and groups.loc["dask", "best_model"] == (
        dask.best_model
    )
    assert groups.loc["dask", "knee_model"] == dask.knee_model
    ray = next(g for g in result.groups if g.level == ("ray",))
    assert groups.loc["ray", "no_intervals"] == ray.no_intervals != ""
    assert groups.loc["ray", "not_fitted"] == "; ".join(ray.skipped) != ""
    assert groups.loc["ray", "n_boot"] == 0 and groups.loc["dask", "n_boot"] == 200
    assert "next level buys < 5%" in text and "not fitted:" in text and "no intervals:" in text


def test_text_lines_fit_120_columns(result) -> None:
    text = str(result)
    assert "ernest" in text  # four parameters with intervals: the longest fit line
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "theta3 =" in text


def test_csv_and_latex_of_tables(result) -> None:
    from analysis.tables import csv_text, latex_text

    assert csv_text(result).splitlines()[0].startswith("engine,workers,n,median")
    assert csv_text(result, "groups").splitlines()[0].startswith("engine,best_model,knee")
    assert latex_text(result).count(r"\begin{tabular}") == 4
