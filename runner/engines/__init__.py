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
            "mlp": "impl sklearn: scikit-learn MLPClassifier; impl scratch: 002's NumPy network, "
            "mini-batch gradient descent written by hand",
            "preprocess": "003's image pre-processing in-process: decode, resize, normalise, "
            "write, batch after batch",
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
            "mlp": "impl sklearn (001): MLPClassifier fitted under Dask's joblib backend (it "
            "makes no joblib calls, so it trains in the driver), model scattered to the workers; "
            "impl scratch: synchronous data-parallel gradient descent, one training shard per "
            "worker (Dask actors), driver averages; test shards scored on all workers",
            "cnn": "000's way: one independent Keras trainer per worker, each a full training "
            "with its own seed, in parallel; each trainer's accuracy and the total time",
            "preprocess": "003's image pre-processing, the batches of file names spread over "
            "the workers",
        },
    ),
    "spark": EngineInfo(
        "spark",
        "pyspark: local[workers x threads_per_worker] by default; spark_mode standalone: the "
        "runner starts a master and `workers` workers on 127.0.0.1; --spark-master URL for an "
        "existing cluster (executor cores = threads_per_worker, executor memory = memory_gb, "
        "cores.max = workers x threads)",
        "spark",
        ("pyspark",),
        "spark",
        {
            "knn": "training set broadcast once; each Python worker fits scikit-learn's KNN in "
            "train; test set scored in max(workers x threads, 2) partitions with mapPartitions",
            "mlp": "impl mllib: Spark MLlib MultilayerPerceptronClassifier (sigmoid hidden "
            "layers), solver l-bfgs | gd, epochs -> maxIter, batch_size -> blockSize; impl keras "
            "(002): the Keras network trained inside one Spark task on one executor, the data "
            "shipped as a partition",
            "preprocess": "003's image pre-processing as an RDD over file names (cache: persist "
            "the parsed RDD when it is read again)",
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
            "mlp": "impl sklearn: MLPClassifier fitted under Ray's joblib backend (trains in the "
            "driver), model ray.put to the actors; impl scratch: synchronous data-parallel "
            "gradient descent, one training shard per actor, driver averages; test shards "
            "scored on all actors",
            "cnn": "000's way: one independent Keras trainer per actor, each a full training "
            "with its own seed, in parallel; each trainer's accuracy and the total time",
            "preprocess": "003's image pre-processing, the batches of file names spread over "
            "the actors",
        },
    ),
    "tensorflow": EngineInfo(
        "tensorflow",
        "Keras 3 on TensorFlow, CPU only, in the worker process; strategy none (intra-op "
        "threads = threads_per_worker, inter-op threads = workers), mirrored "
        "(MirroredStrategy over `workers` logical CPU devices) or multiworker "
        "(MultiWorkerMirroredStrategy over `workers` TensorFlow processes on 127.0.0.1, TF_CONFIG)",
        "tensorflow",
        ("tensorflow",),
        "tensorflow",
        {
            "mlp": "impl keras: 002's network in Keras (Dense ReLU/ReLU, tanh output, squared "
            "error on one-hot targets, SGD); model built, compiled and traced once in load, "
            "re-initialised from the seed every trial",
            "cnn": "000's CNN (Table 1) in Keras, Adam; model built, compiled and traced once in "
            "load, re-initialised from the seed every trial",
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


#: The least memory_gb (GiB per worker) each engine can start with: Spark's JVM refuses less than
#: 450 MiB (1.5 x its 300 MiB reserve); a Dask worker or Ray actor process alone takes ~150 MiB.
MIN_MEMORY_GB = {"spark": 450 / 1024, "dask": 0.25, "ray": 0.25}


def check_memory(engine: str, config: Mapping[str, Any]) -> None:
    """Refuse a memory_gb the engine cannot start with, or that this machine does not have."""
    memory_gb = config.get("memory_gb")
    if memory_gb is None:
        return
    least = MIN_MEMORY_GB.get(engine)
    if least is not None and float(memory_gb) < least:
        raise RunnerError(
            f"memory_gb {memory_gb:g} is too small for {engine}: it needs at least "
            f"{least:.2f} GiB per worker; raise memory_gb"
        )
    if config.get("address"):  # an existing cluster: its own machines
        return
    import psutil

    total_gb = psutil.virtual_memory().total / 2**30
    workers = int(config.get("workers") or 1)
    if least is not None and float(memory_gb) * workers > total_gb:
        raise RunnerError(
            f"memory_gb {memory_gb:g} x {workers} workers is more than this machine's "
            f"{total_gb:.1f} GiB; lower memory_gb or workers"
        )


def check_installed(engine: str, on: str | None = None) -> None:
    """Refuse an engine whose libraries are missing (``on``: the engine that needs them, when
    Keras runs inside another engine's workers)."""
    info = get_engine(engine)
    if not info.installed():
        what = f"engine {engine}" if on is None else f"Keras on engine {on} needs {engine}, which"
        raise RunnerError(
            f"{what} is not installed; install it with pip install 'trialkit[{info.extra}]'"
        )


def is_loopback(address: str) -> bool:
    """True when a cluster address (``spark://h:p``, ``tcp://h:p``, ``h:p``) names this machine's
    loopback interface (``localhost``, 127.0.0.0/8, ``::1``)."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def fit_in_driver(
    workload: Any, config: Mapping[str, Any], seed: int, split: Any, threads: int, backend: str
) -> Any:
    """Paper 001's way: fit the workload's scikit-learn estimator inside
    ``joblib.parallel_backend(backend)`` (the engine registers it), in the driver, its BLAS held to
    a worker's ``threads`` as the local engine's is."""
    import joblib
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads), joblib.parallel_backend(backend):
        return workload.fit(config, seed, split.x_train, split.y_train)


def make_session(config: Mapping[str, Any]) -> EngineSession:
    info = get_engine(str(config["engine"]))
    package = "runner.preprocess" if config.get("workload") == "preprocess" else "runner.engines"
    module = importlib.import_module(f"{package}.{info.module}")
    return module.Session(config)


def support_matrix() -> str:
    """Engine x workload table as text (with the MLP implementations), and install status."""
    from runner.workloads import MLP_IMPLS, WORKLOADS

    names = sorted(WORKLOADS)

    def cell(info: EngineInfo, workload: str) -> str:
        if workload not in info.workloads:
            return "-"
        return ",".join(MLP_IMPLS.get(info.name, ())) if workload == "mlp" else "yes"

    widths = {n: max(len(n), *(len(cell(i, n)) for i in ENGINES.values())) for n in names}
    width = max(len(n) for n in ENGINES) + 2
    lines = [
        (
            "engine".ljust(width) + "installed  " + "  ".join(n.ljust(widths[n]) for n in names)
        ).rstrip(),
    ]
    for info in ENGINES.values():
        cells = [cell(info, n).ljust(widths[n]) for n in names]
        lines.append(
            info.name.ljust(width)
            + ("yes" if info.installed() else f"no: pip install 'trialkit[{info.extra}]'").ljust(11)
            + "  ".join(cells).rstrip()
        )
    lines.append("")
    for info in ENGINES.values():
        lines.append(f"{info.name}: {info.description}")
        for workload, how in info.workloads.items():
            lines.append(f"  {workload}: {how}")
    return "\n".join(lines)
