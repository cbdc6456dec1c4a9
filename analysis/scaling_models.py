"""The scaling models and their exact non-negative least squares (the statistics of
:mod:`analysis.scaling`; no I/O, no printing).

Models (m = x, ``T1`` the time on one worker, extrapolated when m = 1 was not measured), all
linear in non-negative coefficients:

- Amdahl: ``T(m) = T1 * (s + (1 - s) / m)``; serial fraction ``s``.
- USL, on time: ``T(m) = T1 * (1 + sigma (m - 1) + kappa m (m - 1)) / m``; peak throughput at
  ``m* = sqrt((1 - sigma) / kappa)``.
- Ernest (Venkataraman et al., NSDI 2016): ``T = theta0 + theta1 size / m + theta2 ln m +
  theta3 m``.

:func:`nnls` solves the weighted problem exactly by trying every support (at most four
coefficients), each by NumPy's SVD least squares on unit-norm columns (never the normal
equations), so columns spanning many orders of magnitude stay well conditioned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Model:
    name: str
    coef_names: tuple[str, ...]  # the non-negative linear coefficients
    basis: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (m, size) -> design matrix
    params: Callable[[np.ndarray], dict[str, float]]  # coefficients -> reported parameters
    needs: str  # what the design points must vary in
    constant: tuple[float, ...]  # coefficients c with basis @ c == 1 (a constant's columns)


def _amdahl_basis(m: np.ndarray, size: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.column_stack([np.ones_like(m), 1.0 / m])


def _amdahl_params(c: np.ndarray) -> dict[str, float]:
    t1 = float(c[0] + c[1])
    return {"t1": t1, "serial_fraction": float(c[0] / t1) if t1 > 0 else math.nan}


def _usl_basis(m: np.ndarray, size: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.column_stack([1.0 / m, (m - 1.0) / m, m - 1.0])


def _usl_params(c: np.ndarray) -> dict[str, float]:
    t1 = float(c[0])
    if t1 <= 0:
        return {"t1": t1, "sigma": math.nan, "kappa": math.nan}
    return {"t1": t1, "sigma": float(c[1] / t1), "kappa": float(c[2] / t1)}


def _ernest_basis(m: np.ndarray, size: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.column_stack([np.ones_like(m), size / m, np.log(m), m])


def _ernest_params(c: np.ndarray) -> dict[str, float]:
    return {f"theta{i}": float(v) for i, v in enumerate(c)}


MODELS = {
    "amdahl": Model(
        "amdahl", ("serial", "parallel"), _amdahl_basis, _amdahl_params, "levels of x", (1, 0)
    ),
    "usl": Model(
        "usl", ("t1", "t1_sigma", "t1_kappa"), _usl_basis, _usl_params, "levels of x", (1, 1, 0)
    ),
    "ernest": Model(
        "ernest",
        ("theta0", "theta1", "theta2", "theta3"),
        _ernest_basis,
        _ernest_params,
        "(x, size) points",
        (1, 0, 0, 0),
    ),
}


def usl_peak(params: dict[str, float]) -> float | None:
    sigma, kappa = params["sigma"], params["kappa"]
    if not (kappa > 0 and sigma < 1):
        return None
    return math.sqrt((1 - sigma) / kappa)


def unit_columns(design: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The row-weighted design with its columns scaled to unit norm, and the scales."""
    import numpy as np

    a = design * w[:, None]
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    return a / scale, scale


def _lstsq(design: np.ndarray, targets: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-weighted least squares of every row of ``targets`` (rows x cells) on ``design``
    (cells x p), by SVD on unit-norm columns: the coefficients, rows x p."""
    import numpy as np

    a, scale = unit_columns(design, w)
    sol = np.linalg.lstsq(a, (targets * w).T, rcond=None)[0]
    return (sol / scale[:, None]).T


@dataclass(frozen=True)
class Solution:
    """Non-negative least-squares fits of one model, one per row of cell means.

    The fitted time at basis row ``b`` is ``offset + b @ lin``, and ``coef = lin + offset *
    constant`` are the model's coefficients (all >= 0). A solution whose support holds the
    model's ``constant`` columns was fitted to the deviations from ``t0`` (``offset = t0``);
    the others to the means themselves (``offset = 0``). ``rss`` is the weighted residual sum
    of squares of the cell means (the between-cell part of the trials' RSS).
    """

    coef: np.ndarray  # rows x k
    lin: np.ndarray  # rows x k
    offset: np.ndarray  # rows
    rss: np.ndarray  # rows

    def predict(self, basis: np.ndarray) -> np.ndarray:
        """Fitted times at the rows of ``basis`` (points x k): rows x points."""
        return self.offset[:, None] + self.lin @ basis.T


def nnls(
    design: np.ndarray, dev: np.ndarray, weights: np.ndarray, t0: float, constant: Sequence[float]
) -> Solution:
    """Weighted non-negative least squares of the cell means ``t0 + dev`` (each row of ``dev``
    one problem) on ``design`` (full column rank), solved exactly: the solution is the
    least-squares fit on its support, so it is the feasible support fit of smallest RSS. A
    support holding the ``constant`` columns is fitted to ``dev`` with ``t0`` added to the
    constant (exact where shifting the data by ``t0`` is); ties go to the smaller support."""
    import numpy as np

    rows, k = dev.shape[0], design.shape[1]
    w = np.sqrt(weights)
    const = np.asarray(constant, dtype=float)
    carriers = set(np.flatnonzero(const).tolist())
    means = dev + t0
    coef = np.zeros((rows, k))
    lin = np.zeros((rows, k))
    offset = np.zeros(rows)
    rss = (means**2) @ weights  # the empty support
    for size in range(1, k + 1):
        for support in combinations(range(k), size):
            cols = list(support)
            sub = design[:, cols]
            centred = carriers <= set(cols)
            target = dev if centred else means
            fit = _lstsq(sub, target, w)
            resid = target - fit @ sub.T
            fit_rss = (resid**2) @ weights
            fit_coef = fit + t0 * const[cols] if centred else fit
            better = (fit_coef >= 0).all(axis=1) & (fit_rss < rss)
            if not better.any():
                continue
            rss[better] = fit_rss[better]
            offset[better] = t0 if centred else 0.0
            coef[better] = 0.0
            lin[better] = 0.0
            coef[np.ix_(better, cols)] = fit_coef[better]
            lin[np.ix_(better, cols)] = fit[better]
    return Solution(coef, lin, offset, rss)
