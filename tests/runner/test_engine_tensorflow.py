"""The ``tensorflow`` engine for real: 000's CNN and 002's Keras MLP on digits, a
MirroredStrategy over two logical CPU devices, and what is refused before anything starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from tests.conftest import assert_user_error, run_cli, run_spec
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
"""

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


def _observations(db: Path) -> list[dict[str, object]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            f"SELECT {', '.join(COLUMNS)} FROM observations WHERE status = 'ok' "
            "ORDER BY workload, strategy, repetition"
        ).fetchall()
    finally:
        con.close()
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows]


@pytest.fixture(scope="module")
def tf_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_spec(tmp_path_factory.mktemp("tf"), SPEC, ok_trials=6)


@pytest.mark.engine
def test_cnn_and_keras_mlp_on_digits(tf_db: Path) -> None:
    rows = _observations(tf_db)
    cnn = [r for r in rows if r["workload"] == "cnn" and r["strategy"] == "none"]
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


RESET_SCRIPT = """
import json, sys
from runner.datasets import load_split
from runner.engines import make_session

config = {"engine": "tensorflow", "workload": "cnn", "epochs": 2, "batch_size": 32,
          "learning_rate": 0.001, "validation_split": 0.1, "strategy": "none"}
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


@pytest.mark.engine
def test_every_trial_starts_afresh_from_its_seed() -> None:
    """Weights and the optimizer's state are reset: a seed trains the same model whatever ran
    before it, and another seed trains another one."""
    proc = subprocess.run(
        [sys.executable, "-c", RESET_SCRIPT], capture_output=True, text=True, timeout=300
    )
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
            "unknown strategy 'tpu'; use one of none, mirrored",
        ),
        (
            '[[matrix]]\nengine = "tensorflow"\nworkload = "mlp"\nstrategy = "multiworker"\n',
            "strategy 'multiworker' is not supported yet",
        ),
        (
            '[[matrix]]\nengine = "tensorflow"\nworkload = "cnn"\nbatch_size = 0\n',
            "batch_size must be an integer >= 1, got 0",
        ),
        (
            '[[matrix]]\nengine = "dask"\nworkload = "cnn"\n',
            "engine dask cannot run workload 'cnn'; it supports: knn, mlp",
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
    body = '[[matrix]]\nengine = "tensorflow"\nworkload = "cnn"\n'
    line = _refused(tmp_path, body, "--dataset", "mnist", "--data-dir", folder)
    assert "cnn: dataset mnist has 7x9 images (63 features)" in line
    assert "square images" in line
