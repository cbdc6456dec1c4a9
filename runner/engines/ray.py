"""Engine ``ray``: a real Ray runtime (``ray.init`` locally, or an existing cluster), started once
per configuration, with one actor per worker.

At start, ``workers`` actors (``num_cpus = threads_per_worker`` each) are created and pinged, so
the runtime and the actor processes are up before any trial. At load, the test set is cut into
shards (at least one per worker thread) handed round-robin to the actors once, and the training
set goes where the workload needs it. Each trial scores every test shard on the actor holding it.
How a trial trains:

- knn: the training set is ``ray.put`` once and every actor fits its own model on it.
- mlp, impl sklearn: scikit-learn's MLPClassifier fitted under Ray's joblib backend
  (``ray.util.joblib``), the way 001 used Dask's. MLPClassifier makes no joblib calls, so the fit
  runs in the driver; the fitted model is then ``ray.put`` and handed to every actor, in train.
- mlp, impl scratch: one training shard per actor; synchronous data-parallel mini-batch gradient
  descent of the NumPy network (``runner.workloads.scratch``): per step the parameters are
  ``ray.put`` once, every actor returns the gradient sum of its part of the batch, the driver
  averages and updates.
- cnn (paper 000): several independent Keras trainers, one per worker. The actors are
  ``KerasTrainer`` actors (``runner.workloads.keras_trainer``; ``num_cpus = threads_per_worker``,
  intra-op threads the same), which import TensorFlow when created in ``start`` (setup_s, as for
  engine tensorflow). ``load`` ``ray.put``s the training and test sets once and every actor
  builds, compiles and traces the model on them. A trial starts every actor's fit at once
  (trainer i with seed ``trainer_seed(seed, i)``: trainer 1 with the trial's seed) and waits for
  all: train_s is the total time. ``predict()`` is trainer 1 scoring the test set (comparable
  with engine tensorflow); each trainer's own test accuracy is scored after the timed part, in
  ``trial_metrics()``, with ``workers_used`` (distinct actor processes that trained) and
  ``trainer_overlap_s`` (how long all of them were fitting at once).

A local runtime keeps its session (logs, spilled objects, Unix sockets) under Ray's temporary
root, ``$RAY_TMPDIR`` or ``$TMPDIR`` + ``/ray`` (in a configuration worker: the worker's folder).
A Unix socket's path has at most 107 bytes and Ray's sockets sit some 67 below that root, so when
it is longer than :data:`RAY_ROOT_MAX` the runtime gets a short root of its own instead,
``/tmp/tk-ray-XXXXXXXX`` (``runner.workerproc.short_folder``: the worker's, removed with it however
it ends), removed in ``close``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from typing import Any

import numpy as np

from runner.config import Config
from runner.datasets import Split
from runner.engines import fit_in_driver
from runner.workloads import get_workload
from runner.workloads import keras_trainer as kt
from runner.workloads import scratch as net

#: How long to wait for the actors to come up (an existing cluster may be short of CPUs).
ACTOR_START_TIMEOUT_S = 120.0
#: The longest temporary root Ray's socket paths fit under: 107 bytes less the longest path Ray
#: makes below it, ``/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store.NN`` (67 bytes).
RAY_ROOT_MAX = 107 - len("/session_2026-12-07_02-55-42_123456_4194304/sockets/plasma_store.99")


def default_temp_root() -> str:
    """The temporary root ``ray.init`` uses when given none (as ``ray._common.utils`` finds it
    on Linux)."""
    base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(base, "ray")


def _process_key() -> str:
    """This actor process, unique across the cluster's nodes: node id and pid."""
    import ray

    return f"{ray.get_runtime_context().get_node_id()}:{os.getpid()}"


class _Worker:
    """The actor body: holds the training set reference, its test shards and a model."""

    def __init__(self, workload: str, config: Config) -> None:
        self.workload = get_workload(workload)
        self.config = config
        self.train_set: tuple[np.ndarray, np.ndarray] | None = None
        self.shard = 0
        self.shards: list[tuple[int, np.ndarray]] = []
        self.model: Any = None
        # import the estimator's library now, in setup, not in the first trial's train_s
        self.workload.preload(self.config)

    def ping(self) -> str:
        return _process_key()

    def set_data(
        self,
        train_set: tuple[np.ndarray, np.ndarray] | None,
        shards: list[tuple[int, np.ndarray]],
        shard: int = 0,
    ) -> int:
        # ``train_set`` (the whole training set, or this actor's shard of it) arrives resolved
        # from the object store (zero-copy, read-only arrays)
        self.train_set = train_set
        self.shards = shards
        self.shard = shard
        return len(shards)

    def gradient(
        self, params: net.Params, spec: net.TrainSpec, epoch: int, step: int, seed: int, per: int
    ) -> tuple[net.Params, float, int]:
        assert self.train_set is not None
        shard = net.Shard(*self.train_set, self.shard)
        return shard.gradient(params, spec, epoch, step, seed, per)

    def fit(self, seed: int) -> None:
        assert self.train_set is not None
        x, y = self.train_set
        self.model = self.workload.fit(self.config, seed, x, y)

    def set_model(self, model: Any) -> None:
        self.model = model

    def get_model(self) -> Any:
        return self.model

    def predict(self) -> tuple[str, list[tuple[int, np.ndarray]]]:
        return _process_key(), [(i, np.asarray(self.model.predict(x))) for i, x in self.shards]


class Session:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.workload = get_workload(config.workload)
        self.workers = config.workers
        self.threads = config.threads_per_worker
        self.actors: list[Any] = []
        self.split: Split | None = None
        self._train_ref: Any = None
        self._used: set[str] = set()
        # cnn: 000's independent Keras trainers, one per actor
        self.mode = "trainers" if self.workload.name == "cnn" else self.workload.training(config)
        self._fits: list[kt.FitResult] = []
        self._first: np.ndarray | None = None  # trainer 1's test predictions
        self._shard_sizes: list[int] = []
        self._model: Any = None
        self._steps = 0
        self._ping = "ping"  # the actors' method that answers their process
        self._pids: list[Any] = []
        self._temp_root: str | None = None  # a short root of our own (see the module's doc)

    def start(self) -> None:
        self.init_runtime()
        if self.mode == "trainers":
            self.start_actors(kt.KerasTrainer, (self.workload.name, self.config), "where")
        else:
            self.start_actors(_Worker, (self.workload.name, self.config), "ping")

    def init_runtime(self) -> None:
        """``ray.init``: a new local runtime with workers x threads_per_worker CPUs, or the
        existing cluster at ``address``. No actors: ``start_actors`` creates them."""
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
            if len(default_temp_root().encode()) > RAY_ROOT_MAX:
                from runner.workerproc import short_folder

                self._temp_root = short_folder("tk-ray-")
                quiet["_temp_dir"] = self._temp_root
            ray.init(
                address="local",
                num_cpus=self.workers * self.threads,
                include_dashboard=False,
                **quiet,
            )

    def start_actors(self, body: type, args: tuple[Any, ...], ping: str, **options: Any) -> None:
        """``workers`` actors of class ``body`` (``num_cpus`` = threads_per_worker, memory_gb
        reserved per actor, plus ``options``), created with ``args``; waits until each has
        answered its method ``ping``, in as many distinct processes. They are ``self.actors``,
        killed in ``close``."""
        import ray

        resources: dict[str, Any] = {"num_cpus": self.threads}
        if self.config.memory_gb:  # Ray's logical memory resource, reserved per actor
            resources["memory"] = int(self.config.memory_gb * 2**30)
        actor_class = ray.remote(body).options(**resources, max_restarts=0, **options)
        self.actors = [actor_class.remote(*args) for _ in range(self.workers)]
        pids = ray.get(
            [getattr(a, ping).remote() for a in self.actors], timeout=ACTOR_START_TIMEOUT_S
        )
        if len(set(pids)) != self.workers:
            raise RuntimeError(f"ray: expected {self.workers} actor processes, got {pids}")
        self._ping, self._pids = ping, pids

    def lost_workers(self) -> str | None:
        """Whether every actor still answers from the process it started in (actors are never
        restarted: ``max_restarts=0``); None when all do. Called after each trial."""
        import ray

        if not self.actors:
            return None
        calls = [getattr(a, self._ping).remote() for a in self.actors]
        try:
            pids = ray.get(calls, timeout=ACTOR_START_TIMEOUT_S)
        except Exception as exc:
            first = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return f"a Ray actor of {len(self.actors)} does not answer ({first})"
        if pids != self._pids:
            return f"Ray actor processes changed from {self._pids} to {pids}"
        return None

    def load(self, split: Split) -> None:
        import ray

        self.split = split
        if self.mode == "trainers":  # the data once to the object store; every actor builds
            refs = [ray.put(a) for a in (split.x_train, split.y_train, split.x_test)]
            shape, classes = split.image_shape, split.n_classes
            ray.get([a.load.remote(refs[0], refs[1], shape, classes, refs[2]) for a in self.actors])
            return
        if self.mode == "driver":  # the estimator and Ray's joblib backend, before any trial
            from ray.util.joblib import register_ray

            register_ray()
            self.workload.preload(self.config)
        n_shards = max(self.workers * self.threads, 1)
        per_actor: list[list[tuple[int, np.ndarray]]] = [[] for _ in self.actors]
        for i, shard in enumerate(np.array_split(split.x_test, n_shards)):
            per_actor[i % len(self.actors)].append((i, shard))
        if self.mode == "every":
            self._train_ref = ray.put((split.x_train, split.y_train))  # once, shared
            train_sets: list[Any] = [self._train_ref] * len(self.actors)
        elif self.mode == "sharded":  # one shard of the training set per actor
            xs = np.array_split(split.x_train, len(self.actors))
            ys = np.array_split(split.y_train, len(self.actors))
            train_sets = [ray.put((x, y)) for x, y in zip(xs, ys, strict=True)]
            self._shard_sizes = [len(x) for x in xs]
        else:
            train_sets = [None] * len(self.actors)
        ray.get(
            [
                actor.set_data.remote(train_set, shards, i)
                for i, (actor, train_set, shards) in enumerate(
                    zip(self.actors, train_sets, per_actor, strict=True)
                )
            ]
        )

    def train(self, seed: int) -> None:
        import ray

        if self.mode == "trainers":  # every trainer's fit at once; wait for all of them
            self._fits = ray.get(
                [a.fit.remote(kt.trainer_seed(seed, i)) for i, a in enumerate(self.actors, 1)]
            )
            return
        if self.mode == "every":
            ray.get([actor.fit.remote(seed) for actor in self.actors])
            return
        assert self.split is not None
        if self.mode == "sharded":
            model: Any = self._train_sharded(seed)
        else:  # scikit-learn under Ray's joblib backend (registered in load), in the driver
            model = fit_in_driver(self.workload, self.config, seed, self.split, self.threads, "ray")
        # the fitted model goes to every actor now, inside train, not in predict
        self._model = model
        model_ref = ray.put(model)
        ray.get([actor.set_model.remote(model_ref) for actor in self.actors])

    def _train_sharded(self, seed: int) -> net.ScratchMLP:
        import ray

        assert self.split is not None
        spec_refs: dict[int, Any] = {}

        def step(params: net.Params, spec: net.TrainSpec, epoch: int, step: int, per: int) -> Any:
            spec_ref = spec_refs.get(id(spec))
            if spec_ref is None:  # once per trial (setdefault would put it at every step)
                spec_ref = spec_refs[id(spec)] = ray.put(spec)
            params_ref = ray.put(params)  # once per step, read by every actor
            return ray.get(
                [
                    actor.gradient.remote(params_ref, spec_ref, epoch, step, seed, per)
                    for actor in self.actors
                ]
            )

        model, self._steps = net.fit_sharded(
            self.config,
            seed,
            self.split.x_train.shape[1],
            self.split.n_classes,
            self._shard_sizes,
            step,
        )
        return model

    def predict(self) -> np.ndarray:
        import ray

        if self.mode == "trainers":  # trainer 1, comparable with engine tensorflow
            self._first = np.asarray(ray.get(self.actors[0].predict.remote("test")))
            return self._first
        results = ray.get([actor.predict.remote() for actor in self.actors])
        self._used = {pid for pid, shards in results if shards}
        ordered = sorted(
            ((i, pred) for _, shards in results for i, pred in shards), key=lambda t: t[0]
        )
        return np.concatenate([pred for _, pred in ordered])

    def trial_metrics(self) -> dict[str, float]:
        """How many distinct actor processes scored test shards in the last trial; for scratch,
        how many synchronous gradient steps the training took; for cnn, the trainers' facts
        (``keras_trainer.trainers_metrics``), each trainer's test accuracy scored now, after the
        timed part (trainer 1's from predict)."""
        if self.mode == "trainers":
            import ray

            assert self.split is not None and self._first is not None
            others = ray.get([a.predict.remote("test") for a in self.actors[1:]])
            predictions = [self._first, *map(np.asarray, others)]
            return kt.trainers_metrics(self._fits, predictions, self.split.y_test)
        out = {"workers_used": float(len(self._used))}
        if self.mode == "sharded":
            out["sync_steps"] = float(self._steps)
        return out

    def trial_history(self) -> list[dict[str, list[float]]]:
        """cnn: each trainer's per-epoch curves (part 0 = trainer 1); nothing otherwise."""
        return [fit.history for fit in self._fits]

    def predict_train(self, rows: np.ndarray | None = None) -> np.ndarray:
        import ray

        assert self.split is not None
        if self.mode == "trainers":
            return np.asarray(ray.get(self.actors[0].predict.remote("train", rows)))
        model = self._model
        if model is None:
            model = ray.get(self.actors[0].get_model.remote())
        x = self.split.x_train if rows is None else self.split.x_train[rows]
        return np.asarray(model.predict(x))

    def close(self) -> None:
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor)
        self.actors = []
        try:
            ray.shutdown()
        finally:
            if self._temp_root is not None:
                shutil.rmtree(self._temp_root, ignore_errors=True)
                self._temp_root = None
