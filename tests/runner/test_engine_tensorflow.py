"""The ``tensorflow`` engine for real: 000's CNN and 002's Keras MLP on digits, a
MirroredStrategy over two logical CPU devices, a MultiWorkerMirroredStrategy over two TensorFlow
processes (and what happens when one dies), the per-epoch curves in the store, and what is refused
before anything starts."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import psutil
import pytest

from runner.errors import RunnerError
from tests.conftest import JOBS, Background, Job, assert_user_error, remember_run, run_cli, uses
from tests.runner.test_datasets import write_dataset

pytest.importorskip("tensorflow")

SPEC = """\
name = "tf"
n = 2
warmup = 0
seed = 5
timeout = 300

[defaults]
dataset = "digits"

[[matrix]]
engine = "tensorflow"
workload = "cnn"

[[matrix]]
engine = "tensorflow"
workload = "mlp"

[[matrix]]
engine = "tensorflow"
workload = "cnn"
strategy = "mirrored"
workers = 2
epochs = 1
data_fraction = 0.3

[[matrix]]
engine = "tensorflow"
workload = "cnn"
strategy = "multiworker"
workers = 2
epochs = 2
data_fraction = 0.5
"""
#: 2 trials for each of the 4 configurations
OK_TRIALS = 8

COLUMNS = (
    "workload",
    "strategy",
    "workers",
    "repetition",
    "seed",
    "epochs",
    "batch_size",
    "setup_s",
    "load_s",
    "train_s",
    "accuracy",
    "train_accuracy",
    "final_loss",
    "final_val_accuracy",
    "replicas",
    "retraced",
)


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _observations(db: Path) -> list[dict[str, object]]:
    rows = _query(
        db,
        f"SELECT {', '.join(COLUMNS)} FROM observations WHERE status = 'ok' "
        "ORDER BY workload, strategy, epochs, repetition",
    )
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows]


def _spec_run(tmp: Path) -> tuple[Path, str]:
    """`runner trials` on SPEC: the database, and what the command wrote on stderr."""
    spec = tmp / "spec.toml"
    spec.write_text(SPEC, encoding="utf-8")
    db = tmp / "results.duckdb"
    proc = run_cli("runner", "trials", "-e", spec, "--db", db, "--quiet", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{OK_TRIALS} ok trials, 0 failed" in proc.stdout
    return remember_run(db), proc.stderr


JOBS["tensorflow"] = Job(_spec_run, "engines", minutes=2.5, needed_by=uses("tf_run"))


@pytest.fixture(scope="module")
def tf_run(background: Background) -> tuple[Path, str]:
    """_spec_run, in the background beside the other engine suites' module runs."""
    return background.result("tensorflow")


@pytest.fixture(scope="module")
def tf_db(tf_run: tuple[Path, str]) -> Path:
    return tf_run[0]


@pytest.mark.engine
def test_cnn_and_keras_mlp_on_digits(tf_db: Path) -> None:
    rows = _observations(tf_db)
    cnn = [
        r for r in rows if r["workload"] == "cnn" and r["strategy"] == "none" and r["epochs"] == 10
    ]
    mlp = [r for r in rows if r["workload"] == "mlp"]
    assert len(cnn) == len(mlp) == 2
    for row in cnn + mlp:
        assert row["setup_s"] > 0 and row["load_s"] > 0 and row["train_s"] > 0, row
        assert row["replicas"] == 1, row
        # load traced train, test and predict: no trial traces anything again
        assert row["retraced"] == 0, row
        assert 0 <= row["final_val_accuracy"] <= 1 and row["final_loss"] > 0, row
    # the stored configuration says what ran
    assert {(r["epochs"], r["batch_size"]) for r in cnn} == {(10, 32)}
    for row in cnn:
        assert row["accuracy"] >= 0.95, row  # 000's CNN, 10 epochs
    for row in mlp:
        assert row["accuracy"] >= 0.90, row  # 002's network, as the scratch one
    # every trial starts from its own seed: two repetitions, two different models
    assert cnn[0]["seed"] != cnn[1]["seed"]
    assert cnn[0]["final_loss"] != cnn[1]["final_loss"]


@pytest.mark.engine
def test_mirrored_strategy_runs_two_replicas(tf_db: Path) -> None:
    rows = [r for r in _observations(tf_db) if r["strategy"] == "mirrored"]
    assert len(rows) == 2
    for row in rows:
        assert row["workers"] == 2 and row["replicas"] == 2, row
        assert row["retraced"] == 0, row
        assert row["accuracy"] > 0.5, row  # one epoch on 30% of digits still learns


@pytest.mark.engine
def test_multiworker_strategy_trains_over_two_processes(tf_db: Path) -> None:
    rows = [r for r in _observations(tf_db) if r["strategy"] == "multiworker"]
    assert len(rows) == 2
    for row in rows:
        assert row["workers"] == 2 and row["replicas"] == 2, row
        assert (row["epochs"], row["batch_size"]) == (2, 32), row
        assert row["setup_s"] > 0 and row["load_s"] > 0 and row["train_s"] > 0, row
        assert row["retraced"] == 0, row  # load traced everything, in every process
        assert row["accuracy"] > 0.5, row  # two epochs on half of digits learn
    assert rows[0]["final_loss"] != rows[1]["final_loss"]  # two seeds, two models


@pytest.mark.engine
def test_tensorflow_says_nothing_on_the_terminal(tf_run: tuple[Path, str]) -> None:
    """TensorFlow's native logging (oneDNN notices, absl warnings, gRPC servers of the
    multiworker processes) and Python warnings stay off stderr."""
    assert tf_run[1].strip() == ""


@pytest.mark.engine
def test_every_trial_stores_its_per_epoch_curves(tf_db: Path) -> None:
    """One curve point per epoch for loss, accuracy, val_loss and val_accuracy (validation_split
    0.1 by default), for every ok trial of every strategy; the last loss is final_loss."""
    trials = _query(
        tf_db,
        "SELECT trial_id, workload, strategy, epochs, final_loss, final_val_accuracy "
        "FROM observations WHERE status = 'ok'",
    )
    assert len(trials) == OK_TRIALS
    points = _query(tf_db, "SELECT trial_id, part, name, step, value FROM curves")
    curves: dict[object, dict[str, dict[int, float]]] = {}
    for trial_id, part, name, step, value in points:
        assert part == 0
        curves.setdefault(trial_id, {}).setdefault(str(name), {})[int(step)] = float(value)
    assert set(curves) == {t[0] for t in trials}
    names = {"loss", "accuracy", "val_loss", "val_accuracy"}
    for trial_id, workload, strategy, epochs, final_loss, final_val_accuracy in trials:
        trial = curves[trial_id]
        assert set(trial) == names, (workload, strategy, trial)
        for name, values in trial.items():
            assert sorted(values) == list(range(1, int(epochs) + 1)), (strategy, name, values)
            assert all(math.isfinite(v) for v in values.values())
        assert trial["loss"][int(epochs)] == final_loss, (workload, strategy)
        assert trial["val_accuracy"][int(epochs)] == final_val_accuracy, (workload, strategy)
        for name in ("accuracy", "val_accuracy"):
            assert all(0 <= v <= 1 for v in trial[name].values())
    # every strategy's trials, at 10 (none), 1 (mirrored) and 2 (multiworker) epochs
    assert {(t[2], t[3]) for t in trials if t[1] == "cnn"} == {
        ("none", 10),
        ("mirrored", 1),
        ("multiworker", 2),
    }


def _multiworker_session(epochs: int) -> Any:
    from runner.datasets import load_split
    from runner.engines import make_session

    config = {
        "engine": "tensorflow",
        "workload": "cnn",
        "experiment": "t",
        "seed": 0,
        "strategy": "multiworker",
        "workers": 2,
        "epochs": epochs,
        "batch_size": 32,
        "learning_rate": 0.001,
        "validation_split": 0.1,
    }
    session = make_session(config)
    try:
        session.start()
        session.load(load_split("digits", seed=0, data_fraction=0.3))
    except BaseException:
        session.close()
        raise
    return session


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.engine
def test_multiworker_processes_die_cleanly() -> None:
    """The TensorFlow processes are children of the process that started the session (the
    configuration worker, whose tree the trial loop kills on --timeout). One killed in mid-trial
    fails that trial at once with a clear error, not a hang; the cluster is started afresh for
    the next trial; close leaves no TensorFlow process behind."""
    epochs = 30
    session = _multiworker_session(epochs)
    cluster = session.trainer
    first: list[int] = cluster.pids()
    second: list[int] = []
    try:
        assert len(first) == 2
        assert {p.pid for p in psutil.Process().children()} >= set(first)
        failure: list[BaseException] = []

        def train() -> None:
            try:
                session.train(1)
            except RunnerError as exc:
                failure.append(exc)

        trial = threading.Thread(target=train)
        trial.start()
        time.sleep(1.5)  # 30 epochs take far longer: training is under way
        assert trial.is_alive()
        psutil.Process(first[1]).kill()
        trial.join(180)  # the failed trial starts the cluster again before it returns
        assert not trial.is_alive()
        assert len(failure) == 1
        assert str(failure[0]).startswith(
            f"tensorflow multiworker: worker 1 (pid {first[1]}) died during training (exit code -9)"
        ), failure[0]
        assert not any(_alive(pid) for pid in first)  # the chief, stuck in a collective, too
        second = cluster.pids()
        assert len(second) == 2 and not set(second) & set(first)
        session.train(2)  # the next trial runs on the new cluster
        assert len(session.trial_history()["loss"]) == epochs
        assert session.trial_metrics()["replicas"] == 2
        assert len(session.predict()) == 360
    finally:
        session.close()
    assert not any(_alive(pid) for pid in first + second)
    assert cluster.pids() == []


RESET_SCRIPT = """
import json, sys
from runner.datasets import load_split
from runner.engines import make_session

config = {"engine": "tensorflow", "workload": "cnn", "epochs": 2, "batch_size": 32,
          "learning_rate": 0.001, "validation_split": 0.1, "strategy": "none",
          "experiment": "t", "seed": 0}
session = make_session(config)
session.start()
session.load(load_split("digits", seed=0, data_fraction=0.5))
out = []
for seed in (7, 8, 7):
    session.train(seed)
    out.append({"history": session.trial_history(), **session.trial_metrics()})
session.close()
json.dump(out, sys.stdout)
"""


def _reset_script(_: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RESET_SCRIPT], capture_output=True, text=True, timeout=300
    )


JOBS["tensorflow-reset"] = Job(
    _reset_script,
    "engines",
    minutes=0.7,
    needed_by=lambda item: item.name == "test_every_trial_starts_afresh_from_its_seed",
)


@pytest.mark.engine
def test_every_trial_starts_afresh_from_its_seed(background: Background) -> None:
    """Weights and the optimizer's state are reset: a seed trains the same model whatever ran
    before it, and another seed trains another one."""
    proc = background.result("tensorflow-reset")
    assert proc.returncode == 0, proc.stderr
    first, other, again = json.loads(proc.stdout)
    assert set(first["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(curve) == 2 for curve in first["history"].values())
    assert again == first
    assert other["history"]["loss"] != first["history"]["loss"]
    assert first["retraced"] == other["retraced"] == again["retraced"] == 0


def _spec(tmp_path: Path, body: str) -> Path:
    spec = tmp_path / "bad.toml"
    spec.write_text(f'name = "bad"\nn = 1\n{body}', encoding="utf-8")
    return spec


def _refused(tmp_path: Path, body: str, *extra: str) -> str:
    db = tmp_path / "results.duckdb"
    proc = run_cli("runner", "trials", "-e", _spec(tmp_path, body), "--db", db, *extra)
    line = assert_user_error(proc)
    assert not db.exists()
    return line


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[matrix]]\nengine = "tensorflow"\nworkload = "cnn"\nstrategy = "tpu"\n',
            "unknown strategy 'tpu'; use one of none, mirrored, multiworker",
        ),
        (
            '[[matrix]]\nengine = "tensorflow"\nworkload = "mlp"\nstrategy = "multiworker"\n',
            "strategy multiworker runs `workers` TensorFlow processes and needs workers >= 2, "
            "got 1; raise workers or use strategy none",
        ),
        (
            '[[matrix]]\nengine = "tensorflow"\nworkload = "cnn"\nbatch_size = 0\n',
            "batch_size must be an integer >= 1, got 0",
        ),
        (
            '[[matrix]]\nengine = "tensorflow"\nworkload = "knn"\n',
            "engine tensorflow cannot run workload 'knn'; it supports: cnn, mlp",
        ),
        (
            '[[matrix]]\nengine = "dask"\nworkload = "mlp"\nstrategy = "mirrored"\n',
            "strategy applies to engine tensorflow only, not dask",
        ),
        (
            '[[matrix]]\nengine = "dask"\nworkload = "mlp"\nimpl = "keras"\n',
            "impl 'keras' is not supported; available: sklearn, scratch",
        ),
        (
            '[[matrix]]\nengine = "tensorflow"\nworkload = "mlp"\nimpl = "sklearn"\n',
            "impl 'sklearn' is not supported; available: keras",
        ),
        (
            '[[matrix]]\nengine = "tensorflow"\nworkload = "cnn"\nvalidation_split = 1.5\n',
            "validation_split must be a fraction in [0, 1), got 1.5",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_starts(
    tmp_path: Path, body: str, message: str
) -> None:
    assert message in _refused(tmp_path, body)


def test_cnn_on_images_that_are_not_square(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = write_dataset(
        tmp_path / "idx",
        {
            "train-images-idx3-ubyte": rng.integers(0, 256, (8, 7, 9), dtype=np.uint8),
            "train-labels-idx1-ubyte": np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=np.uint8),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 7, 9), dtype=np.uint8),
            "t10k-labels-idx1-ubyte": np.array([1, 0, 1, 0], dtype=np.uint8),
        },
    )
    body = '[[matrix]]\nengine = "tensorflow"\nworkload = "cnn"\ndataset = "mnist"\n'
    line = _refused(tmp_path, body, "--data-dir", folder)
    assert "cnn: dataset mnist has 7x9 images (63 features)" in line
    assert "square images" in line


def _big_batch_run(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    spec = tmp_path / "big-batch.toml"
    spec.write_text(
        'name = "big-batch"\nn = 1\nwarmup = 0\nseed = 0\ntimeout = 300\n\n[[matrix]]\n'
        'engine = "tensorflow"\nworkload = "cnn"\nstrategy = "mirrored"\nworkers = 2\n'
        "epochs = 1\nbatch_size = 256\n"
    )
    return run_cli("runner", "trials", "-e", spec, "--db", tmp_path / "r.duckdb", "-q")


JOBS["tensorflow-big-batch"] = Job(
    _big_batch_run,
    "engines",
    minutes=0.7,
    needed_by=lambda item: item.name == "test_mirrored_batch_larger_than_the_validation_rows",
)


@pytest.mark.engine
def test_mirrored_batch_larger_than_the_validation_rows(background: Background) -> None:
    """A batch that holds all validation rows (256 > 144 of digits' 1437) splits them evenly
    over the two replicas; with 143 rows Keras failed to trace (paper 003's Table 3 grid)."""
    proc = background.result("tensorflow-big-batch")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 ok trials, 0 failed" in proc.stdout, proc.stdout
