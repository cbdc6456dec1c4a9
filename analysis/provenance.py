"""Where selected trials come from, when that needs saying: runs that did not finish normally
(``killed``, ``interrupted``, ``failed``, or still ``running``) and, from the store, dead
runners' journals whose finished trials are not in the database yet.

Analyses keep such trials (each one finished and was recorded whole); :func:`provenance` says
how many of a selection come from which run, how that run ended and how to resume it, so
``analyze`` and ``report`` never use them without comment. Only ``analysis/cli*.py`` and the
report print the notes.

Cost: the small ``runs`` table is read first; only when a run is not ``finished`` are the
trials counted, and then only that run's trials are aggregated (DuckDB skips the row groups of
other runs by their ``run_id`` ranges), plus one count of the selection in stores of up to
:data:`TOTAL_MAX_ROWS` trials. Measured on the 10M-trial store: 0.001-0.012 CPU s when every
run finished; 0.011-0.03 CPU s with a killed run of 100,000 trials (only its trials are read);
0.2-0.35 CPU s when the unfinished run holds all 10M.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from analysis.runs import trial_rows
from analysis.where import Filter, as_filters, where_clause

#: Run statuses that need no comment.
FINISHED = "finished"
#: Runs named one by one in the notes; more are summed up in one line.
MAX_RUNS_SHOWN = 3
#: Trials in the store up to which the notes give the selection's size too ("37 of 1,200"):
#: counting it scans the selection (about 0.05-0.15 CPU s at 10M trials); above, only the
#: unfinished runs' trials are counted.
TOTAL_MAX_ROWS = 1_000_000
#: The database file ``runner`` and ``analyze`` use unless told otherwise.
DEFAULT_DB = "results.duckdb"


@dataclass(frozen=True)
class UnfinishedRun:
    """A run whose trials are selected and that did not finish normally."""

    run_id: str
    #: ``killed``, ``interrupted``, ``failed`` or ``running``
    status: str
    #: ``running`` with a live runner (it holds the run's journal lock): more trials will come
    alive: bool
    source: str
    #: selected trials from this run
    n_trials: int
    #: when its last trial started (None: no trial)
    last_trial_at: datetime | None
    #: why it ended, as recorded: the run's end error (a failed run's error, an interrupted
    #: run's signal), else (databases written before the runner recorded the signal) the
    #: signal named by its interrupted trial's error text; None when unknown
    reason: str | None = None
    #: finished trials of this run still in its dead runner's journal, not in the database yet
    #: (the store's note on that journal, folded into this run's line)
    journal_trials: int = 0
    journal_path: str | None = None

    @property
    def resumable(self) -> bool:
        """``runner trials --resume`` takes it up (a measured run no live runner holds)."""
        return self.source == "measured" and not self.alive

    def ending(self) -> str:
        """How the run ended, as a clause: ``was killed (its runner died; last trial …)``."""
        when = (
            [f"last trial {self.last_trial_at:%Y-%m-%d %H:%M} UTC"]
            if self.last_trial_at is not None
            else []
        )
        why = [self.reason] if self.reason else []
        if self.status == "running" and self.alive:
            what, parts = "is still running", when
        elif self.status == "running":  # dead; the next writer marks it killed
            what, parts = "did not finish", ["its runner is gone", *when]
        elif self.status == "killed":
            what, parts = "was killed", [*(why or ["its runner died"]), *when]
        elif self.status == "interrupted":
            what, parts = "was interrupted", [*why, *when]
        else:
            what, parts = f"ended {self.status}", [*why, *when]
        return f"{what} ({'; '.join(parts)})" if parts else what

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "alive": self.alive,
            "source": self.source,
            "n_trials": self.n_trials,
            "last_trial_at": None if self.last_trial_at is None else str(self.last_trial_at),
            "reason": self.reason,
            "journal_trials": self.journal_trials,
            "journal_path": self.journal_path,
        }


@dataclass(frozen=True)
class Provenance:
    """What a selection's readers must be told: its trials from unfinished runs, and the
    store's notes on unmerged journals of dead runners."""

    #: the database as the user named it (for the ``--resume`` line)
    db: str
    #: trials in the selection (None: not counted: every run finished, or the store holds
    #: more than :data:`TOTAL_MAX_ROWS` trials)
    n_selected: int | None
    runs: tuple[UnfinishedRun, ...] = ()
    #: one line per dead runner's journal not merged yet (:attr:`runner.store.Store.notes`)
    store_notes: tuple[str, ...] = ()
    #: how the selection is described (``selected`` or ``in the report``)
    noun: str = "selected"
    #: the view has ``run_status``: ``--where run_status=finished`` leaves the runs out
    by_status: bool = False

    def __bool__(self) -> bool:
        return bool(self.runs or self.store_notes)

    def _db_option(self) -> str:
        return "" if self.db == DEFAULT_DB else f" --db {shlex.quote(self.db)}"

    def resume_command(self, run: UnfinishedRun) -> str:
        return f"runner trials --resume {shlex.quote(run.run_id)}{self._db_option()}"

    def exclude_option(self) -> str:
        """``--where`` items leaving out every unfinished run's trials: the finished runs'
        trials only when the view has ``run_status``, else one ``run_id!=`` per run."""
        if self.by_status:
            return "--where run_status=finished"
        return " ".join(f"--where run_id!={shlex.quote(r.run_id)}" for r in self.runs)

    def run_line(self, run: UnfinishedRun, *, mark: str = "`") -> str:
        """One sentence on one run: how many trials, how it ended, how to resume it (the
        command between ``mark``)."""
        total = f" of {self.n_selected:,}" if self.n_selected is not None else ""
        text = (
            f"{run.n_trials:,}{total} {self.noun} trials come from run {run.run_id}, which "
            f"{run.ending()}"
        )
        if run.journal_trials:
            text += (
                f"; {run.journal_trials:,} more of its finished trials are in its journal "
                f"{run.journal_path}, not in the database yet"
            )
        if run.resumable:
            merges = " (merges them too)" if run.journal_trials else ""
            text += f"; resume{merges}: {mark}{self.resume_command(run)}{mark}"
        return text

    def lines(self, *, exclude_hint: bool = True, mark: str = "`") -> list[str]:
        """The notes, one line each: the unfinished runs (at most :data:`MAX_RUNS_SHOWN`,
        then one line for the rest), the way to leave them out, then the store's notes."""
        out = [self.run_line(r, mark=mark) for r in self.runs[:MAX_RUNS_SHOWN]]
        rest = self.runs[MAX_RUNS_SHOWN:]
        if rest:
            n = sum(r.n_trials for r in rest)
            ids = ", ".join(r.run_id for r in rest)
            out.append(f"and {n:,} more from {len(rest)} other unfinished runs ({ids})")
        if self.runs and exclude_hint:
            out[-1] += f"; leave out: {self.exclude_option()}"
        out += [_remark(n, mark) for n in self.store_notes]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "n_selected": self.n_selected,
            "runs": [r.to_dict() for r in self.runs],
            "store_notes": list(self.store_notes),
        }


@dataclass
class Reader:
    """A read-only open of a results database: its connection and the store's notes."""

    con: Any
    path: Path
    notes: list[str] = field(default_factory=list)


@contextmanager
def open_reader(db: str | Path) -> Iterator[Reader]:
    """Open ``db`` read-only as :func:`analysis.data.connect` does, keeping the store's notes
    on unmerged journals; store problems become :class:`AnalysisError`."""
    from analysis.data import open_read_store

    with open_read_store(db) as store:
        yield Reader(store.con, Path(db), list(store.notes))


def _remark(note: str, mark: str) -> str:
    """A store note with its command between ``mark`` (a report passes ``""``: no literal
    backticks); notes other than a journal's as they are."""
    from runner.journal import JournalNote

    return note.unmerged.note(mark) if isinstance(note, JournalNote) else note


def _fold_journals(
    runs: Sequence[UnfinishedRun], store_notes: Sequence[str]
) -> tuple[tuple[UnfinishedRun, ...], tuple[str, ...]]:
    """The store's notes on unmerged journals of runs the notes already name folded into
    those runs' lines (one line per run, not two)."""
    from dataclasses import replace

    from runner.journal import JournalNote

    named = {r.run_id: r for r in runs}
    journals = {
        n.unmerged.run_id: n.unmerged
        for n in store_notes
        if isinstance(n, JournalNote) and n.unmerged.run_id in named
    }
    if not journals:
        return tuple(runs), tuple(store_notes)
    folded = tuple(
        replace(
            r, journal_trials=journals[r.run_id].trials, journal_path=str(journals[r.run_id].path)
        )
        if r.run_id in journals
        else r
        for r in runs
    )
    rest = tuple(
        n for n in store_notes if not (isinstance(n, JournalNote) and n.unmerged.run_id in journals)
    )
    return folded, rest


def _has_run_status(con: Any) -> bool:
    """The ``observations`` view has ``run_status`` (stores written since it was added)."""
    try:
        from analysis.data import view_columns

        return "run_status" in view_columns(con)
    except Exception:  # noqa: BLE001 - no view: the run_id items then
        return False


def _selection_sql(
    columns: dict[str, str], selections: Sequence[Sequence[str | Filter]], include_warmup: bool
) -> tuple[str, list[Any]]:
    """One SQL condition for the union of ``selections`` (each the default selection, ok and
    non-warm-up trials, narrowed by its filters), and its parameters."""
    parts, params = [], []
    for items in selections or [()]:
        sql, p = where_clause(columns, as_filters(list(items)), include_warmup=include_warmup)
        parts.append(f"({sql.removeprefix(' WHERE ') or 'true'})")
        params += p
    return " OR ".join(parts), params


def _table_for(con: Any, selections: Sequence[Sequence[str | Filter]]) -> tuple[str, dict]:
    """The cheapest relation holding every column the selections use: the ``trials`` table
    when it has them all (no join to ``params``), else the ``observations`` view; with its
    columns."""
    from analysis.data import view_columns

    used = {f.column for items in selections for f in as_filters(list(items))}
    used |= {"status", "warmup", "run_id"}
    try:
        table = {r[0]: r[1] for r in con.execute("DESCRIBE trials").fetchall()}
    except Exception:  # noqa: BLE001 - not the usual store: use the view
        table = {}
    if table and used <= set(table):
        return "trials", table
    return "observations", view_columns(con)


def _reasons(con: Any, run_ids: Sequence[str]) -> dict[str, str]:
    """Each run's recorded end error (``meta``'s ``journal:<run_id>`` state), when any."""
    keys = [f"journal:{r}" for r in run_ids]
    try:
        rows = con.execute(
            "SELECT key, value FROM meta WHERE list_contains(?, key)", [keys]
        ).fetchall()
    except Exception:  # noqa: BLE001 - an old schema without journal states
        return {}
    out = {}
    for key, value in rows:
        try:
            error = json.loads(value).get("error")
        except (ValueError, AttributeError):
            continue
        if error:
            out[str(key).removeprefix("journal:")] = " ".join(str(error).split())
    return out


def provenance(
    con: Any,
    *,
    db: str | Path,
    selections: Sequence[Sequence[str | Filter]] = ((),),
    include_warmup: bool = False,
    store_notes: Sequence[str] = (),
    noun: str = "selected",
) -> Provenance:
    """The unfinished runs among the trials ``selections`` keep (their union; each the
    default selection of ok, non-warm-up trials narrowed by ``--where`` items), with their
    counts, and ``store_notes``. ``db``: the database as the user named it. Reads the ``runs``
    table only, unless a run is not ``finished``."""
    from runner.journal import journal_locked

    runs = con.execute(
        "SELECT run_id, status, source FROM runs WHERE status <> ? ORDER BY started_at, run_id",
        [FINISHED],
    ).fetchall()
    if not runs:
        return Provenance(str(db), None, (), tuple(store_notes), noun)
    ids = [str(r[0]) for r in runs]
    table, columns = _table_for(con, selections)
    cond, params = _selection_sql(columns, selections, include_warmup)
    interrupted = "status = 'interrupted'" if "status" in columns else "false"
    # only the unfinished runs' row groups are read (run_id zone maps); an interrupted trial's
    # text names the signal for runs that ended before the runner recorded it as the end error
    per_run = con.execute(
        f"SELECT run_id, count(*) FILTER (WHERE {cond}), max(started_at), "
        f"min(error) FILTER (WHERE {interrupted}) "
        f"FROM {table} WHERE run_id IN ({', '.join('?' * len(ids))}) GROUP BY run_id",
        [*params, *ids],
    ).fetchall()
    counts = {str(r[0]): (int(r[1]), r[2], r[3]) for r in per_run}
    if not any(n for n, _, _ in counts.values()):
        return Provenance(str(db), None, (), tuple(store_notes), noun)
    total = None
    if trial_rows(con) <= TOTAL_MAX_ROWS:  # the selection's size takes a scan of it
        total = int(con.execute(f"SELECT count(*) FROM {table} WHERE {cond}", params).fetchone()[0])
    reasons = _reasons(con, ids)
    path = Path(db)
    out = []
    for run_id, status, source in runs:
        n, last, signal = counts.get(str(run_id), (0, None, None))
        if not n:
            continue
        reason = reasons.get(str(run_id))
        if status == "interrupted" and not reason and signal:
            # "interrupted by SIGTERM after 1.234 s; ..." -> "SIGTERM"
            words = str(signal).split()
            reason = words[2].rstrip(";,") if len(words) > 2 and words[1] == "by" else None
        if status == "killed" and reason == "the runner died":
            reason = "its runner died"
        alive = status == "running" and journal_locked(path, str(run_id))
        out.append(
            UnfinishedRun(
                run_id=str(run_id),
                status=str(status),
                alive=alive,
                source=str(source),
                n_trials=n,
                last_trial_at=last,
                reason=reason,
            )
        )
    folded, notes = _fold_journals(out, store_notes)
    return Provenance(str(db), total, folded, notes, noun, _has_run_status(con))


__all__ = [
    "Provenance",
    "Reader",
    "UnfinishedRun",
    "open_reader",
    "provenance",
]
