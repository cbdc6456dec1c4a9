from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis import AnalysisError
from analysis.data import connect, select
from analysis.ranks import rank_sums


def _reference(groups: dict[int, np.ndarray], levels: list[int]) -> tuple[list[float], float]:
    pooled = np.concatenate([groups[lv] for lv in levels])
    ranks = stats.rankdata(pooled)
    sums, start = [], 0
    for lv in levels:
        sums.append(float(ranks[start : start + len(groups[lv])].sum()))
        start += len(groups[lv])
    _, counts = np.unique(pooled, return_counts=True)
    return sums, float((counts.astype(float) ** 3 - counts).sum())


@pytest.mark.parametrize("levels", [None, ["1", "4"]])
def test_rank_sums_match_scipy_rankdata_with_ties(make_db, trials_for, rng, levels):
    groups = {
        1: np.round(rng.normal(4.0, 0.3, 12), 1),  # rounded: many ties, also across levels
        2: np.round(rng.normal(4.1, 0.2, 9), 1),
        4: np.round(rng.normal(3.9, 0.4, 15), 1),
    }
    path = make_db(trials_for(groups))
    with connect(path) as con:
        sel = select(con, metric="train_s", group=["workers"])
        res = rank_sums(con, sel, metric="train_s", group="workers", levels=levels)
    used = [1, 2, 4] if levels is None else [1, 4]
    ref_sums, ref_ties = _reference(groups, used)
    assert res.levels == tuple(str(u) for u in used)
    assert res.n == tuple(len(groups[u]) for u in used)
    assert res.rank_sum == pytest.approx(ref_sums, rel=1e-12)
    assert res.tie_term == pytest.approx(ref_ties, rel=1e-12)
    assert ref_ties > 0


def test_unknown_level_is_an_error(db):
    with connect(db) as con:
        sel = select(con, metric="train_s", group=["workers"])
        with pytest.raises(AnalysisError, match="level 3 has no trial"):
            rank_sums(con, sel, metric="train_s", group="workers", levels=["1", "3"])


def _sorted_reference(groups: list[np.ndarray]) -> tuple[list[float], int]:
    pooled = np.concatenate(groups)
    ranks = stats.rankdata(pooled)
    sums, start = [], 0
    for g in groups:
        sums.append(float(ranks[start : start + len(g)].sum()))
        start += len(g)
    _, counts = np.unique(pooled, return_counts=True)
    return sums, sum(int(t) ** 3 - int(t) for t in counts)


@pytest.mark.parametrize("offset", [0.0, 1e12, -1e300])
def test_sorted_rank_sums_match_scipy_rankdata(rng, offset):
    from analysis.ranks import sorted_rank_sums

    step = 2**-13 if offset == 1e12 else 1.0 if offset == 0 else 1e284
    groups = [
        offset + step * rng.integers(0, 30, n).astype(float)  # ties within and across groups
        for n in (50, 7, 120, 1)
    ]
    groups.append(np.array([-np.inf, np.inf, np.inf, offset]))
    got_sums, got_ties = sorted_rank_sums([np.sort(g) for g in groups])
    ref_sums, ref_ties = _sorted_reference(groups)
    assert got_sums == ref_sums  # half-integers: exact
    assert got_ties == ref_ties > 0


def test_sorted_rank_sums_edge_cases():
    from analysis.ranks import sorted_rank_sums, tie_term

    assert sorted_rank_sums([np.array([3.0])]) == ([1.0], 0)
    assert sorted_rank_sums([np.array([1.0, 2.0]), np.array([1.5])]) == ([4.0, 2.0], 0)
    assert sorted_rank_sums([np.full(4, 2.0), np.full(3, 2.0)]) == ([16.0, 12.0], 7**3 - 7)
    # a run too long for t^3 in int64 arithmetic with other runs: exact Python integers
    t = 2_100_000
    pooled = np.concatenate([np.zeros(t), np.ones(3), np.full(2, 5.0)])
    assert tie_term(pooled) == t**3 - t + 24 + 6


@pytest.mark.parametrize("levels", [None, ["1", "4"]])
def test_rank_sums_in_numpy_equal_the_window_and_scipy(make_db, trials_for, rng, levels):
    """``held`` lets numpy rank the values: the same sums and tie term as DuckDB's window and
    scipy's rankdata, with ties at a 1e12 offset."""
    groups = {
        1: 1e12 + 2**-13 * rng.integers(0, 9, 14),
        2: 1e12 + 2**-13 * rng.integers(0, 9, 9),
        4: 1e12 + 2**-13 * rng.integers(2, 11, 17),
    }
    path = make_db(trials_for(groups))
    with connect(path) as con:
        sel = select(con, metric="train_s", group=["workers"])
        window = rank_sums(con, sel, metric="train_s", group="workers", levels=levels)
        held = rank_sums(con, sel, metric="train_s", group="workers", levels=levels, held=100)
        small = rank_sums(con, sel, metric="train_s", group="workers", levels=levels, held=10)
    used = [1, 2, 4] if levels is None else [1, 4]
    ref_sums, ref_ties = _reference(groups, used)
    assert held == window == small  # small: more values than held, so DuckDB's window
    assert list(held.rank_sum) == ref_sums
    assert held.tie_term == ref_ties > 0


def test_rank_sums_in_one_scan_with_the_callers_keys(make_db, trials_for, rng):
    """With the levels' raw values and the expected count, one scan fetches the values: the
    same result as counting first; a key with no trial still gets the counting path's error."""
    groups = {1: 1e12 + 2**-13 * rng.integers(0, 9, 14), 4: 1e12 + 2**-13 * rng.integers(2, 11, 17)}
    groups[2] = np.array([1.0, np.nan])  # not ranked: a level left out
    path = make_db(trials_for(groups))
    with connect(path) as con:
        sel = select(con, metric="train_s", group=["workers"])
        kw = {"metric": "train_s", "group": "workers", "levels": ["1", "4"], "held": 100}
        one = rank_sums(con, sel, **kw, keys=[1, 4], expected=31)
        counted = rank_sums(con, sel, **kw)
        window = rank_sums(con, sel, metric="train_s", group="workers", levels=["1", "4"])
        with pytest.raises(AnalysisError, match="level 3 has no trial"):
            rank_sums(con, sel, **{**kw, "levels": ["1", "3"]}, keys=[1, 3], expected=20)
        with pytest.raises(AnalysisError, match="NaN in 1 selected"):
            rank_sums(con, sel, **{**kw, "levels": ["1", "2"]}, keys=[1, 2], expected=16)
    ref_sums, ref_ties = _reference(groups, [1, 4])
    assert one == counted == window
    assert list(one.rank_sum) == ref_sums and one.tie_term == ref_ties > 0
