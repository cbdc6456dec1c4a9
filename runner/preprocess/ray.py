"""``preprocess`` on engine ``ray``: the Ray engine's runtime (``runner.engines.ray``:
``ray.init`` with workers x threads_per_worker CPUs, or an existing cluster), with one actor per
worker (``num_cpus`` = ``max_concurrency`` = threads_per_worker) running this workload's step.
Batch b goes to actor b mod workers; each pass waits for all batches. With ``cache`` the first
pass decodes into Ray objects (the object store; small batches Ray keeps inline in the driver)
and every pass resizes and writes from them on the same actor.

Only the engine's runtime is started (``init_runtime``), never its own actors: ours take its CPUs.
The engine creates ours (``start_actors``) and kills them in its ``close``."""

from __future__ import annotations

import os
from typing import Any

from runner.config import Config
from runner.preprocess import (
    Batch,
    Decoded,
    Done,
    PreprocessSession,
    process,
    read_decode,
    transform_write,
    warm,
)


class _Preprocessor:
    """Actor body: the step, in a worker process of its own."""

    def ping(self) -> str:
        """Start-up: the actor's process answers (the imports wait for load's ``warm``)."""
        return str(os.getpid())

    def warm(self) -> str:
        return warm()

    def process(self, batch: Batch, out_root: str, pass_no: int, resize: int) -> Done:
        return process(batch, out_root, pass_no, resize)

    def decode(self, batch: Batch) -> Decoded:
        return read_decode(batch)

    def transform(
        self, decoded: Decoded, out_root: str, pass_no: int, resize: int, fresh: bool
    ) -> Done:
        return transform_write(decoded, out_root, pass_no, resize, fresh)


class Session(PreprocessSession):
    ENGINE = "ray"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._cached: list[Any] = []  # the trial's decoded batches, as Ray objects (cache on)

    def start(self) -> None:
        self.engine = self._make_engine()
        self.engine.init_runtime()
        self.engine.start_actors(_Preprocessor, (), "ping", max_concurrency=self.threads)

    @property
    def actors(self) -> list[Any]:
        return self.engine.actors

    def _warm(self, split: Any) -> None:
        import ray

        ray.get([a.warm.remote() for a in self.actors])

    def _actor(self, index: int) -> Any:
        return self.actors[index % len(self.actors)]

    def _run_passes(
        self, batches: list[Batch], out_root: str
    ) -> tuple[list[Done], dict[str, float]]:
        import ray

        done: list[Done] = []
        if self.cache:
            self._cached = [self._actor(b.index).decode.remote(b) for b in batches]
        for p in range(self.passes):
            if self.cache:
                refs = [
                    self._actor(b.index).transform.remote(d, out_root, p, self.resize, p == 0)
                    for b, d in zip(batches, self._cached, strict=True)
                ]
            else:
                refs = [
                    self._actor(b.index).process.remote(b, out_root, p, self.resize)
                    for b in batches
                ]
            done += ray.get(refs)
        return done, {}

    def _after_trial(self) -> None:
        self._cached = []  # drop the references: the object store frees the cached batches
