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

The model is trained by ``runner.workloads.keras_trainer.KerasTrainer``, the trainer Keras inside
Dask, Ray and Spark uses too: ``load`` builds and compiles the model once (inside the strategy's
scope) and runs one tiny fit and predict, so Keras' train, test and predict functions are traced
there, not in a trial. Each trial then re-initialises the same model from its seed
(``keras.utils.set_random_seed``; the weights of a fresh model of the same architecture; the
optimizer's slots and step count set back to zero) and fits it, shuffling with that seed. The trial
metric ``retraced`` counts the step functions traced during the trial (0 when nothing was
re-traced; with multiworker the most any process traced); ``replicas`` is the strategy's number of
replicas. ``trial_history()`` gives the per-epoch ``loss`` and ``accuracy`` on the rows trained on
and ``val_loss`` / ``val_accuracy`` on the validation rows, as Keras' ``History`` has them (with
multiworker: aggregated over all processes, from the chief).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runner.config import Config
from runner.datasets import Split
from runner.errors import RunnerError
from runner.workloads import keras_models as km
from runner.workloads import mlp_impl
from runner.workloads.keras_trainer import FitResult, KerasTrainer, fit_metrics, import_keras


class Session:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.workload = config.workload
        if self.workload == "mlp" and mlp_impl(config) != "keras":
            raise RunnerError(f"tensorflow runs mlp impl keras only, got {mlp_impl(config)}")
        self.workers = config.workers
        self.threads = config.threads_per_worker
        self.strategy_name = str(config["strategy"])  # resolve filled it in
        if self.strategy_name not in km.STRATEGIES:
            raise RunnerError(
                f"tensorflow: strategy {self.strategy_name!r} is not supported; use one of "
                f"{', '.join(km.STRATEGIES)}"
            )
        self.batch_size = int(config["batch_size"])  # resolve filled it in
        if self.strategy_name == "multiworker" and self.workers < 2:
            raise RunnerError(
                f"tensorflow: strategy multiworker needs workers >= 2, got {self.workers}"
            )
        if self.strategy_name != "none" and self.batch_size < self.workers:
            raise RunnerError(
                f"tensorflow: strategy {self.strategy_name} splits each batch over the "
                f"{self.workers} workers, so batch_size {self.batch_size} is too small"
            )
        #: the in-process KerasTrainer, or the multiworker Cluster (the same calls)
        self.trainer: Any = None
        self.split: Split | None = None
        self.fitted: FitResult | None = None  # the last trial's fit

    def start(self) -> None:
        if self.strategy_name == "multiworker":
            from runner.engines.tf_multiworker import Cluster

            self.trainer = Cluster(self.config, self.workers, self.threads)
            self.trainer.start()
            return
        mirrored = self.strategy_name == "mirrored"
        intra = self.threads * self.workers if mirrored else self.threads
        tf, _ = import_keras(intra, self.workers)
        if mirrored:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(self.workers)]
            )
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices=devices)
        else:
            strategy = tf.distribute.get_strategy()
        self.trainer = KerasTrainer(self.workload, self.config, strategy=strategy)

    def load(self, split: Split) -> None:
        self.split = split
        self.trainer.load(
            split.x_train, split.y_train, split.image_shape, split.n_classes, split.x_test
        )

    def train(self, seed: int) -> None:
        self.fitted = None
        self.fitted = self.trainer.fit(seed)

    def predict(self) -> np.ndarray:
        return self.trainer.predict("test")

    def predict_train(self, rows: np.ndarray | None = None) -> np.ndarray:
        return self.trainer.predict("train", rows)

    def trial_metrics(self) -> dict[str, float]:
        out = {"replicas": float(self.trainer.replicas)}
        if self.fitted is not None:
            out.update(fit_metrics(self.fitted))
        # the steps traced since the fit began, the predictions' included
        out["retraced"] = float(self.trainer.retraced)
        return out

    def trial_history(self) -> dict[str, list[float]]:
        """Per-epoch curves of the last trial: loss and accuracy on the rows it trained on, and
        val_loss / val_accuracy on the held-back validation rows (when validation_split > 0)."""
        history = {} if self.fitted is None else self.fitted.history
        return {k: list(v) for k, v in history.items()}

    def close(self) -> None:
        trainer, self.trainer = self.trainer, None
        if trainer is not None:
            trainer.close()
