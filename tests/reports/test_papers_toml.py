"""reports/papers/paper002.toml and paper003.toml against what the runner writes, what their
experiment specs set and what runner/published holds: every factor a table groups or filters by
exists, every mapped value exists on its side, every published table id has its CSV."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path
from typing import Any

import pytest

from reports.paper import PAPERS_DIR, load_paper
from runner.spec import load_experiment
from runner.trials import FACTOR_COLUMNS

PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "runner" / "published"
KEYS = ("002", "003")
#: Columns of `observations` a table may name besides the factors and the spec's params.
RUNNER_COLUMNS = {*FACTOR_COLUMNS, "source", "status", "config_id", "run_id", "repetition"}
#: Published-only factors: a row of the paper's table that no trial of ours can have, and why.
PUBLISHED_ONLY = {
    ("003", "T1"): {"parameter"},  # the factor a correlation is about: a statistic, not a trial
}
#: Table ids the papers print (their CSVs exist); measured-only tables mirror figures (F...).
PRINTED = ("T", "A", "B", "C")


def _paper(key: str) -> dict[str, Any]:
    return tomllib.loads((PAPERS_DIR / f"paper{key}.toml").read_text(encoding="utf-8"))


def _configs(key: str) -> list[dict[str, Any]]:
    return [dict(c) for c in load_experiment(f"paper{key}").configs]


def _published(key: str, table_id: str) -> list[dict[str, str]] | None:
    path = PUBLISHED_DIR / f"paper{key}_{table_id}.csv"
    if not path.exists():
        return None
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _published_ids(key: str) -> set[str]:
    path = PUBLISHED_DIR / "tables.toml"
    if not path.exists():
        return set()
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return {str(t["id"]) for t in raw.get("tables", []) if str(t.get("paper")) == key}


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).lower() == str(b).lower()


def _matches(config: dict[str, Any], where: dict[str, Any]) -> bool:
    return all(k in config and _same(config[k], v) for k, v in where.items())


@pytest.mark.parametrize("key", KEYS)
def test_paper_toml_loads_with_its_fields(key: str) -> None:
    raw = _paper(key)
    for field in ("key", "title", "authors", "experiment", "question", "stand_ins", "tables"):
        assert raw.get(field), f"paper{key}.toml has no {field}"
    assert raw["key"] == key and raw["experiment"] == f"paper{key}"
    spec = load_paper(key)
    assert spec is not None and len(spec.tables) == len(raw["tables"])
    ids = [t["id"] for t in raw["tables"]]
    assert len(ids) == len(set(ids)), f"paper{key}: duplicate table ids {ids}"


@pytest.mark.parametrize("key", KEYS)
def test_every_factor_is_a_runner_column_or_a_spec_param(key: str) -> None:
    configs = _configs(key)
    params = {k for c in configs for k in c}
    for table in _paper(key)["tables"]:
        tid = table["id"]
        allowed = RUNNER_COLUMNS | params | PUBLISHED_ONLY.get((key, tid), set())
        for factor in [*table.get("rows", []), *table.get("cols", []), *table.get("where", {})]:
            assert factor in allowed, f"paper{key} {tid}: {factor!r} is no column of ours"
        # the measured side can have trials: some configuration matches the table's where
        where = table.get("where", {})
        assert any(_matches(c, where) for c in configs), f"paper{key} {tid}: {where} matches none"
        published = _published(key, tid) or []
        header = set(published[0]) if published else set()
        for entry in table.get("not_reproducible", []):
            for factor in entry["where"]:
                assert factor in allowed | header, f"paper{key} {tid}: {factor!r} unknown"
            assert entry.get("reason"), f"paper{key} {tid}: a not_reproducible without reason"


@pytest.mark.parametrize("key", KEYS)
def test_published_tables_exist_and_line_up(key: str) -> None:
    ids = _published_ids(key)
    if not ids:
        pytest.skip(f"runner/published has no tables of paper {key} yet")
    configs = _configs(key)
    for table in _paper(key)["tables"]:
        tid = table["id"]
        if not tid.startswith(PRINTED):
            assert tid not in ids, f"paper{key} {tid}: a measured-only id the paper prints"
            continue
        assert tid in ids, f"paper{key} {tid}: not in runner/published/tables.toml"
        rows = _published(key, tid)
        assert rows, f"paper{key} {tid}: runner/published/paper{key}_{tid}.csv missing or empty"
        header = set(rows[0])
        for factor in [*table.get("rows", []), *table.get("cols", [])]:
            assert factor in header, f"paper{key} {tid}: published side has no {factor!r}"
        for factor, mapping in table.get("map", {}).items():
            printed = {r[factor] for r in rows}
            ours = {str(c.get(factor)) for c in configs}
            for published, mine in mapping.items():
                assert published in printed, f"paper{key} {tid}: {factor}={published!r} unknown"
                assert str(mine) in ours, f"paper{key} {tid}: no config has {factor}={mine!r}"
