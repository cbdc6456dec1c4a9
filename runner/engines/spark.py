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
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from runner.datasets import Split
from runner.workloads import get_workload

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


def _model(key: tuple[str, int], config: Mapping[str, Any], bx: Any, by: Any) -> tuple[Any, bool]:
    """The fitted model for ``key`` in this Python worker, fitting it if absent. Returns
    (model, fitted_now)."""
    model = _MODELS.get(key)
    if model is not None:
        return model, False
    _MODELS.clear()  # one configuration and seed at a time: free the previous trial's model
    single = {**config, "threads_per_worker": 1}
    model = get_workload(str(config["workload"])).fit(single, key[1], bx.value, by.value)
    _MODELS[key] = model
    return model, True


def _touch_task(
    config: Mapping[str, Any], bx: Any, by: Any, blocks: Iterable[tuple[int, np.ndarray]]
) -> Iterator[int]:
    """Load: read the broadcast in this Python worker, import the estimator's library, and count
    this partition's rows."""
    _ = (bx.value.shape, by.value.shape)
    get_workload(str(config["workload"])).preload(config)
    yield sum(len(block) for _, block in blocks)


def _fit_task(
    key: tuple[str, int],
    config: Mapping[str, Any],
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
    config: Mapping[str, Any],
    bx: Any,
    by: Any,
    blocks: Iterable[tuple[int, np.ndarray]],
) -> Iterator[tuple[int, np.ndarray, str, bool]]:
    for start, block in blocks:
        model, fitted = _model(key, config, bx, by)
        yield start, np.asarray(model.predict(block)), _who(), fitted


def _is_loopback(address: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(address if "://" in address else f"spark://{address}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _blocks(x: np.ndarray, parts: int) -> list[tuple[int, np.ndarray]]:
    starts = np.cumsum([0] + [len(b) for b in np.array_split(x, parts)])[:-1]
    return [(int(s), b) for s, b in zip(starts, np.array_split(x, parts), strict=True)]


class Session:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self.workload = get_workload(str(config["workload"]))
        self.workers = int(config.get("workers") or 1)
        self.threads = int(config.get("threads_per_worker") or 1)
        self.memory_gb = config.get("memory_gb")
        self.mode = str(config.get("spark_mode") or "local")
        self.slots = self.workers * self.threads
        self.partitions = max(self.slots, 2)
        self.token = uuid.uuid4().hex
        self.spark: Any = None
        self.split: Split | None = None
        self._tmp: Path | None = None
        self._proc: Any = None
        self.cluster: Any = None  # StandaloneCluster in spark_mode "standalone"
        self.master: str | None = None  # URL of the cluster master, None for local[N]
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

    # -- life cycle -------------------------------------------------------------------------

    def _conf(self) -> Any:
        from pyspark import SparkConf

        assert self._tmp is not None
        log4j = self._tmp / "log4j2.properties"
        log4j.write_text(_LOG4J2, encoding="utf-8")
        address = self.master
        conf = (
            SparkConf()
            .setAppName("trialkit")
            .set("spark.ui.enabled", "false")
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.sql.shuffle.partitions", str(self.partitions))
            .set("spark.default.parallelism", str(self.partitions))
            .set("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
            .set("spark.local.dir", str(self._tmp / "local"))
        )
        if address:
            conf.setMaster(str(address))
            conf.set("spark.executor.cores", str(self.threads))
            conf.set("spark.cores.max", str(self.slots))
        else:
            conf.setMaster(f"local[{self.slots}]")
        if not address or _is_loopback(str(address)):
            # everything on this machine: no need to guess a routable interface
            conf.set("spark.driver.host", "127.0.0.1")
            conf.set("spark.driver.bindAddress", "127.0.0.1")
        if self.memory_gb:
            memory = f"{max(int(float(self.memory_gb) * 1024), 1)}m"
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
        sc.parallelize(range(self.partitions), self.partitions).count()

    def executors(self) -> int:
        """Executors registered with the application (the driver not counted)."""
        status = self.spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
        return max(int(status.size()) - 1, 0)

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
        if self.workload.name == "knn":
            self._load_knn(split)
        else:
            self._load_mlp(split)

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
        if self.workload.name == "knn":
            fit = partial(_fit_task, (self.token, seed), self.config, self._bx, self._by)
            self._test_rdd.mapPartitions(fit).collect()
            return
        self._model = self._mlp(seed).fit(self._train_df)

    def _mlp(self, seed: int) -> Any:
        from pyspark.ml.classification import MultilayerPerceptronClassifier

        assert self.split is not None
        hidden = self.config.get("hidden", [100])
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        layers = [int(self.split.x_train.shape[1]), *map(int, hidden), self.split.n_classes]
        return MultilayerPerceptronClassifier(
            layers=layers,
            solver=str(self.config.get("solver") or "l-bfgs"),
            maxIter=int(self.config.get("epochs") or 100),
            blockSize=int(self.config.get("batch_size") or 128),
            stepSize=float(self.config.get("learning_rate") or 0.03),
            seed=int(seed),
        )

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

    def predict(self) -> np.ndarray:
        if self.workload.name == "knn":
            return self._score_knn(self._test_rdd)
        return self._score_mlp(self._test_df)

    def predict_train(self) -> np.ndarray:
        if self.workload.name == "knn":
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
        out = {"partitions": float(self.partitions)}
        if self.master is not None:
            out["executors"] = float(self.executors())
        if self.workload.name == "knn":
            out["task_processes"] = float(len(self._who))
            out["knn_refits"] = float(self._refits)
        return out

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
