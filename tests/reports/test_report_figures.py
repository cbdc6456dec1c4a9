"""The boxplot: drawn from precomputed statistics, deterministic, safe with hostile labels."""

from __future__ import annotations

import pytest

from analysis import BoxStats
from reports.figures import boxplot

from .conftest import HOSTILE


def _boxes(labels: list[str]) -> list[BoxStats]:
    return [
        BoxStats(label, 10, 1.0 + i, 1.5 + i, 2.0 + i, 0.5 + i, 2.5 + i, (3.5 + i,))
        for i, label in enumerate(labels)
    ]


def test_output_is_deterministic() -> None:
    boxes = _boxes([f"dask / knn / workers={w}" for w in range(1, 9)])
    first, second = (
        boxplot([("knn", boxes)], metric="train_s"),
        boxplot([("knn", boxes)], metric="train_s"),
    )
    assert first.svg == second.svg
    assert first.pdf == second.pdf
    assert first.svg.startswith("<svg")
    assert first.pdf.startswith(b"%PDF")


def test_hostile_labels_stay_escaped_in_svg() -> None:
    labels = [HOSTILE, "a --> <b>", "$\\input{x}$", "$$", "unbalanced $ dollar \\$"]
    fig = boxplot([(HOSTILE, _boxes(labels))], metric="train_s")
    assert "<script" not in fig.svg
    assert "<b>" not in fig.svg
    # No label text closes matplotlib's comments early.
    body = fig.svg.replace("<!--", "").replace("-->", "")
    assert "--" not in body.replace("stroke-dasharray", "")
    assert fig.pdf.startswith(b"%PDF")


def test_two_panels_of_six_long_configurations_render() -> None:
    labels = [f"tensorflow / mlp-784-100-50-10 / workers={w}" for w in range(1, 7)]
    fig = boxplot([("mlp", _boxes(labels)), ("knn", _boxes(labels))], metric="train_s")
    assert fig.svg.count('<g id="patch_') >= 12


def test_no_boxes_is_a_bug() -> None:
    with pytest.raises(ValueError):
        boxplot([("knn", [])], metric="train_s")
