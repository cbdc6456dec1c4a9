"""Engine ``tensorflow`` with ``strategy = "multiworker"``: ``workers`` TensorFlow processes on
127.0.0.1 trained with ``tf.distribute.MultiWorkerMirroredStrategy``, the way paper 003 ran it
(one process per worker, the cluster described by ``TF_CONFIG``, worker 0 the chief).

Processes. ``Cluster.start`` (the configuration's setup_s) starts ``python -m
runner.engines.tf_multiworker FD`` ``workers`` times, each talking to the configuration worker
over its end of a socket pair (pickled messages, ``multiprocessing.connection``). They are
children of the configuration worker, so the trial loop's ``--timeout`` kill of that process tree
reaches them, and each also exits on its own when its parent is gone. Each imports TensorFlow
with intra-op threads = ``threads_per_worker`` and inter-op threads = 2 (with 1, the collective
ops of a step wait on each other and training deadlocks), picks a free port on 127.0.0.1 and
reports it; once every port is known, each gets ``TF_CONFIG = {"cluster": {"worker":
["127.0.0.1:p0", ...]}, "task": {"type": "worker", "index": i}}`` and creates the strategy (one
CPU replica per process, so replicas = workers). Picking the ports after the import keeps the
window in which another program could take one to milliseconds. The processes' stdout and
stderr (TensorFlow's native logging included) go to a log file per process in a temporary
directory, never to the terminal; its last line is quoted when a process dies.

Data. ``Cluster.load`` (load_s) writes the split's training and test sets as ``.npy`` files; every
process maps them and holds back the same validation rows (``keras_trainer.FitData``), so all train
on the same rows (the files are removed once all have them, and written again if the cluster is
restarted). The rows are fed to ``model.fit`` as a ``tf.data`` dataset shuffled with the trial's
seed (the same order in every process), batched to the global ``batch_size`` and sharded with
``AutoShardPolicy.DATA``: each global batch is split over the workers (per-replica batch
``batch_size / workers``, one optimizer step per global batch, gradients all-reduced every step),
as MultiWorkerMirroredStrategy does with a batch of global size. (``OFF`` would make every process
train on every row, ``FILE`` needs file-based input.) The validation rows are sharded the same way.
Each process builds, compiles and traces the model in ``load`` (``MultiWorkerTrainer``: engine
tensorflow's ``keras_trainer.KerasTrainer`` with the data and the predictions below), and every
trial re-initialises it from the seed in every process identically.

Trials. ``fit(seed)`` sends the seed to every process and returns when all have fitted (the
configuration worker times it as train_s: the whole synchronous training). Predictions of the
test and training sets come from the chief alone, with a plain (not distributed) copy of the
model given the trained weights, so they need no other process (infer_s). The per-epoch history
is the chief's: Keras reads each epoch's metrics from its metric variables, which are summed
over all processes, so they are those of all rows.

Failures. A process that raises or dies while the cluster works makes that call raise
``RunnerError`` naming the process and its exit code or error (and its log's last line); the
configuration worker waits on every process at once, so it never hangs on a dead peer. The
cluster is then killed and started afresh within the failed trial (its wall_s), so the next
trial runs on a whole cluster; if that restart fails too, every later trial fails at once with
that error. ``close`` stops every process (``stop``, then kill after 10 s), also after failures.

Keras 3.15 and MultiWorkerMirroredStrategy (``patch_keras``, in these processes only): ``fit``
reduces a data batch with ``strategy.reduce`` over an (x, y) tuple, which the collective
strategy cannot convert (keras-team/keras#20585, tensorflow/tensorflow#72388), and reduces each
step's scalar logs with ``axis=0``, which fails on scalars. So the model is built explicitly in
``load`` and Keras' own build skipped, and each step's logs are the local replica's (unused:
the epoch's metrics come from the metric variables, as above).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from runner.config import Config
from runner.errors import RunnerError
from runner.workloads.keras_trainer import FitData, FitResult, KerasTrainer, import_keras

#: Inter-op threads per process: collective ops need a second one (1 deadlocks).
INTER_OP_THREADS = 2
#: Seconds ``close`` waits for a process to stop before killing it.
STOP_GRACE_S = 10.0
_ARRAYS = ("x_train", "y_train", "x_test")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    lines = [line.strip() for line in lines if line.strip()]
    return lines[-1][:300] if lines else ""


class Cluster:
    """The processes of one multiworker configuration, driven from the configuration worker.
    The same calls as ``keras_trainer.KerasTrainer``: ``load``, ``fit``, ``predict``, ``close``."""

    def __init__(self, config: Config, workers: int, threads: int) -> None:
        self.config = config
        self.workers = int(workers)
        self.threads = int(threads)
        self.retraced = 0
        self.replicas = self.workers
        self._dir: Path | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._conns: list[Connection] = []
        self._data: dict[str, Any] = {}  # the split's arrays, to load again after a restart
        self._image_shape: tuple[int, int] = (0, 0)
        self._n_classes = 0
        self._broken: str | None = None

    # -- processes ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="trialkit-tf-multiworker-"))
        import runner

        env = {
            **os.environ,
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONWARNINGS": "ignore",
            # this checkout's runner package, whatever the working directory
            "PYTHONPATH": os.pathsep.join(
                p
                for p in (str(Path(runner.__file__).parent.parent), os.environ.get("PYTHONPATH"))
                if p
            ),
        }
        try:
            for index in range(self.workers):
                self._spawn(index, env)
            for index in range(self.workers):
                # the stored dict: the process makes it a Config again (``serve``)
                init = {"kind": "init", "index": index, "config": self.config.to_dict()}
                self._send(index, {**init, "threads": self.threads, "parent_pid": os.getpid()})
            ports = self._gather("start-up", "port")
            addresses = [f"127.0.0.1:{ports[i]['port']}" for i in range(self.workers)]
            self._send_all({"kind": "cluster", "addresses": addresses})
            ready = self._gather("start-up", "ready")
        except BaseException:
            self._kill()
            raise
        self.replicas = int(ready[0]["replicas"])

    def _spawn(self, index: int, env: Mapping[str, str]) -> None:
        """Start process ``index``: ``python -m runner.engines.tf_multiworker FD``, talking over
        one end of a socket pair, its output to its log file."""
        ours, theirs = socket.socketpair()
        with ours, theirs, open(self._log(index), "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(theirs.fileno(),),
                env=dict(env),
            )
            self._procs.append(proc)
            self._conns.append(Connection(ours.detach()))

    def pids(self) -> list[int]:
        """The processes' ids (the chief's first)."""
        return [int(p.pid) for p in self._procs]

    def _log(self, index: int) -> Path:
        assert self._dir is not None
        return self._dir / f"worker-{index}.log"

    def _send_all(self, message: dict[str, Any]) -> None:
        for index in range(len(self._conns)):
            self._send(index, message)

    def _send(self, index: int, message: dict[str, Any]) -> None:
        try:
            self._conns[index].send(message)
        except (BrokenPipeError, OSError):
            raise self._died(index, str(message["kind"])) from None

    def _died(self, index: int, phase: str) -> RunnerError:
        proc = self._procs[index]
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
        code = proc.returncode if proc.returncode is not None else "unknown"
        last = _last_line(self._log(index))
        return RunnerError(
            f"tensorflow multiworker: worker {index} (pid {proc.pid}) died during {phase} "
            f"(exit code {code})" + (f"; its log ends: {last}" if last else "")
        )

    def _gather(
        self, phase: str, kind: str, indices: list[int] | None = None
    ) -> dict[int, dict[str, Any]]:
        """Each listed process's next message (all by default), which must be ``kind``. Waits on
        every process's connection at once (a process that dies closes its end) and raises as
        soon as any process dies or one reports an error, so a peer stuck in a collective op
        never makes this hang."""
        pending = set(range(self.workers) if indices is None else indices)
        replies: dict[int, dict[str, Any]] = {}
        index_of = {id(conn): i for i, conn in enumerate(self._conns)}
        while pending:
            for ready in wait(self._conns):
                index = index_of[id(ready)]
                try:
                    message = self._conns[index].recv()
                except (EOFError, OSError):
                    raise self._died(index, phase) from None
                if message.get("kind") == "error":
                    raise RunnerError(
                        f"tensorflow multiworker: worker {index} failed during {phase}: "
                        f"{message['error']}"
                    )
                if index not in pending or message.get("kind") != kind:
                    raise RunnerError(
                        f"tensorflow multiworker: worker {index} answered {message.get('kind')!r} "
                        f"during {phase}, expected {kind!r}"
                        + ("" if index in pending else " from others")
                    )
                replies[index] = message
                pending.discard(index)
        return replies

    def _kill(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(OSError):
                proc.kill()
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_GRACE_S)
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []

    def _restart(self) -> None:
        """A new cluster after a failure, the data loaded again (or ``_broken`` set)."""
        self._kill()
        try:
            self.start()
            if self._data:
                self._ship()
        except Exception as exc:
            self._kill()
            self._broken = str(exc).splitlines()[0]

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(Exception):
                conn.send({"kind": "stop"})
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(deadline - time.monotonic(), 0.1))
        self._kill()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- the work -------------------------------------------------------------------------------

    def load(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        image_shape: tuple[int, int],
        n_classes: int,
        x_test: np.ndarray | None = None,
    ) -> None:
        self._data = {"x_train": x_train, "y_train": y_train, "x_test": x_test}
        self._image_shape = (int(image_shape[0]), int(image_shape[1]))
        self._n_classes = int(n_classes)
        self._ship()

    def _ship(self) -> None:
        """Every process loads the data (``.npy`` files it maps, removed once all have them)."""
        assert self._dir is not None and self._data
        written = []
        for name in _ARRAYS:
            array = self._data[name]
            if array is not None:
                written.append(self._dir / f"{name}.npy")
                np.save(written[-1], np.ascontiguousarray(array))
        message = {
            "kind": "load",
            "dir": str(self._dir),
            "image_shape": self._image_shape,
            "n_classes": self._n_classes,
        }
        try:
            self._send_all(message)
            self._gather("load", "loaded")
        finally:
            for path in written:
                path.unlink(missing_ok=True)

    def _call(self, phase: str, kind: str, message: dict[str, Any], indices: list[int]) -> Any:
        if self._broken is not None:
            raise RunnerError(
                f"tensorflow multiworker: the cluster could not be started again after an "
                f"earlier failure: {self._broken}"
            )
        try:
            for index in indices:
                self._send(index, message)
            return self._gather(phase, kind, indices)
        except RunnerError:
            self._restart()
            raise

    def fit(self, seed: int) -> FitResult:
        """The chief's fit (its history is of all rows), with the most steps any process traced."""
        self.retraced = 0
        replies = self._call(
            "training", "fitted", {"kind": "fit", "seed": int(seed)}, list(range(self.workers))
        )
        self.retraced = max(int(r["fit"].retraced) for r in replies.values())
        return dataclasses.replace(replies[0]["fit"], retraced=self.retraced)

    def predict(self, which: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The chief's predictions for the held ``which`` set (``test`` or ``train``), or for the
        held rows with these indices."""
        message = {"kind": "predict", "which": which, "rows": rows}
        reply = self._call("prediction", "predicted", message, [0])
        self.retraced += int(reply[0]["retraced"])
        return np.asarray(reply[0]["classes"], dtype=np.int64)


# -- in each TensorFlow process ---------------------------------------------------------------


class ShardedData:
    """The rows to fit on and the validation rows as ``tf.data`` datasets, made once; each fit
    shuffles the rows with its seed (the same order in every process), batches them to the
    global batch size and shards them by rows (``AutoShardPolicy.DATA``): Keras' distribution
    then gives each process its part of every global batch."""

    def __init__(self, tf: Any, data: Any, batch_size: int) -> None:
        self.tf = tf
        self.batch_size = int(batch_size)
        self.n_fit = len(data.x_fit)
        self._fit = tf.data.Dataset.from_tensor_slices((data.x_fit, data.y_fit))
        val = data.validation
        self._val = None if val is None else tf.data.Dataset.from_tensor_slices(val)
        self._options = tf.data.Options()
        self._options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )

    def datasets(self, seed: int, rows: int | None = None) -> tuple[Any, Any]:
        """(fit, validation) datasets of the first ``rows`` rows (all by default)."""
        fit, n = self._fit, self.n_fit
        val = self._val
        if rows is not None:
            fit, n = fit.take(rows), min(rows, n)
            val = None if val is None else val.take(rows)
        fit = fit.shuffle(n, seed=int(seed), reshuffle_each_iteration=True)
        fit = fit.batch(self.batch_size).with_options(self._options)
        if val is not None:
            val = val.batch(self.batch_size).with_options(self._options)
        return fit, val


class MultiWorkerTrainer(KerasTrainer):
    """Engine tensorflow's trainer in one process of the cluster: fits on ``tf.data`` datasets
    sharded by rows (``ShardedData``), with Keras' multi-worker workarounds (``patch_keras``),
    and predicts with a plain copy of the model (``predict`` then needs no other process)."""

    def __init__(self, config: Config, strategy: Any) -> None:
        super().__init__(config.workload, config, strategy=strategy)
        self.predictor: Any = None  # the plain copy that predicts
        self._stale = False  # the predictor's weights are older than the model's
        self._sharded: ShardedData | None = None

    def _loaded(self, data: FitData) -> None:
        if self.predictor is None:
            patch_keras(self.tf, self.model, self.strategy, data.x_fit[:1], data.y_fit[:1])
            self.predictor = self._fresh()
            self._count_traces(self.predictor)
        self._sharded = ShardedData(self.tf, data, self.batch_size)

    def _fit(self, *, seed: int, epochs: int, rows: int | None = None) -> Any:
        assert self._sharded is not None
        train, val = self._sharded.datasets(seed, rows)
        self._stale = True
        return self.model.fit(train, epochs=epochs, validation_data=val, shuffle=False, verbose=0)

    def _scores(self, x: np.ndarray) -> Any:
        if self._stale:
            self.predictor.set_weights(self.model.get_weights())
            self._stale = False
        return self.predictor.predict(x, batch_size=self.batch_size, verbose=0)

    def close(self) -> None:
        self.predictor = None
        super().close()


def patch_keras(tf: Any, model: Any, strategy: Any, x_sample: Any, y_sample: Any) -> None:
    """Keras 3's workarounds for MultiWorkerMirroredStrategy (see the module docstring): build
    ``model`` now and skip the symbolic build ``fit`` would do; per-step logs from the local
    replica instead of a failing ``axis=0`` reduction of scalars."""
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    if not getattr(original, "trialkit_patched", False):

        def reduce_per_replica(values: Any, strat: Any, reduction: str) -> Any:
            if reduction == "auto" and isinstance(strat, tf.distribute.MultiWorkerMirroredStrategy):
                reduction = "first"
            return original(values, strat, reduction)

        reduce_per_replica.trialkit_patched = True  # type: ignore[attr-defined]
        keras_trainer.reduce_per_replica = reduce_per_replica
    with strategy.scope():
        model._symbolic_build(data_batch=(x_sample, y_sample))

    def built(iterator: Any = None, data_batch: Any = None) -> None:
        return None

    object.__setattr__(model, "_maybe_symbolic_build", built)


def _exit_with_parent(parent_pid: int) -> None:
    """Exit when the configuration worker is gone, even while stuck in a collective op."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _load_data(folder: str) -> dict[str, Any]:
    arrays = {}
    for name in _ARRAYS:
        path = Path(folder) / f"{name}.npy"
        arrays[name] = np.load(path, mmap_mode="r") if path.exists() else None
    return arrays


def _error(exc: BaseException) -> dict[str, Any]:
    first = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return {"kind": "error", "error": first + "\n" + "".join(traceback.format_exception(exc))}


def serve(conn: Connection) -> None:
    """A TensorFlow process: start as the ``init`` message says, then answer the cluster's
    messages (``cluster``, ``load``, ``fit``, ``predict``, ``stop``) until told to stop."""
    try:
        init = conn.recv()
        index, threads = int(init["index"]), int(init["threads"])
        config = Config.from_mapping(init["config"])
        _exit_with_parent(int(init["parent_pid"]))
        tf, _ = import_keras(int(threads), INTER_OP_THREADS)
        conn.send({"kind": "port", "port": free_port()})
        message = conn.recv()
        os.environ["TF_CONFIG"] = json.dumps(
            {
                "cluster": {"worker": list(message["addresses"])},
                "task": {"type": "worker", "index": int(index)},
            }
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        trainer = MultiWorkerTrainer(config, strategy)
        conn.send({"kind": "ready", "replicas": trainer.replicas})
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send(_error(exc))
        os._exit(1)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        kind = message["kind"]
        if kind == "stop":
            break
        try:
            if kind == "load":
                arrays = _load_data(message["dir"])
                shape, classes = tuple(message["image_shape"]), int(message["n_classes"])
                trainer.load(arrays["x_train"], arrays["y_train"], shape, classes, arrays["x_test"])
                reply: dict[str, Any] = {"kind": "loaded"}
            elif kind == "fit":
                reply = {"kind": "fitted", "fit": trainer.fit(int(message["seed"]))}
            elif kind == "predict":
                before = trainer.retraced
                classes = trainer.predict(str(message["which"]), message.get("rows"))
                reply = {
                    "kind": "predicted",
                    "classes": classes,
                    "retraced": trainer.retraced - before,
                }
            else:
                reply = {"kind": "error", "error": f"unknown message {kind!r}"}
        except Exception as exc:
            reply = _error(exc)
        conn.send(reply)
    sys.stdout.flush()
    sys.stderr.flush()
    # no interpreter shutdown: TensorFlow's collective runtime can hang tearing down
    os._exit(0)


if __name__ == "__main__":  # python -m runner.engines.tf_multiworker FD (Cluster.start)
    serve(Connection(int(sys.argv[1])))
