"""Bytes per trial on disk: what a results database takes, table by table.

    python bench/storage.py [--trials 10000] [--make-db-trials 1000000] [--keep DIR]
    python bench/storage.py --db PATH [--db PATH ...]        (report on existing databases)

Without ``--db`` it writes two databases in a temporary folder and reports on both:

* ``runner``: ``--trials`` trials appended one by one through the public API, each committed
  the way the runner does (``Store.append_trial``): 8 configurations, 10 trial columns, params of
  4 keys, 6 metrics, no samples;
* ``make-db``: ``bench/analysis.py make-db`` with ``--make-db-trials`` trials (one metric).

For each database: file size, bytes per trial, and each table's share, from
``pragma_storage_info`` (a segment's size is the distance to the next segment in its block, so a
table's figure includes the unused tail of its last partial block); "other" is the rest of the
file: the catalogue, indexes (ART) and free blocks. Opens databases read-only, writes nothing
else.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def table_bytes(con: Any) -> tuple[dict[str, int], int]:
    """Bytes per table from the storage layout, and the block size."""
    block_size = int(con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0])
    tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    segments: list[tuple[int, int, str]] = []
    extra: dict[str, int] = defaultdict(int)
    for table in tables:
        rows = con.execute(
            "SELECT block_id, block_offset, additional_block_ids FROM pragma_storage_info(?) "
            "WHERE persistent AND block_id >= 0",
            [table],
        ).fetchall()
        for block_id, offset, additional in rows:
            segments.append((int(block_id), int(offset), table))
            extra[table] += block_size * len(additional or [])
    segments.sort()
    sizes: dict[str, int] = defaultdict(int)
    for k, (block_id, offset, table) in enumerate(segments):
        nxt = segments[k + 1] if k + 1 < len(segments) else None
        end = nxt[1] if nxt is not None and nxt[0] == block_id else block_size
        sizes[table] += end - offset
    for table in tables:
        sizes[table] += extra[table]
    return dict(sizes), block_size


def report(path: Path, label: str) -> str:
    import duckdb

    size = path.stat().st_size
    con = duckdb.connect(str(path), read_only=True)
    try:
        trials = int(con.execute("SELECT count(*) FROM trials").fetchone()[0])
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        sizes, _ = table_bytes(con)
        rows = dict(
            con.execute("SELECT table_name, estimated_size FROM duckdb_tables()").fetchall()
        )
    finally:
        con.close()
    lines = [
        f"## {label}: {path.name} (schema {version})",
        "",
        f"{trials:,} trials; file {size / 2**20:,.1f} MiB; "
        f"**{size / max(trials, 1):,.1f} bytes per trial**",
        "",
        "| table | rows | MiB | bytes per trial | share |",
        "|---|---:|---:|---:|---:|",
    ]
    for table, nbytes in sorted(sizes.items(), key=lambda kv: -kv[1]):
        if nbytes == 0:
            continue
        lines.append(
            f"| {table} | {rows.get(table, 0):,} | {nbytes / 2**20:,.2f} | "
            f"{nbytes / max(trials, 1):,.1f} | {nbytes / size:.1%} |"
        )
    other = size - sum(sizes.values())
    lines.append(
        f"| other (catalogue, indexes, free) | | {other / 2**20:,.2f} | "
        f"{other / max(trials, 1):,.1f} | {other / size:.1%} |"
    )
    return "\n".join(lines) + "\n"


def write_runner_db(path: Path, trials: int) -> float:
    """``trials`` trials appended one at a time, committed each, as the runner does; returns
    the median seconds of one append."""
    import statistics

    from runner.store import TrialRecord, now_utc, open_store

    times = []
    with open_store(path) as store:
        run = store.begin_run(source="measured")
        for i in range(trials):
            cfg = i % 8
            workers = 1 + cfg % 4
            values = {
                "config_id": f"c{cfg}",
                "experiment": "bench",
                "engine": "dask" if cfg < 4 else "ray",
                "workload": "knn",
                "dataset": "digits",
                "workers": workers,
                "repetition": i // 8,
                "seed": i,
                "started_at": now_utc(),
                "wall_s": 0.01 + i % 7 * 1e-3,
                "params": {
                    "engine": "dask" if cfg < 4 else "ray",
                    "workers": workers,
                    "k": 5,
                    "impl": "sklearn",
                },
            }
            metrics = {
                "accuracy": 0.9 + (i % 13) * 1e-3,
                "precision": 0.91,
                "recall": 0.92,
                "f1": 0.93,
                "train_accuracy": 0.99,
                "workers_used": float(workers),
            }
            record = TrialRecord(run, "ok", values, metrics)
            started = time.perf_counter()
            store.append_trial(record)
            times.append(time.perf_counter() - started)
        store.finish_run(run)
        store.con.execute("CHECKPOINT")
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, action="append", help="report on this database only")
    ap.add_argument("--trials", type=int, default=10_000, help="trials through the runner API")
    ap.add_argument("--make-db-trials", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="write the databases here instead of a temp dir")
    ap.add_argument("--markdown", type=Path, help="also write what is printed to this file")
    args = ap.parse_args(argv)
    out: list[str] = []

    def emit(text: str) -> None:
        print(text)
        out.append(text)

    try:
        return _main(args, emit)
    finally:
        if args.markdown:
            args.markdown.write_text("\n".join(out) + "\n", encoding="utf-8")


def _main(args: argparse.Namespace, print: Callable[[str], None]) -> int:  # noqa: A002
    for path in args.db or ():
        if not path.is_file():
            raise SystemExit(f"--db {path}: no such file")
        print(report(path, f"database {path.name}"))
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="trialkit-storage-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        runner_db = folder / "runner.duckdb"
        runner_db.unlink(missing_ok=True)
        median = write_runner_db(runner_db, args.trials)
        print(report(runner_db, "runner (append_trial, one commit per trial)"))
        print(f"median append_trial: {median * 1e3:.3f} ms\n")
        made = folder / "make-db.duckdb"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "analysis.py"),
                "make-db",
                str(made),
                "--trials",
                str(args.make_db_trials),
                "--force",
            ],
            check=True,
        )
        print(report(made, "make-db"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
