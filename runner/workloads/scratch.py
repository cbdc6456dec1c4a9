"""A fully connected network written from scratch in NumPy: paper 002's "local scratch"
implementation (after Aflak's tutorial), and the network the distributed engines train with
synchronous data-parallel mini-batch gradient descent.

Default shape is 002's: inputs-100-50-classes, ReLU on the hidden layers and tanh on the output,
trained on the squared error against one-hot targets (tanh maps into [-1, 1], so the targets are
0/1 and the prediction is the arg-max). ``hidden``, ``activation`` (hidden layers) and ``output``
(``tanh`` with squared error, or ``softmax`` with cross-entropy) change it.

Everything a data-parallel engine needs is here, so every engine trains the *same* algorithm:

- ``gradient(params, net, x, y)`` returns the **sum** of per-row gradients and losses over the
  rows given, so gradients from shards add up exactly to the gradient of their union;
- ``batch_rows(n, epoch, step, per_worker, seed, shard)`` says which rows of a shard go into a
  step: each shard is shuffled once per epoch from ``(seed, epoch, shard)``;
- ``Shard`` holds one shard where it lives and computes its part of a step;
- ``fit_data_parallel(...)`` is the driver loop: per step it asks every shard for its gradient sum
  (through an engine-supplied callable), averages over all rows of the step and updates;
  ``fit_sharded`` wraps it for engines and returns a fitted ``ScratchMLP``.

With one shard, ``fit_data_parallel`` is exactly ``ScratchMLP.fit`` (same batches, same updates).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ACTIVATIONS = ("relu", "tanh", "logistic", "identity")
OUTPUTS = ("tanh", "softmax")
#: 002's network and a learning set-up that reaches >= 0.90 on digits with the default epochs.
DEFAULTS: dict[str, Any] = {
    "hidden": [100, 50],
    "activation": "relu",
    "output": "tanh",
    "epochs": 30,
    "batch_size": 32,
    "learning_rate": 0.1,
}

Params = list[np.ndarray]  # [W1, b1, W2, b2, ...], float64


@dataclass(frozen=True)
class NetSpec:
    layers: tuple[int, ...]  # n_features, *hidden, n_classes
    activation: str
    output: str


@dataclass(frozen=True)
class TrainSpec:
    net: NetSpec
    epochs: int
    batch_size: int
    learning_rate: float


def train_spec(config: Mapping[str, Any], n_features: int, n_classes: int) -> TrainSpec:
    """The network and its training set-up from a resolved configuration (the mlp workload's
    resolve filled in ``DEFAULTS`` for the keys it left out)."""
    hidden = config["hidden"]
    hidden = [hidden] if isinstance(hidden, int) else list(hidden)
    net = NetSpec(
        (int(n_features), *(int(h) for h in hidden), int(n_classes)),
        str(config["activation"]),
        str(config["output"]),
    )
    return TrainSpec(
        net,
        int(config["epochs"]),
        int(config["batch_size"]),
        float(config["learning_rate"]),
    )


def init_params(net: NetSpec, seed: int) -> Params:
    """He-uniform weights for ReLU layers, Glorot-uniform otherwise; zero biases."""
    rng = np.random.default_rng([seed, 2002])
    params: Params = []
    for i, (fan_in, fan_out) in enumerate(zip(net.layers[:-1], net.layers[1:], strict=True)):
        last = i == len(net.layers) - 2
        relu = net.activation == "relu" and not last
        limit = math.sqrt(6.0 / fan_in) if relu else math.sqrt(6.0 / (fan_in + fan_out))
        params.append(rng.uniform(-limit, limit, size=(fan_in, fan_out)))
        params.append(np.zeros(fan_out))
    return params


def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "logistic":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free sigmoid
    return z


def _act_grad(name: str, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """d activation / dz, from the pre-activation z and the activation a."""
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "tanh":
        return 1.0 - a * a
    if name == "logistic":
        return a * (1.0 - a)
    return np.ones_like(z)


def _forward(params: Params, net: NetSpec, x: np.ndarray) -> tuple[list[np.ndarray], list[Any]]:
    """Activations of every layer (input first) and pre-activations of every layer."""
    acts: list[np.ndarray] = [x]
    pre: list[Any] = []
    n_layers = len(params) // 2
    for i in range(n_layers):
        z = acts[-1] @ params[2 * i] + params[2 * i + 1]
        pre.append(z)
        if i < n_layers - 1:
            acts.append(_act(net.activation, z))
        elif net.output == "tanh":
            acts.append(np.tanh(z))
        else:
            shifted = z - z.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            acts.append(e / e.sum(axis=1, keepdims=True))
    return acts, pre


def predict(params: Params, net: NetSpec, x: np.ndarray) -> np.ndarray:
    acts, _ = _forward(params, net, np.asarray(x, dtype=np.float64))
    return np.asarray(acts[-1].argmax(axis=1), dtype=np.int64)


def gradient(params: Params, net: NetSpec, x: np.ndarray, y: np.ndarray) -> tuple[Params, float]:
    """Sum over the rows of x of the loss gradient (same layout as params), and the summed loss.

    tanh output: loss = 1/2 * sum_k (tanh(z_k) - onehot_k)^2; softmax: cross-entropy."""
    x = np.asarray(x, dtype=np.float64)
    n_out = net.layers[-1]
    target = np.zeros((len(x), n_out))
    target[np.arange(len(x)), np.asarray(y, dtype=np.int64)] = 1.0
    acts, pre = _forward(params, net, x)
    out = acts[-1]
    if net.output == "tanh":
        diff = out - target
        loss = 0.5 * float(np.sum(diff * diff))
        delta = diff * (1.0 - out * out)
    else:
        loss = -float(np.sum(target * np.log(np.clip(out, 1e-300, None))))
        delta = out - target
    grads: Params = [np.empty(0)] * len(params)
    n_layers = len(params) // 2
    for i in range(n_layers - 1, -1, -1):
        grads[2 * i] = acts[i].T @ delta
        grads[2 * i + 1] = delta.sum(axis=0)
        if i > 0:
            delta = (delta @ params[2 * i].T) * _act_grad(net.activation, pre[i - 1], acts[i])
    return grads, loss


def steps_per_epoch(shard_sizes: Sequence[int], per_worker: int) -> int:
    return max(math.ceil(max(shard_sizes) / per_worker), 1) if shard_sizes else 0


def batch_rows(n: int, epoch: int, step: int, per_worker: int, seed: int, shard: int) -> np.ndarray:
    """Row indices of one shard (of n rows) in one step: a fresh permutation per (seed, epoch,
    shard), cut into consecutive batches of ``per_worker`` rows (a short shard runs out early)."""
    order = np.random.default_rng([seed, epoch, shard]).permutation(n)
    return order[step * per_worker : (step + 1) * per_worker]


#: One step of every shard: (params, epoch, step, rows per shard) -> [(grad sum, loss sum, rows)].
GradFn = Callable[[Params, int, int, int], Sequence[tuple[Params, float, int]]]


def per_worker_batch(batch_size: int, shards: int) -> int:
    """Rows per shard per step, so that a step's global batch is about ``batch_size``."""
    return max(math.ceil(batch_size / max(shards, 1)), 1)


def fit_data_parallel(
    spec: TrainSpec, seed: int, shard_sizes: Sequence[int], shard_gradients: GradFn
) -> tuple[Params, list[float], int]:
    """Synchronous data-parallel mini-batch gradient descent. ``shard_gradients(params, epoch,
    step, per_worker)`` returns every shard's gradient sum, loss sum and row count for that step
    (computed where the shard lives); the driver averages over all rows of the step and updates.
    Returns the parameters, the mean training loss of every epoch and the number of steps."""
    params = init_params(spec.net, seed)
    per_worker = per_worker_batch(spec.batch_size, len(shard_sizes))
    steps = steps_per_epoch(shard_sizes, per_worker)
    losses: list[float] = []
    for epoch in range(spec.epochs):
        total_loss, total_rows = 0.0, 0
        for step in range(steps):
            parts = [p for p in shard_gradients(params, epoch, step, per_worker) if p[2] > 0]
            rows = sum(p[2] for p in parts)
            if rows == 0:
                continue
            scale = spec.learning_rate / rows
            for j in range(len(params)):
                params[j] = params[j] - scale * sum(p[0][j] for p in parts)
            total_loss += sum(p[1] for p in parts)
            total_rows += rows
        losses.append(total_loss / max(total_rows, 1))
    return params, losses, steps * spec.epochs


class Shard:
    """One shard of the training set where it lives (in-process, a Dask actor, inside a Ray
    actor): computes its part of a step."""

    def __init__(self, x: np.ndarray, y: np.ndarray, index: int) -> None:
        self.x, self.y, self.index = x, y, index

    def gradient(
        self, params: Params, spec: TrainSpec, epoch: int, step: int, seed: int, per_worker: int
    ) -> tuple[Params, float, int]:
        rows = batch_rows(len(self.x), epoch, step, per_worker, seed, self.index)
        if len(rows) == 0:
            return [], 0.0, 0
        grads, loss = gradient(params, spec.net, self.x[rows], self.y[rows])
        return grads, loss, len(rows)


#: How an engine runs one step over its shards: (params, spec, epoch, step, per_worker) -> parts.
ShardStep = Callable[[Params, TrainSpec, int, int, int], Sequence[tuple[Params, float, int]]]


def fit_sharded(
    config: Mapping[str, Any],
    seed: int,
    n_features: int,
    n_classes: int,
    shard_sizes: Sequence[int],
    run_step: ShardStep,
) -> tuple[ScratchMLP, int]:
    """Train the configuration's network over shards; the fitted estimator and the number of
    synchronous steps."""
    spec = train_spec(config, n_features, n_classes)

    def step(params: Params, epoch: int, step: int, per_worker: int) -> Any:
        return run_step(params, spec, epoch, step, per_worker)

    params, losses, steps = fit_data_parallel(spec, seed, shard_sizes, step)
    return ScratchMLP.fitted(config, seed, spec, params, losses), steps


class ScratchMLP:
    """Scikit-learn-style estimator around the network (the local engine's ``impl = scratch``):
    mini-batch gradient descent in this process, the same steps as one data-parallel shard."""

    def __init__(self, config: Mapping[str, Any], seed: int) -> None:
        self.config = dict(config)
        self.seed = int(seed)
        self.spec: TrainSpec | None = None
        self.params: Params | None = None
        self.losses: list[float] = []
        self.classes_: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> ScratchMLP:
        shard = Shard(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64), 0)
        fitted, _ = fit_sharded(
            self.config,
            self.seed,
            shard.x.shape[1],
            int(shard.y.max()) + 1,
            [len(shard.x)],
            lambda params, spec, epoch, step, per_worker: [
                shard.gradient(params, spec, epoch, step, self.seed, per_worker)
            ],
        )
        self.spec, self.params, self.losses = fitted.spec, fitted.params, fitted.losses
        self.classes_ = fitted.classes_
        return self

    @classmethod
    def fitted(
        cls,
        config: Mapping[str, Any],
        seed: int,
        spec: TrainSpec,
        params: Params,
        losses: Sequence[float] = (),
    ) -> ScratchMLP:
        """An estimator around parameters trained elsewhere (by a data-parallel engine)."""
        model = cls(config, seed)
        model.spec, model.params, model.losses = spec, params, list(losses)
        model.classes_ = np.arange(spec.net.layers[-1])
        return model

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert self.params is not None and self.spec is not None, "fit first"
        return predict(self.params, self.spec.net, x)
