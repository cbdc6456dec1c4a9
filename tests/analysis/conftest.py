"""Test databases built through the real store API (no mocks)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runner.store import TrialRecord, open_store

#: Three worker counts with different means; float64 draws from a fixed seed.
RNG_SEED = 20240517


def write_db(path: Path, trials: Iterable[dict[str, Any]], source: str = "import:test") -> Path:
    """Append ``trials`` (dicts of trial columns plus optional ``status``/``metrics``)."""
    store = open_store(path)
    try:
        run = store.begin_run(source=source, argv=["test"], env={"python": "3.11"})
        records = []
        for t in trials:
            t = dict(t)
            status = t.pop("status", "ok")
            metrics = t.pop("metrics", {})
            records.append(TrialRecord(run_id=run, status=status, values=t, metrics=metrics))
        store.append_trials(records)
        store.finish_run(run)
    finally:
        store.close()
    return path


def trials_for(
    groups: dict[Any, np.ndarray], *, column: str = "workers", metric: str = "train_s", **fixed
) -> list[dict[str, Any]]:
    out = []
    for level, values in groups.items():
        for i, v in enumerate(values):
            out.append(
                {
                    "engine": "dask",
                    "workload": "knn",
                    "dataset": "digits",
                    "threads_per_worker": 1,
                    "warmup": False,
                    "repetition": i,
                    **fixed,
                    column: level,
                    metric: float(v),
                }
            )
    return out


def noise_trials(level_col: str = "workers") -> list[dict[str, Any]]:
    """Warm-up and failed/timeout trials with absurd timings: must never reach a statistic."""
    base = {"engine": "dask", "workload": "knn", "dataset": "digits", "threads_per_worker": 1}
    return [
        {**base, level_col: 1, "warmup": True, "train_s": 999.0, "wall_s": 999.0},
        {**base, level_col: 2, "warmup": True, "train_s": 999.0, "wall_s": 999.0},
        {**base, level_col: 4, "warmup": True, "train_s": -999.0, "wall_s": 999.0},
        {**base, level_col: 2, "warmup": False, "status": "failed", "train_s": 555.0},
        {**base, level_col: 4, "warmup": False, "status": "timeout", "wall_s": 60.0},
        {**base, level_col: 4, "warmup": False, "status": "failed"},
        # a warm-up that failed: counted nowhere by default
        {**base, level_col: 1, "warmup": True, "status": "failed"},
    ]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


@pytest.fixture
def groups(rng: np.random.Generator) -> dict[int, np.ndarray]:
    """train_s per worker count: unequal sizes and variances."""
    return {
        1: rng.normal(4.0, 0.30, 12),
        2: rng.normal(2.6, 0.20, 9),
        4: rng.normal(2.1, 0.45, 15),
    }


@pytest.fixture
def db(tmp_path: Path, groups: dict[int, np.ndarray], rng: np.random.Generator) -> Path:
    trials = trials_for(groups)
    for t in trials:
        t["wall_s"] = t["train_s"] + float(rng.uniform(0.5, 1.0))
        t["metrics"] = {"accuracy": float(rng.uniform(0.9, 1.0))}
        t["params"] = {"k": 5, "weights": "uniform"}
    return write_db(tmp_path / "r.duckdb", [*trials, *noise_trials()])


@pytest.fixture
def make_db(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(trials: Iterable[dict[str, Any]], name: str | None = None) -> Path:
        return write_db(tmp_path / (name or f"db{next(counter)}.duckdb"), trials)

    return make


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Helpers as fixtures: tests/ has no __init__.py, so test modules cannot import conftest.
@pytest.fixture(name="trials_for")
def _trials_for() -> Callable[..., list[dict[str, Any]]]:
    return trials_for


@pytest.fixture(name="file_hash")
def _file_hash() -> Callable[[Path], str]:
    return file_hash
