"""Experiment specs: expansion, overrides and validation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.errors import RunnerError
from runner.spec import config_id, load_experiment


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return str(path)


def test_default_experiment_expands_to_local_and_dask_grid() -> None:
    exp = load_experiment("default")
    cells = {(c["engine"], c["workload"], c["workers"]) for c in exp.configs}
    assert cells == {
        ("local", "knn", 1),
        ("local", "mlp", 1),
        ("dask", "knn", 1),
        ("dask", "knn", 2),
        ("dask", "mlp", 1),
        ("dask", "mlp", 2),
    }
    assert exp.n == 10 and exp.warmup == 1
    knn = next(c for c in exp.configs if c["workload"] == "knn")
    assert knn["k"] == 5 and knn["dataset"] == "digits"


def test_options_override_spec() -> None:
    exp = load_experiment("default", engines=["dask"], workloads=["knn"], workers=[1, 2, 3], n=3)
    assert [c["workers"] for c in exp.configs] == [1, 2, 3]
    assert exp.n == 3
    # local stays at one worker when --workers is given for the distributed engines
    exp = load_experiment("default", workers=[2])
    assert {c["workers"] for c in exp.configs if c["engine"] == "local"} == {1}


def test_lists_cross_and_list_params_stay_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[matrix]]
engine = "local"
workload = "mlp"
hidden = [[10], [20, 10]]
epochs = [5, 10]
""",
    )
    exp = load_experiment(path)
    assert sorted((tuple(c["hidden"]), c["epochs"]) for c in exp.configs) == [
        ((10,), 5),
        ((10,), 10),
        ((20, 10), 5),
        ((20, 10), 10),
    ]
    assert len({config_id(c) for c in exp.configs}) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[matrix]]\nengine = "spork"\nworkload = "knn"\n', "unknown engine 'spork'"),
        ('[[matrix]]\nengine = "local"\nworkload = "svm"\n', "unknown workload 'svm'"),
        ('[[matrix]]\nengine = "local"\nworkload = "knn"\nworkers = 2\n', "workers=1 only"),
        ('[[matrix]]\nengine = "dask"\nworkload = "knn"\nworkers = 0\n', "workers must be"),
        ('[[matrix]]\nengine = "local"\nworkload = "knn"\nk = 0\n', "k must be"),
        ('[[matrix]]\nengine = "local"\nworkload = "mlp"\nimpl = "keras"\n', "impl 'keras'"),
        ('[[matrix]]\nengine = "local"\nworkload = "knn"\ndataset = "cifar"\n', "unknown dataset"),
        ('[[matrix]]\nengine = "local"\nworkload = "knn"\ndata_fraction = 2\n', "data_fraction"),
        ('nn = 3\n[[matrix]]\nengine = "local"\nworkload = "knn"\n', "unknown key(s) nn"),
        ("n = 3\n", "no [[matrix]]"),
        (
            '[[matrix]]\nengine = "spark"\nworkload = "mlp"\nactivation = "relu"\n',
            "always logistic",
        ),
        ("[[matrix\n", "not valid TOML"),
    ],
)
def test_bad_specs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RunnerError, match=re.escape(message)):
        load_experiment(write(tmp_path, text))


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="--n must be at least 1"):
        load_experiment("default", n=0)
    with pytest.raises(RunnerError, match="--n must be at least 1"):
        load_experiment("default", n=-3)
    with pytest.raises(RunnerError, match="unknown experiment 'nope'"):
        load_experiment("nope")
    with pytest.raises(RunnerError, match="--timeout must be a positive"):
        load_experiment("default", timeout=0)
    only_local = write(tmp_path, '[[matrix]]\nengine = "local"\nworkload = "knn"\n')
    with pytest.raises(RunnerError, match="no configuration with engine dask"):
        load_experiment(only_local, engines=["dask"])
