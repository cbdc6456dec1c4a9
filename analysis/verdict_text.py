"""How a verdict's detail reads: numbers to 4 significant digits, p values, level labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.verdict_levels import Level


def _num(x: float, digits: int = 4) -> str:
    """``digits`` significant digits, no exponent for ordinary magnitudes."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude < -4 or magnitude >= 9:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{max(0, digits - 1 - magnitude)}f}"


def _p(p: float) -> str:
    if math.isnan(p):
        return "p = -"
    if p < 1e-16:
        return "p < 1e-16"
    return f"p = {p:.2e}" if p < 1e-3 else f"p = {p:.3f}"


def _unit(metric: str) -> str:
    return " s" if metric.endswith("_s") else ""


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _means(found: Sequence[Level], factor: str, metric: str) -> str:
    unit = _unit(metric)
    return "; ".join(
        f"{factor}={_label(lv.value)}: {_num(lv.mean)}{unit}" + (f" (n={lv.n})" if lv.n > 1 else "")
        for lv in found
    )
