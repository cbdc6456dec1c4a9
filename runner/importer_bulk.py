"""The bulk path of ``runner import csv``: DuckDB's ``read_csv`` into a staging table, the
checks of :mod:`runner.importer` done in SQL, then :meth:`Store.insert_staged`.

The file is read once, into a staged table. A cell of a numeric candidate column (a numeric trial
column, or a column that may be a metric) that DuckDB reads as a plain finite number
(``TRY_CAST`` to DOUBLE, no ``_``) is a number, as it is to the row-by-row rules, and is stored
typed; every other non-empty cell is *rare*, stored as text, and goes, once per distinct value,
through the same Python functions as before (``_cast``, ``_is_number``, stripping, decimal commas),
so text, odd spellings and bad values get exactly the old treatment and messages. Factor, status
and param cells stay text. Configurations (experiment, factors, params) are few: their
``config_id`` and params (with the store's ``params_id``) are computed in Python once per
distinct configuration, found per row by a hash of the key cells.

Besides the staged table, only a narrow frame of integers in file order is materialised per row
(the row's configuration, indexes of rare values too many to find by position, its repetition
counter): the staged *view* joins it to the staged table by position and reads configuration and
rare values from list literals, so the store's ``INSERT ... SELECT`` streams the rows in file
order with no join and no sort (hash joins do not keep DuckDB's insertion order). Many
configurations or rare values (over ``_LITERAL_CONFIGS``) take a slower path: a narrow table
sorted by row. A param column some of whose cells are numbers is read a second time as text.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import RunnerError

if TYPE_CHECKING:
    import duckdb

_CHUNK = 1 << 23
_HEAD = 1 << 20
#: Python's whitespace (``str.isspace``) as an RE2 class.
_WS = r"[\t\n\x0b\x0c\r\x1c-\x1f\x85\pZ]"
_INT_BOUNDS = {"INTEGER": 2**31, "BIGINT": 2**63}
#: Trial columns read with a fast numeric path: DOUBLE, INTEGER, BIGINT.
_NUMERIC = ("DOUBLE", "INTEGER", "BIGINT")
RAW = "_tk_import_raw"
STAGED = "_tk_import_staged"
CFG = "_tk_import_cfg"
ROWS = "_tk_import_rows"
_BAD_LISTED = 5
#: Up to this many configurations, their values are list literals in the staged view.
_LITERAL_CONFIGS = 20_000
#: Up to this many distinct rare values of a column, the view finds a cell's value by its
#: position in a list literal (no join, no column in the narrow table).
_INLINE_VALUES = 16


@dataclass(frozen=True)
class FileHead:
    """What a streaming pass over the file found: its digest, its opening text and size."""

    sha256: str
    head: str
    size: int


@dataclass(frozen=True)
class Staged:
    """A CSV checked and staged in table :data:`STAGED` on the store's connection."""

    n_rows: int
    trial_columns: tuple[str, ...]
    metric_columns: tuple[str, ...]
    param_columns: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...]
    delimiter: str
    sha256: str
    experiments: tuple[str, ...]
    #: the staged view's ``params_id`` (the store's id) -> the configuration's params
    params: dict[str, dict[str, Any]]
    #: temp tables the view reads (drop them with :func:`drop_staged`)
    temp_tables: tuple[str, ...]


def scan_file(path: Path) -> FileHead:
    """One streaming pass: sha256, no NUL byte, valid UTF-8, not blank; RunnerError otherwise
    (the messages of :func:`runner.importer._read_text`)."""
    import codecs

    from runner.importer import check_csv_path

    check_csv_path(path)
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    head: list[str] = []
    head_len = 0
    offset = 0
    blank = True
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                if b"\x00" in chunk:
                    raise RunnerError(
                        f"{path} is a binary file, not CSV text; export the data as a UTF-8 "
                        "CSV file"
                    )
                if chunk.isascii() and not decoder.getstate()[0]:
                    text = chunk.decode("ascii") if head_len < _HEAD or blank else ""
                else:
                    try:
                        text = decoder.decode(chunk)
                    except UnicodeDecodeError as exc:
                        at = offset + exc.start - len(decoder.getstate()[0])
                        raise RunnerError(
                            f"{path} is not UTF-8 text (bad byte at offset {max(at, 0)}); "
                            "re-save it as a UTF-8 CSV file"
                        ) from None
                if head_len < _HEAD:
                    head.append(text)
                    head_len += len(text)
                if blank and text.strip(" \t\r\n\ufeff\x0b\x0c"):
                    blank = False
                offset += len(chunk)
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise RunnerError(
                    f"{path} is not UTF-8 text (bad byte at offset {offset - 1}); "
                    "re-save it as a UTF-8 CSV file"
                ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RunnerError(f"cannot read {path}: {reason}; check its permissions") from None
    text = "".join(head).removeprefix("\ufeff")
    if blank or not text.strip():
        raise RunnerError(f"{path} is empty; it needs a header row and at least one data row")
    return FileHead(sha256=digest.hexdigest(), head=text, size=offset)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _header_row(head: str, delimiter: str, path: Path) -> list[str]:
    reader = csv.reader(io.StringIO(head, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise RunnerError(
            f"{path.name}, line {reader.line_num}: not valid CSV ({exc}); fix the quoting"
        ) from None
    if header is None or not any(c.strip() for c in header):
        raise RunnerError(f"{path.name} has no header row; the first line must name the columns")
    from runner.config import MAX_CSV_COLUMNS

    if len(header) > MAX_CSV_COLUMNS:
        raise RunnerError(
            f"{path.name} has {len(header):,} columns; trialkit imports at most "
            f"{MAX_CSV_COLUMNS:,} (each metric or param becomes a database column): "
            "keep the factor, timing and metric columns and drop the rest"
        )
    return header


def line_numbers(path: Path, delimiter: str, rows: Sequence[int]) -> dict[int, int]:
    """Line numbers (as ``csv.reader`` counts them, blank rows skipped) of data rows ``rows``
    (0-based among non-blank data rows). Used on the error path only."""
    wanted = set(rows)
    found: dict[int, int] = {}
    if not wanted:
        return found
    last = max(wanted)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        next(reader, None)
        index = -1
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            index += 1
            if index in wanted:
                found[index] = reader.line_num
            if index >= last:
                break
    return found


def _fast(col: str, typ: str, delimiter: str, d: str, n: str) -> tuple[str, str | None, str]:
    """How DuckDB reads a cell of ``col`` as a number exactly as the Python rules would, for a
    column of SQL type ``typ`` (DOUBLE for metric candidates): (its DOUBLE SQL, its BIGINT SQL or
    None for DOUBLE, the predicate "it is such a number" over columns ``d`` and ``n`` holding
    those two values and ``col``)."""
    # a failed TRY_CAST costs an error message: only cells that open like a number try
    double = f"CASE WHEN ascii({col}) BETWEEN 43 AND 57 THEN TRY_CAST({col} AS DOUBLE) END"
    if delimiter == ";":
        # a decimal comma (0,93) in a semicolon file: the same regex as _DECIMAL_COMMA_RE
        double = (
            f"(CASE WHEN contains({col}, ',') THEN CASE WHEN regexp_full_match({col}, "
            rf"'[+-]?\d*,\d+([eE][+-]?\d+)?') THEN TRY_CAST(replace({col}, ',', '.') AS DOUBLE)"
            f" END ELSE {double} END)"
        )
    ok = f"coalesce(NOT contains({col}, '_') AND isfinite({d}), false)"
    if typ == "DOUBLE":
        return double, None, ok
    bound = _INT_BOUNDS[typ]
    as_int = f"TRY_CAST({d} AS BIGINT)" if delimiter == ";" else f"TRY_CAST({col} AS BIGINT)"
    pred = f"coalesce({ok} AND {d} = trunc({d}) AND {n} BETWEEN {-bound} AND {bound - 1}, false)"
    if typ == "BIGINT":  # beyond 2**53 a double is not exact: read the integer itself
        pred = f"coalesce({ok} AND {d} = trunc({d}) AND {n} IS NOT NULL, false)"
    return double, as_int, pred


def _literal(value: Any) -> str:
    """A SQL literal of a configuration's value, as text (cast to the column's type after)."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return _sql_str(repr(value))
    if isinstance(value, datetime):
        return _sql_str(value.isoformat(sep=" "))
    return _sql_str(str(value))


def _fill(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], rows: list) -> None:
    """A temp table ``table`` (name -> SQL type) holding ``rows`` (tuples), one statement."""
    cols = ", ".join(f"{n} {t}" for n, t in columns.items())
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} ({cols})")
    if rows:
        lists = [list(c) for c in zip(*rows, strict=True)]
        con.execute(f"INSERT INTO {table} SELECT {', '.join('unnest(?)' for _ in columns)}", lists)


def stage_csv(
    con: duckdb.DuckDBPyConnection, path: Path, head: FileHead, *, experiment: str
) -> Staged:
    """Read ``path`` with DuckDB, check it as :func:`runner.importer.parse_csv` does and fill
    temp table :data:`STAGED`; RunnerError (nothing staged to keep) on the first problem."""
    from runner.importer import (
        _DECIMAL_COMMA_RE,
        FACTOR_COLUMNS,
        _cast,
        _config_id,
        _header,
        _is_number,
        _number,
        sniff_delimiter,
    )
    from runner.store import TRIAL_COLUMNS, WRITABLE_TRIAL_COLUMNS, params_key

    delimiter = sniff_delimiter(head.head)

    def clean(value: str) -> str:
        cell = value.strip()
        if delimiter == ";" and _DECIMAL_COMMA_RE.match(cell):
            cell = cell.replace(",", ".")
        return cell

    header = _header_row(head.head, delimiter, path)
    width = len(header)
    blank_titled = [i for i, title in enumerate(header) if not title.strip()]
    writable = set(WRITABLE_TRIAL_COLUMNS)
    # the fast numeric kind of each column, from the names it will have (blank-titled columns
    # are dropped or refused below; a header _header refuses is refused below too)
    kinds: dict[int, str] = {}
    try:
        titled = [i for i in range(width) if i not in blank_titled]
        for i, name in zip(titled, _header([header[i] for i in titled], path)[0], strict=True):
            if name not in writable:
                kinds[i] = "DOUBLE"
            elif TRIAL_COLUMNS[name] in _NUMERIC and name not in FACTOR_COLUMNS:
                kinds[i] = TRIAL_COLUMNS[name]
    except RunnerError:
        kinds = {}
    text_only: set[int] = set()
    while True:
        fast_at = {i: k for i, k in kinds.items() if i not in text_only}
        rejects = _read_raw(con, path, delimiter, width, fast_at)
        # Spreadsheets often end every line with a delimiter: drop unnamed columns with no values.
        dropped: set[int] = set()
        if blank_titled:
            counts = con.execute(
                "SELECT "
                + ", ".join(f"count(nullif(trim(c{i}), ''))" for i in blank_titled)
                + f" FROM {RAW}"
            ).fetchone()
            dropped = {i for i, n in zip(blank_titled, counts, strict=True) if n == 0}
        kept = [i for i in range(width) if i not in dropped]
        names, renamed = _header([header[i] for i in kept], path)
        _raise_rejects(rejects, path, delimiter, dropped, len(names))
        n_rows = con.execute(f"SELECT count(*) FROM {RAW}").fetchone()[0]
        if not n_rows:
            raise RunnerError(f"{path.name} has a header but no data rows; add one row per trial")

        col_of = {name: f"c{i}" for name, i in zip(names, kept, strict=True)}
        index_of = dict(zip(names, kept, strict=True))
        trial_cols = [n for n in names if n in writable]
        other = [n for n in names if n not in writable]
        factor_cols = [n for n in names if n in FACTOR_COLUMNS or n == "config_id"]
        # columns read with a fast numeric path: the typed value in v<i>, the other cells' text
        # in c<i> (the rare cells: text, odd spellings, bad values)
        fast_kind = {n: fast_at[index_of[n]] for n in names if index_of[n] in fast_at}
        typed_col = {n: f"v{index_of[n]}" for n in fast_kind}

        # -- one scan of the typed table: per column, how many cells are fast and how many rare
        aggs = [f"count({typed_col[n]}), count({col_of[n]})" for n in fast_kind]
        got = con.execute(f"SELECT {', '.join(aggs) or '0'} FROM {RAW}").fetchone()
        fast_cells = {n: got[2 * j] for j, n in enumerate(fast_kind)}
        rare_cells = {n: got[2 * j + 1] for j, n in enumerate(fast_kind)}
        rare_cols = [n for n in fast_kind if rare_cells[n]] + [
            n for n in trial_cols if n not in fast_kind and n not in factor_cols
        ]

        # -- rare values, once per distinct value, through the row-by-row rules
        rare: dict[str, list[tuple[str, int, int]]] = {}
        for n in rare_cols:
            col = col_of[n]
            rare[n] = con.execute(
                f"SELECT {col}, count(*), min(rowid) FROM {RAW} WHERE {col} IS NOT NULL "
                f"GROUP BY {col}"
            ).fetchall()

        metric_cols: list[str] = []
        for n in other:
            cells = [clean(v) for v, _, _ in rare.get(n, [])]
            nonempty = [c for c in cells if c]
            if (fast_cells.get(n) or nonempty) and all(_is_number(c) for c in nonempty):
                metric_cols.append(n)
        param_cols = [n for n in other if n not in metric_cols]
        # a param's cells are its configurations' text: a param column with number cells read
        # as numbers (the rare mixed column) is read again as text
        mixed = {index_of[n] for n in param_cols if fast_cells.get(n)}
        if not mixed:
            break
        text_only |= mixed
    key_cols = factor_cols + param_cols

    # -- configurations: the distinct key cells with their rows' count and first row; the
    # factors' distinct values (for their checks) come from them too
    key_sql = ", ".join(col_of[n] for n in key_cols)
    if key_cols:
        configs = con.execute(
            f"SELECT *, hash({key_sql}) FROM (SELECT {key_sql}, count(*) AS _tk_n, "
            f"min(rowid) AS _tk_first FROM {RAW} GROUP BY ALL) ORDER BY _tk_first"
        ).fetchall()
    else:
        configs = [(n_rows, 0, 0)]
    width_key = len(key_cols)
    for j, n in enumerate(key_cols):
        if n == "config_id":
            continue
        seen: dict[str, list[int]] = {}
        for row in configs:
            if row[j] is not None:
                agg = seen.setdefault(row[j], [0, row[width_key + 1]])
                agg[0] += row[width_key]
                agg[1] = min(agg[1], row[width_key + 1])
        rare[n] = [(v, c, first) for v, (c, first) in seen.items()]

    # -- bad values of trial columns: all counted, the first ones named by line
    bad: dict[str, dict[str, str]] = {}  # column -> raw value -> message
    maps: dict[str, list[tuple[str, Any]]] = {}
    for n in trial_cols:
        if n not in rare or n in FACTOR_COLUMNS or n == "config_id":
            continue
        values: list[tuple[str, Any]] = []
        for raw, _, _ in rare[n]:
            cell = clean(raw)
            if not cell:
                values.append((raw, None))
                continue
            try:
                values.append((raw, _cast(cell, n, "@@")))
            except RunnerError as exc:
                bad.setdefault(n, {})[raw] = str(exc)
        maps[n] = values
    for n in FACTOR_COLUMNS:  # factors are cast per configuration below; check them here too
        if n in rare:
            for raw, _, _ in rare[n]:
                cell = clean(raw)
                if cell:
                    try:
                        _cast(cell, n, "@@")
                    except RunnerError as exc:
                        bad.setdefault(n, {})[raw] = str(exc)
    if bad:
        _raise_bad(con, path, delimiter, names, col_of, bad, rare)

    for n in metric_cols:
        if n in rare:
            maps[n] = [(raw, float(clean(raw)) if clean(raw) else None) for raw, _, _ in rare[n]]

    # config_id, factors and params once per distinct configuration, found by a hash of the key
    # cells (proven collision-free here, else joined on the cells)
    configs = [(*row[:width_key], row[-1]) for row in configs]
    by_hash = len({row[-1] for row in configs}) == len(configs)
    factor_types = {n: TRIAL_COLUMNS[n] for n in FACTOR_COLUMNS}
    cfg_rows = []
    experiments: set[str] = set()
    config_index: dict[str, int] = {}
    params_of: dict[str, dict[str, Any]] = {}
    for row in configs:
        raw = row[:-1]
        cells = {n: ("" if v is None else clean(v)) for n, v in zip(key_cols, raw, strict=True)}
        values: dict[str, Any] = {"experiment": experiment}
        for n in FACTOR_COLUMNS:
            if cells.get(n):
                values[n] = _cast(cells[n], n, "@@")
        params = {
            n: (_number(cells[n]) if _is_number(cells[n]) else cells[n])
            for n in param_cols
            if cells[n]
        }
        values["params"] = params
        cid = cells.get("config_id") or _config_id(values)
        experiments.add(values["experiment"])
        pkey = params_key(params)[0]
        params_of[pkey] = params
        cfg_rows.append(
            (
                *raw,
                row[-1],
                config_index.setdefault(cid, len(config_index)),
                pkey,
                cid,
                *(values.get(n) for n in FACTOR_COLUMNS),
                len(cfg_rows),
            )
        )
    cfg_columns = {f"k{j}": "VARCHAR" for j in range(len(key_cols))}
    cfg_columns |= {"h": "UBIGINT", "cidx": "INTEGER", "pkey": "VARCHAR", "config_id": "VARCHAR"}
    cfg_columns |= {f"f_{n}": t for n, t in factor_types.items()}
    cfg_columns |= {"gi": "INTEGER"}
    _fill(con, CFG, cfg_columns, cfg_rows)
    temp = [CFG]
    map_type: dict[str, str] = {}
    for n, values in maps.items():
        map_type[n] = typ = "DOUBLE" if n in metric_cols else TRIAL_COLUMNS[n]
        if len(values) <= _INLINE_VALUES:
            continue
        rows_i = [(raw, value, i) for i, (raw, value) in enumerate(values)]
        _fill(con, f"_tk_map_{n}", {"raw": "VARCHAR", "value": typ, "i": "INTEGER"}, rows_i)
        temp.append(f"_tk_map_{n}")

    # -- the staged view. Joins do not keep the file's order, so everything a join finds (the
    # configuration's values, rare cells' values, the repetition counter) goes to a narrow table
    # sorted by row; the view joins it to the text table by position, a plain projection.
    if not key_cols:
        cfg_join = f"CROSS JOIN {CFG} g"
    elif by_hash:
        cfg_join = f"JOIN {CFG} g ON hash({', '.join('r.' + col_of[n] for n in key_cols)}) = g.h"
    else:
        on = " AND ".join(
            f"r.{col_of[n]} IS NOT DISTINCT FROM g.k{j}" for j, n in enumerate(key_cols)
        )
        cfg_join = f"JOIN {CFG} g ON {on}"
    # a configuration's values by its index, from list literals (few configurations), else
    # carried in the narrow table
    few = len(cfg_rows) <= _LITERAL_CONFIGS
    per_config = {f"f_{n}": (n, t) for n, t in factor_types.items()}
    per_config |= {"config_id": ("config_id", "VARCHAR"), "pkey": ("params_id", "VARCHAR")}
    position = {name: j for j, name in enumerate(cfg_columns)}
    narrow = ["g.gi AS gi"]
    select = []
    for column, (name, typ) in per_config.items():
        if not few:
            narrow.append(f"g.{column} AS {column}")
            select.append(f"q.{column} AS {name}")
            continue
        values = [row[position[column]] for row in cfg_rows]
        if all(v is None for v in values):
            select.append(f"CAST(NULL AS {typ}) AS {name}")
            continue
        if all(v == values[0] for v in values):
            select.append(f"CAST({_literal(values[0])} AS {typ}) AS {name}")
            continue
        items = ", ".join(_literal(v) for v in values)
        select.append(f"CAST([{items}] AS {typ}[])[q.gi + 1] AS {name}")
    joins = [cfg_join]
    rare_of: dict[str, str] = {}
    inline = {n for n, values in maps.items() if len(values) <= _INLINE_VALUES}
    for n, values in maps.items():
        if len(values) <= _INLINE_VALUES:  # a few values: found by position in a list literal
            raws = ", ".join(_sql_str(raw) for raw, _ in values)
            items = ", ".join(_literal(v) for _, v in values)
            rare_of[n] = (
                f"CAST([{items}] AS {map_type[n]}[])[list_position([{raws}], r.{col_of[n]})]"
            )
            continue
        joins.append(f"LEFT JOIN _tk_map_{n} m_{n} ON m_{n}.raw = r.{col_of[n]}")
        if len(values) <= _LITERAL_CONFIGS:  # the narrow table carries the value's index
            narrow.append(f"m_{n}.i AS m_{n}")
            items = ", ".join(_literal(v) for _, v in values)
            rare_of[n] = f"CAST([{items}] AS {map_type[n]}[])[q.m_{n} + 1]"
        else:
            narrow.append(f"m_{n}.value AS m_{n}")

    def typed(n: str, typ: str, rare: str = "") -> str:
        """A cell of ``n`` as ``typ`` in the view (a rare cell's value from the narrow table;
        ``rare``: where else to read it)."""
        rare = rare or rare_of.get(n, f"q.m_{n}")
        if n in fast_kind:
            value = f"CAST(r.{typed_col[n]} AS {typ})"
            if n in maps:
                return f"coalesce({value}, {rare})"
            # every cell took the fast path (or is empty): the value alone
            return value
        return rare

    for n in trial_cols:
        if n in FACTOR_COLUMNS or n in ("config_id", "repetition"):
            continue
        expr = typed(n, TRIAL_COLUMNS[n])
        if n == "status":
            expr = f"coalesce({expr}, 'ok')"
        elif n == "warmup":
            expr = f"coalesce({expr}, false)"
        select.append(f"{expr} AS {n}")
    if "status" not in trial_cols:
        select.append("'ok' AS status")
    if "warmup" not in trial_cols:
        select.append("false AS warmup")
    counter = ""  # the key rows are numbered by, per configuration, in file order
    if "repetition" in trial_cols:
        cells = fast_cells.get("repetition", 0) + sum(c for _, c, _ in rare.get("repetition", []))
        rep_full = cells == n_rows and all(v is not None for _, v in maps.get("repetition", []))
        if rep_full:
            select.append(f"{typed('repetition', 'INTEGER')} AS repetition")
        else:
            # rows without one are numbered 1, 2, ... per configuration in file order
            rep_rare = rare_of["repetition"] if "repetition" in inline else "m_repetition.value"
            rep_null = f"({typed('repetition', 'INTEGER', rep_rare)}) IS NULL"
            counter = f"g.cidx * 2 + CAST({rep_null} AS INTEGER)"
            select.append(f"coalesce({typed('repetition', 'INTEGER')}, q.n) AS repetition")
    else:
        counter = "g.cidx"
        select.append("q.n AS repetition")
    select += [f"{typed(n, 'DOUBLE')} AS {n}" for n in metric_cols]
    if few and all(n in rare_of for n in maps):
        # integers only: fetched in any order, put in file order and numbered with numpy
        _narrow_frame(con, narrow, joins, counter, n_rows)
    else:
        if counter:
            narrow.append(
                f"CAST(row_number() OVER (PARTITION BY {counter} ORDER BY r.rowid) AS INTEGER) AS n"
            )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {ROWS} AS SELECT {', '.join(narrow)} "
            f"FROM {RAW} r {' '.join(joins)} ORDER BY r.rowid"
        )
        temp.append(ROWS)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {STAGED} AS SELECT {', '.join(select)} "
        f"FROM {RAW} r POSITIONAL JOIN {ROWS} q"
    )
    return Staged(
        n_rows=int(n_rows),
        trial_columns=tuple(trial_cols),
        metric_columns=tuple(metric_cols),
        param_columns=tuple(param_cols),
        renamed=renamed,
        delimiter=delimiter,
        sha256=head.sha256,
        experiments=tuple(sorted(experiments)),
        params=params_of,
        temp_tables=(*temp, RAW),
    )


def _narrow_frame(
    con: duckdb.DuckDBPyConnection, narrow: list[str], joins: list[str], counter: str, n: int
) -> None:
    """Register :data:`ROWS`, NumPy arrays of the integer columns ``narrow`` (SQL over RAW ``r``
    and ``joins``) in file order, plus ``n``, rows numbered 1, 2, ... per value of ``counter``
    in file order: one unordered scan, then a scatter by row id and a stable integer sort."""
    import numpy as np

    cols = [f"coalesce({c.rsplit(' AS ', 1)[0]}, -1) AS {c.rsplit(' AS ', 1)[1]}" for c in narrow]
    if counter:
        cols.append(f"{counter} AS _k")
    got = con.execute(
        f"SELECT r.rowid AS _rid, {', '.join(cols)} FROM {RAW} r {' '.join(joins)}"
    ).fetchnumpy()
    rid = np.asarray(got.pop("_rid"))
    if len(rid) != n:
        raise RunnerError(f"import csv: {len(rid)} staged rows for {n} read; please report")
    columns: dict[str, np.ndarray] = {}
    for name, values in got.items():  # scattered to their row: file order
        columns[name] = np.empty(n, dtype=np.asarray(values).dtype)
        columns[name][rid] = values
    if counter:
        key = columns.pop("_k")
        groups = int(key.max()) + 1
        order = np.argsort(key.astype(np.uint16) if groups <= 1 << 16 else key, kind="stable")
        sizes = np.bincount(key, minlength=groups)
        first = np.repeat(np.cumsum(sizes) - sizes, sizes)
        numbers = np.empty(n, dtype=np.int32)
        numbers[order] = np.arange(1, n + 1, dtype=np.int64) - first
        columns["n"] = numbers
    con.register(ROWS, columns)  # a dict of NumPy arrays: no pandas to import


def drop_staged(con: duckdb.DuckDBPyConnection, staged: Staged | None) -> None:
    """Drop the view :data:`STAGED` and the temp tables it reads."""
    con.execute(f"DROP VIEW IF EXISTS {STAGED}")
    con.unregister(ROWS)
    for table in staged.temp_tables if staged else (ROWS, CFG, RAW):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _read_raw(
    con: duckdb.DuckDBPyConnection, path: Path, delimiter: str, width: int, fast: dict[int, str]
) -> list[tuple[Any, ...]]:
    """One ``read_csv`` of ``path`` into temp table :data:`RAW`, blank rows skipped: column
    ``c<i>`` the text of column i, except for the columns of ``fast`` (index -> SQL kind), whose
    cells DuckDB reads as numbers exactly as the Python rules would go typed to ``v<i>`` (text
    ``c<i>`` NULL). Returns the rows DuckDB rejected (line, error type, text, message)."""
    import duckdb

    cols = [f"c{i}" for i in range(width)]
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in cols) + "}"
    non_blank = "coalesce(" + ", ".join(f"nullif(trim({c}), '')" for c in cols) + ")"
    # three projections, so each cell is cast once and tested once: the cast (d<i>, n<i>), the
    # test (p<i>), then the typed value or the text
    casts, tests, items = list(cols), list(cols), []
    for i, col in enumerate(cols):
        if i not in fast:
            items.append(col)
            continue
        double, as_int, pred = _fast(col, fast[i], delimiter, f"d{i}", f"n{i}")
        as_int = (as_int or "NULL").replace(f"TRY_CAST(d{i} ", f"TRY_CAST({double} ")
        casts += [f"{double} AS d{i}", f"{as_int} AS n{i}"]
        tests += [f"d{i}", f"n{i}", f"{pred} AS p{i}"]
        items.append(f"CASE WHEN p{i} THEN {'d' if fast[i] == 'DOUBLE' else 'n'}{i} END AS v{i}")
        items.append(f"CASE WHEN NOT p{i} THEN {col} END AS {col}")
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {RAW} AS SELECT {', '.join(items)} FROM (SELECT "
            f"{', '.join(tests)} FROM (SELECT {', '.join(casts)} FROM read_csv(?, "
            f"header = true, delim = {_sql_str(delimiter)}, quote = '\"', escape = '\"', "
            f"auto_detect = false, columns = {columns}, store_rejects = true, "
            f"ignore_errors = true, rejects_table = '_tk_rejects', "
            f"rejects_scan = '_tk_rejects_scan', max_line_size = 16777216) "
            f"WHERE {non_blank} IS NOT NULL))",
            [str(path)],
        )
        rejects = con.execute(
            "SELECT line, error_type, csv_line, error_message FROM _tk_rejects "
            "ORDER BY line LIMIT 1000"
        ).fetchall()
        con.execute("DROP TABLE IF EXISTS _tk_rejects")
        con.execute("DROP TABLE IF EXISTS _tk_rejects_scan")
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise RunnerError(f"{path.name}: not valid CSV ({first}); fix the file") from None
    return rejects


def _raise_rejects(
    rejects: list[tuple[Any, ...]], path: Path, delimiter: str, dropped: set[int], width: int
) -> None:
    """RunnerError for the first row DuckDB rejected that is not a blank line (``width``: the
    header's columns once ``dropped`` ones are gone)."""
    seen_lines: set[int] = set()
    for line, error_type, csv_line, message in rejects:
        fields = next(csv.reader([csv_line or ""], delimiter=delimiter), [])
        if not any(f.strip() for f in fields) and error_type != "UNQUOTED VALUE":
            continue  # a blank line: skipped, as the row-by-row reader skips it
        if line in seen_lines:
            continue
        seen_lines.add(line)
        if error_type in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
            n = len(fields) - sum(1 for i in dropped if i < len(fields))
            raise RunnerError(
                f"{path.name}, line {line}: {n} fields but the header has {width} "
                f"(delimiter {delimiter!r}); make every row match the header"
            )
        raise RunnerError(f"{path.name}, line {line}: not valid CSV ({message}); fix the quoting")


def _raise_bad(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    delimiter: str,
    names: list[str],
    col_of: dict[str, str],
    bad: dict[str, dict[str, str]],
    rare: dict[str, list[tuple[str, int, int]]],
) -> None:
    """RunnerError naming the first bad cell (by line, then column order) and counting all."""
    total = sum(count for n, vals in bad.items() for raw, count, _ in rare[n] if raw in vals)
    order = {n: j for j, n in enumerate(names)}
    first_row, _, column, raw = min(
        (row, order[n], n, raw) for n, vals in bad.items() for raw, _, row in rare[n] if raw in vals
    )
    listed: dict[str, list[int]] = {}
    for n, vals in bad.items():
        rows = con.execute(
            f"SELECT rowid FROM {RAW} WHERE list_contains(?, {col_of[n]}) ORDER BY rowid "
            f"LIMIT {_BAD_LISTED}",
            [list(vals)],
        ).fetchall()
        listed[n] = [r[0] for r in rows]
    lines = line_numbers(path, delimiter, [first_row, *(r for v in listed.values() for r in v)])
    message = bad[column][raw].replace("@@", f"{path.name}, line {lines.get(first_row, '?')}")
    if total > 1:
        parts = []
        for n in sorted(bad, key=order.__getitem__):
            n_bad = sum(count for raw_, count, _ in rare[n] if raw_ in bad[n])
            shown = ", ".join(str(lines.get(r, "?")) for r in listed[n])
            more = ", ..." if n_bad > len(listed[n]) else ""
            parts.append(f"{n}: {n_bad} (lines {shown}{more})")
        message += f" [{total} bad values in all; {'; '.join(parts)}]"
    raise RunnerError(message)
