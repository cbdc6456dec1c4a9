"""The whole path a user takes with outside data: CSV -> `runner import csv` -> `analyze`, on
ill-conditioned times (1e12 + tiny noise), checked against exact rational arithmetic and scipy on
the offset-free data."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.stats

from tests.conftest import run_cli

OFFSET = 1e12


def _write_csv(path: Path) -> dict[str, list[float]]:
    rng = np.random.default_rng(7)
    groups: dict[str, list[float]] = {}
    lines = ["engine,workers,Train Time (s),Accuracy"]
    for workers, shift in ((1, 0.0), (2, 0.004), (4, 0.009)):
        values = [OFFSET + shift + float(e) for e in rng.normal(0, 0.003, 12)]
        groups[str(workers)] = values
        lines += [f"dask,{workers},{v!r},0.97" for v in values]
    path.write_text("\n".join(lines) + "\n")
    return groups


def _exact_f(groups: dict[str, list[float]]) -> float:
    data = {k: [Fraction(v) for v in vs] for k, vs in groups.items()}
    everything = [v for vs in data.values() for v in vs]
    grand = sum(everything) / len(everything)
    means = {k: sum(vs) / len(vs) for k, vs in data.items()}
    ss_between = sum(len(vs) * (means[k] - grand) ** 2 for k, vs in data.items())
    ss_within = sum((v - means[k]) ** 2 for k, vs in data.items() for v in vs)
    df_num, df_den = len(data) - 1, len(everything) - len(data)
    return float((ss_between / df_num) / (ss_within / df_den))


def _only_stratum(out: dict) -> dict:
    """The one result of a comparison where nothing else varies (``analyze`` JSON envelope)."""
    assert out["split"] == [] and len(out["strata"]) == 1
    return out["strata"][0]["result"]


def test_imported_ill_conditioned_anova_and_ttest(tmp_path: Path) -> None:
    csv = tmp_path / "times.csv"
    groups = _write_csv(csv)
    db = tmp_path / "r.duckdb"
    proc = run_cli("runner", "import", "csv", csv, "--db", db)
    assert proc.returncode == 0, proc.stderr

    proc = run_cli(
        "analyze",
        "anova",
        "--group",
        "workers",
        "--metric",
        "train_time_s",
        "--db",
        db,
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    anova = _only_stratum(json.loads(proc.stdout))
    assert np.isclose(anova["statistic"], _exact_f(groups), rtol=1e-6)
    # scipy on the same rows with the (exactly representable) offset removed
    centred = [np.array(v) - OFFSET for v in groups.values()]
    ref = scipy.stats.f_oneway(*centred)
    assert np.isclose(anova["statistic"], ref.statistic, rtol=1e-6)
    assert np.isclose(anova["p_value"], ref.pvalue, rtol=1e-6)
    assert (anova["df_num"], anova["df_den"]) == (2, 33)

    proc = run_cli(
        "analyze",
        "ttest",
        "--group",
        "workers",
        "--a",
        "1",
        "--b",
        "4",
        "--metric",
        "train_time_s",
        "--db",
        db,
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    ttest = _only_stratum(json.loads(proc.stdout))
    ref_t = scipy.stats.ttest_ind(centred[0], centred[2], equal_var=False)
    ci = ref_t.confidence_interval(0.95)
    assert np.isclose(ttest["statistic"], ref_t.statistic, rtol=1e-6)
    assert np.isclose(ttest["p_value"], ref_t.pvalue, rtol=1e-6)
    assert np.isclose(ttest["df"], ref_t.df, rtol=1e-6)
    assert np.isclose(ttest["mean_diff"], centred[0].mean() - centred[2].mean(), rtol=1e-6)
    assert np.isclose(ttest["ci_low"], ci.low, rtol=1e-6)
    assert np.isclose(ttest["ci_high"], ci.high, rtol=1e-6)
