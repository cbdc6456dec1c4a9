"""``preprocess`` on engine ``dask``: the Dask engine's cluster (``runner.engines.dask``: a
``LocalCluster`` of ``workers`` processes x ``threads_per_worker`` threads, or an existing
scheduler); each pass submits one task per batch of file names and waits for all of them. With
``cache`` the first pass decodes into futures that stay on the workers, and every pass resizes
and writes from them (Dask runs each on the worker holding its decoded batch)."""

from __future__ import annotations

from typing import Any

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
    def _make_engine(self) -> Any:
        from runner.engines import dask as dask_engine

        return dask_engine.Session(self.config)

    @property
    def client(self) -> Any:
        return self.engine.client

    def _warm(self, split: Any) -> None:
        self.client.run(warm, workers=self.engine.addresses)

    def _run_passes(self, batches: list[Batch], out_root: str) -> tuple[list[Done], int | None]:
        client, workers = self.client, self.engine.addresses
        done: list[Done] = []
        decoded: list[Any] = []
        if self.cache:
            decoded = [
                client.submit(read_decode, batch, workers=workers, pure=False) for batch in batches
            ]
        try:
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
                        for d in decoded
                    ]
                else:
                    futures = [
                        client.submit(
                            process, batch, out_root, p, self.resize, workers=workers, pure=False
                        )
                        for batch in batches
                    ]
                done += client.gather(futures)
        finally:
            for future in decoded:  # the cache lives for this trial only
                future.release()
        return done, None
