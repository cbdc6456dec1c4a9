from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from analysis import AnalysisError, AnovaResult, anova

RTOL = 1e-9


def eta_sq_by_hand(samples: list[np.ndarray]) -> float:
    data = np.concatenate(samples)
    grand = data.mean()
    ss_between = sum(len(s) * (s.mean() - grand) ** 2 for s in samples)
    ss_total = ((data - grand) ** 2).sum()
    return ss_between / ss_total


def test_matches_scipy_f_oneway(db, groups):
    res = anova(db, group="workers")
    ref = stats.f_oneway(*groups.values())
    assert isinstance(res, AnovaResult)
    assert res.statistic == pytest.approx(ref.statistic, rel=RTOL)
    assert res.p_value == pytest.approx(ref.pvalue, rel=RTOL)
    assert res.df_num == 2
    assert res.df_den == sum(len(v) for v in groups.values()) - 3
    assert res.eta_sq == pytest.approx(eta_sq_by_hand(list(groups.values())), rel=RTOL)
    assert res.n == 36
    assert [g.level for g in res.groups] == ["1", "2", "4"]
    for g, (_, values) in zip(res.groups, groups.items(), strict=True):
        assert g.n == len(values)
        assert g.mean == pytest.approx(values.mean(), rel=1e-12)
        assert g.sd == pytest.approx(values.std(ddof=1), rel=1e-12)


def test_warmup_and_failed_trials_excluded_by_default(db, groups):
    # the fixture adds warm-ups and failed/timeout trials with absurd timings
    assert anova(db, group="workers").n == 36
    with_warmup = anova(db, group="workers", include_warmup=True)
    assert with_warmup.n == 39
    assert with_warmup.statistic != pytest.approx(stats.f_oneway(*groups.values()).statistic)


def test_where_filters_bound_and_typed(db, groups):
    res = anova(db, group="workers", where=["workers!=4", "engine=dask"])
    ref = stats.f_oneway(groups[1], groups[2])
    assert res.statistic == pytest.approx(ref.statistic, rel=RTOL)
    assert res.where == ("workers!=4", "engine=dask")
    # a hostile value is data, not SQL
    with pytest.raises(AnalysisError, match="no trials match"):
        anova(db, group="workers", where=["engine=dask' OR 1=1 --"])


def test_other_metric_and_param_group(make_db, rng):
    # group by a JSON param (stored DOUBLE): levels print as "3", "5" not "3.0"
    a, b, c = rng.normal(0.9, 0.01, 6), rng.normal(0.91, 0.01, 7), rng.normal(0.95, 0.02, 5)
    trials = []
    for k, vals in ((3, a), (5, b), (7, c)):
        for v in vals:
            trials.append(
                {"engine": "local", "warmup": False, "train_s": 1.0, "params": {"k": k}}
                | {"metrics": {"accuracy": float(v)}}
            )
    path = make_db(trials)
    res = anova(path, group="k", metric="accuracy")
    assert [g.level for g in res.groups] == ["3", "5", "7"]
    assert res.statistic == pytest.approx(stats.f_oneway(a, b, c).statistic, rel=RTOL)


def exact_f(samples: list[np.ndarray]) -> float:
    """F computed in exact rational arithmetic from the float64 data."""
    fr = [[Fraction(float(x)) for x in s] for s in samples]
    n = sum(len(s) for s in fr)
    means = [sum(s) / len(s) for s in fr]
    grand = sum(sum(s) for s in fr) / n
    ssb = sum(len(s) * (m - grand) ** 2 for s, m in zip(fr, means, strict=True))
    ssw = sum(sum((x - m) ** 2 for x in s) for s, m in zip(fr, means, strict=True))
    return float((ssb / (len(fr) - 1)) / (ssw / (n - len(fr))))


def test_ill_conditioned_large_offset(make_db, rng, trials_for):
    offset = 1e12
    samples = {
        1: offset + rng.normal(0.0, 0.01, 20),
        2: offset + 0.005 + rng.normal(0.0, 0.01, 25),
        3: offset + 0.010 + rng.normal(0.0, 0.01, 22),
    }
    path = make_db(trials_for(samples))
    res = anova(path, group="workers")
    exact = exact_f(list(samples.values()))
    assert res.statistic == pytest.approx(exact, rel=1e-6)
    # scipy on float64 data (f_oneway subtracts the grand mean first) agrees too
    raw = [np.asarray(v, dtype=np.float64) for v in samples.values()]
    ref = stats.f_oneway(*raw)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-6)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert res.eta_sq == pytest.approx(eta_sq_by_hand([v - offset for v in raw]), rel=1e-6)
    for g, v in zip(res.groups, raw, strict=True):
        assert g.sd == pytest.approx((v - offset).std(ddof=1), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"group": "wrkers"}, r"--group 'wrkers' is not a column.*did you mean workers\?"),
        ({"group": "workers", "metric": "nope"}, r"--metric 'nope' is not a column.*available:"),
        ({"group": "workers", "metric": "engine"}, r"--metric 'engine' is a VARCHAR column"),
        ({"group": "workers", "where": ["nope=1"]}, r"--where 'nope' is not a column"),
        ({"group": "workers", "where": ["workers=two"]}, r"workers is numeric .* not a number"),
        ({"group": "workers", "where": ["workers"]}, r"is not COLUMN OP VALUE"),
        ({"group": "workers", "where": ["workers=8"]}, r"no trials match --where workers=8"),
        ({"group": "engine"}, r"--group engine has only one level \(dask\)"),
        ({"group": "workers", "where": ["warmup=maybe"]}, r"warmup is true/false"),
    ],
)
def test_user_errors_are_one_line(db, kwargs, match):
    with pytest.raises(AnalysisError, match=match) as info:
        anova(db, **kwargs)
    assert "\n" not in str(info.value)


def test_level_with_one_trial_is_named(make_db, rng, trials_for):
    path = make_db(trials_for({1: rng.normal(size=5), 2: rng.normal(size=1), 8: [1.0]}))
    with pytest.raises(AnalysisError, match=r"levels 2 \(n=1\), 8 \(n=1\) need at least 2 trials"):
        anova(path, group="workers")


def test_zero_variance_everywhere_is_an_error_not_nan(make_db, trials_for):
    path = make_db(trials_for({1: [2.0, 2.0, 2.0], 2: [3.0, 3.0]}))
    with pytest.raises(AnalysisError, match="zero variance"):
        anova(path, group="workers")


def test_missing_db_is_analysis_error(tmp_path):
    with pytest.raises(AnalysisError, match="no database at"):
        anova(tmp_path / "missing.duckdb", group="workers")


def test_status_filter_replaces_default(db):
    # asking for failed trials explicitly is honoured (only one has a train_s: n too small)
    with pytest.raises(AnalysisError, match="only one level"):
        anova(db, group="workers", where=["status=failed"])


def test_result_shapes(db):
    res = anova(db, group="workers")
    d = res.to_dict()
    assert list(d) == [
        "metric",
        "group",
        "statistic",
        "p_value",
        "df_num",
        "df_den",
        "eta_sq",
        "n",
        "where",
        "groups",
    ]
    assert d["groups"][0] == {
        "level": "1",
        "n": 12,
        "mean": res.groups[0].mean,
        "sd": res.groups[0].sd,
    }
    frame = res.to_frame()
    assert list(frame.columns) == ["level", "n", "mean", "sd"]
    assert len(frame) == 3
    text = str(res)
    assert "F(2, 33)" in text and "workers" in text and "eta_sq" in text
    assert not math.isnan(res.p_value)
