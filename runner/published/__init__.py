"""The five papers' published tables as data: one CSV per table in this folder, described by
``tables.toml`` (label, caption, section, units, notes, which columns are metrics).

:func:`import_published` loads a paper as ONE run with source ``published:KEY`` and experiment
``paperKEY``: every CSV row is an ``ok`` trial (a cell the paper explains as missing, such as
004's out-of-memory Spark run, is a ``failed`` trial with the reason in ``error``) with the param
``table`` = the table id. The run's spec holds the paper's ``tables.toml`` entries. 004's
Appendix C also goes into the ``prices`` table (source ``published:004``) for
``analyze cost --machine instance``.

Every CSV of every paper asked for is parsed and checked before the database is opened. A paper
already in the database (a run with its source) is refused, naming that run: published numbers do
not change, and a second copy would double every published row in the analyses. Import into a new
``--db`` to get a fresh copy.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from runner.errors import RunnerError
from runner.importer import _Parsed, _write, append_import_run, check_column_kinds, parse_csv
from runner.store import DEFAULT_DB, Store

HERE = Path(__file__).parent
PAPERS = ("000", "001", "002", "003", "004")


@cache
def catalogue() -> dict[str, Any]:
    """``tables.toml``, parsed: ``papers`` (key -> seed, title), ``tables`` and
    ``not_transcribed`` (lists of entries)."""
    with (HERE / "tables.toml").open("rb") as handle:
        return tomllib.load(handle)


def tables_of(paper: str) -> list[dict[str, Any]]:
    """The ``tables.toml`` entries of ``paper``, in the file's order."""
    return [t for t in catalogue()["tables"] if t["paper"] == paper]


def source_of(paper: str) -> str:
    return f"published:{paper}"


def experiment_of(paper: str) -> str:
    return f"paper{paper}"


@dataclass(frozen=True)
class PaperImport:
    """One paper imported: its run and the trials per table."""

    paper: str
    run_id: str
    source: str
    experiment: str
    tables: tuple[tuple[str, int], ...]  # (table id, trials)
    n_failed: int
    n_prices: int

    @property
    def n_trials(self) -> int:
        return sum(n for _, n in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "paper": self.paper,
            "run_id": self.run_id,
            "source": self.source,
            "experiment": self.experiment,
            "n_trials": self.n_trials,
            "n_failed": self.n_failed,
            "n_prices": self.n_prices,
            "tables": {table: n for table, n in self.tables},
        }

    def __str__(self) -> str:
        tables = ", ".join(f"{table} ({n})" for table, n in self.tables)
        text = (
            f"paper {self.paper}: run {self.run_id} (source {self.source}, experiment "
            f"{self.experiment}), {self.n_trials} trials"
        )
        if self.n_failed:
            text += f" ({self.n_failed} failed, as published)"
        text += f": {tables}"
        if self.n_prices:
            text += f"; {self.n_prices} prices"
        return text


@dataclass(frozen=True)
class PublishedImportResult:
    """What ``runner import published`` wrote: one run per paper."""

    db: Path
    papers: tuple[PaperImport, ...]

    @property
    def n_trials(self) -> int:
        return sum(p.n_trials for p in self.papers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": str(self.db),
            "n_trials": self.n_trials,
            "papers": [p.to_dict() for p in self.papers],
        }

    def __str__(self) -> str:
        runs = "run" if len(self.papers) == 1 else "runs"
        lines = [f"imported {len(self.papers)} published {runs} into {self.db}:"]
        lines += [f"  {p}" for p in self.papers]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Paper:
    """A paper's tables, parsed and checked, ready to write."""

    key: str
    entries: list[dict[str, Any]]
    parsed: list[_Parsed]
    prices: list[tuple[str, int | None, float | None, float]]


def _papers(paper: str) -> list[str]:
    key = paper.strip().lower()
    if key == "all":
        return list(PAPERS)
    if key.startswith("paper"):
        key = key[len("paper") :]
    if key not in PAPERS:
        raise RunnerError(
            f"unknown paper {paper!r}; use one of {', '.join(PAPERS)} or all (--paper KEY)"
        )
    return [key]


def _prices(parsed: _Parsed, entry: dict[str, Any]) -> list[tuple[str, int | None, float, float]]:
    """Appendix C's rows as ``prices`` rows: name = instance, memory_gb = mem_gib."""
    out = []
    for values in parsed.records:
        params = values["params"]
        try:
            out.append(
                (
                    str(params["instance"]),
                    int(params["vcpu"]),
                    float(params["mem_gib"]),
                    float(params["cost_usd_hr"]),
                )
            )
        except (KeyError, ValueError) as exc:  # a broken transcription: a bug, say where
            raise RunnerError(f"{entry['file']}: a price row lacks {exc}") from None
    return out


def _load(key: str) -> _Paper:
    entries = tables_of(key)
    parsed: list[_Parsed] = []
    prices: list[tuple[str, int | None, float | None, float]] = []
    for entry in entries:
        table = parse_csv(
            HERE / entry["file"], experiment=experiment_of(key), metrics=entry["metrics"]
        )
        ids = {r["params"].get("table") for r in table.records}
        if ids != {entry["id"]}:
            raise RunnerError(
                f"{entry['file']}: column table holds {sorted(map(str, ids))}, expected "
                f"{entry['id']!r} as tables.toml says"
            )
        parsed.append(table)
        if entry.get("prices"):
            prices += _prices(table, entry)
    return _Paper(key, entries, parsed, prices)


def _spec(paper: _Paper) -> dict[str, Any]:
    info = catalogue()["papers"][paper.key]
    return {
        "published": paper.key,
        "experiment": experiment_of(paper.key),
        "title": info["title"],
        "seed": info["seed"],
        "tables": [
            {**entry, "sha256": parsed.sha256}
            for entry, parsed in zip(paper.entries, paper.parsed, strict=True)
        ],
        "not_transcribed": [t for t in catalogue()["not_transcribed"] if t["paper"] == paper.key],
    }


def import_published(
    db: str | Path = DEFAULT_DB, paper: str = "all", *, argv: Sequence[str] = ()
) -> PublishedImportResult:
    """Import the published tables of ``paper`` (a key such as ``004``, or ``all``) into ``db``,
    one run per paper. Raises RunnerError, writing nothing, for an unknown key, a paper already
    in the database, or a column whose kind (metric/param) the database already has otherwise."""
    from runner.envinfo import collect_env

    papers = [_load(key) for key in _papers(paper)]
    env = collect_env()

    def write(store: Store) -> list[PaperImport]:
        for p in papers:
            row = store.con.execute(
                "SELECT run_id FROM runs WHERE source = ? ORDER BY started_at LIMIT 1",
                [source_of(p.key)],
            ).fetchone()
            if row:
                raise RunnerError(
                    f"paper {p.key} is already in {db} as run {row[0]} (source "
                    f"{source_of(p.key)}); published tables are imported once: use another --db"
                )
        check_column_kinds(store, [t for p in papers for t in p.parsed], where="published tables")
        done = []
        for p in papers:
            run_id = append_import_run(
                store,
                source=source_of(p.key),
                spec=_spec(p),
                env=env,
                argv=argv,
                tables=p.parsed,
                prices=p.prices,
            )
            done.append(
                PaperImport(
                    paper=p.key,
                    run_id=run_id,
                    source=source_of(p.key),
                    experiment=experiment_of(p.key),
                    tables=tuple(
                        (e["id"], len(t.records)) for e, t in zip(p.entries, p.parsed, strict=True)
                    ),
                    n_failed=sum(r["status"] != "ok" for t in p.parsed for r in t.records),
                    n_prices=len(p.prices),
                )
            )
        return done

    done = _write(Path(db), write)
    return PublishedImportResult(db=Path(db), papers=tuple(done))


__all__ = [
    "PAPERS",
    "PaperImport",
    "PublishedImportResult",
    "catalogue",
    "import_published",
    "tables_of",
]
