"""``preprocess`` on engine ``spark``, as 003 did it: an RDD over the batches of file names (or
of TFRecord shard spans), ``map`` to decode, ``persist`` when ``cache`` is on, then per pass a
``map`` that resizes, normalises and writes, collected (one Spark job per pass). Without cache
every pass recomputes the decode from the files; with it, passes after the first read the
persisted partitions (MEMORY_ONLY). Images actually decoded are counted with an accumulator, so
``decoded_images`` shows what Spark really recomputed. The Spark session is the spark engine's
(``runner.engines.spark``: local[N], a standalone cluster the runner starts, or --spark-master).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

from runner.config import Config
from runner.preprocess import (
    Batch,
    Decoded,
    Done,
    PreprocessSession,
    read_decode,
    transform_write,
    warm,
)


def _decode_counted(images: Any, read: Any, batch: Batch) -> Decoded:
    decoded = read_decode(batch)
    images.add(len(decoded.images))
    read.add(decoded.bytes_read)
    return decoded


def _warm_partition(items: Iterable[int]) -> Iterator[str]:
    for _ in items:
        pass
    yield warm()


class Session(PreprocessSession):
    ENGINE = "spark"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._cached: Any = None  # the persisted decoded RDD of the trial (cache on)

    @property
    def sc(self) -> Any:
        return self.engine.spark.sparkContext

    def _warm(self, split: Any) -> None:
        parts = self.engine.partitions
        self.sc.parallelize(range(parts), parts).mapPartitions(_warm_partition).collect()

    def _run_passes(
        self, batches: list[Batch], out_root: str
    ) -> tuple[list[Done], dict[str, float]]:
        from pyspark import StorageLevel

        sc = self.sc
        images, read = sc.accumulator(0), sc.accumulator(0)
        slices = max(min(len(batches), self.engine.partitions), 1)
        decoded = sc.parallelize(batches, slices).map(partial(_decode_counted, images, read))
        if self.cache:
            decoded = self._cached = decoded.persist(StorageLevel.MEMORY_ONLY)
        done: list[Done] = []
        for p in range(self.passes):
            # without cache every pass decodes again, so every pass is "fresh"
            fresh = p == 0 or not self.cache
            step = partial(
                transform_write, out_root=out_root, pass_no=p, resize=self.resize, fresh=fresh
            )
            done += decoded.map(step).collect()
        # the accumulators count the decoding Spark really did (also a recompute of evicted
        # cache partitions); bytes_read from them too
        return done, {
            "decoded_images": float(images.value),
            "bytes_read": float(read.value),
            "partitions": float(slices),
        }

    def _after_trial(self) -> None:
        if self._cached is not None:  # the cache lives for one trial only
            self._cached.unpersist(blocking=True)
            self._cached = None
