"""The general report on any database: imported CSVs, Spark/Ray-only runs, one configuration,
published data only; comparisons from the data and --compare."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from reports import ReportError, build_report
from reports.compare import compare, parse_compare
from runner.store import TrialRecord, open_store

from ..conftest import assert_user_error, run_cli


def _import_csv(tmp_path: Path, text: str) -> Path:
    csv = tmp_path / "small.csv"
    csv.write_text(text, encoding="utf-8")
    db = tmp_path / "imported.duckdb"
    proc = run_cli("runner", "import", "csv", csv, "--db", db)
    assert proc.returncode == 0, proc.stderr
    return db


@pytest.mark.parametrize(
    "csv",
    [
        "engine,workload,workers,train_s\nlocal,knn,1,0.5\nlocal,knn,1,0.6\ndask,knn,2,0.4\n"
        "dask,knn,2,0.45\nspark,knn,2,0.9\n",
        "engine,workload,workers,train_s\nlocal,knn,1,\n",  # no time at all: was a traceback
        "engine,workload,workers,train_s\nlocal,knn,1,1e308\nlocal,knn,1,-1e308\n",
        "engine,workload,workers,train_s\nlocal,knn,1,0.5\n",  # one trial, one configuration
    ],
)
@pytest.mark.parametrize("fmt", ["html", "tex"])
def test_imported_csv_builds(tmp_path: Path, csv: str, fmt: str) -> None:
    db = _import_csv(tmp_path, csv)
    out = tmp_path / f"r.{fmt}"
    proc = run_cli("report", "build", "--format", fmt, "--db", db, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert out.stat().st_size > 0


def test_imported_csv_too_few_trials_is_said(tmp_path: Path) -> None:
    db = _import_csv(
        tmp_path,
        "engine,workload,workers,train_s\nlocal,knn,1,0.5\ndask,knn,1,0.4\n",
    )
    html = build_report(db, fmt="html", out=tmp_path / "r.html").path.read_text("utf-8")
    assert "too few trials to test (engine dask: 1, local: 1; needs 2 or more per level)" in html


def _engines_db(path: Path, engines: dict[tuple[str, int], float], n: int = 6) -> None:
    rng = np.random.default_rng(3)
    with open_store(path) as store:
        run = store.begin_run(source="measured", argv=["runner"], env={"python": "3.11"})
        records = []
        for (engine, workers), mean in engines.items():
            for rep in range(n):
                values = {
                    "experiment": "x", "engine": engine, "workload": "mlp", "dataset": "digits",
                    "workers": workers, "threads_per_worker": 1, "warmup": False,
                    "repetition": rep, "train_s": float(mean + rng.normal(0, 0.02)),
                    "params": {"impl": "mllib" if engine == "spark" else "sklearn"},
                }  # fmt: skip
                records.append(TrialRecord(run_id=run, status="ok", values=values))
        store.append_trials(records)
        store.finish_run(run)


def test_spark_and_ray_only(tmp_path: Path) -> None:
    db = tmp_path / "sr.duckdb"
    _engines_db(db, {("spark", 1): 2.0, ("spark", 2): 1.5, ("ray", 1): 1.2, ("ray", 2): 1.0})
    out = tmp_path / "r.html"
    build_report(db, fmt="html", out=out)
    html = out.read_text("utf-8")
    # engine (= impl: they change together) compared at each worker count, workers per engine
    assert "mlp: engine (= impl), Welch&#39;s t-test" in html
    assert "mlp: workers, Welch&#39;s t-test" in html
    assert html.count('<td class="wrap">workers=') == 2
    assert html.count('<td class="wrap">engine=') == 2


def test_compare_restricts_to_the_named_levels(tmp_path: Path) -> None:
    db = tmp_path / "three.duckdb"
    _engines_db(db, {("spark", 1): 2.0, ("ray", 1): 1.2, ("dask", 1): 1.4})
    with duckdb.connect(str(db), read_only=True) as con:
        res = compare(con, requested=parse_compare(["engine=spark,ray"]))
        full = compare(con)
    (c,) = res.ttests
    assert (c.ttest.a, c.ttest.b, c.ttest.n_a, c.ttest.n_b) == ("spark", "ray", 6, 6)
    assert not res.anovas
    (a,) = full.anovas  # three engines: one ANOVA
    assert [g.level for g in a.anova.groups] == ["dask", "ray", "spark"]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("colour=red,blue", "not a factor of these trials"),
        ("engine=spark,flink", "level 'flink' has no ok trials"),
        ("engine=spark", "fewer than two levels"),
        ("workload=mlp,knn", "never pooled"),
        ("=a,b", "not FACTOR=LEVEL,LEVEL"),
    ],
)
def test_bad_compare_is_one_line(tmp_path: Path, arg: str, message: str) -> None:
    db = tmp_path / "sr.duckdb"
    _engines_db(db, {("spark", 1): 2.0, ("ray", 1): 1.2})
    out = tmp_path / "r.html"
    proc = run_cli("report", "build", "-f", "html", "--db", db, "--out", out, "--compare", arg)
    assert message in assert_user_error(proc)
    assert not out.exists()


def test_published_only_general_report(tmp_path: Path) -> None:
    from runner.published import import_published

    db = tmp_path / "pub.duckdb"
    import_published(db, "all")
    out = tmp_path / "r.html"
    result = build_report(db, fmt="html", out=out)
    html = out.read_text("utf-8")
    assert "published:000" in html and "published:004" in html
    assert result.n_trials > 0


def test_paper_and_compare_together_is_a_user_error(tmp_path: Path) -> None:
    db = tmp_path / "sr.duckdb"
    _engines_db(db, {("spark", 1): 2.0, ("ray", 1): 1.2})
    with pytest.raises(ReportError, match="--compare applies to the general report"):
        build_report(db, fmt="html", out=tmp_path / "r.html", paper="000", compare=["engine"])
    with pytest.raises(ReportError, match="is not a paper"):
        build_report(db, fmt="html", out=tmp_path / "r.html", paper="007")
