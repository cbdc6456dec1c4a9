"""The result types of :mod:`analysis.scaling` (frozen dataclasses; their text, frames and
tables are built by :mod:`analysis.scaling_text`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from analysis.tables import Table

DEFAULT_SCALING_BY = ("engine", "workload")
LEVEL_COLUMNS = ("n", "median", "mean", "sd", "speedup", "efficiency", "change_pct", "karp_flatt")


@dataclass(frozen=True)
class ScalingLevel:
    """One measured level: time statistics and scaling against the smallest level ``x0``.

    ``speedup = median(x0) / median``, ``efficiency = speedup / (x / x0)``, ``change_pct`` the
    percent change of the median from the previous level (negative: faster), ``karp_flatt`` the
    experimentally determined serial fraction ``(1/speedup - 1/p) / (1 - 1/p)`` with
    ``p = x / x0``. ``change_pct`` and ``karp_flatt`` are None at ``x0``.
    """

    x: float
    n: int
    median: float
    mean: float
    sd: float  # NaN when n == 1
    speedup: float
    efficiency: float
    change_pct: float | None
    karp_flatt: float | None


@dataclass(frozen=True)
class ModelParam:
    """A fitted parameter with its bootstrap percentile interval (None without a bootstrap)."""

    name: str
    estimate: float
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class ModelFit:
    """One model fitted by least squares over every trial of a group.

    ``aic`` is ``-2 log L + 2 k`` for Gaussian errors (k = the model's parameters, as
    statsmodels counts them); ``-inf`` when the model fits every trial exactly.
    ``peak_x`` is the USL's worker count of peak throughput (None for the others, or when the
    USL has no peak: ``kappa == 0`` or ``sigma >= 1``).
    """

    model: str
    params: tuple[ModelParam, ...]
    r_squared: float
    aic: float
    rss: float
    n_points: int
    n_trials: int
    peak_x: float | None = None

    def param(self, name: str) -> float:
        return next(p.estimate for p in self.params if p.name == name)


@dataclass(frozen=True)
class Prediction:
    """A model's predicted time at ``x`` (at the group's largest ``size``), with its bootstrap
    percentile interval (None without a bootstrap)."""

    model: str
    x: float
    time: float
    ci_low: float | None
    ci_high: float | None
    measured: bool


@dataclass(frozen=True)
class ScalingGroup:
    """Everything for one ``by`` level (``level`` holds its values in ``by`` order).

    ``best_model`` has the lowest AIC. ``knee`` is the first level (measured, or predicted by
    the best model beyond the measured ones) from which going to the next level improves the
    time by less than ``min_gain``; ``knee_model`` is the first whole worker count m from which
    one more worker improves the best model's time by less than ``min_gain``. Both are None when
    no such point exists (within ``scaling_fit.KNEE_SEARCH_MAX`` for ``knee_model``).
    ``no_intervals`` says why a bootstrap asked for was not run for this group (empty when it
    ran or was not asked for).
    """

    level: tuple[Any, ...]
    levels: tuple[ScalingLevel, ...]
    fits: tuple[ModelFit, ...]
    skipped: tuple[str, ...]
    predictions: tuple[Prediction, ...]
    best_model: str | None
    knee: float | None
    knee_model: float | None
    no_intervals: str = ""


@dataclass(frozen=True)
class ScalingResult:
    """Scaling of ``metric`` over ``x`` per ``by`` level; see :class:`ScalingGroup`."""

    metric: str
    x: str
    by: tuple[str, ...]
    size: str | None
    min_gain: float
    n_boot: int
    seed: int
    confidence_level: float
    groups: tuple[ScalingGroup, ...]
    where: tuple[str, ...] = field(default_factory=tuple)
    #: what was held fixed, pooled or left out (groups with one level of x), one sentence each
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        from analysis.scaling_text import to_dict

        return to_dict(self)

    def to_frame(self) -> pd.DataFrame:
        """One row per (group, measured level): the ``by`` columns, the x column (named as
        ``x``) and :data:`LEVEL_COLUMNS`."""
        from analysis.scaling_text import level_frame

        return level_frame(self)

    def fit_frame(self) -> pd.DataFrame:
        """One row per (group, model, parameter): ``model, param, estimate, ci_low, ci_high,
        r_squared, aic, n_points, n_trials, peak_x, best``."""
        from analysis.scaling_text import fit_frame

        return fit_frame(self)

    def prediction_frame(self) -> pd.DataFrame:
        """One row per (group, model, predicted x): ``model``, the x column, ``time, ci_low,
        ci_high, measured``."""
        from analysis.scaling_text import prediction_frame

        return prediction_frame(self)

    def tables(self) -> list[Table]:
        """``levels`` (main), ``fits``, ``predictions`` and ``groups`` (best model, knees,
        models not fitted, why there are no intervals)."""
        from analysis.scaling_text import tables

        return tables(self)

    def to_latex(self) -> str:
        from analysis.scaling_text import to_latex

        return to_latex(self)

    def __str__(self) -> str:
        from analysis.scaling_text import text

        return text(self)
