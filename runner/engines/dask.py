"""Engine ``dask``: a real ``distributed.LocalCluster`` (worker processes), started once per
configuration, or ``workers`` workers of an existing scheduler.

Data is shipped once, at load: the test set is cut into shards (at least one per worker thread)
scattered round-robin to the workers, and the training set goes where the workload needs it.
Each trial scores every test shard on the worker that holds it. How a trial trains:

- knn: the training set is scattered to every worker; every worker fits its own model.
- mlp, impl sklearn (paper 001): scikit-learn's MLPClassifier fitted under Dask's joblib backend
  (``joblib.parallel_backend("dask")``), as 001 did. MLPClassifier makes no joblib calls, so the
  fit runs in the driver; the fitted model is then scattered to the workers, inside train.
- mlp, impl scratch: the training set is cut into one shard per worker (a ``Shard`` actor);
  synchronous data-parallel
  mini-batch gradient descent of the NumPy network (``runner.workloads.scratch``): per step every
  worker computes the gradient sum of its part of the batch, the driver averages and updates.
- cnn (paper 000): several independent Keras trainers, one per worker. ``start`` imports
  TensorFlow in every worker process (intra-op threads = threads_per_worker), so the import is
  engine start-up (setup_s), as it is for engine tensorflow. ``load`` scatters the whole training
  and test sets to every worker once and creates one ``KerasTrainer`` Dask actor per worker
  (``runner.workloads.keras_trainer``), which builds, compiles and traces the model there. A trial
  starts every trainer's fit at once (trainer i with seed ``trainer_seed(seed, i)``: trainer 1
  with the trial's seed) and waits for all of them: train_s is the total time, as 000 reported it.
  ``predict()`` is trainer 1 scoring the test set, so ``accuracy`` and infer_s compare with
  engine tensorflow; each trainer's own test accuracy is scored after the timed part, in
  ``trial_metrics()``. Each worker's actor runs in the worker's single actor thread, so the
  trainers run side by side in separate worker processes (``workers_used`` counts the distinct
  processes that trained, ``trainer_overlap_s`` how long all of them were fitting at once).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from runner.config import Config
from runner.datasets import Split
from runner.engines import fit_in_driver
from runner.workloads import get_workload
from runner.workloads import keras_trainer as kt
from runner.workloads import scratch as net

#: How often a trial waiting for Dask looks whether a worker it uses is gone, in seconds.
WATCH_S = 1.0
#: The scheduler's event topic of a worker restarted by its nanny for using too much memory.
MEMORY_EVENT = "worker-restart-memory"


def scheduler_workers(client: Any) -> dict[str, Any]:
    """The scheduler's workers now (address -> its info), asked of the scheduler and returned
    as it answered. Not ``client.scheduler_info(n_workers=-1)["workers"]``: that asks, then
    reads back the client's cached identity, which the client's periodic update (every 2 s,
    with no workers) may have replaced in between: under load it said every worker was gone."""
    return dict(client.sync(client.scheduler.identity, n_workers=-1)["workers"])


def _fit(workload: str, config: Config, seed: int, x: Any, y: Any) -> Any:
    return get_workload(workload).fit(config, seed, x, y)


def _preload(workload: str, config: Config) -> None:
    get_workload(workload).preload(config)


def _import_keras(threads: int) -> str:
    """Import TensorFlow in this worker process (its thread pools set); returns host:pid."""
    kt.import_keras(threads)
    return kt.where()


def _predict(model: Any, x: np.ndarray) -> tuple[str, np.ndarray]:
    from distributed import get_worker

    return get_worker().address, np.asarray(model.predict(x))


class Session:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.workload = get_workload(config.workload)
        self.workers = config.workers
        self.threads = config.threads_per_worker
        memory_gb = config.memory_gb
        self.memory_limit: int | str = int(memory_gb * 2**30) if memory_gb else "auto"
        self.cluster: Any = None
        self.client: Any = None
        self.addresses: list[str] = []
        self.split: Split | None = None
        self._train: tuple[Any, Any] | None = None
        self._shards: list[tuple[str, Any]] = []
        self._models: dict[str, Any] = {}
        self._used: set[str] = set()
        # cnn: 000's independent Keras trainers, one per worker
        self.mode = "trainers" if self.workload.name == "cnn" else self.workload.training(config)
        self._trainers: list[Any] = []  # KerasTrainer actors, trainer 1 first
        self._fits: list[kt.FitResult] = []
        self._first: np.ndarray | None = None  # trainer 1's test predictions
        self._train_shards: list[tuple[str, Any, int]] = []
        self._local_model: Any = None
        self._steps = 0
        self._memory_seen = 0  # memory restarts the scheduler had recorded at the last look

    def start(self) -> None:
        from distributed import Client, LocalCluster

        address = self.config.get("address")
        if address:  # an existing scheduler: use `workers` of its workers
            self.client = Client(str(address), timeout="30s")
            self.client.wait_for_workers(self.workers, timeout=30)
            workers = scheduler_workers(self.client)
            self.addresses = sorted(workers)[: self.workers]
        else:
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
            self.addresses = sorted(scheduler_workers(self.client))
        if self.mode == "trainers":  # TensorFlow's import is start-up, as for engine tensorflow
            self.client.run(_import_keras, self.threads, workers=self.addresses)
        self._memory_seen = len(self._memory_restarts())

    def load(self, split: Split) -> None:
        self.split = split
        if self.mode == "trainers":
            self._load_trainers(split)
            return
        self.client.run(_preload, self.workload.name, self.config, workers=self.addresses)
        if self.mode == "driver":  # the fit runs here: its estimator's import is load, too
            self.workload.preload(self.config)
        if self.mode == "sharded":  # one training shard per worker (a Dask actor)
            self._train_shards = []
            pairs = zip(
                np.array_split(split.x_train, len(self.addresses)),
                np.array_split(split.y_train, len(self.addresses)),
                strict=True,
            )
            for i, (addr, (x, y)) in enumerate(zip(self.addresses, pairs, strict=True)):
                x_f, y_f = self.client.scatter([x, y], workers=[addr], hash=False)
                actor = self.client.submit(
                    net.Shard, x_f, y_f, i, workers=[addr], allow_other_workers=False, actor=True
                ).result()
                self._train_shards.append((addr, actor, len(x)))
        elif self.mode == "every":
            x_f = self.client.scatter(split.x_train, broadcast=True, hash=False)
            y_f = self.client.scatter(split.y_train, broadcast=True, hash=False)
            self._train = (x_f, y_f)
        n_shards = max(len(self.addresses) * self.threads, 1)
        self._shards = []
        for i, shard in enumerate(np.array_split(split.x_test, n_shards)):
            addr = self.addresses[i % len(self.addresses)]
            self._shards.append((addr, self.client.scatter(shard, workers=[addr], hash=False)))

    def _load_trainers(self, split: Split) -> None:
        """The whole training and test sets to every worker once; one KerasTrainer actor per
        worker, which builds, compiles and traces the model there."""
        where = {"workers": self.addresses, "broadcast": True, "hash": False}
        x_f, y_f, xt_f = (
            self.client.scatter(a, **where) for a in (split.x_train, split.y_train, split.x_test)
        )
        futures = [
            self.client.submit(
                kt.KerasTrainer,
                self.workload.name,
                self.config,
                x_f,
                y_f,
                split.image_shape,
                split.n_classes,
                xt_f,
                workers=[addr],
                allow_other_workers=False,
                actor=True,
            )
            for addr in self.addresses
        ]
        self._trainers = [future.result() for future in futures]

    def train(self, seed: int) -> None:
        if self.mode == "trainers":  # every trainer's fit at once; wait for all of them
            calls = [
                trainer.fit(kt.trainer_seed(seed, i)) for i, trainer in enumerate(self._trainers, 1)
            ]
            self._fits = self._results(calls)
            return
        if self.mode == "every":
            self._train_everywhere(seed)
            return
        assert self.split is not None
        if self.mode == "sharded":
            model: Any = self._train_sharded(seed)
        else:  # 001: scikit-learn under Dask's joblib backend
            split, threads = self.split, self.threads
            model = fit_in_driver(self.workload, self.config, seed, split, threads, "dask")
        # the fitted model goes to every worker now, inside train, not in predict
        self._local_model = model
        futures = self.client.scatter(model, broadcast=True, hash=False)
        self._models = {addr: futures for addr in self.addresses}

    def _train_everywhere(self, seed: int) -> None:

        assert self._train is not None
        x_f, y_f = self._train
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
            for addr in self.addresses
        }
        self._results(list(futures.values()))  # a worker-side error is raised here, in train
        self._models = futures
        self._local_model = None

    def _train_sharded(self, seed: int) -> net.ScratchMLP:
        assert self.split is not None

        def step(params: net.Params, spec: net.TrainSpec, epoch: int, step: int, per: int) -> Any:
            calls = [
                actor.gradient(params, spec, epoch, step, seed, per)
                for _, actor, _ in self._train_shards
            ]
            return self._results(calls)

        sizes = [n for *_, n in self._train_shards]
        model, self._steps = net.fit_sharded(
            self.config, seed, self.split.x_train.shape[1], self.split.n_classes, sizes, step
        )
        return model

    def predict(self) -> np.ndarray:
        if self.mode == "trainers":  # trainer 1, comparable with engine tensorflow
            self._first = np.asarray(self._results([self._trainers[0].predict("test")])[0])
            return self._first
        futures = [
            self.client.submit(_predict, self._models[addr], shard, workers=[addr], pure=False)
            for addr, shard in self._shards
        ]
        results = self._results(futures)
        self._used = {addr for addr, _ in results}
        return np.concatenate([pred for _, pred in results])

    def trial_metrics(self) -> dict[str, float]:
        """How many distinct workers scored test shards in the last trial; for scratch, how many
        synchronous gradient steps the training took."""
        if self.mode == "trainers":
            return self._trainers_metrics()
        out = {"workers_used": float(len(self._used))}
        if self.mode == "sharded":
            out["sync_steps"] = float(self._steps)
        return out

    def _trainers_metrics(self) -> dict[str, float]:
        """Each trainer's test accuracy (scored now, after the timed part; trainer 1's from
        predict) and the trainers' facts (``keras_trainer.trainers_metrics``)."""
        assert self.split is not None and self._first is not None
        calls = [trainer.predict("test") for trainer in self._trainers[1:]]
        predictions = [self._first, *map(np.asarray, self._results(calls))]
        return kt.trainers_metrics(self._fits, predictions, self.split.y_test)

    def trial_history(self) -> list[dict[str, list[float]]]:
        """cnn: each trainer's per-epoch curves (part 0 = trainer 1); nothing otherwise."""
        return [fit.history for fit in self._fits]

    def predict_train(self, rows: np.ndarray | None = None) -> np.ndarray:
        assert self.split is not None
        if self.mode == "trainers":
            return np.asarray(self._trainers[0].predict("train", rows).result())
        model = self._local_model
        if model is None:
            model = next(iter(self._models.values())).result()
        x = self.split.x_train if rows is None else self.split.x_train[rows]
        return np.asarray(model.predict(x))

    def _results(self, futures: list[Any]) -> list[Any]:
        """The futures' (or actor calls') results, in order. While one is pending, every
        WATCH_S seconds: if a worker this session uses is gone, raise at once (a task pinned to
        it, or needing the data it held, would wait for it for ever)."""
        out = []
        for future in futures:
            while True:
                try:
                    out.append(future.result(timeout=WATCH_S))
                    break
                except Exception as exc:
                    # Not done yet (TimeoutError), or failed: a worker lost mid-call surfaces
                    # as anything, distributed's own errors or an UnboundLocalError from
                    # distributed.utils.sync when the call was cancelled under it. When
                    # workers are gone, say so; else wait on, or raise a task's own error.
                    waiting = isinstance(exc, TimeoutError)
                    lost = self.lost_workers()
                    if lost is not None:
                        why = "" if waiting else f" ({type(exc).__name__})"
                        raise RuntimeError(f"{lost}: the trial's tasks cannot finish{why}") from (
                            None if waiting else exc
                        )
                    if not waiting:
                        raise
        return out

    def _memory_restarts(self) -> list[dict[str, Any]]:
        """The scheduler's record of workers their nanny restarted for going over memory_limit
        (95% of it, Dask's default)."""
        return [event for _, event in self.client.get_events(MEMORY_EVENT)]

    def lost_workers(self) -> str | None:
        """The workers this session started on that the scheduler no longer has (killed, or
        restarted by their nanny under a new address), and the workers a nanny restarted for
        going over their memory limit since the last look; None when nothing happened. Called
        after each trial: their data and models went with them."""
        if self.client is None or not self.addresses:
            return None
        now = set(scheduler_workers(self.client))
        gone = [a for a in self.addresses if a not in now]
        restarts = self._memory_restarts()
        over, self._memory_seen = restarts[self._memory_seen :], len(restarts)
        said = []
        if gone:
            said.append(
                f"{len(gone)} of {len(self.addresses)} Dask workers gone ({', '.join(gone)})"
            )
        for event in over:
            said.append(
                f"Dask's nanny restarted worker {event.get('worker')}: at "
                f"{event.get('rss', 0) / 2**20:.0f} MiB it was over 95% of its memory limit "
                "(memory_gb)"
            )
        return "; ".join(said) if said else None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
