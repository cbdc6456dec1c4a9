"""`analysis.cost`: cost per configuration, Pareto front, deadline, prices, and COST — against
medians and dominance worked out here with NumPy on the raw rows."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import AnalysisError
from analysis.cost import BUILTIN_PRICES, cost, cost_metric
from runner.errors import RunnerError
from runner.importer import import_prices


def _trial(engine: str, workers: int, train_s: float, **extra) -> dict:
    base = {"engine": engine, "workload": "knn", "dataset": "digits", "threads_per_worker": 1}
    return {**base, "warmup": False, "workers": workers, "train_s": train_s, **extra}


@pytest.fixture
def times(rng) -> dict[tuple[str, int], np.ndarray]:
    return {
        ("local", 1): rng.normal(1.0, 0.02, 7),
        ("dask", 1): rng.normal(1.5, 0.05, 6),
        ("dask", 2): rng.normal(1.1, 0.05, 8),
        ("dask", 4): rng.normal(0.8, 0.05, 5),
        ("spark", 1): rng.normal(2.0, 0.1, 5),
        ("spark", 2): rng.normal(1.5, 0.1, 5),
    }


@pytest.fixture
def measured(make_db, times) -> Path:
    trials = [_trial(e, w, float(v)) for (e, w), vals in times.items() for v in vals]
    trials.append(_trial("dask", 4, 99.0, warmup=True))
    trials.append({**_trial("dask", 2, 99.0), "status": "failed"})
    return make_db(trials)


def dominated(points: list[tuple[float, float]], i: int) -> bool:
    t, c = points[i]
    return any(
        t2 <= t and c2 <= c and (t2, c2) != (t, c) for j, (t2, c2) in enumerate(points) if j != i
    )


def test_cost_per_core_hour_matches_medians(measured, times):
    res = cost(measured, usd_per_core_hour=0.05, by=["engine"])
    assert res.by == ("engine", "workers", "threads_per_worker", "cores")
    got = {(r.level["engine"], int(r.level["workers"])): r for r in res.rows}
    assert set(got) == set(times)
    points = []
    for key, values in times.items():
        row = got[key]
        median = float(np.median(values))
        assert row.n == len(values)
        assert row.median_s == pytest.approx(median, rel=1e-12)
        assert row.usd_per_hour == pytest.approx(key[1] * 0.05)
        assert row.median_cost_usd == pytest.approx(median * key[1] * 0.05 / 3600, rel=1e-12)
        points.append((median, median * key[1] * 0.05 / 3600))
    for i, key in enumerate(times):
        assert got[key].pareto == (not dominated(points, i))
    assert sum(r.pareto for r in res.rows) >= 2  # local (cheapest) and dask x4 (fastest)
    # local (1 core, ~1.0 s) is the cheapest overall; with a 0.9 s deadline only dask x4 meets it
    assert res.cheapest is not None and res.cheapest.level["engine"] == "local"
    tight = cost(measured, usd_per_core_hour=0.05, by=["engine"], deadline_s=0.9)
    assert tight.cheapest is not None
    assert (tight.cheapest.level["engine"], tight.cheapest.level["workers"]) == ("dask", "4")
    none = cost(measured, usd_per_core_hour=0.05, by=["engine"], deadline_s=0.1)
    assert none.cheapest is None and "no configuration meets the deadline" in str(none)


def test_machine_prices_builtin_and_imported(make_db, tmp_path, rng):
    hours = {"m4.xlarge": rng.normal(300, 5, 4), "c3.2xlarge": rng.normal(260, 5, 4)}
    trials = [
        _trial("spark", 1, float(v), params={"instance": name, "nodes": 3})
        for name, vals in hours.items()
        for v in vals
    ]
    db = make_db(trials)
    builtin = dict((name, usd) for name, _, _, usd in BUILTIN_PRICES)
    res = cost(db, machine="instance", nodes="nodes")
    for row in res.rows:
        name = row.level["instance"]
        assert row.usd_per_hour == pytest.approx(3 * builtin[name])
        want = float(np.median(hours[name])) * 3 * builtin[name] / 3600
        assert row.median_cost_usd == pytest.approx(want, rel=1e-12)
    prices = tmp_path / "prices.csv"
    prices.write_text("Instance,vCPU,Mem (GiB),Cost ($/hr)\nm4.xlarge,4,16,$0.10\nx9.huge,64,,2\n")
    assert import_prices(prices, db=db).names == ("m4.xlarge", "x9.huge")
    cheaper = cost(db, machine="instance")
    m4 = next(r for r in cheaper.rows if r.level["instance"] == "m4.xlarge")
    assert m4.usd_per_hour == pytest.approx(0.10)


def test_unknown_machine_and_bad_pricing_are_clear_errors(make_db, measured):
    db = make_db([_trial("spark", 1, 3.0, params={"instance": "z1.tiny"})])
    with pytest.raises(AnalysisError, match="no price for instance='z1.tiny'"):
        cost(db, machine="instance")
    with pytest.raises(AnalysisError, match="price the trials one way"):
        cost(measured)
    with pytest.raises(AnalysisError, match="price the trials one way"):
        cost(measured, machine="engine", usd_per_core_hour=1.0)
    with pytest.raises(AnalysisError, match="--usd-per-core-hour must be > 0"):
        cost(measured, usd_per_core_hour=0.0)
    with pytest.raises(AnalysisError, match="--deadline must be a positive"):
        cost(measured, usd_per_core_hour=1.0, deadline_s=-1.0)
    with pytest.raises(AnalysisError, match="is not a column"):
        cost(measured, usd_per_core_hour=1.0, by=["nope"])


def test_bad_prices_file_writes_nothing(tmp_path):
    db = tmp_path / "r.duckdb"
    bad = tmp_path / "p.csv"
    bad.write_text("name,usd_per_hour\nm4.xlarge,cheap\n")
    with pytest.raises(RunnerError, match="usd_per_hour 'cheap' is not a number"):
        import_prices(bad, db=db)
    bad.write_text("name,vcpu\nm4.xlarge,4\n")
    with pytest.raises(RunnerError, match="no usd_per_hour column"):
        import_prices(bad, db=db)
    assert not db.exists()


def test_cost_metric_smallest_configuration_beating_one_core(measured, times):
    res = cost_metric(measured)
    got = {r.engine: r for r in res.rows}
    base = float(np.median(times[("local", 1)]))
    assert all(r.baseline_s == pytest.approx(base, rel=1e-12) for r in res.rows)
    # the smallest dask configuration whose median beats the single-core best
    dask = min(w for (e, w), v in times.items() if e == "dask" and np.median(v) < base)
    assert got["dask"].cost_cores == dask == 4
    assert got["spark"].cost_cores is None and got["spark"].verdict == "never (up to 2 cores)"
    assert got["local"].verdict == "baseline"
    assert "COST" in str(res)


# -- ill-conditioned data: 1e12 + tiny noise, tiny times, a million workers ----------------------
OFFSET = 1e12
TRANSFORMS = {
    "1e12 + tiny noise": lambda v: OFFSET + 0.01 * v,  # spreads of 2e-4 .. 1e-3: a few ulps
    "nanoseconds": lambda v: 1e-9 * v,
    "petaseconds": lambda v: 1e15 * v,
}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_ill_conditioned_medians_pareto_deadline_and_cost(make_db, times, transform):
    """Medians, costs, the Pareto front, the deadline and COST against NumPy on the raw rows, for
    times far from 1 s (an even count per group: the median interpolates)."""
    f = TRANSFORMS[transform]
    data = {k: f(np.append(v, v[0] + 0.01)) if len(v) % 2 else f(v) for k, v in times.items()}
    trials = [_trial(e, w, float(x)) for (e, w), vals in data.items() for x in vals]
    db = make_db(trials)
    medians = {k: float(np.median(v)) for k, v in data.items()}
    ulp = float(np.spacing(max(medians.values())))
    res = cost(db, usd_per_core_hour=0.05, by=["engine"])
    got = {(r.level["engine"], int(r.level["workers"])): r for r in res.rows}
    points = []
    for key, median in medians.items():
        row = got[key]
        assert row.n == len(data[key])
        assert row.median_s == pytest.approx(median, rel=1e-15, abs=ulp)
        usd = median * key[1] * 0.05 / 3600
        assert row.median_cost_usd == pytest.approx(usd, rel=1e-14)
        points.append((median, usd))
    for i, key in enumerate(medians):
        assert got[key].pareto == (not dominated(points, i)), key
    # a deadline between the two fastest medians: only the fastest meets it
    fastest, second = sorted(medians.values())[:2]
    deadline = fastest + (second - fastest) / 2
    assert fastest < deadline < second
    tight = cost(db, usd_per_core_hour=0.05, by=["engine"], deadline_s=deadline)
    best = min(medians, key=medians.get)
    assert tight.cheapest is not None
    assert (tight.cheapest.level["engine"], int(tight.cheapest.level["workers"])) == best
    assert sum(bool(r.meets_deadline) for r in tight.rows) == 1
    # COST: the smallest dask configuration whose median beats the best single core
    base = min(medians[k] for k in medians if k[1] == 1)
    res_cost = {r.engine: r for r in cost_metric(db).rows}
    assert res_cost["dask"].baseline_s == pytest.approx(base, rel=1e-15, abs=ulp)
    dask = min((w for (e, w), m in medians.items() if e == "dask" and m < base), default=None)
    assert res_cost["dask"].cost_cores == dask == 4
    assert res_cost["spark"].cost_cores is None


def test_a_million_workers_priced_per_core(make_db, rng):
    """workers up to 1e6 (times 2 threads): cores, hourly prices and costs stay exact."""
    workers = (1, 1000, 1_000_000)
    data = {w: rng.normal(3600.0 / w**0.5, 1.0 / w**0.5, 4) for w in workers}
    db = make_db(
        [_trial("ray", w, float(v), threads_per_worker=2) for w, vals in data.items() for v in vals]
    )
    res = cost(db, usd_per_core_hour=0.04, by=["engine"])
    got = {int(r.level["workers"]): r for r in res.rows}
    for w, vals in data.items():
        median = float(np.median(vals))
        assert got[w].usd_per_hour == pytest.approx(2 * w * 0.04, rel=1e-15)
        assert got[w].median_cost_usd == pytest.approx(median * 2 * w * 0.04 / 3600, rel=1e-14)
    assert [got[w].pareto for w in workers] == [True, True, True]


def test_cost_metric_without_a_single_core_configuration_says_so_per_task(make_db, times):
    """A task without a one-core configuration gets rows that say so (and how to get one);
    the other tasks keep their COST: one missing baseline no longer refuses everything."""
    trials = [_trial(e, w, float(v)) for (e, w), vals in times.items() for v in vals]
    trials += [_trial("dask", w, t, workload="mlp") for w, t in ((2, 1.0), (2, 1.1), (4, 0.7))]
    res = cost_metric(make_db(trials))
    mlp = [r for r in res.rows if r.workload == "mlp"]
    assert [(r.engine, r.verdict, r.baseline_s) for r in mlp] == [
        ("dask", "no 1-core baseline", None)
    ]
    knn = {r.engine: r for r in res.rows if r.workload == "knn"}
    base = float(np.median(times[("local", 1)]))
    assert knn["dask"].cost_cores == 4 and knn["dask"].baseline_s == pytest.approx(base, rel=1e-12)
    text = str(res)
    assert max(len(line) for line in text.splitlines()) <= 120
    flat = " ".join(text.split())  # lines wrapped at 120 columns
    assert "no single-core configuration" in flat and "in 1 of 2 tasks: mlp on digits;" in flat
    assert "run one (e.g. engine local)" in flat


@pytest.mark.parametrize("held_max", [0, 10**9])
def test_medians_in_batches_of_configurations(measured, times, monkeypatch, held_max):
    """A store of more than HELD_MAX trials: counts first, then the medians one scan per batch
    of configurations (0: one each). The same results against NumPy, cost and cost-metric."""
    data = sys.modules["analysis.cost_data"]
    monkeypatch.setattr(sys.modules["analysis.query"], "HELD_MAX", held_max)
    scans = []
    real = data.execute
    monkeypatch.setattr(data, "execute", lambda *a: scans.append(a[1]) or real(*a))
    test_cost_per_core_hour_matches_medians(measured, times)
    test_cost_metric_smallest_configuration_beating_one_core(measured, times)
    batches = sum(sql.startswith("SELECT __i, median") for sql in scans)
    assert batches >= len(times) if held_max == 0 else batches == 0


def test_ill_conditioned_medians_in_batches(make_db, times, monkeypatch):
    monkeypatch.setattr(sys.modules["analysis.query"], "HELD_MAX", 0)
    test_ill_conditioned_medians_pareto_deadline_and_cost(make_db, times, "1e12 + tiny noise")
