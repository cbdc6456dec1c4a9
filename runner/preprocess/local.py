"""``preprocess`` on engine ``local``: the batches one after another in this process (on
``threads_per_worker`` threads when more than one), after the local engine's start-up (BLAS /
OpenMP thread limits)."""

from __future__ import annotations

from functools import partial
from typing import Any

from runner.preprocess import (
    Batch,
    Decoded,
    Done,
    PreprocessSession,
    process,
    read_decode,
    run_in_threads,
    transform_write,
    warm,
)


class Session(PreprocessSession):
    ENGINE = "local"

    def _warm(self, split: Any) -> None:
        warm()
        self.engine.limit_threads()  # every thread pool loaded by now, the step's included

    def _run_passes(
        self, batches: list[Batch], out_root: str
    ) -> tuple[list[Done], dict[str, float]]:
        done: list[Done] = []
        if not self.cache:
            for p in range(self.passes):
                step = partial(process, out_root=out_root, pass_no=p, resize=self.resize)
                done += run_in_threads(step, batches, self.threads)
            return done, {}
        decoded: list[Decoded] = run_in_threads(read_decode, batches, self.threads)
        for p in range(self.passes):
            step = partial(
                transform_write, out_root=out_root, pass_no=p, resize=self.resize, fresh=p == 0
            )
            done += run_in_threads(step, decoded, self.threads)
        return done, {}
