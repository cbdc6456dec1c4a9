"""`analysis.power` against the power of a two-sided two-sample t-test computed here directly
from the noncentral t distribution (scipy) and by statsmodels, on the raw rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestIndPower

from analysis import AnalysisError
from analysis.power import PowerResult, power


def t_power(d: float, n_a: int, n_b: int, alpha: float = 0.05) -> float:
    """Power of the pooled two-sample t-test for standardised difference d."""
    df = n_a + n_b - 2
    nc = d * math.sqrt(n_a * n_b / (n_a + n_b))
    crit = stats.t.ppf(1 - alpha / 2, df)
    lower = stats.nct.cdf(-crit, df, nc)  # scipy gives NaN for the far tail of a large nc
    return float(stats.nct.sf(crit, df, nc) + np.nan_to_num(lower))


def pooled_sd(x: np.ndarray, y: np.ndarray) -> float:
    nx, ny = len(x), len(y)
    return math.sqrt(((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2))


@pytest.mark.parametrize("effect", [0.05, 0.1, 0.25])
def test_sample_size_and_detectable_effect_match_noncentral_t(db, groups, effect):
    x, y = groups[2], groups[1]  # a = 2 workers, baseline b = 1 worker
    res = power(db, group="workers", a="2", b="1", effect=effect)
    assert isinstance(res, PowerResult)
    sd = pooled_sd(x, y)
    assert res.sd_pooled == pytest.approx(sd, rel=1e-9)
    d = effect * y.mean() / sd
    assert res.cohens_d == pytest.approx(d, rel=1e-9)
    # the smallest n per group reaching 80 % power, by brute force
    n = 2
    while t_power(d, n, n) < 0.8:
        n += 1
    assert res.n_per_group == n
    assert res.achieved_power == pytest.approx(t_power(d, len(x), len(y)), rel=1e-6)
    ref = TTestIndPower().power(effect_size=d, nobs1=len(x), alpha=0.05, ratio=len(y) / len(x))
    assert res.achieved_power == pytest.approx(ref, rel=1e-6)
    # at the minimum detectable effect the power is exactly 80 %
    d_min = res.mde / sd
    assert t_power(d_min, len(x), len(y)) == pytest.approx(0.8, abs=1e-6)
    assert res.mde_relative == pytest.approx(res.mde / y.mean(), rel=1e-12)
    assert res.observed_relative == pytest.approx((x.mean() - y.mean()) / y.mean(), rel=1e-9)
    assert "trials per group" in str(res)


def test_more_power_or_smaller_alpha_needs_more_trials(db):
    base = power(db, group="workers", a="2", b="1", effect=0.05)
    more = power(db, group="workers", a="2", b="1", effect=0.05, target_power=0.95)
    strict = power(db, group="workers", a="2", b="1", effect=0.05, alpha=0.01)
    assert more.n_per_group > base.n_per_group and strict.n_per_group > base.n_per_group


def test_large_offset_tiny_spread(make_db, rng, trials_for):
    offset = 1e9
    x = offset + rng.normal(0.0, 0.01, 20)
    y = offset + rng.normal(0.0, 0.02, 25)
    res = power(make_db(trials_for({1: x, 2: y})), group="workers", a="1", b="2", effect=1e-10)
    d = 1e-10 * y.mean() / pooled_sd(x, y)
    assert res.cohens_d == pytest.approx(d, rel=1e-6)


# -- ill-conditioned data: 1e12 + tiny noise, and tiny times ---------------------------------------
OFFSET = 1e12


def smallest_n(d: float, alpha: float = 0.05, target: float = 0.8) -> int:
    """The smallest n per group whose power reaches ``target``, by statsmodels, by brute force."""
    n = 2
    while TTestIndPower().power(effect_size=d, nobs1=n, alpha=alpha, ratio=1.0) < target:
        n += 1
    return n


def test_offset_relative_effect_is_detected_by_two_trials(make_db, rng, trials_for):
    """1e12 + noise of 0.01: 10 % of the mean is about 1e13 pooled sds. Two trials per group
    detect it with power 1 (statsmodels' noncentral t, like scipy's, is NaN at d = 1e13, but its
    power at d = 1000 is already 1 and the power grows with d); the smallest detectable
    difference depends on the sd alone. Reference: NumPy and statsmodels on ``x - 1e12`` (exact
    in float64)."""
    x = OFFSET + rng.normal(0.0, 0.01, 20)
    y = OFFSET + 0.004 + rng.normal(0.0, 0.02, 25)
    res = power(make_db(trials_for({1: x, 2: y})), group="workers", a="1", b="2", effect=0.1)
    xd, yd = x - OFFSET, y - OFFSET
    sd, mean_b = pooled_sd(xd, yd), OFFSET + yd.mean()
    assert res.sd_pooled == pytest.approx(sd, rel=1e-9)
    assert res.mean_b == pytest.approx(mean_b, rel=1e-15)
    assert res.cohens_d == pytest.approx(0.1 * mean_b / sd, rel=1e-9)
    assert TTestIndPower().power(effect_size=1000.0, nobs1=2, alpha=0.05, ratio=1.0) == 1.0
    assert res.n_per_group == 2
    assert res.achieved_power == 1.0
    d_min = TTestIndPower().solve_power(nobs1=20, alpha=0.05, power=0.8, ratio=25 / 20)
    assert res.mde == pytest.approx(d_min * sd, rel=1e-6)
    assert res.mde_relative == pytest.approx(d_min * sd / mean_b, rel=1e-6)
    assert res.observed_relative == pytest.approx((xd.mean() - yd.mean()) / mean_b, rel=1e-9)
    json.dumps(res.to_dict(), allow_nan=False)


def test_offset_tiny_relative_effect_matches_statsmodels(make_db, rng, trials_for):
    """A relative effect of 1e-14 at 1e12 is a difference of 0.01, about half a pooled sd."""
    x = OFFSET + rng.normal(0.0, 0.02, 30)
    y = OFFSET + rng.normal(0.0, 0.02, 30)
    res = power(make_db(trials_for({1: x, 2: y})), group="workers", a="1", b="2", effect=1e-14)
    xd, yd = x - OFFSET, y - OFFSET
    d = 1e-14 * (OFFSET + yd.mean()) / pooled_sd(xd, yd)
    assert res.cohens_d == pytest.approx(d, rel=1e-9)
    assert res.n_per_group == smallest_n(d)
    ref = TTestIndPower().power(effect_size=d, nobs1=30, alpha=0.05, ratio=1.0)
    assert res.achieved_power == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("scale", [1e-9, 1e12])
def test_tiny_and_huge_times_match_statsmodels(make_db, rng, trials_for, scale):
    """Times of 1e-9 s (or 1e12 s) with 5 % noise: the same answer as at 1 s."""
    x = scale * rng.normal(1.0, 0.05, 12)
    y = scale * rng.normal(1.03, 0.05, 15)
    res = power(make_db(trials_for({1: x, 2: y})), group="workers", a="1", b="2", effect=0.05)
    sd = pooled_sd(x, y)
    assert res.sd_pooled == pytest.approx(sd, rel=1e-9)
    d = 0.05 * y.mean() / sd
    assert res.cohens_d == pytest.approx(d, rel=1e-9)
    assert res.n_per_group == smallest_n(d)
    ref = TTestIndPower().power(effect_size=d, nobs1=12, alpha=0.05, ratio=15 / 12)
    assert res.achieved_power == pytest.approx(ref, rel=1e-6)
    d_min = TTestIndPower().solve_power(nobs1=12, alpha=0.05, power=0.8, ratio=15 / 12)
    assert res.mde == pytest.approx(d_min * sd, rel=1e-6)
    assert res.mde_relative == pytest.approx(d_min * sd / y.mean(), rel=1e-6)


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        ({1: [1.0, 1.0, 1.0], 2: [2.0, 2.0]}, {}, "zero variance"),
        ({1: [1.0], 2: [2.0, 2.5]}, {}, "at least 2 trials in each level"),
        ({1: [1.0, 1.5], 2: [-1.0, 1.0]}, {}, "baseline level's mean is 0"),
        ({1: [1.0, 1.5], 2: [2.0, 2.5]}, {"effect": 0.0}, "positive difference"),
        ({1: [1.0, 1.5], 2: [2.0, 2.5]}, {"b": "3"}, "not a level of workers"),
        ({1: [1.0, 1.5], 2: [2.0, 2.5]}, {"b": "1"}, "both '1'"),
        (
            {1: [1.0, 1.5], 2: [2.0, 2.5]},
            {"target_power": 1.0},
            "--power 1.0 must be between 0 and 1",
        ),
    ],
)
def test_degenerate_inputs_are_clear_errors(make_db, trials_for, values, kwargs, match):
    path = make_db(trials_for({k: np.array(v) for k, v in values.items()}))
    args = {"group": "workers", "a": "1", "b": "2", **kwargs}
    with pytest.raises(AnalysisError, match=match):
        power(path, **args)


@pytest.mark.parametrize("scale", [1e300, -1e300, 1e-300, 1e200])
def test_extreme_magnitudes_match_statsmodels_on_the_unit_data(make_db, trials_for, scale):
    """Issue 12: times near 1e300 (squares overflow) or 1e-300 (squares underflow): the answer
    statsmodels gives on the same data at unit scale, sd and mde multiplied back."""
    rng = np.random.default_rng(20261206)
    unit_x, unit_y = rng.normal(1.0, 0.05, 12), rng.normal(1.03, 0.05, 15)
    x, y = unit_x * scale, unit_y * scale
    res = power(make_db(trials_for({1: x, 2: y})), group="workers", a="1", b="2", effect=0.05)
    ux, uy = x / scale, y / scale  # the reference's data: unit scale
    sd = pooled_sd(ux, uy)
    assert math.isfinite(res.sd_pooled) and res.sd_pooled == pytest.approx(
        abs(scale) * sd, rel=1e-9
    )
    d = 0.05 * abs(uy.mean()) / sd
    assert res.cohens_d == pytest.approx(d, rel=1e-9)
    assert res.n_per_group == smallest_n(d)
    ref = TTestIndPower().power(effect_size=d, nobs1=12, alpha=0.05, ratio=15 / 12)
    assert res.achieved_power == pytest.approx(ref, rel=1e-6)
    d_min = TTestIndPower().solve_power(nobs1=12, alpha=0.05, power=0.8, ratio=15 / 12)
    assert res.mde == pytest.approx(d_min * sd * abs(scale), rel=1e-6)
    assert res.mde_relative == pytest.approx(d_min * sd / abs(uy.mean()), rel=1e-6)
    assert res.mean_b == pytest.approx(y.mean(), rel=1e-12)
    assert res.observed_relative == pytest.approx(
        math.copysign(1.0, scale) * (ux.mean() - uy.mean()) / abs(uy.mean()), rel=1e-9
    )


def test_few_trials_are_noted(make_db, trials_for):
    """Issue 12: below 5 trials in a level the power analysis warns, as the t-test does."""
    rng = np.random.default_rng(3)
    path = make_db(trials_for({1: rng.normal(1.0, 0.05, 3), 2: rng.normal(1.1, 0.05, 8)}))
    res = power(path, group="workers", a="1", b="2", effect=0.1)
    assert len(res.notes) == 1 and res.notes[0].startswith(
        "few trials: fewer than 5 in workers=1 (3)"
    )
    assert "workers=2" not in res.notes[0]
    text = str(res)
    assert "note: few trials" in text and max(len(line) for line in text.splitlines()) <= 120
    assert res.to_dict()["notes"] == list(res.notes)
    (table,) = res.tables()
    assert table.frame["notes"].iloc[0] == res.notes[0]
    enough = power(
        make_db(trials_for({1: rng.normal(1.0, 0.05, 5), 2: rng.normal(1.1, 0.05, 5)})),
        group="workers",
        a="1",
        b="2",
    )
    assert enough.notes == ()


def test_tables_carry_every_statistic_of_the_text(db):
    res = power(db, group="workers", a="2", b="1", effect=0.1)
    (table,) = res.tables()
    assert table.name == "power" and len(table.frame) == 1
    row = table.frame.iloc[0]
    # every number the text shows: levels, n, means, pooled sd, observed difference, effect,
    # d, power, alpha, trials per group, achieved power, mde (absolute and relative)
    for name in ("a", "b", "n_a", "n_b", "mean_a", "mean_b", "sd_pooled", "observed_relative",
                 "effect", "cohens_d", "power", "alpha", "n_per_group", "achieved_power", "mde",
                 "mde_relative", "where", "notes"):  # fmt: skip
        assert name in table.frame.columns, name
    assert row["n_per_group"] == res.n_per_group and row["mde"] == res.mde


def test_an_effect_beyond_any_practical_run_is_an_answer_not_an_error(make_db, trials_for):
    """A 0.05% effect under 50% noise needs more than 10 million trials per group (statsmodels
    says how many): the result says so and exits 0 instead of refusing (issue 12's tour)."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(1.0, 0.5, 8), rng.normal(1.0, 0.5, 8)
    res = power(make_db(trials_for({1: x, 2: y})), group="workers", a="1", b="2", effect=0.0005)
    d = 0.0005 * abs(y.mean()) / pooled_sd(x, y)
    assert TTestIndPower().solve_power(effect_size=d, alpha=0.05, power=0.8) > 1e7
    assert res.n_per_group is None
    assert "more than 10,000,000 trials per group" in str(res)
    assert res.achieved_power == pytest.approx(t_power(d, 8, 8), rel=1e-6)


def _brentq_both(f, a, b):
    from scipy.optimize import brentq

    from analysis.power import _brentq

    out = []
    for solve in (brentq, _brentq):
        try:
            out.append(solve(f, a, b))
        except (ValueError, RuntimeError) as exc:
            out.append(type(exc).__name__)
    return out


@pytest.mark.parametrize(
    ("f", "a", "b"),
    [
        (lambda x: x**2 - 1, 0.0, 2.0),
        (lambda x: math.cos(x) - x, 0.0, 1.0),
        (lambda x: x**3 - 2 * x - 5, 2.0, 3.0),
        (lambda x: math.exp(x) - 1e6, 0.0, 20.0),
        (lambda x: math.tanh(50 * (x - 0.3)), 0.0, 1.0),
        (lambda x: x - 1e-9, -1.0, 1.0),
        (lambda x: 1.0 if x > 0.3 else -1.0, 0.0, 1.0),  # a jump: bisection to the end
        (lambda x: x**9, -1.0, 2.0),  # does not converge in 100 iterations: RuntimeError
        (lambda x: x, 1.0, 2.0),  # one sign: ValueError
        (lambda x: math.nan if x > 0.5 else -1.0, 0.0, 1.0),  # NaN: ValueError
    ],
)
def test_brentq_is_scipys_to_the_bit(f, a, b):
    """power's own Brent solver (no scipy.optimize import) against scipy.optimize.brentq: the
    same root to the bit, or the same error."""
    got, want = _brentq_both(f, a, b)[::-1]
    assert got == want


def test_brentq_minimum_detectable_effects_are_scipys():
    from analysis.power import t_test_power

    rng = np.random.default_rng(5)
    for _ in range(60):
        na, nb = (int(v) for v in rng.integers(2, 2000, 2))
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        target = float(rng.uniform(0.5, 0.99))

        def f(e, na=na, nb=nb, alpha=alpha, target=target):
            return t_test_power(e, na, nb, alpha) - target

        want, got = _brentq_both(f, 0.0, 10.0)
        assert got == want, (na, nb, alpha, target)
