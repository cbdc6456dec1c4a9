"""train_accuracy on a seeded stratified sample of the training rows (runner.worker.train_sample):
at most 10,000 rows, each class's count within one row of its share of the full set, the same
rows for the same seed, all rows when there are fewer; on digits the trial's train_accuracy is
scikit-learn's accuracy_score on those rows, computed here from a KNN fitted independently."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from runner import worker
from runner.worker import TRAIN_SAMPLE_ROWS, train_sample


def _labels(counts: list[int], seed: int = 0) -> np.ndarray:
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return np.random.default_rng(seed).permutation(y)


@pytest.mark.parametrize(
    "counts",
    [
        [6000] * 10,  # Fashion-MNIST's 60,000: 1,000 of each class
        [12345, 7, 999, 20001, 3333, 1],  # unbalanced, classes smaller than one sampled row
        [10001],  # one class
        [3334, 3333, 3334],  # 10,001 rows: one row dropped
    ],
)
def test_sample_is_stratified(counts: list[int]) -> None:
    y = _labels(counts)
    rows = train_sample(y, seed=11)
    n = len(y)
    assert TRAIN_SAMPLE_ROWS == 10_000
    assert len(rows) == 10_000
    assert len(np.unique(rows)) == len(rows)
    assert np.all(np.diff(rows) > 0) and rows[0] >= 0 and rows[-1] < n
    for label, n_c in enumerate(counts):
        share = Fraction(10_000 * n_c, n)  # the class's exact share of the sample
        got = int(np.sum(y[rows] == label))
        assert abs(got - share) < 1, (label, got, share)


def test_sample_is_deterministic_for_a_seed() -> None:
    y = _labels([7000, 5000, 9000], seed=2)
    first, again = train_sample(y, seed=5), train_sample(y, seed=5)
    assert np.array_equal(first, again)
    other = train_sample(y, seed=6)
    assert len(other) == len(first) and not np.array_equal(first, other)


@pytest.mark.parametrize("n", [1, 500, 10_000])
def test_sample_is_every_row_when_there_are_few(n: int) -> None:
    y = _labels([n])
    assert np.array_equal(train_sample(y, seed=3), np.arange(n))


def test_limit_is_honoured() -> None:
    y = _labels([40, 60])
    rows = train_sample(y, seed=1, limit=25)
    assert len(rows) == 25
    assert int(np.sum(y[rows] == 0)) == 10  # 25 x 40 / 100 exactly


def test_digits_train_accuracy_is_sklearns_on_the_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.metrics import accuracy_score
    from sklearn.neighbors import KNeighborsClassifier

    from runner.datasets import load_split
    from runner.engines import make_session
    from runner.workloads import get_workload

    # digits has 1,437 training rows, fewer than 10,000: lower the cap so a sample is drawn
    monkeypatch.setattr(worker, "TRAIN_SAMPLE_ROWS", 300)
    split = load_split("digits", seed=0)
    config = get_workload("knn").resolve(
        {"engine": "local", "workload": "knn", "k": 5, "experiment": "t", "seed": 0}
    )
    session = make_session(config)
    session.start()
    try:
        session.load(split)
        out = worker.run_one_trial(session, split, seed=7)
    finally:
        session.close()
    assert out["status"] == "ok", out["error"]

    rows = train_sample(split.y_train, seed=7, limit=300)
    model = KNeighborsClassifier(n_neighbors=5).fit(split.x_train, split.y_train)
    expected = accuracy_score(split.y_train[rows], model.predict(split.x_train[rows]))
    assert out["metrics"]["train_accuracy"] == expected
    assert out["metrics"]["train_accuracy_n"] == 300
    # the sample is what was scored: the whole training set scores differently here
    full = accuracy_score(split.y_train, model.predict(split.x_train))
    assert expected != full


def test_digits_uses_every_training_row() -> None:
    from runner.datasets import load_split
    from runner.engines import make_session
    from runner.workloads import get_workload

    split = load_split("digits", seed=0, data_fraction=0.5)
    config = get_workload("knn").resolve(
        {"engine": "local", "workload": "knn", "k": 3, "experiment": "t", "seed": 0}
    )
    session = make_session(config)
    session.start()
    try:
        session.load(split)
        out = worker.run_one_trial(session, split, seed=1)
    finally:
        session.close()
    assert out["metrics"]["train_accuracy_n"] == len(split.y_train)
