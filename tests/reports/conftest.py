"""A real results database, written through the runner's store API, for the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runner.store import TrialRecord, open_store

HOSTILE = r"_ % & $ # { } ~ ^ \ \input{/etc/passwd} <script>alert(1)</script>"

#: (engine, workload, workers) -> mean train_s of the generated trials
CONFIGS = {
    ("local", "knn", 1): 0.21,
    ("dask", "knn", 1): 0.34,
    ("dask", "knn", 2): 0.29,
    ("local", "mlp", 1): 0.62,
    ("dask", "mlp", 1): 0.71,
    ("dask", "mlp", 2): 0.55,
}
N_PER_CONFIG = 5


def make_db(
    path: Path,
    *,
    engine_names: dict[str, str] | None = None,
    workload_names: dict[str, str] | None = None,
    experiment: str = "default",
    env: dict | None = None,
    seed: int = 20240611,
) -> list[dict]:
    """Write ``N_PER_CONFIG`` ok trials per configuration plus one warm-up and one failed trial;
    return the rows written (for independent recomputation)."""
    engine_names = engine_names or {}
    workload_names = workload_names or {}
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    store = open_store(path)
    try:
        run = store.begin_run(
            source="measured",
            argv=["runner", "trials", "--n", str(N_PER_CONFIG)],
            env=env or {"python": "3.11", "hostname": "h", "packages": {"numpy": "2.1"}},
        )
        records = []
        for (engine, workload, workers), mean in CONFIGS.items():
            for rep in range(N_PER_CONFIG + 1):
                train = float(mean + rng.normal(0, 0.03))
                values = {
                    "experiment": experiment,
                    "engine": engine_names.get(engine, engine),
                    "workload": workload_names.get(workload, workload),
                    "dataset": "digits",
                    "workers": workers,
                    "threads_per_worker": 1,
                    "warmup": rep == 0,
                    "repetition": rep,
                    "train_s": train,
                    "wall_s": train + 0.1 + float(rng.uniform(0, 0.02)),
                }
                records.append(
                    TrialRecord(
                        run_id=run,
                        status="ok",
                        values=values,
                        metrics={"accuracy": float(rng.uniform(0.9, 1.0))},
                    )
                )
                if rep > 0:
                    rows.append(values)
        records.append(
            TrialRecord(
                run_id=run,
                status="failed",
                values={
                    "experiment": experiment,
                    "engine": engine_names.get("dask", "dask"),
                    "workload": workload_names.get("knn", "knn"),
                    "dataset": "digits",
                    "workers": 2,
                    "threads_per_worker": 1,
                    "warmup": False,
                    "repetition": 99,
                    "error": "boom",
                },
            )
        )
        store.append_trials(records)
        store.finish_run(run)
    finally:
        store.close()
    return rows


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, list[dict]]:
    path = tmp_path / "results.duckdb"
    return path, make_db(path)


@pytest.fixture
def hostile_db(tmp_path: Path) -> tuple[Path, list[dict]]:
    path = tmp_path / "hostile.duckdb"
    rows = make_db(
        path,
        engine_names={"dask": "dask" + HOSTILE},
        workload_names={"knn": "knn" + HOSTILE},
        experiment="exp" + HOSTILE,
        env={"python": "3.11", "hostname": HOSTILE, HOSTILE.replace(" ", ""): "key"},
    )
    return path, rows
