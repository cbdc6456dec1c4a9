"""The from-scratch NumPy network (002's "local scratch"): its gradient against central finite
differences of its own loss written out independently, the shard-sum contract data-parallel
engines rely on, and accuracy on digits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from runner.datasets import load_split
from runner.workloads import get_workload
from runner.workloads import scratch as net


def _loss(params: net.Params, spec: net.NetSpec, x: np.ndarray, y: np.ndarray) -> float:
    """The loss written out directly (no code shared with scratch.gradient)."""
    a = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        z = a @ params[2 * i] + params[2 * i + 1]
        if i < n_layers - 1:
            a = {
                "relu": lambda v: np.maximum(v, 0),
                "tanh": np.tanh,
                "logistic": lambda v: 1 / (1 + np.exp(-v)),
                "identity": lambda v: v,
            }[spec.activation](z)
        else:
            a = z
    onehot = np.eye(spec.layers[-1])[y]
    if spec.output == "tanh":
        return float(0.5 * np.sum((np.tanh(a) - onehot) ** 2))
    log_softmax = a - a.max(axis=1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(axis=1, keepdims=True))
    return float(-np.sum(onehot * log_softmax))


@pytest.mark.parametrize(
    ("activation", "output"),
    [("relu", "tanh"), ("tanh", "tanh"), ("logistic", "softmax"), ("identity", "softmax")],
)
def test_gradient_matches_finite_differences(activation: str, output: str) -> None:
    rng = np.random.default_rng(7)
    spec = net.NetSpec((6, 5, 4, 3), activation, output)
    params = net.init_params(spec, seed=3)
    x = rng.normal(size=(9, 6))
    y = rng.integers(0, 3, size=9)
    grads, loss = net.gradient(params, spec, x, y)
    assert loss == pytest.approx(_loss(params, spec, x, y), rel=1e-12)
    eps = 1e-6
    for j, p in enumerate(params):
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = _loss(params, spec, x, y)
            p[idx] = old - eps
            down = _loss(params, spec, x, y)
            p[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[j], numeric, rtol=1e-5, atol=1e-7)


def test_shard_gradients_add_up_to_the_whole_batch() -> None:
    rng = np.random.default_rng(0)
    spec = net.NetSpec((8, 7, 4), "relu", "tanh")
    params = net.init_params(spec, seed=0)
    x, y = rng.normal(size=(20, 8)), rng.integers(0, 4, size=20)
    whole, whole_loss = net.gradient(params, spec, x, y)
    parts = [net.gradient(params, spec, x[s], y[s]) for s in (slice(0, 7), slice(7, 20))]
    for j in range(len(params)):
        np.testing.assert_allclose(parts[0][0][j] + parts[1][0][j], whole[j], rtol=1e-12)
    assert parts[0][1] + parts[1][1] == pytest.approx(whole_loss, rel=1e-12)


def test_every_row_of_every_shard_is_used_once_per_epoch() -> None:
    sizes, per_worker = [11, 10, 10], 4
    steps = net.steps_per_epoch(sizes, per_worker)
    assert steps == 3
    for shard, n in enumerate(sizes):
        rows = np.concatenate(
            [net.batch_rows(n, 5, step, per_worker, seed=1, shard=shard) for step in range(steps)]
        )
        assert sorted(rows.tolist()) == list(range(n))


def test_scratch_network_on_digits_has_002s_shape_and_is_accurate() -> None:
    split = load_split("digits", seed=0)
    workload = get_workload("mlp")
    config = workload.resolve({"engine": "local", "impl": "scratch"})
    workload.check(config)
    assert (config["hidden"], config["activation"], config["output"]) == ([100, 50], "relu", "tanh")
    model = workload.fit(config, 0, split.x_train, split.y_train)
    assert model.spec.net.layers == (64, 100, 50, 10)
    accuracy = float(np.mean(model.predict(split.x_test) == split.y_test))
    assert accuracy >= 0.90
    assert model.losses[-1] < model.losses[0] / 2  # it learned


def test_data_parallel_with_one_shard_is_the_local_fit() -> None:
    split = load_split("digits", seed=0, data_fraction=0.3)
    config = get_workload("mlp").resolve({"engine": "local", "impl": "scratch", "epochs": 3})
    local = net.ScratchMLP(config, 5).fit(split.x_train, split.y_train)
    spec = net.train_spec(config, split.x_train.shape[1], split.n_classes)
    x, y = split.x_train.astype(np.float64), split.y_train

    shard = net.Shard(x, y, 0)

    def step(params: net.Params, epoch: int, step: int, per: int) -> list[tuple[Any, float, int]]:
        return [shard.gradient(params, spec, epoch, step, 5, per)]

    params, _, steps = net.fit_data_parallel(spec, 5, [len(x)], step)
    assert steps == 3 * -(-len(x) // spec.batch_size)
    assert local.params is not None
    for a, b in zip(local.params, params, strict=True):
        np.testing.assert_array_equal(a, b)
