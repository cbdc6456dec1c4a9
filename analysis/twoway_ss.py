"""Sums of squares of a two-way layout from its cell means (see :mod:`analysis.twoway`): each
term's SS is the drop in weighted residual SS between two nested models fitted to the cell means
with weights ``n_c``, computed by projecting residuals (never as a difference of two large
numbers)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


class Cell(Protocol):
    """A cell: indexes ``i``, ``j`` of its levels and its trial count ``n``."""

    @property
    def i(self) -> int: ...
    @property
    def j(self) -> int: ...
    @property
    def n(self) -> int: ...


def _sum_coding(index: np.ndarray, k: int) -> np.ndarray:
    """Sum-to-zero contrast columns of a factor with ``k`` levels (the last level gets -1)."""
    import numpy as np

    x = np.zeros((len(index), k - 1))
    for col in range(k - 1):
        x[index == col, col] = 1.0
    x[index == k - 1, :] = -1.0
    return x


def _project(x: np.ndarray, y: np.ndarray, sw: np.ndarray) -> np.ndarray:
    """Weighted least-squares fit of ``y`` on ``x`` (weights ``sw**2``): the fitted values."""
    import numpy as np

    beta = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]
    return x @ beta


def _extra_ss(
    x0: np.ndarray, x1: np.ndarray | None, y: np.ndarray, w: np.ndarray, sw: np.ndarray
) -> float:
    """``sum w (fit1 - fit0)^2``: the drop in residual SS from the model ``x0`` to the larger
    model ``x1`` (None: the saturated model, which fits every cell mean). Computed by
    projecting the residuals of ``x0`` (refined once), not by subtracting two fits of ``y``."""
    e0 = y - _project(x0, y, sw)
    e0 = e0 - _project(x0, e0, sw)
    d = e0 if x1 is None else _project(x1, e0, sw)
    return math.fsum((w * d * d).tolist())


def term_ss(
    cells: Sequence[Cell], rel: np.ndarray, n_a: int, n_b: int, ss_type: int
) -> tuple[float, float, float, float]:
    """Sums of squares of G, G2, G:G2 (of type ``ss_type``) and the between-cell SS."""
    import numpy as np

    w = np.array([c.n for c in cells], dtype=float)
    sw = np.sqrt(w)
    xa = _sum_coding(np.array([c.i for c in cells]), n_a)
    xb = _sum_coding(np.array([c.j for c in cells]), n_b)
    xab = (xa[:, :, None] * xb[:, None, :]).reshape(len(cells), -1)
    one = np.ones((len(cells), 1))

    def model(*parts: np.ndarray) -> np.ndarray:
        return np.hstack([one, *parts])

    # Centre on the weighted grand mean: smaller numbers, same sums of squares.
    y = rel - float(np.average(rel, weights=w))
    m1, ma, mb, mab = model(), model(xa), model(xb), model(xa, xb)
    if ss_type == 1:
        ss = (_extra_ss(m1, ma, y, w, sw), _extra_ss(ma, mab, y, w, sw))
    elif ss_type == 2:
        ss = (_extra_ss(mb, mab, y, w, sw), _extra_ss(ma, mab, y, w, sw))
    else:
        ss = (
            _extra_ss(model(xb, xab), None, y, w, sw),
            _extra_ss(model(xa, xab), None, y, w, sw),
        )
    ss_ab = _extra_ss(mab, None, y, w, sw)
    ss_between = _extra_ss(m1, None, y, w, sw)
    return ss[0], ss[1], ss_ab, ss_between
