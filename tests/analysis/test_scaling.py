"""`analysis.scaling`: the per-level table against NumPy on the raw rows, the fits against scipy's
nnls on the raw rows, known answers (Amdahl's serial fraction, the USL's sigma/kappa, Ernest's
theta recovered from synthetic times), and published tables (000 Table 3, 004 Appendix B)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import nnls

from analysis.errors import AnalysisError
from analysis.scaling import LEVEL_COLUMNS, scaling
from tests.conftest import run_cli

FIXTURES = Path(__file__).parents[1] / "fixtures"
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
def _import(tmp_path: Path, name: str) -> Path:
    db = tmp_path / "p.duckdb"
    proc = run_cli("runner", "import", "csv", FIXTURES / name, "--db", db)
    assert proc.returncode == 0, proc.stderr
    return db


def test_paper000_table3_speedups(tmp_path: Path) -> None:
    db = _import(tmp_path, "paper000_table3.csv")
    result = scaling(db, n_boot=0)
    groups = {g.level: g for g in result.groups}
    assert set(groups) == {
        ("dask", "knn"),
        ("dask", "resnet18"),
        ("ray", "knn"),
        ("ray", "resnet18"),
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
    db = _import(tmp_path, "paper004_clusters.csv")
    result = scaling(db, x="nodes", by="dataset", n_boot=0)
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
        ([_trial(1, 2.0), _trial(1, 2.1), _trial(2, 1.0)], {}, "workers=2 in engine=dask"),
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
        ([_trial(1, 2.0), _trial(2, 1.0)], {"n_boot": 10}, "too few resamples"),
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
