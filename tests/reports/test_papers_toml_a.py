"""The paper descriptions of 000, 001 and 004 (reports/papers/paperKEY.toml) against their
experiment specs and the published tables: every factor a table filters or lays out is a trial
column or a parameter the spec sets, every table id has a published CSV, and every value and
not-reproducible filter names a column the published side has."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path
from typing import Any

import pytest

from reports.paper import PAPERS_DIR, load_paper
from runner.spec import load_experiment
from runner.store import TRIAL_COLUMNS

PUBLISHED = Path(__file__).resolve().parents[2] / "runner" / "published"
KEYS = ("000", "001", "004")


def _published_header(key: str, table: str) -> list[str]:
    with (PUBLISHED / f"paper{key}_{table}.csv").open(encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh))


def _spec_keys(experiment: str) -> set[str]:
    """Every key a configuration of the experiment (full and quick) sets."""
    keys: set[str] = set()
    for quick in (False, True):
        for config in load_experiment(experiment, quick=quick).configs:
            keys |= set(config)
    return keys


def _raw(key: str) -> dict[str, Any]:
    return tomllib.loads((PAPERS_DIR / f"paper{key}.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("key", KEYS)
def test_paper_toml_loads_with_its_experiment(key: str) -> None:
    spec = load_paper(key)
    assert spec is not None
    assert spec.experiment == f"paper{key}"
    assert spec.title and spec.authors and spec.question and spec.stand_ins
    assert spec.tables
    for table in spec.tables:
        assert table.id and table.label and table.caption


@pytest.mark.parametrize("key", KEYS)
def test_table_factors_are_trial_columns_or_spec_params(key: str) -> None:
    spec = load_paper(key)
    assert spec is not None
    known = set(TRIAL_COLUMNS) | _spec_keys(spec.experiment)
    for table in spec.tables:
        factors = [*table.where, *table.rows, *table.cols, *table.map]
        unknown = sorted(set(factors) - known)
        assert not unknown, f"paper {key} table {table.id}: {unknown}: not columns or params"


@pytest.mark.parametrize("key", KEYS)
def test_tables_exist_in_published_csvs(key: str) -> None:
    spec = load_paper(key)
    assert spec is not None
    ids = [table.id for table in spec.tables]
    assert len(ids) == len(set(ids)), f"paper {key}: a table id twice"
    for table in spec.tables:
        assert (PUBLISHED / f"paper{key}_{table.id}.csv").is_file(), (key, table.id)
    # and every published table of the paper has its place in the description
    published = {p.stem.split("_", 1)[1] for p in PUBLISHED.glob(f"paper{key}_*.csv")}
    assert published == set(ids)


@pytest.mark.parametrize("key", KEYS)
def test_published_side_has_the_columns(key: str) -> None:
    spec = load_paper(key)
    assert spec is not None
    for table in spec.tables:
        header = set(_published_header(key, table.id))
        for name in [v.name for v in table.values] + list(table.rows) + list(table.cols):
            assert name in header, f"paper {key} table {table.id}: {name} not published"
        for factor in table.map:
            assert factor in header, (key, table.id, factor)
        for entry in table.not_reproducible:
            assert entry.reason
            assert set(entry.where) <= header | set(table.where) | set(table.rows), (
                key,
                table.id,
                entry.where,
            )


def test_mapped_values_exist_on_both_sides() -> None:
    """004's data sets: every published value mapped is in the CSV, every value it maps to is
    a level our experiment runs."""
    for key in KEYS:
        spec = load_paper(key)
        assert spec is not None
        configs = load_experiment(spec.experiment).configs
        for table in spec.tables:
            with (PUBLISHED / f"paper{key}_{table.id}.csv").open(encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            for factor, mapping in table.map.items():
                printed = {r[factor] for r in rows}
                ours = {str(c.get(factor)) for c in configs}
                for published, value in mapping.items():
                    assert published in printed, (key, table.id, factor, published)
                    assert str(value) in ours, (key, table.id, factor, value)


def test_table_where_selects_configurations() -> None:
    """Each table's filter matches at least one configuration of the full experiment."""
    for key in KEYS:
        spec = load_paper(key)
        assert spec is not None
        configs = load_experiment(spec.experiment).configs
        for table in spec.tables:
            hits = [
                c
                for c in configs
                if all(str(c.get(k)) == str(v) or c.get(k) == v for k, v in table.where.items())
            ]
            assert hits, f"paper {key} table {table.id}: where {table.where} selects nothing"


def test_001_configuration_tables_have_no_values() -> None:
    raw = _raw("001")
    config_tables = [t for t in raw["tables"] if t["id"].endswith("-config")]
    assert {t["id"] for t in config_tables} == {"T1-config", "T2-config"}
    assert all(t["values"] == [] for t in config_tables)
