"""Number formatting for reports: one function per kind of column, applied once in the context."""

from __future__ import annotations

import math
from typing import Any

MISSING = "–"


def is_missing(x: Any) -> bool:
    """None or a float NaN; never parses a string (a level may be named "nan")."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def sig(x: Any, digits: int = 4) -> str:
    """Fixed-point with ``digits`` significant digits (``0.5000``, ``12.35``, ``1235``); very
    small or large magnitudes in scientific notation."""
    if is_missing(x):
        return MISSING
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return f"{0:.{digits - 1}f}"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude < -4 or magnitude >= 9:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - magnitude)
    text = f"{x:.{decimals}f}"
    # Rounding may add a digit (9.9996 -> 10.000): format again at the new magnitude.
    if len(text.lstrip("-").replace(".", "").lstrip("0")) > digits and decimals > 0:
        text = f"{x:.{decimals - 1}f}"
    return text


def seconds(x: Any) -> str:
    """A duration in seconds: 4 significant digits."""
    return sig(x, 4)


def p_value(p: Any) -> str:
    """``0.0312``; below 0.001 scientific (``3.1e-07``); below double precision ``<1e-16``."""
    if is_missing(p):
        return MISSING
    p = float(p)
    if p < 1e-16:
        return "<1e-16"
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.4f}"


def statistic(x: Any) -> str:
    """A test statistic (F, t): 4 significant digits."""
    return sig(x, 4)


def fixed(x: Any, decimals: int) -> str:
    if is_missing(x):
        return MISSING
    return f"{float(x):.{decimals}f}"


def dof(x: Any) -> str:
    """Degrees of freedom: integers as integers, Welch's fractional df with one decimal."""
    if is_missing(x):
        return MISSING
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:.1f}"


def count(x: Any) -> str:
    if is_missing(x):
        return "0"
    return str(int(x))


def interval(low: Any, high: Any, fmt: Any = seconds) -> str:
    if is_missing(low) or is_missing(high):
        return MISSING
    return f"[{fmt(low)}, {fmt(high)}]"


def level(x: Any) -> str:
    """A factor level as text, as the analysis package writes levels (``2`` not ``2.0``)."""
    from analysis.data import format_level

    return MISSING if is_missing(x) else format_level(x)
