"""Import measurements made elsewhere: a CSV file, one row per trial, becomes one run.

Headers are normalised to snake_case (``Train Time (s)`` -> ``train_time_s``). A header that names
a trial column (``engine``, ``workers``, ``train_s``, ...) fills that column, cast to its type;
every other column whose non-empty cells are all numbers becomes a metric; the rest become params
(strings, numbers kept as numbers). Empty cells are missing values.

The whole file is read and checked before the database is opened, and all rows are written in one
transaction, so a bad file writes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from runner.errors import RunnerError
from runner.spec import FACTORS, config_id
from runner.store import (
    DEFAULT_DB,
    RUN_VIEW_COLUMNS,
    TRIAL_COLUMNS,
    TRIAL_STATUSES,
    WRITABLE_TRIAL_COLUMNS,
    Store,
    TrialRecord,
    normalise_name,
    open_store,
)

T = TypeVar("T")
#: Trial columns the import sets itself; a CSV column with one of these names is refused.
RESERVED_COLUMNS = ("trial_id", "run_id", "params", *RUN_VIEW_COLUMNS)
#: Trial columns that describe a configuration (hashed into ``config_id`` with the params).
FACTOR_COLUMNS = ("experiment", *FACTORS)
DELIMITERS = (",", ";", "\t")
_SNIFF_LINES = 50
_INT_RE = re.compile(r"^[+-]?\d+$")
_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
#: ``0,93``: a decimal comma, as spreadsheets in many locales write it (with ``;`` between cells).
_DECIMAL_COMMA_RE = re.compile(r"^[+-]?\d*,\d+([eE][+-]?\d+)?$")
_INT_RANGES = {"INTEGER": 2**31, "BIGINT": 2**63}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote: one run, ``n_trials`` trials, and where each CSV column went."""

    path: Path
    run_id: str
    n_trials: int
    experiment: str
    trial_columns: tuple[str, ...]
    metric_columns: tuple[str, ...]
    param_columns: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...]  # (original header, column name) where normalised

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "run_id": self.run_id,
            "n_trials": self.n_trials,
            "experiment": self.experiment,
            "trial_columns": list(self.trial_columns),
            "metric_columns": list(self.metric_columns),
            "param_columns": list(self.param_columns),
            "renamed": [list(pair) for pair in self.renamed],
        }

    def __str__(self) -> str:
        def names(cols: tuple[str, ...]) -> str:
            return ", ".join(cols) if cols else "none"

        trials = "trial" if self.n_trials == 1 else "trials"
        text = (
            f"imported {self.n_trials} {trials} from {self.path.name} as run {self.run_id} "
            f"(experiment {self.experiment}): trial columns {names(self.trial_columns)}; "
            f"metrics {names(self.metric_columns)}; params {names(self.param_columns)}"
        )
        if self.renamed:
            text += "; renamed " + ", ".join(f"{old!r} -> {new}" for old, new in self.renamed)
        return text


@dataclass(frozen=True)
class _Parsed:
    """A validated CSV: records ready for the store, and the column layout."""

    records: list[dict[str, Any]]  # trial values (incl. params) and metrics per row
    metrics: list[dict[str, float]]
    trial_columns: tuple[str, ...]
    metric_columns: tuple[str, ...]
    param_columns: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...]
    delimiter: str
    sha256: str


def _short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def check_csv_path(path: Path) -> None:
    """RunnerError unless ``path`` is a regular file (or a link to one), before anything opens
    it: opening a FIFO blocks until a writer comes, a device may never end."""
    if not path.exists():
        raise RunnerError(f"no such file: {path}; check the path to the CSV file")
    if path.is_dir():
        raise RunnerError(f"{path} is a directory; give the path of a CSV file inside it")
    if not path.is_file():
        raise RunnerError(
            f"{path} is not a regular file (a FIFO, device or socket); save the data to a "
            "CSV file and give its path"
        )


def _read_text(path: Path) -> tuple[str, str]:
    """The file's text (UTF-8, BOM dropped) and its sha256; RunnerError when unusable."""
    check_csv_path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RunnerError(f"cannot read {path}: {reason}; check its permissions") from None
    if b"\x00" in data:
        raise RunnerError(
            f"{path} is a binary file, not CSV text; export the data as a UTF-8 CSV file"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RunnerError(
            f"{path} is not UTF-8 text (bad byte at offset {exc.start}); "
            "re-save it as a UTF-8 CSV file"
        ) from None
    if not text.strip():
        raise RunnerError(f"{path} is empty; it needs a header row and at least one data row")
    return text, hashlib.sha256(data).hexdigest()


def sniff_delimiter(text: str) -> str:
    """Comma, semicolon or tab: the one that splits the first lines into the most columns, the
    same number on every line (a delimiter that gives ragged rows loses to one that does not)."""
    lines = text.splitlines()
    sample = "\n".join(lines[:_SNIFF_LINES])
    best, best_score = ",", (False, 1)
    for delimiter in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if r]
        except csv.Error:
            continue
        if len(lines) > _SNIFF_LINES and len(rows) > 1:
            rows = rows[:-1]  # the sample may cut the last record short
        counts = {len(r) for r in rows}
        score = (len(counts) == 1, len(rows[0]) if rows else 1)
        if score[1] > 1 and score > best_score:
            best, best_score = delimiter, score
    return best


def _is_number(cell: str) -> bool:
    """A number in plain notation whose float is finite: ``1e400`` (and a 400-digit integer)
    overflows a double to infinity, so it is no more a number here than ``inf`` is."""
    return bool(_NUMBER_RE.match(cell)) and math.isfinite(float(cell))


def _number(cell: str) -> int | float:
    return int(cell) if _INT_RE.match(cell) else float(cell)


def _cast(cell: str, column: str, where: str) -> Any:
    """Cast a non-empty cell to the SQL type of trial column ``column``."""
    typ = TRIAL_COLUMNS[column]

    def bad(expected: str) -> RunnerError:
        return RunnerError(
            f"{where}, column {column}: {_short(cell)} is not {expected}; fix the value or "
            "leave the cell empty"
        )

    if typ in _INT_RANGES:
        if _INT_RE.match(cell):
            if len(cell.lstrip("+-0")) > 20:  # no int() of thousands of digits: out of range
                raise bad("a whole number in range")
            value = int(cell)
        elif _is_number(cell) and float(cell).is_integer():
            value = int(float(cell))
        else:
            raise bad("a whole number")
        if not -_INT_RANGES[typ] <= value < _INT_RANGES[typ]:
            raise bad("a whole number in range")
        return value
    if typ == "DOUBLE":
        if not _is_number(cell):
            raise bad("a finite number" if _NUMBER_RE.match(cell) else "a number")
        return float(cell)
    if typ == "BOOLEAN":
        if cell.lower() in _TRUE:
            return True
        if cell.lower() in _FALSE:
            return False
        raise bad("true or false")
    if typ == "TIMESTAMP":
        try:
            stamp = datetime.fromisoformat(cell)
        except ValueError:
            raise bad("an ISO timestamp (2024-05-01T12:30:00)") from None
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(UTC).replace(tzinfo=None)
        return stamp
    if column == "status":
        status = cell.lower()
        if status not in TRIAL_STATUSES:
            raise bad("a trial status (" + ", ".join(TRIAL_STATUSES) + ")")
        return status
    return cell


def _config_id(values: dict[str, Any]) -> str:
    key = {c: values.get(c) for c in FACTOR_COLUMNS}
    key["params"] = values.get("params") or {}
    return config_id(key)


def _header(raw: list[str], path: Path) -> tuple[list[str], tuple[tuple[str, str], ...]]:
    names: list[str] = []
    seen: dict[str, str] = {}
    renamed: list[tuple[str, str]] = []
    for index, original in enumerate(raw, start=1):
        name = normalise_name(original)
        if not name:
            label = f"header {_short(original)} of column {index}"
            raise RunnerError(
                f"{path.name}: {label} gives no usable name (it needs a letter or digit); "
                "name the column in the header row"
            )
        if name in seen:
            raise RunnerError(
                f"{path.name}: columns {_short(seen[name])} and {_short(original)} both become "
                f"{name!r}; rename one of them in the header row"
            )
        if name in RESERVED_COLUMNS:
            raise RunnerError(
                f"{path.name}: column {_short(original)} ({name}) is set by the import itself; "
                "rename or remove that column"
            )
        seen[name] = original
        names.append(name)
        if name != original:
            renamed.append((original, name))
    return names, tuple(renamed)


def parse_csv(path: Path, *, experiment: str, metrics: Collection[str] | None = None) -> _Parsed:
    """Read and validate the whole file; RunnerError on the first problem, naming where it is.

    ``metrics``: when given, exactly these non-trial columns are metrics (each must be in the
    header, its cells numbers) and every other non-trial column is a param, numbers included (a
    factor such as ``k`` or ``vcpu`` stays a param); by default a column of numbers is a metric.
    """
    text, sha256 = _read_text(path)
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        rows: list[tuple[int, list[str]]] = []
        for row in reader:
            cells = [c.strip() for c in row]
            if delimiter == ";":
                cells = [c.replace(",", ".") if _DECIMAL_COMMA_RE.match(c) else c for c in cells]
            if any(cells):  # skip blank lines
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise RunnerError(
            f"{path.name}, line {reader.line_num}: not valid CSV ({exc}); fix the quoting"
        ) from None
    if header is None or not any(c.strip() for c in header):
        raise RunnerError(f"{path.name} has no header row; the first line must name the columns")
    if not rows:
        raise RunnerError(f"{path.name} has a header but no data rows; add one row per trial")
    # Spreadsheets often end every line with a delimiter: drop unnamed columns with no values.
    dropped = {
        i
        for i, title in enumerate(header)
        if not title.strip() and not any(i < len(cells) and cells[i] for _, cells in rows)
    }
    if dropped:
        header = [title for i, title in enumerate(header) if i not in dropped]
        rows = [
            (line, [c for i, c in enumerate(cells) if i not in dropped]) for line, cells in rows
        ]
    names, renamed = _header(header, path)
    width = len(names)
    for line, cells in rows:
        if len(cells) != width:
            raise RunnerError(
                f"{path.name}, line {line}: {len(cells)} fields but the header has {width} "
                f"(delimiter {delimiter!r}); make every row match the header"
            )

    writable = set(WRITABLE_TRIAL_COLUMNS)
    trial_cols = [n for n in names if n in writable]
    other = [(i, n) for i, n in enumerate(names) if n not in writable]
    if metrics is None:
        metric_cols = [
            n
            for i, n in other
            if any(cells[i] for _, cells in rows) and all(_is_number(c[i]) for _, c in rows if c[i])
        ]
    else:
        metric_cols = _declared_metrics(path, names, rows, writable, metrics)
    param_cols = [n for _, n in other if n not in metric_cols]
    index = {n: i for i, n in enumerate(names)}

    records: list[dict[str, Any]] = []
    metrics: list[dict[str, float]] = []
    repetitions: dict[str, int] = {}
    for line, cells in rows:
        where = f"{path.name}, line {line}"
        values: dict[str, Any] = {"experiment": experiment, "warmup": False, "status": "ok"}
        for name in trial_cols:
            cell = cells[index[name]]
            if cell:
                values[name] = _cast(cell, name, where)
        params = {
            n: (_number(cells[index[n]]) if _is_number(cells[index[n]]) else cells[index[n]])
            for n in param_cols
            if cells[index[n]]
        }
        values["params"] = params
        values.setdefault("config_id", _config_id(values))
        if "repetition" not in values:
            repetitions[values["config_id"]] = repetitions.get(values["config_id"], 0) + 1
            values["repetition"] = repetitions[values["config_id"]]
        records.append(values)
        metrics.append({n: float(cells[index[n]]) for n in metric_cols if cells[index[n]]})
    return _Parsed(
        records=records,
        metrics=metrics,
        trial_columns=tuple(trial_cols),
        metric_columns=tuple(metric_cols),
        param_columns=tuple(param_cols),
        renamed=renamed,
        delimiter=delimiter,
        sha256=sha256,
    )


def _declared_metrics(
    path: Path,
    names: list[str],
    rows: list[tuple[int, list[str]]],
    writable: set[str],
    metrics: Collection[str],
) -> list[str]:
    """The declared metric columns in header order, after checking each is a non-trial column
    of the header whose cells are numbers."""
    for name in metrics:
        if name not in names:
            raise RunnerError(
                f"{path.name}: declared metric {name!r} is not a column (header: "
                f"{', '.join(names)}); add the column or drop it from the metrics"
            )
        if name in writable:
            raise RunnerError(
                f"{path.name}: {name!r} is a trial column, not a metric; drop it from the metrics"
            )
        i = names.index(name)
        for line, cells in rows:
            if cells[i] and not _is_number(cells[i]):
                finite = "finite " if _NUMBER_RE.match(cells[i]) else ""
                raise RunnerError(
                    f"{path.name}, line {line}, metric {name}: {_short(cells[i])} is not a "
                    f"{finite}number; fix the value or leave the cell empty"
                )
    return [n for n in names if n in set(metrics)]


def _write(db_path: Path, write: Callable[[Store], T]) -> T:
    """Open (or create) the database, ``write(store)`` in it, close it; when writing fails (its
    transaction rolled back) a database file this call created is removed too."""
    existed = db_path.exists()
    store = open_store(db_path)
    try:
        result = write(store)
    except BaseException:
        store.close()
        if not existed:
            for leftover in (db_path, db_path.with_name(db_path.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    store.close()
    return result


def check_column_kinds(store: Store, tables: Sequence[_Parsed], *, where: str) -> None:
    """RunnerError when a metric of ``tables`` is a param in ``store`` (or in another of the
    tables) or the other way round: the store would refuse it halfway through a write."""
    kinds = {name: kind for name, (kind, _) in store.observation_columns().items()}
    for parsed in tables:
        for kind, columns in (("metric", parsed.metric_columns), ("param", parsed.param_columns)):
            for name in columns:
                old = kinds.setdefault(name, kind)
                if old != kind:
                    raise RunnerError(
                        f"{where}: {name!r} would be a {kind} but is already a {old} in this "
                        "database; import into another --db, or rename the column"
                    )


def append_import_run(
    store: Store,
    *,
    source: str,
    spec: Mapping[str, Any],
    env: Mapping[str, Any],
    tables: Sequence[_Parsed],
    argv: Sequence[str] = (),
    prices: Sequence[tuple[str, int | None, float | None, float]] = (),
) -> str:
    """Append one run holding every row of ``tables`` (parsed CSVs) as trials, and ``prices``
    rows (name, vcpu, memory_gb, usd_per_hour) with the run's ``source``, in one transaction:
    all of it or nothing. Returns the run id."""

    def trials(run_id: str) -> Iterator[TrialRecord]:
        if prices:  # inside append_run's transaction, so the prices share its fate
            store.con.executemany(
                "INSERT INTO prices VALUES (?, ?, ?, ?, ?)",
                [(name, vcpu, mem, usd, source) for name, vcpu, mem, usd in prices],
            )
        for parsed in tables:
            for values, m in zip(parsed.records, parsed.metrics, strict=True):
                yield TrialRecord(
                    run_id=run_id,
                    status=values["status"],
                    values={k: v for k, v in values.items() if k != "status"},
                    metrics=m,
                )

    return store.append_run(source=source, argv=argv, spec=spec, env=env, trials=trials)


def import_csv(
    file: str | Path,
    *,
    db: str | Path = DEFAULT_DB,
    experiment: str | None = None,
    argv: Sequence[str] = (),
) -> ImportResult:
    """Import ``file`` into ``db`` as one new run with one trial per row (``ok`` unless a
    ``status`` column says otherwise).

    ``experiment`` (default: the file's stem) fills ``trials.experiment`` where the CSV has no
    ``experiment`` column or leaves it empty. Raises RunnerError, writing nothing, when the file
    or the database is unusable. The file is read in bulk by DuckDB and checked in SQL
    (:mod:`runner.importer_bulk`) with the rules of :func:`parse_csv`.
    """
    from runner.envinfo import collect_env
    from runner.importer_bulk import STAGED, drop_staged, scan_file, stage_csv

    path = Path(file)
    experiment = (experiment or "").strip() or path.stem
    head = scan_file(path)  # unreadable, binary, non-UTF-8 or empty: before any database
    env = collect_env()

    def write(store: Store) -> tuple[str, Any]:
        staged = stage_csv(store.con, path, head, experiment=experiment)
        try:
            _check_kinds(store, staged.metric_columns, staged.param_columns, where=path.name)
            with store.transaction():
                run_id = store.begin_run(
                    source=f"import:{path.name}",
                    argv=argv,
                    spec={
                        "import": path.name,
                        "experiment": experiment,
                        "path": str(path.resolve()),
                        "sha256": staged.sha256,
                        "delimiter": staged.delimiter,
                        "renamed": [list(pair) for pair in staged.renamed],
                    },
                    env=env,
                )
                store.insert_staged(
                    STAGED, run_id=run_id, metrics=staged.metric_columns, params=staged.params
                )
                store.finish_run(run_id)
        finally:
            drop_staged(store.con, staged)
        return run_id, staged

    # a new database file is removed again when the CSV turns out bad
    run_id, staged = _write(Path(db), write)
    return ImportResult(
        path=path,
        run_id=run_id,
        n_trials=staged.n_rows,
        experiment=", ".join(staged.experiments),
        trial_columns=staged.trial_columns,
        metric_columns=staged.metric_columns,
        param_columns=staged.param_columns,
        renamed=staged.renamed,
    )


def _check_kinds(
    store: Store, metrics: Sequence[str], params: Sequence[str], *, where: str
) -> None:
    """RunnerError when a metric here is a param in ``store`` or the other way round."""
    kinds = {name: kind for name, (kind, _) in store.observation_columns().items()}
    for kind, columns in (("metric", metrics), ("param", params)):
        for name in columns:
            old = kinds.get(name, kind)
            if old != kind:
                raise RunnerError(
                    f"{where}: {name!r} would be a {kind} but is already a {old} in this "
                    "database; import into another --db, or rename the column"
                )


# -- prices ------------------------------------------------------------------------------------
#: Accepted headers (normalised) of a prices CSV, per ``prices`` column.
PRICE_HEADERS: dict[str, tuple[str, ...]] = {
    "name": ("name", "instance", "instance_type", "type", "machine"),
    "vcpu": ("vcpu", "vcpus", "cpus", "cores"),
    "memory_gb": ("memory_gb", "mem_gib", "memory_gib", "mem_gb", "memory"),
    "usd_per_hour": ("usd_per_hour", "cost_hr", "cost_usd_hr", "price", "usd_hour", "cost"),
}


@dataclass(frozen=True)
class PricesImportResult:
    """What a prices import wrote: one ``prices`` row per machine type."""

    path: Path
    names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "n_prices": len(self.names), "names": list(self.names)}

    def __str__(self) -> str:
        return f"imported {len(self.names)} prices from {self.path.name}: {', '.join(self.names)}"


def _price_number(cell: str, column: str, where: str, *, integer: bool = False) -> float | None:
    text = cell.strip().lstrip("$").replace(",", "").strip()
    if not text:
        return None
    if not _is_number(text) or (integer and not _INT_RE.match(text)):
        kind = "a whole number" if integer else "a number"
        if _NUMBER_RE.match(text) and not integer:
            kind = "a finite number"
        raise RunnerError(f"{where}: {column} {_short(cell)} is not {kind}; fix the cell")
    value = float(text)
    if value < 0:
        raise RunnerError(f"{where}: {column} {_short(cell)} is negative; fix the cell")
    return value


def parse_prices(path: Path) -> list[tuple[str, int | None, float | None, float]]:
    """Rows (name, vcpu, memory_gb, usd_per_hour) of a prices CSV; RunnerError when unusable."""
    text, _ = _read_text(path)
    delimiter = sniff_delimiter(text)
    rows = [
        r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in r)
    ]
    names, _ = _header(rows[0], path)
    index: dict[str, int] = {}
    for column, aliases in PRICE_HEADERS.items():
        found = [i for i, n in enumerate(names) if n in aliases]
        if found:
            index[column] = found[0]
    for column in ("name", "usd_per_hour"):
        if column not in index:
            raise RunnerError(
                f"{path.name}: no {column} column (headers {', '.join(names)}); a prices file "
                "needs name and usd_per_hour columns, and may have vcpu and memory_gb"
            )
    if len(rows) < 2:
        raise RunnerError(f"{path.name} has a header but no prices; add one row per machine type")
    out: list[tuple[str, int | None, float | None, float]] = []
    seen: set[str] = set()
    for line, row in enumerate(rows[1:], start=2):
        where = f"{path.name}, row {line}"
        if len(row) != len(names):
            raise RunnerError(f"{where} has {len(row)} cells, the header {len(names)}; fix the row")
        name = row[index["name"]].strip()
        if not name:
            raise RunnerError(f"{where}: the name is empty; name the machine type")
        if name in seen:
            raise RunnerError(f"{where}: {name!r} appears twice; keep one price per machine type")
        seen.add(name)
        price = _price_number(row[index["usd_per_hour"]], "usd_per_hour", where)
        if price is None:
            raise RunnerError(f"{where}: usd_per_hour is empty; give the hourly price")
        vcpu = memory = None
        if "vcpu" in index:
            v = _price_number(row[index["vcpu"]], "vcpu", where, integer=True)
            vcpu = None if v is None else int(v)
        if "memory_gb" in index:
            memory = _price_number(row[index["memory_gb"]], "memory_gb", where)
        out.append((name, vcpu, memory, price))
    return out


def import_prices(file: str | Path, *, db: str | Path = DEFAULT_DB) -> PricesImportResult:
    """Add the machine types of a prices CSV (name, usd_per_hour[, vcpu, memory_gb]) to the
    ``prices`` table, source ``import:<file>``; a name imported again gets the newer price (the
    analysis uses the latest row per name). Nothing is written when the file is unusable."""
    path = Path(file)
    rows = parse_prices(path)
    _write(
        Path(db),
        lambda store: store.add_prices(
            (name, vcpu, mem, usd, f"import:{path.name}") for name, vcpu, mem, usd in rows
        ),
    )
    return PricesImportResult(path, tuple(r[0] for r in rows))
