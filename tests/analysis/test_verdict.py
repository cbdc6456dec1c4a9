"""analysis.verdict: decisions pinned against scipy/numpy on the raw values (real DuckDB files)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from analysis import AnalysisError
from analysis import verdict as decide
from tests.analysis.conftest import trials_for, write_db


def _db(tmp_path: Path, groups: dict, *, column: str = "workers", **fixed) -> Path:
    metric = fixed.pop("metric", "train_s")
    rows = trials_for(groups, column=column, **fixed)
    for row in rows:  # one configuration per level, as the runner stores it
        row["config_id"] = f"{column}-{row[column]}"
        if metric != "train_s":
            row["metrics"] = {metric: row.pop("train_s")}
    return write_db(tmp_path / "v.duckdb", rows)


def _number(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r" (-?[0-9.]+(?:e-?\d+)?)", text)
    assert match, (label, text)
    return float(match.group(1))


def test_less_agrees_with_welch_significance(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(10, 0.5, 8), rng.normal(12, 0.5, 8)
    db = _db(tmp_path, {2: b, 6: a})
    v = decide.compare_two(
        db, metric="train_s", factor="workers", a=6, b=2, expect="less", where=[]
    )
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert ref.pvalue < 0.05
    assert v.verdict == "agrees" and v.test == "Welch t-test" and v.n == 16
    assert _number("Welch t =", v.detail) == pytest.approx(ref.statistic, rel=2e-3)
    # the other direction is contradicted by the same test
    w = decide.compare_two(
        db, metric="train_s", factor="workers", a=6, b=2, expect="greater", where=[]
    )
    assert w.verdict == "disagrees"


def test_not_significant_is_inconclusive_with_power_or_rules_out_the_claimed_effect(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 1.0, 5), rng.normal(10, 1.0, 5)
    db = _db(tmp_path, {1: a, 2: b})
    assert stats.ttest_ind(a, b, equal_var=False).pvalue >= 0.05
    v = decide.compare_two(
        db, metric="train_s", factor="workers", a=2, b=1, expect="less", where=[], effect=0.05
    )
    assert v.verdict == "inconclusive" and "power to detect a 5% difference" in v.detail
    # a claimed halving lies far outside the ratio's interval: the claim is ruled out
    w = decide.compare_two(
        db, metric="train_s", factor="workers", a=2, b=1, expect="less", where=[], effect=0.5
    )
    assert w.verdict == "disagrees" and "claimed ratio 0.500 lies outside" in w.detail


def test_one_number_per_level_gives_direction_only(tmp_path: Path) -> None:
    db = _db(tmp_path, {2: [3.78], 4: [2.73], 6: [2.69]})
    v = decide.compare_two(
        db, metric="train_s", factor="workers", a=6, b=2, expect="less", where=[]
    )
    assert v.verdict == "one run per cell" and "ratio 0.712" in v.detail  # 2.69 / 3.78
    same = decide.spread(db, metric="train_s", factor="workers", expect="same", where=[])
    assert same.verdict == "does not follow" and "range 40.5%" in same.detail  # 3.78/2.69 - 1
    down = decide.trend(db, metric="train_s", factor="workers", expect="decreasing", where=[])
    assert down.verdict == "one run per cell"


def test_pooled_configurations_are_refused(tmp_path: Path) -> None:
    rows = trials_for({2: [1.0, 1.1], 4: [0.9, 0.95]})
    rows += trials_for({2: [5.0, 5.1]}, workload="mlp")  # a second configuration at workers=2
    for row in rows:
        row["config_id"] = f"{row['workload']}-{row['workers']}"
    db = write_db(tmp_path / "mixed.duckdb", rows)
    with pytest.raises(AnalysisError, match="pools configurations .*workers=2: 2"):
        decide.compare_two(
            db, metric="train_s", factor="workers", a=4, b=2, expect="less", where=[]
        )
    v = decide.compare_two(
        db, metric="train_s", factor="workers", a=4, b=2, expect="less", where=["workload=knn"]
    )
    assert v.n == 4


def test_trend_follows_spearman(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    groups = {w: rng.normal(20 - 2 * w, 0.8, 6) for w in (1, 2, 4, 8)}
    db = _db(tmp_path, groups)
    x = np.repeat(list(groups), 6)
    y = np.concatenate(list(groups.values()))
    rho, p = stats.spearmanr(x, y)
    v = decide.trend(db, metric="train_s", factor="workers", expect="decreasing", where=[])
    assert p < 0.05 and rho < 0
    assert v.verdict == "agrees"
    assert _number("Spearman rho =", v.detail) == pytest.approx(rho, abs=1e-3)
    up = decide.trend(db, metric="train_s", factor="workers", expect="increasing", where=[])
    assert up.verdict == "disagrees"


def test_no_difference_needs_both_a_quiet_test_and_a_small_spread(tmp_path: Path) -> None:
    import pandas as pd
    import pingouin as pg

    rng = np.random.default_rng(5)
    groups = {w: rng.normal(10, 0.3, 8) for w in (2, 4, 6)}
    db = _db(tmp_path, groups)
    frame = pd.DataFrame(
        {"w": np.repeat(list(groups), 8), "y": np.concatenate(list(groups.values()))}
    )
    ref = pg.welch_anova(data=frame, dv="y", between="w")
    v = decide.spread(db, metric="train_s", factor="workers", expect="same", where=[])
    assert float(ref["p_unc"].iloc[0]) >= 0.05
    assert v.verdict == "agrees"
    # a 30 % step at workers=6: Welch's ANOVA rejects and the spread exceeds 10 %
    groups[6] = groups[6] * 1.3
    (tmp_path / "b").mkdir()
    db2 = _db(tmp_path / "b", groups)
    w = decide.spread(db2, metric="train_s", factor="workers", expect="same", where=[])
    assert w.verdict == "disagrees"
    d = decide.spread(db2, metric="train_s", factor="workers", expect="differs", where=[])
    assert d.verdict == "agrees"


def test_levels_restrict_the_comparison(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    groups = {1: rng.normal(20, 0.2, 5), 5: rng.normal(10, 0.2, 5), 17: rng.normal(10, 0.2, 5)}
    db = _db(tmp_path, groups)
    all_levels = decide.spread(db, metric="train_s", factor="workers", expect="same", where=[])
    assert all_levels.verdict == "disagrees"
    tail = decide.spread(
        db, metric="train_s", factor="workers", expect="same", where=[], only=[5, 17]
    )
    assert "workers=1:" not in tail.detail and tail.n == 10 and tail.verdict == "agrees"


def test_sign_test_over_pairs(tmp_path: Path) -> None:
    rows = []
    for i, (tf, spark) in enumerate([(90.7, 332.5), (96.3, 350.7), (91.8, 304.4), (93.9, 346.8)]):
        for engine, t in (("tensorflow", tf), ("spark", spark)):
            rows.append(
                {
                    "engine": engine,
                    "workload": "mlp",
                    "params": {"instance": f"i{i}"},
                    "config_id": f"{engine}{i}",
                    "metrics": {},
                    "train_s": t,
                }
            )
    db = write_db(tmp_path / "pairs.duckdb", rows)
    v = decide.compare_pairs(
        db,
        metric="train_s",
        factor="engine",
        a="tensorflow",
        b="spark",
        expect="less",
        pair_by="instance",
        where=[],
    )
    ref = stats.binomtest(4, 4, 0.5).pvalue  # 0.125: four of four is not yet significant
    assert "4 of 4 instance pairs" in v.detail and f"p = {ref:.3f}" in v.detail
    assert v.verdict == "one run per cell"


def test_r_squared_against_numpy(tmp_path: Path) -> None:
    x = np.array([4, 4, 4, 8, 8, 8, 8, 16, 16, 16], dtype=float)
    y = np.array([1317.392, 1183.191, 1281.98, 829.947, 793.532, 603.622, 654.85, 438.573,
                  308.103, 347.021])  # fmt: skip
    rows = [
        {"engine": "spark", "params": {"vcpu": float(v)}, "config_id": f"c{i}", "train_s": t}
        for i, (v, t) in enumerate(zip(x, y, strict=True))
    ]
    db = write_db(tmp_path / "r2.duckdb", rows)
    r2 = np.corrcoef(x, y)[0, 1] ** 2
    v = decide.r_squared(db, y="train_s", x="vcpu", where=[], expect=round(r2, 3))
    assert v.verdict == "follows" and f"R² = {r2:.3f}" in v.detail
    w = decide.r_squared(db, y="train_s", x="vcpu", where=[], expect=0.9)
    assert w.verdict == "does not follow"


def test_value_and_best(tmp_path: Path) -> None:
    db = _db(tmp_path, {1: [0.98, 0.98], 5: [0.99, 0.99], 9: [0.985, 0.985]}, metric="accuracy")
    v = decide.best(db, metric="accuracy", factor="workers", expect=[5], goal="max", where=[])
    assert v.verdict == "agrees"
    tied = decide.best(
        db, metric="accuracy", factor="workers", expect=[5], goal="max", where=[], tolerance=0.005
    )
    assert tied.verdict == "disagrees" and "best (max) workers: 5, 9" in tied.detail
    m = decide.value(db, metric="accuracy", expect=0.98, tolerance=0.01, where=["workers=1"])
    assert m.verdict == "agrees" and m.n == 2
