"""``preprocess`` on engine ``dask``: the Dask engine's cluster (``runner.engines.dask``: a
``LocalCluster`` of ``workers`` processes x ``threads_per_worker`` threads, or an existing
scheduler); each pass submits one task per batch of file names and waits for all of them. With
``cache`` the first pass decodes into futures that stay on the workers, and every pass resizes
and writes from them (Dask runs each on the worker holding its decoded batch)."""

from __future__ import annotations

from typing import Any

from runner.config import Config
from runner.preprocess import (
    Batch,
    Done,
    PreprocessSession,
    process,
    read_decode,
    transform_write,
    warm,
)


class Session(PreprocessSession):
    ENGINE = "dask"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._cached: list[Any] = []  # the trial's decoded futures (cache on)

    @property
    def client(self) -> Any:
        return self.engine.client

    def _warm(self, split: Any) -> None:
        self.client.run(warm, workers=self.engine.addresses)

    def _run_passes(
        self, batches: list[Batch], out_root: str
    ) -> tuple[list[Done], dict[str, float]]:
        client, workers = self.client, self.engine.addresses
        done: list[Done] = []
        if self.cache:
            self._cached = [
                client.submit(read_decode, batch, workers=workers, pure=False) for batch in batches
            ]
        for p in range(self.passes):
            if self.cache:
                futures = [
                    client.submit(
                        transform_write,
                        d,
                        out_root,
                        p,
                        self.resize,
                        p == 0,
                        workers=workers,
                        pure=False,
                    )
                    for d in self._cached
                ]
            else:
                futures = [
                    client.submit(
                        process, batch, out_root, p, self.resize, workers=workers, pure=False
                    )
                    for batch in batches
                ]
            done += client.gather(futures)
        return done, {}

    def _after_trial(self) -> None:
        for future in self._cached:  # the cache lives for one trial only
            future.release()
        self._cached = []
