"""`analysis.cost` on data priced other ways than workers x threads (a published table's cores or
vcpu x nodes, an hourly price column), what it says when something is missing, and its
``tables()`` (every statistic of the text, main table first). Reference numbers are medians
worked out with NumPy and prices multiplied out here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis import AnalysisError
from analysis.cost import cost, cost_metric
from tests.conftest import run_cli


def _pub(engine: str, train_s: float, **params) -> dict:
    """A published-table trial: no workers, its size in params (cores, vcpu, nodes, ...)."""
    return {"engine": engine, "workload": "mlp", "dataset": "mnist", "train_s": train_s,
            "params": params}  # fmt: skip


@pytest.fixture
def published(make_db) -> Path:
    return make_db(
        [
            _pub("spark", 300.0, cores=8.0),
            _pub("spark", 200.0, cores=16.0),
            _pub("tensorflow", 90.0, vcpu=4.0, cost_usd_hr=0.21),
            _pub("tensorflow", 60.0, vcpu=8.0, nodes=2.0, cost_usd_hr=0.42),
            _pub("tensorflow", 55.0, cluster="gpu"),  # nothing says its size
            {**_pub("local", 1000.0, cores=1.0), "engine": "local"},
        ]
    )


def test_cores_or_vcpu_instead_of_workers_are_priced(published) -> None:
    res = cost(published, usd_per_core_hour=0.05, by=["engine", "cluster"])
    got = {(r.level["engine"], r.median_s): r for r in res.rows}
    # cores, or vcpu x nodes: 8, 16, 4, 8 x 2, 1 cores at $0.05 per core-hour
    for (engine, t), cores in {("spark", 300.0): 8, ("spark", 200.0): 16,
                               ("tensorflow", 90.0): 4, ("tensorflow", 60.0): 16,
                               ("local", 1000.0): 1}.items():  # fmt: skip
        row = got[(engine, t)]
        assert row.cores == cores and row.usd_per_hour == pytest.approx(cores * 0.05)
        assert row.median_cost_usd == pytest.approx(t * cores * 0.05 / 3600, rel=1e-15)
    unpriced = got[("tensorflow", 55.0)]
    assert unpriced.usd_per_hour is None and unpriced.median_cost_usd is None
    assert not unpriced.pareto
    assert any("1 configurations (1 trials) have no core count" in n for n in res.notes)
    # cost per trial: 90 s x 4 cores is the cheapest (0.005 $); 55 s unpriced is never picked
    assert res.cheapest is not None and res.cheapest.median_s == 90.0
    flat = " ".join(str(res).split())
    assert "--machine COL" in flat and "no core count" in flat


def test_hourly_price_column_used_when_no_price_is_given(published) -> None:
    res = cost(published, by=["engine"])
    assert res.basis.startswith("cost_usd_hr")
    priced = {r.median_s: r.median_cost_usd for r in res.rows if r.median_cost_usd is not None}
    assert priced == {90.0: pytest.approx(90 * 0.21 / 3600), 60.0: pytest.approx(60 * 0.42 / 3600)}
    assert any("have no cost_usd_hr" in n for n in res.notes)


def test_no_price_names_the_options(make_db) -> None:
    db = make_db([{"engine": "dask", "workload": "knn", "workers": 2, "train_s": 1.0}])
    with pytest.raises(AnalysisError) as err:
        cost(db)
    message = str(err.value)
    assert "needs a price" in message and "--usd-per-core-hour" in message
    assert "--machine" in message and "\n" not in message


def test_imported_csv_without_a_price_is_a_one_line_refusal(tmp_path) -> None:
    from runner.importer import import_csv

    csv = tmp_path / "m.csv"
    csv.write_text("engine,workload,workers,train_s\nlocal,knn,1,1.0\ndask,knn,2,0.6\n")
    path = tmp_path / "imp.duckdb"
    import_csv(csv, db=path)
    proc = run_cli("analyze", "cost", "--db", path)
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert "cost needs a price" in line and "--usd-per-core-hour" in line and "--machine" in line


def test_cost_metric_counts_cores_from_the_published_columns(published) -> None:
    res = cost_metric(published)
    rows = {r.engine: r for r in res.rows}
    assert rows["local"].verdict == "baseline" and rows["local"].baseline_s == 1000.0
    assert rows["spark"].cost_cores == 8 and rows["spark"].median_s == 300.0
    assert rows["tensorflow"].cost_cores == 4 and rows["tensorflow"].unknown_cores == 1
    assert "1 configurations without a core count" in " ".join(str(res).split())


def test_cost_tables_carry_every_statistic_of_the_text(make_db, rng) -> None:
    data = {(e, w): rng.normal(t, 0.05, 5) for e, w, t in
            (("local", 1, 2.0), ("dask", 2, 1.2), ("dask", 4, 0.7))}  # fmt: skip
    trials = [{"engine": e, "workload": "knn", "dataset": "digits", "workers": w,
               "threads_per_worker": 1, "train_s": float(v)}
              for (e, w), vals in data.items() for v in vals]  # fmt: skip
    res = cost(make_db(trials), usd_per_core_hour=0.1, by=["engine"], deadline_s=1.0)
    tables = res.tables()
    assert [t.name for t in tables] == ["configurations", "cheapest"]
    main = tables[0].frame
    for col in ("engine", "workers", "cores", "n", "median_s", "usd_per_hour",
                "median_cost_usd", "pareto", "meets_deadline"):  # fmt: skip
        assert col in main.columns
    medians = {w: float(np.median(v)) for (_, w), v in data.items()}
    got = dict(zip(main["workers"].astype(int), main["median_s"], strict=True))
    assert got == pytest.approx(medians, rel=1e-12)
    cheap = tables[1].frame.iloc[0]
    assert cheap["cheapest"] == res.cheapest.label and cheap["deadline_s"] == 1.0
    assert cheap["median_cost_usd"] == pytest.approx(medians[4] * 4 * 0.1 / 3600, rel=1e-12)
    metric = cost_metric(make_db(trials)).tables()
    assert [t.name for t in metric] == ["cost"]
    frame = metric[0].frame.set_index("engine")
    assert frame.loc["dask", "verdict"] == "2" and frame.loc["local", "verdict"] == "baseline"
    assert frame.loc["dask", "baseline_s"] == pytest.approx(medians[1], rel=1e-12)
    assert frame.loc["dask", "median_s"] == pytest.approx(medians[2], rel=1e-12)
