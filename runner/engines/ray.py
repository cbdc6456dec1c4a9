"""Engine ``ray``: a real Ray runtime (``ray.init`` locally, or an existing cluster), started once
per configuration, with one actor per worker.

At start, ``workers`` actors (``num_cpus = threads_per_worker`` each) are created and pinged, so
the runtime and the actor processes are up before any trial. At load, the training set is
``ray.put`` once and its reference handed to every actor; the test set is cut into shards (at
least one per worker thread) handed round-robin to the actors once. A trial fits the model on the
actors (KNN: every actor; MLP: one actor, whose fitted model is shipped to the others) and each
actor scores the shards it holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from runner.datasets import Split
from runner.workloads import get_workload

#: How long to wait for the actors to come up (an existing cluster may be short of CPUs).
ACTOR_START_TIMEOUT_S = 120.0


def _process_key() -> str:
    """This actor process, unique across the cluster's nodes: node id and pid."""
    import ray

    return f"{ray.get_runtime_context().get_node_id()}:{os.getpid()}"


class _Worker:
    """The actor body: holds the training set reference, its test shards and a model."""

    def __init__(self, workload: str, config: Mapping[str, Any]) -> None:
        self.workload = get_workload(workload)
        self.config = dict(config)
        self.train_set: tuple[np.ndarray, np.ndarray] | None = None
        self.shards: list[tuple[int, np.ndarray]] = []
        self.model: Any = None
        # import the estimator's library now, in setup, not in the first trial's train_s
        self.workload.preload(self.config)

    def ping(self) -> str:
        return _process_key()

    def set_data(
        self, train_set: tuple[np.ndarray, np.ndarray], shards: list[tuple[int, np.ndarray]]
    ) -> int:
        # ``train_set`` arrives resolved from the object store (zero-copy, read-only arrays)
        self.train_set = train_set
        self.shards = shards
        return len(shards)

    def fit(self, seed: int, ship: bool) -> Any:
        assert self.train_set is not None
        x, y = self.train_set
        self.model = self.workload.fit(self.config, seed, x, y)
        return self.model if ship else None

    def set_model(self, model: Any) -> None:
        self.model = model

    def get_model(self) -> Any:
        return self.model

    def predict(self) -> tuple[str, list[tuple[int, np.ndarray]]]:
        return _process_key(), [(i, np.asarray(self.model.predict(x))) for i, x in self.shards]


class Session:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self.workload = get_workload(str(config["workload"]))
        self.workers = int(config.get("workers") or 1)
        self.threads = int(config.get("threads_per_worker") or 1)
        self.actors: list[Any] = []
        self.split: Split | None = None
        self._train_ref: Any = None
        self._used: set[str] = set()

    def start(self) -> None:
        # quiet and offline: no usage stats, no log forwarding, no dashboard
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        import ray

        quiet: dict[str, Any] = {
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            "configure_logging": True,
        }
        address = self.config.get("address")
        if address:  # an existing cluster: it owns its CPUs; we only place our actors on it
            try:
                ray.init(address=str(address), **quiet)
            except ConnectionError as exc:
                # Ray never sends a token to an explicit address unless told to
                raise ConnectionError(
                    f"{exc}; if the cluster uses token authentication, set RAY_AUTH_MODE=token "
                    "(and RAY_AUTH_TOKEN, or the token in ~/.ray/auth_token)"
                ) from exc
        else:  # "local": always a new runtime, never a cluster found via RAY_ADDRESS
            ray.init(
                address="local",
                num_cpus=self.workers * self.threads,
                include_dashboard=False,
                **quiet,
            )
        actor_class = ray.remote(_Worker).options(num_cpus=self.threads, max_restarts=0)
        self.actors = [
            actor_class.remote(self.workload.name, self.config) for _ in range(self.workers)
        ]
        pids = ray.get([a.ping.remote() for a in self.actors], timeout=ACTOR_START_TIMEOUT_S)
        if len(set(pids)) != self.workers:
            raise RuntimeError(f"ray: expected {self.workers} actor processes, got {pids}")

    def load(self, split: Split) -> None:
        import ray

        self.split = split
        self._train_ref = ray.put((split.x_train, split.y_train))  # once, shared by all actors
        n_shards = max(self.workers * self.threads, 1)
        per_actor: list[list[tuple[int, np.ndarray]]] = [[] for _ in self.actors]
        for i, shard in enumerate(np.array_split(split.x_test, n_shards)):
            per_actor[i % len(self.actors)].append((i, shard))
        ray.get(
            [
                actor.set_data.remote(self._train_ref, shards)
                for actor, shards in zip(self.actors, per_actor, strict=True)
            ]
        )

    def train(self, seed: int) -> None:
        import ray

        if self.workload.fit_on_every_worker:
            ray.get([actor.fit.remote(seed, False) for actor in self.actors])
            return
        # one actor fits; its fitted model goes through the object store to the others
        first, *others = self.actors
        model_ref = first.fit.remote(seed, bool(others))
        ray.get([actor.set_model.remote(model_ref) for actor in others] or [model_ref])

    def predict(self) -> np.ndarray:
        import ray

        results = ray.get([actor.predict.remote() for actor in self.actors])
        self._used = {pid for pid, shards in results if shards}
        ordered = sorted(
            ((i, pred) for _, shards in results for i, pred in shards), key=lambda t: t[0]
        )
        return np.concatenate([pred for _, pred in ordered])

    def trial_metrics(self) -> dict[str, float]:
        """How many distinct actor processes scored test shards in the last trial."""
        return {"workers_used": float(len(self._used))}

    def predict_train(self) -> np.ndarray:
        import ray

        assert self.split is not None
        model = ray.get(self.actors[0].get_model.remote())
        return np.asarray(model.predict(self.split.x_train))

    def close(self) -> None:
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor)
        self.actors = []
        ray.shutdown()
