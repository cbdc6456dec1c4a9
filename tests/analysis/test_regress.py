"""`analysis.regress` pinned against statsmodels OLS and scipy on the raw rows, on ill-conditioned
data, and on 004's published single-node table imported through `runner import published`."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.diagnostic import het_breuschpagan
from statsmodels.stats.stattools import durbin_watson, jarque_bera

from analysis.errors import AnalysisError
from analysis.regress import COEFFICIENT_COLUMNS, FIT_COLUMNS, RegressionFit, regress
from tests.conftest import run_cli

RTOL = 1e-9


def _trials(rng: np.random.Generator, engine: str, n: int, offset: float = 0.0) -> list[dict]:
    """Trials whose train_s depends on workers (tied integer levels) and a batch metric, with
    residual spread growing with workers."""
    workers = rng.choice([1, 2, 4, 8], n)
    batch = rng.normal(64, 12, n)
    noise = rng.normal(0, 0.2, n) * (1 + workers / 4)
    slope = -0.3 if engine == "dask" else -0.1
    train = offset + 5 + slope * workers + 0.01 * batch + noise
    return [
        {
            "engine": engine,
            "workload": "knn",
            "workers": int(w),
            "warmup": False,
            "train_s": float(t),
            "metrics": {"batch": float(b)},
        }
        for w, b, t in zip(workers, batch, train, strict=True)
    ]


def _noise() -> list[dict]:
    """Trials that must never reach a fit: warm-ups, failures, timeouts."""
    return [
        {"engine": "dask", "workers": 2, "warmup": True, "train_s": 1e6, "metrics": {"batch": 1}},
        {"engine": "ray", "workers": 8, "status": "failed", "train_s": -1e6},
        {"engine": "ray", "workers": 8, "status": "timeout", "metrics": {"batch": 9e9}},
    ]


def _raw(db: Path, sql: str) -> list[tuple]:
    """Raw rows for the reference fits, in trial order (read with DuckDB directly)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _check_against_statsmodels(
    fit: RegressionFit, y: np.ndarray, xs: list[np.ndarray], *, rtol: float = RTOL
) -> None:
    exog = sm.add_constant(np.column_stack(xs))
    ref = sm.OLS(y, exog).fit()
    close = {"rtol": rtol, "atol": 0}
    assert fit.n == len(y)
    np.testing.assert_allclose([c.estimate for c in fit.coefficients], ref.params, **close)
    np.testing.assert_allclose([c.std_err for c in fit.coefficients], ref.bse, **close)
    np.testing.assert_allclose([c.statistic for c in fit.coefficients], ref.tvalues, **close)
    np.testing.assert_allclose([c.p_value for c in fit.coefficients], ref.pvalues, rtol=1e-7)
    ci = ref.conf_int(alpha=0.05)
    np.testing.assert_allclose([c.ci_low for c in fit.coefficients], ci[:, 0], **close)
    np.testing.assert_allclose([c.ci_high for c in fit.coefficients], ci[:, 1], **close)
    ci99 = ref.conf_int(alpha=0.01)
    np.testing.assert_allclose(
        [c.confidence_interval(0.99) for c in fit.coefficients], ci99, **close
    )
    assert fit.r_squared == pytest.approx(ref.rsquared, rel=rtol)
    assert fit.adj_r_squared == pytest.approx(ref.rsquared_adj, rel=rtol)
    assert fit.r == pytest.approx(np.sqrt(ref.rsquared), rel=rtol)
    assert fit.f_statistic == pytest.approx(ref.fvalue, rel=rtol)
    assert fit.f_p_value == pytest.approx(ref.f_pvalue, rel=1e-7)
    assert (fit.df_model, fit.df_resid) == (ref.df_model, ref.df_resid)
    assert fit.rmse == pytest.approx(np.sqrt(ref.mse_resid), rel=rtol)
    assert fit.log_likelihood == pytest.approx(ref.llf, rel=rtol)
    assert fit.aic == pytest.approx(ref.aic, rel=rtol)
    assert fit.bic == pytest.approx(ref.bic, rel=rtol)
    assert fit.durbin_watson == pytest.approx(durbin_watson(ref.resid), rel=1e-8)
    jb, jb_p, skew, kurtosis = jarque_bera(ref.resid)
    assert fit.jarque_bera == pytest.approx(jb, rel=1e-7)
    assert fit.jarque_bera_p == pytest.approx(jb_p, rel=1e-7)
    assert fit.skew == pytest.approx(skew, rel=1e-7)
    assert fit.kurtosis == pytest.approx(kurtosis, rel=1e-8)
    lm, lm_p, _, _ = het_breuschpagan(ref.resid, exog)
    assert fit.breusch_pagan == pytest.approx(lm, rel=1e-7)
    assert fit.breusch_pagan_p == pytest.approx(lm_p, rel=1e-7)
    for corr, x in zip(fit.correlations, xs, strict=True):
        pearson = stats.pearsonr(x, y)
        spearman = stats.spearmanr(x, y)
        assert corr.n == len(y)
        assert corr.pearson_r == pytest.approx(pearson.statistic, rel=rtol)
        assert corr.pearson_p == pytest.approx(pearson.pvalue, rel=1e-7)
        assert corr.spearman_rho == pytest.approx(spearman.statistic, rel=rtol)
        assert corr.spearman_p == pytest.approx(spearman.pvalue, rel=1e-7)


@pytest.fixture
def reg_db(make_db, rng) -> Path:
    return make_db([*_trials(rng, "dask", 30), *_trials(rng, "ray", 17), *_noise()])


def test_by_engine_matches_statsmodels_and_scipy(reg_db: Path) -> None:
    result = regress(reg_db, y="train_s", x=["workers", "batch"], by="engine")
    assert [fit.level for fit in result.fits] == [("dask",), ("ray",)]
    rows = _raw(
        reg_db,
        "SELECT engine, train_s, workers, batch FROM observations WHERE status = 'ok' AND NOT "
        "warmup AND train_s IS NOT NULL AND batch IS NOT NULL ORDER BY trial_id",
    )
    for fit in result.fits:
        sub = np.array([r[1:] for r in rows if r[0] == fit.level[0]], dtype=float)
        _check_against_statsmodels(fit, sub[:, 0], [sub[:, 1], sub[:, 2]])
    assert [c.term for c in result.fits[0].coefficients] == ["intercept", "workers", "batch"]


def test_single_x_signed_r_and_frames(reg_db: Path) -> None:
    result = regress(reg_db, y="train_s", x="workers", where=["engine=dask"])
    (fit,) = result.fits
    rows = _raw(
        reg_db,
        "SELECT train_s, workers FROM observations WHERE engine = 'dask' AND status = 'ok' "
        "AND NOT warmup ORDER BY trial_id",
    )
    y, x = np.array(rows, dtype=float).T
    _check_against_statsmodels(fit, y, [x])
    lin = stats.linregress(x, y)
    assert fit.coefficients[1].estimate == pytest.approx(lin.slope, rel=RTOL)
    assert fit.correlations[0].pearson_r == pytest.approx(lin.rvalue, rel=RTOL) and lin.rvalue < 0

    frame = result.to_frame()
    assert list(frame.columns) == [
        *COEFFICIENT_COLUMNS,
        "pearson_r",
        "pearson_p",
        "spearman_rho",
        "spearman_p",
        *FIT_COLUMNS,
    ]
    assert list(frame["term"]) == ["intercept", "workers"]
    assert np.isnan(frame["pearson_r"][0]) and frame["pearson_r"][1] == pytest.approx(lin.rvalue)
    assert list(result.fit_frame().columns) == list(FIT_COLUMNS)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["fits"][0]["coefficients"][1]["term"] == "workers"
    assert data["where"] == ["engine=dask"]
    assert "OLS of train_s on workers" in str(result) and "Durbin-Watson" in str(result)
    assert r"\begin{tabular}" in result.to_latex()


def test_log_log_matches_statsmodels(reg_db: Path) -> None:
    result = regress(reg_db, y="train_s", x=["workers", "batch"], log_x=True, log_y=True)
    rows = _raw(
        reg_db,
        "SELECT train_s, workers, batch FROM observations WHERE status = 'ok' AND NOT warmup "
        "ORDER BY trial_id",
    )
    y, w, b = np.array(rows, dtype=float).T
    _check_against_statsmodels(result.fits[0], np.log(y), [np.log(w), np.log(b)])
    assert "ln(train_s) on ln(workers) + ln(batch)" in str(result)


def test_rows_missing_a_value_are_left_out(make_db, rng) -> None:
    trials = _trials(rng, "dask", 25)
    for t in trials[::5]:
        t["metrics"] = {}  # no batch for these trials
    db = make_db(trials)
    fit = regress(db, y="train_s", x=["workers", "batch"]).fits[0]
    kept = [t for t in trials if "batch" in t["metrics"]]
    y = np.array([t["train_s"] for t in kept])
    xs = [
        np.array([t["workers"] for t in kept], float),
        np.array([t["metrics"]["batch"] for t in kept]),
    ]
    _check_against_statsmodels(fit, y, xs)


def test_ill_conditioned_offsets(make_db, rng) -> None:
    """y = 1e12 + tiny noise, x = 1e9 + small steps: exact-rational reference for the slope and
    intercept; statsmodels on the offset-free rows for everything else."""
    y_off, x_off = 1e12, 1e9
    x_dev = rng.integers(0, 6, 40).astype(float) * 0.25
    y_dev = 0.002 * x_dev + rng.normal(0, 0.001, 40)
    x_raw, y_raw = x_off + x_dev, y_off + y_dev
    # the float64 values actually stored, and their exact deviations from the offsets
    x_dev, y_dev = x_raw - x_off, y_raw - y_off
    db = make_db(
        [
            {"engine": "dask", "train_s": float(yv), "metrics": {"size": float(xv)}}
            for xv, yv in zip(x_raw, y_raw, strict=True)
        ]
    )
    fit = regress(db, y="train_s", x="size").fits[0]
    slope = fit.coefficients[1].estimate
    fx, fy = [Fraction(float(v)) for v in x_raw], [Fraction(float(v)) for v in y_raw]
    mx, my = sum(fx) / len(fx), sum(fy) / len(fy)
    sxy = sum((a - mx) * (b - my) for a, b in zip(fx, fy, strict=True))
    sxx = sum((a - mx) ** 2 for a in fx)
    exact_slope = sxy / sxx
    assert slope == pytest.approx(float(exact_slope), rel=1e-9)
    assert fit.coefficients[0].estimate == pytest.approx(float(my - exact_slope * mx), rel=1e-15)
    # everything else is invariant to the offsets (except the intercept row)
    ref = sm.OLS(y_dev, sm.add_constant(x_dev)).fit()
    assert fit.coefficients[1].std_err == pytest.approx(ref.bse[1], rel=1e-8)
    assert fit.coefficients[1].p_value == pytest.approx(ref.pvalues[1], rel=1e-6)
    assert fit.r_squared == pytest.approx(ref.rsquared, rel=1e-9)
    assert fit.f_statistic == pytest.approx(ref.fvalue, rel=1e-8)
    assert fit.aic == pytest.approx(ref.aic, rel=1e-9)
    assert fit.durbin_watson == pytest.approx(durbin_watson(ref.resid), rel=1e-8)
    assert fit.jarque_bera == pytest.approx(jarque_bera(ref.resid)[0], rel=1e-6)
    assert fit.correlations[0].pearson_r == pytest.approx(stats.pearsonr(x_dev, y_dev)[0])
    assert fit.correlations[0].spearman_rho == pytest.approx(stats.spearmanr(x_dev, y_dev)[0])


# -- degenerate input: clear errors, never NaN tables -------------------------------------------
def _simple(values: list[tuple[Any, Any]], engine: str = "dask") -> list[dict]:
    return [
        {
            "engine": engine,
            "workers": w,
            "train_s": t,
            "metrics": {"m": float(w) * 2, "m2": float(w) ** 2},
        }
        for w, t in values
    ]


@pytest.mark.parametrize(
    ("trials", "kwargs", "needle"),
    [
        (_simple([(1, 1.0)]), {}, "need at least 2"),
        (_simple([(1, 1.0), (2, 2.5)]), {"x": ["workers", "m2"]}, "need at least 3"),
        (
            _simple([(1, 1.0), (2, 2.5), (4, 3.0)]) + _simple([(1, 1.0)], "ray"),
            {"by": "engine"},
            "level engine=ray has 1 trial",
        ),
        (_simple([(1, 2.0), (2, 2.0), (4, 2.0)]), {}, "--y train_s has zero variance"),
        (_simple([(2, 1.0), (2, 2.0), (2, 3.0)]), {}, "--x workers has zero variance"),
        (
            _simple([(1, 1.0), (2, 2.5), (4, 3.0), (8, 3.5)]),
            {"x": ["workers", "m"]},
            "--x workers, m are collinear",
        ),
        (_simple([(1, 1.0), (2, float("nan")), (4, 3.0), (8, 1.0)]), {}, "NaN or infinite"),
        (_simple([(1, 1.0), (2, float("inf")), (4, 3.0), (8, 1.0)]), {}, "NaN or infinite"),
        (_simple([(0, 1.0), (2, 2.0), (4, 3.5), (8, 1.0)]), {"log_x": True}, "zero or negative"),
        (_simple([(1, -1.0), (2, 2.0), (4, 3.5), (8, 1.0)]), {"log_y": True}, "zero or negative"),
        (_simple([(1, 1.0), (2, 2.5), (4, 3.0)]), {"x": "wrkers"}, "did you mean workers"),
        (_simple([(1, 1.0), (2, 2.5), (4, 3.0)]), {"x": "engine"}, "not numeric"),
        (_simple([(1, 1.0), (2, 2.5), (4, 3.0)]), {"x": "train_s"}, "cannot explain itself"),
        (_simple([(1, 1.0), (2, 2.5), (4, 3.0)]), {"x": ["workers", "workers"]}, "twice"),
        (_simple([(1, 1.0), (2, 2.5), (4, 3.0)]), {"where": ["workers>9"]}, "no trials match"),
        (_simple([(1, 1.0), (2, 2.5), (4, 3.0)]), {"by": "nope"}, "--by 'nope' is not"),
    ],
)
def test_degenerate_input_is_a_clear_error(make_db, trials, kwargs, needle) -> None:
    db = make_db(trials)
    args = {"y": "train_s", "x": "workers", **kwargs}
    with pytest.raises(AnalysisError) as info:
        regress(db, **args)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_nan_rows_excluded_by_where_then_fit(make_db) -> None:
    trials = _simple([(1, 1.0), (2, float("nan")), (4, 3.0), (8, 3.9), (16, 5.2)])
    fit = regress(make_db(trials), y="train_s", x="workers", where=["train_s<1e300"]).fits[0]
    lin = stats.linregress([1, 4, 8, 16], [1.0, 3.0, 3.9, 5.2])
    assert fit.n == 4
    assert fit.coefficients[1].estimate == pytest.approx(lin.slope, rel=RTOL)
    assert fit.coefficients[1].std_err == pytest.approx(lin.stderr, rel=RTOL)


# -- 004's single-node table, imported -----------------------------------------------------------
@pytest.fixture(scope="module")
def paper004_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("p004") / "p004.duckdb"
    proc = run_cli("runner", "import", "published", "--paper", "004", "--db", db)
    assert proc.returncode == 0, proc.stderr
    return db


def test_paper004_r_squared_of_train_time_on_vcpu_and_memory(paper004_db: Path) -> None:
    """004, section "Results": "We found an R^2 value of 0.853 for CPUs and train time while for
    memory and train time the R^2 value was 0.431" (Spark, large dataset; Figures 2 and 3)."""
    where = ["table=A", "engine=spark", "dataset=emnist"]
    cpu = regress(paper004_db, y="train_s", x="vcpu", where=where).fits[0]
    mem = regress(paper004_db, y="train_s", x="mem_gib", where=where).fits[0]
    # c3.xlarge ran out of memory (imported as a failed trial): 10 instances remain
    assert cpu.n == mem.n == 10
    assert round(cpu.r_squared, 3) == 0.853
    assert round(mem.r_squared, 3) == 0.431
    assert cpu.coefficients[1].estimate < 0 and mem.coefficients[1].estimate < 0


def test_paper004_regression_against_scipy_on_transcribed_values(paper004_db: Path) -> None:
    """Appendix A's spark_large column against Appendix C's vCPU, typed in here independently."""
    vcpu = [4, 4, 4, 8, 8, 8, 8, 16, 16, 16]
    train = [1317.392, 1183.191, 1281.98, 829.947, 793.532, 603.622, 654.85, 438.573, 308.103,
             347.021]  # fmt: skip
    lin = stats.linregress(vcpu, train)
    fit = regress(
        paper004_db, y="train_s", x="vcpu", where=["table=A", "engine=spark", "dataset=emnist"]
    ).fits[0]
    assert fit.coefficients[1].estimate == pytest.approx(lin.slope, rel=1e-9)
    assert fit.coefficients[0].estimate == pytest.approx(lin.intercept, rel=1e-9)
    assert fit.coefficients[1].p_value == pytest.approx(lin.pvalue, rel=1e-7)


def test_paper004_by_engine_and_dataset(paper004_db: Path) -> None:
    result = regress(
        paper004_db, y="train_s", x=["vcpu", "mem_gib"], by=["engine", "dataset"], where=["table=A"]
    )
    levels = [fit.level for fit in result.fits]
    assert levels == [
        ("spark", "emnist"),
        ("spark", "mnist"),
        ("tensorflow", "emnist"),
        ("tensorflow", "mnist"),
    ]
    rows = _raw(
        paper004_db,
        "SELECT engine, dataset, train_s, vcpu, mem_gib FROM observations WHERE status = 'ok' "
        "AND \"table\" = 'A' ORDER BY trial_id",
    )
    for fit in result.fits:
        sub = np.array([r[2:] for r in rows if tuple(r[:2]) == fit.level], dtype=float)
        _check_against_statsmodels(fit, sub[:, 0], [sub[:, 1], sub[:, 2]], rtol=1e-8)


def test_r_has_pearsons_sign_for_one_x(make_db, trials_for):
    rng = np.random.default_rng(3)
    xs = np.repeat([1, 2, 4, 8], 5)
    ys = 10.0 - 0.4 * xs + rng.normal(0, 1.5, xs.size)
    trials = [{**t, "workers": int(x), "train_s": float(y)}
              for t, x, y in zip(trials_for({1: ys}), xs, ys, strict=True)]  # fmt: skip
    res = regress(make_db(trials), y="train_s", x=["workers"])
    fit = res.fits[0]
    ref = stats.pearsonr(xs, ys).statistic
    assert ref < 0
    assert fit.r == pytest.approx(abs(ref), rel=1e-12)  # the field: sqrt(R^2)
    assert fit.correlations[0].pearson_r == pytest.approx(ref, rel=1e-12)
    assert f"r = {ref:.4g}" in str(res)
