"""The one table of what runs where: the engines, and every engine x workload cell with its
implementations, the session that runs it and what it does.

Everything else reads this table: ``runner list engines`` (``runner.engines.support_matrix``),
the checks before a run (``runner.engines.check_supported``), the sessions
(``runner.engines.make_session``) and the MLP implementations (``runner.workloads.mlp_impl``).

This module is at the bottom of the runner's imports: it imports nothing of the runner but
``runner.errors``. A cell names its session as a string (``"module:Class"``), imported only when
a session is made, so reading the table costs nothing and no package imports another through it.

Adding an engine: its session module (``runner/engines/<name>.py``, the ``Session`` protocol of
``runner.engines``), its row in :data:`ENGINES` and one :class:`Cell` per workload it runs.
Adding a workload: its definition in ``runner.workloads`` (parameters, check, resolve, estimator)
and one :class:`Cell` per engine that runs it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.errors import RunnerError


@dataclass(frozen=True)
class EngineInfo:
    name: str
    description: str
    requires: tuple[str, ...]  # importable top-level modules
    extra: str | None  # pip extra that installs it
    max_workers: int | None = None  # None: unbounded
    #: the ``runner trials`` option that names an existing cluster, None: none
    address_option: str | None = None
    #: an example address, for messages
    address_example: str | None = None

    def installed(self) -> bool:
        return all(importlib.util.find_spec(mod) is not None for mod in self.requires)

    @property
    def workloads(self) -> dict[str, str]:
        """Workload -> how it runs on this engine (the cells' descriptions), in table order."""
        return {c.workload: c.description for c in CELLS if c.engine == self.name}


@dataclass(frozen=True)
class Cell:
    """One engine x workload combination that runs."""

    engine: str
    workload: str
    #: ``"module:attribute"``: the session class (or a factory) called with the configuration
    session: str
    description: str
    #: the values of the configuration's ``impl``; the first is the default; () when the workload
    #: has no implementations to choose from
    impls: tuple[str, ...] = ()

    def session_factory(self) -> Callable[[Mapping[str, Any]], Any]:
        module, _, attribute = self.session.partition(":")
        return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]

    def impl(self, config: Mapping[str, Any]) -> str | None:
        """The implementation a configuration of this cell runs: its ``impl``, or the default."""
        if not self.impls:
            return None
        return str(config.get("impl") or self.impls[0])


ENGINES: dict[str, EngineInfo] = {
    "local": EngineInfo(
        "local",
        "scikit-learn / NumPy in-process (BLAS threads = threads_per_worker)",
        ("sklearn",),
        None,
        max_workers=1,
    ),
    "dask": EngineInfo(
        "dask",
        "distributed.LocalCluster(n_workers=workers, threads_per_worker, memory_limit)",
        ("dask", "distributed"),
        "dask",
        address_option="--dask-scheduler",
        address_example="tcp://127.0.0.1:8786",
    ),
    "spark": EngineInfo(
        "spark",
        "pyspark: local[workers x threads_per_worker] by default; spark_mode standalone: the "
        "runner starts a master and `workers` workers on 127.0.0.1; --spark-master URL for an "
        "existing cluster (executor cores = threads_per_worker, executor memory = memory_gb, "
        "cores.max = workers x threads)",
        ("pyspark",),
        "spark",
        address_option="--spark-master",
        address_example="spark://127.0.0.1:7077",
    ),
    "ray": EngineInfo(
        "ray",
        "ray.init(address='local', num_cpus=workers x threads_per_worker), dashboard off, one "
        "actor (num_cpus=threads_per_worker) per worker; --ray-address ADDR",
        ("ray",),
        "ray",
        address_option="--ray-address",
        address_example="127.0.0.1:6379",
    ),
    "tensorflow": EngineInfo(
        "tensorflow",
        "Keras 3 on TensorFlow, CPU only, in the worker process; strategy none (intra-op "
        "threads = threads_per_worker, inter-op threads = workers), mirrored "
        "(MirroredStrategy over `workers` logical CPU devices) or multiworker "
        "(MultiWorkerMirroredStrategy over `workers` TensorFlow processes on 127.0.0.1, TF_CONFIG)",
        ("tensorflow",),
        "tensorflow",
    ),
}

CELLS: tuple[Cell, ...] = (
    # -- local ------------------------------------------------------------------------------
    Cell(
        "local",
        "knn",
        "runner.engines.local:Session",
        "scikit-learn KNeighborsClassifier, n_jobs = threads_per_worker",
    ),
    Cell(
        "local",
        "mlp",
        "runner.engines.local:Session",
        "impl sklearn: scikit-learn MLPClassifier; impl scratch: 002's NumPy network, "
        "mini-batch gradient descent written by hand",
        impls=("sklearn", "scratch"),
    ),
    Cell(
        "local",
        "preprocess",
        "runner.preprocess.local:Session",
        "003's image pre-processing in-process: decode, resize, normalise, write, batch after "
        "batch",
    ),
    Cell(
        "local",
        "noop",
        "runner.workloads.noop:Session",
        "nothing: the trial returns at once (the runner's own cost per trial), or spins a fixed "
        "pure-Python loop",
    ),
    # -- dask -------------------------------------------------------------------------------
    Cell(
        "dask",
        "knn",
        "runner.engines.dask:Session",
        "training set scattered to every worker once; each worker fits; test shards scored on "
        "the workers",
    ),
    Cell(
        "dask",
        "mlp",
        "runner.engines.dask:Session",
        "impl sklearn (001): MLPClassifier fitted under Dask's joblib backend (it makes no "
        "joblib calls, so it trains in the driver), model scattered to the workers; impl "
        "scratch: synchronous data-parallel gradient descent, one training shard per worker "
        "(Dask actors), driver averages; test shards scored on all workers",
        impls=("sklearn", "scratch"),
    ),
    Cell(
        "dask",
        "cnn",
        "runner.engines.dask:Session",
        "000's way: one independent Keras trainer per worker, each a full training with its "
        "own seed, in parallel; each trainer's accuracy and the total time",
    ),
    Cell(
        "dask",
        "preprocess",
        "runner.preprocess.dask:Session",
        "003's image pre-processing, the batches of file names spread over the workers",
    ),
    # -- spark ------------------------------------------------------------------------------
    Cell(
        "spark",
        "knn",
        "runner.engines.spark:Session",
        "training set broadcast once; each Python worker fits scikit-learn's KNN in train; test "
        "set scored in max(workers x threads, 2) partitions with mapPartitions",
    ),
    Cell(
        "spark",
        "mlp",
        "runner.engines.spark:Session",
        "impl mllib: Spark MLlib MultilayerPerceptronClassifier (sigmoid hidden layers), "
        "solver l-bfgs | gd, epochs -> maxIter, batch_size -> blockSize; impl keras (002): the "
        "Keras network trained inside one Spark task on one executor, the data shipped as a "
        "partition",
        impls=("mllib", "keras"),
    ),
    Cell(
        "spark",
        "preprocess",
        "runner.preprocess.spark:Session",
        "003's image pre-processing as an RDD over file names (cache: persist the parsed RDD "
        "when it is read again)",
    ),
    # -- ray --------------------------------------------------------------------------------
    Cell(
        "ray",
        "knn",
        "runner.engines.ray:Session",
        "training set ray.put once per configuration; every actor fits; test shards "
        "(>= workers) scored on the actors",
    ),
    Cell(
        "ray",
        "mlp",
        "runner.engines.ray:Session",
        "impl sklearn: MLPClassifier fitted under Ray's joblib backend (trains in the driver), "
        "model ray.put to the actors; impl scratch: synchronous data-parallel gradient descent, "
        "one training shard per actor, driver averages; test shards scored on all actors",
        impls=("sklearn", "scratch"),
    ),
    Cell(
        "ray",
        "cnn",
        "runner.engines.ray:Session",
        "000's way: one independent Keras trainer per actor, each a full training with its own "
        "seed, in parallel; each trainer's accuracy and the total time",
    ),
    Cell(
        "ray",
        "preprocess",
        "runner.preprocess.ray:Session",
        "003's image pre-processing, the batches of file names spread over the actors",
    ),
    # -- tensorflow -------------------------------------------------------------------------
    Cell(
        "tensorflow",
        "mlp",
        "runner.engines.tensorflow:Session",
        "impl keras: 002's network in Keras (Dense ReLU/ReLU, tanh output, squared error on "
        "one-hot targets, SGD); model built, compiled and traced once in load, re-initialised "
        "from the seed every trial",
        impls=("keras",),
    ),
    Cell(
        "tensorflow",
        "cnn",
        "runner.engines.tensorflow:Session",
        "000's CNN (Table 1) in Keras, Adam; model built, compiled and traced once in load, "
        "re-initialised from the seed every trial",
    ),
)


def get_engine(name: str) -> EngineInfo:
    try:
        return ENGINES[name]
    except KeyError:
        raise RunnerError(
            f"unknown engine {name!r}; available: {', '.join(sorted(ENGINES))}"
        ) from None


def find_cell(engine: str, workload: str) -> Cell | None:
    """The cell of ``engine`` x ``workload``, None when that engine does not run it."""
    for c in CELLS:
        if c.engine == engine and c.workload == workload:
            return c
    return None


def cell(engine: str, workload: str) -> Cell:
    """The cell of ``engine`` x ``workload``; RunnerError naming what the engine runs."""
    get_engine(engine)
    found = find_cell(engine, workload)
    if found is None:
        runs = sorted(c.workload for c in CELLS if c.engine == engine)
        raise RunnerError(
            f"engine {engine} cannot run workload {workload!r}; it supports: {', '.join(runs)} "
            "(see `runner list engines`)"
        )
    return found


def workload_names() -> list[str]:
    """Every workload some engine runs, sorted."""
    return sorted({c.workload for c in CELLS})


def impls(workload: str) -> dict[str, tuple[str, ...]]:
    """Engine -> the implementations of ``workload`` it has (first: its default)."""
    return {c.engine: c.impls for c in CELLS if c.workload == workload}


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
