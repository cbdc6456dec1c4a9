"""The Student-t functions of analysis.intervals against scipy.stats.t over a grid of degrees of
freedom (tiny to huge) and probabilities (tiny to near 1), and the t-test and the power without
importing scipy.stats."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from scipy import stats

from analysis.intervals import t_interval, t_isf, t_ppf, t_quantile, t_sf

DFS = (1e-300, 1e-8, 0.01, 0.5, 1.0, 1.5, 2.0, 3.0, 7.0, 29.5, 30.0, 100.0, 1e3, 12345.678, 1e6,
       9.99e7, 1e9, 1e15, 1e300)  # fmt: skip
PROBS = (1e-300, 1e-100, 1e-20, 1e-9, 1e-4, 0.001, 0.025, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95,
         0.975, 0.995, 0.999, 1 - 1e-9, 1 - 2**-52)  # fmt: skip
XS = (0.0, 1e-300, 1e-12, 0.1, 0.5, 1.0, 1.96, 2.5, 5.0, 10.0, 37.0, 1e3, 1e8, 1e300)


def _close(got: float, want: float) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    if math.isinf(want) or want == 0:
        return got == want
    return abs(got - want) <= 1e-12 * abs(want)


@pytest.mark.parametrize("df", DFS)
def test_sf_matches_scipy_stats(df: float) -> None:
    for x in (*XS, *(-x for x in XS)):
        want = float(stats.t.sf(x, df))
        assert _close(t_sf(x, df), want), (x, df, t_sf(x, df), want)


@pytest.mark.parametrize("df", DFS)
def test_ppf_and_isf_match_scipy_stats(df: float) -> None:
    for q in PROBS:
        want_ppf, want_isf = float(stats.t.ppf(q, df)), float(stats.t.isf(q, df))
        assert _close(t_ppf(q, df), want_ppf), (q, df, t_ppf(q, df), want_ppf)
        assert _close(t_isf(q, df), want_isf), (q, df, t_isf(q, df), want_isf)


@pytest.mark.parametrize(
    ("x", "df"),
    [
        (math.inf, 3.0),
        (-math.inf, 3.0),
        (math.nan, 3.0),
        (1.0, math.inf),
        (1.0, math.nan),
        (1.0, 0.0),
        (1.0, -2.0),
    ],  # fmt: skip
)
def test_edge_cases_as_scipy_stats(x: float, df: float) -> None:
    assert _close(t_sf(x, df), float(stats.t.sf(x, df)))
    for q in (0.0, 1.0, 0.975, math.nan, -0.5, 1.5):
        assert _close(t_ppf(q, df), float(stats.t.ppf(q, df))), (q, df)
        assert _close(t_isf(q, df), float(stats.t.isf(q, df))), (q, df)


@pytest.mark.parametrize("df", DFS)
@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95, 0.99, 0.999999])
def test_quantile_and_interval(df: float, level: float) -> None:
    q = float(stats.t.ppf((1 + level) / 2, df))
    assert _close(t_quantile(level, df), q)
    low, high = t_interval(10.0, 0.25, df, level)
    assert _close(low, 10.0 - q * 0.25) and _close(high, 10.0 + q * 0.25)


def test_quantile_refuses_a_level_outside_0_1() -> None:
    for level in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            t_quantile(level, 10.0)


def test_ttest_and_power_do_not_import_scipy_stats() -> None:
    """The t-test from moments and the power take their t functions through scipy.special
    (scipy.stats costs about 0.3 s to import); the p value is scipy's ttest_ind_from_stats."""
    code = (
        "import sys\n"
        "from analysis.data import GroupMoments\n"
        "from analysis.power import t_test_power\n"
        "from analysis.ttest import ttest_from_moments\n"
        "a = GroupMoments('a', 10, 0.0, 1.0, 2.0)\n"
        "b = GroupMoments('b', 12, 0.0, 1.5, 3.0)\n"
        "r = ttest_from_moments(a, b, metric='m', group='g')\n"
        "s = ttest_from_moments(a, b, metric='m', group='g', equal_var=True)\n"
        "print(repr(r.p_value), repr(s.p_value), repr(t_test_power(0.5, 20, 20, 0.05)))\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    welch_p, student_p, power = (float(v) for v in out.stdout.split("\n")[0].split())
    assert out.stdout.split("\n")[1] == "False"
    sd_a, sd_b = math.sqrt(2.0), math.sqrt(3.0)
    want_w = stats.ttest_ind_from_stats(1.0, sd_a, 10, 1.5, sd_b, 12, equal_var=False).pvalue
    want_s = stats.ttest_ind_from_stats(1.0, sd_a, 10, 1.5, sd_b, 12, equal_var=True).pvalue
    assert _close(welch_p, float(want_w)) and _close(student_p, float(want_s))
    crit = stats.t.isf(0.025, 38)
    nc = 0.5 * math.sqrt(20 * 20 / 40)
    want_power = stats.nct.sf(crit, 38, nc) + stats.nct.cdf(-crit, 38, nc)
    assert abs(power - want_power) <= 1e-12 * want_power
