"""Engine ``tensorflow``: Keras 3 on TensorFlow, CPU only.

``start`` imports TensorFlow (GPUs hidden, C++ logging off) and sets its thread pools before the
runtime starts:

- ``strategy = "none"`` (default): in the worker process; intra-op threads =
  ``threads_per_worker``, inter-op threads = ``workers``; Keras' default strategy.
- ``strategy = "mirrored"``: in the worker process; the CPU is split into ``workers`` logical
  devices and ``tf.distribute.MirroredStrategy`` trains one replica on each (synchronous data
  parallelism, gradients all-reduced every step; each global batch of ``batch_size`` rows is
  split over the replicas). The logical devices share one thread pool, so intra-op threads =
  workers x threads_per_worker and inter-op threads = workers (the replicas can run side by
  side).
- ``strategy = "multiworker"``: ``workers`` TensorFlow processes on 127.0.0.1, one replica each,
  trained with ``tf.distribute.MultiWorkerMirroredStrategy`` (``runner.engines.tf_multiworker``
  says how they start, share the data and stop). Intra-op threads = ``threads_per_worker`` per
  process.

With several replicas no replica may get an empty batch (TensorFlow's oneDNN max-pooling gradient
aborts the process on one), so ``batch_size`` must be >= workers (checked with the spec) and a
last training batch of fewer rows than replicas moves to the validation rows
(``keras_models.validation_rows``).

``load`` builds and compiles the model once (inside the strategy's scope) and runs one tiny fit
and predict, so Keras' train, test and predict functions are traced there, not in a trial. Each
trial then re-initialises the same model from its seed (``keras.utils.set_random_seed``; the
weights of a fresh model of the same architecture; the optimizer's slots and step count set back
to zero) and fits it, shuffling with that seed. The trial metric ``retraced`` counts the step
functions traced during the trial (0 when nothing was re-traced; with multiworker the most any
process traced); ``replicas`` is the strategy's number of replicas. ``trial_history()`` gives
the per-epoch ``loss`` and ``accuracy`` on the rows trained on and ``val_loss`` /
``val_accuracy`` on the validation rows, as Keras' ``History`` has them (with multiworker:
aggregated over all processes, from the chief).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runner.datasets import Split
from runner.errors import RunnerError
from runner.workloads import keras_models as km
from runner.workloads import mlp_impl


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null: TensorFlow's native libraries log (oneDNN notices) while
    they load, before TF_CPP_MIN_LOG_LEVEL takes effect. Python errors still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow(intra_threads: int, inter_threads: int) -> tuple[Any, Any]:
    """Import TensorFlow and Keras quietly, CPU only, with these thread pools (before the runtime
    starts). Returns (tf, keras)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["KERAS_BACKEND"] = "tensorflow"
    with _stderr_silenced():
        import keras
        import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    tf.config.threading.set_intra_op_parallelism_threads(intra_threads)
    tf.config.threading.set_inter_op_parallelism_threads(inter_threads)
    return tf, keras


@dataclass(frozen=True)
class FitData:
    """What a configuration trains and predicts on, in the model's input format: the rows fitted
    on, the validation rows held back from them (none when validation_split is 0), and the whole
    training and test sets to predict."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_train: np.ndarray
    x_test: np.ndarray

    @classmethod
    def of(
        cls, workload: str, split: Split, validation_split: float, batch_size: int, replicas: int
    ) -> FitData:
        x = km.inputs(workload, split.x_train, split.image_shape)
        y = km.targets(workload, split.y_train, split.n_classes)
        n_val = km.validation_rows(len(x), validation_split, batch_size, replicas)
        n_fit = len(x) - n_val
        return cls(
            x_fit=x[:n_fit],
            y_fit=y[:n_fit],
            x_val=x[n_fit:] if n_val else None,
            y_val=y[n_fit:] if n_val else None,
            x_train=x,
            x_test=km.inputs(workload, split.x_test, split.image_shape),
        )

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.x_val is None or self.y_val is None:
            return None
        return self.x_val, self.y_val


class Trainer:
    """One Keras model under one strategy, in this process: built, compiled and traced in
    ``load``, re-initialised from the seed and fitted in ``train``.

    ``multiworker`` (a process of a MultiWorkerMirroredStrategy cluster): fit on ``tf.data``
    datasets sharded by rows (``tf_multiworker.ShardedData``), with Keras' multi-worker
    workarounds, and predict with a plain copy of the model (``predict`` then needs no other
    process)."""

    def __init__(
        self,
        tf: Any,
        keras: Any,
        strategy: Any,
        config: Mapping[str, Any],
        *,
        multiworker: bool = False,
    ) -> None:
        self.tf, self.keras, self.strategy = tf, keras, strategy
        self.config = dict(config)
        self.workload = str(config["workload"])
        settings = {**km.defaults(self.workload), **{k: v for k, v in config.items() if v}}
        self.epochs = int(settings["epochs"])
        self.batch_size = int(settings["batch_size"])
        self.multiworker = multiworker
        self.model: Any = None
        self.predictor: Any = None  # multiworker: the plain copy that predicts
        self.data: FitData | None = None
        self.history: dict[str, list[float]] = {}
        self.retraced = 0
        self._shape: tuple[int, ...] = ()
        self._n_classes = 0
        self._traces = 0
        self._stale = False  # the predictor's weights are older than the model's
        self._sharded: Any = None  # multiworker: tf_multiworker.ShardedData

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def _build(self) -> Any:
        return km.build(self.keras, self.workload, self.config, self._shape, self._n_classes)

    def load(self, data: FitData, n_classes: int) -> None:
        self.data = data
        self._n_classes = int(n_classes)
        self._shape = tuple(int(d) for d in data.x_fit.shape[1:])
        with self.strategy.scope():
            self.model = self._build()
            km.compile_model(self.keras, self.model, self.workload, self.config)
        if self.multiworker:
            from runner.engines.tf_multiworker import ShardedData, patch_keras

            patch_keras(self.tf, self.model, self.strategy, data.x_fit[:1], data.y_fit[:1])
            self.predictor = self._build()
            self._sharded = ShardedData(self.tf, data, self.batch_size)
        self._count_traces(self.model)
        if self.predictor is not None:
            self._count_traces(self.predictor)
        # trace train, test and predict now, on a few rows: one full and one partial batch (of
        # one row per replica)
        rows = min(self.batch_size + self.replicas, len(data.x_fit))
        self._fit(seed=0, epochs=1, rows=rows)
        self._stale = True
        self._classes(data.x_test[:rows])

    def _count_traces(self, model: Any) -> None:
        """Count how often Keras traces a step function: the Python body of a step runs only
        while TensorFlow traces it (once per replica), never when the traced graph runs."""

        def counted(step: Any) -> Any:
            def run(data: Any) -> Any:
                self._traces += 1
                return step(data)

            return run

        for name in ("train_step", "test_step", "predict_step"):
            # object.__setattr__: past Keras' attribute tracking; the functions Keras makes from
            # now on call these
            object.__setattr__(model, name, counted(getattr(model, name)))

    def _reset(self, seed: int) -> None:
        """The model as freshly initialised from ``seed``, without re-tracing anything."""
        self.keras.utils.set_random_seed(seed)
        fresh = self._build()  # outside the strategy's scope: plain variables, same layout
        self.model.set_weights(fresh.get_weights())
        optimizer = self.model.optimizer
        rate = getattr(optimizer, "_learning_rate", None)
        for var in optimizer.variables:
            if var is not rate and var.name != "learning_rate":
                var.assign(np.zeros(var.shape, dtype=var.dtype))

    def _fit(self, *, seed: int, epochs: int, rows: int | None = None) -> Any:
        """Fit on the first ``rows`` rows (all by default) and their validation rows."""
        data = self.data
        assert data is not None
        if self._sharded is not None:
            train, val_set = self._sharded.datasets(seed, rows)
            return self.model.fit(
                train, epochs=epochs, validation_data=val_set, shuffle=False, verbose=0
            )
        val = data.validation
        if val is not None and rows is not None:
            val = (val[0][:rows], val[1][:rows])
        return self.model.fit(
            data.x_fit[:rows],
            data.y_fit[:rows],
            batch_size=self.batch_size,
            epochs=epochs,
            validation_data=val,
            shuffle=True,
            verbose=0,
        )

    def train(self, seed: int) -> dict[str, list[float]]:
        before = self._traces
        self._reset(seed)
        history = self._fit(seed=seed, epochs=self.epochs)
        self._stale = True
        self.history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.retraced = self._traces - before
        return self.history

    def _classes(self, x: np.ndarray) -> np.ndarray:
        before = self._traces
        model = self.model
        if self.predictor is not None:
            if self._stale:
                self.predictor.set_weights(self.model.get_weights())
                self._stale = False
            model = self.predictor
        scores = model.predict(x, batch_size=self.batch_size, verbose=0)
        self.retraced += self._traces - before
        return np.asarray(np.argmax(scores, axis=1), dtype=np.int64)

    def predict(self, which: str) -> np.ndarray:
        """Class indices for the ``test`` or the whole ``train`` set."""
        assert self.data is not None
        return self._classes(self.data.x_test if which == "test" else self.data.x_train)

    def close(self) -> None:
        self.model = self.predictor = None
        self.keras.backend.clear_session()


class Session:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self.workload = str(config["workload"])
        if self.workload == "mlp" and mlp_impl(self.config) != "keras":
            raise RunnerError(f"tensorflow runs mlp impl keras only, got {mlp_impl(self.config)}")
        self.workers = int(config.get("workers") or 1)
        self.threads = int(config.get("threads_per_worker") or 1)
        self.strategy_name = str(config.get("strategy") or km.STRATEGIES[0])
        if self.strategy_name not in km.STRATEGIES:
            raise RunnerError(
                f"tensorflow: strategy {self.strategy_name!r} is not supported; use one of "
                f"{', '.join(km.STRATEGIES)}"
            )
        settings = {**km.defaults(self.workload), **{k: v for k, v in config.items() if v}}
        self.batch_size = int(settings["batch_size"])
        self.validation_split = float(config.get("validation_split") or 0.0)
        if self.strategy_name == "multiworker" and self.workers < 2:
            raise RunnerError(
                f"tensorflow: strategy multiworker needs workers >= 2, got {self.workers}"
            )
        if self.strategy_name != "none" and self.batch_size < self.workers:
            raise RunnerError(
                f"tensorflow: strategy {self.strategy_name} splits each batch over the "
                f"{self.workers} workers, so batch_size {self.batch_size} is too small"
            )
        #: the in-process Trainer, or the multiworker Cluster (the same calls)
        self.trainer: Any = None
        self.split: Split | None = None

    def start(self) -> None:
        if self.strategy_name == "multiworker":
            from runner.engines.tf_multiworker import Cluster

            self.trainer = Cluster(self.config, self.workers, self.threads)
            self.trainer.start()
            return
        mirrored = self.strategy_name == "mirrored"
        intra = self.threads * self.workers if mirrored else self.threads
        tf, keras = import_tensorflow(intra, self.workers)
        if mirrored:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(self.workers)]
            )
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices=devices)
        else:
            strategy = tf.distribute.get_strategy()
        self.trainer = Trainer(tf, keras, strategy, self.config)

    def load(self, split: Split) -> None:
        self.split = split
        data = FitData.of(
            self.workload, split, self.validation_split, self.batch_size, self.trainer.replicas
        )
        self.trainer.load(data, split.n_classes)

    def train(self, seed: int) -> None:
        self.trainer.train(seed)

    def predict(self) -> np.ndarray:
        return self.trainer.predict("test")

    def predict_train(self) -> np.ndarray:
        return self.trainer.predict("train")

    def trial_metrics(self) -> dict[str, float]:
        history = self.trainer.history
        out = {"replicas": float(self.trainer.replicas), "retraced": float(self.trainer.retraced)}
        if history.get("loss"):
            out["final_loss"] = history["loss"][-1]
        if history.get("val_accuracy"):
            out["final_val_accuracy"] = history["val_accuracy"][-1]
        return out

    def trial_history(self) -> dict[str, list[float]]:
        """Per-epoch curves of the last trial: loss and accuracy on the rows it trained on, and
        val_loss / val_accuracy on the held-back validation rows (when validation_split > 0)."""
        return {k: list(v) for k, v in self.trainer.history.items()}

    def close(self) -> None:
        trainer, self.trainer = self.trainer, None
        if trainer is not None:
            trainer.close()
