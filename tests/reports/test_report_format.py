"""Number formatting: one precision per kind of column."""

from __future__ import annotations

import math

import pytest

from reports import format as fmt


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, "0.5000"),
        (0.51236, "0.5124"),
        (12.345, "12.35"),
        (1234.4, "1234"),
        (-0.09628, "-0.09628"),
        (9.99996, "10.00"),
        (0.0, "0.000"),
        (3.2e-6, "3.200e-06"),
        (float("nan"), "–"),
        (None, "–"),
    ],
)
def test_seconds_four_significant_digits(value: float | None, expected: str) -> None:
    assert fmt.seconds(value) == expected


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0312, "0.0312"),
        (0.5, "0.5000"),
        (0.00123, "0.0012"),
        (2.7e-4, "2.7e-04"),
        (1.81e-23, "<1e-16"),
        (0.0, "<1e-16"),
        (math.nan, "–"),
    ],
)
def test_p_values(p: float, expected: str) -> None:
    assert fmt.p_value(p) == expected


def test_other_columns() -> None:
    assert fmt.dof(8.0) == "8"
    assert fmt.dof(7.93) == "7.9"
    assert fmt.interval(0.1, 0.25) == "[0.1000, 0.2500]"
    assert fmt.level(2.0) == "2"
    assert fmt.level("dask") == "dask"
    assert fmt.count(None) == "0"
    assert fmt.fixed(0.98765, 4) == "0.9877"
