"""One Keras trainer for every place a Keras network trains: engine ``tensorflow`` in its
configuration worker (``strategy`` none or mirrored) and in each process of a multiworker cluster
(``runner.engines.tf_multiworker.MultiWorkerTrainer``, a subclass), and a trainer that lives
inside another engine's process: a Dask worker (as a Dask actor), a Ray actor, or a Spark Python
worker (cached in a module-level dict there). All train the same network with the same settings
(``runner.workloads.keras_models``: the same model, compile settings, validation rows, epochs and
batch size), so a comparison between the engines is apples to apples. Nothing heavy is imported
at module level: this module is imported in worker processes that may never train.

Life cycle, all in the process that holds the trainer:

- ``KerasTrainer(workload, config)`` imports TensorFlow and Keras quietly (``import_keras``: GPUs
  hidden, C++ logging off, the native libraries' load-time notices on fd 2 silenced) and sets
  TensorFlow's thread pools: intra-op threads = ``threads_per_worker``, inter-op threads = 1 (one
  trainer per process; engine ``tensorflow`` with one worker uses the same). A process in which
  TensorFlow's runtime already started keeps its pools (TensorFlow cannot change them then).
  ``KerasTrainer(workload, config, strategy=...)``: the caller (engine tensorflow) imported
  TensorFlow with its own thread pools and made the ``tf.distribute`` strategy; the model is
  built and compiled in the strategy's scope.
- ``load(x_train, y_train, image_shape, n_classes, x_test=None)`` builds and compiles the model
  once (``build``), keeps the data (``FitData``: the last ``validation_split`` of the training
  rows held back for validation) and, the first time, runs a tiny fit and predict on a few rows
  (one full and one partial batch of one row per replica) so Keras' train, test and predict
  functions are traced there, not in a trial. Loading new data of the same shapes later (a Spark
  task's partition) traces nothing.
- ``fit(seed)`` re-initialises the model from ``seed`` (``keras.utils.set_random_seed``; the
  weights of a fresh model of the same architecture, drawn from a private generator; the
  optimizer's slots and step count zeroed), fits it (shuffling with that seed) and returns a
  ``FitResult``: the per-epoch history, where it ran (host:pid), wall-clock start and end
  (``time.time()``, comparable across the processes of one machine), and how many step functions
  were traced during the fit (0 when none; ``retraced`` adds the predictions' since).
- ``predict("test" | "train" | array)`` returns class indices.

Several independent trainers of one trial (paper 000) get seeds from ``trainer_seed(seed, i)``:
trainer 1 uses the trial's seed itself, so it trains exactly the model engine tensorflow trains
for that seed; trainer i uses ``seed + TRAINER_SEED_STRIDE * (i - 1)``.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runner.config import Config
from runner.workloads import keras_models as km

#: Trainer i of a trial (1-based) trains with seed + TRAINER_SEED_STRIDE * (i - 1): trial seeds are
#: consecutive (base seed + ordinal), so no two (trial, trainer) pairs of a run share a seed unless
#: it has a million trials.
TRAINER_SEED_STRIDE = 1_000_000


def trainer_seed(seed: int, index: int) -> int:
    """The seed of trainer ``index`` (1-based) in a trial with ``seed``."""
    if index < 1:
        raise ValueError(f"trainers are numbered from 1, got {index}")
    return int(seed) + TRAINER_SEED_STRIDE * (index - 1)


def where() -> str:
    """This process: host name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


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


def import_keras(intra_threads: int | None = None, inter_threads: int = 1) -> tuple[Any, Any]:
    """Import TensorFlow and Keras in this process, quietly, CPU only, and set TensorFlow's thread
    pools (before its runtime starts; later calls leave them as they are; ``intra_threads`` None:
    leave both as they are). Returns (tf, keras)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["KERAS_BACKEND"] = "tensorflow"
    with _stderr_silenced():
        import keras
        import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    if intra_threads is None:
        return tf, keras
    threading = tf.config.threading
    try:
        if threading.get_intra_op_parallelism_threads() != intra_threads:
            threading.set_intra_op_parallelism_threads(intra_threads)
        if threading.get_inter_op_parallelism_threads() != inter_threads:
            threading.set_inter_op_parallelism_threads(inter_threads)
    except RuntimeError:  # the runtime is up already (an earlier trainer in this process)
        pass
    return tf, keras


@dataclass(frozen=True)
class FitData:
    """What a trainer trains and predicts on, in the model's input format: the rows fitted on,
    the validation rows held back from them (none when validation_split is 0), and the whole
    training set and the test set (if given) to predict."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_train: np.ndarray
    x_test: np.ndarray | None

    @classmethod
    def of(
        cls,
        workload: str,
        x_train: np.ndarray,
        y_train: np.ndarray,
        image_shape: tuple[int, int],
        n_classes: int,
        x_test: np.ndarray | None,
        *,
        validation_split: float,
        batch_size: int,
        replicas: int,
    ) -> FitData:
        x = km.inputs(workload, x_train, image_shape)
        y = km.targets(workload, y_train, n_classes)
        n_val = km.validation_rows(len(x), validation_split, batch_size, replicas)
        n_fit = len(x) - n_val
        return cls(
            x_fit=x[:n_fit],
            y_fit=y[:n_fit],
            x_val=x[n_fit:] if n_val else None,
            y_val=y[n_fit:] if n_val else None,
            x_train=x,
            x_test=None if x_test is None else km.inputs(workload, x_test, image_shape),
        )

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.x_val is None or self.y_val is None:
            return None
        return self.x_val, self.y_val


@dataclass(frozen=True)
class FitResult:
    """What one ``fit`` returns to the driver."""

    seed: int
    history: dict[str, list[float]]
    where: str
    started: float  # time.time() when the fit began, in the trainer's process
    finished: float
    retraced: int
    #: the trained weights, when asked for (a Spark task ships them back to the driver)
    weights: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return int(self.where.rsplit(":", 1)[1])


class KerasTrainer:
    """One Keras network of workload ``cnn`` or ``mlp`` (impl keras), trained again and again in
    the process that holds this object. See the module docstring.

    ``strategy``: a ``tf.distribute`` strategy the caller made after importing TensorFlow with its
    own thread pools; the model is built and compiled in its scope. None: import TensorFlow here
    (``import_keras(threads_per_worker)``) and build outside any strategy's scope."""

    def __init__(
        self,
        workload: str,
        config: Config,
        x_train: np.ndarray | None = None,
        y_train: np.ndarray | None = None,
        image_shape: tuple[int, int] | None = None,
        n_classes: int | None = None,
        x_test: np.ndarray | None = None,
        *,
        strategy: Any = None,
    ) -> None:
        self.workload = str(workload)
        self.config = config
        # the workload's resolve filled these in (keras_models' CNN / MLP defaults)
        self.epochs = int(config["epochs"])
        self.batch_size = int(config["batch_size"])
        self.validation_split = float(config["validation_split"])  # 0 holds back nothing
        self.threads = config.threads_per_worker
        self.strategy = strategy
        self.tf, self.keras = import_keras(None if strategy is not None else self.threads)
        self.model: Any = None
        self.data: FitData | None = None
        #: step functions traced since the last fit began, its predictions included
        self.retraced = 0
        self._shape: tuple[int, ...] = ()
        self._n_classes = 0
        self._image_shape: tuple[int, int] = (0, 0)
        self._traced = False
        self._traces = 0
        if x_train is not None:  # a Dask actor gets its data as constructor arguments
            assert y_train is not None and image_shape is not None and n_classes is not None
            self.load(x_train, y_train, image_shape, n_classes, x_test)

    def where(self) -> str:
        return where()

    @property
    def replicas(self) -> int:
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    # -- set-up -------------------------------------------------------------------------------

    def _scope(self) -> Any:
        return contextlib.nullcontext() if self.strategy is None else self.strategy.scope()

    def build(self, n_features: int, image_shape: tuple[int, int], n_classes: int) -> None:
        """Build and compile the model (once; later calls with the same shapes do nothing)."""
        shape = km.input_shape(self.workload, int(n_features), tuple(image_shape))
        if self.model is not None:
            if (shape, int(n_classes)) != (self._shape, self._n_classes):
                raise ValueError(
                    f"this trainer's model takes {self._shape} -> {self._n_classes} classes, "
                    f"not {shape} -> {n_classes}"
                )
            return
        self._shape, self._n_classes = shape, int(n_classes)
        self._image_shape = (int(image_shape[0]), int(image_shape[1]))
        with self._scope():
            self.model = self._fresh()
            km.compile_model(self.keras, self.model, self.workload, self.config)
        self._count_traces(self.model)

    def _fresh(self) -> Any:
        return km.build(self.keras, self.workload, self.config, self._shape, self._n_classes)

    def load(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        image_shape: tuple[int, int],
        n_classes: int,
        x_test: np.ndarray | None = None,
    ) -> str:
        """Keep the training (and test) data, building and tracing the model the first time.
        Returns where this trainer lives."""
        self.build(int(np.shape(x_train)[1]), image_shape, n_classes)
        self.data = FitData.of(
            self.workload,
            x_train,
            y_train,
            self._image_shape,
            self._n_classes,
            x_test,
            validation_split=self.validation_split,
            batch_size=self.batch_size,
            replicas=self.replicas,
        )
        self._loaded(self.data)
        if not self._traced:
            self._trace()
        return where()

    def _loaded(self, data: FitData) -> None:
        """Called with new data before anything is traced on it (a subclass's hook)."""

    def _trace(self) -> None:
        """Trace train, test and predict now, on a few rows: one full and one partial batch (of
        one row per replica)."""
        assert self.data is not None
        rows = min(self.batch_size + self.replicas, len(self.data.x_fit))
        self._fit(seed=0, epochs=1, rows=rows)
        self._scores(self.data.x_fit[:rows])
        self._traced = True

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

    # -- trials -------------------------------------------------------------------------------

    def _reset(self, seed: int) -> None:
        """The model as freshly initialised from ``seed``, without re-tracing anything.

        Keras draws each initializer's seed from Python's global ``random``, which other threads
        of this process may draw from at the same moment (a Dask worker's event loop does:
        ``dask.sizeof`` and message compression sample with it), and then the weights would
        differ now and then. So the fresh model draws from a private generator in exactly the
        state ``set_random_seed`` gives the global one: the same numbers in every process."""
        from keras.src.random import seed_generator

        self.keras.utils.set_random_seed(int(seed))
        shared = seed_generator.python_random
        seed_generator.python_random = random.Random(int(seed))
        try:
            fresh = self._fresh()  # outside the strategy's scope: plain variables, same layout
        finally:
            seed_generator.python_random = shared
        self.model.set_weights(fresh.get_weights())
        optimizer = self.model.optimizer
        rate = getattr(optimizer, "_learning_rate", None)
        for var in optimizer.variables:
            if var is not rate and var.name != "learning_rate":
                var.assign(np.zeros(var.shape, dtype=var.dtype))

    def _fit(self, *, seed: int, epochs: int, rows: int | None = None) -> Any:
        """Fit on the first ``rows`` rows (all by default) and their validation rows, shuffled
        with the global seed ``_reset`` set. Returns Keras' History."""
        data = self.data
        assert data is not None
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

    def fit(self, seed: int, *, return_weights: bool = False) -> FitResult:
        if self.data is None:
            raise RuntimeError("KerasTrainer.fit before load")
        started = time.time()
        before = self._traces
        self._reset(seed)
        history = self._fit(seed=int(seed), epochs=self.epochs)
        self.retraced = self._traces - before
        return FitResult(
            seed=int(seed),
            history={k: [float(v) for v in vals] for k, vals in history.history.items()},
            where=where(),
            started=started,
            finished=time.time(),
            retraced=self.retraced,
            weights=self.get_weights() if return_weights else None,
        )

    def get_weights(self) -> list[np.ndarray]:
        return [np.asarray(w) for w in self.model.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.model.set_weights(weights)

    def _scores(self, x: np.ndarray) -> Any:
        return self.model.predict(x, batch_size=self.batch_size, verbose=0)

    def predict(self, x: str | np.ndarray = "test", index: np.ndarray | None = None) -> np.ndarray:
        """Class indices for the held test set (``"test"``), the whole held training set
        (``"train"``, validation rows included) or given rows; ``index``: only the held set's
        rows with these indices."""
        if isinstance(x, str):
            if self.data is None:
                raise RuntimeError("KerasTrainer.predict before load")
            rows = {"test": self.data.x_test, "train": self.data.x_train}[x]
            if rows is None:
                raise RuntimeError(f"KerasTrainer holds no {x} set")
            if index is not None:
                rows = rows[np.asarray(index)]
        else:
            rows = km.inputs(self.workload, x, self._image_shape)
        before = self._traces
        scores = self._scores(rows)
        self.retraced += self._traces - before
        return np.asarray(np.argmax(scores, axis=1), dtype=np.int64)

    def close(self) -> None:
        self.model = None
        self.keras.backend.clear_session()


def fit_metrics(fit: FitResult) -> dict[str, float]:
    """Engine tensorflow's per-trial metrics of one fit: final_loss, final_val_accuracy and
    retraced."""
    out = {"retraced": float(fit.retraced)}
    if fit.history.get("loss"):
        out["final_loss"] = fit.history["loss"][-1]
    if fit.history.get("val_accuracy"):
        out["final_val_accuracy"] = fit.history["val_accuracy"][-1]
    return out


def trainers_metrics(
    fits: Sequence[FitResult], predictions: Sequence[np.ndarray], y_test: np.ndarray
) -> dict[str, float]:
    """Metrics of one trial of several independent trainers (000): ``trainers``,
    ``trainer_<i>_accuracy`` (test accuracy of trainer i, from 1) and their mean / min / max,
    ``workers_used`` (distinct processes that trained), ``trainer_overlap_s`` (seconds during which
    every trainer was fitting at once; 0 when they did not overlap), and trainer 1's
    ``final_loss`` / ``final_val_accuracy`` with ``retraced`` summed over the trainers."""
    if not fits or len(fits) != len(predictions):
        raise ValueError(f"{len(fits)} fits but {len(predictions)} predictions")
    y = np.asarray(y_test)
    accuracies = [float(np.mean(np.asarray(pred) == y)) for pred in predictions]
    out: dict[str, float] = {
        "trainers": float(len(fits)),
        "trainer_accuracy_mean": float(np.mean(accuracies)),
        "trainer_accuracy_min": min(accuracies),
        "trainer_accuracy_max": max(accuracies),
        "workers_used": float(len({fit.where for fit in fits})),
        "trainer_overlap_s": max(0.0, min(f.finished for f in fits) - max(f.started for f in fits)),
    }
    out.update({f"trainer_{i}_accuracy": acc for i, acc in enumerate(accuracies, 1)})
    out.update(fit_metrics(fits[0]))
    out["retraced"] = float(sum(fit.retraced for fit in fits))
    return out
