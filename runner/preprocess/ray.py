"""``preprocess`` on engine ``ray``: the Ray engine's runtime (``runner.engines.ray``:
``ray.init`` with workers x threads_per_worker CPUs, or an existing cluster), with one actor per
worker (``num_cpus`` = ``max_concurrency`` = threads_per_worker) running this workload's step.
Batch b goes to actor b mod workers; each pass waits for all batches. With ``cache`` the first
pass decodes into Ray objects (the object store; small batches Ray keeps inline in the driver)
and every pass resizes and writes from them on the same actor.

The Ray engine's own actors (created in its start) are removed first: they hold every CPU of the
runtime, and ours need them."""

from __future__ import annotations

import contextlib
from typing import Any

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

#: Seconds to wait for the actors to come up.
ACTOR_START_TIMEOUT_S = 120.0


class _Preprocessor:
    """Actor body: the step, in a worker process of its own."""

    def ping(self) -> str:
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
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.actors: list[Any] = []

    def _make_engine(self) -> Any:
        from runner.engines import ray as ray_engine

        return ray_engine.Session(self.config)

    def start(self) -> None:
        import ray

        super().start()
        for actor in self.engine.actors:  # free the CPUs the engine's actors hold
            ray.kill(actor)
        self.engine.actors = []
        resources: dict[str, Any] = {"num_cpus": self.threads}
        if self.config.get("memory_gb"):
            resources["memory"] = int(float(self.config["memory_gb"]) * 2**30)
        actor_class = ray.remote(_Preprocessor).options(
            **resources, max_concurrency=self.threads, max_restarts=0
        )
        self.actors = [actor_class.remote() for _ in range(self.workers)]
        pids = ray.get([a.ping.remote() for a in self.actors], timeout=ACTOR_START_TIMEOUT_S)
        if len(set(pids)) != self.workers:
            raise RuntimeError(f"ray: expected {self.workers} actor processes, got {pids}")

    def _warm(self, split: Any) -> None:
        import ray

        ray.get([a.ping.remote() for a in self.actors])

    def _actor(self, index: int) -> Any:
        return self.actors[index % len(self.actors)]

    def _run_passes(self, batches: list[Batch], out_root: str) -> tuple[list[Done], int | None]:
        import ray

        done: list[Done] = []
        decoded: list[Any] = []
        if self.cache:
            decoded = [self._actor(b.index).decode.remote(b) for b in batches]
        try:
            for p in range(self.passes):
                if self.cache:
                    refs = [
                        self._actor(b.index).transform.remote(d, out_root, p, self.resize, p == 0)
                        for b, d in zip(batches, decoded, strict=True)
                    ]
                else:
                    refs = [
                        self._actor(b.index).process.remote(b, out_root, p, self.resize)
                        for b in batches
                    ]
                done += ray.get(refs)
        finally:
            del decoded[:]  # drop the references: the object store frees the cached batches
        return done, None

    def close(self) -> None:
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors = []
        super().close()
