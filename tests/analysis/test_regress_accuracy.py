"""`analysis.regress` on NIST's Statistical Reference Datasets (certified values, computed by NIST
in 500-digit arithmetic), exact fits, huge magnitudes, tables and the 120-column text.

Data and certified values are typed in from the NIST StRD linear-regression pages
(https://www.itl.nist.gov/div898/strd/lls/lls.shtml); Longley's data come from
statsmodels' copy of the same dataset. Accuracy is the log relative error (LRE), the number of
correct significant digits: -log10(|estimate - certified| / |certified|).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats.diagnostic import het_breuschpagan
from statsmodels.stats.stattools import durbin_watson, jarque_bera

from analysis.errors import AnalysisError
from analysis.regress import RegressionResult, regress


def lre(estimate: float, certified: float) -> float:
    """Correct significant digits of ``estimate`` (15 when equal in float64)."""
    if estimate == certified:
        return 15.0
    if certified == 0:
        return -math.log10(abs(estimate))
    return min(15.0, -math.log10(abs(estimate - certified) / abs(certified)))


def _nist_db(make_db, y: list[float], columns: dict[str, list[float]]) -> Path:
    return make_db(
        [
            {
                "engine": "local",
                "train_s": float(yv),
                "metrics": {c: float(v[i]) for c, v in columns.items()},
            }
            for i, yv in enumerate(y)
        ]
    )


def _powers(x: list[float], degree: int) -> dict[str, list[float]]:
    return {f"x{k}": [float(v) ** k for v in x] for k in range(1, degree + 1)}


# -- Wampler 1-5: degree-5 polynomials in x = 0..20 ---------------------------------------------
WAMPLER_X = list(range(21))
WAMPLER_Y = {
    1: [1, 6, 63, 364, 1365, 3906, 9331, 19608, 37449, 66430, 111111, 177156, 271453, 402234,
        579195, 813616, 1118481, 1508598, 2000719, 2613660, 3368421],
    2: [1.00000, 1.11111, 1.24992, 1.42753, 1.65984, 1.96875, 2.38336, 2.94117, 3.68928, 4.68559,
        6.00000, 7.71561, 9.92992, 12.75603, 16.32384, 20.78125, 26.29536, 33.05367, 41.26528,
        51.16209, 63.00000],
    3: [760, -2042, 2111, -1684, 3888, 1858, 11379, 17560, 39287, 64382, 113159, 175108, 273291,
        400186, 581243, 811568, 1121004, 1506550, 2002767, 2611612, 3369180],
    4: [75901, -204794, 204863, -204436, 253665, -200894, 214131, -185192, 221249, -138370,
        315911, -27644, 455253, 197434, 783995, 608816, 1370781, 1303798, 2205519, 2408860,
        3444321],
    5: [7590001, -20479994, 20480063, -20479636, 25231365, -20476094, 20489331, -20460392,
        18417449, -20413570, 20591111, -20302844, 18651453, -20077766, 21059195, -19666384,
        26348481, -18971402, 22480719, -17866340, 10958421],
}  # fmt: skip
# certified: (coefficients B0..B5, their standard deviations, residual SD, R^2)
WAMPLER_SD = [2152.32624678170, 2363.55173469681, 779.343524331583, 101.475507550350,
              5.64566512170752, 0.112324854679312]  # fmt: skip
WAMPLER_CERT = {
    3: ([1.0] * 6, WAMPLER_SD, 2360.14502379268, 0.999995559025820),
    4: ([1.0] * 6, [s * 100 for s in WAMPLER_SD], 236014.502379268, 0.957478440825662),
    5: ([1.0] * 6, [s * 10000 for s in WAMPLER_SD], 23601450.2379268, 0.224668921574940e-02),
}


def test_wampler_data_typed_in_correctly() -> None:
    """Wampler 1 and 2 are exact polynomials: the typed-in y must be them, in exact arithmetic."""
    from fractions import Fraction

    for x, y1, y2 in zip(WAMPLER_X, WAMPLER_Y[1], WAMPLER_Y[2], strict=True):
        assert y1 == sum(x**k for k in range(6))
        assert Fraction(str(y2)) == sum(Fraction(x, 10) ** k for k in range(6))


def _lstsq_digits(y: list[float], columns: dict[str, list[float]], certified: list[float]) -> float:
    """Fewest correct digits of LAPACK's least squares (numpy.linalg.lstsq, SVD) on the raw,
    column-scaled design: what float64 allows for this problem, the reference for ours."""
    design = np.column_stack([np.ones(len(y)), *(np.asarray(v) for v in columns.values())])
    scale = np.abs(design).max(axis=0)
    beta = np.linalg.lstsq(design / scale, np.asarray(y, dtype=float), rcond=None)[0] / scale
    return min(lre(float(b), c) for b, c in zip(beta, certified, strict=True))


@pytest.mark.parametrize("case", [1, 2])
def test_wampler_1_2_are_exact_fits_with_certified_coefficients(make_db, case: int) -> None:
    """Certified: every B as below, standard deviations 0, residual SD 0, R^2 = 1. Ours: an
    exact fit, 9+ digits on every coefficient (LAPACK's lstsq on the raw design: 10)."""
    certified = [1.0] * 6 if case == 1 else [1.0, 0.1, 0.01, 0.001, 1e-4, 1e-5]
    db = _nist_db(make_db, WAMPLER_Y[case], _powers(WAMPLER_X, 5))
    result = regress(db, y="train_s", x=[f"x{k}" for k in range(1, 6)])
    (fit,) = result.fits
    digits = [lre(c.estimate, b) for c, b in zip(fit.coefficients, certified, strict=True)]
    assert min(digits) >= 8.5, digits
    assert min(digits) >= _lstsq_digits(WAMPLER_Y[case], _powers(WAMPLER_X, 5), certified) - 1.5
    assert fit.exact and fit.r_squared == 1.0 and fit.rmse == 0.0
    assert all(math.isnan(c.std_err) and math.isnan(c.p_value) for c in fit.coefficients)
    assert "exact fit" in fit.notes[0] and "residuals zero" in fit.notes[0]


@pytest.mark.parametrize(("case", "b_digits"), [(3, 8.5), (4, 7.0), (5, 5.0)])
def test_wampler_3_4_5(make_db, case: int, b_digits: float) -> None:
    """Standard deviations, residual SD and R^2 to 13+ digits. The coefficients (certified 1,
    with standard deviations up to 2e7) lose digits as the residuals grow: about 9, 7.5 and 5.5
    correct digits for Wampler 3, 4 and 5 -- what float64 least squares allows (LAPACK's SVD
    solver on the raw design gets 9.2, 7.8 and 5.8); more would need extended precision."""
    coef, sd, resid_sd, r2 = WAMPLER_CERT[case]
    db = _nist_db(make_db, WAMPLER_Y[case], _powers(WAMPLER_X, 5))
    (fit,) = regress(db, y="train_s", x=[f"x{k}" for k in range(1, 6)]).fits
    digits = {
        "B": min(lre(c.estimate, b) for c, b in zip(fit.coefficients, coef, strict=True)),
        "SD": min(lre(c.std_err, s) for c, s in zip(fit.coefficients, sd, strict=True)),
        "residual SD": lre(fit.rmse, resid_sd),
        "R^2": lre(fit.r_squared, r2),
    }
    assert min(digits["SD"], digits["residual SD"], digits["R^2"]) >= 12, digits
    assert digits["B"] >= b_digits, digits
    reference = _lstsq_digits(WAMPLER_Y[case], _powers(WAMPLER_X, 5), coef)
    assert digits["B"] >= reference - 1, (digits, reference)
    assert not fit.exact and fit.df_resid == 15


# -- Longley: 16 years, 6 highly collinear economic series --------------------------------------
LONGLEY_B = [-3482258.63459582, 15.0618722713733, -0.358191792925910e-01, -2.02022980381683,
             -1.03322686717359, -0.511041056535807e-01, 1829.15146461355]  # fmt: skip
LONGLEY_SD = [890420.383607373, 84.9149257747669, 0.334910077722432e-01, 0.488399681651699,
              0.214274163161675, 0.226073200069370, 455.478499142212]  # fmt: skip


def test_longley_ten_digits(make_db) -> None:
    from statsmodels.datasets import longley

    frame = longley.load_pandas().data
    names = ["GNPDEFL", "GNP", "UNEMP", "ARMED", "POP", "YEAR"]
    db = _nist_db(make_db, list(frame["TOTEMP"]), {n.lower(): list(frame[n]) for n in names})
    (fit,) = regress(db, y="train_s", x=[n.lower() for n in names]).fits
    digits = {
        "B": min(lre(c.estimate, b) for c, b in zip(fit.coefficients, LONGLEY_B, strict=True)),
        "SD": min(lre(c.std_err, s) for c, s in zip(fit.coefficients, LONGLEY_SD, strict=True)),
        "residual SD": lre(fit.rmse, 304.854073561965),
        "R^2": lre(fit.r_squared, 0.995479004577296),
        "F": lre(fit.f_statistic, 330.285339234588),
    }
    assert min(digits.values()) >= 10, digits


# -- Filip: a degree-10 polynomial, NIST's hardest linear problem --------------------------------
FILIP = """
0.8116 -6.860120914  0.9072 -4.324130045  0.9052 -4.358625055  0.9039 -4.358426747
0.8053 -6.955852379  0.8377 -6.661145254  0.8667 -6.355462942  0.8809 -6.118102026
0.7975 -7.115148017  0.8162 -6.815308569  0.8515 -6.519993057  0.8766 -6.204119983
0.8885 -5.853871964  0.8859 -6.109523091  0.8959 -5.79832982   0.8913 -5.482672118
0.8959 -5.171791386  0.8971 -4.851705903  0.9021 -4.517126416  0.909  -4.143573228
0.9139 -3.709075441  0.9199 -3.499489089  0.8692 -6.300769497  0.8872 -5.953504836
0.89   -5.642065153  0.891  -5.031376979  0.8977 -4.680685696  0.9035 -4.329846955
0.9078 -3.928486195  0.7675 -8.56735134   0.7705 -8.363211311  0.7713 -8.107682739
0.7736 -7.823908741  0.7775 -7.522878745  0.7841 -7.218819279  0.7971 -6.920818754
0.8329 -6.628932138  0.8641 -6.323946875  0.8804 -5.991399828  0.7668 -8.781464495
0.7633 -8.663140179  0.7678 -8.473531488  0.7697 -8.247337057  0.77   -7.971428747
0.7749 -7.676129393  0.7796 -7.352812702  0.7897 -7.072065318  0.8131 -6.774174009
0.8498 -6.478861916  0.8741 -6.159517513  0.8061 -6.835647144  0.846  -6.53165267
0.8751 -6.224098421  0.8856 -5.910094889  0.8919 -5.598599459  0.8934 -5.290645224
0.894  -4.974284616  0.8957 -4.64454848   0.9047 -4.290560426  0.9129 -3.885055584
0.9209 -3.408378962  0.9219 -3.13200249   0.7739 -8.726767166  0.7681 -8.66695597
0.7665 -8.511026475  0.7703 -8.165388579  0.7702 -7.886056648  0.7761 -7.588043762
0.7809 -7.283412422  0.7961 -6.995678626  0.8253 -6.691862621  0.8602 -6.392544977
0.8809 -6.067374056  0.8301 -6.684029655  0.8664 -6.378719832  0.8834 -6.065855188
0.8898 -5.752272167  0.8964 -5.132414673  0.8963 -4.811352704  0.9074 -4.098269308
0.9119 -3.66174277   0.9228 -3.2644011
"""
FILIP_B = [-1467.48961422980, -2772.17959193342, -2316.37108160893, -1127.97394098372,
           -354.478233703349, -75.1242017393757, -10.8753180355343, -1.06221498588947,
           -0.670191154593408e-01, -0.246781078275479e-02, -0.402962525080404e-04]  # fmt: skip
FILIP_SD = [298.084530995537, 559.779865474950, 466.477572127796, 227.204274477751,
            71.6478660875927, 15.2897178747400, 2.23691159816033, 0.221624321934227,
            0.142363763154724e-01, 0.535617408889821e-03, 0.896632837373868e-05]  # fmt: skip


def test_filip_degree_10_polynomial(make_db) -> None:
    """Filip is fitted (not refused as collinear): about 7.1 correct digits on the coefficients,
    7.3 on their standard deviations, 8.4 on the residual SD, 10.5 on R^2 (LAPACK's lstsq on
    the raw, scaled design: 8 on the coefficients; the normal equations in float64 get none)."""
    pairs = np.array(FILIP.split(), dtype=float).reshape(-1, 2)
    y, x = list(pairs[:, 0]), list(pairs[:, 1])
    assert len(y) == 82
    db = _nist_db(make_db, y, _powers(x, 10))
    (fit,) = regress(db, y="train_s", x=[f"x{k}" for k in range(1, 11)]).fits
    digits = {
        "B": min(lre(c.estimate, b) for c, b in zip(fit.coefficients, FILIP_B, strict=True)),
        "SD": min(lre(c.std_err, s) for c, s in zip(fit.coefficients, FILIP_SD, strict=True)),
        "residual SD": lre(fit.rmse, 0.334801051324544e-02),
        "R^2": lre(fit.r_squared, 0.996727416185620),
        "F": lre(fit.f_statistic, 2162.43954511489),
    }
    assert digits["B"] >= 6.8 and digits["SD"] >= 6.8, digits
    assert digits["residual SD"] >= 8 and digits["R^2"] >= 10 and digits["F"] >= 7, digits


# -- magnitudes up to 1e300 ------------------------------------------------------------------------
def test_exact_line_at_1e300(make_db) -> None:
    """y = 3e299 + 2e299 x exactly (x = 0..5, so y reaches 1.3e300): squaring any value would
    overflow to inf. Coefficients to 14 digits, R^2 = 1, an exact fit."""
    xs = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    db = make_db([{"engine": "local", "workers": int(x), "train_s": 3e299 + 2e299 * x}
                  for x in xs])  # fmt: skip
    (fit,) = regress(db, y="train_s", x="workers").fits
    assert fit.coefficients[0].estimate == pytest.approx(3e299, rel=1e-14)
    assert fit.coefficients[1].estimate == pytest.approx(2e299, rel=1e-14)
    assert fit.r_squared == 1.0 and fit.exact
    assert fit.correlations[0].pearson_r == pytest.approx(1.0, rel=1e-14)


def test_noisy_fit_at_1e300_matches_statsmodels_scaled(make_db, rng) -> None:
    """y near 1e300 and x near 1e299 with noise: statsmodels on the same values times 2^-k (an
    exact scaling) is the reference; estimates scale back exactly, t, p, R^2, F and the residual
    checks do not change, the log-likelihood shifts by n k ln 2."""
    ky, kx, n = 996, 993, 40
    x0 = rng.integers(1, 9, n).astype(float) + rng.normal(0, 0.1, n)
    y0 = 1.5 - 0.2 * x0 + rng.normal(0, 0.3, n)
    x, y = np.ldexp(x0, kx), np.ldexp(y0, ky)
    with np.errstate(over="ignore"):
        assert np.abs(y).max() > 1e299 and np.isinf(np.abs(y).max() ** 2)
    db = make_db([{"engine": "local", "train_s": float(b), "metrics": {"size": float(a)}}
                  for a, b in zip(x, y, strict=True)])  # fmt: skip
    (fit,) = regress(db, y="train_s", x="size").fits
    ref = sm.OLS(y0, sm.add_constant(x0)).fit()
    unscale = [ky, ky - kx]
    for co, b, se, t, p, e in zip(fit.coefficients, ref.params, ref.bse, ref.tvalues,
                                  ref.pvalues, unscale, strict=True):  # fmt: skip
        assert co.estimate == pytest.approx(math.ldexp(b, e), rel=1e-11)
        assert co.std_err == pytest.approx(math.ldexp(se, e), rel=1e-11)
        assert co.statistic == pytest.approx(t, rel=1e-11)
        assert co.p_value == pytest.approx(p, rel=1e-8)
    ci = ref.conf_int(0.05)
    assert fit.coefficients[1].ci_low == pytest.approx(math.ldexp(ci[1, 0], ky - kx), rel=1e-11)
    assert fit.r_squared == pytest.approx(ref.rsquared, rel=1e-12)
    assert fit.f_statistic == pytest.approx(ref.fvalue, rel=1e-11)
    assert fit.rmse == pytest.approx(math.ldexp(math.sqrt(ref.mse_resid), ky), rel=1e-12)
    assert fit.log_likelihood == pytest.approx(ref.llf - n * ky * math.log(2), rel=1e-12)
    assert fit.aic == pytest.approx(ref.aic + 2 * n * ky * math.log(2), rel=1e-12)
    assert fit.durbin_watson == pytest.approx(durbin_watson(ref.resid), rel=1e-9)
    jb, jb_p, skew, kurt = jarque_bera(ref.resid)
    assert (fit.jarque_bera, fit.skew, fit.kurtosis) == pytest.approx((jb, skew, kurt), rel=1e-7)
    lm = het_breuschpagan(ref.resid, ref.model.exog)[0]
    assert fit.breusch_pagan == pytest.approx(lm, rel=1e-7)
    assert all(math.isfinite(v) for v in fit.fit_dict().values())


# -- exact fits and rank deficiency ----------------------------------------------------------------
def _line(points: list[tuple[float, float]]) -> list[dict[str, Any]]:
    return [{"engine": "local", "workers": w, "train_s": t} for w, t in points]


def test_as_many_trials_as_coefficients_is_an_exact_fit(make_db) -> None:
    """Two trials, one x: the line through them (slope 1.5, intercept -0.5 by hand), R^2 = 1,
    and no standard errors, tests or intervals (NaN, shown as -) with a note saying why."""
    result = regress(make_db(_line([(1, 1.0), (2, 2.5)])), y="train_s", x="workers")
    (fit,) = result.fits
    assert [c.estimate for c in fit.coefficients] == pytest.approx([-0.5, 1.5], rel=1e-15)
    assert fit.r_squared == 1.0 and fit.df_resid == 0 and fit.exact
    nan_fields = [fit.adj_r_squared, fit.f_statistic, fit.f_p_value, fit.rmse, fit.aic]
    for c in fit.coefficients:
        nan_fields += [c.std_err, c.statistic, c.p_value, c.ci_low, c.ci_high]
        assert all(math.isnan(v) for v in c.confidence_interval(0.99))
    assert all(math.isnan(v) for v in nan_fields)
    assert "no residual degrees of freedom" in fit.notes[0]
    assert "standard errors" in fit.notes[0] and "\n" not in fit.notes[0]
    text = str(result)
    assert "note: exact fit" in text and "nan" not in text.lower()
    slope_line = next(line for line in text.splitlines() if line.startswith("workers "))
    assert slope_line.split()[1:] == ["1.5", "-", "-", "-", "-"]


def test_zero_residuals_with_residual_df_is_an_exact_fit(make_db) -> None:
    result = regress(make_db(_line([(1, 1.0), (2, 2.0), (4, 4.0), (8, 8.0)])), y="train_s",
                     x="workers")  # fmt: skip
    (fit,) = result.fits
    assert fit.coefficients[1].estimate == pytest.approx(1.0, rel=1e-15)
    assert abs(fit.coefficients[0].estimate) < 1e-14
    assert fit.exact and fit.r_squared == 1.0 and fit.rmse == 0.0 and fit.df_resid == 2
    assert math.isnan(fit.coefficients[1].std_err) and "residuals zero" in fit.notes[0]
    assert (
        fit.correlations[0].pearson_r == pytest.approx(1.0) and fit.correlations[0].pearson_p == 0
    )
    assert "exact fit" in result.to_latex() and result.fit_frame(notes=True)["exact"][0]


def test_rank_deficient_design_is_refused_naming_the_collinear_columns(make_db, rng) -> None:
    """x3 = x1 + x2 (exact integers); x4 unrelated: the refusal names x1, x2, x3, not x4."""
    x1, x2, x4 = (rng.integers(0, 50, 12) for _ in range(3))
    trials = [
        {"engine": "local", "train_s": float(a + 2 * b + rng.normal()),
         "metrics": {"x1": float(a), "x2": float(b), "x3": float(a + b), "x4": float(d)}}
        for a, b, d in zip(x1, x2, x4, strict=True)
    ]  # fmt: skip
    with pytest.raises(AnalysisError) as info:
        regress(make_db(trials), y="train_s", x=["x1", "x2", "x3", "x4"])
    message = str(info.value)
    assert message.startswith("--x x1, x2, x3 are collinear") and "\n" not in message


def test_confidence_is_checked_by_the_options_module(make_db) -> None:
    db = make_db(_line([(1, 1.0), (2, 2.5), (4, 3.0)]))
    with pytest.raises(AnalysisError, match=r"^--confidence 1.5 is not between 0 and 1"):
        regress(db, y="train_s", x="workers", confidence_level=1.5)
    fit = regress(db, y="train_s", x="workers", confidence_level=0.9).fits[0]
    ref = sm.OLS([1.0, 2.5, 3.0], sm.add_constant([1.0, 2.0, 4.0])).fit().conf_int(0.1)
    assert (fit.coefficients[1].ci_low, fit.coefficients[1].ci_high) == pytest.approx(ref[1])


# -- tables and text ---------------------------------------------------------------------------
def _result(make_db, rng) -> RegressionResult:
    trials = []
    for engine in ("dask", "a-very-long-engine-name-" + "x" * 60):
        for _ in range(12):
            w = int(rng.choice([1, 2, 4, 8]))
            trials.append(
                {
                    "engine": engine,
                    "workload": "knn-" + "y" * 50,
                    "workers": w,
                    "train_s": float(10 - 0.5 * w + rng.normal()),
                    "metrics": {"batch_size_of_the_loader": float(rng.normal(64, 8))},
                }
            )
    return regress(make_db(trials), y="train_s", x=["workers", "batch_size_of_the_loader"],
                   by=["engine", "workload"], where=["workers>0", "train_s<1000"])  # fmt: skip


def test_tables_carry_every_statistic_of_the_text(make_db, rng) -> None:
    result = _result(make_db, rng)
    text = str(result)
    tables = {t.name: t.frame for t in result.tables()}
    assert list(tables) == ["coefficients", "fit"]
    shown = {  # what the text shows -> the column that carries it
        "estimate": "estimate", "std_err": "std_err", " t ": "statistic", " p ": "p_value",
        "95% CI": "ci_low", "R^2 =": "r_squared", "adj R^2": "adj_r_squared",
        "multiple R": "r", "F(": "f_statistic", "rmse": "rmse", "AIC": "aic",
        "Durbin-Watson": "durbin_watson", "Jarque-Bera": "jarque_bera_p",
        "Breusch-Pagan": "breusch_pagan_p", "pearson_r": "pearson_r",
        "spearman_rho": "spearman_rho", "(n=": "n",
    }  # fmt: skip
    columns = {c for frame in tables.values() for c in frame.columns}
    for label, column in shown.items():
        assert label in text, label
        assert column in columns, column
    for extra in (
        "ci_high",
        "df_model",
        "df_resid",
        "f_p_value",
        "jarque_bera",
        "breusch_pagan",
        "pearson_p",
        "spearman_p",
        "confidence_level",
        "note",
        "engine",
        "workload",
    ):
        assert extra in columns, extra
    coefs, fits = tables["coefficients"], tables["fit"]
    assert len(coefs) == 6 and len(fits) == 2
    first = result.fits[0]
    assert list(coefs["estimate"][:3]) == [c.estimate for c in first.coefficients]
    assert list(coefs["pearson_r"][1:3]) == [c.pearson_r for c in first.correlations]
    assert fits["r_squared"][0] == first.r_squared and fits["aic"][1] == result.fits[1].aic


def test_text_lines_fit_120_columns(make_db, rng) -> None:
    result = _result(make_db, rng)
    long_note = "pooled on purpose: " + ", ".join(f"hostname=h{i}" for i in range(40))
    from dataclasses import replace

    text = str(replace(result, notes=(long_note,)))
    widths = [len(line) for line in text.splitlines()]
    assert max(widths) <= 120, max(widths)
    assert "hostname=h39" in text
