"""Every MLP implementation on every engine that has it, for real, `--n 1` on part of digits:
local scikit-learn and scratch, Dask and Ray with scikit-learn under their joblib backends and
with synchronous data-parallel training of the scratch network (Spark's cells are in
test_engine_spark.py, KNN's in test_trials.py and test_engine_ray.py).

The data-parallel engines run the same algorithm as the local scratch network: with one worker
Dask reproduces the local fit exactly, and Dask and Ray with two workers agree with each other."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import duckdb
import pytest

from tests.conftest import JOBS, Background, Job, run_spec, uses

pytest.importorskip("dask")
pytest.importorskip("ray")

SPEC = """\
name = "mlp-matrix"
n = 1
warmup = 0
seed = 3
timeout = 300

[defaults]
dataset = "digits"
data_fraction = 0.6

[workloads.mlp]
epochs = 15

[[matrix]]
engine = "local"
workload = "mlp"
impl = ["sklearn", "scratch"]

[[matrix]]
engine = "dask"
workload = "mlp"
impl = "scratch"
workers = [1, 2]

[[matrix]]
engine = "dask"
workload = "mlp"
impl = "sklearn"
workers = 2

[[matrix]]
engine = "ray"
workload = "mlp"
impl = ["sklearn", "scratch"]
workers = 2
"""


JOBS["matrix"] = Job(
    partial(run_spec, spec=SPEC, ok_trials=7), "engines", minutes=1.5, needed_by=uses("matrix_db")
)


@pytest.fixture(scope="module")
def matrix_db(background: Background) -> Path:
    """SPEC's database, run in the background beside the other engine suites' module runs."""
    return background.result("matrix")


def _rows(db: Path) -> dict[tuple[str, str, int], dict[str, float]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT engine, impl, workers, accuracy, train_accuracy, workers_used, sync_steps, "
            "hidden FROM observations WHERE status = 'ok'"
        ).fetchall()
    finally:
        con.close()
    keys = ("accuracy", "train_accuracy", "workers_used", "sync_steps", "hidden")
    return {(r[0], r[1], r[2]): dict(zip(keys, r[3:], strict=True)) for r in rows}


@pytest.mark.engine
def test_every_mlp_cell_is_accurate(matrix_db: Path) -> None:
    rows = _rows(matrix_db)
    assert set(rows) == {
        ("local", "sklearn", 1),
        ("local", "scratch", 1),
        ("dask", "scratch", 1),
        ("dask", "scratch", 2),
        ("dask", "sklearn", 2),
        ("ray", "sklearn", 2),
        ("ray", "scratch", 2),
    }
    for key, row in rows.items():
        assert row["accuracy"] >= 0.90, (key, row)
        assert row["train_accuracy"] >= row["accuracy"] - 0.05, (key, row)
        if key[0] != "local":
            assert row["workers_used"] == key[2], (key, row)  # every worker scored its shards
    # the scratch network is 002's shape wherever it runs
    assert {row["hidden"] for key, row in rows.items() if key[1] == "scratch"} == {"[100,50]"}


@pytest.mark.engine
def test_data_parallel_engines_run_the_same_algorithm(matrix_db: Path) -> None:
    rows = _rows(matrix_db)
    local, dask1 = rows[("local", "scratch", 1)], rows[("dask", "scratch", 1)]
    dask2, ray2 = rows[("dask", "scratch", 2)], rows[("ray", "scratch", 2)]
    # one shard: the same batches and updates as the local fit
    assert (dask1["accuracy"], dask1["train_accuracy"]) == (
        local["accuracy"],
        local["train_accuracy"],
    )
    # two shards: both engines average the same per-shard gradients
    assert (dask2["accuracy"], dask2["train_accuracy"]) == (
        ray2["accuracy"],
        ray2["train_accuracy"],
    )
    # 862 training rows, global batch 32 = 16 per shard: 27 steps per epoch, 15 epochs
    assert dask2["sync_steps"] == ray2["sync_steps"] == 27 * 15
