"""analysis.held / analysis.strata: every analysis holds fixed what it does not compare.

The databases mimic the default experiment (KNN in milliseconds, an MLP in seconds; local at 1
worker, Dask at 1 and 2) and pin every number against scipy on the raw rows of one stratum.
Each "issue 12" test fails on the code before analysis.held (the CLI pooled every stratum).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from analysis import held
from analysis.cli import app
from analysis.errors import AnalysisError
from analysis.ttest import TtestResult
from analysis.ttest import ttest as plain_ttest
from runner.store import TrialRecord, open_store

runner = CliRunner()
HOST_A = {"hostname": "a", "cpu_model": "Xeon", "packages": {"numpy": "2.4.6"}}


def add_run(path: Path, trials: list[dict[str, Any]], env: dict[str, Any] | None = None) -> str:
    store = open_store(path)
    try:
        run = store.begin_run(source="measured", argv=["test"], env=env or HOST_A)
        records = []
        for t in trials:
            t = dict(t)
            metrics = t.pop("metrics", {})
            records.append(TrialRecord(run_id=run, status="ok", values=t, metrics=metrics))
        store.append_trials(records)
        store.finish_run(run)
    finally:
        store.close()
    return run


def default_like(seed: int = 7, n: int = 8) -> list[dict[str, Any]]:
    """The default experiment's shape: knn (ms) and mlp (s); local 1 worker, dask 1 and 2."""
    rng = np.random.default_rng(seed)
    out = []
    base = {"knn": 0.002, "mlp": 2.0}
    for workload, params in (("knn", {"k": 5}), ("mlp", {"hidden": "[100]"})):
        for engine, workers in (("local", 1), ("dask", 1), ("dask", 2)):
            slow = 1.0 if engine == "local" else 1.3 * workers
            for i in range(n):
                out.append(
                    {
                        "engine": engine,
                        "workload": workload,
                        "dataset": "digits",
                        "workers": workers,
                        "threads_per_worker": 1,
                        "warmup": False,
                        "repetition": i,
                        "params": params,
                        "train_s": float(base[workload] * slow * rng.lognormal(0, 0.1)),
                    }
                )
    return out


def rows(trials: list[dict[str, Any]], **fixed: Any) -> np.ndarray:
    return np.array([t["train_s"] for t in trials if all(t[k] == v for k, v in fixed.items())])


@pytest.fixture
def default_db(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    trials = default_like()
    path = tmp_path / "default.duckdb"
    add_run(path, trials)
    return path, trials


def cli(*args: object) -> Any:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_ttest_engine_gives_one_result_per_workload(default_db):
    """Issue 12: `ttest --group engine --a local --b dask` pooled knn with mlp and 1 with 2
    workers; now one Welch test per workload at workers=1, workers=2 listed as not compared."""
    path, trials = default_db
    out = cli("ttest", "--group", "engine", "--a", "local", "--b", "dask", "--bootstrap", "0",
              "--db", path, "--format", "json")  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["split"] == ["workload", "workers"]
    done = {tuple(s["stratum"].values()): s["result"] for s in data["strata"] if s["result"]}
    assert set(done) == {("knn", "1"), ("mlp", "1")}
    for workload in ("knn", "mlp"):
        ref = stats.ttest_ind(
            rows(trials, workload=workload, engine="local"),
            rows(trials, workload=workload, engine="dask", workers=1),
            equal_var=False,
        )
        res = done[(workload, "1")]
        assert res["statistic"] == pytest.approx(ref.statistic, rel=1e-10)
        assert res["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    skipped = [s for s in data["strata"] if s["result"] is None]
    assert {s["stratum"]["workers"] for s in skipped} == {"2"}
    assert all("only engine=dask" in s["reason"] for s in skipped)
    text = cli("ttest", "--group", "engine", "--a", "local", "--b", "dask", "--bootstrap", "0",
               "--db", path).stdout  # fmt: skip
    assert "one result per workload x workers (held fixed)" in text
    assert "== workload=knn, workers=1 ==" in text and "not compared:" in text


def test_pool_all_pools_on_purpose_and_says_so(default_db):
    path, trials = default_db
    res = held.ttest(path, group="engine", a="local", b="dask", pool="all", n_boot=0)
    (only,) = res.results
    ref = stats.ttest_ind(rows(trials, engine="local"), rows(trials, engine="dask"),
                          equal_var=False)  # fmt: skip
    assert only.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert res.split == () and "pooled on purpose (--pool): workload (knn, mlp)" in str(res)
    assert "workers (1, 2)" in str(res)


def test_run_id_comparison_holds_the_configuration_fixed(tmp_path):
    """Issue 12: `ttest --group run_id --a R1 --b R2` compared 18 mixed knn/mlp trials with 3
    local-knn trials (ratio 764); now only the configuration both runs measured is compared."""
    path = tmp_path / "runs.duckdb"
    first = default_like(seed=1)
    second = [t for t in default_like(seed=2, n=3) if t["workload"] == "knn"
              and t["engine"] == "local"]  # fmt: skip
    r1, r2 = add_run(path, first), add_run(path, second)
    res = held.ttest(path, group="run_id", a=r1, b=r2, n_boot=0)
    (only,) = res.results
    assert dict(res.strata[[s.result is not None for s in res.strata].index(True)].fixed) == {
        "workload": "knn",
        "engine": "local",
        "workers": "1",
    }
    ref = stats.ttest_ind(rows(first, workload="knn", engine="local"), rows(second),
                          equal_var=False)  # fmt: skip
    assert only.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert only.n_a == 8 and only.n_b == 3
    mwu = held.ttest(path, group="run_id", a=r1, b=r2, test="mwu", n_boot=0).results[0]
    assert mwu.p_value == pytest.approx(
        stats.mannwhitneyu(rows(first, workload="knn", engine="local"), rows(second)).pvalue
    )


def test_anova_workers_one_result_per_engine_and_workload(default_db):
    """Issue 12: `anova --group workers` pooled KNN (ms) with the MLP (s) and local with dask."""
    path, trials = default_db
    out = cli("anova", "--group", "workers", "--db", path, "--format", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["split"] == ["workload", "engine"]
    done = {tuple(s["stratum"].values()): s["result"] for s in data["strata"] if s["result"]}
    assert set(done) == {("knn", "dask"), ("mlp", "dask")}
    for workload in ("knn", "mlp"):
        ref = stats.f_oneway(*(rows(trials, workload=workload, engine="dask", workers=w)
                               for w in (1, 2)))  # fmt: skip
        assert done[(workload, "dask")]["statistic"] == pytest.approx(ref.statistic, rel=1e-10)
    csv = cli("anova", "--group", "workers", "--db", path, "--format", "csv")
    frame = pd.read_csv(__import__("io").StringIO(csv.stdout))
    assert list(frame.columns[:3]) == ["workload", "engine", "level"] and len(frame) == 4


def test_twoway_and_power_are_stratified(default_db):
    path, trials = default_db
    two = held.twoway(path, groups=("workers", "workload"), where=["engine=dask"])
    assert two.split == () and len(two.results) == 1
    pw = held.power(path, group="engine", a="dask", b="local", effect=0.1)
    assert pw.split == ("workload", "workers") and len(pw.results) == 2
    knn = next(s.result for s in pw.strata if s.result and dict(s.fixed)["workload"] == "knn")
    assert knn.n_a == knn.n_b == 8


def test_a_compared_workloads_own_param_is_not_split_on_across_sources(tmp_path):
    """epochs goes with workload within each source (measured mlp 10, published mlp 5, knn
    none): comparing workloads, it is the workload's own setting, not a factor to split on."""
    path = tmp_path / "mixed.duckdb"
    measured = [
        {**t, "epochs": 10} if t["workload"] == "mlp" else t
        for t in default_like()
        if t["engine"] == "dask"
    ]
    add_run(path, measured)
    store = open_store(path)
    run = store.begin_run(source="published:000", argv=["test"], env=HOST_A)
    store.append_trials(
        TrialRecord(run_id=run, status="ok", values=v)
        for v in (
            {
                "engine": "dask",
                "workload": wl,
                "workers": w,
                "train_s": x,
                "warmup": False,
                **({"epochs": 5} if wl == "mlp" else {}),
            }  # fmt: skip
            for wl in ("knn", "mlp")
            for w, x in ((1, 3.0), (2, 2.0))
        )
    )
    store.finish_run(run)
    store.close()
    two = held.twoway(path, groups=("workers", "workload"), where=["engine=dask"])
    assert "epochs" not in two.split
    measured_stratum = next(s for s in two.strata if dict(s.fixed).get("source") == "measured")
    assert measured_stratum.result is not None
    # the measured stratum is the measured trials alone: 2 workers x 2 workloads x 8 trials
    assert sum(c.n for c in measured_stratum.result.cells) == len(measured)


def test_library_calls_keep_their_single_result(default_db):
    """reports/ and analysis.verdict call the plain functions with where fixing the rest."""
    path, trials = default_db
    res = plain_ttest(path, group="engine", a="local", b="dask", n_boot=0,
                      where=["workload=knn", "workers=1"])  # fmt: skip
    assert isinstance(res, TtestResult)
    ref = stats.ttest_ind(rows(trials, workload="knn", engine="local"),
                          rows(trials, workload="knn", engine="dask", workers=1),
                          equal_var=False)  # fmt: skip
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-10)


def test_cost_cheapest_per_workload(default_db):
    """Issue 12: `cost --deadline` picked one cheapest configuration across workloads."""
    path, trials = default_db
    out = cli("cost", "--usd-per-core-hour", "0.05", "--deadline", "10", "--db", path,
              "--format", "json")  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["split"] == ["workload"] and data["cheapest"] is None
    best = {c["stratum"]: c["cheapest"] for c in data["cheapest_per_stratum"]}
    assert set(best) == {"workload=knn", "workload=mlp"}
    assert all("engine=local" in b for b in best.values())
    medians = {
        (r["level"]["workload"], r["level"]["engine"], r["level"]["workers"]): r["median_s"]
        for r in data["rows"]
    }
    assert medians[("mlp", "dask", "2")] == pytest.approx(
        np.median(rows(trials, workload="mlp", engine="dask", workers=2)), rel=1e-12
    )
    pareto = {(r["level"]["workload"], r["level"]["engine"], r["level"]["workers"])
              for r in data["rows"] if r["pareto"]}  # fmt: skip
    assert pareto == {("knn", "local", "1"), ("mlp", "local", "1")}  # one front per workload


def test_cost_on_an_imported_csv_without_dataset_or_threads(tmp_path):
    """Issue 12: cost and cost-metric on a CSV of engine, workload, workers, train_s said "no
    trials match" (they silently required dataset and threads_per_worker)."""
    from runner.importer import import_csv

    csv = tmp_path / "m.csv"
    csv.write_text("engine,workload,workers,train_s\nlocal,knn,1,1.0\nlocal,knn,1,1.2\n"
                   "dask,knn,2,0.6\ndask,knn,2,0.7\ndask,knn,4,0.5\ndask,knn,4,0.4\n")  # fmt: skip
    path = tmp_path / "imp.duckdb"
    import_csv(csv, db=path)
    out = cli("cost", "--usd-per-core-hour", "0.1", "--db", path, "--format", "json")
    assert out.exit_code == 0, out.output
    got = {r["level"]["workers"]: r["median_cost_usd"] for r in json.loads(out.stdout)["rows"]}
    assert got == pytest.approx({"1": 1.1 * 0.1 / 3600, "2": 0.65 * 0.2 / 3600,
                                 "4": 0.45 * 0.4 / 3600})  # fmt: skip
    assert "1 core per worker" in cli("cost", "--usd-per-core-hour", "0.1", "--db", path).stdout
    cm = cli("cost-metric", "--db", path, "--format", "json")
    assert cm.exit_code == 0, cm.output
    verdicts = {r["engine"]: r["verdict"] for r in json.loads(cm.stdout)["rows"]}
    assert verdicts == {"dask": "2", "local": "baseline"}


def test_scaling_splits_datasets_and_leaves_out_single_level_groups(tmp_path):
    """Issue 12: scaling merged datasets into one median per worker count, and the README's
    `scaling --by engine,workload --predict 8,16` failed on a group with one worker count."""
    trials = default_like()
    rng = np.random.default_rng(3)
    big = [dict(t, dataset="fashion", train_s=t["train_s"] * 20 * rng.lognormal(0, 0.05))
           for t in trials]  # fmt: skip
    path = tmp_path / "s.duckdb"
    add_run(path, trials + big)
    out = cli("scaling", "--x", "workers", "--by", "engine,workload", "--predict", "8,16",
              "--bootstrap", "0", "--db", path, "--format", "json")  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["by"] == ["engine", "workload", "dataset"]
    assert any("left out engine=local, workload=knn, dataset=digits" in n for n in data["notes"])
    got = {tuple(g["level"].values()): g["levels"][1]["median"] for g in data["groups"]}
    assert got[("dask", "mlp", "fashion")] == pytest.approx(
        np.median(rows(big, workload="mlp", engine="dask", workers=2)), rel=1e-12
    )


def test_regress_refuses_omitted_factors_and_pools_on_request(default_db):
    path, trials = default_db
    with pytest.raises(AnalysisError) as err:
        held.regress(path, y="train_s", x=["workers"])
    message = str(err.value)
    assert "workload (knn, mlp); engine (dask, local)" in message and "--pool" in message
    assert "hidden" not in message  # goes with workload: not named
    res = held.regress(path, y="train_s", x=["workers"], by=["workload"],
                       where=["engine=dask"])  # fmt: skip
    knn = next(f for f in res.fits if f.level == ("knn",))
    x = [t["workers"] for t in trials if t["engine"] == "dask" and t["workload"] == "knn"]
    y = rows(trials, engine="dask", workload="knn")
    assert knn.coefficients[1].estimate == pytest.approx(stats.linregress(x, y).slope, rel=1e-9)
    pooled = held.regress(path, y="train_s", x=["workers"], pool="workload,engine")
    assert "pooled on purpose" in str(pooled)


def test_refuses_different_hosts_unless_pooled(tmp_path):
    """pyperf's "incompatible benchmark": trials of two hosts are not pooled silently."""
    path = tmp_path / "hosts.duckdb"
    trials = [t for t in default_like() if t["workload"] == "knn"]
    r1 = add_run(path, trials)
    other = {**HOST_A, "hostname": "b", "packages": {"numpy": "2.5.0"}}
    r2 = add_run(path, trials, env=other)
    with pytest.raises(AnalysisError, match=r"hostname \(a, b\).*--pool hostname"):
        held.ttest(path, group="engine", a="local", b="dask", n_boot=0)
    proc = cli("anova", "--group", "workers", "--db", path)
    assert proc.exit_code == 2 and "different environments" in proc.output
    res = held.ttest(path, group="engine", a="local", b="dask", n_boot=0, pool="env")
    assert "hostname (a, b)" in str(res) and "numpy 2.4.6 / 2.5.0" in str(res)
    # comparing the two runs is what the user asked: allowed, the difference named
    runs = held.ttest(path, group="run_id", a=r1, b=r2, n_boot=0)
    assert "environment differs" in str(runs) and len(runs.results) == 3


def test_unknown_pool_name_is_a_one_line_error(default_db):
    path, _ = default_db
    proc = cli("ttest", "--group", "engine", "--a", "local", "--b", "dask", "--pool", "wrkers",
               "--db", path)  # fmt: skip
    assert proc.exit_code == 2 and "--pool 'wrkers' is not a factor" in proc.output


def test_stratified_tables_concatenate_the_strata_with_their_labels(default_db):
    """tables(): each stratum's tables one after another, main first, every row led by the
    stratum's factors; the stratum not compared and the plan's notes follow."""
    path, trials = default_db
    res = held.ttest(path, group="engine", a="local", b="dask", n_boot=0)
    tables = res.tables()
    assert [t.name for t in tables] == ["test", "levels", "not_compared"]
    main = tables[0].frame
    assert list(main.columns[:2]) == ["workload", "workers"]
    assert list(zip(main["workload"], main["workers"], strict=True)) == [("knn", "1"), ("mlp", "1")]
    for workload, row in zip(("knn", "mlp"), main.itertuples(), strict=True):
        ref = stats.ttest_ind(rows(trials, workload=workload, engine="local"),
                              rows(trials, workload=workload, engine="dask", workers=1),
                              equal_var=False)  # fmt: skip
        assert row.statistic == pytest.approx(ref.statistic, rel=1e-10)
        assert row.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    levels = tables[1].frame
    assert len(levels) == 4 and list(levels.columns[:2]) == ["workload", "workers"]
    knn_local = levels[(levels["workload"] == "knn") & (levels["level"] == "local")].iloc[0]
    assert knn_local["mean"] == pytest.approx(rows(trials, workload="knn", engine="local").mean())
    skipped = tables[2].frame
    assert list(zip(skipped["workload"], skipped["workers"], strict=True)) == [
        ("knn", "2"),
        ("mlp", "2"),
    ]
    assert all("only engine=dask" in r for r in skipped["reason"])
    assert all(len(line) <= 120 for line in str(res).splitlines())


def test_per_stratum_is_the_one_shape_behind_the_stratified_analyses(default_db):
    """Adding an analysis is one per_stratum call: here the summary per engine x workload x
    workers (nothing compared), its rows pinned against numpy."""
    from analysis.summary import summarize

    path, trials = default_db

    def plain(con, *, metric, where, include_warmup):  # noqa: ANN001, ANN202
        return summarize(con, by=[], metrics=[metric], where=where, include_warmup=include_warmup,
                         n_boot=0)  # fmt: skip

    res = held.per_stratum(path, plain, compared=[], title="summary", metric="train_s", where=[],
                           include_warmup=False, pool=None)  # fmt: skip
    assert res.split == ("workload", "engine", "workers")
    assert len(res.results) == 6
    frame = res.tables()[0].frame
    for row in frame.itertuples():
        want = rows(trials, workload=row.workload, engine=row.engine, workers=int(row.workers))
        assert row.train_s_mean == pytest.approx(want.mean(), rel=1e-12)
