"""reports.claims: the papers' claims as declared, and their verdicts on the published tables.

The published side is pinned against the transcribed CSVs with numpy/scipy (never against our
own output); our side against trials written through the real store.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from reports.claims import KINDS, OUR_VERDICTS, PAPER_VERDICTS, evaluate_claims, load_claims
from runner.published import import_published
from tests.analysis.conftest import write_db

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "tests" / "data" / "seeds"
PUBLISHED = ROOT / "runner" / "published"
PAPERS = ("000", "001", "002", "003", "004")


def _norm(text: str) -> str:
    """The seed's text as the quotes cite it: no TeX math marks, whitespace collapsed."""
    return " ".join(re.sub(r"[${}*\\]", "", text).split()).lower()


@pytest.fixture(scope="module")
def published_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("pub") / "published.duckdb"
    import_published(db, paper="all")
    return db


@pytest.mark.parametrize("key", PAPERS)
def test_claims_load_and_quote_the_paper_verbatim(key: str) -> None:
    claims = load_claims(key)
    assert len(claims) >= 5
    seed = _norm(next(SEEDS.glob(f"{key}_*.txt")).read_text(encoding="utf-8"))
    tables = {p.stem.split("_", 1)[1] for p in PUBLISHED.glob(f"paper{key}_*.csv")}
    for claim in claims:
        assert claim["kind"] in KINDS
        for fragment in claim["quote"].split("..."):
            fragment = _norm(fragment).strip(" ,.")
            assert fragment in seed, (claim["id"], fragment)
        table = claim.get("published", {}).get("table")
        assert table is None or table in tables, (claim["id"], table)


def test_unknown_keys_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reports import claims as module
    from reports.errors import ReportError

    (tmp_path / "paper999.claims.toml").write_text(
        '[[claims]]\nid = "x"\nsummary = "s"\nquote = "q"\nkind = "less"\nfactr = "workers"\n'
    )
    monkeypatch.setattr(module, "PAPERS_DIR", tmp_path)
    with pytest.raises(ReportError, match="unknown keys \\['factr'\\]"):
        load_claims("999")


def _csv(name: str) -> list[dict[str, str]]:
    with (PUBLISHED / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_published_verdicts_follow_from_the_tables(published_db: Path) -> None:
    verdicts = {c.id: c for key in PAPERS for c in evaluate_claims(published_db, key)}
    assert {c.paper_verdict for c in verdicts.values()} <= set(PAPER_VERDICTS)
    # every claim is at least read: no claim of an imported paper is "not imported"
    assert all(c.paper_verdict != "not imported" for c in verdicts.values())
    # without measured trials, no claim gets a verdict on ours
    assert {c.our_verdict for c in verdicts.values()} <= {"no trials", "not testable here"}
    assert set(OUR_VERDICTS) >= {c.our_verdict for c in verdicts.values()}

    # 004 Appendix A: R² of Spark's large-set time on vCPU and on memory, by numpy
    rows = [r for r in _csv("paper004_A.csv") if r["engine"] == "spark" and r["train_s"]]
    rows = [r for r in rows if r["dataset"] == "emnist"]
    y = np.array([float(r["train_s"]) for r in rows])
    for claim, column, printed in (("004-3", "vcpu", 0.853), ("004-4", "mem_gib", 0.431)):
        x = np.array([float(r[column]) for r in rows])
        r2 = np.corrcoef(x, y)[0, 1] ** 2
        assert round(r2, 3) == printed  # the paper's number is reproduced from its own table
        assert verdicts[claim].paper_verdict == "follows"
        assert f"R² = {r2:.3f}" in verdicts[claim].paper_detail

    # 004: TensorFlow faster than Spark on every instance: a sign test over the pairs
    a = _csv("paper004_A.csv")
    for claim, dataset in (("004-1", "mnist"), ("004-2", "emnist")):
        times = {(r["instance"], r["engine"]): r["train_s"] for r in a if r["dataset"] == dataset}
        pairs = [
            (float(times[i, "tensorflow"]), float(times[i, "spark"]))
            for i, e in times
            if e == "spark" and times[i, "spark"] and times.get((i, "tensorflow"))
        ]
        wins = sum(tf < spark for tf, spark in pairs)
        p = stats.binomtest(wins, len(pairs), 0.5).pvalue
        assert wins == len(pairs) and p < 0.05
        assert f"{wins} of {len(pairs)} instance pairs" in verdicts[claim].paper_detail
        assert verdicts[claim].paper_verdict == "follows"

    # 000 Table 3: Dask's KNN times vary by 40.5 % of the smallest, so "no significant
    # improvement" does not follow; 2 -> 6 workers is a decrease, consistent with 000-3
    t3 = {
        (r["engine"], r["workload"], r["workers"]): float(r["train_s"])
        for r in _csv("paper000_T3.csv")
    }
    knn = [t3["dask", "knn", w] for w in ("2", "4", "6")]
    assert f"range {(max(knn) - min(knn)) / min(knn):.1%}" in verdicts["000-5"].paper_detail
    assert verdicts["000-5"].paper_verdict == "does not follow"
    assert verdicts["000-3"].paper_verdict == "one run per cell"
    # at 4 workers Ray's CNN (13.1 s) is not slower than Dask's (13.2 s)
    assert t3["dask", "cnn", "4"] > t3["ray", "cnn", "4"]
    assert verdicts["000-9"].paper_verdict == "does not follow"

    # 003 Table 3: the multi-worker strategy is faster than mirrored at every batch size
    t = _csv("paper003_T3.csv")
    by = {(r["strategy"], r["batch_size"]): float(r["train_s"]) for r in t}
    sizes = [b for s, b in by if s == "mirrored" and ("multiworker", b) in by]
    assert all(by["mirrored", b] > by["multiworker", b] for b in sizes)
    assert verdicts["003-7"].paper_verdict == "does not follow"

    # 001 at 1000 epochs: 4 cores (97.7 %) beat 5 (97.5 %), against the claim
    assert verdicts["001-2"].paper_verdict == "does not follow"
    assert verdicts["001-1"].paper_verdict == "one run per cell"


def test_our_side_uses_only_this_papers_measured_trials(tmp_path: Path) -> None:
    db = tmp_path / "ours.duckdb"
    import_published(db, paper="000")
    rng = np.random.default_rng(1)
    rows = []
    for workers, mean in ((2, 0.050), (4, 0.046), (6, 0.040)):
        for i, value in enumerate(rng.normal(mean, 0.001, 6)):
            rows.append(
                {
                    "experiment": "paper000",
                    "engine": "dask",
                    "workload": "knn",
                    "dataset": "digits",
                    "workers": workers,
                    "repetition": i,
                    "config_id": f"dask-knn-{workers}",
                    "train_s": float(value),
                }
            )
    write_db(db, rows, source="measured")
    # the same factors under another experiment must not be pooled in
    write_db(db, [{**r, "experiment": "default", "train_s": 9.0} for r in rows], source="measured")
    by_id = {c.id: c for c in evaluate_claims(db, "000")}
    x = [r["train_s"] for r in rows if r["workers"] == 6]
    z = [r["train_s"] for r in rows if r["workers"] == 2]
    ref = stats.ttest_ind(x, z, equal_var=False)
    assert ref.pvalue < 0.05
    c = by_id["000-3"]
    assert c.our_verdict == "agrees" and c.our_test == "Welch t-test"
    assert "(n=6)" in c.our_detail and "9.000" not in c.our_detail
    assert by_id["000-5"].our_verdict == "disagrees"  # 25 % spread, significant
    assert by_id["000-7"].our_verdict == "no trials"  # no Ray trials in this database
    assert by_id["000-10"].our_verdict == "not testable here"
