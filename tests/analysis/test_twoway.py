"""Two-way ANOVA with interaction, pinned against statsmodels' ``anova_lm`` (and pingouin's
partial eta squared) on the raw rows."""

from __future__ import annotations

import math
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from analysis import AnalysisError
from analysis.twoway import (
    CELL_COLUMNS,
    MARGINAL_COLUMNS,
    TERM_COLUMNS,
    TwoWayAnovaResult,
    twoway_anova,
)

RTOL = 1e-9
GROUPS = ("workers", "engine")
#: Interaction: spark is slow with 1 worker only.
EFFECT = {
    (1, "dask"): 4.0,
    (1, "ray"): 4.3,
    (1, "spark"): 5.1,
    (2, "dask"): 3.0,
    (2, "ray"): 3.2,
    (2, "spark"): 3.1,
}
BALANCED = {cell: 6 for cell in EFFECT}
UNBALANCED = {
    (1, "dask"): 5,
    (1, "ray"): 9,
    (1, "spark"): 3,
    (2, "dask"): 12,
    (2, "ray"): 1,
    (2, "spark"): 7,
}
Sample = dict[tuple[Any, Any], np.ndarray]


def draw(
    rng: np.random.Generator, sizes: dict, *, offset: float = 0.0, scale: float = 1.0
) -> Sample:
    """Normal draws per cell: mean ``offset + scale * EFFECT[cell]``, sd ``0.3 * scale``."""
    return {
        cell: offset + rng.normal(scale * EFFECT.get(cell, 0.0), 0.3 * scale, k)
        for cell, k in sizes.items()
    }


def trials(sample: Sample, metric: str = "train_s") -> list[dict[str, Any]]:
    return [
        {
            "workload": "knn",
            "dataset": "digits",
            "warmup": False,
            "repetition": r,
            "workers": w,
            "engine": e,
            metric: float(v),
        }
        for (w, e), values in sample.items()
        for r, v in enumerate(values)
    ]


def raw_frame(sample: Sample, offset: float = 0.0) -> pd.DataFrame:
    rows = [(w, e, float(v) - offset) for (w, e), vs in sample.items() for v in vs]
    return pd.DataFrame(rows, columns=["a", "b", "y"])


def statsmodels_table(raw: pd.DataFrame, typ: int) -> pd.DataFrame:
    """``anova_lm`` on the raw rows, rows renamed to workers, engine, workers:engine, Residual."""
    formula = "y ~ C(a, Sum) * C(b, Sum)" if typ == 3 else "y ~ C(a) * C(b)"
    table = sm.stats.anova_lm(smf.ols(formula, data=raw).fit(), typ=typ)
    table = table.drop(index="Intercept", errors="ignore")
    table.index = ["workers", "engine", "workers:engine", "Residual"]
    return table


def assert_matches(res: TwoWayAnovaResult, ref: pd.DataFrame, rtol: float = RTOL) -> None:
    assert [t.term for t in res.terms] == list(ref.index)
    for t in res.terms:
        row = ref.loc[t.term]
        assert t.sum_sq == pytest.approx(row["sum_sq"], rel=rtol), t.term
        assert t.df == row["df"], t.term
        assert t.mean_sq == pytest.approx(row["sum_sq"] / row["df"], rel=rtol), t.term
        if t.term == "Residual":
            assert math.isnan(t.statistic) and math.isnan(t.p_value)
        else:
            assert t.statistic == pytest.approx(row["F"], rel=rtol), t.term
            assert t.p_value == pytest.approx(row["PR(>F)"], rel=rtol), t.term


@pytest.fixture(params=["balanced", "unbalanced"])
def design(
    request: pytest.FixtureRequest, rng: np.random.Generator, make_db
) -> tuple[Path, Sample]:
    sample = draw(rng, BALANCED if request.param == "balanced" else UNBALANCED)
    return make_db(trials(sample)), sample


@pytest.mark.parametrize("ss_type", [1, 2, 3])
def test_matches_statsmodels_anova_lm(design: tuple[Path, Sample], ss_type: int) -> None:
    path, sample = design
    res = twoway_anova(path, groups=GROUPS, ss_type=ss_type)
    assert isinstance(res, TwoWayAnovaResult)
    assert res.ss_type == ss_type and res.groups == GROUPS and res.metric == "train_s"
    assert res.n == sum(len(v) for v in sample.values())
    assert_matches(res, statsmodels_table(raw_frame(sample), ss_type))


def test_default_is_type_2(design: tuple[Path, Sample]) -> None:
    path, sample = design
    assert_matches(twoway_anova(path, groups=GROUPS), statsmodels_table(raw_frame(sample), 2))


@pytest.mark.parametrize("ss_type", [1, 2, 3])
def test_effect_sizes(design: tuple[Path, Sample], ss_type: int) -> None:
    path, sample = design
    raw = raw_frame(sample)
    res = twoway_anova(path, groups=GROUPS, ss_type=ss_type)
    # partial eta squared: pingouin's np2
    ref = pg.anova(data=raw, dv="y", between=["a", "b"], ss_type=ss_type, detailed=True)
    for t, np2 in zip(res.terms[:3], ref["np2"][:3], strict=True):
        assert t.eta_sq_partial == pytest.approx(np2, rel=RTOL), t.term
    # eta and omega squared: the textbook formulas applied to statsmodels' table by hand
    table = statsmodels_table(raw, ss_type)
    ss_res, df_res = table.loc["Residual", "sum_sq"], table.loc["Residual", "df"]
    ms_res = ss_res / df_res
    ss_total = float(((raw["y"] - raw["y"].mean()) ** 2).sum())
    n = len(raw)
    for t in res.terms[:3]:
        ss, df = table.loc[t.term, "sum_sq"], table.loc[t.term, "df"]
        assert t.eta_sq == pytest.approx(ss / ss_total, rel=RTOL)
        assert t.omega_sq == pytest.approx((ss - df * ms_res) / (ss_total + ms_res), rel=1e-8)
        assert t.omega_sq_partial == pytest.approx(
            (ss - df * ms_res) / (ss + (n - df) * ms_res), rel=1e-8
        )
    residual = res.residual
    assert all(
        math.isnan(getattr(residual, c))
        for c in ("eta_sq", "eta_sq_partial", "omega_sq", "omega_sq_partial")
    )


def test_cells_and_marginals(design: tuple[Path, Sample]) -> None:
    path, sample = design
    raw = raw_frame(sample)
    res = twoway_anova(path, groups=GROUPS)
    assert [(c.level_a, c.level_b) for c in res.cells] == [(str(w), e) for w, e in sorted(sample)]
    for c in res.cells:
        values = sample[(int(c.level_a), c.level_b)]
        assert c.n == len(values)
        assert c.mean == pytest.approx(values.mean(), rel=1e-12)
        if len(values) > 1:
            assert c.sd == pytest.approx(values.std(ddof=1), rel=1e-10)
        else:
            assert math.isnan(c.sd)
    assert [(m.factor, m.level) for m in res.marginals] == [
        ("workers", "1"),
        ("workers", "2"),
        ("engine", "dask"),
        ("engine", "ray"),
        ("engine", "spark"),
    ]
    cell_means = raw.groupby(["a", "b"])["y"].mean()
    for m in res.marginals:
        col, key = ("a", int(m.level)) if m.factor == "workers" else ("b", m.level)
        values = raw.loc[raw[col] == key, "y"]
        assert m.n == len(values)
        assert m.mean == pytest.approx(values.mean(), rel=1e-12)
        assert m.sd == pytest.approx(values.std(ddof=1), rel=1e-10)
        unweighted = cell_means.xs(key, level=col).mean()
        assert m.mean_unweighted == pytest.approx(unweighted, rel=1e-12)


def test_balanced_types_agree(rng: np.random.Generator, make_db) -> None:
    # In a balanced design the three types coincide (statsmodels says the same).
    sample = draw(rng, BALANCED)
    path = make_db(trials(sample))
    results = [twoway_anova(path, groups=GROUPS, ss_type=t) for t in (1, 2, 3)]
    for res in results[1:]:
        for t, t1 in zip(res.terms, results[0].terms, strict=True):
            assert t.sum_sq == pytest.approx(t1.sum_sq, rel=RTOL)


def test_ill_conditioned_large_offset(rng: np.random.Generator, make_db) -> None:
    # y = 1e12 + noise: float64 keeps ~1e-4 of it. statsmodels on the raw rows loses most of
    # that (the intercept column makes X'X ill-conditioned), so the reference is statsmodels on
    # y - 1e12, exact for these values (Sterbenz) and giving the same SS and F (shift-invariant).
    offset = 1e12
    sample = draw(rng, UNBALANCED, offset=offset, scale=0.03)
    path = make_db(trials(sample))
    raw = raw_frame(sample, offset=offset)
    for ss_type in (1, 2, 3):
        res = twoway_anova(path, groups=GROUPS, ss_type=ss_type)
        assert_matches(res, statsmodels_table(raw, ss_type))
    for c in res.cells:
        values = sample[(int(c.level_a), c.level_b)] - offset
        if len(values) > 1:
            assert c.sd == pytest.approx(values.std(ddof=1), rel=1e-9)
        assert c.mean - offset == pytest.approx(values.mean(), abs=2.5e-4)  # 2 ulp of 1e12


def test_warmup_and_failed_trials_excluded(rng: np.random.Generator, make_db) -> None:
    sample = draw(rng, UNBALANCED)
    noise = [
        {"workers": 1, "engine": "dask", "warmup": True, "train_s": 999.0},
        {"workers": 2, "engine": "ray", "warmup": True, "train_s": -999.0},
        {"workers": 2, "engine": "spark", "warmup": False, "status": "failed", "train_s": 555.0},
        {"workers": 1, "engine": "ray", "warmup": False, "status": "timeout", "train_s": 60.0},
        {"workers": None, "engine": "ray", "warmup": False, "train_s": 77.0},
        {"workers": 1, "engine": None, "warmup": False, "train_s": 77.0},
    ]
    path = make_db([*trials(sample), *noise])
    assert_matches(twoway_anova(path, groups=GROUPS), statsmodels_table(raw_frame(sample), 2))
    assert twoway_anova(path, groups=GROUPS, include_warmup=True).n == len(raw_frame(sample)) + 2


def test_where_and_open_connection(rng: np.random.Generator, make_db) -> None:
    sizes = {**UNBALANCED, (4, "dask"): 4, (4, "ray"): 5, (4, "spark"): 6}
    sample = draw(rng, sizes)
    path = make_db(trials(sample))
    kept = {cell: v for cell, v in sample.items() if cell[0] != 4}
    con = duckdb.connect(str(path), read_only=True)
    try:
        res = twoway_anova(con, groups=GROUPS, where=["workers!=4", "workload=knn"])
    finally:
        con.close()
    assert res.where == ("workers!=4", "workload=knn")
    assert_matches(res, statsmodels_table(raw_frame(kept), 2))
    # a hostile value is data, not SQL
    with pytest.raises(AnalysisError, match="no trials match"):
        twoway_anova(path, groups=GROUPS, where=["engine=dask' OR 1=1 --"])


def test_other_metric_and_factor_order(rng: np.random.Generator, make_db) -> None:
    sample = draw(rng, UNBALANCED)
    path = make_db(
        [
            {"workers": w, "engine": e, "warmup": False, "metrics": {"accuracy": float(v)}}
            for (w, e), vs in sample.items()
            for v in vs
        ]
    )
    res = twoway_anova(path, groups=("engine", "workers"), metric="accuracy", ss_type=1)
    # Type I is sequential: with the factors swapped, statsmodels' formula swaps too.
    raw = raw_frame(sample)
    table = sm.stats.anova_lm(smf.ols("y ~ C(b) * C(a)", data=raw).fit(), typ=1)
    table.index = ["engine", "workers", "engine:workers", "Residual"]
    assert_matches(res, table)
    assert res.cells[0].level_a == "dask" and res.cells[0].level_b == "1"


# -- errors ------------------------------------------------------------------------------------
@pytest.fixture
def small_db(rng: np.random.Generator, make_db) -> Path:
    return make_db(trials(draw(rng, UNBALANCED)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"groups": ("workers", "workers")}, r"--group names workers twice"),
        ({"groups": ("workers",)}, r"exactly two --group columns, not 1"),
        ({"groups": ("workers", "engine", "workload")}, r"exactly two --group columns, not 3"),
        ({"groups": ("wrkers", "engine")}, r"--group 'wrkers' is not a column.*did you mean"),
        ({"groups": GROUPS, "metric": "nope"}, r"--metric 'nope' is not a column"),
        ({"groups": GROUPS, "metric": "engine"}, r"--metric 'engine' is a VARCHAR column"),
        ({"groups": GROUPS, "where": ["nope=1"]}, r"--where 'nope' is not a column"),
        ({"groups": GROUPS, "where": ["workers=8"]}, r"no trials match --where workers=8"),
        ({"groups": ("workers", "workload")}, r"--group workload has only one level \(knn\)"),
        (
            {"groups": GROUPS, "where": ["engine=ray"]},
            r"--group engine has only one level \(ray\)",
        ),
        ({"groups": GROUPS, "ss_type": 4}, r"type 4 is not supported; use 1, 2 or 3"),
    ],
)
def test_user_errors_are_one_line(small_db: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(AnalysisError, match=match) as info:
        twoway_anova(small_db, **kwargs)
    assert "\n" not in str(info.value)


def test_empty_cell_is_named(rng: np.random.Generator, make_db) -> None:
    sizes = {cell: k for cell, k in UNBALANCED.items() if cell != (2, "ray")}
    path = make_db(trials(draw(rng, sizes)))
    with pytest.raises(AnalysisError) as info:
        twoway_anova(path, groups=GROUPS)
    message = str(info.value)
    assert "workers=2, engine=ray" in message and "interaction is not estimable" in message
    # workers!=2 would leave one worker count: not suggested
    assert "exclude a level with --where engine!=ray" in message and "\n" not in message
    assert "workers!=2" not in message
    # the suggested fix works
    assert twoway_anova(path, groups=GROUPS, where=["engine!=ray"]).n == sum(
        k for (_, e), k in sizes.items() if e != "ray"
    )


def test_staggered_levels_name_the_where_that_completes_the_design(make_db) -> None:
    """Paper 000's grid (dask at 2, 4, 6 workers, ray at 2, 3, 4): the refusal names the
    ``--where`` that leaves a complete design, and that ``--where`` works."""
    rng = np.random.default_rng(5)
    sizes = {(w, "dask"): 5 for w in (2, 4, 6)} | {(w, "ray"): 5 for w in (2, 3, 4)}
    sample = {cell: rng.normal(3.0, 0.3, k) for cell, k in sizes.items()}
    path = make_db(trials(sample))
    with pytest.raises(AnalysisError) as info:
        twoway_anova(path, groups=GROUPS)
    message = str(info.value)
    assert "workers=3, engine=dask (and 1 more)" in message and "\n" not in message
    assert message.endswith("keep a complete design with --where workers!=3 --where workers!=6")
    res = twoway_anova(path, groups=GROUPS, where=["workers!=3", "workers!=6"])
    kept = {c: v for c, v in sample.items() if c[0] in (2, 4)}
    assert_matches(res, statsmodels_table(raw_frame(kept), 2), rtol=1e-9)


def test_several_empty_cells_are_counted(rng: np.random.Generator, make_db) -> None:
    sizes = {(1, "dask"): 3, (1, "ray"): 3, (2, "spark"): 3}
    path = make_db(trials(draw(rng, sizes)))
    with pytest.raises(AnalysisError, match=r"workers=1, engine=spark \(and 2 more\)"):
        twoway_anova(path, groups=GROUPS)


def test_one_trial_per_cell_leaves_no_residual_df(rng: np.random.Generator, make_db) -> None:
    path = make_db(trials(draw(rng, {cell: 1 for cell in EFFECT})))
    with pytest.raises(AnalysisError, match=r"single trial .* no residual degrees of freedom"):
        twoway_anova(path, groups=GROUPS)


def test_one_trial_cells_are_fine_with_residual_df(rng: np.random.Generator, make_db) -> None:
    sizes = {cell: 1 for cell in EFFECT} | {(1, "dask"): 3}
    sample = draw(rng, sizes)
    res = twoway_anova(make_db(trials(sample)), groups=GROUPS)
    assert res.residual.df == 2
    assert_matches(res, statsmodels_table(raw_frame(sample), 2))


def test_zero_residual_variance(make_db) -> None:
    sample = {cell: np.full(3, mean) for cell, mean in EFFECT.items()}
    with pytest.raises(AnalysisError, match="every workers x engine cell has zero variance"):
        twoway_anova(make_db(trials(sample)), groups=GROUPS)


def test_nan_metric_is_named(rng: np.random.Generator, make_db) -> None:
    sample = draw(rng, UNBALANCED)
    sample[(1, "dask")][0] = np.nan
    with pytest.raises(AnalysisError, match=r"^train_s is NaN or infinite in 1 of"):
        twoway_anova(make_db(trials(sample)), groups=GROUPS)


# -- shapes and rendering ----------------------------------------------------------------------
def test_result_shapes(small_db: Path) -> None:
    res = twoway_anova(small_db, groups=GROUPS)
    d = res.to_dict()
    assert list(d) == [
        "metric",
        "groups",
        "ss_type",
        "n",
        "where",
        "terms",
        "cells",
        "marginals",
        "ss_scale",
        "notes",
    ]
    assert list(d["terms"][0]) == list(TERM_COLUMNS)
    assert list(d["cells"][0]) == list(CELL_COLUMNS)
    assert list(d["marginals"][0]) == list(MARGINAL_COLUMNS)
    frame = res.to_frame()
    assert list(frame.columns) == list(TERM_COLUMNS)
    assert list(frame["term"]) == ["workers", "engine", "workers:engine", "Residual"]
    assert list(res.cell_frame().columns) == list(CELL_COLUMNS) and len(res.cell_frame()) == 6
    assert list(res.marginal_frame().columns) == list(MARGINAL_COLUMNS)
    assert res.term("workers:engine") is res.terms[2]
    text = str(res)
    assert text.startswith("Two-way ANOVA of train_s by workers and engine (Type II")
    for piece in ("workers:engine", "Residual", "unweighted mean", "eta_sq_p", "spark"):
        assert piece in text
    latex = res.to_latex()
    assert latex.count(r"\begin{tabular}") == 2 and r"workers:engine" in latex


def test_latex_escapes_hostile_levels(rng: np.random.Generator, make_db) -> None:
    hostile = {"dask": r"_ % & $ # { } ~ ^ \ \input{x}", "ray": "<script>", "spark": "spark"}
    sample = draw(rng, UNBALANCED)
    path = make_db(trials({(w, hostile[e]): v for (w, e), v in sample.items()}))
    res = twoway_anova(path, groups=GROUPS)
    latex = res.to_latex()
    assert r"\input{x}" not in latex and r"\_ \% \& \$ \# \{ \}" in latex
    assert hostile["dask"] in str(res)


def test_module_import_is_light() -> None:
    code = (
        "import sys, analysis.twoway; "
        "print([m for m in ('numpy', 'scipy', 'pandas', 'statsmodels') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert out.stdout.strip() == "[]"


def balanced_table(raw: pd.DataFrame) -> pd.DataFrame:
    """The textbook sums of squares of a balanced two-way layout (all three types agree), by
    hand with pandas, in the shape of :func:`statsmodels_table`."""
    from scipy import stats

    grand = raw["y"].mean()
    cell = raw.groupby(["a", "b"])["y"].transform("mean")
    mean_a = raw.groupby("a")["y"].transform("mean")
    mean_b = raw.groupby("b")["y"].transform("mean")
    ss = {
        "workers": float(((mean_a - grand) ** 2).sum()),
        "engine": float(((mean_b - grand) ** 2).sum()),
        "workers:engine": float(((cell - mean_a - mean_b + grand) ** 2).sum()),
        "Residual": float(((raw["y"] - cell) ** 2).sum()),
    }
    n_a, n_b = raw["a"].nunique(), raw["b"].nunique()
    df = {
        "workers": n_a - 1.0,
        "engine": n_b - 1.0,
        "workers:engine": (n_a - 1.0) * (n_b - 1.0),
        "Residual": len(raw) - n_a * n_b * 1.0,
    }
    ms_res = ss["Residual"] / df["Residual"]
    f = {k: ss[k] / df[k] / ms_res for k in ss if k != "Residual"}
    p = {k: stats.f.sf(v, df[k], df["Residual"]) for k, v in f.items()}
    return pd.DataFrame({"sum_sq": ss, "df": df, "F": f, "PR(>F)": p})


def test_million_trials_never_fetches_rows() -> None:
    # An in-memory ``observations`` table of 1,000,000 trials (4 x 5 cells of 50,000) at a 1e12
    # offset: the analysis reads only per-cell aggregates (Python allocations stay tiny; its
    # speed is measured in bench/analysis.py, not here) and is still exact.
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE observations AS SELECT 1 + i % 4 AS workers, "
        "['dask', 'ray', 'spark', 'local', 'tensorflow'][1 + (i // 4) % 5] AS engine, "
        "'ok' AS status, false AS warmup, "
        "1e12 + (i % 4) * 0.01 + ((i // 4) % 5) * 0.002 + ((i * 7919) % 1000) * 1e-4 "
        "AS train_s FROM range(1000000) t(i)"
    )
    twoway_anova(con, groups=GROUPS)  # warm up imports outside the measurement
    tracemalloc.start()
    try:
        res = twoway_anova(con, groups=GROUPS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.n == 1_000_000 and len(res.cells) == 20
    assert peak < 1_000_000  # fetching the rows would take far more
    # Reference: the balanced-design formulas on y - 1e12 (exact for these values), the raw
    # rows fetched here. statsmodels on a million rows would take ~10 s; the smaller tests pin
    # the same code against it.
    sql = "SELECT workers AS a, engine AS b, train_s - 1e12 AS y FROM observations"
    reference = balanced_table(con.execute(sql).df())
    assert_matches(res, reference)
    assert_matches(twoway_anova(con, groups=GROUPS, ss_type=3), reference)


# -- issue 12: extreme magnitudes, small cells, tables ----------------------------------------
@pytest.mark.parametrize(
    ("scale", "offset"), [(1e300, 0.0), (-1e300, 0.0), (1e-300, 0.0), (1e250, 0.0), (1.0, 1e9)]
)
@pytest.mark.parametrize("ss_type", [1, 2, 3])
def test_extreme_magnitudes_match_statsmodels_on_the_unit_data(
    make_db, scale: float, offset: float, ss_type: int
) -> None:
    """Values near 1e300 (squares overflow), 1e-300 (squares underflow) or at a 1e9 offset: F, p
    and effect sizes are statsmodels' on ``y / scale - offset``; means and sds are those of the
    raw values; the sums of squares are of ``y / ss_scale`` (a power of two), said in the text."""
    rng = np.random.default_rng(20261206)
    unit = draw(rng, UNBALANCED)
    sample = {cell: (offset + v) * scale for cell, v in unit.items()}
    res = twoway_anova(make_db(trials(sample)), groups=GROUPS, ss_type=ss_type)
    ref_rows = {cell: v / scale - offset for cell, v in sample.items()}
    ref = statsmodels_table(raw_frame(ref_rows), ss_type)
    if scale == 1.0:
        assert res.ss_scale == 1.0
        ss_ref = ref
    else:
        # exact: the power of two at or below the largest magnitude
        big = max(float(np.max(np.abs(v))) for v in sample.values())
        assert res.ss_scale == 2.0 ** math.floor(math.log2(big))
        ss_ref = statsmodels_table(
            raw_frame({c: v / res.ss_scale for c, v in sample.items()}), ss_type
        )
        assert "sum_sq and mean_sq are of train_s / " in str(res)
    for t in res.terms:
        assert math.isfinite(t.sum_sq) and t.sum_sq > 0, t.term
        assert t.sum_sq == pytest.approx(ss_ref.loc[t.term, "sum_sq"], rel=1e-6), t.term
        if t.term != "Residual":
            assert t.statistic == pytest.approx(ref.loc[t.term, "F"], rel=1e-6), t.term
            assert t.p_value == pytest.approx(ref.loc[t.term, "PR(>F)"], rel=1e-6), t.term
            ss_res = ref.loc["Residual", "sum_sq"]
            eta_p = ref.loc[t.term, "sum_sq"] / (ref.loc[t.term, "sum_sq"] + ss_res)
            assert t.eta_sq_partial == pytest.approx(eta_p, rel=1e-6), t.term
    for c in res.cells:
        values = sample[(int(c.level_a), c.level_b)]
        assert c.mean == pytest.approx(values.mean(), rel=1e-12)
        sd = abs(scale) * np.std(values / scale - offset, ddof=1) if len(values) > 1 else math.nan
        assert c.sd == pytest.approx(sd, rel=1e-6, nan_ok=True)  # a one-trial cell: NaN
    for m in res.marginals:
        key = 0 if m.factor == "workers" else 1
        values = np.concatenate([v for cell, v in sample.items() if str(cell[key]) == m.level])
        assert m.mean == pytest.approx(values.mean(), rel=1e-12)
        assert m.sd == pytest.approx(abs(scale) * np.std(values / scale - offset, ddof=1), rel=1e-6)


def test_small_cells_are_noted_and_checks_said_not_run(rng: np.random.Generator, make_db) -> None:
    """Issue 12: a cell below 5 trials draws the small-sample note (as one-way ANOVA and the
    t-test do); the assumptions the two-way ANOVA does not test are 'not checked', never passed."""
    res = twoway_anova(make_db(trials(draw(rng, UNBALANCED))), groups=GROUPS)
    small = [f"workers={w}, engine={e} ({k})" for (w, e), k in UNBALANCED.items() if k < 5]
    assert small, "the design must have small cells"
    few = next(n for n in res.notes if n.startswith("few trials"))
    for label in small:
        assert label in few
    assert "workers=1, engine=dask (5)" not in few
    assert any("not checked" in n for n in res.notes)
    assert "passed" not in str(res)
    text = str(res)
    assert "note: few trials: fewer than 5 in" in text
    assert max(len(line) for line in text.splitlines()) <= 120
    assert res.to_dict()["notes"] == list(res.notes)
    big = twoway_anova(make_db(trials(draw(rng, BALANCED))), groups=GROUPS)
    assert not any(n.startswith("few trials") for n in big.notes)


def test_tables_carry_every_statistic_of_the_text(small_db: Path) -> None:
    res = twoway_anova(small_db, groups=GROUPS, ss_type=3)
    tables = res.tables()
    assert [t.name for t in tables] == ["terms", "cells", "marginals", "notes"]
    terms, cells, marginals, notes = (t.frame for t in tables)
    # the text's ANOVA table: source, sum_sq, df, mean_sq, F, p, eta_sq_p, omega_sq_p
    for column in ("term", "sum_sq", "df", "mean_sq", "statistic", "p_value"):
        assert column in terms.columns
    for column in ("eta_sq_partial", "omega_sq_partial", "ss_type", "n", "ss_scale"):
        assert column in terms.columns
    assert list(terms["term"]) == [t.term for t in res.terms]
    assert terms["ss_type"].iloc[0] == 3 and terms["n"].iloc[0] == res.n
    assert list(notes["note"]) == list(res.notes) and len(res.notes) >= 2
    assert list(cells.columns) == list(CELL_COLUMNS)
    assert list(marginals.columns) == list(MARGINAL_COLUMNS)
    assert len(cells) == len(res.cells) and len(marginals) == len(res.marginals)
