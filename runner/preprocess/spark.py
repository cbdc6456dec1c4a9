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
    def _make_engine(self) -> Any:
        from runner.engines import spark as spark_engine

        return spark_engine.Session(self.config)

    @property
    def sc(self) -> Any:
        return self.engine.spark.sparkContext

    def _slices(self, n_batches: int) -> int:
        return max(min(n_batches, self.engine.partitions), 1)

    def _warm(self, split: Any) -> None:
        parts = self.engine.partitions
        self.sc.parallelize(range(parts), parts).mapPartitions(_warm_partition).collect()

    def _run_passes(self, batches: list[Batch], out_root: str) -> tuple[list[Done], int | None]:
        from pyspark import StorageLevel

        sc = self.sc
        images, read = sc.accumulator(0), sc.accumulator(0)
        rdd = sc.parallelize(batches, self._slices(len(batches)))
        decoded = rdd.map(partial(_decode_counted, images, read))
        if self.cache:
            decoded = decoded.persist(StorageLevel.MEMORY_ONLY)
        done: list[Done] = []
        try:
            for p in range(self.passes):
                # without cache every pass decodes again, so every pass is "fresh"
                fresh = p == 0 or not self.cache
                step = partial(
                    transform_write, out_root=out_root, pass_no=p, resize=self.resize, fresh=fresh
                )
                done += decoded.map(step).collect()
        finally:
            if self.cache:
                decoded.unpersist(blocking=True)
        # the accumulators count the decoding Spark really did (also a recompute of evicted
        # cache partitions); bytes_read from them too
        self._read = int(read.value)
        return done, int(images.value)

    def run_trial(self, seed: int) -> dict[str, Any]:
        out = super().run_trial(seed)
        out["metrics"]["bytes_read"] = float(self._read)
        out["metrics"]["partitions"] = float(self._slices(len(self.inputs.batches)))
        return out
