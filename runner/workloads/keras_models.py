"""The Keras networks the ``tensorflow`` engine trains: paper 000's CNN (its Table 1) and paper
002's MLP. Pure descriptions: ``keras`` is passed in by the engine, nothing heavy is imported
here.

- ``cnn``: Conv2D(32, 3x3, ReLU) -> MaxPooling2D(2x2) -> Flatten -> Dense(128, ReLU) ->
  Dense(classes, softmax), sparse categorical cross-entropy, Adam (``learning_rate`` 0.001).
  Input is the dataset's square image with one channel (8x8 digits, 28x28 MNIST-format).
- ``mlp``, ``impl = keras``: 002's network as the scratch one (``runner.workloads.scratch``):
  Dense hidden layers (``hidden`` [100, 50], ``activation`` relu), a Dense(classes) tanh output
  trained on the squared error against one-hot targets, ``0.5 * sum_k (y_k - t_k)^2`` per row
  and averaged over the batch, exactly the scratch network's loss (Keras' ``MeanSquaredError``
  averages over the classes instead, which would scale the gradient by 2 / classes), plain SGD
  with ``learning_rate`` 0.1. ``output = softmax``: softmax + categorical cross-entropy.

Both hold back the last ``validation_split`` of the training rows (Keras' own convention) as a
validation set scored after every epoch; the test set is never looked at during training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from runner.workloads.scratch import DEFAULTS as SCRATCH_DEFAULTS

#: Distribution strategies of the tensorflow engine (``strategy``); the first is the default.
STRATEGIES = ("none", "mirrored", "multiworker")

#: The share of the training rows both Keras networks hold back for validation (Keras' own
#: convention: the last rows). The one default of ``validation_split``: every reader takes it here.
VALIDATION_SPLIT = 0.1

CNN_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 32,
    "learning_rate": 0.001,
    "validation_split": VALIDATION_SPLIT,
}
#: 002's network; SGD with the scratch network's learning rate. 10 epochs reach 0.94-0.96 test
#: accuracy on digits (12 seeds and splits; the scratch network's 30 epochs are not needed here).
KERAS_MLP_DEFAULTS: dict[str, Any] = {
    **SCRATCH_DEFAULTS,
    "epochs": 10,
    "validation_split": VALIDATION_SPLIT,
}
#: The MLP's activation names (scikit-learn's) -> Keras'.
KERAS_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
#: The smallest image side the CNN takes: a valid 3x3 convolution then a 2x2 pool.
CNN_MIN_SIDE = 4


def input_shape(workload: str, n_features: int, image_shape: tuple[int, int]) -> tuple[int, ...]:
    return (*image_shape, 1) if workload == "cnn" else (n_features,)


def build(
    keras: Any,
    workload: str,
    config: Mapping[str, Any],
    shape: tuple[int, ...],
    n_classes: int,
) -> Any:
    """An uncompiled, built model (its weights drawn from Keras' global seed)."""
    layers = keras.layers
    if workload == "cnn":
        stack = [
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(n_classes, activation="softmax"),
        ]
    else:
        # the workload's resolve filled these in (KERAS_MLP_DEFAULTS)
        hidden = config["hidden"]
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        act = KERAS_ACTIVATIONS[str(config["activation"])]
        output = str(config["output"])
        stack = [layers.Dense(int(h), activation=act) for h in hidden]
        stack.append(layers.Dense(n_classes, activation=output))
    return keras.Sequential([keras.Input(shape=shape), *stack])


def half_squared_error(y_true: Any, y_pred: Any) -> Any:
    """Per row ``0.5 * sum_k (y_pred_k - y_true_k)^2``: the scratch network's loss."""
    from keras import ops

    diff = ops.subtract(y_pred, y_true)
    return 0.5 * ops.sum(ops.square(diff), axis=-1)


def compile_model(keras: Any, model: Any, workload: str, config: Mapping[str, Any]) -> None:
    rate = float(config["learning_rate"])  # resolve filled it in (CNN / MLP defaults)
    if workload == "cnn":
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=rate),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        return
    softmax = str(config["output"]) == "softmax"
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=rate),
        loss=keras.losses.CategoricalCrossentropy() if softmax else half_squared_error,
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def inputs(workload: str, x: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Flattened float32 rows -> the model's input (images with one channel for the CNN)."""
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(len(x), *image_shape, 1) if workload == "cnn" else x


def targets(workload: str, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Integer labels for the CNN; one-hot float32 rows for the MLP."""
    y = np.asarray(y, dtype=np.int64)
    if workload == "cnn":
        return y
    onehot = np.zeros((len(y), n_classes), dtype=np.float32)
    onehot[np.arange(len(y)), y] = 1.0
    return onehot


def validation_rows(n: int, validation_split: float, batch_size: int, replicas: int = 1) -> int:
    """How many of the last training rows are held back for validation (0: none).

    With several replicas (MirroredStrategy) no replica may get an empty batch: TensorFlow's
    oneDNN max-pooling gradient aborts the process on one, and evaluating fewer rows than
    replicas fails. So the validation rows are at least ``replicas``, and a last training batch
    of fewer than ``replicas`` rows moves to the validation rows (at most replicas - 1 rows).
    The validation rows are also a multiple of ``replicas`` where the data allow: a first
    validation batch that splits unevenly over the replicas (143 rows over 2 when the batch
    holds all of them) fails to trace in Keras 3 (``AddN ... [72,8,8,1] != [71,8,8,1]``)."""
    n_val = 0
    if validation_split > 0 and n >= 2:
        n_val = min(max(math.floor(n * validation_split), replicas), n - 1)

    def short(v: int) -> bool:  # a last training batch of fewer rows than replicas
        rest = (n - v) % batch_size
        return 0 < rest < replicas and n - v > rest

    if n_val and replicas > 1:
        # the fewest extra rows that make both hold (a few at most); else the old rule only
        for v in range(n_val, min(n_val + 4 * replicas, n - replicas) + 1):
            if v % replicas == 0 and not short(v):
                return v
    if short(n_val):
        n_val += (n - n_val) % batch_size
    return n_val
