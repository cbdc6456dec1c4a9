"""Keras networks inside other engines' workers, for real: 000's CNN as independent trainers on
Dask and Ray (one per worker, in parallel), and 002's Keras MLP trained inside one Spark task
("Keras on Spark with one worker node").

The reference is engine tensorflow (strategy none) on the same configuration and seed: trainer 1
and the Spark task train exactly the model it trains, so their curves and accuracy must equal
its own; the other trainers train other models."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import duckdb
import pytest

from runner.workloads.keras_trainer import (
    TRAINER_SEED_STRIDE,
    FitResult,
    trainer_seed,
    trainers_metrics,
)
from tests.conftest import JOBS, Background, Job, run_spec, uses

SPEC = """\
name = "keras-inside"
n = 1
warmup = 0
seed = 11
timeout = 300

[defaults]
dataset = "digits"

[[matrix]]
engine = ["tensorflow", "dask", "ray"]
workload = "cnn"
workers = 2
epochs = 1
data_fraction = 0.5

[[matrix]]
engine = "tensorflow"
workload = "mlp"

[[matrix]]
engine = "spark"
workload = "mlp"
impl = "keras"
"""


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _observation(db: Path, engine: str, workload: str, columns: str) -> dict[str, object]:
    names = [c.strip() for c in columns.split(",")]
    rows = _query(
        db,
        f"SELECT {columns} FROM observations WHERE status = 'ok' AND engine = '{engine}' "
        f"AND workload = '{workload}'",
    )
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0], strict=True))


def _curves(db: Path, engine: str, workload: str) -> dict[int, dict[str, list[float]]]:
    rows = _query(
        db,
        "SELECT c.part, c.name, c.step, c.value FROM curves c JOIN trials t USING (trial_id) "
        f"WHERE t.engine = '{engine}' AND t.workload = '{workload}' ORDER BY part, name, step",
    )
    out: dict[int, dict[str, list[float]]] = {}
    for part, name, _, value in rows:
        out.setdefault(int(part), {}).setdefault(str(name), []).append(float(value))
    return out


JOBS["keras"] = Job(
    partial(run_spec, spec=SPEC, ok_trials=5), "engines", minutes=2.5, needed_by=uses("keras_db")
)


@pytest.fixture(scope="module")
def keras_db(background: Background) -> Path:
    """SPEC's database, run in the background beside the other engine suites' module runs."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("dask")
    pytest.importorskip("ray")
    pytest.importorskip("pyspark")
    return background.result("keras")


CNN_COLUMNS = (
    "seed, workers, epochs, train_s, setup_s, load_s, accuracy, final_loss, retraced, trainers, "
    "workers_used, trainer_overlap_s, trainer_1_accuracy, trainer_2_accuracy, "
    "trainer_accuracy_mean, trainer_accuracy_min, trainer_accuracy_max"
)


@pytest.mark.engine
@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_cnn_trainers_run_in_parallel_in_separate_processes(keras_db: Path, engine: str) -> None:
    row = _observation(keras_db, engine, "cnn", CNN_COLUMNS)
    assert row["trainers"] == row["workers"] == 2, row
    assert row["workers_used"] == 2, row  # two distinct worker processes trained
    assert row["trainer_overlap_s"] > 0, row  # and they were fitting at the same time
    assert row["setup_s"] > 0 and row["load_s"] > 0 and row["train_s"] > 0, row
    assert row["retraced"] == 0, row  # the trainers traced in load, not in the trial
    # `accuracy` is trainer 1's; the per-trainer summary is of the two trainers' accuracies
    first, second = row["trainer_1_accuracy"], row["trainer_2_accuracy"]
    assert row["accuracy"] == first, row
    assert row["trainer_accuracy_mean"] == pytest.approx((first + second) / 2)
    assert (row["trainer_accuracy_min"], row["trainer_accuracy_max"]) == (
        min(first, second),
        max(first, second),
    )
    assert min(first, second) > 0.4, row  # one epoch on half of digits; chance is 0.1
    # one curve set per trainer; each trainer trained its own model from its own seed
    curves = _curves(keras_db, engine, "cnn")
    assert set(curves) == {0, 1}
    for part in curves.values():
        assert set(part) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert all(len(values) == 1 for values in part.values())
    assert curves[0]["loss"] != curves[1]["loss"]


@pytest.mark.engine
@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_trainer_one_trains_what_engine_tensorflow_trains(keras_db: Path, engine: str) -> None:
    """Same configuration, same seed: trainer 1 is engine tensorflow's model, curve for curve."""
    columns = "seed, accuracy, final_loss, final_val_accuracy"
    reference = _observation(keras_db, "tensorflow", "cnn", columns)
    row = _observation(keras_db, engine, "cnn", columns)
    assert row == reference
    assert _curves(keras_db, engine, "cnn")[0] == _curves(keras_db, "tensorflow", "cnn")[0]


SPARK_COLUMNS = (
    "impl, seed, epochs, batch_size, workers, train_s, infer_s, setup_s, load_s, accuracy, "
    "train_accuracy, final_loss, final_val_accuracy, retraced, partitions, train_pid, "
    "driver_pid, task_processes, keras_setups"
)


@pytest.mark.engine
def test_keras_on_spark_trains_in_a_python_worker(keras_db: Path) -> None:
    row = _observation(keras_db, "spark", "mlp", SPARK_COLUMNS)
    assert (row["impl"], row["workers"], row["partitions"]) == ("keras", 1, 1), row
    assert (row["epochs"], row["batch_size"]) == (10, 32), row  # the Keras MLP's defaults
    assert row["train_pid"] != row["driver_pid"], row  # not in the driver
    # one Python worker, kept warm from load on: the fit and the scoring ran there, and no task
    # had to build the model or trace a step function
    assert (row["task_processes"], row["keras_setups"], row["retraced"]) == (1, 0, 0), row
    assert row["setup_s"] > 0 and row["load_s"] > 0, row
    assert row["train_s"] > 0 and row["infer_s"] > 0, row
    assert row["accuracy"] >= 0.90, row  # 002's network, 10 epochs on digits
    assert row["train_accuracy"] >= row["accuracy"] - 0.05, row
    curves = _curves(keras_db, "spark", "mlp")
    assert set(curves) == {0}
    assert len(curves[0]["loss"]) == 10


@pytest.mark.engine
def test_keras_on_spark_trains_what_local_keras_trains(keras_db: Path) -> None:
    """002's comparison is of the same network: Keras on Spark and local Keras (engine
    tensorflow) train the same model from the same seed."""
    columns = "seed, accuracy, train_accuracy, final_loss, final_val_accuracy"
    assert _observation(keras_db, "spark", "mlp", columns) == _observation(
        keras_db, "tensorflow", "mlp", columns
    )
    assert _curves(keras_db, "spark", "mlp") == _curves(keras_db, "tensorflow", "mlp")


SPARK_SCRIPT = """
import json, os, sys
import psutil
from runner.datasets import load_split
from runner.engines import make_session
from runner.workloads import get_workload

if __name__ == "__main__":
    config = get_workload("mlp").resolve(
        {"engine": "spark", "workload": "mlp", "impl": "keras", "epochs": 2, "workers": 2,
         "spark_mode": "standalone", "experiment": "t", "seed": 0}
    )
    session = make_session(config)
    session.start()
    session.load(load_split("digits", seed=0, data_fraction=0.5))
    out = []
    for seed in (7, 8, 7):
        session.train(seed)
        session.predict()
        metrics = session.trial_metrics()
        worker = psutil.Process(int(metrics["train_pid"]))
        out.append({
            "loss": session.trial_history()["loss"],
            "metrics": metrics,
            "driver": os.getpid(),
            "parent": " ".join(worker.parent().cmdline()),
        })
    session.close()
    json.dump(out, sys.stdout)
"""


def _spark_script(_: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SPARK_SCRIPT], capture_output=True, text=True, timeout=300
    )


JOBS["keras-spark-script"] = Job(
    _spark_script,
    "engines",
    minutes=1.5,
    needed_by=lambda item: (
        item.name == "test_keras_on_spark_reuses_one_python_worker_and_reinitialises"
    ),
)


@pytest.mark.engine
def test_keras_on_spark_reuses_one_python_worker_and_reinitialises(
    background: Background,
) -> None:
    """On a two-executor cluster (a runner-started standalone one) Keras still trains in one task
    on one Python worker, forked by pyspark's daemon, and the scoring task goes to that same warm
    worker; every trial starts afresh from its seed."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("pyspark")
    proc = background.result("keras-spark-script")
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, other, again = json.loads(proc.stdout)
    for trial in (first, other, again):
        assert trial["metrics"]["driver_pid"] == trial["driver"]
        assert trial["metrics"]["train_pid"] != trial["driver"]
        assert "pyspark.daemon" in trial["parent"], trial
        assert trial["metrics"]["keras_setups"] == 0, trial
        assert trial["metrics"]["task_processes"] == 1, trial
        assert trial["metrics"]["executors"] == 2, trial
    assert len({t["metrics"]["train_pid"] for t in (first, other, again)}) == 1
    assert again["loss"] == first["loss"] and other["loss"] != first["loss"]


def test_trainer_seeds() -> None:
    assert [trainer_seed(11, i) for i in (1, 2, 3)] == [
        11,
        11 + TRAINER_SEED_STRIDE,
        11 + 2 * TRAINER_SEED_STRIDE,
    ]
    with pytest.raises(ValueError, match="numbered from 1"):
        trainer_seed(11, 0)


def _fit(where: str, started: float, finished: float, loss: float) -> FitResult:
    history = {"loss": [1.0, loss], "val_accuracy": [0.5, 0.75]}
    return FitResult(0, history, where, started, finished, retraced=1)


def test_trainers_metrics_by_hand() -> None:
    fits = [_fit("h:1", 10.0, 14.0, 0.25), _fit("h:2", 11.0, 13.5, 0.5), _fit("h:1", 12, 20, 0.1)]
    y = [0, 1, 2, 3]
    predictions = [[0, 1, 2, 3], [0, 1, 0, 0], [3, 3, 3, 3]]
    out = trainers_metrics(fits, predictions, y)
    assert out == {
        "trainers": 3.0,
        "trainer_1_accuracy": 1.0,
        "trainer_2_accuracy": 0.5,
        "trainer_3_accuracy": 0.25,
        "trainer_accuracy_mean": pytest.approx(1.75 / 3),
        "trainer_accuracy_min": 0.25,
        "trainer_accuracy_max": 1.0,
        "workers_used": 2.0,  # trainers 1 and 3 shared a process
        "trainer_overlap_s": 1.5,  # all three fitting from 12.0 to 13.5
        "final_loss": 0.25,  # trainer 1's
        "final_val_accuracy": 0.75,
        "retraced": 3.0,
    }
    apart = [_fit("h:1", 0.0, 1.0, 0.2), _fit("h:2", 2.0, 3.0, 0.2)]
    assert trainers_metrics(apart, [y, y], y)["trainer_overlap_s"] == 0.0
