"""``noop``: a workload that does nothing, for measuring the runner itself.

A trial returns at once with ``train_s`` = ``infer_s`` = the time the (empty) work took and
``metrics`` metrics (``noop_1`` ... ``noop_<metrics>``, each the trial's seed, so a metric path as
wide as a real workload's is exercised). With ``spin`` > 0 the trial instead runs a fixed
pure-Python loop of ``spin`` iterations as its train step: a CPU-bound workload of known size,
for measuring how much the resource sampler perturbs what it watches.

The trial loop's per-trial bookkeeping (timing, metrics, the store append and commit, the
sampler) is then everything a noop trial costs beyond its worker's reply.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from runner.config import Config
from runner.errors import RunnerError

#: Metrics a noop trial reports by default (a knn trial reports 7, the sampler adds 2).
DEFAULT_METRICS = 7
DEFAULTS: dict[str, Any] = {"metrics": DEFAULT_METRICS, "spin": 0}
#: The most metrics a noop trial may report (each is a column of the results database).
MAX_METRICS = 1000


def spin(iterations: int) -> int:
    """A fixed pure-Python CPU-bound loop (no allocation, no I/O); returns a checksum so the
    loop cannot be skipped."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) & 0xFFFF
    return total


def check(config: Mapping[str, Any]) -> None:
    for key in ("metrics", "spin"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RunnerError(f"noop: {key} must be an integer >= 0, got {value!r}")
    if config["metrics"] > MAX_METRICS:
        raise RunnerError(
            f"noop: metrics must be an integer from 0 to {MAX_METRICS:,} (each is a column of "
            f"the results database), got {config['metrics']}"
        )


class Session:
    """The ``local`` engine's noop session: it times its own trial (``run_trial``)."""

    def __init__(self, config: Config) -> None:
        self.metrics = int(config["metrics"])  # the workload defaults fill both
        self.spin = int(config["spin"])

    def start(self) -> None:
        pass

    def load(self, split: Any) -> None:
        pass

    def run_trial(self, seed: int) -> dict[str, Any]:
        t = time.perf_counter_ns()
        if self.spin:
            spin(self.spin)
        train_s = (time.perf_counter_ns() - t) / 1e9
        value = float(seed)
        return {
            "train_s": train_s,
            "infer_s": 0.0,
            "metrics": {f"noop_{i}": value for i in range(1, self.metrics + 1)},
        }

    def close(self) -> None:
        pass
