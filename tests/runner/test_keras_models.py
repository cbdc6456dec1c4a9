"""keras_models.validation_rows: the rows held back for validation under several replicas."""

from __future__ import annotations

import math

import pytest

from runner.workloads.keras_models import validation_rows


@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
def test_no_replica_gets_an_empty_batch_and_batches_split_evenly(replicas: int) -> None:
    uneven = 0
    for n in range(10, 3000, 7):
        for batch in (1, 2, 3, 8, 32, 64, 128, 256, 512, 1000):
            v = validation_rows(n, 0.1, batch, replicas)
            assert replicas <= v < n
            rest = (n - v) % batch
            # a last training batch of fewer rows than replicas would leave one empty
            assert not (0 < rest < replicas and n - v > rest), (n, batch, v)
            if replicas == 1:  # one replica: exactly the requested share
                assert v == min(max(math.floor(n * 0.1), 1), n - 1)
            uneven += v % replicas != 0
    # only tiny data sets cannot have both; digits' 1437 rows can
    assert uneven < 2 * 300
    assert validation_rows(1437, 0.1, 256, 2) == 144  # 000/003's digits: 72 + 72, not 72 + 71
