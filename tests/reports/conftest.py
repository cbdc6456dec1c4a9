"""A real results database, written through the runner's store API, for the report tests."""

from __future__ import annotations

import math
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


PAPERS_DIR = Path(__file__).parent / "data" / "papers"


def make_paper_db(path: Path, *, published: bool = True, seed: int = 5) -> list[dict]:
    """Paper 000's published tables (``runner import published``) plus measured trials of
    experiment paper000: KNN for k = 1..3 on local, KNN and the CNN on Dask and Ray at 2 and 4
    workers (4 trials each, with resource samples, the CNN with per-epoch curves). Returns the
    measured rows."""
    from runner.published import import_published

    if published:
        import_published(path, "000")
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    with open_store(path) as store:
        run = store.begin_run(
            source="measured",
            argv=["runner", "trials", "-e", "000"],
            env={"python": "3.11", "hostname": "box", "packages": {"numpy": "2.1"}},
        )
        records = []
        configs = [("local", "knn", 1, {"k": k}) for k in (1, 2, 3)]
        configs += [(e, w, n, {}) for e in ("dask", "ray") for w in ("knn", "cnn") for n in (2, 4)]
        for engine, workload, workers, params in configs:
            base = {"knn": 2.5, "cnn": 12.0}[workload] * (1.0 if workers == 2 else 0.8)
            for rep in range(5):
                train = float(base * (1.1 if engine == "ray" else 1.0) + rng.normal(0, 0.05))
                values = {
                    "experiment": "paper000", "engine": engine, "workload": workload,
                    "dataset": "digits", "workers": workers, "threads_per_worker": 1,
                    "warmup": rep == 0, "repetition": rep, "train_s": train,
                    "wall_s": train + 0.2, "params": params,
                }  # fmt: skip
                metrics = {
                    "accuracy": float(0.97 + rng.uniform(0, 0.02)),
                    "train_accuracy": 1.0,
                    "f1": float(0.97 + rng.uniform(0, 0.02)),
                }
                curves = []
                if workload == "cnn":
                    for epoch in range(1, 11):
                        curves += [
                            (0, "loss", epoch, 2.0 / epoch),
                            (0, "val_loss", epoch, 2.2 / epoch),
                            (0, "accuracy", epoch, 1 - 0.5 / epoch),
                            (0, "val_accuracy", epoch, 1 - 0.6 / epoch),
                        ]
                samples = [
                    (t / 10, 90.0 + 5 * math.sin(t), 300.0 + t, 0, 0, 0, 0) for t in range(20)
                ]
                records.append(
                    TrialRecord(
                        run_id=run,
                        status="ok",
                        values=values,
                        metrics=metrics,
                        samples=samples,
                        curves=curves,
                    )  # fmt: skip
                )
                if rep > 0:
                    rows.append({**values, **metrics})
        store.append_trials(records)
        store.finish_run(run)
    return rows
