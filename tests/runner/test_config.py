"""runner.config.Config: one typed, frozen configuration, built once from what the spec stores."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from runner.config import FACTOR_DEFAULTS, Config
from runner.errors import RunnerError
from runner.spec import BASE_DEFAULTS, FACTORS, builtin_experiments, experiment_info
from runner.spec import load_experiment as _load

BASE: dict[str, Any] = {"engine": "local", "workload": "knn", "experiment": "t", "seed": 0}


def _every_builtin_config() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name in builtin_experiments():
        variants = [False, True] if experiment_info(name).has_quick else [False]
        for quick in variants:
            label = f"{name}{' --quick' if quick else ''}"
            out += [(label, c) for c in _load(name, quick=quick).configs]
    return out


def test_every_builtin_configuration_round_trips() -> None:
    configs = _every_builtin_config()
    assert len(configs) > 50  # every built-in experiment and its [quick] variant
    for label, stored in configs:
        config = Config.from_mapping(stored)
        assert dict(config) == stored, label
        assert config.to_dict() == stored, label
        assert len(config) == len(stored), label
        # the typed fields are the stored values, with their types
        assert config.workers == stored["workers"] and type(config.workers) is int
        assert type(config.threads_per_worker) is int and type(config.seed) is int
        assert type(config.data_fraction) is float
        assert config.data_fraction == stored["data_fraction"]
        assert config.epochs == stored.get("epochs") and config.batch_size == stored.get(
            "batch_size"
        )
        assert Config.from_mapping(dict(config)) == config, label
        assert hash(Config.from_mapping(dict(config))) == hash(config), label


def test_the_factors_are_typed_fields_and_defaults_agree_with_the_spec() -> None:
    names = {f.name for f in dataclasses.fields(Config)}
    assert set(FACTORS) <= names and {"seed", "experiment"} <= names
    # the defaults of the factor fields are the ones the spec starts every configuration from
    assert FACTOR_DEFAULTS == BASE_DEFAULTS
    config = Config.from_mapping(BASE)
    assert dict(config) == {**BASE, **BASE_DEFAULTS}
    assert config.memory_gb is None and "memory_gb" not in config
    assert config.get("memory_gb") is None and config.params == {}


def test_the_rest_of_the_configuration_is_a_read_only_mapping() -> None:
    stored = {**BASE, "hidden": [100, 50], "estimator": {"params": {"a": 1}}, "k": 3}
    config = Config.from_mapping(stored)
    assert config["k"] == 3 and config.get("hidden") == [100, 50]
    assert config.params == {"hidden": [100, 50], "estimator": {"params": {"a": 1}}, "k": 3}
    # changing what was given, or what comes out, changes nothing inside
    stored["hidden"].append(7)
    config["hidden"].append(9)
    config.params["estimator"]["params"]["a"] = 2
    config.to_dict()["k"] = 4
    assert config["hidden"] == [100, 50] and config["estimator"] == {"params": {"a": 1}}
    assert config["k"] == 3
    with pytest.raises(TypeError):
        config["k"] = 4  # type: ignore[index]
    with pytest.raises(TypeError):
        config.params["k"] = 4  # type: ignore[index]


def test_mutation_raises_and_equal_configurations_hash_alike() -> None:
    config = Config.from_mapping({**BASE, "hidden": [100], "learning_rate": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.params = {}  # type: ignore[misc]
    same = Config.from_mapping({**BASE, "hidden": [100], "learning_rate": 1.0})
    assert same == config and hash(same) == hash(config)  # 1 == 1.0, as in a dict
    assert len({config, same, config.replace(workers=2)}) == 2
    assert pickle.loads(pickle.dumps(config)) == config


def test_replace_checks_the_new_values() -> None:
    config = Config.from_mapping(BASE)
    single = config.replace(threads_per_worker=1, k=7)
    assert single.threads_per_worker == 1 and single["k"] == 7 and "k" not in config
    with pytest.raises(RunnerError, match="threads_per_worker must be an integer >= 1"):
        config.replace(threads_per_worker=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"engine": None}, "configuration has no engine"),
        ({"seed": None}, "configuration has no seed"),
        ({"experiment": None}, "configuration has no experiment"),
        ({"workers": 0}, "workers must be an integer >= 1, got 0"),
        ({"workers": 2.0}, "workers must be an integer >= 1, got 2.0"),
        ({"threads_per_worker": True}, "threads_per_worker must be an integer >= 1, got True"),
        ({"threads_per_worker": None}, "threads_per_worker must be an integer >= 1, got None"),
        ({"data_fraction": 1.5}, "data_fraction must be a fraction in (0, 1], got 1.5"),
        ({"data_fraction": "0.5"}, "data_fraction must be a finite number > 0, got '0.5'"),
        ({"memory_gb": 0}, "memory_gb must be a finite number > 0, got 0"),
        ({"batch_size": 3.5}, "batch_size must be an integer >= 1, got 3.5"),
        ({"epochs": -1}, "epochs must be an integer >= 1, got -1"),
        ({"seed": "1"}, "seed must be an integer >= 0, got '1'"),
        ({"dataset": 3}, "dataset must be a non-empty string, got 3"),
        ({"workload": ""}, "workload must be a non-empty string, got ''"),
    ],
)
def test_a_missing_or_ill_typed_factor_is_one_line(change: dict[str, Any], message: str) -> None:
    given = {**BASE, **change}
    given = {k: v for k, v in given.items() if not (k in change and v is None and k in BASE)}
    if change.get("threads_per_worker", 1) is None:
        given["threads_per_worker"] = None  # present and None: ill-typed, not left out
    with pytest.raises(RunnerError) as info:
        Config.from_mapping(given)
    text = str(info.value)
    assert "\n" not in text
    assert message in text, text


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(RunnerError, match="configuration must be a mapping"):
        Config.from_mapping([("engine", "local")])  # type: ignore[arg-type]


def test_the_worker_refuses_an_ill_typed_configuration_before_any_engine_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from multiprocessing import Pipe

    from runner.worker import config_worker

    monkeypatch.setenv("PYTHONWARNINGS", "ignore")  # what the worker sets, put back afterwards
    parent, child = Pipe()
    config_worker(child, {**BASE, "workers": "2"})
    message = parent.recv()
    assert message["kind"] == "setup_failed"
    first = message["error"].splitlines()[0]
    assert first == "RunnerError: configuration: workers must be an integer >= 1, got '2'"
    assert message["setup_s"] is None and message["load_s"] is None


def test_sessions_and_workloads_fill_no_default_again() -> None:
    """The factor fields come from the Config and the workload parameters from resolve: no
    module a trial runs in re-fills one (``config.get("workers") or 1``, ``get("k", 5)``)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "runner"
    paths = [root / "worker.py"]
    for package in ("engines", "workloads", "preprocess"):
        paths += sorted((root / package).glob("*.py"))
    numeric = re.compile(r'get\("[a-z_]*"\) or [0-9]|get\("[a-z_]*", [0-9]')
    factors = re.compile(r'get\("(workers|threads_per_worker|seed|data_fraction|dataset)"')
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(root.parent)}:{number}: {line.strip()}"
            assert not numeric.search(line), where
            assert not factors.search(line), where
