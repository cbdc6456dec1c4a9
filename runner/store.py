"""The results store: a DuckDB file, the one contract between the runner and the analysis.

Tables (see README "Database schema"): ``meta``, ``runs``, ``setups``, ``trials`` (one DOUBLE
column per metric name, added the first time the name is seen), ``params`` (a configuration's
parameters, stored once and referenced by ``trials.params_id``), ``samples``, ``curves`` (per-epoch
training curves), ``stops``, ``prices`` and ``observation_columns`` (the catalogue of metric and
param names that the ``observations`` view shows as columns). ``runner trials`` journals its
events (:mod:`runner.journal`) and merges them here in batches, many trials per INSERT
(:meth:`Store.insert_trials`); :meth:`Store.append_trial` appends one trial in its own
transaction; importers copy a staged table with :meth:`Store.insert_staged`. ``meta`` also keeps,
per journaled run, how far its journal was merged (key ``journal:<run_id>``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from runner.errors import RunnerError

SCHEMA_VERSION = 4
DEFAULT_DB = "results.duckdb"

#: Factor and timing columns of ``trials`` in order; the observations view starts with them.
TRIAL_COLUMNS: dict[str, str] = {
    "trial_id": "BIGINT",
    "run_id": "VARCHAR",
    "config_id": "VARCHAR",
    "experiment": "VARCHAR",
    "engine": "VARCHAR",
    "workload": "VARCHAR",
    "dataset": "VARCHAR",
    "workers": "INTEGER",
    "threads_per_worker": "INTEGER",
    "memory_gb": "DOUBLE",
    "batch_size": "INTEGER",
    "epochs": "INTEGER",
    "data_fraction": "DOUBLE",
    "params": "JSON",
    "repetition": "INTEGER",
    #: the round (1, 2, …) the trial ran in: each round starts every configuration's engine afresh
    "round": "INTEGER",
    "warmup": "BOOLEAN",
    "seed": "BIGINT",
    "status": "VARCHAR",
    "error": "VARCHAR",
    "started_at": "TIMESTAMP",
    "wall_s": "DOUBLE",
    "setup_s": "DOUBLE",
    "load_s": "DOUBLE",
    "train_s": "DOUBLE",
    "infer_s": "DOUBLE",
}
#: Columns a caller may set when appending a trial (trial_id comes from a sequence).
WRITABLE_TRIAL_COLUMNS = [c for c in TRIAL_COLUMNS if c != "trial_id"]
#: Columns of the ``trials`` table before its metric columns: ``params`` is stored once per
#: distinct value in ``params`` and referenced by ``params_id``.
TABLE_TRIAL_COLUMNS: dict[str, str] = {
    ("params_id" if name == "params" else name): ("VARCHAR" if name == "params" else typ)
    for name, typ in TRIAL_COLUMNS.items()
}
#: Names no metric or param may take (they are columns of ``trials`` or of ``params``).
_RESERVED_NAMES = frozenset({"params_id"})
#: ``interrupted``: the trial in flight when Ctrl-C or SIGTERM stopped the run (its wall time so
#: far; ``runner trials --resume`` runs it again).
TRIAL_STATUSES = ("ok", "failed", "timeout", "interrupted")
#: Statuses of ``runs``: ``running`` until it ends ``finished``, ``failed`` (an error, a full
#: disk), ``interrupted`` (Ctrl-C, SIGTERM) or ``killed`` (the runner died without an ending; set
#: by whoever merges its journal).
RUN_STATUSES = ("running", "finished", "failed", "interrupted", "killed")
#: Seconds :func:`open_store` waits for a database another process holds, unless told.
DEFAULT_WAIT_S = 30.0
SAMPLE_COLUMNS = (
    "t_s",
    "cpu_percent",
    "rss_mb",
    "read_bytes",
    "write_bytes",
    "net_bytes_recv",
    "net_bytes_sent",
)
#: Columns of ``curves`` after trial_id: a training curve's point (``part``: the trainer, 0 when a
#: trial trains one model; ``step``: the epoch, from 1).
CURVE_COLUMNS = ("part", "name", "step", "value")
_CURVES_DDL = """CREATE TABLE IF NOT EXISTS curves (
        trial_id BIGINT NOT NULL,
        part INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        step INTEGER NOT NULL,
        value DOUBLE,
        PRIMARY KEY (trial_id, part, name, step)
    )"""
#: Why each configuration of a run stopped taking trials (``--until-ci``: interval narrow
#: enough, or the ``--max-n`` cap; otherwise the planned ``n``).
_STOPS_DDL = """CREATE TABLE IF NOT EXISTS stops (
        run_id VARCHAR NOT NULL,
        config_id VARCHAR NOT NULL,
        n_ok INTEGER NOT NULL,
        rounds INTEGER NOT NULL,
        reason VARCHAR NOT NULL,
        metric VARCHAR,
        statistic VARCHAR,
        estimate DOUBLE,
        ci_low DOUBLE,
        ci_high DOUBLE,
        rel_half_width DOUBLE,
        target DOUBLE,
        PRIMARY KEY (run_id, config_id)
    )"""
_TRIALS_DDL = (
    "CREATE TABLE IF NOT EXISTS trials ("
    + ", ".join(f"{name} {typ}" for name, typ in TABLE_TRIAL_COLUMNS.items())
    + ")"
)
_PARAMS_DDL = "CREATE TABLE IF NOT EXISTS params (params_id VARCHAR PRIMARY KEY, params JSON)"
#: Columns the view adds from ``runs``: its ``source``, and its ``status`` as ``run_status``
#: (``--where run_status=finished`` keeps the trials of runs that finished).
RUN_VIEW_COLUMNS = {"source": "VARCHAR", "run_status": "VARCHAR"}
#: How the view selects each of :data:`RUN_VIEW_COLUMNS` from ``runs r``.
_RUN_VIEW_SELECT = ["r.source", "r.status AS run_status"]

_DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        argv JSON,
        spec JSON,
        env JSON,
        source VARCHAR NOT NULL,
        status VARCHAR NOT NULL DEFAULT 'running'
    )""",
    """CREATE TABLE IF NOT EXISTS setups (
        setup_id BIGINT PRIMARY KEY,
        run_id VARCHAR NOT NULL,
        config_id VARCHAR NOT NULL,
        params JSON,
        started_at TIMESTAMP NOT NULL,
        setup_s DOUBLE,
        load_s DOUBLE,
        status VARCHAR NOT NULL,
        error VARCHAR,
        round INTEGER,
        load JSON
    )""",
    "CREATE SEQUENCE IF NOT EXISTS setup_id_seq START 1",
    "CREATE SEQUENCE IF NOT EXISTS trial_id_seq START 1",
    # No PRIMARY KEY: ids come from trial_id_seq, and the index would cost space and inserts.
    _TRIALS_DDL,
    _PARAMS_DDL,
    """CREATE TABLE IF NOT EXISTS samples (
        trial_id BIGINT NOT NULL,
        t_s DOUBLE NOT NULL,
        cpu_percent DOUBLE,
        rss_mb DOUBLE,
        read_bytes BIGINT,
        write_bytes BIGINT,
        net_bytes_recv BIGINT,
        net_bytes_sent BIGINT
    )""",
    _CURVES_DDL,
    _STOPS_DDL,
    """CREATE TABLE IF NOT EXISTS prices (
        name VARCHAR NOT NULL,
        vcpu INTEGER,
        memory_gb DOUBLE,
        usd_per_hour DOUBLE NOT NULL,
        source VARCHAR NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS observation_columns (
        name VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        type VARCHAR NOT NULL
    )""",
]

#: Migrations from version N to N+1. 1 -> 2: the ``curves`` table. 2 -> 3: rounds (a trial's
#: and a setup's ``round``), the machine's load around each setup, and ``stops``. 3 -> 4:
#: :func:`_migrate_3_to_4` (metrics as columns of ``trials``, params stored once).
MIGRATIONS: dict[int, list[str] | Callable[[Store], None]] = {
    1: [_CURVES_DDL],
    2: [
        "ALTER TABLE trials ADD COLUMN IF NOT EXISTS round INTEGER",
        "ALTER TABLE setups ADD COLUMN IF NOT EXISTS round INTEGER",
        "ALTER TABLE setups ADD COLUMN IF NOT EXISTS load JSON",
        _STOPS_DDL,
    ],
    3: lambda store: _migrate_3_to_4(store),
}

_WRITABLE = frozenset(WRITABLE_TRIAL_COLUMNS)
#: Names the view takes from ``trials`` or ``runs``: a metric or param of that name is not stored.
_VIEW_NAMES = frozenset(TRIAL_COLUMNS) | frozenset(RUN_VIEW_COLUMNS)
#: Fewer new metric columns than this are always added by ALTER TABLE (see
#: :meth:`Store._add_metric_columns`).
_REBUILD_MIN_COLUMNS = 32
_DUCKDB_MAGIC = b"DUCK"
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


class StoreError(RunnerError):
    """The database cannot be opened or written as asked."""


class StoreBusy(StoreError):
    """Another process holds the database (a writer, or readers while we want to write) for
    longer than we waited."""


def normalise_name(raw: str) -> str:
    """Turn a CSV header or metric name into a snake_case column name (``Train Time (s)`` ->
    ``train_time_s``)."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", raw.strip()).strip("_").lower()
    if name and name[0].isdigit():
        name = "_" + name
    return name


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _sql_type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float):
        return "DOUBLE"
    return "VARCHAR"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def params_key(params: Any) -> tuple[str, str]:
    """(params_id, canonical JSON) of a configuration's params: the id is the first 16 hex
    digits of the SHA-256 of the JSON with sorted keys, so equal params share one row."""
    text = _json(params)
    return hashlib.sha256(text.encode()).hexdigest()[:16], text


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass
class TrialRecord:
    """One trial as the runner (or an import) hands it to the store."""

    run_id: str
    status: str
    values: dict[str, Any] = field(default_factory=dict)  # any of WRITABLE_TRIAL_COLUMNS
    metrics: dict[str, float] = field(default_factory=dict)
    samples: list[Sequence[float]] = field(default_factory=list)  # rows of SAMPLE_COLUMNS
    curves: list[tuple[int, str, int, float]] = field(default_factory=list)  # CURVE_COLUMNS rows


def curve_rows(
    history: Mapping[str, Sequence[float]] | Sequence[Mapping[str, Sequence[float]]] | None,
) -> list[tuple[int, str, int, float]]:
    """Rows of ``curves`` from per-epoch histories: one mapping name -> values per epoch (part 0),
    or a sequence of them, one per trainer (parts 0, 1, ...). Non-finite values are dropped."""
    if not history:
        return []
    parts = [history] if isinstance(history, Mapping) else list(history)
    return [
        (part, str(name), step, float(value))
        for part, curves in enumerate(parts)
        for name, values in curves.items()
        for step, value in enumerate(values, 1)
        if value is not None and math.isfinite(float(value))
    ]


def check_db_path(path: Path, *, must_exist: bool) -> None:
    """Refuse paths that are directories, or existing files that are not DuckDB databases."""
    if path.is_dir():
        raise StoreError(
            f"--db {path} is a directory; give a database file, e.g. --db {path / DEFAULT_DB}"
        )
    if path.exists() and not path.is_file():
        raise StoreError(
            f"--db {path} is not a regular file (a FIFO, device or socket); give a database file"
        )
    if not path.exists():
        if must_exist:
            raise StoreError(
                f"no database at {path}: run `runner trials` (or `runner import csv`) first, "
                "or point --db at an existing results file"
            )
        if not path.parent.exists():
            raise StoreError(f"--db {path}: folder {path.parent} does not exist; create it first")
        return
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError as exc:  # unreadable (permissions, /proc/self/mem, I/O error)
        raise StoreError(f"cannot read --db {path}: {exc.strerror or exc}") from None
    if len(head) < 12 or head[8:12] != _DUCKDB_MAGIC:
        raise StoreError(
            f"{path} is not a DuckDB database; pass --db a trialkit results file "
            "(or a new path to create one)"
        )


class Store:
    """An open results database. Use :func:`open_store`; close it (or use ``with``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        self._columns: dict[str, tuple[str, str]] | None = None
        self._params_ids: set[str] | None = None
        self._insert_sql: dict[tuple[str, ...], str] = {}
        #: inside :meth:`transaction` (DuckDB has no nested transactions to ask about)
        self._in_transaction = False
        #: what opening it merged from dead runners' journals (see runner.journal.sweep)
        self.sweep_notes: list[str] = []
        #: for a reader (a read-only open): one line per dead runner's journal holding finished
        #: trials not in the database yet (see runner.journal.unmerged); a CLI prints them
        self.notes: list[str] = []
        #: the schema version of the file when a read-only open shows an older one in the
        #: current shape through temporary views (None: the file has the current schema)
        self.legacy_version: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    # -- schema ------------------------------------------------------------------------------
    def _create(self) -> None:
        with self.transaction():
            for ddl in _DDL:
                self.con.execute(ddl)
            self.con.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                [str(SCHEMA_VERSION)],
            )
            self._rebuild_view()

    def schema_version(self) -> int | None:
        has_meta = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
        ).fetchone()[0]
        if not has_meta:
            return None
        row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if not row:
            return None
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise StoreError(
                f"{self.path} has a malformed schema version ({str(row[0])[:40]!r} in its meta "
                "table); it was not written by trialkit, or was edited: use another --db"
            ) from None

    def _migrate(self, version: int) -> None:
        with self.transaction():
            while version < SCHEMA_VERSION:
                step = MIGRATIONS[version]
                if callable(step):
                    step(self)
                else:
                    for statement in step:
                        self.con.execute(statement)
                version += 1
            self.con.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)]
            )
            self._rebuild_view()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, or ROLLBACK (and forget cached catalogue entries) on error."""
        self.con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._in_transaction = False
            self.con.execute("ROLLBACK")
            self._forget()
            raise
        self._in_transaction = False
        self.con.execute("COMMIT")

    def _forget(self) -> None:
        """Drop the in-memory copies of the catalogue and of the known params ids."""
        self._columns = None
        self._params_ids = None
        self._insert_sql.clear()

    # -- observation view --------------------------------------------------------------------
    def observation_columns(self) -> dict[str, tuple[str, str]]:
        """Catalogue of extra view columns: name -> (kind, SQL type)."""
        if self._columns is None:
            rows = self.con.execute("SELECT name, kind, type FROM observation_columns").fetchall()
            self._columns = {name: (kind, typ) for name, kind, typ in rows}
        return self._columns

    def _register_columns(self, kind: str, items: Mapping[str, Any]) -> bool:
        """Add unseen metric/param names to the catalogue (a new metric also becomes a DOUBLE
        column of ``trials``); True when the view must change (the caller rebuilds it once).
        Names of trial columns are skipped: the view shows the trial column. Every name is
        checked before anything is written; the new names then go in as one batch (one
        catalogue INSERT; the metric columns as :meth:`_add_metric_columns` chooses), inside
        the caller's transaction or one of its own."""
        known = self.observation_columns()
        new: list[tuple[str, str]] = []
        widened: list[str] = []
        for name, value in items.items():
            if name in TRIAL_COLUMNS or name in RUN_VIEW_COLUMNS:
                continue
            typ = "DOUBLE" if kind == "metric" else _sql_type_of(value)
            if name not in known:
                if not _NAME_RE.match(name):
                    raise StoreError(
                        f"{kind} name {name!r} is not a snake_case identifier; rename it "
                        "(letters, digits and _ only)"
                    )
                if name in _RESERVED_NAMES:
                    raise StoreError(f"{kind} name {name!r} is used by the store; rename it")
                new.append((name, typ))
            else:
                old_kind, old_type = known[name]
                if old_kind != kind:
                    raise StoreError(
                        f"{name!r} is already a {old_kind} in this database and cannot also be a "
                        f"{kind}; rename one of them"
                    )
                if old_type != typ and old_type != "VARCHAR" and value is not None:
                    widened.append(name)
        if not new and not widened:
            return False

        def write() -> None:
            if new and kind == "metric":
                self._add_metric_columns([name for name, _ in new])
            if new:
                self.con.execute(
                    "INSERT INTO observation_columns SELECT unnest(?), ?, unnest(?)",
                    [[name for name, _ in new], kind, [typ for _, typ in new]],
                )
            if widened:
                self.con.execute(
                    "UPDATE observation_columns SET type = 'VARCHAR' WHERE list_contains(?, name)",
                    [widened],
                )

        if self._in_transaction:
            write()
        else:
            with self.transaction():
                write()
        for name, typ in new:
            known[name] = (kind, typ)
        for name in widened:
            known[name] = (kind, "VARCHAR")
        return True

    def _add_metric_columns(self, names: Sequence[str]) -> None:
        """New DOUBLE columns of ``trials`` (inside a transaction). DuckDB adds one column per
        ALTER TABLE, and each costs more the more columns the table has (3,000 in a row: 16 s on
        an empty table) and the more row groups it holds (~2.5 ms each); so when rebuilding the
        table with every new column in one statement is estimated cheaper (few rows, many new
        columns: a wide CSV into a new database), it is rebuilt instead (rows kept in order,
        the observations view binds to the new table by name)."""
        row = self.con.execute(
            "SELECT estimated_size, column_count FROM duckdb_tables() WHERE table_name = "
            "'trials' AND schema_name = 'main' AND database_name = current_database()"
        ).fetchone()
        rows, columns = (int(row[0] or 0), int(row[1])) if row else (0, len(TABLE_TRIAL_COLUMNS))
        n = len(names)
        groups = max(1, math.ceil(rows / 122_880))
        alter_s = n * (2.5e-3 * groups + 3.5e-6 * (columns + n / 2))
        rebuild_s = (columns + n) * (0.15e-6 * rows + 0.45e-3)
        if n < _REBUILD_MIN_COLUMNS or alter_s <= rebuild_s:
            for name in names:
                self.con.execute(
                    f"ALTER TABLE trials ADD COLUMN IF NOT EXISTS {quote_ident(name)} DOUBLE"
                )
            return
        added = ", ".join(f"NULL::DOUBLE AS {quote_ident(name)}" for name in names)
        self.con.execute("DROP TABLE IF EXISTS _trials_wider")
        self.con.execute(f"CREATE TABLE _trials_wider AS SELECT *, {added} FROM trials")
        self.con.execute("DROP TABLE trials")
        self.con.execute("ALTER TABLE _trials_wider RENAME TO trials")

    def _rebuild_view(self) -> None:
        cols = self.observation_columns()
        metric_names = sorted(n for n, (k, _) in cols.items() if k == "metric")
        param_cols = sorted((n, typ) for n, (k, typ) in cols.items() if k == "param")
        select = ["p.params" if c == "params" else f"t.{c}" for c in TRIAL_COLUMNS]
        select += _RUN_VIEW_SELECT
        select += [f"t.{quote_ident(n)}" for n in metric_names]
        select += [f"p.{quote_ident(n)}" for n, _ in param_cols]
        # Each param column is extracted once per distinct params row, then joined.
        # Names are checked identifiers; the JSON path is a literal built from them.
        extract = ["params_id", "params"] + [
            f"TRY_CAST(json_extract_string(params, '{'$.' + json.dumps(name)}') AS {typ}) "
            f"AS {quote_ident(name)}"
            for name, typ in param_cols
        ]
        self.con.execute(
            "CREATE OR REPLACE VIEW observations AS SELECT "
            + ", ".join(select)
            + " FROM trials t JOIN runs r USING (run_id)"
            + f" LEFT JOIN (SELECT {', '.join(extract)} FROM params) p USING (params_id)"
        )

    def _view_has_run_columns(self) -> bool:
        """The ``observations`` view has every column of :data:`RUN_VIEW_COLUMNS` (a file
        written before ``run_status`` was added has not, until a writable open rebuilds it; a
        read-only open leaves it so)."""
        names = {
            r[0]
            for r in self.con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'observations' "
                "AND NOT internal AND schema_name = 'main'"
            ).fetchall()
        }
        return set(RUN_VIEW_COLUMNS) <= names

    # -- writing -----------------------------------------------------------------------------
    def begin_run(
        self,
        *,
        source: str,
        argv: Sequence[str] = (),
        spec: Mapping[str, Any] | None = None,
        env: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """A new ``running`` run; ``run_id`` None: a new id (:func:`new_run_id`)."""
        run_id = new_run_id() if run_id is None else run_id
        self.con.execute(
            "INSERT INTO runs (run_id, started_at, argv, spec, env, source) VALUES (?,?,?,?,?,?)",
            [
                run_id,
                started_at or now_utc(),
                _json(list(argv)),
                _json(spec or {}),
                _json(env or {}),
                source,
            ],
        )
        return run_id

    def finish_run(
        self, run_id: str, status: str = "finished", finished_at: datetime | None = None
    ) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"bad run status {status!r}")
        self.con.execute(
            "UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?",
            [finished_at or now_utc(), status, run_id],
        )

    def reopen_run(self, run_id: str) -> None:
        """A run taken up again (``runner trials --resume``): ``running``, no end time."""
        self.con.execute(
            "UPDATE runs SET finished_at = NULL, status = 'running' WHERE run_id = ?", [run_id]
        )

    def run_row(self, run_id: str) -> dict[str, Any] | None:
        """A run's row (argv, spec and env parsed), or None when there is no such run."""
        cur = self.con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([d[0] for d in cur.description], row, strict=True))
        for key in ("argv", "spec", "env"):
            if isinstance(out.get(key), str):
                out[key] = json.loads(out[key])
        return out

    def journal_state(self, run_id: str) -> dict[str, Any]:
        """How far a run's journal was merged: ``{"seq": last merged seq, "setups": {local
        number: setup_id}, ...}``; ``{"seq": 0, "setups": {}}`` when none of it was."""
        row = self.con.execute(
            "SELECT value FROM meta WHERE key = ?", [f"journal:{run_id}"]
        ).fetchone()
        state = json.loads(row[0]) if row else {}
        state.setdefault("seq", 0)
        state.setdefault("setups", {})
        return state

    def set_journal_state(self, run_id: str, state: Mapping[str, Any]) -> None:
        """Record how far a run's journal was merged (inside the merge's transaction)."""
        self.con.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", [f"journal:{run_id}", _json(state)]
        )

    def add_setup(
        self,
        *,
        run_id: str,
        config_id: str,
        params: Mapping[str, Any],
        started_at: datetime,
        setup_s: float | None,
        load_s: float | None,
        status: str,
        error: str | None = None,
        round: int | None = None,
        load: Mapping[str, Any] | None = None,
    ) -> int:
        """One engine start-up of a configuration (once per round); ``load``: the machine's
        load around it (``{"start": {...}, "end": {...}}``, see :meth:`set_setup_load`)."""
        row = self.con.execute(
            "INSERT INTO setups (setup_id, run_id, config_id, params, started_at, setup_s, "
            "load_s, status, error, round, load) VALUES (nextval('setup_id_seq'), "
            "?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING setup_id",
            [
                run_id,
                config_id,
                _json(params),
                started_at,
                setup_s,
                load_s,
                status,
                error,
                round,
                None if load is None else _json(load),
            ],
        ).fetchone()
        return int(row[0])

    def set_setup_load(self, setup_id: int, load: Mapping[str, Any]) -> None:
        """Record the machine's load around a setup's trials (start and end snapshots)."""
        self.con.execute("UPDATE setups SET load = ? WHERE setup_id = ?", [_json(load), setup_id])

    def add_stop(
        self,
        *,
        run_id: str,
        config_id: str,
        n_ok: int,
        rounds: int,
        reason: str,
        metric: str | None = None,
        statistic: str | None = None,
        estimate: float | None = None,
        ci: tuple[float, float] | None = None,
        rel_half_width: float | None = None,
        target: float | None = None,
    ) -> None:
        """Why a configuration stopped taking trials (one row per run and configuration)."""
        low, high = ci if ci is not None else (None, None)
        self.con.execute(
            "INSERT OR REPLACE INTO stops VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                config_id,
                n_ok,
                rounds,
                reason,
                metric,
                statistic,
                estimate,
                low,
                high,
                rel_half_width,
                target,
            ],
        )

    def _known_params_ids(self) -> set[str]:
        if self._params_ids is None:
            rows = self.con.execute("SELECT params_id FROM params").fetchall()
            self._params_ids = {r[0] for r in rows}
        return self._params_ids

    def _store_params(self, params: Any) -> tuple[str | None, bool]:
        """(params_id, view changed) for a trial's params (a mapping, or its JSON text): a new
        configuration gets its ``params`` row and registers its param columns."""
        if params is None:
            return None, False
        value = json.loads(params) if isinstance(params, str) else params
        params_id, text = params_key(value)
        known = self._known_params_ids()
        if params_id in known:
            return params_id, False
        self.con.execute(
            "INSERT INTO params VALUES (?, ?) ON CONFLICT DO NOTHING", [params_id, text]
        )
        known.add(params_id)
        changed = isinstance(value, Mapping) and self._register_columns("param", value)
        return params_id, changed

    def add_params(self, params: Mapping[str, Any]) -> str:
        """Store a configuration's params (once) and return its params_id; registers its param
        columns and rebuilds the view when they are new."""
        params_id, changed = self._store_params(params)
        if changed:
            self._rebuild_view()
        return str(params_id)

    def _trial_values(self, record: TrialRecord) -> tuple[dict[str, Any], dict[str, float], Any]:
        """A trial's checked row values (params left out), its metrics (missing values and
        names of trial columns dropped: the view shows the trial column) and its params."""
        if record.status not in TRIAL_STATUSES:
            raise ValueError(f"bad trial status {record.status!r}")
        values = dict(record.values)
        if not values.keys() <= _WRITABLE:
            raise ValueError(f"not trial columns: {sorted(set(values) - _WRITABLE)}")
        values["run_id"] = record.run_id
        values["status"] = record.status
        params = values.pop("params", None)
        metrics = {
            k: float(v)
            for k, v in record.metrics.items()
            if not _is_missing(v) and k not in _VIEW_NAMES
        }
        return values, metrics, params

    def _trial_statement(
        self, values: Mapping[str, Any], metrics: Mapping[str, float]
    ) -> tuple[str, list[Any]]:
        """The one INSERT of a trial's row (statements cached by column list)."""
        names = (*values, *metrics)
        sql = self._insert_sql.get(names)
        if sql is None:
            sql = (
                f"INSERT INTO trials (trial_id, {', '.join(map(quote_ident, names))}) "
                f"VALUES (nextval('trial_id_seq'){', ?' * len(names)}) RETURNING trial_id"
            )
            self._insert_sql[names] = sql
        return sql, [*values.values(), *metrics.values()]

    def _insert_trial(self, record: TrialRecord) -> int:
        values, metrics, params = self._trial_values(record)
        changed = False
        if params is not None:
            values["params_id"], changed = self._store_params(params)
        if metrics:
            known = self.observation_columns()
            if not all(known.get(k, ("",))[0] == "metric" for k in metrics):
                changed |= self._register_columns("metric", metrics)
        if changed:
            self._rebuild_view()
        sql, args = self._trial_statement(values, metrics)
        trial_id = int(self.con.execute(sql, args).fetchone()[0])
        if record.samples:
            self._insert_rows("samples", trial_id, SAMPLE_COLUMNS, record.samples)
        if record.curves:
            self._insert_rows("curves", trial_id, CURVE_COLUMNS, record.curves)
        return trial_id

    def _insert_rows(
        self, table: str, trial_id: int, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """All ``rows`` of a trial's samples or curves in one statement (a list per column)."""
        lists = [list(col) for col in zip(*rows, strict=True)]
        if len(lists) != len(columns):
            raise ValueError(f"{table} rows need {len(columns)} values: {', '.join(columns)}")
        self.con.execute(
            f"INSERT INTO {table} SELECT ?, {', '.join('unnest(?)' for _ in columns)}",
            [trial_id, *lists],
        )

    def append_trial(self, record: TrialRecord) -> int:
        """Append one trial, its metrics, samples and curves in one transaction; return its id.

        A known configuration with known metrics is one INSERT (the catalogue is checked
        against its in-memory copy). BEGIN/INSERT/COMMIT measured faster than the INSERT
        autocommitted alone (interleaved runs on a file database, medians)."""
        with self.transaction():
            return self._insert_trial(record)

    def append_trials(self, records: Iterable[TrialRecord]) -> list[int]:
        """Append many trials atomically: all of them or none."""
        with self.transaction():
            return [self._insert_trial(r) for r in records]

    def insert_trials(self, records: Sequence[TrialRecord]) -> list[int]:
        """Insert many trials with one INSERT of ``trials`` (the union of their columns, a list
        per column), one of their samples and one of their curves, inside the caller's
        transaction; return their ids, increasing in the order given. Each record is checked
        and its params and metric names registered as :meth:`append_trial` does. About 30x
        cheaper per trial than one INSERT each (what a journal merge uses)."""
        if not records:
            return []
        rows: list[dict[str, Any]] = []
        changed = False
        for record in records:
            # a journal's trial names its configuration's stored params_id (see add_params)
            params_id = record.values.get("params_id")
            if params_id is not None:
                record = TrialRecord(
                    record.run_id,
                    record.status,
                    {k: v for k, v in record.values.items() if k != "params_id"},
                    record.metrics,
                    record.samples,
                    record.curves,
                )
            values, metrics, params = self._trial_values(record)
            if params_id is not None:
                values["params_id"] = params_id
            elif params is not None:
                values["params_id"], changed_one = self._store_params(params)
                changed |= changed_one
            if metrics:
                known = self.observation_columns()
                if not all(known.get(k, ("",))[0] == "metric" for k in metrics):
                    changed |= self._register_columns("metric", metrics)
            values.update(metrics)
            rows.append(values)
        if changed:
            self._rebuild_view()
        n = len(rows)
        ids = sorted(
            int(r[0])
            for r in self.con.execute(
                "SELECT nextval('trial_id_seq') FROM range(?)", [n]
            ).fetchall()
        )
        names = list(dict.fromkeys(name for row in rows for name in row))
        types = {"trial_id": "BIGINT"} | {c: TABLE_TRIAL_COLUMNS.get(c, "DOUBLE") for c in names}
        lists = [ids] + [[row.get(name) for row in rows] for name in names]
        select = ", ".join(f"unnest(?::{types[c]}[])" for c in ["trial_id", *names])
        self.con.execute(
            f"INSERT INTO trials (trial_id, {', '.join(map(quote_ident, names))}) SELECT {select}",
            lists,
        )
        for table, columns, attr in (
            ("samples", SAMPLE_COLUMNS, "samples"),
            ("curves", CURVE_COLUMNS, "curves"),
        ):
            owner: list[int] = []
            flat: list[Sequence[Any]] = []
            for trial_id, record in zip(ids, records, strict=True):
                got = getattr(record, attr)
                owner += [trial_id] * len(got)
                flat += got
            if not flat:
                continue
            lists = [list(col) for col in zip(*flat, strict=True)]
            if len(lists) != len(columns):
                raise ValueError(f"{table} rows need {len(columns)} values: {', '.join(columns)}")
            unnests = ", ".join("unnest(?)" for _ in range(len(lists) + 1))
            self.con.execute(f"INSERT INTO {table} SELECT {unnests}", [owner, *lists])
        return ids

    def append_run(
        self,
        *,
        source: str,
        trials: Callable[[str], Iterable[TrialRecord]],
        argv: Sequence[str] = (),
        spec: Mapping[str, Any] | None = None,
        env: Mapping[str, Any] | None = None,
    ) -> str:
        """A whole finished run and its trials in one transaction (an import): all or nothing.
        ``trials`` is called with the new run id."""
        with self.transaction():
            run_id = self.begin_run(source=source, argv=argv, spec=spec, env=env)
            for record in trials(run_id):
                self._insert_trial(record)
            self.finish_run(run_id)
        return run_id

    def insert_staged(
        self,
        table: str,
        *,
        run_id: str,
        metrics: Sequence[str],
        params: Mapping[Any, Any] | None = None,
    ) -> int:
        """Copy every row of ``table`` (a table or view on :attr:`con`, usually a temp one an
        importer filled) into ``trials`` as trials of ``run_id``; return the number of rows.

        ``table`` holds any of :data:`WRITABLE_TRIAL_COLUMNS` (``status`` required; ``run_id``
        comes from the argument) and one DOUBLE column per name in ``metrics``; other columns
        are ignored. A configuration's params come either as JSON text of an object in a
        ``params`` column (a table only), or, with ``params`` given, as a ``params_id`` column
        whose values ``params`` maps to the params objects: then only those few objects are
        read; keys that are the stored ids (:func:`params_key`) are copied as they are, other
        keys are looked up per row in the list of keys (fine for a few hundred). Metric and
        param names are registered as :meth:`append_trial` does (param types from the distinct
        params values, in the order they first occur), each new configuration gets its
        ``params`` row, and the rows are copied with one INSERT ... SELECT in the table's row
        order, trial ids from the sequence (with ``params``, no join: a view's row order is
        kept); a status other than :data:`TRIAL_STATUSES` fails that statement, a
        ``params_id`` missing from ``params`` is found after it (StoreError). Runs inside the
        caller's transaction (begin one to make it all or nothing).
        """
        src = quote_ident(table)
        try:
            described = self.con.execute(f"DESCRIBE {src}").fetchall()
        except duckdb.Error:
            raise StoreError(f"insert_staged: no table {table!r} on this connection") from None
        present = {row[0]: row[1] for row in described}
        missing = [m for m in metrics if m not in present]
        if missing:
            raise StoreError(f"insert_staged: {table!r} has no column for metrics {missing}")
        if "status" not in present:
            raise StoreError(f"insert_staged: {table!r} needs a status column")
        if params is not None and "params_id" not in present:
            raise StoreError(f"insert_staged: params given but {table!r} has no params_id column")
        columns = [c for c in WRITABLE_TRIAL_COLUMNS if c in present and c != "run_id"]
        changed = self._register_columns("metric", dict.fromkeys(metrics, 0.0))
        # a metric named like a trial column is not stored: the view shows the trial column
        metric_cols = [
            m
            for m in dict.fromkeys(metrics)
            if m not in TRIAL_COLUMNS and m not in RUN_VIEW_COLUMNS
        ]
        statuses = ", ".join(f"'{s}'" for s in TRIAL_STATUSES)
        marker = "insert_staged: bad status"
        target = ["trial_id", "run_id", "status"]
        select = [
            "nextval('trial_id_seq')",
            "?",
            f"CASE WHEN s.status IN ({statuses}) THEN s.status "
            f"ELSE error('{marker} ' || coalesce(s.status, 'NULL')) END",
        ]
        joins = ""
        for c in columns:
            if c in ("params", "status"):
                continue
            target.append(c)
            select.append(f"s.{quote_ident(c)}")
        temp = None
        args: list[Any] = [run_id]
        if params is not None:
            keys, ids, changed_one = self._store_param_keys(params)
            changed |= changed_one
            target.append("params_id")
            if keys == ids:  # the keys are the stored ids: no lookup, rows stay in order
                select.append("s.params_id")
            else:  # a projection, not a join: the table's row order is kept
                select.append(
                    "CASE WHEN s.params_id IS NULL THEN NULL "
                    "WHEN list_position(?, s.params_id) IS NULL THEN error('insert_staged: a "
                    "params_id of ' || ? || ' is not a key of params: ' || s.params_id) "
                    "ELSE list_extract(?, list_position(?, s.params_id)) END"
                )
                args += [keys, repr(table), ids, keys]
        elif "params" in columns:
            changed |= self._stage_params(src)
            temp = "_staged_params_ids"
            target.append("params_id")
            select.append("k.params_id")
            joins = f" LEFT JOIN {temp} k ON k.raw = s.params::VARCHAR"
        target += metric_cols
        select += [f"s.{quote_ident(m)}" for m in metric_cols]
        if changed:
            self._rebuild_view()
        try:
            (count,) = self.con.execute(
                f"INSERT INTO trials ({', '.join(map(quote_ident, target))}) "
                f"SELECT {', '.join(select)} FROM {src} s{joins}",
                args,
            ).fetchone()
        except duckdb.InvalidInputException as exc:
            text = str(exc)
            if marker in text:
                bad = text.split(marker, 1)[1].strip()
                raise StoreError(
                    f"insert_staged: rows of {table!r} have a status other than "
                    f"{', '.join(TRIAL_STATUSES)} (first seen: {bad!r})"
                ) from None
            if "insert_staged:" in text:
                raise StoreError(text[text.index("insert_staged:") :]) from None
            raise
        if temp:
            self.con.execute(f"DROP TABLE {temp}")
        if params is not None:
            (dangling,) = self.con.execute(
                "SELECT count(*) FROM trials t WHERE t.run_id = ? AND t.params_id IS NOT NULL "
                "AND t.params_id NOT IN (SELECT params_id FROM params)",
                [run_id],
            ).fetchone()
            if dangling:
                raise StoreError(
                    f"insert_staged: {dangling} rows of {table!r} have a params_id that is not a "
                    "key of params"
                )
        return int(count)

    def _store_param_keys(self, params: Mapping[Any, Any]) -> tuple[list[Any], list[str], bool]:
        """(keys, stored ids, view changed) for the objects of ``params`` (key -> params, in the
        order the configurations first occur): each gets its ``params`` row and param columns."""
        changed = False
        keys, ids = [], []
        for key, value in params.items():
            if value is None:
                continue
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    raise StoreError(f"insert_staged: params {value[:80]!r} is not JSON") from None
            params_id, changed_one = self._store_params(value)
            changed |= changed_one
            keys.append(key)
            ids.append(params_id)
        return keys, ids, changed

    def _stage_params(self, src: str) -> bool:
        """Params rows and catalogue entries for the distinct params of a staged table, and the
        temp table ``_staged_params_ids (raw, params_id)`` mapping its text to ids."""
        rows = self.con.execute(
            f"SELECT params::VARCHAR, min(rowid) AS first FROM {src} WHERE params IS NOT NULL "
            "GROUP BY 1 ORDER BY first"
        ).fetchall()
        changed = False
        mapping = []
        for raw, _ in rows:
            try:
                value = json.loads(raw)
            except ValueError:
                raise StoreError(f"insert_staged: params {raw[:80]!r} is not JSON") from None
            params_id, changed_one = self._store_params(value)
            changed |= changed_one
            mapping.append((raw, params_id))
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _staged_params_ids (raw VARCHAR, params_id VARCHAR)"
        )
        if mapping:
            self.con.execute(
                "INSERT INTO _staged_params_ids SELECT unnest(?), unnest(?)",
                [[r for r, _ in mapping], [i for _, i in mapping]],
            )
        return changed

    def add_prices(self, rows: Iterable[tuple[str, int | None, float | None, float, str]]) -> int:
        rows = list(rows)
        with self.transaction():
            self.con.executemany("INSERT INTO prices VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    # -- reading -----------------------------------------------------------------------------
    def view_columns(self) -> dict[str, str]:
        """Columns of the observations view: name -> DuckDB type."""
        rows = self.con.execute("DESCRIBE observations").fetchall()
        return {row[0]: row[1] for row in rows}

    def count_trials(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM trials").fetchone()[0])


def _migrate_3_to_4(store: Store) -> None:
    """Schema 3 -> 4 inside the caller's transaction: ``trials`` rebuilt with one DOUBLE column
    per metric (the long ``metrics`` table pivoted once, as the old view did: the max of a
    trial's values of a name) and ``params_id`` in place of ``params``, whose distinct values
    go to ``params``; ``metrics`` dropped. Metric names that are trial columns (never shown by
    the view) are not kept."""
    con = store.con
    con.execute("DROP VIEW IF EXISTS observations")
    con.execute(_PARAMS_DDL)
    catalogue = {
        name
        for name, kind in con.execute("SELECT name, kind FROM observation_columns").fetchall()
        if kind == "metric"
    }
    names = [
        r[0] for r in con.execute("SELECT DISTINCT name FROM metrics ORDER BY name").fetchall()
    ]
    skipped = set(TRIAL_COLUMNS) | set(RUN_VIEW_COLUMNS) | _RESERVED_NAMES
    metric_names = sorted(
        n for n in set(names) | catalogue if n not in skipped and _NAME_RE.match(n)
    )
    for name in sorted(set(metric_names) - catalogue):
        con.execute("INSERT INTO observation_columns VALUES (?, 'metric', 'DOUBLE')", [name])
    mapping: list[tuple[str, str]] = []
    seen: set[str] = set()
    for (raw,) in con.execute(
        "SELECT DISTINCT params::VARCHAR FROM trials WHERE params IS NOT NULL"
    ).fetchall():
        params_id, text = params_key(json.loads(raw))
        mapping.append((raw, params_id))
        if params_id not in seen:
            seen.add(params_id)
            con.execute("INSERT INTO params VALUES (?, ?)", [params_id, text])
    con.execute("CREATE TEMP TABLE _params_ids_v3 (raw VARCHAR, params_id VARCHAR)")
    if mapping:
        con.execute(
            "INSERT INTO _params_ids_v3 SELECT unnest(?), unnest(?)",
            [[r for r, _ in mapping], [i for _, i in mapping]],
        )
    columns = [("k.params_id" if c == "params_id" else f"t.{c}") for c in TABLE_TRIAL_COLUMNS]
    pivot = ", ".join(
        [
            "trial_id",
            *(f"max(value) FILTER (WHERE name = ?) AS {quote_ident(n)}" for n in metric_names),
        ]
    )
    con.execute(
        "CREATE TABLE trials_v4 ("
        + ", ".join(
            [f"{name} {typ}" for name, typ in TABLE_TRIAL_COLUMNS.items()]
            + [f"{quote_ident(n)} DOUBLE" for n in metric_names]
        )
        + ")"
    )
    con.execute(
        "INSERT INTO trials_v4 SELECT "
        + ", ".join(columns + [f"m.{quote_ident(n)}" for n in metric_names])
        + " FROM trials t LEFT JOIN _params_ids_v3 k ON k.raw = t.params::VARCHAR"
        + f" LEFT JOIN (SELECT {pivot} FROM metrics GROUP BY trial_id) m USING (trial_id)"
        + " ORDER BY t.trial_id",
        metric_names,
    )
    con.execute("DROP TABLE _params_ids_v3")
    con.execute("DROP TABLE metrics")
    con.execute("DROP TABLE trials")
    con.execute("ALTER TABLE trials_v4 RENAME TO trials")
    store._forget()


def _present_old_schema(store: Store, version: int) -> None:
    """Show a schema 1-3 file, opened read-only, in the current shape without writing it:
    temporary views (which shadow the file's tables on this connection) for ``trials`` (metric
    columns pivoted from the long ``metrics`` table as :func:`_migrate_3_to_4` does,
    ``params_id`` the first 16 hex digits of the SHA-256 of the stored params text: trialkit
    always stored it canonical, so the ids equal the migrated ones), ``params``,
    ``observation_columns`` (plus metric names only ``metrics`` holds, as the migration adds),
    ``observations``, and for what older versions lack: ``setups`` (round, load), ``curves``
    and ``stops`` (empty). Every read pivots ``metrics`` again, as trialkit 3 did: a writable
    open migrates the file once and is faster to read afterwards."""
    con = store.con
    (db,) = con.execute("SELECT current_database()").fetchone()
    columns: dict[str, list[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = ? "
        "AND schema_name = 'main' ORDER BY table_name, column_index",
        [db],
    ).fetchall():
        columns.setdefault(table, []).append(column)

    def base(table: str) -> str:
        return f"{quote_ident(db)}.main.{quote_ident(table)}"

    for table in ("trials", "runs", "observation_columns"):
        if table not in columns:
            raise StoreError(
                f"{store.path} has schema version {version} but no {table} table; it is "
                "damaged, or was not written by trialkit: use another --db"
            )
    catalogue = con.execute(
        f"SELECT name, kind, type FROM {base('observation_columns')}"
    ).fetchall()
    skipped = set(TRIAL_COLUMNS) | set(RUN_VIEW_COLUMNS) | _RESERVED_NAMES
    known = {name for name, kind, _ in catalogue if kind == "metric"}
    stored = set()
    if "metrics" in columns:
        stored = {
            r[0] for r in con.execute(f"SELECT DISTINCT name FROM {base('metrics')}").fetchall()
        }
    metric_names = sorted(n for n in stored | known if n not in skipped and _NAME_RE.match(n))
    extra = sorted(set(metric_names) - known)
    param_cols = sorted((n, typ) for n, kind, typ in catalogue if kind == "param")

    def view(name: str, sql: str) -> None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS {sql}")

    values = "".join(f" UNION ALL SELECT '{n}', 'metric', 'DOUBLE'" for n in extra)
    view(
        "observation_columns", f"SELECT name, kind, type FROM {base('observation_columns')}{values}"
    )
    old_trials = set(columns["trials"])

    def trial_column(name: str, typ: str) -> str:
        if name == "params_id":
            return "left(sha256(t.params::VARCHAR), 16) AS params_id"
        if name in old_trials:
            return f"t.{quote_ident(name)}"
        return f"NULL::{typ} AS {quote_ident(name)}"

    pivot_join = ""
    if metric_names and "metrics" in columns:
        pivot = ", ".join(
            f"max(value) FILTER (WHERE name = '{n}') AS {quote_ident(n)}" for n in metric_names
        )
        pivot_join = (
            f" LEFT JOIN (SELECT trial_id, {pivot} FROM {base('metrics')} GROUP BY trial_id) m"
            " USING (trial_id)"
        )
        metric_select = [f"m.{quote_ident(n)}" for n in metric_names]
    else:
        metric_select = [f"NULL::DOUBLE AS {quote_ident(n)}" for n in metric_names]
    view(
        "trials",
        "SELECT "
        + ", ".join(
            [trial_column(n, typ) for n, typ in TABLE_TRIAL_COLUMNS.items()] + metric_select
        )
        + f" FROM {base('trials')} t{pivot_join}",
    )
    view(
        "params",
        "SELECT DISTINCT left(sha256(params::VARCHAR), 16) AS params_id, params "
        f"FROM {base('trials')} WHERE params IS NOT NULL",
    )
    extract = ["raw"] + [
        f"TRY_CAST(json_extract_string(raw, '{'$.' + json.dumps(name)}') AS {typ}) "
        f"AS {quote_ident(name)}"
        for name, typ in param_cols
    ]
    select = [trial_column(c, typ) for c, typ in TRIAL_COLUMNS.items()]
    select += _RUN_VIEW_SELECT
    select += metric_select
    select += [f"p.{quote_ident(n)}" for n, _ in param_cols]
    view(
        "observations",
        f"SELECT {', '.join(select)} FROM {base('trials')} t JOIN {base('runs')} r "
        f"USING (run_id){pivot_join} LEFT JOIN (SELECT {', '.join(extract)} FROM (SELECT "
        f"DISTINCT params::VARCHAR AS raw FROM {base('trials')} WHERE params IS NOT NULL)) p "
        "ON p.raw = t.params::VARCHAR",
    )
    if "setups" in columns:
        old_setups = set(columns["setups"])
        added = [
            f"NULL::{typ} AS {name}"
            for name, typ in (("round", "INTEGER"), ("load", "JSON"))
            if name not in old_setups
        ]
        if added:
            view("setups", f"SELECT *, {', '.join(added)} FROM {base('setups')}")
    for table, ddl in (("curves", _CURVES_DDL), ("stops", _STOPS_DDL)):
        if table not in columns:
            con.execute(ddl.replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))
    store.legacy_version = version
    store._forget()


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _is_lock_error(first_line: str) -> bool:
    low = first_line.lower()
    return "could not set lock" in low or "conflicting lock" in low


def _connect(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """A connection to ``path``; while another process holds a conflicting lock, retry with
    back-off (10 ms doubling to 0.5 s, jittered) for up to ``wait`` seconds, then StoreBusy."""
    deadline = time.monotonic() + max(0.0, wait)
    pause = 0.01
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            if not _is_lock_error(first):
                raise StoreError(f"cannot open {path} as a DuckDB database: {first}") from None
            left = deadline - time.monotonic()
            if left <= 0:
                waited = f"waited {wait:g} s; " if wait > 0 else ""
                raise StoreBusy(
                    f"{path} is in use by another process (a runner merging its journal, or a "
                    f"long analysis); {waited}try again when it is done, or use another --db"
                ) from None
            time.sleep(min(left, pause * random.uniform(0.5, 1.5)))
            pause = min(0.5, pause * 2)


def open_store(
    path: str | Path = DEFAULT_DB, *, read_only: bool = False, wait: float | None = None
) -> Store:
    """Open (and, when writable and new, create) a results database.

    Read-only opens require the file to exist. An older schema is migrated by a writable open; a
    read-only open writes nothing (a read-only file or filesystem works too): it shows the old
    tables in the current shape through temporary views (:func:`_present_old_schema`). A newer
    or unknown schema is refused. DuckDB lets one process write a file, or several read it:
    while another process holds it in a conflicting way, the open retries with back-off for
    ``wait`` seconds (None: :data:`DEFAULT_WAIT_S`; 0: try once), then raises
    :class:`StoreBusy`.
    """
    path = Path(path)
    wait = DEFAULT_WAIT_S if wait is None else wait
    check_db_path(path, must_exist=read_only)
    existed = path.exists()
    con = _connect(path, read_only, wait)
    # DuckDB draws a progress bar for long queries on the terminal, over (or, redirected, into)
    # the command's own output: a 10M migration or analysis would show one
    con.execute("SET enable_progress_bar = false")
    store = Store(con, path, read_only)
    try:
        version = store.schema_version() if existed else None
        if version is None:
            if existed:
                has_tables = con.execute(
                    "SELECT count(*) FROM information_schema.tables"
                ).fetchone()[0]
                if has_tables:
                    raise StoreError(
                        f"{path} is a DuckDB database but not a trialkit one (no meta table); "
                        "use another --db"
                    )
            if read_only:
                raise StoreError(f"{path} holds no trialkit results yet: run `runner trials` first")
            store._create()
        elif version > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {version}, newer than this trialkit "
                f"({SCHEMA_VERSION}); upgrade trialkit"
            )
        elif version < SCHEMA_VERSION:
            if read_only:
                _present_old_schema(store, version)  # temp views: the file is not written
            else:
                store._migrate(version)
        elif not read_only and not store._view_has_run_columns():
            with store.transaction():  # a schema-4 file from before run_status: once
                store._rebuild_view()
        if read_only:
            store.notes = _unmerged_notes(store)
        else:
            store.sweep_notes = _sweep(store)
    except BaseException:
        store.close()
        raise
    return store


def _sweep(store: Store) -> list[str]:
    """Merge the journals of runners that died (see :func:`runner.journal.sweep`): every
    writable open does it, so their trials land at the next write of anyone."""
    if not Path(f"{store.path}.journal").is_dir():
        return []
    from runner.journal import sweep

    try:
        return sweep(store)
    except Exception as exc:  # noqa: BLE001 - a damaged journal must not stop the open
        return [f"journals of {store.path} not merged: {exc}"]


def _unmerged_notes(store: Store) -> list[str]:
    """What a read-only open tells its reader about dead runners' unmerged journals (see
    :func:`runner.journal.unmerged`); nothing when there are none, or they cannot be read."""
    if not Path(f"{store.path}.journal").is_dir():
        return []
    from runner.journal import unmerged

    try:
        return [u.note() for u in unmerged(store)]
    except Exception:  # noqa: BLE001 - a damaged journal must not stop a reader
        return []
