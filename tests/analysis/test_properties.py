"""Property tests over the analysis functions (issue 15): whatever the data, a correct result or
a clear :class:`AnalysisError` (one line), never another exception and never NaN where a number
is reported.

Hypothesis draws small data sets with NaN, +-inf, empty and constant groups, huge (1e300) and tiny
(1e-300) magnitudes and unicode level names, writes them into an in-memory DuckDB with the
``observations`` columns the store's view has, and runs ttest, anova, regress, scaling, summary,
compare and cost on it. Where a result comes back its numbers are checked against scipy / numpy
on the same values, when the reference itself is finite and well conditioned.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis.errors import AnalysisError

SETTINGS = settings(
    # TRIALKIT_PROPERTY_EXAMPLES=500 searches harder (the default keeps the file near 30 s)
    max_examples=int(os.environ.get("TRIALKIT_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=os.environ.get("TRIALKIT_PROPERTY_EXAMPLES") is None,  # CI: the same ones
)
SPECIAL = [math.nan, math.inf, -math.inf]
#: Magnitudes the values are drawn at: ordinary, huge, tiny, offset-like and negative.
SCALES = [1.0, 1e300, 1e-300, 1e12, -1e6]

# ---------------------------------------------------------------------------------------------
# data


@st.composite
def samples(
    draw: st.DrawFn, *, min_size: int = 0, max_size: int = 8, scale: float | None = None
) -> list[float]:
    """Values at one drawn magnitude (or ``scale``); sometimes constant, sometimes with a NaN or
    infinity."""
    scale = draw(st.sampled_from(SCALES)) if scale is None else scale
    base = draw(
        st.lists(
            st.floats(-1000, 1000, allow_nan=False, allow_infinity=False),
            min_size=min_size,
            max_size=max_size,
        )
    )
    values = [b * scale for b in base]
    if values and draw(st.integers(0, 4)) == 0:
        values = [values[0]] * len(values)
    if values and draw(st.integers(0, 5)) == 0:
        values[draw(st.integers(0, len(values) - 1))] = draw(st.sampled_from(SPECIAL))
    return values


#: Level names: any unicode text (quotes, backslashes, control characters, right-to-left marks).
labels = st.text(min_size=1, max_size=6)


def connection(groups: dict[str, list[float]], *, x: dict[str, float] | None = None) -> Any:
    """An in-memory DuckDB with an ``observations`` table (the store view's columns) holding one
    ok trial per value: ``engine`` is the group, ``workers`` its ``x`` (default 1)."""
    import duckdb

    from runner.store import RUN_VIEW_COLUMNS, TRIAL_COLUMNS

    con = duckdb.connect()
    columns = {**TRIAL_COLUMNS, **RUN_VIEW_COLUMNS}
    con.execute(
        "CREATE TABLE observations (" + ", ".join(f'"{c}" {t}' for c, t in columns.items()) + ")"
    )
    con.execute("CREATE TABLE runs (run_id VARCHAR, env JSON)")
    con.execute("INSERT INTO runs VALUES ('r', ?)", [json.dumps({"hostname": "h"})])
    rows = []
    trial = 0
    for group, values in groups.items():
        for rep, value in enumerate(values):
            trial += 1
            workers = int((x or {}).get(group, 1))
            rows.append(
                (
                    trial,
                    "r",
                    f"c{group}",
                    "x",
                    group,
                    "knn",
                    "digits",
                    workers,
                    1,
                    1.0,
                    rep,
                    False,
                    "ok",
                    value,
                    "measured",
                )  # fmt: skip
            )
    if not rows:  # an empty database: the table alone
        return con
    con.executemany(
        "INSERT INTO observations (trial_id, run_id, config_id, experiment, engine, workload, "
        "dataset, workers, threads_per_worker, data_fraction, repetition, warmup, status, "
        "train_s, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return con


def run(func: Any, *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)``, or None when it raised a clear AnalysisError (a sentence; a
    level name may hold a newline, which the CLI's one error line folds like any whitespace)."""
    try:
        return func(*args, **kwargs)
    except AnalysisError as exc:
        assert " ".join(str(exc).split()), "an empty error"
        return None


def finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def conditioned(*groups: Sequence[float]) -> bool:
    """Values a double-precision reference computes well: finite, moderate magnitude, spread
    not lost to cancellation."""
    flat = [v for g in groups for v in g]
    if not flat or not finite(flat):
        return False
    top = max(abs(v) for v in flat)
    if top == 0 or not 1e-100 < top < 1e100:
        return False
    return all(len(g) < 2 or (max(g) - min(g)) > 1e-6 * top for g in groups)


def close(ours: float, ref: float, rel: float = 1e-6) -> bool:
    return math.isclose(ours, ref, rel_tol=rel, abs_tol=1e-9 * max(1.0, abs(ref)))


def no_nan(frame: Any, columns: Sequence[str]) -> None:
    present = [c for c in columns if c in frame.columns]
    assert present, (columns, list(frame.columns))
    assert not frame[present].isna().any().any(), frame[present]


# ---------------------------------------------------------------------------------------------
# properties


@SETTINGS
@given(a=samples(), b=samples(), names=st.lists(labels, min_size=2, max_size=2, unique=True))
def test_ttest(a: list[float], b: list[float], names: list[str]) -> None:
    from analysis.ttest import ttest

    con = connection({names[0]: a, names[1]: b})
    res = run(ttest, con, group="engine", a=names[0], b=names[1], metric="train_s", n_boot=0)
    if res is None:
        return
    assert finite(a) and finite(b), "non-finite values must be refused"
    assert not math.isnan(res.statistic) and 0 <= res.p_value <= 1, res
    if math.isinf(res.statistic):  # t beyond a double (a standard error near 1e-315): p is 0
        assert res.p_value == 0, res
        return
    assert math.isfinite(res.mean_diff)
    if conditioned(a, b):
        ref = stats.ttest_ind(a, b, equal_var=False)
        if math.isfinite(ref.statistic):
            assert close(res.statistic, float(ref.statistic)), (res.statistic, ref)
            assert close(res.p_value, float(ref.pvalue), 1e-5), (res.p_value, ref)


@SETTINGS
@given(groups=st.dictionaries(labels, samples(), min_size=2, max_size=4))
@example(groups={"0": [1.0, 1.0], "00": [0.0, 8.057834742879164e-158]})  # F beyond a double
def test_anova(groups: dict[str, list[float]]) -> None:
    from analysis.anova import anova

    con = connection(groups)
    res = run(anova, con, group="engine", metric="train_s")
    if res is None:
        return
    values = list(groups.values())
    assert all(finite(v) for v in values), "non-finite values must be refused"
    f_value, p_value = res.statistic, res.p_value
    assert not math.isnan(f_value) and 0 <= p_value <= 1, res
    if math.isinf(f_value):  # F beyond a double (a within-level variance near 1e-315): p is 0
        assert p_value == 0, res
        return
    used = [v for v in values if v]
    if conditioned(*used) and all(len(v) >= 2 for v in used):
        ref = stats.f_oneway(*used)
        if math.isfinite(ref.statistic):
            assert close(f_value, float(ref.statistic)), (f_value, ref)


@SETTINGS
@given(
    xs=st.lists(st.integers(1, 64), min_size=0, max_size=10),
    ys=samples(min_size=10, max_size=10),
)
@example(xs=[1, 2], ys=[0.0, 1e-316, *[0.0] * 8])  # a subnormal scale overflowed 2^-exp
def test_regress(xs: list[int], ys: list[float]) -> None:
    from analysis.regress import regress

    ys = ys[: len(xs)]
    groups = {f"g{i}": [y] for i, y in enumerate(ys)}
    con = connection(groups, x={f"g{i}": x for i, x in enumerate(xs)})
    res = run(regress, con, y="train_s", x=["workers"])
    if res is None:
        return
    assert finite(ys), "non-finite values must be refused"
    frame = res.to_frame()
    no_nan(frame, ["estimate"])
    if conditioned(ys) and len(set(xs)) > 1:
        ref = stats.linregress(xs, ys)
        fit = res.fits[0]
        slope = fit.coefficients[1].estimate
        if math.isfinite(ref.slope):
            assert close(slope, float(ref.slope), 1e-6), (slope, ref)


@SETTINGS
@given(
    times=st.dictionaries(st.sampled_from([1, 2, 4, 8]), samples(min_size=1), min_size=1),
    name=labels,
)
def test_scaling(times: dict[int, list[float]], name: str) -> None:
    from analysis.scaling import scaling

    groups = {f"{name}{w}": v for w, v in times.items()}
    con = connection(groups, x={f"{name}{w}": w for w in times})
    con.execute("UPDATE observations SET engine = ?", [name])
    res = run(scaling, con, x="workers", metric="train_s", by=["engine"], n_boot=0)
    if res is None:
        return
    assert all(finite(v) for v in times.values()), "non-finite values must be refused"
    frame = res.to_frame()
    no_nan(frame, ["speedup"])
    base = float(np.median(times[min(times)]))
    for w, values in times.items():
        ref = base / float(np.median(values))
        row = frame[frame["workers"] == w]
        if math.isfinite(ref) and len(row):
            assert close(float(row["speedup"].iloc[0]), ref, 1e-9), (w, row, ref)


@SETTINGS
@given(groups=st.dictionaries(labels, samples(), min_size=1, max_size=3))
@example(groups={"00": [1e300], "0": [0.0, 1e-300]})  # one scale for both gave a NaN mean
@example(groups={"0": [1.0, 1.657120488341629e-269]})  # the geometric interval overflowed
def test_summary(groups: dict[str, list[float]]) -> None:
    from analysis.summary import summarize

    con = connection(groups)
    res = run(summarize, con, by=["engine"], metrics=["train_s"], n_boot=0)
    if res is None:
        return
    frame = res.to_frame()
    for name, values in groups.items():
        row = frame[frame["engine"] == name]
        if not values:
            assert row.empty or int(row["n"].iloc[0]) == 0
            continue
        if not finite(values):
            continue  # refused or reported apart: checked by tests/analysis/test_nonfinite.py
        assert int(row["n"].iloc[0]) == len(values)
        mean = float(row["train_s_mean"].iloc[0])
        median = float(row["train_s_median"].iloc[0])
        assert math.isfinite(mean) and math.isfinite(median), row
        assert close(median, float(np.median(values)), 1e-12), (median, values)
        ref = math.fsum(values) / len(values)
        assert close(mean, ref, 1e-9), (mean, ref)


@SETTINGS
@given(
    sides=st.sampled_from(SCALES).flatmap(
        # one magnitude for both sides: 1e300 against 1e-300 is test_compare_of_extreme_ratios
        lambda scale: st.tuples(samples(min_size=1, scale=scale), samples(min_size=1, scale=scale))
    )
)
def test_compare(sides: tuple[list[float], list[float]]) -> None:
    base, new = sides
    from analysis.compare import compare

    con = connection({"old": base, "new": new})
    res = run(compare, con, base=["engine=old"], new=["engine=new"], metric="train_s")
    if res is None:
        return
    assert finite(base) and finite(new), "non-finite values must be refused"
    for row in res.rows:
        assert math.isfinite(row.ratio) and 0 <= row.p_value <= 1, row
        # the ratio is the Hodges-Lehmann estimate: the median of every new / base ratio
        pairs = [n / b for n in new for b in base] if min(base) > 0 and min(new) > 0 else []
        if pairs and len(pairs) % 2 and conditioned(base, new):
            assert close(row.ratio, float(np.median(pairs)), 1e-9), (row.ratio, pairs)


@SETTINGS
@given(groups=st.dictionaries(st.sampled_from([1, 2, 4]), samples(min_size=1), min_size=1))
def test_cost(groups: dict[int, list[float]]) -> None:
    from analysis.cost import cost

    con = connection({f"w{w}": v for w, v in groups.items()}, x={f"w{w}": w for w in groups})
    con.execute("UPDATE observations SET engine = 'dask'")
    res = run(cost, con, metric="train_s", usd_per_core_hour=1.0)
    if res is None:
        return
    assert all(finite(v) for v in groups.values()), "non-finite values must be refused"
    frame = res.to_frame()
    no_nan(frame, ["median_cost_usd"])
    for w, values in groups.items():
        median = float(np.median(values))
        row = frame[frame["workers"] == w] if "workers" in frame.columns else frame.iloc[:0]
        if len(row) and median > 0 and math.isfinite(median * w / 3600):
            got = float(row["median_cost_usd"].iloc[0])
            assert close(got, median * w / 3600, 1e-9), (row, median)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_each_function_refuses_a_non_finite_value(value: float) -> None:
    """The same refusal from every function for one bad value among good ones (no NaN table)."""
    from analysis.anova import anova
    from analysis.regress import regress
    from analysis.scaling import scaling
    from analysis.ttest import ttest

    good = [1.0, 2.0, 3.0, 4.0]
    con = connection({"a": [*good, value], "b": [2.0, 3.0, 4.0, 5.0]}, x={"a": 1, "b": 2})
    calls = [
        lambda: ttest(con, group="engine", a="a", b="b", metric="train_s", n_boot=0),
        lambda: anova(con, group="engine", metric="train_s"),
        lambda: regress(con, y="train_s", x=["workers"]),
        lambda: scaling(con, x="workers", metric="train_s", by=[], n_boot=0),
    ]
    for call in calls:
        with pytest.raises(AnalysisError) as info:
            call()
        assert "\n" not in str(info.value).strip()


def test_summary_of_mixed_magnitudes() -> None:
    """1e300 beside 1e-300 (one scale for both made the first NaN; fixed in e42a9dc)."""
    from analysis.summary import summarize

    con = connection({"a": [1e300], "b": [1e-300, 2e-300]})
    frame = summarize(con, by=["engine"], metrics=["train_s"], n_boot=0).to_frame()
    assert frame.set_index("engine")["train_s_mean"].to_dict() == {"a": 1e300, "b": 1.5e-300}


def test_summary_geometric_interval_of_a_wide_range() -> None:
    """1 and 1.7e-269: the geometric interval's upper end overflowed (fixed in e42a9dc)."""
    from analysis.summary import summarize

    con = connection({"a": [1.0, 1.657120488341629e-269]})
    frame = summarize(con, by=["engine"], metrics=["train_s"], n_boot=0).to_frame()
    assert frame["train_s_mean"].iloc[0] == 0.5


@pytest.mark.parametrize(
    ("base", "new", "ratio", "shown"),
    [(1e-300, 1e300, math.inf, "ratio 1e+600"), (1e300, 1e-300, 0.0, "ratio 1e-600")],
)
def test_compare_of_extreme_ratios(base: float, new: float, ratio: float, shown: str) -> None:
    """A ratio beyond a double is inf or 0 with its value in the note (it was an OverflowError,
    or log(0) in the geometric mean; fixed in 43593e3)."""
    from analysis.compare import compare

    con = connection({"old": [base, base * 1.5], "new": [new, new * 1.5]})
    res = compare(con, base=["engine=old"], new=["engine=new"], metric="train_s")
    assert [r.ratio for r in res.rows] == [ratio]
    assert shown in res.rows[0].note


@SETTINGS
@given(
    n=st.integers(1, 4),
    data=st.data(),
    names=st.lists(labels.filter(lambda t: "\x00" not in t), min_size=2, max_size=2, unique=True),
)
def test_twoway(n: int, data: st.DataObject, names: list[str]) -> None:
    """A balanced 2 x 2 design: the sums of squares of the textbook formulas (types I, II and III
    agree when every cell has the same n)."""
    from analysis.twoway import twoway_anova

    scale = data.draw(st.sampled_from(SCALES))
    cells = {
        (a, w): data.draw(samples(min_size=n, max_size=n, scale=scale))
        for a in names
        for w in (1, 2)
    }
    con = connection({f"{a}\x00{w}": v for (a, w), v in cells.items()},
                     x={f"{a}\x00{w}": w for (a, w) in cells})  # fmt: skip
    con.execute("UPDATE observations SET engine = split_part(engine, chr(0), 1)")
    res = run(twoway_anova, con, groups=("engine", "workers"), metric="train_s")
    if res is None:
        return
    values = [v for vs in cells.values() for v in vs]
    assert finite(values), "non-finite values must be refused"
    for term in res.terms:
        assert math.isfinite(term.sum_sq) and term.sum_sq >= 0, term
    if not conditioned(*cells.values()) or n < 2:
        return
    y = np.array([cells[(a, w)] for a in names for w in (1, 2)]).reshape(2, 2, n)
    grand = y.mean()
    ss_a = 2 * n * float(((y.mean(axis=(1, 2)) - grand) ** 2).sum())
    ss_b = 2 * n * float(((y.mean(axis=(0, 2)) - grand) ** 2).sum())
    cell = y.mean(axis=2)
    ss_ab = n * float(((cell - grand) ** 2).sum()) - ss_a - ss_b
    ss_e = float(((y - cell[..., None]) ** 2).sum())
    tss = ss_a + ss_b + ss_ab + ss_e
    got = [t.sum_sq for t in res.terms]
    for ours, ref in zip(got, [ss_a, ss_b, ss_ab, ss_e], strict=True):
        assert math.isclose(ours, ref, rel_tol=1e-6, abs_tol=1e-9 * tss), (got, ref)
