"""Engine ``local``: scikit-learn in this process, BLAS/OpenMP threads = threads_per_worker."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from runner.config import Config
from runner.datasets import Split
from runner.workloads import get_workload


class Session:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.workload = get_workload(config.workload)
        self.threads = config.threads_per_worker
        self._limits: Any = None
        self.split: Split | None = None
        self.model: Any = None

    def start(self) -> None:
        # OpenMP runtimes loaded later (scikit-learn's) read this when they start
        os.environ["OMP_NUM_THREADS"] = str(self.threads)
        self.limit_threads()

    def limit_threads(self) -> None:
        """Limit every thread pool loaded so far (threadpoolctl sees loaded libraries only)."""
        from threadpoolctl import threadpool_limits

        if self._limits is None:
            self._limits = threadpool_limits(limits=self.threads)
        else:
            threadpool_limits(limits=self.threads)

    def load(self, split: Split) -> None:
        self.split = split
        self.workload.preload(self.config)
        self.limit_threads()  # the estimator's library (and its OpenMP runtime) is loaded now

    def threads_in_use(self) -> int:
        """The most threads any loaded BLAS / OpenMP pool may use."""
        from threadpoolctl import threadpool_info

        return max((int(pool["num_threads"]) for pool in threadpool_info()), default=1)

    def trial_metrics(self) -> dict[str, float]:
        return {"pool_threads": float(self.threads_in_use())}

    def train(self, seed: int) -> None:
        assert self.split is not None
        self.model = self.workload.fit(self.config, seed, self.split.x_train, self.split.y_train)

    def predict(self) -> np.ndarray:
        assert self.split is not None
        return np.asarray(self.model.predict(self.split.x_test))

    def predict_train(self, rows: np.ndarray | None = None) -> np.ndarray:
        assert self.split is not None
        x = self.split.x_train if rows is None else self.split.x_train[rows]
        return np.asarray(self.model.predict(x))

    def close(self) -> None:
        if self._limits is not None:
            self._limits.restore_original_limits()
