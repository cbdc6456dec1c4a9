"""Engines: the real libraries that run a workload, started once per configuration.

An engine session has a fixed life cycle, driven by the trial loop in a worker process:
``start()`` (timed as setup_s) -> ``load(split)`` (ships the data once; timed into load_s) ->
per trial ``train(seed)`` (train_s) and ``predict()`` (infer_s) -> ``close()``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from runner.errors import RunnerError


class EngineSession(Protocol):
    def start(self) -> None: ...
    def load(self, split: Any) -> None: ...
    def train(self, seed: int) -> None: ...
    def predict(self) -> np.ndarray: ...
    def predict_train(self) -> np.ndarray: ...
    def close(self) -> None: ...

    # Optional: ``trial_metrics() -> dict[str, float]``, engine facts about the last trial.


@dataclass(frozen=True)
class EngineInfo:
    name: str
    description: str
    module: str  # runner.engines.<module>
    requires: tuple[str, ...]  # importable top-level modules
    extra: str | None  # pip extra that installs it
    workloads: Mapping[str, str]  # workload -> how it runs on this engine
    max_workers: int | None = None  # None: unbounded

    def installed(self) -> bool:
        return all(importlib.util.find_spec(mod) is not None for mod in self.requires)


ENGINES: dict[str, EngineInfo] = {
    "local": EngineInfo(
        "local",
        "scikit-learn / NumPy in-process (BLAS threads = threads_per_worker)",
        "local",
        ("sklearn",),
        None,
        {
            "knn": "scikit-learn KNeighborsClassifier, n_jobs = threads_per_worker",
            "mlp": "scikit-learn MLPClassifier",
        },
        max_workers=1,
    ),
    "dask": EngineInfo(
        "dask",
        "distributed.LocalCluster(n_workers=workers, threads_per_worker, memory_limit)",
        "dask",
        ("dask", "distributed"),
        "dask",
        {
            "knn": "training set scattered to every worker once; each worker fits; test shards "
            "scored on the workers",
            "mlp": "one worker fits the MLP (scikit-learn's MLP has no data parallelism); test "
            "shards scored on all workers",
        },
    ),
    "spark": EngineInfo(
        "spark",
        "pyspark: local[workers x threads_per_worker] by default; --spark-master URL for a "
        "cluster (executor cores = threads_per_worker, cores.max = workers x threads)",
        "spark",
        ("pyspark",),
        "spark",
        {
            "knn": "training set broadcast once; each Python worker fits scikit-learn's KNN in "
            "train; test set scored in max(workers x threads, 2) partitions with mapPartitions",
            "mlp": "Spark MLlib MultilayerPerceptronClassifier (sigmoid hidden layers), solver "
            "l-bfgs | gd, epochs -> maxIter, batch_size -> blockSize",
        },
    ),
    "ray": EngineInfo(
        "ray",
        "ray.init(address='local', num_cpus=workers x threads_per_worker), dashboard off, one "
        "actor (num_cpus=threads_per_worker) per worker; --ray-address ADDR",
        "ray",
        ("ray",),
        "ray",
        {
            "knn": "training set ray.put once per configuration; every actor fits; test shards "
            "(>= workers) scored on the actors",
            "mlp": "one actor fits scikit-learn's MLP, the fitted model is shipped to the other "
            "actors; test shards scored on all actors",
        },
    ),
}


def get_engine(name: str) -> EngineInfo:
    try:
        return ENGINES[name]
    except KeyError:
        raise RunnerError(
            f"unknown engine {name!r}; available: {', '.join(sorted(ENGINES))}"
        ) from None


def check_supported(engine: str, workload: str, workers: int) -> None:
    """Refuse unsupported combinations before anything starts."""
    info = get_engine(engine)
    if workload not in info.workloads:
        raise RunnerError(
            f"engine {engine} cannot run workload {workload!r}; it supports: "
            f"{', '.join(sorted(info.workloads))} (see `runner list engines`)"
        )
    if workers < 1:
        raise RunnerError(f"workers must be >= 1, got {workers}")
    if info.max_workers is not None and workers > info.max_workers:
        raise RunnerError(
            f"engine {engine} runs in-process and supports workers=1 only, got {workers}; "
            "use a distributed engine (e.g. dask) for more workers"
        )


def check_installed(engine: str) -> None:
    info = get_engine(engine)
    if not info.installed():
        raise RunnerError(
            f"engine {engine} is not installed; install it with "
            f"pip install 'trialkit[{info.extra}]'"
        )


def check_reachable(engine: str, address: str, timeout: float = 5.0) -> None:
    """Refuse an existing-cluster address that does not accept a TCP connection."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    option = {"spark": "--spark-master", "dask": "--dask-scheduler", "ray": "--ray-address"}
    flag = option.get(engine, "address")
    if not host or not port:
        raise RunnerError(
            f"{flag} {address!r} has no host:port; write e.g. "
            + {"spark": "spark://127.0.0.1:7077", "dask": "tcp://127.0.0.1:8786"}.get(
                engine, "127.0.0.1:6379"
            )
        )
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise RunnerError(
            f"{flag} {address}: cannot connect to {host}:{port} ({exc.strerror or exc}); "
            "start the cluster or fix the address"
        ) from None


def make_session(config: Mapping[str, Any]) -> EngineSession:
    info = get_engine(str(config["engine"]))
    module = importlib.import_module(f"runner.engines.{info.module}")
    return module.Session(config)


def support_matrix() -> str:
    """Engine x workload table as text, with install status."""
    from runner.workloads import WORKLOADS

    names = sorted(WORKLOADS)
    width = max(len(n) for n in ENGINES) + 2
    lines = [
        "engine".ljust(width) + "installed  " + "  ".join(n.ljust(5) for n in names),
    ]
    for info in ENGINES.values():
        cells = ["yes".ljust(5) if n in info.workloads else "-".ljust(5) for n in names]
        lines.append(
            info.name.ljust(width)
            + ("yes" if info.installed() else f"no: pip install 'trialkit[{info.extra}]'").ljust(11)
            + "  ".join(cells)
        )
    lines.append("")
    for info in ENGINES.values():
        lines.append(f"{info.name}: {info.description}")
        for workload, how in info.workloads.items():
            lines.append(f"  {workload}: {how}")
    return "\n".join(lines)
