"""Paper sections: each reproduced paper's tables as published beside the same tables measured
here, its claims with both verdicts, and its figures.

A paper is described by ``reports/papers/paperKEY.toml`` (title, question, stand-ins, and per
table: ``id``, ``label``, ``caption``, ``rows``, ``cols``, ``values``, ``where``, ``map``,
``not_reproducible``). Published rows are the trials of source ``published:KEY`` whose param
``table`` is the table's id; ours are ``experiment = paperKEY`` from measured runs. A measured
cell is the mean over ok, non-warm-up trials with their count (or the 95% CI, ``ci = true``);
a cell without trials is marked, never filled in; a row matching a ``not_reproducible`` entry is
marked "not reproducible on this machine" with the reason.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis import AnalysisError, Filter, list_runs, summarize
from reports import format as fmt
from reports.blocks import Column, Figure, HeaderGroup, Section, SectionBuilder, Table, slug
from reports.errors import ReportError

PAPERS_DIR = Path(__file__).parent / "papers"
MISSING = "—"
NOT_REPRODUCIBLE = "not reproducible on this machine"
TIME_METRICS = ("train_s", "wall_s")


@dataclass(frozen=True)
class ValueSpec:
    name: str
    label: str
    digits: int | None = None
    ci: bool = False


@dataclass(frozen=True)
class NotReproducible:
    where: Mapping[str, Any]
    reason: str


@dataclass(frozen=True)
class TableSpec:
    id: str
    label: str
    caption: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    values: tuple[ValueSpec, ...]
    where: Mapping[str, Any]
    map: Mapping[str, Mapping[str, Any]]
    not_reproducible: tuple[NotReproducible, ...]


@dataclass(frozen=True)
class PaperSpec:
    key: str
    title: str
    authors: str
    experiment: str
    question: str
    stand_ins: tuple[str, ...]
    tables: tuple[TableSpec, ...]


def _text(value: Any) -> str:
    return fmt.level(value) if not isinstance(value, str) else value


def _same(a: Any, b: Any) -> bool:
    """Levels equal as the analysis package spells them (``6`` and ``6.0`` match)."""
    if a is None or b is None:
        return a is None and b is None
    return _text(_num(a)) == _text(_num(b))


def _num(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_paper(key: str, papers_dir: Path | None = None) -> PaperSpec | None:
    """The paper's description, or None when its TOML does not exist yet."""
    path = (papers_dir or PAPERS_DIR) / f"paper{key}.toml"
    if not path.exists():
        return None
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ReportError(f"{path}: not a readable TOML file ({exc}); fix it") from None
    try:
        tables = []
        for t in raw.get("tables", []):
            values = tuple(
                ValueSpec(
                    name=str(v["name"]),
                    label=str(v.get("label", v["name"])),
                    digits=None if v.get("digits") is None else int(v["digits"]),
                    ci=bool(v.get("ci", t.get("ci", False))),
                )
                for v in t.get("values", [])
            )
            cols = tuple(str(c) for c in t.get("cols", []))
            if cols and len(values) != 1:
                raise ReportError(
                    f"{path}: table {t.get('id')} spreads {', '.join(cols)} over columns, so it "
                    f"takes exactly one value, not {len(values)}"
                )
            tables.append(
                TableSpec(
                    id=str(t["id"]),
                    label=str(t.get("label", t["id"])),
                    caption=str(t.get("caption", "")),
                    rows=tuple(str(r) for r in t.get("rows", [])),
                    cols=cols,
                    values=values,
                    where=dict(t.get("where", {})),
                    map={k: dict(v) for k, v in t.get("map", {}).items()},
                    not_reproducible=tuple(
                        NotReproducible(dict(n.get("where", {})), str(n.get("reason", "")))
                        for n in t.get("not_reproducible", [])
                    ),
                )
            )
        return PaperSpec(
            key=key,
            title=str(raw.get("title", f"Paper {key}")),
            authors=str(raw.get("authors", "")),
            experiment=str(raw.get("experiment", f"paper{key}")),
            question=str(raw.get("question", "")).strip(),
            stand_ins=tuple(str(s) for s in raw.get("stand_ins", [])),
            tables=tuple(tables),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{path}: malformed paper description ({exc!r}); fix it") from None


# -- reading ------------------------------------------------------------------------------------
def _view_columns(con: Any) -> dict[str, str]:
    return {r[0]: str(r[1]) for r in con.execute("DESCRIBE observations").fetchall()}


def published_rows(con: Any, key: str, table: str) -> list[dict[str, Any]]:
    """Every published trial of ``table`` (ok and failed), as dicts of the view's columns."""
    cols = _view_columns(con)
    if "table" not in cols:
        return []
    cur = con.execute(
        'SELECT * FROM observations WHERE source = ? AND "table" = ? ORDER BY trial_id',
        [f"published:{key}", table],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _measured(
    con: Any, spec: PaperSpec, table: TableSpec, keys: Sequence[str]
) -> tuple[dict[tuple[str, ...], dict[str, Any]], str]:
    """Summary rows of our trials for ``table`` keyed by the text of ``keys``; a note when
    they cannot be read."""
    cols = _view_columns(con)
    absent = [k for k in [*keys, *table.where] if k not in cols]
    if absent:
        return {}, f"no measured trials have {', '.join(absent)}"
    metrics = [v.name for v in table.values if v.name in cols]
    if not metrics:
        return {}, "no measured trials have these columns"
    where = [
        Filter("experiment", "=", spec.experiment),
        Filter("source", "=", "measured"),
        *(Filter(k, "=", None if v is None else _text(v)) for k, v in table.where.items()),
    ]
    try:
        rows = summarize(con, by=keys, metrics=metrics, where=where, n_boot=0).rows
    except AnalysisError as exc:
        return {}, str(exc)
    return {tuple(fmt.level(r[k]) for k in keys): r for r in rows if r["n"] > 0}, ""


# -- one table ----------------------------------------------------------------------------------
def _mapped(table: TableSpec, factor: str, value: Any) -> Any:
    mapping = table.map.get(factor, {})
    for published, ours in mapping.items():
        if _same(published, value):
            return ours
    return value


def _published_cell(row: Mapping[str, Any], value: ValueSpec) -> str:
    if row.get("status") not in (None, "ok"):
        error = str(row.get("error") or "failed")
        return error if len(error) <= 40 else "failed"
    printed = row.get(f"{value.name}_printed")
    if printed not in (None, ""):
        return str(printed)
    return _number(row.get(value.name), value.digits)


def _number(x: Any, digits: int | None) -> str:
    if fmt.is_missing(x):
        return MISSING
    return fmt.fixed(x, digits) if digits is not None else fmt.sig(x, 4)


def _measured_cell(rec: Mapping[str, Any] | None, value: ValueSpec) -> str:
    if rec is None or value.name + "_mean" not in rec:
        return MISSING
    mean = rec[f"{value.name}_mean"]
    if fmt.is_missing(mean):
        return MISSING
    digits = None if value.digits is None else value.digits + 1
    text = _number(mean, digits)
    if value.ci:
        ci = fmt.interval(
            rec[f"{value.name}_ci_low"], rec[f"{value.name}_ci_high"], lambda x: _number(x, digits)
        )
        return f"{text} {ci} (n={rec['n']})"
    return f"{text} (n={rec['n']})"


def _not_reproducible(
    table: TableSpec, key: Mapping[str, Any], published: Sequence[Mapping[str, Any]]
) -> str:
    """The reason when the row matches a ``not_reproducible`` entry, else ''."""
    for entry in table.not_reproducible:
        sources: list[Mapping[str, Any]] = [{**table.where, **key}]
        sources += [{**p, **table.where, **key} for p in published]
        for src in sources:
            if all(k in src and _same(src[k], v) for k, v in entry.where.items()):
                return entry.reason or "see the experiment spec"
    return ""


def table_blocks(con: Any, spec: PaperSpec, table: TableSpec) -> tuple[Table, list[str]]:
    """The published and measured sides of one table, side by side, and notes."""
    notes: list[str] = []
    keys = [*table.rows, *table.cols]
    pub = published_rows(con, spec.key, table.id)
    # published rows, keyed by the text of their (mapped) factor values
    pub_by: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in pub:
        k = tuple(fmt.level(_mapped(table, f, row.get(f))) for f in keys)
        pub_by.setdefault(k, []).append(row)
    ours, why = _measured(con, spec, table, keys)
    if why:
        notes.append(f"measured side empty: {why}")
    all_keys = list(dict.fromkeys([*pub_by, *ours]))
    n_rows = len(table.rows)
    row_keys = list(dict.fromkeys(k[:n_rows] for k in all_keys))
    col_keys = list(dict.fromkeys(k[n_rows:] for k in all_keys)) if table.cols else [()]
    if table.cols:
        value = table.values[0]
        labels = [", ".join(c) for c in col_keys]
        heads = [(value, c, lab) for c, lab in zip(col_keys, labels, strict=True)]
    else:
        heads = [(v, (), v.label) for v in table.values]
    nr_any = False
    rows: list[tuple[str, ...]] = []
    for rk in row_keys:
        key_dict = dict(zip(table.rows, rk, strict=True))
        cells_pub, cells_ours, reasons = [], [], []
        for value, ck, _ in heads:
            full = (*rk, *ck)
            p = pub_by.get(full)
            cells_pub.append(_published_cell(p[0], value) if p else MISSING)
            cell_key = {**key_dict, **dict(zip(table.cols, ck, strict=True))}
            reason = _not_reproducible(table, cell_key, p or [])
            if reason:
                reasons.append(reason)
                cells_ours.append("not reproducible" if table.cols else MISSING)
            else:
                cells_ours.append(_measured_cell(ours.get(full), value))
        reasons = list(dict.fromkeys(reasons))
        note = f"{NOT_REPRODUCIBLE}: {'; '.join(reasons)}" if reasons else ""
        nr_any = nr_any or bool(reasons)
        rows.append((*rk, *cells_pub, *cells_ours, note))
    columns = [Column(r, wrap=True) for r in table.rows]
    columns += [Column(lab, num=True) for _, _, lab in heads] * 2
    columns.append(Column("note", wrap=True))
    groups = [
        HeaderGroup("", len(table.rows)),
        HeaderGroup("published", len(heads)),
        HeaderGroup("measured here", len(heads)),
        HeaderGroup("", 1),
    ]
    if not nr_any:  # drop the empty note column
        columns.pop()
        groups.pop()
        rows = [r[:-1] for r in rows]
    if table.cols:
        groups[1] = HeaderGroup(
            f"published: {table.values[0].label} by {', '.join(table.cols)}", len(heads)
        )
        groups[2] = HeaderGroup(f"measured here: {table.values[0].label}", len(heads))
    if not pub:
        notes.append(
            "published side empty: run `runner import published --paper "
            f"{spec.key}` to load the paper's tables"
        )
    if not rows:
        notes.append("no rows on either side")
    caption = f"{table.label}: {table.caption}" if table.caption else table.label
    out = Table(
        id=slug(f"p{spec.key}-{table.id}"),
        caption=caption,
        columns=tuple(columns),
        rows=tuple(rows),
        groups=tuple(g for g in groups if g.span > 0),
        note=(
            "Measured cells: mean over ok, non-warm-up trials (n = trials; [95% CI] where "
            f"shown); {MISSING} marks a cell without trials or values."
        ),
    )
    return out, notes


# -- claims -------------------------------------------------------------------------------------
def claims_table(con: Any, key: str) -> tuple[Table | None, list[str]]:
    from reports.claims import evaluate_claims

    try:
        verdicts = evaluate_claims(con, key)
    except (AnalysisError, ReportError) as exc:
        return None, [f"claims could not be evaluated: {exc}"]
    if not verdicts:
        return None, ["no claims evaluated for this paper yet"]
    rows = tuple(
        (
            v.id,
            v.summary,
            v.quote,
            v.paper_verdict,
            v.paper_detail,
            v.our_verdict,
            f"{v.our_test}: {v.our_detail}" if v.our_test else v.our_detail,
        )
        for v in verdicts
    )
    table = Table(
        id=slug(f"p{key}-claims"),
        caption="Claims and verdicts: on the paper's own numbers, and on our trials",
        columns=(
            Column("id"),
            Column("claim", wrap=True),
            Column("the paper's words", wrap=True),
            Column("on the paper's numbers", wrap=True),
            Column("why", wrap=True),
            Column("on our trials", wrap=True),
            Column("test and numbers", wrap=True),
        ),
        rows=rows,
    )
    return table, []


# -- the section --------------------------------------------------------------------------------
def paper_section(con: Any, key: str, papers_dir: Path | None = None) -> tuple[Section, list[str]]:
    from reports.paper_figures import paper_figures

    spec = load_paper(key, papers_dir)
    warnings: list[str] = []
    if spec is None:
        sec = SectionBuilder(f"paper-{key}", f"Paper {key}")
        sec.para(
            f"No description of paper {key} (reports/papers/paper{key}.toml) yet: its tables "
            "cannot be laid out.",
            "note",
        )
        table, notes = claims_table(con, key)
        sec.add(table)
        sec.notes("Claims", notes)
        return sec.build(), [f"paper {key}: no reports/papers/paper{key}.toml"]
    sec = SectionBuilder(f"paper-{key}", f"Paper {key}: {spec.title}")
    if spec.authors:
        sec.para(spec.authors, "provenance")
    if spec.question:
        sec.para(spec.question)
    if spec.stand_ins:
        sec.notes("What stands in for settings that cannot exist on this machine", spec.stand_ins)
    runs = [
        r
        for r in list_runs(con)
        if r.source == f"published:{key}"
        or (r.source == "measured" and spec.experiment in r.experiments)
    ]
    measured = [r.run_id for r in runs if r.source == "measured"]
    published = [r.run_id for r in runs if r.source != "measured"]
    sec.para(
        f"Published rows: run(s) {', '.join(published) or 'none imported'}. Measured: "
        f"experiment {spec.experiment}, run(s) {', '.join(measured) or 'none yet'}.",
        "provenance",
    )
    tables = SectionBuilder(f"paper-{key}-tables", "Tables: published and measured here")
    for t in spec.tables:
        table, notes = table_blocks(con, spec, t)
        tables.add(table)
        tables.notes(f"{t.label}", notes)
    if not spec.tables:
        tables.para("The paper description lists no tables.", "note")
    sec.subsections.append(tables.build())
    claims = SectionBuilder(f"paper-{key}-claims", "Claims and verdicts")
    table, notes = claims_table(con, key)
    if table is not None:
        claims.para(
            "Verdict on the paper's numbers: does the claim follow from its own published "
            "table (one run per cell: no significance test possible)? Verdict on our trials: "
            "agrees, disagrees, inconclusive (with the power to detect the paper's effect) or "
            "not testable here, with the test and the numbers that decided."
        )
    claims.add(table)
    claims.notes("Claims", notes)
    sec.subsections.append(claims.build())
    figures, fig_notes = paper_figures(con, spec)
    figs = SectionBuilder(f"paper-{key}-figures", "Figures")
    for fig in figures:
        figs.add(fig)
    figs.notes("Left out", fig_notes)
    if figures or fig_notes:
        sec.subsections.append(figs.build())
    warnings += [f"paper {key}: {n}" for n in notes]
    return sec.build(), warnings


def papers_context(
    con: Any, db: Path, keys: Sequence[str], *, papers_dir: Path | None = None
) -> Any:
    from reports.context import ReportContext
    from reports.environment import environment_section

    runs = list_runs(con)
    if not runs:
        raise ReportError(
            "no runs in DB: run `runner trials --experiment KEY` or "
            "`runner import published --paper all` first"
        )
    sections: list[Section] = []
    warnings: list[str] = []
    for key in keys:
        section, notes = paper_section(con, key, papers_dir)
        sections.append(section)
        warnings += notes
    experiments = {f"paper{k}" for k in keys}
    used = [
        r
        for r in runs
        if r.source in {f"published:{k}" for k in keys} or experiments & set(r.experiments)
    ]
    sections.append(environment_section(used or runs))
    n = sum(int(r.n_trials) for r in used)
    names = ", ".join(keys)
    return ReportContext(
        title=f"trialkit: paper{'s' if len(keys) > 1 else ''} {names} reproduced",
        database=str(db),
        run_ids=[str(r.run_id) for r in used],
        n_trials=n,
        sections=sections,
        intro=[
            f"Database: {db}. Each paper's tables as published beside the same tables measured "
            "here (same rows and columns; a missing cell is marked, never filled in), the "
            "verdicts on its claims, and its figures redrawn from our trials."
        ],
        warnings=warnings,
    )


__all__ = [
    "Figure",
    "PaperSpec",
    "TableSpec",
    "load_paper",
    "paper_section",
    "papers_context",
    "published_rows",
    "table_blocks",
]
