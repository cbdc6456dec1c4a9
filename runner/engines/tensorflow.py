"""Engine ``tensorflow``: Keras 3 on TensorFlow, CPU only, in the worker process.

``start`` imports TensorFlow (GPUs hidden, C++ logging off) and sets its thread pools before the
runtime starts:

- ``strategy = "none"`` (default): intra-op threads = ``threads_per_worker``, inter-op threads =
  ``workers``; Keras' default strategy.
- ``strategy = "mirrored"``: the CPU is split into ``workers`` logical devices and
  ``tf.distribute.MirroredStrategy`` trains one replica on each (synchronous data parallelism,
  gradients all-reduced every step; each global batch of ``batch_size`` rows is split over the
  replicas). The logical devices share one thread pool, so intra-op threads = workers x
  threads_per_worker and inter-op threads = workers (the replicas can run side by side).
  No replica may get an empty batch (TensorFlow's oneDNN max-pooling gradient aborts the
  process on one), so ``batch_size`` must be >= workers (checked with the spec) and a last
  training batch of fewer rows than replicas moves to the validation rows
  (``keras_models.validation_rows``).

``load`` builds and compiles the model once (inside the strategy's scope) and runs one tiny fit
and predict, so Keras' train, test and predict functions are traced there, not in a trial. Each
trial then re-initialises the same model from its seed (``keras.utils.set_random_seed``; the
weights of a fresh model of the same architecture; the optimizer's slots and step count set back
to zero) and fits it, shuffling with that seed. The trial metric ``retraced`` counts the step
functions traced during the trial (0 when nothing was re-traced); ``replicas`` is the strategy's
number of replicas.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
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
        self.epochs = int(settings["epochs"])
        self.batch_size = int(settings["batch_size"])
        self.validation_split = float(config.get("validation_split") or 0.0)
        self.tf: Any = None
        self.keras: Any = None
        self.strategy: Any = None
        self.model: Any = None
        self.split: Split | None = None
        self._shape: tuple[int, ...] = ()
        self._n_classes = 0
        self._x_fit: np.ndarray | None = None
        self._y_fit: np.ndarray | None = None
        self._val: tuple[np.ndarray, np.ndarray] | None = None
        self._x_train: np.ndarray | None = None
        self._x_test: np.ndarray | None = None
        self._traces = 0
        self._retraced = 0
        self._history: dict[str, list[float]] = {}

    def start(self) -> None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        os.environ["KERAS_BACKEND"] = "tensorflow"
        with _stderr_silenced():
            import keras
            import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        self.tf, self.keras = tf, keras
        mirrored = self.strategy_name == "mirrored"
        intra = self.threads * self.workers if mirrored else self.threads
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(self.workers)
        if mirrored:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(self.workers)]
            )
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            self.strategy = tf.distribute.MirroredStrategy(devices=devices)
        else:
            self.strategy = tf.distribute.get_strategy()

    def _build(self) -> Any:
        return km.build(self.keras, self.workload, self.config, self._shape, self._n_classes)

    def load(self, split: Split) -> None:
        self.split = split
        self._n_classes = split.n_classes
        n_features = int(split.x_train.shape[1])
        self._shape = km.input_shape(self.workload, n_features, split.image_shape)
        x = km.inputs(self.workload, split.x_train, split.image_shape)
        y = km.targets(self.workload, split.y_train, self._n_classes)
        replicas = int(self.strategy.num_replicas_in_sync)
        n_val = km.validation_rows(len(x), self.validation_split, self.batch_size, replicas)
        n_fit = len(x) - n_val
        self._x_fit, self._y_fit = x[:n_fit], y[:n_fit]
        self._val = (x[n_fit:], y[n_fit:]) if n_val else None
        self._x_train = x
        self._x_test = km.inputs(self.workload, split.x_test, split.image_shape)
        with self.strategy.scope():
            self.model = self._build()
            km.compile_model(self.keras, self.model, self.workload, self.config)
        self._count_traces()
        # trace train, test and predict now, on a few rows: one full and one partial batch (of
        # one row per replica)
        rows = min(self.batch_size + replicas, n_fit)
        val = None
        if self._val is not None:
            val = (self._val[0][:rows], self._val[1][:rows])
        self.model.fit(
            self._x_fit[:rows],
            self._y_fit[:rows],
            batch_size=self.batch_size,
            epochs=1,
            validation_data=val,
            shuffle=True,
            verbose=0,
        )
        self.model.predict(self._x_test[:rows], batch_size=self.batch_size, verbose=0)

    def _count_traces(self) -> None:
        """Count how often Keras traces a step function: the Python body of a step runs only
        while TensorFlow traces it (once per replica), never when the traced graph runs."""
        model = self.model

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

    def train(self, seed: int) -> None:
        assert self._x_fit is not None and self._y_fit is not None
        before = self._traces
        self._reset(seed)
        history = self.model.fit(
            self._x_fit,
            self._y_fit,
            batch_size=self.batch_size,
            epochs=self.epochs,
            validation_data=self._val,
            shuffle=True,
            verbose=0,
        )
        self._history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self._retraced = self._traces - before

    def _classes(self, x: np.ndarray | None) -> np.ndarray:
        assert x is not None
        before = self._traces
        scores = self.model.predict(x, batch_size=self.batch_size, verbose=0)
        self._retraced += self._traces - before
        return np.asarray(np.argmax(scores, axis=1), dtype=np.int64)

    def predict(self) -> np.ndarray:
        return self._classes(self._x_test)

    def predict_train(self) -> np.ndarray:
        return self._classes(self._x_train)

    def trial_metrics(self) -> dict[str, float]:
        out = {
            "replicas": float(self.strategy.num_replicas_in_sync),
            "retraced": float(self._retraced),
        }
        if self._history.get("loss"):
            out["final_loss"] = self._history["loss"][-1]
        if self._history.get("val_accuracy"):
            out["final_val_accuracy"] = self._history["val_accuracy"][-1]
        return out

    def trial_history(self) -> dict[str, list[float]]:
        """Per-epoch curves of the last trial: loss and accuracy on the rows it trained on, and
        val_loss / val_accuracy on the held-back validation rows (when validation_split > 0)."""
        return {k: list(v) for k, v in self._history.items()}

    def close(self) -> None:
        self.model = None
        if self.keras is not None:
            self.keras.backend.clear_session()
