"""The floor of each analysis benchmark: one plain DuckDB GROUP BY over the ``trials`` table
(which the analyses read instead of the observations view when a query names none of the
view's columns from runs or params: analysis.data.lean_sql) computing the sufficient
statistics the analysis needs (counts, sums, means, variances; the medians and quartiles where
the analysis reports them), timed inside one process after the database is open, so start-up
and imports are left out.

    python bench/floor.py DB CASE [--repeat 3]   (prints JSON: cpu_s, wall_s, rows)

CASE is a key of ``FLOOR_SQL`` (the same keys as the naive cases of bench/analysis.py). CPU is
the process's CPU time (every DuckDB thread) around ``execute(...).fetchall()``; the median of
``--repeat`` runs on one connection.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

OK = "status = 'ok' AND NOT warmup"
KNN = f"{OK} AND workload = 'knn'"
PAIR = f"{KNN} AND engine IN ('dask', 'ray')"
MOMENTS = "count(train_s), avg(train_s), var_samp(train_s), min(train_s), max(train_s)"
SUMMARY_BY = "engine, workload, dataset, workers, threads_per_worker, data_fraction"

#: what the floor reads: the table itself, as the analyses do (the view joins runs and params)
SOURCE = "trials"

#: case -> the one GROUP BY giving what the analysis computes its statistics from
FLOOR_SQL: dict[str, str] = {
    "summary": (
        f"SELECT {SUMMARY_BY}, count(*), {MOMENTS}, "
        "quantile_cont(train_s, [0.25, 0.5, 0.75]), avg(accuracy), var_samp(accuracy), "
        "quantile_cont(accuracy, [0.25, 0.5, 0.75]) "
        f"FROM {SOURCE} WHERE {OK} GROUP BY ALL"
    ),
    "ttest": f"SELECT engine, {MOMENTS} FROM {SOURCE} WHERE {PAIR} GROUP BY engine",
    "mwu": (
        f"SELECT engine, train_s, count(*) FROM {SOURCE} WHERE {PAIR} GROUP BY engine, train_s"
    ),
    "anova": f"SELECT workers, {MOMENTS} FROM {SOURCE} WHERE {KNN} GROUP BY workers",
    "tukey": f"SELECT workers, {MOMENTS} FROM {SOURCE} WHERE {KNN} GROUP BY workers",
    "twoway": (
        f"SELECT engine, workers, {MOMENTS} FROM {SOURCE} "
        f"WHERE {KNN} AND engine != 'local' GROUP BY engine, workers"
    ),
    "regress": (
        "SELECT count(*), sum(workers), sum(data_fraction), sum(train_s), "
        "sum(workers * workers), sum(workers * data_fraction), "
        "sum(data_fraction * data_fraction), sum(workers * train_s), "
        "sum(data_fraction * train_s), sum(train_s * train_s) "
        f"FROM {SOURCE} WHERE {KNN} AND engine = 'dask'"
    ),
    "scaling": (
        f"SELECT engine, workload, dataset, data_fraction, workers, {MOMENTS}, "
        f"median(train_s) FROM {SOURCE} "
        f"WHERE {OK} AND engine != 'local' GROUP BY ALL"
    ),
    "power": f"SELECT engine, {MOMENTS} FROM {SOURCE} WHERE {PAIR} GROUP BY engine",
    "cost": (f"SELECT {SUMMARY_BY}, median(train_s) FROM {SOURCE} WHERE {OK} GROUP BY ALL"),
    "cost_metric": (f"SELECT {SUMMARY_BY}, median(train_s) FROM {SOURCE} WHERE {OK} GROUP BY ALL"),
    "compare": (
        f"SELECT engine, workers, data_fraction, {MOMENTS}, median(train_s) "
        f"FROM {SOURCE} WHERE {PAIR} GROUP BY ALL"
    ),
}


def floor(db: str, case: str, *, repeat: int = 3) -> dict[str, float]:
    import duckdb

    sql = FLOOR_SQL[case]
    cpu: list[float] = []
    wall: list[float] = []
    rows = 0
    with duckdb.connect(db, read_only=True) as con:
        for _ in range(repeat):
            c0, w0 = time.process_time(), time.perf_counter()
            rows = len(con.execute(sql).fetchall())
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    return {"cpu_s": statistics.median(cpu), "wall_s": statistics.median(wall), "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("case", choices=sorted(FLOOR_SQL))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(floor(args.db, args.case, repeat=args.repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
