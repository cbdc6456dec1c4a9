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
