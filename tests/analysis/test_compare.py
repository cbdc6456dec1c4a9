"""analysis.compare / `analyze compare`: benchstat's question, pinned against scipy and numpy on
the raw values of each configuration."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from analysis.cli import app
from analysis.compare import compare, hodges_lehmann, u_null_cdf
from analysis.errors import AnalysisError
from runner.store import TrialRecord, open_store

runner = CliRunner()
ENV = {"hostname": "a", "cpu_model": "Xeon", "packages": {"numpy": "2.4.6"}}


def add_run(path: Path, trials: list[dict[str, Any]], env: dict[str, Any] | None = None) -> str:
    store = open_store(path)
    try:
        run = store.begin_run(source="measured", argv=["test"], env=env or ENV)
        store.append_trials([TrialRecord(run_id=run, status="ok", values=dict(t)) for t in trials])
        store.finish_run(run)
    finally:
        store.close()
    return run


def configs(seed: int, scale: dict[tuple[str, int], float], n: int = 8) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for (workload, workers), factor in scale.items():
        base = 0.002 if workload == "knn" else 2.0
        params = {"k": 5} if workload == "knn" else {"hidden": "[100]"}
        for i in range(n):
            out.append({"engine": "dask", "workload": workload, "dataset": "digits",
                        "workers": workers, "threads_per_worker": 1, "warmup": False,
                        "repetition": i, "params": params,
                        "train_s": float(base * factor * rng.lognormal(0, 0.05))})  # fmt: skip
    return out


def values(trials: list[dict[str, Any]], **fixed: Any) -> np.ndarray:
    return np.array([t["train_s"] for t in trials if all(t[k] == v for k, v in fixed.items())])


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, str, str, list, list]:
    path = tmp_path / "c.duckdb"
    base = configs(1, {("knn", 1): 1.0, ("knn", 2): 1.0, ("mlp", 1): 1.0, ("mlp", 2): 1.0})
    # new: mlp at 2 workers 20% slower, knn at 1 worker 30% faster, mlp 1 unchanged; knn at 2
    # workers not measured, mlp at 4 workers only new
    new = configs(2, {("knn", 1): 0.7, ("mlp", 1): 1.0, ("mlp", 2): 1.2, ("mlp", 4): 1.0})
    return path, add_run(path, base), add_run(path, new), base, new


def test_compare_two_runs_per_configuration(two_runs):
    path, r1, r2, base, new = two_runs
    res = compare(path, base=r1, new=r2)
    rows = {(r.config["workload"], r.config["workers"]): r for r in res.rows}
    assert set(rows) == {("knn", "1"), ("mlp", "1"), ("mlp", "2")}
    assert res.only_base == ("workload=knn, workers=2",)
    assert res.only_new == ("workload=mlp, workers=4",)
    for (workload, workers), row in rows.items():
        xb = values(base, workload=workload, workers=int(workers))
        xn = values(new, workload=workload, workers=int(workers))
        assert row.median_base == pytest.approx(np.median(xb), rel=1e-12)
        assert row.median_new == pytest.approx(np.median(xn), rel=1e-12)
        assert row.p_value == pytest.approx(stats.mannwhitneyu(xn, xb).pvalue, rel=1e-9)
        diffs = np.subtract.outer(np.log(xn), np.log(xb)).ravel()
        assert row.ratio == pytest.approx(math.exp(np.median(diffs)), rel=1e-12)
        assert row.ratio_ci_low <= row.ratio <= row.ratio_ci_high
    assert rows[("knn", "1")].verdict == "faster" and rows[("mlp", "2")].verdict == "slower"
    assert rows[("mlp", "1")].verdict in ("~", "within noise")
    ratios = [r.ratio for r in res.rows]
    assert res.geomean_ratio == pytest.approx(math.exp(np.mean(np.log(ratios))), rel=1e-12)
    assert "same in every configuration: source=measured, dataset=digits" in str(res)


def test_welch_on_log_values_against_scipy(two_runs):
    path, r1, r2, base, new = two_runs
    res = compare(path, base=r1, new=r2, test="welch", confidence_level=0.9)
    row = next(r for r in res.rows if r.config == {"workload": "mlp", "workers": "2"})
    lb, ln = (
        np.log(values(base, workload="mlp", workers=2)),
        np.log(values(new, workload="mlp", workers=2)),
    )
    ref = stats.ttest_ind(ln, lb, equal_var=False)
    assert row.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.9)
    assert (row.ratio_ci_low, row.ratio_ci_high) == pytest.approx(
        (math.exp(ci.low), math.exp(ci.high)), rel=1e-9
    )
    assert row.ratio == pytest.approx(math.exp(ln.mean() - lb.mean()), rel=1e-12)


def test_welch_path_does_not_import_scipy_stats(two_runs):
    """--test welch takes t's quantile and tail from scipy.special (analysis.intervals), with
    the values of the test above; scipy.stats (about 0.3 s) stays unimported."""
    path, r1, r2, _, _ = two_runs
    code = (
        "import sys; from analysis.compare import compare; "
        f"res = compare({str(path)!r}, base={r1!r}, new={r2!r}, test='welch'); "
        "assert res.rows and all(r.method == 't' for r in res.rows); "
        "print(sorted(m for m in sys.modules if m.startswith('scipy.stats')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


EXTREME = {  # per workload: base and new values, ratios far beyond a double (1.8e308)
    "knn": ([7e-301, 8e-301, 9.5e-301, 6e-301, 1e-300], [3e300, 2.5e300, 4e300, 3.5e300, 2e300]),
    "mlp": ([2.0, 2.2, 2.1, 1.9, 2.3], [1e-99, 1.2e-99, 1.1e-99, 9e-100, 1.3e-99]),
}


def _ratio_reference(xb: list[float], xn: list[float], test: str) -> Decimal:
    """new / base at 50 digits from the doubles themselves: the median of the pairwise ratios
    (Hodges-Lehmann, an odd count) or the ratio of the geometric means (Welch)."""
    b, n = [Decimal(x) for x in xb], [Decimal(x) for x in xn]
    with localcontext() as ctx:
        ctx.prec = 50
        if test == "mwu":
            pairs = sorted(y / x for y in n for x in b)
            return +pairs[len(pairs) // 2]
        log_mean = sum(y.ln() for y in n) / len(n) - sum(x.ln() for x in b) / len(b)
        return log_mean.exp()


def _noted(note: str) -> Decimal:
    match = re.search(r"ratio (\S+): beyond a double", note)
    assert match, note
    return Decimal(match.group(1))


@pytest.mark.parametrize("test", ["mwu", "welch"])
@pytest.mark.parametrize("flip", [False, True])
def test_ratios_beyond_a_double_are_kept_in_logs(tmp_path, test, flip):
    """1e300 against 1e-300: the row's ratio is inf (or 0), its value in the note from its
    logarithm, its verdict as any other; the geometric mean, here within a double, comes from
    the rows' logarithms (the log of an inf ratio was an OverflowError, of a 0 one log(0))."""
    path = tmp_path / "x.duckdb"
    sides = {w: (xn, xb) if flip else (xb, xn) for w, (xb, xn) in EXTREME.items()}
    runs = []
    for s in (0, 1):
        trials = [{"engine": "dask", "workload": w, "repetition": i, "train_s": v}
                  for w, pair in sides.items() for i, v in enumerate(pair[s])]  # fmt: skip
        runs.append(add_run(path, trials))
    res = compare(path, base=runs[0], new=runs[1], test=test)
    rows = {r.config["workload"]: r for r in res.rows}
    refs = {w: _ratio_reference(xb, xn, test) for w, (xb, xn) in sides.items()}
    knn = rows["knn"]
    assert knn.ratio == (0.0 if flip else math.inf)
    assert abs(_noted(knn.note) / refs["knn"] - 1) < Decimal("5e-4")
    assert knn.verdict == ("faster" if flip else "slower")
    assert rows["mlp"].ratio == pytest.approx(float(refs["mlp"]), rel=1e-12)
    assert "beyond a double" not in rows["mlp"].note
    geomean = (refs["knn"] * refs["mlp"]).sqrt()
    assert 1e-308 < geomean < 1e308
    assert res.geomean_ratio == pytest.approx(float(geomean), rel=1e-9)
    assert f"e{refs['knn'].adjusted():+d}: beyond a double" in str(res)
    assert math.isinf(res.to_frame()["ratio"].iloc[0]) != flip


def test_a_geometric_mean_beyond_a_double_is_noted(tmp_path):
    path = tmp_path / "g.duckdb"
    xb, xn = EXTREME["knn"]
    runs = [add_run(path, [{"engine": "dask", "repetition": i, "train_s": v}
                           for i, v in enumerate(side)]) for side in (xb, xn)]  # fmt: skip
    res = compare(path, base=runs[0], new=runs[1])
    ref = _ratio_reference(xb, xn, "mwu")
    assert res.geomean_ratio == math.inf
    (note,) = [n for n in res.notes if n.startswith("the geometric mean of the ratios is ")]
    noted = Decimal(note.split(" is ")[1].split(":")[0])
    assert abs(noted / ref - 1) < Decimal("5e-4") and note.endswith("shown as inf")


def test_u_null_distribution_matches_scipys_exact_test():
    rng = np.random.default_rng(0)
    for m, n in ((3, 5), (8, 8), (4, 30)):
        cdf = u_null_cdf(m, n)
        x, y = rng.normal(size=m), rng.normal(0.5, size=n)
        u = stats.mannwhitneyu(x, y, method="exact")
        k = int(u.statistic)
        p = min(1.0, 2 * min(cdf[k], 1 - (cdf[k - 1] if k else 0.0)))
        assert p == pytest.approx(u.pvalue, rel=1e-12)


def test_hodges_lehmann_interval_agrees_with_the_exact_test():
    """The interval excludes a shift of 0 exactly when the exact U test rejects at 5%."""
    rng = np.random.default_rng(4)
    agree = 0
    for _ in range(200):
        x, y = rng.normal(size=6), rng.normal(rng.uniform(0, 2), size=7)
        _, low, high = hodges_lehmann(x, y, exact=True, confidence_level=0.95)
        rejects = stats.mannwhitneyu(y, x, method="exact").pvalue < 0.05
        agree += rejects == (not low <= 0 <= high)
    assert agree == 200


def test_cli_formats_and_fail_on_regression(two_runs):
    path, r1, r2, _, _ = two_runs
    out = runner.invoke(app, ["compare", r1, r2, "--db", str(path)])
    assert out.exit_code == 0 and "geomean" in out.stdout and "only in new" in out.stdout
    failing = runner.invoke(app, ["compare", r1, r2, "--fail-on-regression", "5%", "--db",
                                  str(path)])  # fmt: skip
    assert failing.exit_code == 1 and "workload=mlp, workers=2" in failing.output
    lenient = runner.invoke(app, ["compare", r1, r2, "--fail-on-regression", "50%", "--db",
                                  str(path)])  # fmt: skip
    assert lenient.exit_code == 0
    data = json.loads(
        runner.invoke(app, ["compare", r1, r2, "--db", str(path), "--format", "json"]).stdout
    )
    assert data["geomean"]["ratio"] == pytest.approx(data["geomean_ratio"])
    csv = runner.invoke(app, ["compare", r1, r2, "--db", str(path), "--format", "csv"]).stdout
    frame = pd.read_csv(io.StringIO(csv))
    assert list(frame["config"])[-1] == "geomean" and "p_value" in frame.columns
    md = runner.invoke(app, ["compare", r1, r2, "--db", str(path), "--format", "markdown"])
    assert "| configuration | base | new |" in md.stdout
    tex = runner.invoke(app, ["compare", r1, r2, "--db", str(path), "--format", "latex"])
    assert r"\begin{tabular}" in tex.stdout and r"\end{tabular}" in tex.stdout


def test_compare_by_where_and_threshold(two_runs):
    path, r1, r2, base, new = two_runs
    res = compare(path, base=["workers=1"], new=["workers=2"], where=[f"run_id={r1}"],
                  threshold=0.5)  # fmt: skip
    assert {r.config["workload"] for r in res.rows} == {"knn", "mlp"}
    assert all(r.verdict in ("~", "within noise") for r in res.rows)


def test_user_errors(two_runs, tmp_path):
    path, r1, r2, _, _ = two_runs
    with pytest.raises(AnalysisError, match="both base and new"):
        compare(path, base=["workers=1"], new=["workload=knn"])
    proc = runner.invoke(app, ["compare", r1, "--db", str(path)])
    assert proc.exit_code == 2 and "give the new trials once" in proc.output
    with pytest.raises(AnalysisError, match="--test"):
        compare(path, base=r1, new=r2, test="ks")
    other = add_run(path, configs(5, {("knn", 1): 1.0}), env={**ENV, "hostname": "b"})
    with pytest.raises(AnalysisError, match=r"new trials come from different environments"):
        compare(path, base=r1, new=["workload=knn", "workers=1", f"run_id!={r1}"])
    res = compare(path, base=r1, new=other)
    assert any("base and new differ in hostname (a, b)" in n for n in res.notes)


def test_tables_carry_every_statistic_of_the_text(two_runs):
    """configurations (every row of the text, with ci_method), one_side, settings and notes;
    ratios pinned against numpy's Hodges-Lehmann on the raw values; text within 120 columns."""
    path, r1, r2, base, new = two_runs
    res = compare(path, base=r1, new=r2, threshold=0.02)
    names = [t.name for t in res.tables()]
    assert names[:3] == ["configurations", "one_side", "settings"]
    main, one_side, settings = (t.frame for t in res.tables()[:3])
    assert {"config", "n_base", "n_new", "median_base", "median_new", "ratio", "ratio_ci_low",
            "ratio_ci_high", "p_value", "method", "ci_method", "verdict",
            "note"} <= set(main.columns)  # fmt: skip
    row = main[main["config"] == "workload=mlp, workers=2"].iloc[0]
    xb, xn = values(base, workload="mlp", workers=2), values(new, workload="mlp", workers=2)
    diffs = np.subtract.outer(np.log(xn), np.log(xb)).ravel()
    assert row["ratio"] == pytest.approx(math.exp(np.median(diffs)), rel=1e-12)
    assert row["p_value"] == pytest.approx(stats.mannwhitneyu(xn, xb).pvalue, rel=1e-9)
    assert row["ci_method"] == "hodges-lehmann" and row["verdict"] == "slower"
    assert main["config"].iloc[-1] == "geomean"
    assert sorted(zip(one_side["side"], one_side["config"], strict=True)) == [
        ("base", "workload=knn, workers=2"), ("new", "workload=mlp, workers=4")]  # fmt: skip
    s = settings.iloc[0]
    assert (s["metric"], s["test"], s["better"], s["alpha"], s["threshold"]) == (
        "train_s", "mwu", "lower", 0.05, 0.02)  # fmt: skip
    assert s["same"] == "source=measured; dataset=digits; engine=dask; threads_per_worker=1"
    assert all(len(line) <= 120 for line in str(res).splitlines())


def test_no_match_names_a_factor_recorded_on_one_side_only(tmp_path):
    """A published-like side without threads_per_worker never matches a measured one: the
    refusal is one line, lists a few configurations and names the factor."""
    path = tmp_path / "n.duckdb"
    measured = configs(1, {("knn", w): 1.0 for w in (1, 2, 4, 6, 8)})
    published = [
        {**t, "threads_per_worker": None}
        for t in configs(2, {("knn", w): 1.0 for w in (1, 2, 4, 6, 8)})
    ]
    r1, r2 = add_run(path, published), add_run(path, measured)
    with pytest.raises(AnalysisError) as info:
        compare(path, base=r1, new=r2)
    text = str(info.value)
    assert "\n" not in text and "(5 in all)" in text
    assert "threads_per_worker recorded on one side only" in text


@pytest.mark.parametrize("held", [30, 20])
def test_large_store_batches_medians_and_ranks_by_configuration(tmp_path, monkeypatch, held):
    """In a store of more than HELD_MAX trials the medians and the values to rank come from one
    scan per batch of configurations (at most HELD_VALUES values each; a configuration of more
    is ranked by DuckDB's window instead); the results are those of the one scan and scipy's /
    NumPy's on the raw values (12 trials a side: the asymptotic U test from the rank sums, with
    ties)."""
    import importlib

    import analysis.query as query
    from analysis import data

    module = importlib.import_module("analysis.compare")  # analysis.compare is the function
    ranks_module = importlib.import_module("analysis.ranks")

    path = tmp_path / "c.duckdb"
    scale = {("knn", 1): 1.0, ("knn", 2): 1.0, ("mlp", 1): 1.0, ("mlp", 2): 1.0}
    base = configs(1, scale, n=12)
    new = configs(2, {k: 1.1 if k[1] == 2 else 1.0 for k in scale}, n=12)
    for t in new[::5]:
        t["train_s"] = base[0]["train_s"]  # ties across the sides
    r1, r2 = add_run(path, base), add_run(path, new)
    whole = compare(path, base=r1, new=r2)
    seen: list[str] = []
    original = data.execute

    def spy(con, sql, params=()):
        seen.append(sql)
        return original(con, sql, params)

    monkeypatch.setattr(module, "execute", spy)
    monkeypatch.setattr(ranks_module, "execute", spy)  # fetch_with_values' scan
    monkeypatch.setattr(query, "HELD_MAX", 0)
    monkeypatch.setattr(query, "HELD_VALUES", held)
    batched = compare(path, base=r1, new=r2)
    windows = sum("rank() OVER" in s for s in seen)
    listed = sum("list(x)" in s for s in seen)
    # one scan per configuration of 24 values: their list (<= HELD_VALUES) or a window (more)
    assert (listed, windows) == ((4, 0) if held >= 24 else (0, 4))
    assert sum("median(x)" in s for s in seen) == 4
    if held >= 24:
        assert batched == whole
    else:  # a configuration ranked by the window has no values: the ratio's interval is Welch's
        same = ("config", "n_base", "n_new", "median_base", "median_new", "p_value", "method")
        for b, w in zip(batched.rows, whole.rows, strict=True):
            assert [getattr(b, f) for f in same] == [getattr(w, f) for f in same]
            assert (b.ci_method, w.ci_method) == ("log-welch", "hodges-lehmann")
    assert len(batched.rows) == 4
    for row in batched.rows:
        fixed = {"workload": row.config["workload"], "workers": int(row.config["workers"])}
        xb, xn = values(base, **fixed), values(new, **fixed)
        assert row.median_base == pytest.approx(np.median(xb), rel=1e-12)
        assert row.median_new == pytest.approx(np.median(xn), rel=1e-12)
        ref = stats.mannwhitneyu(xn, xb, method="asymptotic").pvalue
        assert row.method == "asymptotic" and row.p_value == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("batched", [False, True])
def test_mann_whitney_with_ties_at_a_large_offset_matches_scipy(tmp_path, monkeypatch, batched):
    """U's p from the rank sums numpy computes (values tied within and across the sides, at a
    1e12 offset where the steps are 1.2e-4 apart) is scipy's on the raw values; in one scan and
    batched by configuration."""
    import analysis.query as query

    path = tmp_path / "c.duckdb"
    rng = np.random.default_rng(7)
    trials: list[list[dict[str, Any]]] = [[], []]
    for side, shift in ((0, 0), (1, 2)):
        for workers in (1, 2):
            steps = rng.integers(0, 12, 40) + shift * (workers - 1)  # many ties
            for i, s in enumerate(steps):
                trials[side].append({"engine": "dask", "workload": "knn", "workers": workers,
                                     "warmup": False, "repetition": i,
                                     "train_s": 1e12 + float(s) * 2**-13})  # fmt: skip
    r1, r2 = add_run(path, trials[0]), add_run(path, trials[1])
    if batched:
        monkeypatch.setattr(query, "HELD_MAX", 0)
        monkeypatch.setattr(query, "HELD_VALUES", 80)
    res = compare(path, base=r1, new=r2)
    assert len(res.rows) == 2
    for row in res.rows:
        w = int(row.config["workers"])
        xb, xn = values(trials[0], workers=w), values(trials[1], workers=w)
        assert len(np.unique(np.concatenate([xb, xn]))) < 20  # ties kept at 1e12
        ref = stats.mannwhitneyu(xn, xb, method="asymptotic").pvalue
        assert row.method == "asymptotic"
        assert row.p_value == pytest.approx(ref, rel=1e-12)
        assert row.median_base == pytest.approx(np.median(xb), rel=1e-15)
        assert row.median_new == pytest.approx(np.median(xn), rel=1e-15)
    assert res.rows[0].p_value > 0.05 > res.rows[1].p_value  # 2 workers: new is 2 steps slower
