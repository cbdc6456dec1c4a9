"""analysis.query.moments: per-key sufficient statistics against exact arithmetic (fractions) and
NumPy on the raw values; two passes of plain GROUP BY, no window function."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from analysis import data
from analysis.errors import AnalysisError
from analysis.query import Sql, key_batches, level_stats, moments


def _exact(values: list[float]) -> tuple[Fraction, Fraction]:
    xs = [Fraction(v) for v in values]
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, var


def test_moments_per_key_match_exact_arithmetic(db, groups):
    with data.connect(db) as con:
        sel = data.select(con, metric="train_s", group=["workers"])
        rows = moments(con, sel, metrics=["train_s"], keys=["workers"])
    assert [r.key for r in rows] == [(1,), (2,), (4,)]
    for r in rows:
        values = [float(v) for v in groups[r.key[0]]]
        mean, var = _exact(values)
        assert r.n == r.stat.n == len(values)
        assert r.stat.shift == min(values)  # a data value: the key's minimum
        assert r.stat.mean == pytest.approx(float(mean), rel=1e-14)
        assert r.stat.var == pytest.approx(float(var), rel=1e-12)


def test_moments_keep_the_noise_of_1e12_offsets(make_db, trials_for, rng):
    noise = {1: rng.normal(0, 1e-3, 20), 2: rng.normal(0, 2e-3, 15)}
    db = make_db(trials_for({k: 1e12 + v for k, v in noise.items()}))
    with data.connect(db) as con:
        sel = data.select(con, metric="train_s", group=["workers"])
        rows = moments(con, sel, metrics=["train_s"], keys=["workers"])
    for r in rows:
        values = [float(1e12 + v) for v in noise[r.key[0]]]  # as stored
        mean, var = _exact(values)
        assert float(Fraction(r.stat.shift) + Fraction(r.stat.mean_dev)) == pytest.approx(
            float(mean), rel=1e-15
        )
        assert r.stat.var == pytest.approx(float(var), rel=1e-9)


def test_moments_scaled_by_a_power_of_two_stay_finite_at_1e300(make_db, trials_for, rng):
    values = {1: 1e300 * rng.uniform(1, 2, 10), 2: 1e300 * rng.uniform(1, 3, 10)}
    db = make_db(trials_for(values))
    scale = math.ldexp(1.0, 996)
    with data.connect(db) as con:
        sel = data.select(con, metric="train_s", group=["workers"])
        rows = moments(con, sel, metrics=["train_s"], keys=["workers"], scale=scale)
    for r in rows:
        ref = np.asarray(values[r.key[0]]) / scale
        assert r.stat.mean == pytest.approx(float(ref.mean()), rel=1e-13)
        assert r.stat.var == pytest.approx(float(ref.var(ddof=1)), rel=1e-10)


def test_moments_of_two_metrics_shifts_passed_in_and_extra_aggregates(db, groups):
    with data.connect(db) as con:
        sel = data.select(con, metric="train_s", group=["workers"])
        rows = moments(
            con,
            sel,
            metrics=["train_s", "wall_s"],
            keys=[Sql("workers * 10")],
            shifts={(10,): (2.0, 3.0), (40,): (1.0, 1.5)},
            aggregates=["sum(d0 * d1)", "max(x0)"],
        )
        raw = con.execute(
            "SELECT workers, train_s, wall_s FROM observations WHERE status = 'ok' AND NOT warmup"
        ).fetchall()
    assert [r.key for r in rows] == [(10,), (40,)]  # a key without a shift is left out
    for r, (s0, s1) in zip(rows, [(2.0, 3.0), (1.0, 1.5)], strict=True):
        x = np.array([t[1] for t in raw if t[0] * 10 == r.key[0]])
        y = np.array([t[2] for t in raw if t[0] * 10 == r.key[0]])
        assert (r.stats[0].shift, r.stats[1].shift) == (s0, s1)
        assert r.stats[0].mean == pytest.approx(float(x.mean()), rel=1e-13)
        assert r.stats[1].var == pytest.approx(float(y.var(ddof=1)), rel=1e-11)
        assert r.extra[0] == pytest.approx(float(np.sum((x - s0) * (y - s1))), rel=1e-12)
        assert r.extra[1] == float(x.max())


def test_moments_without_keys_and_empty_selection(db, groups):
    everything = np.concatenate(list(groups.values()))
    with data.connect(db) as con:
        sel = data.select(con, metric="train_s")
        (row,) = moments(con, sel, metrics=["train_s"])
        assert row.key == () and row.n == len(everything)
        assert row.stat.var == pytest.approx(float(everything.var(ddof=1)), rel=1e-12)
        none = data.select(con, metric="train_s", where=["workers=3"])
        assert moments(con, none, metrics=["train_s"], keys=["workers"]) == []
        assert moments(con, none, metrics=["train_s"]) == []


def test_moments_sql_has_no_window_function(db, monkeypatch):
    seen: list[str] = []
    original = data.execute

    def spy(con, sql, params=()):
        seen.append(sql)
        return original(con, sql, params)

    monkeypatch.setattr("analysis.query.execute", spy)
    with data.connect(db) as con:
        sel = data.select(con, metric="train_s", group=["workers"])
        moments(con, sel, metrics=["train_s"], keys=["workers"])
    assert seen and all(" OVER " not in s.upper() for s in seen)
    assert all("GROUP BY" in s for s in seen)


def test_connect_sets_the_memory_limit(db):
    with data.connect(db) as con:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        order = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    assert "MiB" in limit or "MB" in limit
    assert order is True  # a bootstrap resamples fetched rows by position


def test_key_batches_split_in_order_and_keep_a_big_key_alone():
    rows = {"a": 1, "b": 2, "c": 3, "d": 4}
    counts = {"a": 4, "b": 5, "c": 20, "d": 1}
    assert key_batches(rows, counts, 30) == [rows]
    assert key_batches(rows, counts, 10) == [{"a": 1, "b": 2}, {"c": 3}, {"d": 4}]
    assert key_batches(rows, counts, 9) == [{"a": 1, "b": 2}, {"c": 3}, {"d": 4}]
    assert key_batches(rows, counts, 8) == [{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]
    assert key_batches({}, {}, 1) == [{}]


@pytest.mark.parametrize("extent", [False, True])
def test_level_stats_in_batches_of_keys_as_numpy(make_db, trials_for, rng, monkeypatch, extent):
    """Above HELD_VALUES values, pass 2 (the quartiles hold every value) runs one scan per batch
    of keys; every statistic is NumPy's on the raw values, as in one scan."""
    import analysis.query as query

    samples = {w: 1e12 + rng.normal(0, 1 + w, 30 + 7 * w) for w in (1, 2, 4, 8)}
    trials = [{**t, "engine": e} for e in ("dask", "ray") for t in trials_for(samples)]
    db = make_db(trials)
    seen: list[str] = []
    original = data.execute

    def spy(con, sql, params=()):
        seen.append(sql)
        return original(con, sql, params)

    def run():
        with data.connect(db) as con:
            sel = data.select(con, metric="train_s", group=["engine", "workers"])
            ext = None
            if extent:
                ext = {(e, w): (len(v), float(v.min()), float(np.abs(v).max()))
                       for e in ("dask", "ray") for w, v in samples.items()}  # fmt: skip
            return level_stats(con, sel, metric="train_s", keys=["engine", "workers"],
                               strata=1, extent=ext)  # fmt: skip

    whole = run()
    monkeypatch.setattr("analysis.query.execute", spy)
    monkeypatch.setattr(query, "HELD_VALUES", 100)
    batched = run()
    quartile_scans = [s for s in seen if "quantile_cont" in s]
    assert len(quartile_scans) == 6  # 8 keys of 37, 44, 58, 86 values, at most 100 a scan
    assert batched == whole
    assert [r.key for r in batched] == [(e, w) for e in ("dask", "ray") for w in (1, 2, 4, 8)]
    for r in batched:
        v = samples[r.key[1]]
        d = v - v.min()
        assert r.n == len(v) and r.shift == v.min()
        assert r.mean_dev == pytest.approx(d.mean(), rel=1e-12)
        assert r.var == pytest.approx(d.var(ddof=1), rel=1e-10)
        q = np.quantile(d, [0.25, 0.5, 0.75])
        assert list(r.quartiles) == pytest.approx(list(v.min() + q), rel=1e-15, abs=0)
        dev = np.abs(d - q[1])
        assert r.abs_mean == pytest.approx(dev.mean(), rel=1e-12)
        assert r.abs_var == pytest.approx(dev.var(ddof=1), rel=1e-10)
        iqr = q[2] - q[0]
        assert r.far_out == int(np.sum((d < q[0] - 3 * iqr) | (d > q[2] + 3 * iqr)))


def test_moments_per_key_values_are_thresholds_over_the_unscaled_metric(db, groups):
    # per key: a threshold (v0) and a range (v1, v2) over the metric as stored (r0), beside a
    # scale of 4 for the moments; references: NumPy on the raw values
    scale = 4.0
    cut = {(k,): float(np.median(v)) for k, v in groups.items()}
    span = {
        (k,): (float(np.percentile(v, 30)), float(np.percentile(v, 60))) for k, v in groups.items()
    }
    values = {key: (cut[key], *span[key]) for key in cut}
    del values[(2,)]  # a key without values gets NaN: nothing counted, nothing listed
    with data.connect(db) as con:
        sel = data.select(con, metric="train_s", group=["workers"])
        shifts = {(k,): (float(np.min(v)) / scale,) for k, v in groups.items()}
        rows = moments(
            con,
            sel,
            metrics=["train_s"],
            keys=["workers"],
            scale=scale,
            shifts=shifts,
            values=values,
            aggregates=["count_if(r0 > v0)", "list(r0) FILTER (WHERE r0 BETWEEN v1 AND v2)"],
        )
        with pytest.raises(AnalysisError, match="needs shifts"):
            moments(con, sel, metrics=["train_s"], keys=["workers"], values=values)
    assert [r.key for r in rows] == [(1,), (2,), (4,)]
    for r in rows:
        raw = np.asarray(groups[r.key[0]], dtype=float)
        assert r.stat.mean * scale == pytest.approx(raw.mean(), rel=1e-14)
        above, listed = r.extra
        if r.key not in values:
            assert (above, listed) == (0, None)
            continue
        lo, hi = span[r.key]
        assert above == int((raw > cut[r.key]).sum())
        assert sorted(listed) == sorted(raw[(raw >= lo) & (raw <= hi)].tolist())
