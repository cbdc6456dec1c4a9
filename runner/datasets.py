"""Datasets: scikit-learn's digits, and MNIST-format IDX files (Fashion-MNIST from Debian's
``dataset-fashion-mnist``, or any directory given with ``--data-dir``). Nothing is downloaded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runner.errors import RunnerError

DATASETS = {
    "digits": "scikit-learn's 1797 8x8 handwritten digits (ships with scikit-learn)",
}


@dataclass(frozen=True)
class Split:
    """A train/test split. Pixels are float32 in [0, 1]; images are ``image_shape``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


def check_dataset(name: str, data_dir: str | None = None) -> None:
    if name not in DATASETS:
        raise RunnerError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")


def load_split(
    name: str, *, seed: int, data_fraction: float = 1.0, data_dir: str | None = None
) -> Split:
    """Load ``name`` and split it 80:20, stratified, with ``seed`` (digits: 1437 / 360, as in
    paper 000). ``data_fraction`` < 1 keeps a stratified fraction of the training set."""
    check_dataset(name)
    if not 0 < data_fraction <= 1:
        raise RunnerError(f"data_fraction must be in (0, 1], got {data_fraction}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    if data_fraction < 1:
        x_tr, _, y_tr, _ = train_test_split(
            x_tr, y_tr, train_size=data_fraction, stratify=y_tr, random_state=seed
        )
    return Split(name, x_tr, y_tr, x_te, y_te, (8, 8))
