"""The report's comparisons read every level's statistics in one batched pass of the analysis
query layer (not one analysis per stratum), with results as scipy computes them from the raw
trials; a stratum the batch cannot answer (NaN values) gets the plain analysis's refusal."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats

import analysis.query
import reports.compare
from reports.compare import compare
from runner.store import TrialRecord, open_store

ENGINES = ("dask", "ray", "spark")
WORKERS = (1, 2, 4)


def _db(path: Path, *, nan_at: tuple[str, int] | None = None) -> dict[tuple[str, int], list]:
    """Three engines at three worker counts (9 cells of 7 trials); returns the raw values."""
    rng = np.random.default_rng(11)
    values: dict[tuple[str, int], list[float]] = {}
    with open_store(path) as store:
        run = store.begin_run(source="measured", argv=["runner"], env={"python": "3.11"})
        records = []
        for e, engine in enumerate(ENGINES):
            for workers in WORKERS:
                cell = [
                    float(1e6 + e * 0.1 + 1.0 / workers + rng.normal(0, 0.05)) for _ in range(7)
                ]
                if (engine, workers) == nan_at:
                    cell[3] = float("nan")
                values[(engine, workers)] = cell
                for rep, x in enumerate(cell):
                    v = {"experiment": "x", "engine": engine, "workload": "mlp",
                         "dataset": "digits", "workers": workers, "threads_per_worker": 1,
                         "warmup": False, "repetition": rep, "train_s": x}  # fmt: skip
                    records.append(TrialRecord(run_id=run, status="ok", values=v))
        store.append_trials(records)
        store.finish_run(run)
    return values


def _spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"level_stats": 0, "anova": 0, "ttest": 0}
    real = analysis.query.level_stats

    def level_stats(*a, **k):  # type: ignore[no-untyped-def]
        calls["level_stats"] += 1
        return real(*a, **k)

    monkeypatch.setattr(analysis.query, "level_stats", level_stats)
    for name in ("anova", "ttest"):
        plain = getattr(reports.compare, name)

        def counted(*a, _name=name, _plain=plain, **k):  # type: ignore[no-untyped-def]
            calls[_name] += 1
            return _plain(*a, **k)

        monkeypatch.setattr(reports.compare, name, counted)
    return calls


def test_every_stratum_from_one_batched_pass(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "grid.duckdb"
    values = _db(db)
    calls = _spy(monkeypatch)
    with duckdb.connect(str(db), read_only=True) as con:
        res = compare(con)
    assert calls == {"level_stats": 1, "anova": 0, "ttest": 0}
    assert len(res.anovas) == 6 and not res.ttests  # engine at 3 worker counts, and the reverse
    for c in res.anovas:
        fixed = dict(c.stratum.fixed)
        if c.factor == "engine":
            groups = [values[(e, fixed["workers"])] for e in ENGINES]
        else:
            groups = [values[(fixed["engine"], w)] for w in WORKERS]
        ref = stats.f_oneway(*groups)
        assert c.anova.statistic == pytest.approx(ref.statistic, rel=1e-9)
        assert c.anova.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
        assert [g.mean for g in c.anova.groups] == pytest.approx([np.mean(g) for g in groups])
        lev = stats.levene(*groups, center="median")
        assert c.anova.levene_p_value == pytest.approx(lev.pvalue, rel=1e-6)
        kw = stats.kruskal(*groups)
        assert c.anova.kruskal_p_value == pytest.approx(kw.pvalue, rel=1e-9)


def test_two_levels_are_a_welch_test_from_the_batch(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "grid.duckdb"
    values = _db(db)
    calls = _spy(monkeypatch)
    with duckdb.connect(str(db), read_only=True) as con:
        res = compare(con, requested=[("engine", ("spark", "dask"))])
    assert calls == {"level_stats": 1, "anova": 0, "ttest": 0}
    assert len(res.ttests) == 3
    for c in res.ttests:
        a, b = (
            values[("spark", dict(c.stratum.fixed)["workers"])],
            values[("dask", dict(c.stratum.fixed)["workers"])],
        )
        ref = stats.ttest_ind(a, b, equal_var=False)
        assert (c.ttest.a, c.ttest.b) == ("spark", "dask")
        assert c.ttest.statistic == pytest.approx(ref.statistic, rel=1e-9)
        assert c.ttest.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        assert (c.ttest.median_a, c.ttest.median_b) == pytest.approx((np.median(a), np.median(b)))


def test_nan_values_get_the_plain_refusal(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "grid.duckdb"
    _db(db, nan_at=("ray", 2))
    calls = _spy(monkeypatch)
    with duckdb.connect(str(db), read_only=True) as con:
        res = compare(con)
    # the two strata holding the NaN cell (engine at workers=2, workers of ray) run plain
    assert calls["anova"] == 2
    refused = [c for f in res.factors for c in f.comparisons if c.reason]
    assert len(refused) == 2 and all("NaN" in c.reason for c in refused)
    assert len(res.anovas) == 4
