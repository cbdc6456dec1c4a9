"""Engine ``spark``: a real pyspark session, started once per configuration, in one of three ways:

- ``local[workers x threads_per_worker]`` (``spark_mode = "local"``, the default);
- ``spark_mode = "standalone"`` (or ``runner trials --spark-mode standalone``): the runner starts a
  Spark standalone cluster on 127.0.0.1 itself (``runner.engines.spark_cluster``: one master and
  ``workers`` worker JVMs launched with pyspark's ``spark-class``, each worker offering
  threads_per_worker cores and memory_gb GB, 1 GB when memory_gb is unset), runs the application
  on it with one executor per worker (executor cores = threads_per_worker, executor memory =
  memory_gb if set, cores.max = workers x threads_per_worker), waits until all ``workers``
  executors have registered, and stops the cluster in ``close()``. The cluster's start-up (about
  10 s on two cores) is engine start-up, so it is timed into setup_s;
- an existing master (``--spark-master spark://host:port``), with the same executor sizing.

In the two cluster modes the trial metric ``executors`` records how many executors the
application had (the driver not counted).

``start()`` launches the JVM (its stdout/stderr go to a log file, log4j at ERROR, so nothing lands
on the runner's output) and runs one tiny job, so the JVM and the Python workers are up before any
trial: Spark's start-up is timed as setup_s, never inside a trial.

knn -- the training set is broadcast once (``sc.broadcast``) and the test set is cut into
P = max(workers x threads, 2) blocks, one per partition, cached; ``load()`` runs a job that
materialises the cache, reads the broadcast and imports scikit-learn in the Python workers, so
all shipping is in load_s. ``train(seed)`` runs a job over the P partitions in which every Python
worker process fits scikit-learn's KNeighborsClassifier on the broadcast training set (once per
process) and keeps it in a module-level dict keyed by (session, seed). Spark reuses its Python
workers (``spark.python.worker.reuse``, on by default), so ``predict()`` -- a ``mapPartitions``
job that scores each test block -- finds the fitted model there. A task that lands on a Python
worker that did not fit in ``train`` fits there and then (correct, and counted in the
``knn_refits`` trial metric, so fit time leaking into infer_s is visible). Each task is
single-threaded (n_jobs=1): Spark's parallelism is its P concurrent tasks.

mlp -- Spark MLlib's ``MultilayerPerceptronClassifier`` on DataFrames of (id, features, label)
with P partitions, cached and counted in ``load()``: layers = [n_features, *hidden, n_classes],
solver ``l-bfgs`` (default) or ``gd``, maxIter = epochs (default 100), blockSize = batch_size
(default 128), stepSize = learning_rate (default 0.03), seed = the trial's seed. MLlib's hidden
layers are always sigmoid and its output layer softmax; the ``activation`` parameter does not
apply. ``predict()`` transforms the cached test DataFrame and collects predictions in id order.

mlp, impl keras (paper 002's "Keras on Spark with one worker node") -- the Keras network of
engine tensorflow (``runner.workloads.keras_trainer.KerasTrainer``: same model, settings and
validation rows) trained inside one Spark task, in a Spark executor's Python worker process:

- Every job of such a configuration has exactly one partition, so Spark keeps exactly one Python
  worker per executor and reuses it for every task (``spark.python.worker.reuse``, true by
  default: the Python worker stays alive between tasks, with TensorFlow imported and the model
  built). Jobs with more partitions would start more Python workers, and Spark hands idle workers
  out in turn, so a task could land on one without the model.
- ``start()`` imports TensorFlow in that Python worker (intra-op threads = threads_per_worker),
  so the import is engine start-up (setup_s), as it is for engine tensorflow.
- ``load()`` ships the training set as ONE cached partition (``parallelize`` of row blocks of
  (x, y), 1 slice), broadcasts the test set, and runs one job on the partition in which the
  Python worker builds, compiles and traces the model (kept in a module-level dict of that
  process, keyed by this session) and reads the broadcast.
- ``train(seed)`` is one job whose single task reads the partition, re-initialises the model from
  the seed, fits it (as engine tensorflow with strategy none) and returns the trained weights and
  the history to the driver: train_s holds the whole Spark round trip of the training.
- ``predict()`` is one job whose single task gets the weights (in the task) and scores the
  broadcast test set with them: infer_s holds that round trip. The task runs over a one-row
  partition cached by load's job beside the training partition, so on a cluster it goes to the
  executor that trains (Spark's locality preference). ``predict_train()`` (untimed) scores the
  partition's rows the same way.

The trial metrics ``train_pid`` (the Python worker that fitted), ``driver_pid``,
``task_processes`` (distinct Python workers of the train and predict jobs) and ``keras_setups``
(how many times a task had to build the model because its Python worker had none: 0 when the warm
worker was reused; Spark also stops Python workers idle for a minute) say where the work ran.
With ``workers`` > 1 Keras still trains on one executor, in one task, as 002 found on its larger
clusters (Keras does not use the other nodes); the extra executors only cost start-up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from runner import registry
from runner.config import Config
from runner.datasets import Split
from runner.registry import is_loopback
from runner.workloads import estimator_params, get_workload

#: Rows per block of the Keras training partition (the partition is a list of (x, y) blocks).
KERAS_BLOCK_ROWS = 1024

#: Seconds to wait for the standalone cluster's executors to register with the application.
EXECUTOR_TIMEOUT_S = 60.0

_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""

# Python-worker side (executors): fitted KNN models of this process, keyed by (session, seed).
_MODELS: dict[tuple[str, int], Any] = {}


def _who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _model(key: tuple[str, int], config: Config, bx: Any, by: Any) -> tuple[Any, bool]:
    """The fitted model for ``key`` in this Python worker, fitting it if absent. Returns
    (model, fitted_now)."""
    model = _MODELS.get(key)
    if model is not None:
        return model, False
    _MODELS.clear()  # one configuration and seed at a time: free the previous trial's model
    single = config.replace(threads_per_worker=1)  # a task is one thread: n_jobs = 1
    model = get_workload(config.workload).fit(single, key[1], bx.value, by.value)
    _MODELS[key] = model
    return model, True


# Python-worker side (executors): the Keras trainer of this process, keyed by session token.
_TRAINERS: dict[str, Any] = {}


def _trainer(
    key: str, config: Config, n_features: int, shape: tuple[int, int], classes: int
) -> tuple[Any, bool]:
    """This Python worker's KerasTrainer for session ``key``, built (and compiled) if absent.
    Returns (trainer, built_now)."""
    trainer = _TRAINERS.get(key)
    if trainer is not None:
        return trainer, False
    from runner.workloads.keras_trainer import KerasTrainer

    _TRAINERS.clear()  # one configuration at a time
    trainer = KerasTrainer(config.workload, config)
    trainer.build(n_features, shape, classes)
    _TRAINERS[key] = trainer
    return trainer, True


def _rows(blocks: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The partition's (x, y) blocks, read to the end, as two arrays."""
    xs, ys = zip(*blocks, strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def _keras_import_task(threads: int, items: Iterable[Any]) -> Iterator[str]:
    from runner.workloads.keras_trainer import import_keras

    for _item in items:
        pass
    import_keras(threads)
    yield _who()


def _keras_load_task(
    key: str,
    config: Config,
    shape: tuple[int, int],
    classes: int,
    bx_test: Any,
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
) -> Iterator[tuple[str, int, int]]:
    """Load: build the model in this Python worker, trace it on the partition's rows, read the
    broadcast test set."""
    x, y = _rows(blocks)
    trainer, _ = _trainer(key, config, x.shape[1], shape, classes)
    trainer.load(x, y, shape, classes)
    yield _who(), len(x), len(bx_test.value)


def _keras_fit_task(
    key: str,
    seed: int,
    config: Config,
    shape: tuple[int, int],
    classes: int,
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
) -> Iterator[tuple[Any, bool]]:
    x, y = _rows(blocks)
    trainer, built = _trainer(key, config, x.shape[1], shape, classes)
    trainer.load(x, y, shape, classes)  # the same shapes: nothing is traced again
    yield trainer.fit(seed, return_weights=True), built


def _keras_score_task(
    key: str,
    config: Config,
    shape: tuple[int, int],
    classes: int,
    weights: list[np.ndarray],
    bx: Any,
    items: Iterable[Any],
) -> Iterator[tuple[np.ndarray, str, bool]]:
    """Score with the given weights: the broadcast rows ``bx``, or (bx None) the partition's."""
    if bx is None:
        x = _rows(items)[0]
    else:
        for _item in items:  # the one-row partition, read to the end: the worker is reused
            pass
        x = bx.value
    trainer, built = _trainer(key, config, x.shape[1], shape, classes)
    trainer.set_weights(weights)
    yield trainer.predict(x), _who(), built


def _touch_task(
    config: Config, bx: Any, by: Any, blocks: Iterable[tuple[int, np.ndarray]]
) -> Iterator[int]:
    """Load: read the broadcast in this Python worker, import the estimator's library, and count
    this partition's rows."""
    _ = (bx.value.shape, by.value.shape)
    get_workload(config.workload).preload(config)
    yield sum(len(block) for _, block in blocks)


def _fit_task(
    key: tuple[str, int],
    config: Config,
    bx: Any,
    by: Any,
    blocks: Iterable[tuple[int, np.ndarray]],
) -> Iterator[tuple[str, bool]]:
    for _ in blocks:
        pass
    _, fitted = _model(key, config, bx, by)
    yield _who(), fitted


def _predict_task(
    key: tuple[str, int],
    config: Config,
    bx: Any,
    by: Any,
    blocks: Iterable[tuple[int, np.ndarray]],
) -> Iterator[tuple[int, np.ndarray, str, bool]]:
    for start, block in blocks:
        model, fitted = _model(key, config, bx, by)
        yield start, np.asarray(model.predict(block)), _who(), fitted


def _blocks(x: np.ndarray, parts: int) -> list[tuple[int, np.ndarray]]:
    """``x`` cut into ``parts`` blocks, each with the row it starts at."""
    blocks = np.array_split(x, parts)
    starts = np.cumsum([0, *map(len, blocks)])
    return [(int(s), b) for s, b in zip(starts, blocks, strict=False)]


#: How this module runs each (workload, impl) of the registry's spark cells.
MODES = {("knn", None): "knn", ("mlp", "mllib"): "mllib", ("mlp", "keras"): "keras"}


def mode_of(config: Config) -> str:
    """``knn``, ``mllib`` or ``keras``: the registry's spark cell of the configuration and its
    implementation; ``engine`` when the cell's session is another module's, which uses this one
    only to start and stop Spark (``runner.preprocess.spark``). RuntimeError for a cell that
    names this module but that it does not run (a registry entry without code)."""
    workload = config.workload
    found = registry.cell("spark", workload)
    if found.session != f"{__name__}:Session":
        return "engine"
    impl = found.impl(config)
    try:
        return MODES[(workload, impl)]
    except KeyError:
        raise RuntimeError(f"runner.engines.spark does not run {workload} impl {impl}") from None


class Session:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.workload = get_workload(config.workload)
        self.mode_name = mode_of(config)
        self.workers = config.workers
        self.threads = config.threads_per_worker
        self.memory_gb = config.memory_gb
        # the spec leaves the default mode out of the stored configuration (so spelling it out
        # does not change a configuration's id): absent means local[N]
        self.mode = str(config.get("spark_mode", "local"))
        self.slots = self.workers * self.threads
        self.partitions = max(self.slots, 2)
        self.token = uuid.uuid4().hex
        self.spark: Any = None
        self.split: Split | None = None
        self._tmp: Path | None = None
        self._proc: Any = None
        self.cluster: Any = None  # StandaloneCluster in spark_mode "standalone"
        self.master: str | None = None  # URL of the cluster master, None for local[N]
        self._started_with: set[str] | None = None  # block managers after start
        self._seed = 0
        # knn
        self._bx: Any = None
        self._by: Any = None
        self._test_rdd: Any = None
        self._train_rdd: Any = None
        self._who: set[str] = set()
        self._refits = 0
        # mlp
        self._train_df: Any = None
        self._test_df: Any = None
        self._model: Any = None
        # mlp impl keras: one training partition, one Python worker
        self.keras = self.mode_name == "keras"
        self._bx_test: Any = None
        self._anchor: Any = None  # a one-row cached partition beside the training partition
        self._fit: Any = None  # keras_trainer.FitResult of the last train, with weights
        self._keras_who: set[str] = set()
        self._keras_setups = 0

    # -- life cycle -------------------------------------------------------------------------

    def _conf(self) -> Any:
        from pyspark import SparkConf

        assert self._tmp is not None
        log4j = self._tmp / "log4j2.properties"
        log4j.write_text(_LOG4J2, encoding="utf-8")
        address = self.master
        # the JVMs' own scratch (spark-submit's spark-* folders, etc.) under this session's
        # folder, not /tmp: removed in close(), or with the worker's folder if that never runs
        java_tmp = self._tmp / "java"
        java_tmp.mkdir(exist_ok=True)
        tmp_option = f"-Djava.io.tmpdir={java_tmp}"
        conf = (
            SparkConf()
            .setAppName("trialkit")
            .set("spark.ui.enabled", "false")
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.sql.shuffle.partitions", str(self.partitions))
            .set("spark.default.parallelism", str(self.partitions))
            .set(
                "spark.driver.extraJavaOptions",
                f"-Dlog4j2.configurationFile=file:{log4j} {tmp_option}",
            )
            .set("spark.local.dir", str(self._tmp / "local"))
        )
        if address:
            conf.setMaster(str(address))
            conf.set("spark.executor.cores", str(self.threads))
            conf.set("spark.cores.max", str(self.slots))
            if self.cluster is not None:  # our own executors: on this machine
                conf.set("spark.executor.extraJavaOptions", tmp_option)
        else:
            conf.setMaster(f"local[{self.slots}]")
        if not address or is_loopback(str(address)):
            # everything on this machine: no need to guess a routable interface
            conf.set("spark.driver.host", "127.0.0.1")
            conf.set("spark.driver.bindAddress", "127.0.0.1")
        if self.memory_gb:
            memory = f"{max(int(self.memory_gb * 1024), 1)}m"
            conf.set("spark.driver.memory", memory)
            conf.set("spark.executor.memory", memory)
        return conf

    def start(self) -> None:
        from pyspark import SparkContext
        from pyspark.java_gateway import launch_gateway
        from pyspark.sql import SparkSession

        # Python workers run this interpreter (the venv that has trialkit and scikit-learn).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        self._tmp = Path(tempfile.mkdtemp(prefix="trialkit-spark-"))
        address = self.config.get("address")
        if self.mode == "standalone":
            from runner.engines.spark_cluster import StandaloneCluster

            if address:
                raise RuntimeError(f"spark_mode 'standalone' and address {address}: choose one")
            self.cluster = StandaloneCluster(
                self.workers, self.threads, self.memory_gb, self._tmp / "cluster"
            )
            self.master = self.cluster.start()
        elif self.mode == "local":
            self.master = str(address) if address else None
        else:
            raise RuntimeError(f"unknown spark_mode {self.mode!r}; use local or standalone")
        conf = self._conf()
        log = self._tmp / "jvm.log"
        with open(log, "ab") as out:  # the JVM (and its Python workers) write here, not to us
            try:
                gateway = launch_gateway(conf, popen_kwargs={"stdout": out, "stderr": out})
            except Exception as exc:
                raise RuntimeError(f"Spark JVM did not start: {exc}; {self._log_tail()}") from exc
        self._proc = gateway.proc
        sc = SparkContext(conf=conf, gateway=gateway)
        sc.setLogLevel("ERROR")
        self.spark = SparkSession(sc)
        if self.cluster is not None:
            self._wait_for_executors(self.workers, EXECUTOR_TIMEOUT_S)
        # Start the executors and a Python worker now, so no trial pays for it.
        if self.keras:  # one partition: one Python worker, with TensorFlow imported
            sc.parallelize([0], 1).mapPartitions(partial(_keras_import_task, self.threads)).count()
        else:
            sc.parallelize(range(self.partitions), self.partitions).count()
        self._started_with = self._block_managers()

    def executors(self) -> int:
        """Executors registered with the application (the driver not counted)."""
        status = self.spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
        return max(int(status.size()) - 1, 0)

    def _block_managers(self) -> set[str]:
        """host:port of the driver's and every executor's block manager (a replaced executor
        has a new one); raises when the driver does not answer."""
        status = self.spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
        return set(str(status.keys().mkString(",")).split(","))

    def lost_workers(self) -> str | None:
        """On a cluster, the executors the application had after start that it has no more
        (killed, out of memory; Spark may have started others in their place, without this
        session's warm Python workers); locally, whether the driver still answers. None when
        nothing was lost. Called after each trial."""
        if self.spark is None:
            return None
        now = self._block_managers()
        if self.master is None or self._started_with is None:
            return None
        gone = sorted(self._started_with - now)
        if not gone:
            return None
        return (
            f"{len(gone)} of {len(self._started_with) - 1} Spark executors lost ({', '.join(gone)})"
        )

    def _wait_for_executors(self, wanted: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (have := self.executors()) < wanted:
            if time.monotonic() > deadline:
                tail = self.cluster.log_tail() if self.cluster is not None else ""
                raise RuntimeError(
                    f"only {have} of {wanted} Spark executors registered within {timeout:g} s; "
                    f"{tail}"
                )
            time.sleep(0.1)

    def _log_tail(self, lines: int = 5) -> str:
        if self._tmp is None or not (self._tmp / "jvm.log").exists():
            return "no JVM log"
        tail = (self._tmp / "jvm.log").read_text(errors="replace").strip().splitlines()[-lines:]
        return "JVM log: " + " | ".join(tail) if tail else "JVM log empty"

    def load(self, split: Split) -> None:
        self.split = split
        if self.mode_name == "engine":
            raise RuntimeError("this Spark session only starts the engine for another session")
        if self.mode_name == "knn":
            self._load_knn(split)
        elif self.keras:
            self._load_keras(split)
        else:
            self._load_mlp(split)

    def _keras_args(self) -> tuple[str, Config, tuple[int, int], int]:
        assert self.split is not None
        return self.token, self.config, self.split.image_shape, self.split.n_classes

    def _load_keras(self, split: Split) -> None:
        sc = self.spark.sparkContext
        parts = max(-(-len(split.x_train) // KERAS_BLOCK_ROWS), 1)
        blocks = list(
            zip(
                np.array_split(split.x_train, parts),
                np.array_split(split.y_train, parts),
                strict=True,
            )
        )
        self._train_rdd = sc.parallelize(blocks, 1).cache()  # the training set: one partition
        self._bx_test = sc.broadcast(split.x_test)
        load = partial(_keras_load_task, *self._keras_args(), self._bx_test)
        # the load job's one-row result stays cached where it ran, next to the training
        # partition (whose task it read): predict's task reads it, so Spark's locality
        # preference sends scoring to the executor whose Python worker trained
        self._anchor = self._train_rdd.mapPartitions(load).cache()
        [(_, n_train, n_test)] = self._anchor.collect()
        assert (n_train, n_test) == (len(split.x_train), len(split.x_test))

    def _load_knn(self, split: Split) -> None:
        sc = self.spark.sparkContext
        self._bx = sc.broadcast(split.x_train)
        self._by = sc.broadcast(split.y_train)
        p = self.partitions
        self._test_rdd = sc.parallelize(_blocks(split.x_test, p), p).cache()
        self._train_rdd = sc.parallelize(_blocks(split.x_train, p), p).cache()
        touch = partial(_touch_task, self.config, self._bx, self._by)
        n_test = sum(self._test_rdd.mapPartitions(touch).collect())
        n_train = sum(self._train_rdd.mapPartitions(touch).collect())
        assert (n_test, n_train) == (len(split.x_test), len(split.x_train))

    def _frame(self, x: np.ndarray, y: np.ndarray) -> Any:
        from pyspark.ml.linalg import Vectors, VectorUDT
        from pyspark.sql.types import DoubleType, LongType, StructField, StructType

        schema = StructType(
            [
                StructField("id", LongType(), False),
                StructField("features", VectorUDT(), False),
                StructField("label", DoubleType(), False),
            ]
        )
        rows = [
            (i, Vectors.dense(row.astype(float)), float(label))
            for i, (row, label) in enumerate(zip(x, y, strict=True))
        ]
        rdd = self.spark.sparkContext.parallelize(rows, self.partitions)
        frame = self.spark.createDataFrame(rdd, schema).cache()
        assert frame.count() == len(rows)
        return frame

    def _load_mlp(self, split: Split) -> None:
        self._train_df = self._frame(split.x_train, split.y_train)
        self._test_df = self._frame(split.x_test, split.y_test)

    # -- trials -----------------------------------------------------------------------------

    def train(self, seed: int) -> None:
        self._seed = seed
        if self.keras:  # one task trains on the partition and returns the weights
            key, config, shape, classes = self._keras_args()
            fit = partial(_keras_fit_task, key, seed, config, shape, classes)
            [(self._fit, built)] = self._train_rdd.mapPartitions(fit).collect()
            self._keras_setups = int(built)
            self._keras_who = {self._fit.where}
            return
        if self.mode_name == "knn":
            fit = partial(_fit_task, (self.token, seed), self.config, self._bx, self._by)
            self._test_rdd.mapPartitions(fit).collect()
            return
        self._model = self._mlp(seed).fit(self._train_df)

    def _mlp(self, seed: int) -> Any:
        from pyspark.ml.classification import MultilayerPerceptronClassifier

        assert self.split is not None
        hidden = self.config["hidden"]  # resolve filled it in (MLlib: [100] as scikit-learn's)
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        layers = [int(self.split.x_train.shape[1]), *map(int, hidden), self.split.n_classes]
        # the resolved configuration's estimator parameters (MLlib's defaults included)
        params = estimator_params(self.config)
        return MultilayerPerceptronClassifier(layers=layers, seed=int(seed), **params)

    def _score_knn(self, rdd: Any) -> np.ndarray:
        task = partial(_predict_task, (self.token, self._seed), self.config, self._bx, self._by)
        results = sorted(rdd.mapPartitions(task).collect(), key=lambda r: r[0])
        self._who = {who for _, _, who, _ in results}
        self._refits = sum(fitted for *_, fitted in results)
        return np.concatenate([pred for _, pred, _, _ in results])

    def _score_mlp(self, frame: Any) -> np.ndarray:
        rows = self._model.transform(frame).select("id", "prediction").collect()
        rows.sort(key=lambda r: r[0])
        return np.array([int(r[1]) for r in rows], dtype=np.int64)

    def _score_keras(self, rdd: Any, bx: Any) -> tuple[np.ndarray, str, bool]:
        assert self._fit is not None
        task = partial(_keras_score_task, *self._keras_args(), self._fit.weights, bx)
        [(pred, who, built)] = rdd.mapPartitions(task).collect()
        return np.asarray(pred, dtype=np.int64), who, bool(built)

    def predict(self) -> np.ndarray:
        if self.keras:  # one task: the weights in, the broadcast test set scored
            pred, who, built = self._score_keras(self._anchor, self._bx_test)
            self._keras_who.add(who)
            self._keras_setups += int(built)
            return pred
        if self.mode_name == "knn":
            return self._score_knn(self._test_rdd)
        return self._score_mlp(self._test_df)

    def predict_train(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The training rows with these indices (all when None) scored as the test set is; a
        subset is shipped for this call and released after it (untimed)."""
        if rows is None:
            return self._predict_train_all()
        assert self.split is not None
        sc = self.spark.sparkContext
        x = self.split.x_train[rows]
        if self.keras:  # the anchor partition's task scores a broadcast of the rows
            bx = sc.broadcast(x)
            try:
                return self._score_keras(self._anchor, bx)[0]
            finally:
                bx.unpersist()
        if self.mode_name == "knn":
            rdd = sc.parallelize(_blocks(x, self.partitions), self.partitions)
            who, refits = self._who, self._refits  # report the test scoring, not this
            try:
                return self._score_knn(rdd)
            finally:
                self._who, self._refits = who, refits
        frame = self._frame(x, self.split.y_train[rows])
        try:
            return self._score_mlp(frame)
        finally:
            frame.unpersist()

    def _predict_train_all(self) -> np.ndarray:
        if self.keras:
            return self._score_keras(self._train_rdd, None)[0]
        if self.mode_name == "knn":
            who, refits = self._who, self._refits  # report the test scoring, not this
            try:
                return self._score_knn(self._train_rdd)
            finally:
                self._who, self._refits = who, refits
        return self._score_mlp(self._train_df)

    def trial_metrics(self) -> dict[str, float]:
        """Partitions of the data; on a cluster, the executors the application has; for knn, how
        many Python worker processes scored the test blocks and how many of them had to fit
        during predict (0 when train's models were reused)."""
        if self.keras:
            return self._keras_metrics()
        out = {"partitions": float(self.partitions)}
        if self.master is not None:
            out["executors"] = float(self.executors())
        if self.mode_name == "knn":
            out["task_processes"] = float(len(self._who))
            out["knn_refits"] = float(self._refits)
        return out

    def _keras_metrics(self) -> dict[str, float]:
        """Keras on Spark: where the fit ran (the Python worker's pid, and the driver's), how
        many Python workers the trial's jobs used, how many had to build the model, and engine
        tensorflow's fit metrics (final_loss, final_val_accuracy, retraced)."""
        from runner.workloads.keras_trainer import fit_metrics

        assert self._fit is not None
        out = {
            "partitions": 1.0,
            "train_pid": float(self._fit.pid),
            "driver_pid": float(os.getpid()),
            "task_processes": float(len(self._keras_who)),
            "keras_setups": float(self._keras_setups),
            **fit_metrics(self._fit),
        }
        if self.master is not None:
            out["executors"] = float(self.executors())
        return out

    def trial_history(self) -> dict[str, list[float]]:
        """Keras on Spark: the fit's per-epoch curves; nothing for the other workloads."""
        return dict(self._fit.history) if self._fit is not None else {}

    def close(self) -> None:
        from pyspark import SparkContext

        if self.spark is not None:
            with contextlib.suppress(Exception):
                self.spark.stop()
        gateway = SparkContext._gateway
        if gateway is not None:
            with contextlib.suppress(Exception):
                gateway.shutdown()
            SparkContext._gateway = None
            SparkContext._jvm = None
        proc = self._proc
        if proc is not None:  # the JVM exits when its stdin closes; make sure it did
            with contextlib.suppress(Exception):
                proc.stdin.close()
            try:
                proc.wait(timeout=15)
            except Exception:
                proc.kill()
                proc.wait(timeout=15)
        self._proc = None
        if self.cluster is not None:  # also after a start that failed halfway
            self.cluster.stop()
            self.cluster = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
