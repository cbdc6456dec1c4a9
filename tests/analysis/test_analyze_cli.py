"""The real ``analyze`` command on a tmp_path database."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from analysis.cli import app

ANALYZE = Path(sys.executable).parent / "analyze"
runner = CliRunner()


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANALYZE), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def only(data: dict) -> dict:
    """The one stratum's result of a stratified JSON answer (nothing else varies)."""
    assert data["split"] == [] and len(data["strata"]) == 1, data
    return data["strata"][0]["result"]


def test_anova_json(db, groups):
    result = invoke("anova", "--group", "workers", "--db", db, "--format", "json")
    assert result.exit_code == 0, result.output
    data = only(json.loads(result.stdout))
    assert set(data) >= {
        "metric",
        "group",
        "statistic",
        "p_value",
        "df_num",
        "df_den",
        "eta_sq",
        "omega_sq",
        "welch_p_value",
        "kruskal_p_value",
        "levene_p_value",
        "shapiro_p_value",
        "recommended",
        "n",
        "where",
        "groups",
    }
    assert data["posthoc"] is None
    assert data["statistic"] == pytest.approx(stats.f_oneway(*groups.values()).statistic)
    assert [g["level"] for g in data["groups"]] == ["1", "2", "4"]


def test_anova_table_and_csv(db):
    table = invoke("anova", "--group", "workers", "--db", db)
    assert table.exit_code == 0 and "F(2, 33)" in table.stdout
    csv = invoke("anova", "--group", "workers", "--db", db, "--format", "csv")
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert list(frame.columns[:4]) == ["level", "n", "mean", "sd"]


def test_anova_csv_carries_f_and_p(db, groups):
    csv = invoke("anova", "--group", "workers", "--db", db, "--format", "csv")
    frame = pd.read_csv(io.StringIO(csv.stdout))
    ref = stats.f_oneway(*groups.values())
    assert frame["f"].tolist() == pytest.approx([ref.statistic] * 3, rel=1e-9)
    assert frame["f_p_value"].tolist() == pytest.approx([ref.pvalue] * 3, rel=1e-9)
    welch = stats.f_oneway(*groups.values(), equal_var=False)
    assert frame["welch_f"][0] == pytest.approx(welch.statistic, rel=1e-9)
    assert frame["welch_p_value"][0] == pytest.approx(welch.pvalue, rel=1e-9)
    kw = stats.kruskal(*groups.values())
    assert frame["kruskal_h"][0] == pytest.approx(kw.statistic, rel=1e-9)
    assert frame["kruskal_p_value"][0] == pytest.approx(kw.pvalue, rel=1e-9)
    assert set(frame["recommended"]) == {"welch"}


def test_ttest_json_and_where(db, groups):
    result = invoke(
        "ttest",
        "--group", "workers", "--a", "1", "--b", "2", "--student",
        "--where", "engine=dask", "--where", "workers<=2",
        "--db", db, "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = only(json.loads(result.stdout))
    for key in ("statistic", "p_value", "df", "mean_diff", "ci_low", "ci_high", "cohens_d"):
        assert key in data
    assert data["equal_var"] is True and data["where"] == ["engine=dask", "workers<=2"]
    ref = stats.ttest_ind(groups[1], groups[2], equal_var=True)
    assert data["statistic"] == pytest.approx(ref.statistic, rel=1e-9)


def test_summary_formats(db):
    result = invoke("summary", "--by", "engine, workers", "--metric", "train_s", "--db", db,
                    "--format", "csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert list(frame.columns[:3]) == ["engine", "workers", "n"]
    assert list(frame["failed"]) == [0, 1, 1]
    data = json.loads(invoke("summary", "--db", db, "--format", "json").stdout)
    assert data["by"][0] == "engine" and len(data["rows"]) == 3
    assert "Summary by" in invoke("summary", "--db", db).stdout


def test_json_nan_becomes_null(make_db, trials_for):
    path = make_db(trials_for({1: [1.0]}))
    result = invoke("summary", "--by", "workers", "--metric", "train_s", "--db", path,
                    "--format", "json")  # fmt: skip
    row = json.loads(result.stdout)["rows"][0]
    assert row["train_s_sd"] is None and row["accuracy_mean"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["anova", "--group", "wrkers"], "did you mean workers"),
        (["anova", "--group", "workers", "--metric", "engine"], "not numeric"),
        (["anova", "--group", "engine"], "has only one level"),
        (["anova", "--group", "workers", "--where", "workers"], "COLUMN OP VALUE"),
        (["anova", "--group", "workers", "--where", "workers=x"], "not a number"),
        (["anova", "--group", "workers", "--where", "workers=64"], "no trials match"),
        (["ttest", "--group", "workers", "--a", "1", "--b", "9"], "levels present: 1, 2, 4"),
        (["summary", "--by", "nope"], "--by 'nope' is not a column"),
    ],
)
def test_user_errors_exit_2_one_line(db, file_hash, args, needle):
    before = file_hash(db)
    proc = run(*args, "--db", db)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert file_hash(db) == before


def test_missing_db_exit_2_creates_nothing(tmp_path):
    path = tmp_path / "none.duckdb"
    proc = run("anova", "--group", "workers", "--db", path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no database at")
    assert "Traceback" not in proc.stderr and not path.exists()


def test_bad_option_value_exit_2(db, file_hash):
    before = file_hash(db)
    proc = run("anova", "--group", "workers", "--db", db, "--format", "xml")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert file_hash(db) == before


def test_subcommand_names_and_help():
    proc = run("--help")
    assert proc.returncode == 0
    for name in ("anova", "ttest", "summary"):
        assert name in proc.stdout


# -- regress and scaling ---------------------------------------------------------------------------
def test_regress_json_matches_scipy(db, groups):
    result = invoke("regress", "--x", "workers", "--metric", "train_s", "--db", db,
                    "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    x = [w for w, values in groups.items() for _ in values]
    y = [v for values in groups.values() for v in values]
    ref = stats.linregress(x, y)
    (fit,) = data["fits"]
    assert fit["n"] == len(y)
    assert fit["r_squared"] == pytest.approx(ref.rvalue**2, rel=1e-9)
    slope = fit["coefficients"][1]
    assert slope["term"] == "workers"
    assert slope["estimate"] == pytest.approx(ref.slope, rel=1e-9)
    assert slope["std_err"] == pytest.approx(ref.stderr, rel=1e-9)
    assert fit["correlations"][0]["spearman_rho"] == pytest.approx(stats.spearmanr(x, y)[0])


def test_checks_options_reach_the_analyses(db, groups):
    # --checks all: Kruskal-Wallis and Shapiro-Wilk run whatever the size, nothing left out
    result = invoke("anova", "--group", "workers", "--checks", "all", "--db", db, "--format",
                    "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = only(json.loads(result.stdout))
    assert data["not_run"] == []
    assert data["kruskal_statistic"] == pytest.approx(
        stats.kruskal(*groups.values()).statistic, rel=1e-9
    )
    # --no-rank-checks: Spearman's rho is not computed (null), Pearson's r still is
    off = invoke("regress", "--x", "workers", "--no-rank-checks", "--db", db, "--format", "json")
    assert off.exit_code == 0, off.output
    (corr,) = json.loads(off.stdout)["fits"][0]["correlations"]
    assert corr["spearman_rho"] is None and corr["pearson_r"] is not None
    on = invoke("regress", "--x", "workers", "--rank-checks", "--db", db, "--format", "json")
    (corr,) = json.loads(on.stdout)["fits"][0]["correlations"]
    x = [w for w, values in groups.items() for _ in values]
    y = [v for values in groups.values() for v in values]
    assert corr["spearman_rho"] == pytest.approx(stats.spearmanr(x, y)[0])


def test_regress_csv_table_latex_and_repeated_x(db):
    csv = invoke("regress", "--x", "workers", "--x", "wall_s", "--by", "engine", "--log-y",
                 "--db", db, "--format", "csv")  # fmt: skip
    assert csv.exit_code == 0, csv.output
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert list(frame["term"]) == ["intercept", "workers", "wall_s"]
    assert list(frame.columns[:3]) == ["engine", "term", "estimate"]
    table = invoke("regress", "--x", "workers,wall_s", "--db", db)
    assert "OLS of train_s on workers + wall_s" in table.stdout
    assert "Breusch-Pagan" in table.stdout
    latex = invoke("regress", "--x", "workers", "--db", db, "--format", "latex")
    assert latex.stdout.count(r"\begin{tabular}") == 2 and r"r\_squared" in latex.stdout


def test_scaling_json_csv_table(db, groups):
    result = invoke("scaling", "--predict", "8", "--min-gain", "5%", "--bootstrap", "200",
                    "--db", db, "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (
        data["min_gain"] == 0.05 and data["n_boot"] == 200 and data["by"] == ["engine", "workload"]
    )
    (group,) = data["groups"]
    medians = {w: float(np.median(v)) for w, v in groups.items()}
    assert [lv["x"] for lv in group["levels"]] == [1, 2, 4]
    assert group["levels"][2]["speedup"] == pytest.approx(medians[1] / medians[4], rel=1e-12)
    assert group["levels"][1]["change_pct"] == pytest.approx(
        100 * (medians[2] - medians[1]) / medians[1], rel=1e-12
    )
    assert [f["model"] for f in group["fits"]] == ["amdahl"]
    (pred,) = group["predictions"]
    assert pred["x"] == 8 and pred["ci_low"] < pred["time"] < pred["ci_high"]
    csv = invoke("scaling", "--bootstrap", "0", "--db", db, "--format", "csv")
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert list(frame.columns) == ["engine", "workload", "workers", "n", "median", "mean", "sd",
                                   "speedup", "efficiency", "change_pct", "karp_flatt"]  # fmt: skip
    table = invoke("scaling", "--db", db, "--bootstrap", "0")
    assert "Scaling of train_s over workers" in table.stdout and "amdahl" in table.stdout


@pytest.mark.parametrize("command", [
    ["anova", "--group", "workers"],
    ["ttest", "--group", "workers", "--a", "1", "--b", "2"],
    ["summary"],
    ["regress", "--x", "workers"],
    ["scaling", "--bootstrap", "0"],
])  # fmt: skip
def test_latex_format_everywhere(db, command):
    result = invoke(*command, "--db", db, "--format", "latex")
    assert result.exit_code == 0, result.output
    # every table of the result: a "% name: caption" comment, then its tabular
    lines = result.stdout.splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("% ")]
    assert heads and heads[0] == 0, result.stdout
    assert all(lines[i + 1].startswith(r"\begin{tabular}") for i in heads), result.stdout
    assert result.stdout.count(r"\end{tabular}") == len(heads)


def test_latex_escapes_hostile_levels(make_db, trials_for):
    hostile = r"_ % & $ # { } ~ ^ \input{x}"
    trials = trials_for({1: [3.0, 3.2, 2.9], 2: [2.0, 2.1, 1.8], 4: [1.5, 1.6, 1.2]},
                        engine=hostile)  # fmt: skip
    path = make_db(trials)
    out = invoke("scaling", "--bootstrap", "0", "--db", path, "--format", "latex").stdout
    assert (
        r"\_ \% \& \$ \# \{ \} \textasciitilde{} \textasciicircum{} \textbackslash{}input\{x\}"
        in out
    )
    assert r"\input{x}" not in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["regress", "--x", "wrkers"], "did you mean workers"),
        (["regress", "--x", "workers", "--y", "engine"], "not numeric"),
        (["regress", "--x", "workers", "--where", "workers=1"], "--x workers has zero variance"),
        (["regress", "--x", "workers", "--log-x", "--where", "train_s<0"], "no trials match"),
        (["scaling", "--where", "workers=2"], "has only one level (2)"),
        (["scaling", "--min-gain", "lots"], "not a fraction"),
        (["scaling", "--min-gain", "150%"], "between 0 and 1"),
        (["scaling", "--predict", "8,x"], "not a comma-separated list"),
        (["scaling", "--predict", "-2"], "not a positive number"),
    ],
)
def test_regress_scaling_user_errors_exit_2_one_line(db, file_hash, args, needle):
    before = file_hash(db)
    proc = run(*args, "--db", db)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert file_hash(db) == before


def test_regress_log_of_non_positive_exit_2(make_db, trials_for):
    path = make_db(trials_for({0: [3.0, 3.2], 2: [2.0, 2.1], 4: [1.5, 1.6]}))
    proc = run("regress", "--x", "workers", "--log-x", "--db", path)
    assert proc.returncode == 2 and "zero or negative" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_help_lists_regress_and_scaling():
    proc = run("--help")
    assert proc.returncode == 0 and "regress" in proc.stdout and "scaling" in proc.stdout


def test_power_cost_and_cost_metric_commands(db, groups, tmp_path):
    out = invoke("power", "--group", "workers", "--a", "2", "--b", "1", "--effect", "5%",
                 "--db", db, "--format", "json")  # fmt: skip
    assert out.exit_code == 0, out.output
    data = only(json.loads(out.stdout))
    assert data["effect"] == pytest.approx(0.05) and data["n_per_group"] >= 2
    x, y = groups[2], groups[1]
    assert data["mean_a"] == pytest.approx(x.mean()) and data["mean_b"] == pytest.approx(y.mean())
    table = invoke("cost", "--usd-per-core-hour", "0.1", "--deadline", "3", "--db", db)
    assert table.exit_code == 0, table.output
    assert "cheapest meeting the deadline" in table.stdout
    csv = invoke("cost", "--usd-per-core-hour", "0.1", "--db", db, "--format", "csv")
    frame = pd.read_csv(io.StringIO(csv.stdout))
    one = frame[frame["workers"] == 1].iloc[0]
    assert one["median_s"] == pytest.approx(np.median(groups[1]))
    assert one["median_cost_usd"] == pytest.approx(np.median(groups[1]) * 0.1 / 3600)
    # no single-core trials besides workers=1 of dask: it is the baseline; others are slower
    cm = invoke("cost-metric", "--db", db, "--format", "json")
    assert cm.exit_code == 0, cm.output
    assert [r["verdict"] for r in json.loads(cm.stdout)["rows"]] == ["2"]
    assert (
        invoke("cost", "--cost-metric", "--db", db).stdout
        == invoke("cost-metric", "--db", db).stdout
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["power", "--group", "workers", "--a", "2", "--b", "1", "--effect", "lots"], "--effect"),
        (["cost"], "price the trials one way"),
        (["cost", "--machine", "engine"], "no price for engine='dask'"),
        (["cost", "--machine", "engine", "--prices", "missing.csv"], "--prices: no such file"),
    ],
)
def test_power_and_cost_user_errors_exit_2(db, file_hash, args, needle):
    before = file_hash(db)
    proc = run(*args, "--db", db)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    assert file_hash(db) == before


def test_anova_posthoc_and_checks_from_the_cli(db, groups):
    from statsmodels.stats.multicomp import pairwise_tukeyhsd

    result = invoke("anova", "--group", "workers", "--posthoc", "tukey", "--db", db,
                    "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = only(json.loads(result.stdout))
    assert data["kruskal_statistic"] == pytest.approx(
        stats.kruskal(*groups.values()).statistic, rel=1e-9
    )
    assert data["levene_statistic"] == pytest.approx(
        stats.levene(*groups.values(), center="median").statistic, rel=1e-9
    )
    values = np.concatenate(list(groups.values()))
    labels = np.repeat([str(k) for k in groups], [len(v) for v in groups.values()])
    ref = pairwise_tukeyhsd(values, labels)
    pairs = {(p["a"], p["b"]): p for p in data["posthoc"]["pairs"]}
    assert len(pairs) == len(ref.pvalues) == 3
    for (a, b), p_ref in zip(
        [(str(r[0]), str(r[1])) for r in ref._results_table.data[1:]], ref.pvalues, strict=True
    ):
        assert pairs[(a, b)]["p_value"] == pytest.approx(p_ref, rel=1e-6, abs=1e-12)
    table = invoke("anova", "--group", "workers", "--posthoc", "games-howell", "--db", db)
    assert table.exit_code == 0 and "Games-Howell" in table.stdout
    assert "recommended" in table.stdout


def test_two_way_anova_from_the_cli(make_db, trials_for, rng):
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    trials = []
    for engine, shift in (("dask", 0.0), ("ray", 0.4)):
        cells = {w: rng.normal(3.0 + shift - 0.3 * w, 0.2, 6 + w) for w in (1, 2, 4)}
        trials += trials_for(cells, engine=engine)
    path = make_db(trials)
    raw = pd.DataFrame(
        {"w": [t["workers"] for t in trials], "e": [t["engine"] for t in trials],
         "y": [t["train_s"] for t in trials]}
    )  # fmt: skip
    fit = smf.ols("y ~ C(w) * C(e)", data=raw).fit()
    for ss_type in (1, 2):
        ref = sm.stats.anova_lm(fit, typ=ss_type)
        result = invoke("anova", "--group", "workers", "--group", "engine", "--ss-type",
                        ss_type, "--db", path, "--format", "json")  # fmt: skip
        assert result.exit_code == 0, result.output
        terms = {t["term"]: t for t in only(json.loads(result.stdout))["terms"]}
        for ours, theirs in (("workers", "C(w)"), ("engine", "C(e)"),
                             ("workers:engine", "C(w):C(e)")):  # fmt: skip
            assert terms[ours]["sum_sq"] == pytest.approx(ref.loc[theirs, "sum_sq"], rel=1e-9)
            assert terms[ours]["p_value"] == pytest.approx(ref.loc[theirs, "PR(>F)"], rel=1e-7)
    csv = invoke("anova", "--group", "workers,engine", "--db", path, "--format", "csv")
    assert csv.exit_code == 0 and "workers:engine" in csv.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--group", "workers", "--group", "engine", "--group", "workload"], "one or two"),
        (["--group", "workers", "--group", "engine", "--posthoc", "tukey"], "--posthoc works"),
        (["--group", "workers", "--ss-type", "3"], "two-way"),
        (["--group", "workers", "--posthoc", "scheffe"], "scheffe"),
        (["--group", "workers", "--alpha", "1.5"], "alpha"),
        (["--group", "workers", "--group", "engine", "--alpha", "0.1"], "--alpha applies"),
        (["--group", "workers", "--group", "engine", "--seed", "3"], "--seed applies"),
        (["--group", "workers", "--ss-type", "2"], "--ss-type applies"),
        (["--group", "workers", "--checks", "some"], "--checks 'some'"),
        (["--group", "workers", "--group", "engine", "--checks", "all"], "--checks applies"),
    ],
)
def test_anova_option_errors_exit_2_one_line(db, file_hash, args, needle):
    before = file_hash(db)
    proc = run("anova", *args, "--db", db)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and needle in proc.stderr, proc.stderr
    assert file_hash(db) == before


def test_ttest_mwu_effect_sizes_and_ratio_from_the_cli(db, groups):
    result = invoke(
        "ttest", "--group", "workers", "--a", "1", "--b", "4", "--test", "mwu",
        "--bootstrap", "4000", "--seed", "3", "--db", db, "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = only(json.loads(result.stdout))
    x, y = groups[1], groups[4]
    ref = stats.mannwhitneyu(x, y)
    assert data["test"] == "mwu" and data["statistic"] == pytest.approx(ref.statistic)
    assert data["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert data["ratio"] == pytest.approx(x.mean() / y.mean(), rel=1e-12)
    boot = stats.bootstrap(
        (x, y), lambda u, v, axis=-1: u.mean(axis=axis) / v.mean(axis=axis),
        method="percentile", n_resamples=20000, random_state=1,
    )  # fmt: skip
    width = boot.confidence_interval.high - boot.confidence_interval.low
    assert data["ratio_ci_low"] == pytest.approx(boot.confidence_interval.low, abs=0.05 * width)
    assert data["ratio_ci_high"] == pytest.approx(boot.confidence_interval.high, abs=0.05 * width)
    none = invoke("ttest", "--group", "workers", "--a", "1", "--b", "4", "--bootstrap", "0",
                  "--confidence", "0.99", "--db", db, "--format", "json")  # fmt: skip
    data = only(json.loads(none.stdout))
    assert data["ratio_ci_low"] is None and data["ratio_ci_method"] == "none"
    ci99 = stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.99)
    assert (data["ci_low"], data["ci_high"]) == pytest.approx((ci99.low, ci99.high), rel=1e-9)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--student", "--test", "mwu"], "contradict"),
        (["--bootstrap", "-1"], "--bootstrap"),
        (["--confidence", "1.5"], "confidence"),
        (["--test", "ks"], "'ks'"),
        (["--bootstrap", "50"], "outside 100"),
    ],
)
def test_ttest_option_errors_exit_2_one_line(db, file_hash, args, needle):
    before = file_hash(db)
    proc = run("ttest", "--group", "workers", "--a", "1", "--b", "2", *args, "--db", db)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and needle in proc.stderr, proc.stderr
    assert file_hash(db) == before


def test_summary_median_bootstrap_ci_from_the_cli(db, groups):
    result = invoke("summary", "--by", "workers", "--metric", "train_s", "--bootstrap", "4000",
                    "--seed", "5", "--db", db, "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r["workers"]: r for r in json.loads(result.stdout)["rows"]}
    for level, values in groups.items():
        ref = stats.bootstrap((values,), np.median, method="percentile", n_resamples=20000,
                              random_state=2).confidence_interval  # fmt: skip
        ordered = np.sort(values)
        for ours, theirs in ((rows[level]["train_s_median_ci_low"], ref.low),
                             (rows[level]["train_s_median_ci_high"], ref.high)):  # fmt: skip
            # within two order statistics of scipy's Monte Carlo endpoint
            gap = abs(np.searchsorted(ordered, ours) - np.searchsorted(ordered, theirs))
            assert gap <= 2, (level, ours, theirs)
    off = invoke("summary", "--by", "workers", "--bootstrap", "0", "--db", db, "--format", "csv")
    frame = pd.read_csv(io.StringIO(off.stdout))
    assert frame["train_s_median_ci_low"].isna().all()


def test_csv_main_table_and_table_option(db, file_hash):
    # --format csv is the result's main table; --table NAME another one (here the post-hoc pairs)
    csv = invoke("anova", "--group", "workers", "--posthoc", "pairwise", "--db", db,
                 "--format", "csv")  # fmt: skip
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert list(frame["level"]) == [1, 2, 4] and "f_p_value" in frame.columns
    pairs = invoke("anova", "--group", "workers", "--posthoc", "pairwise", "--db", db,
                   "--format", "csv", "--table", "pairs")  # fmt: skip
    assert pairs.exit_code == 0, pairs.output
    frame = pd.read_csv(io.StringIO(pairs.stdout))
    assert len(frame) == 3 and {"a", "b", "p_value"} <= set(frame.columns)
    latex = invoke("anova", "--group", "workers", "--posthoc", "pairwise", "--db", db,
                   "--format", "latex", "--table", "pairs")  # fmt: skip
    assert latex.stdout.count(r"\begin{tabular}") == 1 and "p\\_value" in latex.stdout
    before = file_hash(db)
    for args, needle in (
        (["--format", "csv", "--table", "nope"], "--table 'nope' is not a table"),
        (["--table", "pairs"], "applies to --format csv or latex"),
    ):
        proc = run("anova", "--group", "workers", "--db", db, *args)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        assert len(proc.stderr.splitlines()) == 1 and needle in proc.stderr, proc.stderr
    assert "pairs" in run("anova", "--group", "workers", "--posthoc", "tukey", "--db", db,
                          "--format", "csv", "--table", "nope").stderr  # fmt: skip
    assert file_hash(db) == before


def test_tables_within_120_columns_unless_wide(db):
    # two metrics side by side: the summary's table is wider than a terminal
    args = ["summary", "--by", "engine,workers", "--metric", "train_s", "--metric", "wall_s",
            "--db", db]  # fmt: skip
    narrow = invoke(*args)
    assert narrow.exit_code == 0, narrow.output
    lines = narrow.stdout.splitlines()
    assert max(map(len, lines)) <= 120
    (note,) = [line for line in lines if "not shown:" in line]
    assert note.startswith("(11 columns not shown: wall_s mean, ")
    assert "--wide shows all)" in narrow.stdout
    wide = invoke(*args, "--wide")
    assert max(map(len, wide.stdout.splitlines())) > 120
    assert "not shown" not in wide.stdout
    header = next(line for line in wide.stdout.splitlines() if line.startswith("engine"))
    assert "train_s mean" in header and "wall_s mean" in header
    # shown columns are the same, in full, in both
    assert header.startswith(lines[1].rstrip())
    assert invoke("--wide", *args).stdout == wide.stdout  # also as a global option
