"""Engine ``dask``: a real ``distributed.LocalCluster`` (worker processes), started once per
configuration.

The training set is scattered to every worker once (at load), the test set is cut into shards
(at least one per worker thread) that are scattered round-robin to the workers once. A trial fits
the model on the workers and scores each shard on the worker that holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from runner.datasets import Split
from runner.workloads import get_workload


def _fit(workload: str, config: Mapping[str, Any], seed: int, x: Any, y: Any) -> Any:
    return get_workload(workload).fit(config, seed, x, y)


def _preload(workload: str, config: Mapping[str, Any]) -> None:
    get_workload(workload).preload(config)


def _same(model: Any) -> Any:
    return model


def _predict(model: Any, x: np.ndarray) -> tuple[str, np.ndarray]:
    from distributed import get_worker

    return get_worker().address, np.asarray(model.predict(x))


class Session:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self.workload = get_workload(str(config["workload"]))
        self.workers = int(config.get("workers") or 1)
        self.threads = int(config.get("threads_per_worker") or 1)
        memory_gb = config.get("memory_gb")
        self.memory_limit: int | str = int(float(memory_gb) * 2**30) if memory_gb else "auto"
        self.cluster: Any = None
        self.client: Any = None
        self.addresses: list[str] = []
        self.split: Split | None = None
        self._train: tuple[Any, Any] | None = None
        self._shards: list[tuple[str, Any]] = []
        self._models: dict[str, Any] = {}
        self._used: set[str] = set()

    def start(self) -> None:
        from distributed import Client, LocalCluster

        address = self.config.get("address")
        if address:  # an existing scheduler: use `workers` of its workers
            self.client = Client(str(address), timeout="30s")
            self.client.wait_for_workers(self.workers, timeout=30)
            self.addresses = sorted(self.client.scheduler_info()["workers"])[: self.workers]
            return
        self.cluster = LocalCluster(
            n_workers=self.workers,
            threads_per_worker=self.threads,
            memory_limit=self.memory_limit,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self.client = Client(self.cluster)
        self.client.wait_for_workers(self.workers, timeout=60)
        self.addresses = sorted(self.client.scheduler_info()["workers"])

    def load(self, split: Split) -> None:
        self.split = split
        self.client.run(_preload, self.workload.name, self.config, workers=self.addresses)
        x_f = self.client.scatter(split.x_train, broadcast=True, hash=False)
        y_f = self.client.scatter(split.y_train, broadcast=True, hash=False)
        self._train = (x_f, y_f)
        n_shards = max(len(self.addresses) * self.threads, 1)
        self._shards = []
        for i, shard in enumerate(np.array_split(split.x_test, n_shards)):
            addr = self.addresses[i % len(self.addresses)]
            self._shards.append((addr, self.client.scatter(shard, workers=[addr], hash=False)))

    def train(self, seed: int) -> None:
        from distributed import wait

        assert self._train is not None
        x_f, y_f = self._train
        targets = self.addresses if self.workload.fit_on_every_worker else self.addresses[:1]
        futures = {
            addr: self.client.submit(
                _fit,
                self.workload.name,
                self.config,
                seed,
                x_f,
                y_f,
                workers=[addr],
                allow_other_workers=False,
                pure=False,
            )
            for addr in targets
        }
        wait(list(futures.values()))
        for future in futures.values():
            future.result()  # raise a worker-side error here, inside train
        if not self.workload.fit_on_every_worker:
            # ship the one fitted model to the other workers now, inside train, not in predict
            model = futures[targets[0]]
            for addr in self.addresses[1:]:
                futures[addr] = self.client.submit(
                    _same, model, workers=[addr], allow_other_workers=False, pure=False
                )
            wait(list(futures.values()))
        self._models = futures

    def predict(self) -> np.ndarray:
        futures = [
            self.client.submit(_predict, self._models[addr], shard, workers=[addr], pure=False)
            for addr, shard in self._shards
        ]
        results = self.client.gather(futures)
        self._used = {addr for addr, _ in results}
        return np.concatenate([pred for _, pred in results])

    def trial_metrics(self) -> dict[str, float]:
        """How many distinct workers scored test shards in the last trial."""
        return {"workers_used": float(len(self._used))}

    def predict_train(self) -> np.ndarray:
        assert self.split is not None
        model = next(iter(self._models.values())).result()
        return np.asarray(model.predict(self.split.x_train))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
