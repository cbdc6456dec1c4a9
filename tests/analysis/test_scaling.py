"""`analysis.scaling`: the per-level table against NumPy on the raw rows, the fits against scipy's
nnls on the raw rows, known answers (Amdahl's serial fraction, the USL's sigma/kappa, Ernest's
theta recovered from synthetic times), published tables (000 Table 3, 004 Appendix B), and
ill-conditioned data (1e12 + tiny noise, nanosecond and 1e12-second times, a million workers,
data fractions of 1e-9) against least squares and OLS on the exactly shifted rows."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import nnls

from analysis.errors import AnalysisError
from analysis.scaling import LEVEL_COLUMNS, scaling
from tests.conftest import run_cli

LEVELS = (1, 2, 4, 8, 16)


def _trial(m: float, t: float, engine: str = "dask", **extra: object) -> dict:
    return {"engine": engine, "workload": "knn", "workers": m, "train_s": float(t), **extra}


def amdahl(m: np.ndarray, t1: float, s: float) -> np.ndarray:
    return t1 * (s + (1 - s) / m)


def usl(m: np.ndarray, t1: float, sigma: float, kappa: float) -> np.ndarray:
    """Time for a fixed amount of work at USL throughput m / (1 + sigma (m-1) + kappa m (m-1))."""
    return t1 * (1 + sigma * (m - 1) + kappa * m * (m - 1)) / m


def _raw(db: Path, sql: str) -> np.ndarray:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return np.array(con.execute(sql).fetchall(), dtype=float)
    finally:
        con.close()


# -- the per-level table and the fits against the raw rows ---------------------------------------
@pytest.fixture
def noisy_db(make_db, rng) -> Path:
    trials = []
    for m, reps in zip(LEVELS, (7, 5, 6, 4, 8), strict=True):
        for t in usl(np.full(reps, float(m)), 60.0, 0.06, 0.004) * rng.lognormal(0, 0.03, reps):
            trials.append(_trial(m, t))
    trials.append(_trial(2, 999.0, warmup=True))
    trials.append({**_trial(4, 0.001), "status": "failed"})
    return make_db(trials)


def test_level_table_matches_numpy(noisy_db: Path) -> None:
    result = scaling(noisy_db, by=(), n_boot=0)
    raw = _raw(
        noisy_db,
        "SELECT workers, train_s FROM observations "
        "WHERE status = 'ok' AND NOT coalesce(warmup, false)",
    )
    medians = {m: np.median(raw[raw[:, 0] == m, 1]) for m in LEVELS}
    (group,) = result.groups
    assert [lv.x for lv in group.levels] == list(LEVELS)
    for i, lv in enumerate(group.levels):
        values = raw[raw[:, 0] == lv.x, 1]
        speedup = medians[1] / medians[lv.x]
        assert lv.n == len(values)
        assert lv.median == pytest.approx(medians[lv.x], rel=1e-12)
        assert lv.mean == pytest.approx(values.mean(), rel=1e-12)
        assert lv.sd == pytest.approx(values.std(ddof=1), rel=1e-9)
        assert lv.speedup == pytest.approx(speedup, rel=1e-12)
        assert lv.efficiency == pytest.approx(speedup / lv.x, rel=1e-12)
        if i == 0:
            assert lv.change_pct is None and lv.karp_flatt is None
        else:
            prev = medians[LEVELS[i - 1]]
            assert lv.change_pct == pytest.approx(100 * (medians[lv.x] - prev) / prev, rel=1e-12)
            p = lv.x
            assert lv.karp_flatt == pytest.approx((1 / speedup - 1 / p) / (1 - 1 / p), rel=1e-12)
    frame = result.to_frame()
    assert list(frame.columns) == ["workers", *LEVEL_COLUMNS]
    assert list(frame["workers"]) == list(LEVELS)


def _designs(m: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "amdahl": np.column_stack([np.ones_like(m), 1 / m]),
        "usl": np.column_stack([1 / m, (m - 1) / m, m - 1]),
        "ernest": np.column_stack([np.ones_like(m), 1 / m, np.log(m), m]),
    }


def test_fits_match_scipy_nnls_on_every_trial(noisy_db: Path) -> None:
    result = scaling(noisy_db, by=(), n_boot=0)
    raw = _raw(
        noisy_db,
        "SELECT workers, train_s FROM observations "
        "WHERE status = 'ok' AND NOT coalesce(warmup, false)",
    )
    m, t = raw[:, 0], raw[:, 1]
    fits = {f.model: f for f in result.groups[0].fits}
    assert set(fits) == {"amdahl", "usl", "ernest"}
    for name, design in _designs(m).items():
        coef, _ = nnls(design, t)
        resid = t - design @ coef
        rss = float(resid @ resid)
        fit = fits[name]
        assert fit.rss == pytest.approx(rss, rel=1e-7)
        assert fit.r_squared == pytest.approx(1 - rss / np.sum((t - t.mean()) ** 2), rel=1e-9)
        llf = stats.norm.logpdf(resid, scale=math.sqrt(rss / len(t))).sum()
        assert fit.aic == pytest.approx(-2 * llf + 2 * design.shape[1], rel=1e-9)
        assert fit.n_trials == len(t) and fit.n_points == len(LEVELS)
        if name == "amdahl":
            assert fit.param("t1") == pytest.approx(coef.sum(), rel=1e-7)
            assert fit.param("serial_fraction") == pytest.approx(coef[0] / coef.sum(), rel=1e-6)
        elif name == "usl":
            assert fit.param("sigma") == pytest.approx(coef[1] / coef[0], rel=1e-6)
            assert fit.param("kappa") == pytest.approx(coef[2] / coef[0], rel=1e-6)
        else:
            got = [fit.param(f"theta{i}") for i in range(4)]
            np.testing.assert_allclose(got, coef, rtol=1e-6, atol=1e-9 * t.max())
    assert result.groups[0].best_model == min(fits.values(), key=lambda f: f.aic).model


# -- known answers ------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [LEVELS, (2, 4, 8, 16, 32)])
def test_amdahl_serial_fraction_recovered(make_db, levels) -> None:
    t1, s = 80.0, 0.12
    times = amdahl(np.array(levels, dtype=float), t1, s)
    db = make_db([_trial(m, t) for m, t in zip(levels, times, strict=True) for _ in range(3)])
    group = scaling(db, by=(), n_boot=0).groups[0]
    fits = {f.model: f for f in group.fits}
    assert fits["amdahl"].param("serial_fraction") == pytest.approx(s, rel=1e-9)
    assert fits["amdahl"].param("t1") == pytest.approx(t1, rel=1e-9)  # extrapolated for m0 = 2
    assert fits["amdahl"].r_squared == pytest.approx(1.0, abs=1e-12)
    # Amdahl is the USL with kappa = 0
    assert fits["usl"].param("sigma") == pytest.approx(s, rel=1e-7)
    assert fits["usl"].param("kappa") == pytest.approx(0.0, abs=1e-10)
    # Karp-Flatt recovers the serial fraction at every level (relative to x0 when m0 > 1, where
    # the serial fraction of the m0-worker run is s m0 / (s m0 + 1 - s))
    m0 = levels[0]
    s0 = s * m0 / (s * m0 + 1 - s)
    for lv in group.levels[1:]:
        assert lv.karp_flatt == pytest.approx(s0, rel=1e-9)


def test_usl_sigma_kappa_and_peak_recovered(make_db) -> None:
    t1, sigma, kappa = 50.0, 0.04, 0.0015
    levels = np.array([1, 2, 4, 8, 16, 32, 64], dtype=float)
    db = make_db([_trial(m, t) for m, t in zip(levels, usl(levels, t1, sigma, kappa), strict=True)])
    fit = next(f for f in scaling(db, by=(), n_boot=0).groups[0].fits if f.model == "usl")
    assert fit.param("t1") == pytest.approx(t1, rel=1e-9)
    assert fit.param("sigma") == pytest.approx(sigma, rel=1e-8)
    assert fit.param("kappa") == pytest.approx(kappa, rel=1e-8)
    assert fit.peak_x == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=1e-8)
    # the peak of throughput m / (1 + sigma (m-1) + kappa m (m-1)), found numerically
    grid = np.linspace(1, 200, 400_001)
    throughput = grid / (1 + sigma * (grid - 1) + kappa * grid * (grid - 1))
    assert fit.peak_x == pytest.approx(grid[np.argmax(throughput)], abs=1e-3)


def test_ernest_theta_recovered_with_sizes(make_db) -> None:
    theta = np.array([2.0, 50.0, 1.5, 0.3])
    trials = []
    for frac in (0.25, 0.5, 1.0):
        for m in LEVELS:
            t = theta[0] + theta[1] * frac / m + theta[2] * math.log(m) + theta[3] * m
            trials.append(_trial(m, t, data_fraction=frac))
    result = scaling(make_db(trials), by=(), n_boot=0, predict=[32])
    assert result.size == "data_fraction"
    group = result.groups[0]
    fit = next(f for f in group.fits if f.model == "ernest")
    np.testing.assert_allclose([fit.param(f"theta{i}") for i in range(4)], theta, rtol=1e-8)
    assert fit.n_points == 15
    pred = next(p for p in group.predictions if p.model == "ernest")
    assert pred.time == pytest.approx(theta @ [1, 1 / 32, math.log(32), 32], rel=1e-8)
    assert pred.ci_low is None and not pred.measured


def test_bootstrap_intervals_cover_truth_and_are_seeded(make_db) -> None:
    t1, sigma, kappa = 40.0, 0.08, 0.003
    rng = np.random.default_rng(11)
    trials = [
        _trial(m, t)
        for m in LEVELS
        for t in usl(np.full(10, float(m)), t1, sigma, kappa) + rng.normal(0, 0.2, 10)
    ]
    db = make_db(trials)
    a = scaling(db, by=(), predict=[32], n_boot=400, seed=5)
    b = scaling(db, by=(), predict=[32], n_boot=400, seed=5)
    c = scaling(db, by=(), predict=[32], n_boot=400, seed=6)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()
    fit = next(f for f in a.groups[0].fits if f.model == "usl")
    for name, true in (("t1", t1), ("sigma", sigma), ("kappa", kappa)):
        p = next(p for p in fit.params if p.name == name)
        assert p.ci_low <= true <= p.ci_high, (name, p)
    pred = next(p for p in a.groups[0].predictions if p.model == "usl")
    true_32 = usl(np.array([32.0]), t1, sigma, kappa)[0]
    assert pred.ci_low <= true_32 <= pred.ci_high
    assert pred.ci_low < pred.time < pred.ci_high


def test_min_gain_knees(make_db) -> None:
    t1, s, gain = 100.0, 0.13, 0.05  # (s = 0.1 puts m = 9 exactly on the 5% boundary)
    db = make_db([_trial(m, t) for m in LEVELS for t in [amdahl(np.array(m), t1, s)] * 2])
    group = scaling(db, by=(), n_boot=0, min_gain=gain, predict=[32, 64, 128, 256]).groups[0]
    # one more worker: T(m) - T(m+1) < gain * T(m), brute force on Amdahl's curve
    m = 1
    while amdahl(m, t1, s) - amdahl(m + 1, t1, s) >= gain * amdahl(m, t1, s):
        m += 1
    assert group.knee_model == m
    # consecutive levels 1, 2, 4, 8, 16, then predicted 32 .. 256
    seq = [(x, amdahl(x, t1, s)) for x in (*LEVELS, 32, 64, 128, 256)]
    expect = next(
        xa for (xa, ta), (_, tb) in zip(seq, seq[1:], strict=False) if (ta - tb) / ta < gain
    )
    assert group.knee == expect == 64


def test_percent_change_sign_as_002_reports_it(make_db) -> None:
    """002: "Increasing from 1 to 2 worker nodes decreased runtime by 28.87%"."""
    db = make_db([_trial(1, 100.0), _trial(1, 100.0), _trial(2, 71.13), _trial(2, 71.13)])
    level2 = scaling(db, by=(), n_boot=0).groups[0].levels[1]
    assert level2.change_pct == pytest.approx(-28.87, rel=1e-12)


# -- published tables ----------------------------------------------------------------------------
def _import(tmp_path: Path, paper: str) -> Path:
    db = tmp_path / "p.duckdb"
    proc = run_cli("runner", "import", "published", "--paper", paper, "--db", db)
    assert proc.returncode == 0, proc.stderr
    return db


def test_paper000_table3_speedups(tmp_path: Path) -> None:
    db = _import(tmp_path, "000")
    result = scaling(db, n_boot=0, where=["table=T3"])
    groups = {g.level: g for g in result.groups}
    # Table 3's "ResNet18" row is the paper's CNN: workload cnn
    assert set(groups) == {
        ("dask", "knn"),
        ("dask", "cnn"),
        ("ray", "knn"),
        ("ray", "cnn"),
    }
    knn = groups[("dask", "knn")]
    # "decreased from 3.78 seconds with 2 workers to 2.69 seconds with 6 workers"
    assert [lv.median for lv in knn.levels] == [3.78, 2.73, 2.69]
    assert knn.levels[2].speedup == pytest.approx(3.78 / 2.69, rel=1e-12)
    assert knn.levels[2].efficiency == pytest.approx(3.78 / 2.69 / 3, rel=1e-12)
    assert knn.levels[1].change_pct == pytest.approx(100 * (2.73 - 3.78) / 3.78, rel=1e-12)
    # 4 -> 6 workers buys 1.5%: less than 5%
    assert knn.knee == 4
    # three levels: only Amdahl (2 parameters) can be tested; the others say why not
    assert [f.model for f in knn.fits] == ["amdahl"]
    assert any("usl needs more than 3" in s for s in knn.skipped)
    ray = groups[("ray", "knn")]
    assert ray.levels[2].change_pct == pytest.approx(100 * (3.42 - 3.19) / 3.19, rel=1e-12)
    assert ray.knee == 2


def test_paper004_clusters_no_speedup_past_five_nodes(tmp_path: Path) -> None:
    """004: "a speed up on the large dataset from one to three and from three to five nodes.
    There is no further speedup by going to 17 nodes"; none at all on the small dataset."""
    db = _import(tmp_path, "004")
    result = scaling(db, x="nodes", by="dataset", n_boot=0, where=["table=B"])
    groups = {g.level[0]: g for g in result.groups}
    large, small = groups["emnist"], groups["mnist"]
    assert [lv.x for lv in large.levels] == [1, 3, 5, 17]
    assert large.levels[1].speedup == pytest.approx(1183.191 / 1003.274, rel=1e-12)
    assert large.levels[2].speedup == pytest.approx(1183.191 / 679.665, rel=1e-12)
    assert large.knee == 5
    assert small.knee == 1


# -- degenerate input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("trials", "kwargs", "needle"),
    [
        ([_trial(2, 1.0), _trial(2, 1.1)], {}, "has only one level (2)"),
        ([_trial(1, 2.0), _trial(1, 2.0), _trial(2, 2.0), _trial(2, 2.0)], {}, "same in every"),
        ([_trial(1, 2.0), _trial(2, float("nan")), _trial(2, 1.0)], {}, "NaN or infinite"),
        ([_trial(1, 2.0), _trial(2, float("inf")), _trial(2, 1.0)], {}, "NaN or infinite"),
        ([_trial(0, 2.0), _trial(2, 1.0)], {"n_boot": 0}, "zero or negative"),
        ([_trial(1, -2.0), _trial(2, 1.0)], {"n_boot": 0}, "negative"),
        ([_trial(1, 0.0), _trial(2, 0.0)], {"n_boot": 0}, "median train_s is zero"),
        ([_trial(1, 2.0), _trial(2, 1.0)], {"x": "wrkers"}, "did you mean workers"),
        ([_trial(1, 2.0), _trial(2, 1.0)], {"x": "engine", "by": ()}, "not numeric"),
        ([_trial(1, 2.0), _trial(2, 1.0)], {"by": ("workers",)}, "also a --by"),
        ([_trial(1, 2.0), _trial(2, 1.0)], {"min_gain": 5.0}, "between 0 and 1"),
        ([_trial(1, 2.0), _trial(2, 1.0)], {"predict": [0]}, "not a positive number"),
        ([_trial(1, 2.0), _trial(2, 1.0)], {"n_boot": 10}, "outside 100..10,000,000 resamples"),
        ([_trial(1, 2.0), _trial(2, 1.0)], {"where": ["workers>4"]}, "no trials match"),
    ],
)
def test_degenerate_input_is_a_clear_error(make_db, trials, kwargs, needle) -> None:
    db = make_db(trials)
    with pytest.raises(AnalysisError) as info:
        scaling(db, **kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_two_levels_give_the_table_and_no_fits(make_db) -> None:
    db = make_db([_trial(1, 2.0), _trial(1, 2.2), _trial(2, 1.2), _trial(2, 1.1)])
    group = scaling(db, n_boot=0).groups[0]
    assert [lv.speedup for lv in group.levels] == [1.0, pytest.approx(2.1 / 1.15)]
    assert group.fits == () and group.best_model is None and group.knee_model is None
    assert len(group.skipped) == 3
    text = json.dumps(scaling(db, n_boot=0).to_dict())
    assert "NaN" not in text


# -- ill-conditioned data: 1e12 + tiny noise, tiny times, huge and tiny x and size ----------------
OFFSET = 1e12


def _ols(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares by NumPy's SVD solver on the raw rows (columns scaled to unit norm): the
    coefficients and the residual sum of squares."""
    scale = np.linalg.norm(design, axis=0)
    coef = np.linalg.lstsq(design / scale, y, rcond=None)[0] / scale
    resid = y - design @ coef
    return coef, float(resid @ resid)


def _offset_rows(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(workers, time) rows: 1e12 plus a small USL-shaped signal with a little noise, so that the
    least-squares coefficients of all three models are positive (NNLS = least squares)."""
    m = np.repeat(np.array([1, 2, 3, 4, 6, 8, 12, 16], dtype=float), 9)
    signal = 0.5 * (1 + 0.1 * (m - 1) + 0.004 * m * (m - 1)) / m + 0.02 * np.log(m)
    return m, OFFSET + signal + rng.normal(0.0, 0.002, m.size)


def test_offset_level_table_matches_numpy(make_db, rng) -> None:
    """1e12 + tiny noise: medians, means and sds against NumPy on the raw rows (and on the
    exactly shifted rows for the mean and sd), speed-ups, percent changes and Karp-Flatt."""
    m, t = _offset_rows(rng)
    result = scaling(make_db([_trial(a, b) for a, b in zip(m, t, strict=True)]), by=(), n_boot=0)
    (group,) = result.groups
    dev = t - OFFSET  # exact in float64
    levels = np.unique(m)
    medians = {x: float(np.median(t[m == x])) for x in levels}
    assert [lv.x for lv in group.levels] == levels.tolist()
    for i, lv in enumerate(group.levels):
        assert lv.median == medians[lv.x]
        assert lv.mean - OFFSET == pytest.approx(dev[m == lv.x].mean(), abs=1.5e-4)  # 1 ulp
        assert lv.sd == pytest.approx(dev[m == lv.x].std(ddof=1), rel=1e-9)
        speedup = medians[levels[0]] / medians[lv.x]
        assert lv.speedup == pytest.approx(speedup, rel=1e-15)
        if i:
            prev = medians[levels[i - 1]]
            assert lv.change_pct == pytest.approx(100 * (medians[lv.x] - prev) / prev, rel=1e-12)
            p = lv.x
            assert lv.karp_flatt == pytest.approx((1 / speedup - 1 / p) / (1 - 1 / p), rel=1e-12)


def test_offset_fits_match_least_squares_on_shifted_rows(make_db, rng) -> None:
    """At 1e12 + tiny noise the reference is least squares on ``time - 1e12`` (exact in float64):
    every model has a constant in its span (Amdahl's and Ernest's first column; the USL's first
    two add up to 1), so shifting moves only the coefficients that carry the constant, and when
    the shifted solution is positive NNLS is plain least squares."""
    m, t = _offset_rows(rng)
    db = make_db([_trial(a, b) for a, b in zip(m, t, strict=True)])
    result = scaling(db, by=(), n_boot=0, predict=[24])
    fits = {f.model: f for f in result.groups[0].fits}
    y = t - OFFSET
    tss = float(np.sum((y - y.mean()) ** 2))
    constant = {"amdahl": [1, 0], "usl": [1, 1, 0], "ernest": [1, 0, 0, 0]}
    for name, design in _designs(m).items():
        coef, rss = _ols(design, y)
        assert (coef[1:] > 0).all(), (name, coef)  # positive: NNLS is least squares here
        full = coef + OFFSET * np.array(constant[name])
        fit = fits[name]
        assert fit.rss == pytest.approx(rss, rel=1e-8), name
        assert fit.r_squared == pytest.approx(1 - rss / tss, rel=1e-12), name
        k = design.shape[1]
        aic = len(y) * (math.log(2 * math.pi * rss / len(y)) + 1) + 2 * k
        assert fit.aic == pytest.approx(aic, rel=1e-9), name
        pred = next(p for p in result.groups[0].predictions if p.model == name)
        assert pred.time - OFFSET == pytest.approx(
            _designs(np.array([24.0]))[name][0] @ coef,
            abs=2.5e-4,  # 2 ulp at 1e12
        )
        if name == "amdahl":
            assert fit.param("t1") == pytest.approx(full.sum(), rel=1e-15)
        elif name == "usl":
            assert fit.param("kappa") == pytest.approx(full[2] / full[0], rel=1e-8)
        else:
            got = [fit.param(f"theta{i}") for i in range(4)]
            assert got[0] == pytest.approx(full[0], rel=1e-15)
            np.testing.assert_allclose(got[1:], coef[1:], rtol=1e-8)
    assert result.groups[0].best_model == min(fits.values(), key=lambda f: f.aic).model


@pytest.mark.parametrize("scale", [1e12, 1e-9])
def test_huge_and_tiny_times_recover_amdahl_and_usl(make_db, rng, scale) -> None:
    """T(m) = scale * USL(m) with noise of 1e-9 of it: the serial fraction and contention are
    recovered, and the fits equal scipy's nnls on the raw rows divided by ``scale``."""
    t1, sigma, kappa = 1.0, 0.07, 0.002
    m = np.repeat(np.array([1, 2, 4, 8, 16, 32], dtype=float), 4)
    t = scale * usl(m, t1, sigma, kappa) * (1 + 1e-9 * rng.standard_normal(m.size))
    db = make_db([_trial(a, b) for a, b in zip(m, t, strict=True)])
    group = scaling(db, by=(), n_boot=0, predict=[64]).groups[0]
    fits = {f.model: f for f in group.fits}
    usl_fit = fits["usl"]
    assert usl_fit.param("t1") == pytest.approx(scale * t1, rel=1e-7)
    assert usl_fit.param("sigma") == pytest.approx(sigma, rel=1e-6)
    assert usl_fit.param("kappa") == pytest.approx(kappa, rel=1e-6)
    assert usl_fit.peak_x == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=1e-6)
    y = t / scale
    for name, design in _designs(m).items():
        coef, _ = nnls(design, y)
        fit = fits[name]
        if name == "amdahl":
            assert fit.param("t1") == pytest.approx(scale * coef.sum(), rel=1e-9)
            assert fit.param("serial_fraction") == pytest.approx(coef[0] / coef.sum(), rel=1e-9)
        elif name == "usl":
            assert fit.param("sigma") == pytest.approx(coef[1] / coef[0], rel=1e-6)
            assert fit.param("kappa") == pytest.approx(coef[2] / coef[0], rel=1e-6)
        else:
            got = np.array([fit.param(f"theta{i}") for i in range(4)]) / scale
            np.testing.assert_allclose(got, coef, rtol=1e-6, atol=1e-9)
    assert usl_fit.r_squared == pytest.approx(1.0, abs=1e-9)
    medians = {x: float(np.median(t[m == x])) for x in np.unique(m)}
    for lv in group.levels:
        assert lv.median == medians[lv.x]
        assert lv.speedup == pytest.approx(medians[1.0] / lv.median, rel=1e-15)


def test_workers_up_to_a_million(make_db) -> None:
    """x from 1 to 1e6: Amdahl's and the USL's parameters, and where throughput peaks."""
    levels = 10.0 ** np.arange(7)
    t1, sigma, kappa = 3600.0, 1e-3, 1e-9
    times = usl(levels, t1, sigma, kappa)
    db = make_db([_trial(a, b) for a, b in zip(levels, times, strict=True) for _ in range(2)])
    group = scaling(db, by=(), n_boot=0, predict=[2e6]).groups[0]
    fit = next(f for f in group.fits if f.model == "usl")
    assert fit.param("t1") == pytest.approx(t1, rel=1e-9)
    assert fit.param("sigma") == pytest.approx(sigma, rel=1e-7)
    assert fit.param("kappa") == pytest.approx(kappa, rel=1e-7)
    assert fit.peak_x == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=1e-7)
    pred = next(p for p in group.predictions if p.model == "usl")
    assert pred.time == pytest.approx(usl(np.array([2e6]), t1, sigma, kappa)[0], rel=1e-7)
    amdahl_times = amdahl(levels, t1, 1e-4)
    db = make_db([_trial(a, b) for a, b in zip(levels, amdahl_times, strict=True)])
    fit = next(f for f in scaling(db, by=(), n_boot=0).groups[0].fits if f.model == "amdahl")
    assert fit.param("serial_fraction") == pytest.approx(1e-4, rel=1e-9)
    assert fit.param("t1") == pytest.approx(t1, rel=1e-9)


def test_ernest_with_tiny_data_fractions_and_a_million_workers(make_db) -> None:
    """size = data_fraction of 1e-9 .. 4e-9 (theta1 correspondingly huge), x from 1 to 1e6:
    Ernest's theta are recovered (the design's columns span 15 orders of magnitude)."""
    theta = np.array([2.0, 5e10, 1.5, 3e-5])
    trials = []
    for frac in (1e-9, 2e-9, 4e-9):
        for m in 10.0 ** np.arange(7):
            t = theta[0] + theta[1] * frac / m + theta[2] * math.log(m) + theta[3] * m
            trials.append(_trial(m, t, data_fraction=frac))
    group = scaling(make_db(trials), by=(), n_boot=0).groups[0]
    fit = next((f for f in group.fits if f.model == "ernest"), None)
    assert fit is not None, group.skipped
    np.testing.assert_allclose([fit.param(f"theta{i}") for i in range(4)], theta, rtol=1e-8)


@pytest.mark.parametrize("exact", [True, False])
def test_offset_bootstrap_matches_ols_intervals(make_db, rng, monkeypatch, exact) -> None:
    """Bootstrap intervals at 1e12 + noise whose standard error is far below one unit in the
    last place of 1e12 (cells resampled from their trials, or from the normal approximation for
    big cells): the percentile intervals of Ernest's theta are close to the t intervals of
    statsmodels' OLS on the shifted rows (theta0 carries the 1e12, so no bound is active and NNLS
    is OLS)."""
    import statsmodels.api as sm

    if not exact:
        monkeypatch.setattr(sys.modules["analysis.scaling_data"], "BOOT_EXACT_MAX", 10)
    theta = np.array([0.0, 0.02, 0.004, 0.001])  # on top of 1e12
    m = np.repeat(np.array([1, 2, 4, 8, 16, 32, 64], dtype=float), 60)
    design = _designs(m)["ernest"]
    t = OFFSET + design @ theta + rng.normal(0.0, 1e-4, m.size)
    db = make_db([_trial(a, b) for a, b in zip(m, t, strict=True)])
    fit = next(
        f for f in scaling(db, by=(), n_boot=1000, seed=3).groups[0].fits if f.model == "ernest"
    )
    ols = sm.OLS(t - OFFSET, design).fit()
    low, high = ols.conf_int(0.05).T
    assert fit.param("theta0") == pytest.approx(OFFSET + ols.params[0], rel=1e-15)
    for i in (1, 2, 3):
        p = fit.params[i]
        assert p.estimate == pytest.approx(ols.params[i], rel=1e-8)
        width = high[i] - low[i]
        assert p.ci_high - p.ci_low == pytest.approx(width, rel=0.2), p
        assert p.ci_low == pytest.approx(low[i], abs=0.2 * width), p
        assert p.ci_high == pytest.approx(high[i], abs=0.2 * width), p


def test_seeded_bootstrap_repeats_on_a_big_database(make_db) -> None:
    """300,000 trials in cells of 3,000 (resampled from their values, which DuckDB collects in
    parallel): the same seed gives the same intervals (to the last bits DuckDB's parallel sums
    leave free)."""
    import duckdb

    db = make_db([_trial(1, 54.0, workload="w0")])
    con = duckdb.connect(str(db))
    try:
        run = con.execute("SELECT run_id FROM runs").fetchone()[0]
        con.execute(
            "INSERT INTO trials (trial_id, run_id, engine, workload, workers, warmup, status, "
            "train_s) SELECT nextval('trial_id_seq'), ?, 'dask', 'w' || (i % 20), w, false, 'ok', "
            "60 * (0.1 + 0.9 / w) * (1 + 0.03 * ((i * 7919) % 1000 / 1000 - 0.5)) "
            "FROM (SELECT i, CAST(pow(2, i // 20 % 5) AS INTEGER) AS w FROM range(300000) t(i))",
            [run],
        )
    finally:
        con.close()
    first, second = (scaling(db, by="workload", n_boot=100, seed=1, predict=[32]) for _ in range(2))
    for a, b in (
        (first.fit_frame(), second.fit_frame()),
        (first.prediction_frame(), second.prediction_frame()),
    ):
        for col in ("estimate", "ci_low", "ci_high", "time"):
            if col in a:
                np.testing.assert_allclose(a[col], b[col], rtol=1e-9, atol=1e-12, err_msg=col)


def test_negative_seed_is_a_one_line_error(db):
    with pytest.raises(AnalysisError, match="--seed -1 is not a seed"):
        scaling(db, seed=-1)


# -- magnitudes near the ends of float64, one trial per level (published tables) ---------------
@pytest.mark.parametrize("scale", [1e300, 1e-300, 1.0])
def test_perfect_scaling_at_1e300_and_1e_300(make_db, scale) -> None:
    """Times scale * [8, 4, 2, 1] at 1, 2, 4, 8 workers: perfect scaling, worked out by hand.
    T(m) = 8 scale / m, so the speed-ups are 1, 2, 4, 8, efficiency 1, each step -50%,
    Karp-Flatt 0; Amdahl's T1 = 8 scale with serial fraction 0; the USL's sigma = kappa = 0
    (T1 = 8 scale); both fit exactly (R^2 = 1). Near 1e154 and beyond, squares overflowed and
    the fit gave T1 = 0."""
    times = [scale * v for v in (8.0, 4.0, 2.0, 1.0)]
    db = make_db([_trial(m, t) for m, t in zip((1, 2, 4, 8), times, strict=True)])
    result = scaling(db, by=(), predict=[16])
    (group,) = result.groups
    assert [lv.median for lv in group.levels] == times
    assert [lv.speedup for lv in group.levels] == [1.0, 2.0, 4.0, 8.0]
    assert [lv.efficiency for lv in group.levels] == [1.0, 1.0, 1.0, 1.0]
    assert [lv.change_pct for lv in group.levels] == [None, *[pytest.approx(-50.0, rel=1e-15)] * 3]
    assert [lv.karp_flatt for lv in group.levels] == [None, 0.0, 0.0, 0.0]
    fits = {f.model: f for f in group.fits}
    assert fits["amdahl"].param("t1") == pytest.approx(8 * scale, rel=1e-12)
    assert fits["amdahl"].param("serial_fraction") == pytest.approx(0.0, abs=1e-12)
    assert fits["usl"].param("t1") == pytest.approx(8 * scale, rel=1e-12)
    assert fits["usl"].param("sigma") == pytest.approx(0.0, abs=1e-12)
    assert fits["usl"].param("kappa") == pytest.approx(0.0, abs=1e-12)
    for f in fits.values():
        assert f.r_squared == pytest.approx(1.0, abs=1e-12)
        assert all(math.isfinite(p.estimate) for p in f.params)
    pred = {p.model: p.time for p in group.predictions}
    assert pred["amdahl"] == pytest.approx(scale / 2, rel=1e-12)  # 8 scale / 16
    # one trial per level: point estimates, no intervals, and said so
    assert all(p.ci_low is None for f in group.fits for p in f.params)
    assert "measured by 1 trial" in group.no_intervals
    assert any("without intervals" in n for n in result.notes)
    assert "no intervals: workers=1, 2, 4, 8 measured by 1 trial" in str(result)


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_noisy_usl_at_extreme_magnitudes_matches_numpy_and_nnls(make_db, rng, scale) -> None:
    """Noisy USL times (seconds) multiplied by 1e300 or 1e-300: medians, sds and speed-ups
    against NumPy on the seconds times ``scale``, and the fits against scipy's nnls on the
    seconds (the models are linear in time: T1 and theta scale, fractions do not)."""
    m = np.repeat(np.array([1, 2, 4, 8, 16], dtype=float), 3)
    t = usl(m, 60.0, 0.05, 0.003) * rng.lognormal(0, 0.02, m.size)
    db = make_db([_trial(a, b * scale) for a, b in zip(m, t, strict=True)])
    group = scaling(db, by=(), n_boot=0).groups[0]
    med = {x: float(np.median(t[m == x])) for x in np.unique(m)}
    for lv in group.levels:
        assert lv.median == pytest.approx(med[lv.x] * scale, rel=1e-14)
        assert lv.sd == pytest.approx(t[m == lv.x].std(ddof=1) * scale, rel=1e-9)
        assert lv.speedup == pytest.approx(med[1.0] / med[lv.x], rel=1e-14)
    fits = {f.model: f for f in group.fits}
    designs = _designs(m)
    coef, rss = nnls(designs["amdahl"], t)
    assert fits["amdahl"].param("t1") == pytest.approx(coef.sum() * scale, rel=1e-8)
    assert fits["amdahl"].param("serial_fraction") == pytest.approx(coef[0] / coef.sum(), rel=1e-8)
    coef, _ = nnls(designs["usl"], t)
    assert fits["usl"].param("t1") == pytest.approx(coef[0] * scale, rel=1e-8)
    assert fits["usl"].param("sigma") == pytest.approx(coef[1] / coef[0], rel=1e-7)
    assert fits["usl"].param("kappa") == pytest.approx(coef[2] / coef[0], rel=1e-7)
    tss = float(np.sum((t - t.mean()) ** 2))
    for f in fits.values():
        assert 0 < f.r_squared < 1 and math.isfinite(f.aic)
    coef, rss = nnls(designs["amdahl"], t)
    assert fits["amdahl"].r_squared == pytest.approx(1 - rss**2 / tss, rel=1e-9)
    n = m.size  # AIC of times in other units: + 2 n ln(scale)
    aic = n * (math.log(2 * math.pi * rss**2 / n) + 1) + 4 + 2 * n * math.log(scale)
    assert fits["amdahl"].aic == pytest.approx(aic, rel=1e-9)


def test_single_trial_levels_give_point_estimates_per_group(make_db) -> None:
    """A published table has one run per cell: scaling gives point estimates for that group
    and says so, while a group with repeated trials keeps its bootstrap intervals."""
    trials = [_trial(m, 8.0 / m * (1 + 0.01 * r), engine="dask") for m in (1, 2, 4, 8)
              for r in range(3)]  # fmt: skip
    trials += [_trial(m, 9.0 / m, engine="ray") for m in (1, 2, 4, 8)]
    result = scaling(db := make_db(trials), by="engine", n_boot=200, seed=1)
    groups = {g.level[0]: g for g in result.groups}
    assert groups["dask"].no_intervals == ""
    assert all(p.ci_low is not None for f in groups["dask"].fits for p in f.params)
    assert "workers=1, 2, 4, 8 measured by 1 trial" in groups["ray"].no_intervals
    assert all(p.ci_low is None for f in groups["ray"].fits for p in f.params)
    assert result.notes == (
        "1 of 2 groups without intervals: a level measured by one trial (as a published table) "
        "gives point estimates only",
    )
    proc = run_cli("analyze", "scaling", "--by", "engine", "--predict", "8,16", "--db", db)
    assert proc.returncode == 0, proc.stderr
    assert "no intervals: workers=1, 2, 4, 8 measured by 1 trial" in proc.stdout


@pytest.mark.parametrize("held_max", [1, 10**9])
def test_level_medians_in_batches_of_levels(noisy_db: Path, monkeypatch, held_max) -> None:
    """Beyond HELD_MAX selected trials the per-level medians (DuckDB holds a level's values)
    are taken a batch of levels at a time: the same table against NumPy either way."""
    data = sys.modules["analysis.scaling_data"]
    monkeypatch.setattr(sys.modules["analysis.query"], "HELD_MAX", held_max)
    calls = []
    real = data.moments
    monkeypatch.setattr(data, "moments", lambda *a, **k: calls.append(k) or real(*a, **k))
    test_level_table_matches_numpy(noisy_db)
    batches = sum("median(x0)" in k.get("aggregates", ()) for k in calls)
    assert batches == (len(LEVELS) if held_max == 1 else 1)


def test_offset_level_medians_in_batches(make_db, rng, monkeypatch) -> None:
    monkeypatch.setattr(sys.modules["analysis.query"], "HELD_MAX", 1)
    test_offset_level_table_matches_numpy(make_db, rng)
