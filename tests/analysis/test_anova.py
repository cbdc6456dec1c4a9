from __future__ import annotations

import hashlib
import importlib
import json
import math
import tracemalloc
from fractions import Fraction
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats

from analysis import AnalysisError, AnovaResult, anova
from analysis.anova import (
    RECOMMENDED,
    TAIL_MIN_N,
    far_out_count,
    recommend,
    shapiro_wilk,
    welch_from_moments,
)
from analysis.data import GroupMoments
from runner.store import open_store

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
    res = anova(db, group="workers", posthoc="tukey")
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
        "omega_sq",
        "welch_statistic",
        "welch_df_num",
        "welch_df_den",
        "welch_p_value",
        "kruskal_statistic",
        "kruskal_df",
        "kruskal_p_value",
        "levene_statistic",
        "levene_df_num",
        "levene_df_den",
        "levene_p_value",
        "shapiro_statistic",
        "shapiro_p_value",
        "shapiro_n",
        "seed",
        "alpha",
        "recommended",
        "recommendation",
        "notes",
        "posthoc",
        "far_out",
        "not_run",
    ]
    assert d["groups"][0] == {
        "level": "1",
        "n": 12,
        "mean": res.groups[0].mean,
        "sd": res.groups[0].sd,
    }
    assert d["posthoc"]["method"] == "tukey" and len(d["posthoc"]["pairs"]) == 3
    assert set(d["posthoc"]["pairs"][0]) == {
        "a",
        "b",
        "mean_diff",
        "se",
        "statistic",
        "df",
        "p_value",
        "ci_low",
        "ci_high",
        "reject",
    }
    json.dumps(d, allow_nan=False)  # every value is JSON-ready (no NaN here)
    frame = res.to_frame()
    assert list(frame.columns) == ["level", "n", "mean", "sd"]
    assert len(frame) == 3
    tests = res.tests_frame()
    assert list(tests.columns) == ["test", "statistic", "df_num", "df_den", "p_value"]
    assert list(tests["test"]) == ["anova", "welch", "kruskal", "brown_forsythe", "shapiro"]
    text = str(res)
    assert "F(2, 33)" in text and "workers" in text and "eta_sq" in text
    assert not math.isnan(res.p_value)
    assert anova(db, group="workers").posthoc is None


def test_str_blocks_in_order(db):
    text = str(anova(db, group="workers", posthoc="games-howell"))
    order = [
        "One-way ANOVA of train_s by workers",
        "omega_sq",
        "Assumption checks (alpha = 0.05)",
        "Brown-Forsythe",
        "Shapiro-Wilk (n=36)",
        "Alternatives",
        "Welch's ANOVA",
        "Kruskal-Wallis",
        "is recommended",
        "Post-hoc comparisons of train_s by workers: Games-Howell",
    ]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions)
    assert "nan" not in text.lower()


def test_to_latex_escapes_and_holds_every_table(make_db, rng, trials_for):
    groups = {"a_b": rng.normal(1, 0.1, 5), "c%d": rng.normal(1.2, 0.1, 6)}
    path = make_db(trials_for(groups, column="engine"))
    tex = anova(path, group="engine", posthoc="tukey").to_latex()
    assert tex.count("\\begin{tabular}") == 3  # levels, tests, post-hoc pairs
    assert "a\\_b" in tex and "c\\%d" in tex
    assert "a_b" not in tex.replace("a\\_b", "")


# -- effect sizes, alternatives and checks, pinned against scipy / pingouin / numpy ------------
def omega_sq_by_hand(samples: list[np.ndarray]) -> float:
    data = np.concatenate(samples)
    grand = data.mean()
    ss_between = sum(len(s) * (s.mean() - grand) ** 2 for s in samples)
    ss_within = sum(((s - s.mean()) ** 2).sum() for s in samples)
    df_between = len(samples) - 1
    ms_within = ss_within / (len(data) - len(samples))
    return (ss_between - df_between * ms_within) / (ss_between + ss_within + ms_within)


def frame_of(groups: dict) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": np.concatenate(list(groups.values())),
            "g": np.repeat([str(k) for k in groups], [len(v) for v in groups.values()]),
        }
    )


def test_omega_sq_matches_numpy(db, groups):
    res = anova(db, group="workers")
    assert res.omega_sq == pytest.approx(omega_sq_by_hand(list(groups.values())), rel=RTOL)
    assert res.omega_sq < res.eta_sq


def test_omega_sq_can_be_negative_when_f_below_one(make_db, trials_for):
    samples = {1: np.array([1.0, 2.0, 3.0]), 2: np.array([1.1, 2.0, 2.9])}
    res = anova(make_db(trials_for(samples)), group="workers")
    assert res.statistic < 1
    assert res.omega_sq == pytest.approx(omega_sq_by_hand(list(samples.values())), rel=RTOL)
    assert res.omega_sq < 0


def test_welch_matches_pingouin_and_scipy(db, groups):
    res = anova(db, group="workers")
    ref = pg.welch_anova(data=frame_of(groups), dv="x", between="g")
    assert res.welch_statistic == pytest.approx(ref["F"].iloc[0], rel=RTOL)
    assert res.welch_df_num == ref["ddof1"].iloc[0]
    assert res.welch_df_den == pytest.approx(ref["ddof2"].iloc[0], rel=RTOL)
    assert res.welch_p_value == pytest.approx(ref["p_unc"].iloc[0], rel=1e-7)
    # scipy >= 1.15: f_oneway(equal_var=False) is Welch's ANOVA
    sc = stats.f_oneway(*groups.values(), equal_var=False)
    assert res.welch_statistic == pytest.approx(sc.statistic, rel=RTOL)
    assert res.welch_p_value == pytest.approx(sc.pvalue, rel=1e-7)


def test_kruskal_matches_scipy_with_ties(make_db, rng, trials_for):
    samples = {
        1: np.round(rng.normal(4.0, 0.3, 12), 1),  # rounded: ties within and across levels
        2: np.round(rng.normal(4.1, 0.2, 9), 1),
        4: np.round(rng.normal(3.8, 0.4, 15), 1),
    }
    pooled = np.concatenate(list(samples.values()))
    assert len(np.unique(pooled)) < len(pooled) - 10
    res = anova(make_db(trials_for(samples)), group="workers")
    ref = stats.kruskal(*samples.values())
    assert res.kruskal_statistic == pytest.approx(ref.statistic, rel=RTOL)
    assert res.kruskal_p_value == pytest.approx(ref.pvalue, rel=1e-7)
    assert res.kruskal_df == 2


@pytest.mark.parametrize("sizes", [(12, 9, 15), (4, 6, 8), (7, 7, 5, 10)])
def test_brown_forsythe_matches_scipy_levene_median(make_db, rng, trials_for, sizes):
    # odd and even level sizes: the median is a data value or the mean of the middle two
    samples = {2**i: rng.normal(3.0, 0.2 * (i + 1), n) for i, n in enumerate(sizes)}
    res = anova(make_db(trials_for(samples)), group="workers")
    ref = stats.levene(*samples.values(), center="median")
    assert res.levene_statistic == pytest.approx(ref.statistic, rel=RTOL)
    assert res.levene_p_value == pytest.approx(ref.pvalue, rel=1e-7)
    assert (res.levene_df_num, res.levene_df_den) == (len(sizes) - 1, sum(sizes) - len(sizes))


def test_shapiro_on_residuals_matches_scipy(db, groups):
    res = anova(db, group="workers")
    residuals = np.concatenate([v - v.mean() for v in groups.values()])
    ref = stats.shapiro(residuals)
    assert res.shapiro_n == 36 and not res.shapiro_sampled
    assert res.shapiro_statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert res.shapiro_p_value == pytest.approx(ref.pvalue, rel=1e-7)


@pytest.mark.parametrize("where", [(), ("workers!=4",)])
def test_checks_see_only_the_selected_trials(db, groups, where):
    # the fixture's warm-up and failed trials (absurd timings) must not reach any check
    kept = [v for k, v in groups.items() if not (where and k == 4)]
    res = anova(db, group="workers", where=where)
    assert res.kruskal_statistic == pytest.approx(stats.kruskal(*kept).statistic, rel=RTOL)
    bf = stats.levene(*kept, center="median")
    assert res.levene_statistic == pytest.approx(bf.statistic, rel=RTOL)
    sw = stats.shapiro(np.concatenate([v - v.mean() for v in kept]))
    assert res.shapiro_statistic == pytest.approx(sw.statistic, rel=1e-9)
    assert res.shapiro_n == sum(len(v) for v in kept)


def bulk_db(path: Path, samples: dict[int, np.ndarray]) -> Path:
    """Many trials fast: the real store (schema, run, view), trials inserted in one statement."""
    store = open_store(path)
    try:
        run = store.begin_run(source="import:test", argv=["test"], env={"python": "3.11"})
        frame = pd.DataFrame(  # noqa: F841 (read by DuckDB's replacement scan)
            {
                "workers": np.repeat(list(samples), [len(v) for v in samples.values()]),
                "train_s": np.concatenate(list(samples.values())),
            }
        )
        store.con.execute(
            "INSERT INTO trials (trial_id, run_id, engine, workers, warmup, status, train_s) "
            "SELECT nextval('trial_id_seq'), ?, 'dask', workers, false, 'ok', train_s FROM frame",
            [run],
        )
        store.finish_run(run)
    finally:
        store.close()
    return path


def raw_rows(path: Path) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT trial_id, workers, train_s FROM trials").df()
    finally:
        con.close()


def md5_sample(trial_ids: np.ndarray, seed: int, size: int) -> np.ndarray:
    """The ``size`` trial ids with the smallest md5("seed:trial_id") (little-endian 128-bit
    integer, as DuckDB's md5_number), computed here with hashlib."""
    keys = [
        (int.from_bytes(hashlib.md5(f"{seed}:{t}".encode()).digest(), "little"), t)
        for t in trial_ids.tolist()
    ]
    return np.array([t for _, t in sorted(keys)[:size]])


@pytest.mark.parametrize("seed", [0, 7])
def test_shapiro_uses_a_seeded_sample_of_5000_above_5000_trials(tmp_path, rng, seed):
    samples = {
        1: rng.normal(5.0, 0.3, 2000),
        2: rng.gamma(4.0, 0.1, 2300) + 5,
        4: rng.normal(5.5, 0.2, 1900),
    }
    path = bulk_db(tmp_path / "big.duckdb", samples)
    res = anova(path, group="workers", seed=seed)
    assert res.n == 6200 and res.shapiro_n == 5000 and res.shapiro_sampled
    assert res.seed == seed
    # reference: residuals of every raw row (numpy), then the md5-chosen 5000 (hashlib)
    rows = raw_rows(path)
    rows["r"] = rows["train_s"] - rows.groupby("workers")["train_s"].transform("mean")
    chosen = rows.set_index("trial_id").loc[md5_sample(rows["trial_id"].to_numpy(), seed, 5000)]
    ref = stats.shapiro(chosen["r"].to_numpy())
    assert res.shapiro_statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert res.shapiro_p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert f"sample of 5000, seed {seed}" in str(res)


# -- the recommendation -------------------------------------------------------------------------
def test_welch_is_the_default_when_no_check_rejects(make_db, rng, trials_for):
    """Issue 12: the former rule recommended the classic F test whenever no check rejected."""
    samples = {
        1: rng.normal(3.0, 0.2, 20),
        2: rng.normal(3.1, 0.2, 22),
        4: rng.normal(3.2, 0.2, 18),
    }
    res = anova(make_db(trials_for(samples)), group="workers")
    assert stats.levene(*samples.values(), center="median").pvalue >= 0.05
    assert res.recommended == "welch"
    assert res.recommendation.startswith("Welch's ANOVA is recommended")
    assert "do not differ detectably" in res.recommendation
    assert res.far_out == (0, 0, 0)
    classic = anova(make_db(trials_for(samples)), group="workers", test="anova")
    assert classic.recommended == "anova" and "as asked" in classic.recommendation


def test_welch_for_unequal_variances(db, groups):
    res = anova(db, group="workers")
    assert stats.levene(*groups.values(), center="median").pvalue < 0.05
    assert res.recommended == "welch" and "variances differ" in res.recommendation


def test_unequal_variances_never_send_to_kruskal(make_db, rng, trials_for):
    """Issue 12: pooled-residual Shapiro-Wilk rejects when variances differ and sent users to
    Kruskal-Wallis (not robust to unequal variances either); the checks are per level now."""
    samples = {1: rng.normal(0, 4, 12), 2: rng.normal(0, 1, 40), 4: rng.normal(0, 1, 40)}
    res = anova(make_db(trials_for(samples)), group="workers")
    residuals = np.concatenate([v - v.mean() for v in samples.values()])
    assert stats.shapiro(residuals).pvalue < 0.05  # what drove the former rule
    assert res.recommended == "welch"


def test_kruskal_for_a_clearly_heavy_tailed_level(make_db, rng, trials_for):
    samples = {w: rng.normal(3.0, 0.1, 15) for w in (1, 2, 4)}
    samples[2][3] = 30.0  # two far-out values
    samples[2][7] = 25.0
    res = anova(make_db(trials_for(samples)), group="workers")
    assert res.far_out == (0, 2, 0)
    assert res.recommended == "kruskal" and "2 has 2 of 15 values" in res.recommendation
    samples[2][7] = 3.0  # one far-out value is no clear evidence
    assert anova(make_db(trials_for(samples)), group="workers").recommended == "welch"


def test_far_out_counts_match_numpy_per_level(make_db, rng, trials_for):
    samples = {1: np.exp(rng.normal(0, 1.5, 40)), 2: rng.standard_t(1, 30), 4: rng.normal(0, 1, 5)}
    res = anova(make_db(trials_for(samples)), group="workers")
    expect = tuple(None if len(v) < TAIL_MIN_N else int(far_out_count(v)) for v in samples.values())
    manual = tuple(
        None
        if len(v) < TAIL_MIN_N
        else int(
            np.sum(
                (v < np.quantile(v, 0.25) - 3 * stats.iqr(v))
                | (v > np.quantile(v, 0.75) + 3 * stats.iqr(v))
            )
        )
        for v in samples.values()
    )
    assert res.far_out == expect == manual
    assert "not checked (< 10 trials): 4" in str(res)


def test_few_trials_say_the_checks_have_little_power(make_db, rng, trials_for):
    """Issue 12: with n = 3 the ANOVA recommended the F test because checks without power
    rejected nothing; with 2 trials Brown-Forsythe could not run and read as passed."""
    samples = {w: rng.normal(3.0 + w, 0.2, 3) for w in (1, 2, 4)}
    res = anova(make_db(trials_for(samples)), group="workers")
    assert res.recommended == "welch"
    assert "3 trials in the smallest level the checks have little power" in res.recommendation
    two = {1: np.array([1.0, 2.0]), 2: np.array([3.0, 5.0]), 4: np.array([1.0, 4.0])}
    res = anova(make_db(trials_for(two)), group="workers")
    assert "equal variances not checked" in res.recommendation
    assert "not checked" in str(res).split("Alternatives")[0]


def test_recommend_rule_directly():
    base = {"welch_p": 0.01, "kruskal_p": 0.01, "levene_p": 0.5, "levels": ["a", "b"]}
    assert recommend(far_out=[0, 0], sizes=[20, 20], **base)[0] == "welch"
    assert recommend(far_out=[0, 2], sizes=[20, 20], **base)[0] == "kruskal"
    assert recommend(far_out=[0, 1], sizes=[20, 20], **base)[0] == "welch"
    assert recommend(far_out=[None, 0], sizes=[5, 20], **base)[0] == "welch"
    assert recommend(far_out=[0, 0], sizes=[20, 20], test="anova", **base)[0] == "anova"
    no_welch = {**base, "welch_p": math.nan}
    assert recommend(far_out=[0, 0], sizes=[20, 20], **no_welch)[0] == "kruskal"
    for _, text in (
        recommend(far_out=[0, 0], sizes=[3, 20], **base),
        recommend(far_out=[1, None], sizes=[20, 4], **base),
    ):
        assert text.count(". ") == 0 and text.endswith(".")  # one sentence


def test_default_type_one_error_under_unequal_variances_and_sizes():
    """The default test (the recommendation's choice, with its per-level checks) under a true
    null, n = 5/20/20, sd = 4/1/1 (where the classic F rejects about a third of the time):
    within 5 +- 1.5% over 4000 seeded replicates, from the *_from_moments cores."""
    rng = np.random.default_rng(20260)
    reps, rejected, chosen = 4000, 0, {"welch": 0, "kruskal": 0, "anova": 0}
    levels = ["a", "b", "c"]
    for _ in range(reps):
        xs = [rng.normal(0, 4, 5), rng.normal(0, 1, 20), rng.normal(0, 1, 20)]
        moments = [GroupMoments(lv, len(x), 0.0, float(x.mean()), float(x.var(ddof=1)))
                   for lv, x in zip(levels, xs, strict=True)]  # fmt: skip
        welch_p = welch_from_moments(moments)[3]
        tails = [None if len(x) < TAIL_MIN_N else far_out_count(x) for x in xs]
        name, _ = recommend(welch_p=welch_p, kruskal_p=0.5, levene_p=math.nan, far_out=tails,
                            levels=levels, sizes=[len(x) for x in xs])  # fmt: skip
        chosen[name] += 1
        p = welch_p if name == "welch" else stats.kruskal(*xs).pvalue
        rejected += p < 0.05
    assert 0.035 <= rejected / reps <= 0.065, (rejected / reps, chosen)
    assert chosen["welch"] > 0.95 * reps


# -- degenerate inputs ----------------------------------------------------------------------
def test_levene_undefined_with_two_trials_per_level(make_db, trials_for):
    # |x - median| is the same for both trials of a level: the within-level spread is zero
    # (scipy returns an infinite statistic here); the ANOVA itself still runs
    samples = {1: np.array([1.0, 2.0]), 2: np.array([3.0, 5.0]), 4: np.array([1.0, 4.0])}
    res = anova(make_db(trials_for(samples)), group="workers")
    assert res.statistic == pytest.approx(stats.f_oneway(*samples.values()).statistic, rel=RTOL)
    assert math.isnan(res.levene_statistic) and math.isnan(res.levene_p_value)
    assert "Brown-Forsythe could not run" in res.recommendation
    assert any("Brown-Forsythe could not run" in n for n in res.notes)
    assert "Brown-Forsythe could not run" in str(res)
    assert res.recommendation.count(". ") == 0  # still one sentence


def test_welch_undefined_with_a_zero_variance_level(make_db, trials_for):
    samples = {1: np.array([2.0, 2.0, 2.0]), 2: np.array([1.0, 2.0, 3.5]), 4: np.array([4.0, 5, 7])}
    res = anova(make_db(trials_for(samples)), group="workers")
    assert res.statistic == pytest.approx(stats.f_oneway(*samples.values()).statistic, rel=RTOL)
    assert math.isnan(res.welch_statistic) and math.isnan(res.welch_p_value)
    assert any(
        "Welch's ANOVA is undefined: workers level 1 with zero variance" in n for n in res.notes
    )
    assert res.recommended in RECOMMENDED and res.recommended != "welch"
    with np.errstate(all="ignore"):
        assert math.isnan(stats.f_oneway(*samples.values(), equal_var=False).statistic)


def test_shapiro_undefined_below_three_residuals():
    assert all(math.isnan(v) for v in shapiro_wilk(np.array([0.5, -0.5])))
    assert all(math.isnan(v) for v in shapiro_wilk(np.zeros(10)))


def test_shapiro_is_scale_free_where_scipy_gives_up(make_db, trials_for) -> None:
    """scipy's swilk refuses residuals whose range is below 1e-19: it warns "range zero" and
    returns W = p = 1, "perfectly normal". W does not change when every residual is multiplied
    by the same positive number, so ours match scipy's on the residuals at a scale it can take,
    and nothing is printed. Reference: the exact residuals of levels (1e12, 1e12, 1e12) and
    (0, 1e-20, 3e-20), written in units of 1e-20: 0, 0, 0, -4/3, -1/3, 5/3."""
    import warnings

    ref = stats.shapiro(np.array([0.0, 0.0, 0.0, -4 / 3, -1 / 3, 5 / 3]))
    samples = {1: np.array([1e12, 1e12, 1e12]), 2: np.array([0.0, 1e-20, 3e-20])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = anova(make_db(trials_for(samples)), group="workers")
        tiny = shapiro_wilk(np.array([0.0, 0.0, 5e-324]))
    assert res.shapiro_statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.shapiro_p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert tiny == pytest.approx(tuple(stats.shapiro(np.array([0.0, 0.0, 1.0]))), rel=1e-12)
    with pytest.warns(UserWarning, match="range zero"):  # scipy's own answer there
        assert stats.shapiro(np.array([0.0, 1e-20, 3e-20])).pvalue == 1.0


def test_non_finite_metric_is_one_line_error(make_db, trials_for):
    path = make_db(trials_for({1: [1.0, 2.0, math.inf], 2: [3.0, 4.0, math.nan]}))
    with pytest.raises(AnalysisError, match=r"^train_s is NaN or infinite in 2") as info:
        anova(path, group="workers")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"posthoc": "scheffe"}, r"--posthoc 'scheffe' is not .*tukey, games-howell, pairwise"),
        ({"alpha": 1.5}, r"--alpha 1.5 is not between 0 and 1"),
        ({"seed": -1}, r"--seed -1 is not a seed; give a whole number >= 0"),
    ],
)
def test_bad_options_are_one_line_errors(db, kwargs, match):
    with pytest.raises(AnalysisError, match=match) as info:
        anova(db, group="workers", **kwargs)
    assert "\n" not in str(info.value)


# -- ill-conditioned data and a million trials ------------------------------------------------
def test_every_statistic_ill_conditioned_large_offset(make_db, rng, trials_for):
    offset = 1e12
    samples = {
        1: offset + rng.normal(0.0, 0.01, 20),
        2: offset + 0.005 + rng.normal(0.0, 0.02, 25),
        3: offset + 0.010 + rng.normal(0.0, 0.01, 22),
    }
    raw = [np.asarray(v, dtype=np.float64) for v in samples.values()]
    # x - offset is exact here (Sterbenz), so scipy on the offset-free data is the reference
    # wherever scipy on the raw values rounds at ulp(1e12) ~ 1.2e-4 (medians, means, residuals)
    free = [v - offset for v in raw]
    res = anova(make_db(trials_for(samples)), group="workers")
    assert res.omega_sq == pytest.approx(omega_sq_by_hand(free), rel=1e-6)
    ref = pg.welch_anova(data=frame_of(dict(zip(samples, free, strict=True))), dv="x", between="g")
    assert res.welch_statistic == pytest.approx(ref["F"].iloc[0], rel=1e-6)
    assert res.welch_df_den == pytest.approx(ref["ddof2"].iloc[0], rel=1e-6)
    assert res.welch_p_value == pytest.approx(ref["p_unc"].iloc[0], rel=1e-5)
    # ranks of the raw values are exact (the data are quantized at 1.2e-4: there are ties)
    assert len(np.unique(np.concatenate(raw))) < sum(len(v) for v in raw)
    kw = stats.kruskal(*raw)
    assert res.kruskal_statistic == pytest.approx(kw.statistic, rel=1e-9)
    assert res.kruskal_p_value == pytest.approx(kw.pvalue, rel=1e-7)
    bf = stats.levene(*free, center="median")
    assert res.levene_statistic == pytest.approx(bf.statistic, rel=1e-6)
    assert res.levene_p_value == pytest.approx(bf.pvalue, rel=1e-5)
    sw = stats.shapiro(np.concatenate([v - v.mean() for v in free]))
    assert res.shapiro_statistic == pytest.approx(sw.statistic, rel=1e-6)
    assert res.shapiro_p_value == pytest.approx(sw.pvalue, rel=1e-4)


def test_a_million_trials_in_duckdb(tmp_path):
    rng = np.random.default_rng(20240518)
    offset = 1e12
    samples = {
        w: offset + 0.001 * i + rng.normal(0.0, 0.01, 200_000)
        for i, w in enumerate((1, 2, 4, 8, 16))
    }
    path = bulk_db(tmp_path / "million.duckdb", samples)
    tracemalloc.start()
    res = anova(path, group="workers", posthoc="tukey", checks="all")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert res.n == 1_000_000 and res.shapiro_n == 5000
    # Python never holds the rows: a million float64 alone would be 8 MB
    assert peak < 8_000_000, peak
    free = [v - offset for v in samples.values()]
    ref = stats.f_oneway(*free)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-6)
    assert res.welch_statistic == pytest.approx(
        stats.f_oneway(*free, equal_var=False).statistic, rel=1e-6
    )
    assert res.kruskal_statistic == pytest.approx(
        stats.kruskal(*samples.values()).statistic, rel=1e-6
    )
    assert res.levene_statistic == pytest.approx(
        stats.levene(*free, center="median").statistic, rel=1e-6
    )


def test_rank_and_sample_checks_beyond_the_auto_limit_run_only_when_asked(
    make_db, trials_for, rng, monkeypatch
):
    samples = {w: rng.normal(3.0 + w, 0.2, 30) for w in (1, 2, 4)}
    db = make_db(trials_for(samples))
    module = importlib.import_module("analysis.anova")  # the module, not the function
    monkeypatch.setattr(module, "CHECKS_AUTO_MAX_N", 50)
    res = anova(db, group="workers")
    assert res.not_run == ("kruskal", "shapiro")
    assert math.isnan(res.kruskal_statistic) and res.shapiro_n == 0
    text = str(res)
    assert (
        text.count("not run (--checks all)") == 2 and "not run: Kruskal-Wallis and Shapiro" in text
    )
    tests = res.tables()[1].frame
    assert list(tests["ran"]) == [True, True, False, True, False]
    full = anova(db, group="workers", checks="all")
    assert full.not_run == () and full.shapiro_n == 90
    assert full.kruskal_statistic == pytest.approx(stats.kruskal(*samples.values()).statistic)
    # the recommended test always runs: heavy tails make Kruskal-Wallis run without asking
    samples[2][:3] = [40.0, 50.0, 60.0]
    heavy = anova(make_db(trials_for(samples)), group="workers")
    assert heavy.recommended == "kruskal" and heavy.not_run == ("shapiro",)


def test_a_metric_named_shift_is_analysed(make_db, trials_for, rng):
    groups = {1: rng.normal(3.0, 0.2, 8), 2: rng.normal(3.3, 0.2, 9)}
    trials = trials_for(groups)
    for t in trials:
        t["metrics"] = {"shift": t.pop("train_s")}
    path = make_db(trials)
    res = anova(path, group="workers", metric="shift")
    assert res.statistic == pytest.approx(stats.f_oneway(*groups.values()).statistic, rel=1e-9)


@pytest.mark.parametrize(
    ("scale", "offset"), [(1e300, 0.0), (-1e300, 0.0), (1e-300, 0.0), (1e200, 0.0), (1.0, 1e9)]
)
def test_extreme_magnitudes_give_the_statistics_of_the_unit_data(
    make_db, trials_for, scale, offset
):
    """Issue 12: values up to 1e300 (squares overflow), down to 1e-300 (squares underflow) or at
    a 1e9 offset give the F, Welch, Kruskal-Wallis, Brown-Forsythe, Shapiro-Wilk and post-hoc
    results scipy gives on the same data at unit scale (``x / scale - offset``)."""
    rng = np.random.default_rng(20261206)
    unit = {1: rng.normal(3.0, 0.5, 7), 2: rng.normal(3.6, 0.3, 9), 4: rng.normal(3.2, 0.8, 12)}
    raw = {k: (offset + v) * scale for k, v in unit.items()}
    path = make_db(trials_for(raw))
    ref_data = [v / scale - offset for v in raw.values()]  # what scipy sees: unit scale
    for method in ("tukey", "games-howell"):
        res = anova(path, group="workers", posthoc=method)
        f = stats.f_oneway(*ref_data)
        assert res.statistic == pytest.approx(f.statistic, rel=1e-6)
        assert res.p_value == pytest.approx(f.pvalue, rel=1e-6)
        welch = stats.f_oneway(*ref_data, equal_var=False)
        assert res.welch_statistic == pytest.approx(welch.statistic, rel=1e-6)
        assert res.welch_p_value == pytest.approx(welch.pvalue, rel=1e-6)
        kw = stats.kruskal(*ref_data)
        assert res.kruskal_statistic == pytest.approx(kw.statistic, rel=1e-9)
        assert res.kruskal_p_value == pytest.approx(kw.pvalue, rel=1e-9)
        bf = stats.levene(*ref_data, center="median")
        assert res.levene_statistic == pytest.approx(bf.statistic, rel=1e-6)
        assert res.levene_p_value == pytest.approx(bf.pvalue, rel=1e-6)
        sw = stats.shapiro(np.concatenate([v - v.mean() for v in ref_data]))
        assert res.shapiro_statistic == pytest.approx(sw.statistic, rel=1e-6)
        assert res.shapiro_p_value == pytest.approx(sw.pvalue, rel=1e-5)
        assert res.eta_sq == pytest.approx(eta_sq_by_hand(ref_data), rel=1e-6)
        for g, v in zip(res.groups, raw.values(), strict=True):
            assert math.isfinite(g.mean) and math.isfinite(g.sd)
            assert g.mean == pytest.approx(v.mean(), rel=1e-12)
            assert g.sd == pytest.approx(abs(scale) * np.std(v / scale - offset, ddof=1), rel=1e-6)
        hsd = stats.tukey_hsd(*ref_data, equal_var=method == "tukey")
        ci = hsd.confidence_interval(0.95)
        for pair, (i, j) in zip(res.posthoc.pairs, [(0, 1), (0, 2), (1, 2)], strict=True):
            assert pair.mean_diff == pytest.approx(hsd.statistic[i, j] * scale, rel=1e-6)
            assert pair.p_value == pytest.approx(hsd.pvalue[i, j], rel=1e-5, abs=1e-12)
            low, high = sorted((ci.low[i, j] * scale, ci.high[i, j] * scale))
            assert pair.ci_low == pytest.approx(low, rel=1e-6)
            assert pair.ci_high == pytest.approx(high, rel=1e-6)


def test_tables_carry_every_statistic_of_the_text(db):
    """Issue 12: ``tables()`` (main first) holds every statistic ``str(result)`` shows."""
    res = anova(db, group="workers", posthoc="tukey")
    tables = {t.name: t.frame for t in res.tables()}
    assert list(tables) == ["groups", "tests", "recommendation", "pairs"]
    groups, tests, rec = tables["groups"], tables["tests"], tables["recommendation"]
    # the level table and the F line: level, n, mean, sd, F(df_num, df_den), p, eta_sq, omega_sq
    for column in ("level", "n", "mean", "sd", "f", "f_df_num", "f_df_den", "f_p_value"):
        assert column in groups.columns, column
    assert groups["eta_sq"].iloc[0] == res.eta_sq and groups["omega_sq"].iloc[0] == res.omega_sq
    # the far-out values per level (the "no heavy tails" check)
    assert [None if pd.isna(k) else k for k in groups["far_out"]] == list(res.far_out)
    assert None in res.far_out  # a level below 10 trials: not checked, an empty cell
    # checks and alternatives: a row per test with statistic, dfs, p, the values it used, alpha
    assert list(tests["test"]) == ["anova", "welch", "kruskal", "brown_forsythe", "shapiro"]
    for column in ("statistic", "df_num", "df_den", "p_value", "n", "alpha"):
        assert column in tests.columns, column
    shapiro = tests.set_index("test").loc["shapiro"]
    assert shapiro["statistic"] == res.shapiro_statistic and shapiro["n"] == res.shapiro_n
    bf = tests.set_index("test").loc["brown_forsythe"]
    assert bf["statistic"] == res.levene_statistic and bf["df_den"] == res.levene_df_den
    assert rec["recommendation"].iloc[0] == res.recommendation
    assert rec["notes"].iloc[0] == "; ".join(res.notes)
    assert len(tables["pairs"]) == len(res.posthoc.pairs)
    assert max(len(line) for line in str(res).splitlines()) <= 120
