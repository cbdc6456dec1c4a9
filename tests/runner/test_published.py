"""runner.published: the papers' tables as data, checked against the seed texts they came from,
imported as one run per paper, and analysed with numbers computed here from the CSVs."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from runner.errors import RunnerError
from runner.importer import import_csv
from runner.published import HERE, PAPERS, catalogue, import_published
from tests.conftest import run_cli

SEEDS = Path(__file__).parents[1] / "data" / "seeds"
TABLES = catalogue()["tables"]
#: Columns in the runner's vocabulary (translated from the paper's words, the printed word kept in
#: ``<column>_printed`` where it differs) or written by us: not looked up in the seed.
OURS = {"table", "engine", "workload", "dataset", "status", "error", "note", "strategy"}
OURS |= {"file_format", "parameter", "family"}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")


def _rows(entry: dict[str, Any]) -> list[dict[str, str]]:
    with (HERE / entry["file"]).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _squash(text: str) -> str:
    """Runs of whitespace (tabs between cells, a line broken by the extraction) as one space."""
    return re.sub(r"\s+", " ", text).strip()


def _block(entry: dict[str, Any]) -> str:
    """The seed lines the table's values come from (``seed_lines`` in tables.toml)."""
    lines = (SEEDS / catalogue()["papers"][entry["paper"]]["seed"]).read_text().splitlines()
    return "\n".join("\n".join(lines[a - 1 : b]) for a, b in entry["seed_lines"])


def _number_in(text: str, block: str) -> bool:
    """``text`` printed as a whole number in ``block`` (3.78 is not found in 13.78 or 3.785)."""
    return re.search(r"(?<![\d.])" + re.escape(text) + r"(?!\d)(?!\.\d)", block) is not None


def unfound(entry: dict[str, Any], rows: list[dict[str, str]]) -> list[str]:
    """Every cell of ``rows`` that the seed does not print: numbers by their exact text (a value
    with a non-empty ``<column>_printed`` is found by that printed text instead), strings as
    printed (whitespace squashed); the runner's vocabulary (OURS) is not looked up."""
    block = _block(entry)
    squashed = _squash(block)
    missing = []
    for line, row in enumerate(rows, start=2):
        for column, cell in row.items():
            if not cell or column in OURS or row.get(f"{column}_printed"):
                continue
            found = _number_in(cell, block) if _NUMBER.match(cell) else _squash(cell) in squashed
            if not found:
                missing.append(f"{entry['file']}, line {line}, {column} = {cell!r}")
    return missing


# -- (a) every transcribed number is printed in the paper -------------------------------------
def test_every_csv_is_described_once_and_every_entry_has_its_file() -> None:
    files = sorted(p.name for p in HERE.glob("*.csv"))
    assert sorted(t["file"] for t in TABLES) == files
    keys = [(t["paper"], t["id"]) for t in TABLES]
    assert len(keys) == len(set(keys))
    for t in TABLES:
        assert t["file"] == f"paper{t['paper']}_{t['id']}.csv"
        assert t["label"] and t["caption"] and t["section"] and t["notes"]


@pytest.mark.parametrize("entry", TABLES, ids=lambda t: t["file"])
def test_every_value_is_printed_in_the_seed(entry: dict[str, Any]) -> None:
    rows = _rows(entry)
    assert rows
    assert {r["table"] for r in rows} == {entry["id"]}
    assert unfound(entry, rows) == []
    # the caption, as printed, is in the seed too
    seed = (SEEDS / catalogue()["papers"][entry["paper"]]["seed"]).read_text()
    caption = entry["caption"].replace("2nd", "2<sup>nd</sup>")
    assert _squash(caption) in _squash(seed)


@pytest.mark.parametrize("entry", TABLES, ids=lambda t: t["file"])
def test_the_check_fails_when_one_digit_changes(entry: dict[str, Any]) -> None:
    """The seed check can fail: change the last digit of each checked number, one at a time."""
    rows = _rows(entry)
    changed = 0
    for i, row in enumerate(rows):
        for column, cell in row.items():
            if column in OURS or row.get(f"{column}_printed") or not _NUMBER.match(cell or ""):
                continue
            digit = int(cell[-1])
            wrong = cell[:-1] + str((digit + 1) % 10)
            bad = [dict(r) for r in rows]
            bad[i][column] = wrong
            if not _number_in(wrong, _block(entry)):  # else the wrong value is printed too
                assert any(f"{column} = {wrong!r}" in m for m in unfound(entry, bad))
                changed += 1
    assert changed > 0


def _seconds(text: str) -> float:
    """'4min 25s', '1 min 32 s', '33.6s', '9.45 s' -> seconds."""
    match = re.fullmatch(r"(?:(\d+)\s*min\s*)?(?:([\d.]+)\s*s)?", text.strip())
    assert match and any(match.groups()), text
    minutes, seconds = match.groups()
    return 60 * int(minutes or 0) + float(seconds or 0)


def test_converted_values_match_their_printed_text() -> None:
    checked = Counter()
    for entry in TABLES:
        for row in _rows(entry):
            for column, printed in row.items():
                if not column.endswith("_printed") or not printed:
                    continue
                name = column.removesuffix("_printed")
                value = row.get(name, "")
                if name == "train_s":
                    assert float(value) == pytest.approx(_seconds(printed), abs=1e-9)
                elif name == "accuracy":
                    assert printed.endswith("%")
                    assert float(value) == pytest.approx(float(printed[:-1]) / 100, abs=1e-12)
                elif name in ("memory_gb", "nodes"):
                    assert float(value) == float(re.search(r"[\d.]+", printed).group())
                elif name == "instance":
                    family, size = value.split(".")
                    size = {"xlarge": "xl", "2xlarge": "2xl", "4xlarge": "4xl"}[size]
                    assert printed == f"{family}-{size}"
                checked[name] += 1
    assert checked["train_s"] == 24 and checked["accuracy"] == 24
    assert checked["instance"] == 52 and checked["nodes"] == 8


def test_units_cover_every_numeric_column_and_metrics_are_columns() -> None:
    for entry in TABLES:
        rows = _rows(entry)
        header = list(rows[0])
        assert set(entry["metrics"]) <= set(header)
        numeric = {
            c
            for c in header
            if not c.endswith("_printed")
            and any(r[c] for r in rows)
            and all(_NUMBER.match(r[c]) for r in rows if r[c])
        }
        assert numeric <= set(entry["units"]), entry["file"]


# -- (b) the import -----------------------------------------------------------------------------
EXPECTED_TRIALS = {
    "000": {"T2": 10, "T3": 12},
    "001": {"T1-config": 3, "T2-config": 3, "T1": 4, "T2": 4, "T3": 4, "T4": 4, "T5": 4, "T6": 4},
    "002": {"T1": 6},
    "003": {"T1": 8, "T2": 3, "T3": 16},
    "004": {"A": 44, "B": 8, "C": 11},
}


def _query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def published_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("published") / "p.duckdb"
    result = import_published(db, "all")
    assert [p.paper for p in result.papers] == list(PAPERS)
    return db


def test_import_all_one_run_per_paper(published_db: Path) -> None:
    runs = _query(published_db, "SELECT source, spec FROM runs ORDER BY source")
    assert [r[0] for r in runs] == [f"published:{k}" for k in PAPERS]
    for source, spec in runs:
        spec = json.loads(spec)
        key = source.removeprefix("published:")
        assert spec["experiment"] == f"paper{key}"
        assert [t["id"] for t in spec["tables"]] == list(EXPECTED_TRIALS[key])
        assert all(t["caption"] and t["units"] is not None for t in spec["tables"])
    counts = _query(
        published_db,
        'SELECT source, experiment, "table", count(*) FROM observations GROUP BY ALL',
    )
    got: dict[str, dict[str, int]] = {}
    for source, experiment, table, n in counts:
        key = source.removeprefix("published:")
        assert experiment == f"paper{key}"
        got.setdefault(key, {})[table] = n
    assert got == EXPECTED_TRIALS


def test_the_failed_004_cell(published_db: Path) -> None:
    rows = _query(
        published_db,
        'SELECT engine, dataset, instance, train_s, error, "table" FROM observations '
        "WHERE status <> 'ok'",
    )
    assert len(rows) == 1
    engine, dataset, instance, train_s, error, table = rows[0]
    assert (engine, dataset, instance, train_s, table) == (
        "spark",
        "emnist",
        "c3.xlarge",
        None,
        "A",
    )
    assert "out of memory" in error


def test_factors_are_params_and_prices_are_imported(published_db: Path) -> None:
    kinds = dict(_query(published_db, "SELECT name, kind FROM observation_columns"))
    for name in ("k", "vcpu", "mem_gib", "cost_usd_hr", "nodes", "instance", "table"):
        assert kinds[name] == "param", name
    for name in ("accuracy", "train_accuracy", "f1", "r", "final_val_accuracy"):
        assert kinds[name] == "metric", name
    prices = _query(published_db, "SELECT name, vcpu, memory_gb, usd_per_hour, source FROM prices")
    appendix_c = {
        r["instance"]: (int(r["vcpu"]), float(r["mem_gib"]), float(r["cost_usd_hr"]))
        for r in _rows(next(t for t in TABLES if t["id"] == "C"))
    }
    assert {n: (v, m, u) for n, v, m, u, _ in prices} == appendix_c
    assert {s for *_, s in prices} == {"published:004"}


def test_a_paper_imported_twice_is_refused_naming_the_run(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    first = import_published(db, "004")
    with pytest.raises(RunnerError, match=f"already in .* as run {first.papers[0].run_id}"):
        import_published(db, "all")  # 000..003 are new, but nothing is written
    assert _query(db, "SELECT count(*) FROM runs") == [(1,)]
    assert _query(db, "SELECT count(*) FROM prices") == [(11,)]


def test_a_column_kind_conflict_writes_nothing(tmp_path: Path) -> None:
    """A database where k is a metric (a plain CSV import) cannot take 000's param k."""
    db = tmp_path / "p.duckdb"
    (tmp_path / "knn.csv").write_text("engine,k,train_s\nlocal,3,0.5\n", encoding="utf-8")
    import_csv(tmp_path / "knn.csv", db=db)
    with pytest.raises(RunnerError, match="'k' would be a param but is already a metric"):
        import_published(db, "000")
    assert _query(db, "SELECT count(*) FROM runs") == [(1,)]


def test_unknown_paper_key_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    with pytest.raises(RunnerError, match="unknown paper '005'"):
        import_published(db, "005")
    assert not db.exists()


# -- (c) the CLI --------------------------------------------------------------------------------
def test_cli_imports_one_paper(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    proc = run_cli("runner", "import", "published", "--paper", "000", "--db", db)
    assert proc.returncode == 0, proc.stderr
    assert "paper 000: run" in proc.stdout and "T2 (10), T3 (12)" in proc.stdout
    assert _query(db, "SELECT source FROM runs") == [("published:000",)]


def test_cli_bad_key_is_one_line_exit_2_and_no_database(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    proc = run_cli("runner", "import", "published", "--paper", "nope", "--db", db)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unknown paper 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not db.exists()


# -- (d) the analyses on the imported tables, against numpy on the CSV values -------------
def _csv(paper: str, table: str) -> list[dict[str, str]]:
    return _rows(next(t for t in TABLES if (t["paper"], t["id"]) == (paper, table)))


def _r_squared(x: list[float], y: list[float]) -> float:
    return float(np.corrcoef(np.asarray(x), np.asarray(y))[0, 1] ** 2)


def test_004_r_squared_of_spark_large_train_time_on_vcpu_and_memory(published_db: Path) -> None:
    """004, Results: "We found an R² value of 0.853 for CPUs and train time while for memory
    and train time the R² value was 0.431" (Spark, large data set). Reproduced on the 10
    instances with a Spark-large time (c3-xl ran out of memory)."""
    from analysis.regress import regress

    spark_large = [
        r
        for r in _csv("004", "A")
        if r["engine"] == "spark" and r["dataset"] == "emnist" and r["train_s"]
    ]
    y = [float(r["train_s"]) for r in spark_large]
    expect = {x: _r_squared([float(r[x]) for r in spark_large], y) for x in ("vcpu", "mem_gib")}
    assert len(spark_large) == 10
    assert round(expect["vcpu"], 3) == 0.853 and round(expect["mem_gib"], 3) == 0.431
    where = ["source=published:004", "table=A", "engine=spark", "dataset=emnist"]
    for x, r2 in expect.items():
        fit = regress(published_db, y="train_s", x=x, where=where).fits[0]
        assert fit.n == 10
        assert fit.r_squared == pytest.approx(r2, rel=1e-10)
    # other selections do not give the paper's numbers
    spark = [r for r in _csv("004", "A") if r["engine"] == "spark" and r["train_s"]]
    pooled = _r_squared([float(r["vcpu"]) for r in spark], [float(r["train_s"]) for r in spark])
    assert round(pooled, 3) != 0.853


def _speedups(rows: list[dict[str, str]], x: str) -> list[float]:
    times = np.array([float(r["train_s"]) for r in sorted(rows, key=lambda r: int(r[x]))])
    return list(times[0] / times)


def test_000_table3_speedups(published_db: Path) -> None:
    from analysis.scaling import scaling

    result = scaling(
        published_db,
        by=("engine", "workload"),
        where=["source=published:000", "table=T3"],
        n_boot=0,
    )
    groups = {g.level: g for g in result.groups}
    rows = _csv("000", "T3")
    assert set(groups) == {(r["engine"], r["workload"]) for r in rows}
    for (engine, workload), group in groups.items():
        mine = [r for r in rows if (r["engine"], r["workload"]) == (engine, workload)]
        assert [lv.x for lv in group.levels] == sorted(float(r["workers"]) for r in mine)
        assert [lv.speedup for lv in group.levels] == pytest.approx(
            _speedups(mine, "workers"), rel=1e-12
        )
    # "decreased from 3.78 seconds with 2 workers to 2.69 seconds with 6 workers"
    assert groups[("dask", "knn")].levels[-1].speedup == pytest.approx(3.78 / 2.69)
    assert groups[("ray", "cnn")].levels[-1].speedup == pytest.approx(30.6 / 13.1)


def test_004_appendix_b_speedups(published_db: Path) -> None:
    from analysis.scaling import scaling

    result = scaling(
        published_db,
        x="nodes",
        by="dataset",
        where=["source=published:004", "table=B"],
        n_boot=0,
    )
    rows = _csv("004", "B")
    for group in result.groups:
        mine = [r for r in rows if r["dataset"] == group.level[0]]
        assert [lv.x for lv in group.levels] == [1, 3, 5, 17]
        assert [lv.speedup for lv in group.levels] == pytest.approx(
            _speedups(mine, "nodes"), rel=1e-12
        )
    knees = {g.level[0]: g.knee for g in result.groups}
    assert knees == {"emnist": 5, "mnist": 1}  # "no further speedup by going to 17 nodes"


def test_004_cost_per_run_from_its_prices(published_db: Path) -> None:
    """`analyze cost --machine instance` prices Appendix A's runs with Appendix C, which the
    import put in the prices table (source published:004)."""
    from analysis.cost import price_table

    prices = {r["instance"]: float(r["cost_usd_hr"]) for r in _csv("004", "C")}
    con = duckdb.connect(str(published_db), read_only=True)
    try:
        table = price_table(con)
    finally:
        con.close()
    assert {n: table[n].source for n in prices} == dict.fromkeys(prices, "published:004")

    proc = run_cli(
        "analyze",
        "cost",
        "--machine",
        "instance",
        "--by",
        "engine,dataset",
        "--where",
        "source=published:004",
        "--where",
        "table=A",
        "--format",
        "json",
        "--db",
        published_db,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    expect = {
        (r["engine"], r["dataset"], r["instance"]): float(r["train_s"])
        * prices[r["instance"]]
        / 3600
        for r in _csv("004", "A")
        if r["train_s"]
    }
    got = {
        (r["level"]["engine"], r["level"]["dataset"], r["level"]["instance"]): r["median_cost_usd"]
        for r in rows
    }
    assert got == pytest.approx(expect, rel=1e-12)
    # m4.xlarge, Spark, large data set: 1183.191 s at $0.2/hour
    assert got[("spark", "emnist", "m4.xlarge")] == pytest.approx(1183.191 * 0.2 / 3600)
