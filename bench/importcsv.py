"""Benchmark of `runner import csv` against DuckDB's own bulk `read_csv` into a fresh database.

    python bench/importcsv.py [--rows 10000 100000 1000000] [--10m] [--repeat 1]
                              [--runner PATH] [--pythonpath DIR] [--markdown FILE]

For each size N it writes a CSV of N synthetic trials (engine, workload, workers, data_fraction,
train_s, accuracy, a param column ``impl``, a status column with about 1 % failed rows whose
metrics are empty), then times, each as a child process:

* ``runner import csv FILE --db NEW`` (the console script next to this Python, or ``--runner``;
  ``--pythonpath`` puts another checkout first, e.g. the old code in a git worktree);
* the floor: ``CREATE TABLE t AS SELECT * FROM read_csv(FILE)`` into a fresh DuckDB file;
* the floor into the same tables (:data:`FLOOR_SAME`): one ``INSERT INTO trials ... SELECT``
  of the typed ``read_csv`` into a fresh store, no checks (storing ~30 mostly VARCHAR columns
  per trial costs several times the 8-column table above).

CPU seconds (user + sys) and peak RSS come from ``os.wait4``; wall from the clock. Prints a
markdown table with the ratios import / floor; ``--markdown FILE`` writes it too.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float
    rss_mb: float
    returncode: int


def make_csv(path: Path, rows: int) -> None:
    """N synthetic trials written by DuckDB's COPY (same seed-free formula every time)."""
    import duckdb

    con = duckdb.connect()
    con.execute(
        f"""COPY (
        SELECT ['local', 'dask', 'ray', 'spark'][1 + (i % 4)] AS "Engine",
            ['knn', 'mlp'][1 + ((i // 4) % 2)] AS workload,
            [1, 2, 4, 8][1 + ((i // 8) % 4)] AS "Workers",
            [0.25, 0.5, 1.0][1 + ((i // 32) % 3)] AS data_fraction,
            CASE WHEN i % 97 = 0 THEN NULL
                 ELSE round(1 + (hash(i) % 100000) / 1e4, 4) END AS "Train (s)",
            CASE WHEN i % 97 = 0 THEN NULL
                 ELSE round(0.9 + (hash(i * 7) % 1000) / 1e5, 5) END AS accuracy,
            ['sklearn', 'torch'][1 + ((i // 96) % 2)] AS impl,
            CASE WHEN i % 97 = 0 THEN 'failed' ELSE 'ok' END AS status
        FROM range({rows}) t(i)
        ) TO '{path}' (HEADER, DELIMITER ',')"""
    )
    con.close()


def timed(argv: list[str], env: dict[str, str] | None = None) -> Timing:
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code:
        print(f"  ! {' '.join(argv[:4])} exited {code}: {stderr.strip()[-300:]}", file=sys.stderr)
    return Timing(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code)


def median(timings: list[Timing]) -> Timing:
    return Timing(
        statistics.median(t.wall_s for t in timings),
        statistics.median(t.cpu_s for t in timings),
        max(t.rss_mb for t in timings),
        max(t.returncode for t in timings),
    )


#: The floor into the same tables: a fresh store (schema 4), then one INSERT ... SELECT of the
#: typed read_csv into ``trials`` (the columns the import fills; config_id and params_id as plain
#: string expressions, repetition constant, no checks) and the few ``params`` rows.
FLOOR_SAME = """
import sys
from runner.store import open_store
with open_store(sys.argv[2]) as s:
    with s.transaction():
        run = s.begin_run(source="floor")
        s.con.execute("ALTER TABLE trials ADD COLUMN accuracy DOUBLE")
        s.con.execute(
            "INSERT INTO trials (trial_id, run_id, config_id, experiment, engine, workload, "
            "workers, data_fraction, params_id, repetition, warmup, status, train_s, accuracy) "
            "SELECT nextval('trial_id_seq'), ?, concat_ws('/', Engine, workload, Workers, "
            "data_fraction, impl), 'exp', Engine, workload, Workers, data_fraction, impl, 1, "
            "false, status, \\"Train (s)\\", accuracy FROM read_csv(?)",
            [run, sys.argv[1]],
        )
        s.con.execute(
            "INSERT INTO params SELECT DISTINCT impl, json_object('impl', impl) FROM read_csv(?)",
            [sys.argv[1]],
        )
"""
FLOOR = 'import duckdb, sys; c = duckdb.connect(sys.argv[2]); c.execute("CREATE TABLE t AS SELECT * FROM read_csv(?)", [sys.argv[1]]); c.close()'  # noqa: E501


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--10m", dest="ten_m", action="store_true", help="also 10,000,000 rows")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--runner", default=None, help="runner console script to time")
    parser.add_argument("--pythonpath", default=None, help="checkout to import runner from")
    parser.add_argument("--label", default="trialkit", help="name of the import in the table")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    sizes = list(args.rows) + ([10_000_000] if args.ten_m else [])
    runner = args.runner or shutil.which("runner", path=str(Path(sys.executable).parent))
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    work = Path(args.workdir or tempfile.mkdtemp(prefix="importcsv-"))
    work.mkdir(parents=True, exist_ok=True)
    lines = [
        f"`runner import csv` vs DuckDB `read_csv` ({args.label}; {platform.node()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; median of {args.repeat})",
        "",
        "| rows | import CPU s | import wall s | import RSS MB | read_csv CPU s | read_csv wall s "
        "| read_csv RSS MB | CPU ratio | wall ratio | read_csv → trials CPU s | wall s | RSS MB "
        "| CPU ratio to it |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in sizes:
        csv_path = work / f"trials_{rows}.csv"
        if not csv_path.exists():
            make_csv(csv_path, rows)
        imports, floors, sames = [], [], []
        for _ in range(args.repeat):
            db = work / "import.duckdb"
            db.unlink(missing_ok=True)
            imports.append(timed([runner, "import", "csv", str(csv_path), "--db", str(db)], env))
            db.unlink(missing_ok=True)
            floor_db = work / "floor.duckdb"
            floor_db.unlink(missing_ok=True)
            floors.append(timed([sys.executable, "-c", FLOOR, str(csv_path), str(floor_db)]))
            floor_db.unlink(missing_ok=True)
            sames.append(timed([sys.executable, "-c", FLOOR_SAME, str(csv_path), str(floor_db)]))
            floor_db.unlink(missing_ok=True)
        imp, flo, same = median(imports), median(floors), median(sames)
        failed = " (failed)" if imp.returncode else ""
        lines.append(
            f"| {rows:,} | {imp.cpu_s:.2f}{failed} | {imp.wall_s:.2f} | {imp.rss_mb:.0f} | "
            f"{flo.cpu_s:.2f} | {flo.wall_s:.2f} | {flo.rss_mb:.0f} | "
            f"{imp.cpu_s / flo.cpu_s:.2f}× | {imp.wall_s / flo.wall_s:.2f}× | "
            f"{same.cpu_s:.2f} | {same.wall_s:.2f} | {same.rss_mb:.0f} | "
            f"{imp.cpu_s / same.cpu_s:.2f}× |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
