"""How a time scales with the number of workers (or any positive numeric factor): per-level
medians, speed-up, efficiency, percent change and Karp-Flatt serial fraction, and fits of Amdahl's
law, the Universal Scalability Law and Ernest's model with bootstrap intervals.

What is computed where:

- DuckDB, GROUP BY (group, x): count, median, mean (shifted by a data value, as
  :mod:`analysis.data` does) and variance of the time: the per-level table.
- DuckDB, GROUP BY (group, x, size): count, mean and variance: the fits' sufficient statistics.
  The models are fitted by least squares on **every trial** (not on the medians): the sum of
  squares over trials is the within-cell sum of squares (fixed) plus ``n * (cell mean - model)^2``,
  so the fit is non-negative least squares on the cell means weighted by their counts, and R^2
  and AIC are over all trials.
- Bootstrap (``n_boot`` resamples, seeded): trials are resampled with replacement within each
  cell and the models refitted. A cell of at most :data:`BOOT_EXACT_MAX` trials is resampled
  from its values (fetched as one list per cell); a larger cell's resampled mean is drawn from
  its normal approximation ``N(mean, sd^2 / n)``, so a huge database is never loaded.

Precision: every cell's time is carried as its smallest trial (a data value) plus the mean
deviation from it, and the fits work on the deviations of the cell means from the group's
smallest time ``t0``. Every model can make a constant (Amdahl's and Ernest's first column; the
USL's first two add up to 1), so a solution whose support holds those columns is the least-squares
fit of the deviations with ``t0`` added back to the constant: times such as ``1e12 + tiny noise``
keep their digits in the coefficients, residuals, R^2, AIC and bootstrap. The non-negative least
squares problem (at most four coefficients) is solved exactly by trying every support, each by
NumPy's SVD least squares on unit-norm columns (never the normal equations), so columns spanning
many orders of magnitude (``data_fraction`` 1e-9, a million workers) stay well conditioned.

Models (m = x, ``T1`` the time on one worker, extrapolated when m = 1 was not measured):

- Amdahl: ``T(m) = T1 * (s + (1 - s) / m)``; serial fraction ``s``.
- USL, on time: ``T(m) = T1 * (1 + sigma (m - 1) + kappa m (m - 1)) / m`` (throughput
  ``X(m) = lambda m / (1 + sigma (m - 1) + kappa m (m - 1))`` for a fixed amount of work); peak
  throughput at ``m* = sqrt((1 - sigma) / kappa)``.
- Ernest (Venkataraman et al., NSDI 2016): ``T = theta0 + theta1 size / m + theta2 ln m +
  theta3 m``, every theta >= 0; ``size`` from a column (``data_fraction`` by default,
  missing = 1).

All three are linear in non-negative parameters and fitted by non-negative least squares (the
solution ``scipy.optimize.nnls`` finds; see Precision above for how). A model is fitted only
when there are more distinct design points than parameters (otherwise it would interpolate and
R^2/AIC mean nothing); the others are listed in ``skipped`` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

from analysis.bootstrap import percentile_interval
from analysis.data import (
    VIEW,
    Database,
    Filter,
    check_column,
    check_distinct,
    connect,
    execute,
    finite_check,
    fmt,
    format_level,
    frame_to_latex,
    level_label,
    no_trials_error,
    quote,
    render_table,
    select,
)
from analysis.errors import AnalysisError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DEFAULT_SCALING_BY = ("engine", "workload")
#: Cells with more trials than this are bootstrapped from their normal approximation.
BOOT_EXACT_MAX = 5000
#: How far the one-more-worker search of ``knee_model`` looks.
KNEE_SEARCH_MAX = 100_000
LEVEL_COLUMNS = (
    "n",
    "median",
    "mean",
    "sd",
    "speedup",
    "efficiency",
    "change_pct",
    "karp_flatt",
)


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
    no such point exists (within :data:`KNEE_SEARCH_MAX` for ``knee_model``).
    """

    level: tuple[Any, ...]
    levels: tuple[ScalingLevel, ...]
    fits: tuple[ModelFit, ...]
    skipped: tuple[str, ...]
    predictions: tuple[Prediction, ...]
    best_model: str | None
    knee: float | None
    knee_model: float | None


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
        def level(g: ScalingGroup) -> dict[str, Any]:
            return dict(zip(self.by, g.level, strict=True))

        return {
            "metric": self.metric,
            "x": self.x,
            "by": list(self.by),
            "size": self.size,
            "min_gain": self.min_gain,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "confidence_level": self.confidence_level,
            "where": list(self.where),
            "notes": list(self.notes),
            "groups": [
                {
                    "level": level(g),
                    "levels": [{"x": _num(lv.x), **_level_dict(lv)} for lv in g.levels],
                    "fits": [
                        {
                            "model": f.model,
                            "params": [vars(p) for p in f.params],
                            "r_squared": f.r_squared,
                            "aic": f.aic,
                            "rss": f.rss,
                            "n_points": f.n_points,
                            "n_trials": f.n_trials,
                            "peak_x": f.peak_x,
                        }
                        for f in g.fits
                    ],
                    "skipped": list(g.skipped),
                    "predictions": [{**vars(p), "x": _num(p.x)} for p in g.predictions],
                    "best_model": g.best_model,
                    "knee": g.knee,
                    "knee_model": g.knee_model,
                }
                for g in self.groups
            ],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per (group, measured level): the ``by`` columns, the x column (named as
        ``x``) and :data:`LEVEL_COLUMNS`."""
        import pandas as pd

        rows = [
            {**dict(zip(self.by, g.level, strict=True)), self.x: _num(lv.x), **_level_dict(lv)}
            for g in self.groups
            for lv in g.levels
        ]
        return pd.DataFrame(rows, columns=[*self.by, self.x, *LEVEL_COLUMNS])

    def fit_frame(self) -> pd.DataFrame:
        """One row per (group, model, parameter): ``model, param, estimate, ci_low, ci_high,
        r_squared, aic, n_points, n_trials, peak_x``."""
        import pandas as pd

        cols = ["model", "param", "estimate", "ci_low", "ci_high", "r_squared", "aic"]
        cols += ["n_points", "n_trials", "peak_x"]
        rows = [
            {
                **dict(zip(self.by, g.level, strict=True)),
                "model": f.model,
                "param": p.name,
                "estimate": p.estimate,
                "ci_low": p.ci_low,
                "ci_high": p.ci_high,
                "r_squared": f.r_squared,
                "aic": f.aic,
                "n_points": f.n_points,
                "n_trials": f.n_trials,
                "peak_x": f.peak_x,
            }
            for g in self.groups
            for f in g.fits
            for p in f.params
        ]
        return pd.DataFrame(rows, columns=[*self.by, *cols])

    def prediction_frame(self) -> pd.DataFrame:
        """One row per (group, model, predicted x): ``model``, the x column, ``time, ci_low,
        ci_high, measured``."""
        import pandas as pd

        rows = [
            {
                **dict(zip(self.by, g.level, strict=True)),
                "model": p.model,
                self.x: _num(p.x),
                "time": p.time,
                "ci_low": p.ci_low,
                "ci_high": p.ci_high,
                "measured": p.measured,
            }
            for g in self.groups
            for p in g.predictions
        ]
        cols = [*self.by, "model", self.x, "time", "ci_low", "ci_high", "measured"]
        return pd.DataFrame(rows, columns=cols)

    def to_latex(self) -> str:
        """The per-level table, the fits and the predictions as ``tabular``s."""
        parts = [frame_to_latex(self.to_frame()), frame_to_latex(self.fit_frame())]
        if any(g.predictions for g in self.groups):
            parts.append(frame_to_latex(self.prediction_frame()))
        return "\n\n".join(parts)

    def __str__(self) -> str:
        where = f"; where {' '.join(self.where)}" if self.where else ""
        pct = f"{self.confidence_level * 100:g}%"
        blocks = [f"Scaling of {self.metric} over {self.x}{where}"]
        for g in self.groups:
            head = level_label(self.by, g.level)
            lines = [f"\n{head}" if head else ""]
            lines.append(
                render_table(
                    [self.x, "n", "median", "speedup", "efficiency", "change %", "karp_flatt"],
                    [
                        (
                            format_level(lv.x),
                            lv.n,
                            lv.median,
                            lv.speedup,
                            lv.efficiency,
                            "-" if lv.change_pct is None else fmt(lv.change_pct, 4),
                            "-" if lv.karp_flatt is None else fmt(lv.karp_flatt, 4),
                        )
                        for lv in g.levels
                    ],
                )
            )
            for f in g.fits:
                params = ", ".join(_param_text(p) for p in f.params)
                peak = "" if f.peak_x is None else f", peak throughput at {fmt(f.peak_x, 4)}"
                best = " (best AIC)" if f.model == g.best_model else ""
                lines.append(
                    f"{f.model}{best}: {params}{peak}; R^2 = {fmt(f.r_squared, 4)}, "
                    f"AIC = {fmt(f.aic)}"
                )
            lines += [f"not fitted: {s}" for s in g.skipped]
            if g.predictions:
                lines.append(
                    render_table(
                        ["model", self.x, "predicted", f"{pct} interval"],
                        [
                            (
                                p.model,
                                format_level(p.x),
                                p.time,
                                "-" if p.ci_low is None else f"[{fmt(p.ci_low)}, {fmt(p.ci_high)}]",
                            )
                            for p in g.predictions
                        ],
                    )
                )
            gain = f"{self.min_gain * 100:g}%"
            knee = "none in range" if g.knee is None else format_level(g.knee)
            lines.append(f"next level buys < {gain} from {self.x} = {knee}")
            if g.knee_model is not None:
                lines.append(
                    f"one more worker buys < {gain} ({g.best_model}) from {self.x} = "
                    f"{format_level(g.knee_model)}"
                )
            blocks.append("\n".join(line for line in lines if line))
        blocks += [f"note: {n}" for n in self.notes]
        return "\n".join(blocks)


def _num(value: float) -> float | int:
    """A whole-number level as an int (``4``, not ``4.0``) for frames and JSON."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _level_dict(lv: ScalingLevel) -> dict[str, Any]:
    return {c: getattr(lv, c) for c in LEVEL_COLUMNS}


def _param_text(p: ModelParam) -> str:
    if p.ci_low is None:
        return f"{p.name} = {fmt(p.estimate, 4)}"
    return f"{p.name} = {fmt(p.estimate, 4)} [{fmt(p.ci_low, 4)}, {fmt(p.ci_high, 4)}]"


# -- models -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Model:
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


_MODELS = {
    "amdahl": _Model(
        "amdahl", ("serial", "parallel"), _amdahl_basis, _amdahl_params, "levels of x", (1, 0)
    ),
    "usl": _Model(
        "usl", ("t1", "t1_sigma", "t1_kappa"), _usl_basis, _usl_params, "levels of x", (1, 1, 0)
    ),
    "ernest": _Model(
        "ernest",
        ("theta0", "theta1", "theta2", "theta3"),
        _ernest_basis,
        _ernest_params,
        "(x, size) points",
        (1, 0, 0, 0),
    ),
}


def _usl_peak(params: dict[str, float]) -> float | None:
    sigma, kappa = params["sigma"], params["kappa"]
    if not (kappa > 0 and sigma < 1):
        return None
    return math.sqrt((1 - sigma) / kappa)


def _unit_columns(design: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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

    a, scale = _unit_columns(design, w)
    sol = np.linalg.lstsq(a, (targets * w).T, rcond=None)[0]
    return (sol / scale[:, None]).T


@dataclass(frozen=True)
class _Solution:
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


def _nnls(
    design: np.ndarray, dev: np.ndarray, weights: np.ndarray, t0: float, constant: Sequence[float]
) -> _Solution:
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
    return _Solution(coef, lin, offset, rss)


# -- data ---------------------------------------------------------------------------------------
@dataclass
class _Cell:
    m: float
    size: float
    n: int
    shift: float  # the cell's smallest time (a data value)
    mean_dev: float  # mean of time - shift
    var: float  # sample variance, NaN when n == 1
    values: Any = None  # np.ndarray of time - shift per trial, fetched for the bootstrap

    @property
    def mean(self) -> float:
        return self.shift + self.mean_dev


@dataclass
class _Group:
    level: tuple[Any, ...]
    levels: list[tuple[float, int, float, float, float]] = field(default_factory=list)
    cells: list[_Cell] = field(default_factory=list)


def _load(
    db: Database,
    *,
    metric: str,
    x: str,
    by: tuple[str, ...],
    size: str | None,
    where: Sequence[str | Filter],
    include_warmup: bool,
    fetch_values: bool,
) -> tuple[Any, list[_Group], str | None]:
    with connect(db) as con:
        sel = select(
            con,
            metric=None,
            group=by,
            group_option="--by",
            where=where,
            include_warmup=include_warmup,
        )
        check_column(sel.columns, metric, "--metric", numeric=True)
        check_column(sel.columns, x, "--x", numeric=True)
        if size is None and "data_fraction" in sel.columns:
            size = "data_fraction"
        if size is not None:
            check_column(sel.columns, size, "--size", numeric=True)
        n = finite_check(con, sel, [(metric, "--metric"), (x, "--x")])
        if n == 0:
            raise no_trials_error(sel, f"{metric} and {x}")
        t, xm = f"CAST({quote(metric)} AS DOUBLE)", f"CAST({quote(x)} AS DOUBLE)"
        sz = f"coalesce(CAST({quote(size)} AS DOUBLE), 1.0)" if size else "1.0"
        gs = [f"g{i}" for i in range(len(by))]
        cols = [f"{quote(b)} AS {g}" for b, g in zip(by, gs, strict=True)]
        # the order of a cell's values for the bootstrap (resampled by index, so it must not
        # depend on DuckDB's threads): by trial id, else by value
        tid = ""
        if fetch_values:
            tid = f", {'trial_id' if 'trial_id' in sel.columns else t} AS tid"
        base = (
            f"SELECT {''.join(c + ', ' for c in cols)}{xm} AS m, {sz} AS sz, {t} AS t{tid} "
            f"FROM {VIEW}{sel.where_and(f'{quote(metric)} IS NOT NULL', f'{quote(x)} IS NOT NULL')}"
        )
        bad = execute(
            con,
            f"SELECT count(*) FILTER (WHERE m <= 0), count(*) FILTER (WHERE t < 0), "
            f"count(*) FILTER (WHERE NOT isfinite(sz) OR sz <= 0) FROM ({base})",
            sel.params,
        )[0]
        if bad[0]:
            raise AnalysisError(
                f"--x {x} is zero or negative in {bad[0]} selected trials; scaling needs a "
                f"positive count: exclude them with --where '{x}>0'"
            )
        if bad[1]:
            raise AnalysisError(
                f"--metric {metric} is negative in {bad[1]} selected trials; a time cannot be "
                f"negative: check the data or exclude them with --where '{metric}>=0'"
            )
        if bad[2]:
            raise AnalysisError(
                f"--size {size} is zero, negative or not finite in {bad[2]} selected trials; "
                f"exclude them with --where, or name another --size column"
            )
        keys = ", ".join([*gs, "m"])
        order = ", ".join(f"{k} NULLS LAST" for k in [*gs, "m"])
        shifted = (
            f"SELECT *, t - min(t) OVER (PARTITION BY {{p}}) AS d, "
            f"min(t) OVER (PARTITION BY {{p}}) AS s FROM ({base})"
        )
        level_rows = execute(
            con,
            f"SELECT {keys}, count(*), median(t), any_value(s) + avg(d), var_samp(d) "
            f"FROM ({shifted.format(p=keys)}) GROUP BY {keys} ORDER BY {order}",
            sel.params,
        )
        cell_keys = f"{keys}, sz"
        vals = (
            f", CASE WHEN count(*) <= {BOOT_EXACT_MAX} THEN list(d ORDER BY tid) END"
            if fetch_values
            else ""
        )
        cell_rows = execute(
            con,
            f"SELECT {cell_keys}, count(*), any_value(s), avg(d), var_samp(d){vals} "
            f"FROM ({shifted.format(p=cell_keys)}) GROUP BY {cell_keys} "
            f"ORDER BY {order}, sz",
            sel.params,
        )
    import numpy as np

    g = len(by)
    groups: dict[tuple[Any, ...], _Group] = {}
    for row in level_rows:
        key = tuple(row[:g])
        m, count, median, mean, var = row[g:]
        grp = groups.setdefault(key, _Group(level=key))
        grp.levels.append(
            (float(m), int(count), float(median), float(mean), math.nan if var is None else var)
        )
    for row in cell_rows:
        key = tuple(row[:g])
        m, sz, count, shift, mean_dev, var = row[g : g + 6]
        values = row[g + 6] if fetch_values else None
        groups[key].cells.append(
            _Cell(
                m=float(m),
                size=float(sz),
                n=int(count),
                shift=float(shift),
                mean_dev=float(mean_dev),
                var=math.nan if var is None else float(var),
                values=None if values is None else np.asarray(values, dtype=float),
            )
        )
    return sel, list(groups.values()), size


# -- analysis -----------------------------------------------------------------------------------
def _levels_table(
    grp: _Group, *, by: Sequence[str], x: str, metric: str
) -> tuple[ScalingLevel, ...]:
    where = _group_text(by, grp.level)
    if len(grp.levels) < 2:
        only = format_level(grp.levels[0][0])
        raise AnalysisError(
            f"--x {x} has only one level ({only}) in {where}; scaling needs at least two: "
            "loosen --where, or pick a factor that varies"
        )
    m0, _, t0, _, _ = grp.levels[0]
    if any(median <= 0 for _, _, median, _, _ in grp.levels):
        raise AnalysisError(
            f"the median {metric} is zero in {where}, so speed-ups are undefined; check the "
            "data or pick another --metric"
        )
    out = []
    prev = None
    for m, n, median, mean, var in grp.levels:
        speedup = t0 / median
        p = m / m0
        out.append(
            ScalingLevel(
                x=m,
                n=n,
                median=median,
                mean=mean,
                sd=math.sqrt(var) if not math.isnan(var) else math.nan,
                speedup=speedup,
                efficiency=speedup / p,
                change_pct=None if prev is None else 100.0 * (median - prev) / prev,
                karp_flatt=None if m == m0 else (1 / speedup - 1 / p) / (1 - 1 / p),
            )
        )
        prev = median
    return tuple(out)


def _group_text(by: Sequence[str], level: Sequence[Any]) -> str:
    return level_label(by, level) or "the selected trials"


def _fit_group(
    grp: _Group,
    *,
    by: Sequence[str],
    x: str,
    metric: str,
    predict: Sequence[float],
    min_gain: float,
    n_boot: int,
    seed: int,
    confidence_level: float,
) -> ScalingGroup:
    import numpy as np

    levels = _levels_table(grp, by=by, x=x, metric=metric)
    cells = grp.cells
    m = np.array([c.m for c in cells])
    size = np.array([c.size for c in cells])
    # cell means as deviations from the group's smallest time t0 (a data value)
    t0 = min(c.shift for c in cells)
    dev = np.array([(c.shift - t0) + c.mean_dev for c in cells])
    n = np.array([c.n for c in cells], dtype=float)
    ss_within = math.fsum((c.n - 1) * c.var for c in cells if c.n > 1)
    n_trials = int(n.sum())
    grand = float(np.average(dev, weights=n))
    tss = ss_within + float(np.sum(n * (dev - grand) ** 2))
    if tss <= 0:
        raise AnalysisError(
            f"{metric} is the same in every trial of {_group_text(by, grp.level)}, so there is "
            "no scaling to fit; check the data or pick another --metric"
        )
    models, designs, skipped = [], [], []
    distinct_m = len(set(m.tolist()))
    distinct_points = len({(a, b) for a, b in zip(m.tolist(), size.tolist(), strict=True)})
    for model in _MODELS.values():
        k = len(model.coef_names)
        points = distinct_points if model.name == "ernest" else distinct_m
        if points <= k:
            skipped.append(f"{model.name} needs more than {k} {model.needs} (has {points})")
            continue
        design = model.basis(m, size)
        if np.linalg.matrix_rank(_unit_columns(design, np.sqrt(n))[0]) < k:
            skipped.append(f"{model.name}: its terms are collinear on these {model.needs}")
            continue
        models.append(model)
        designs.append(design)
    sols = [
        _nnls(design, dev[None, :], n, t0, model.constant)
        for model, design in zip(models, designs, strict=True)
    ]
    coefs = [sol.coef[0] for sol in sols]

    # bootstrap: resampled cell means (as deviations from t0) -> refits
    boot: list[_Solution] = []
    if n_boot > 0 and models:
        rng = np.random.default_rng(seed)
        boot_dev = np.empty((n_boot, len(cells)))
        for j, c in enumerate(cells):
            if c.values is not None:
                idx = rng.integers(0, c.n, size=(n_boot, c.n))
                boot_dev[:, j] = (c.shift - t0) + c.values[idx].mean(axis=1)
            else:
                sd = 0.0 if math.isnan(c.var) else math.sqrt(c.var)
                boot_dev[:, j] = rng.normal(dev[j], sd / math.sqrt(c.n), n_boot)
        boot = [
            _nnls(design, boot_dev, n, t0, model.constant)
            for model, design in zip(models, designs, strict=True)
        ]

    def interval(samples: np.ndarray) -> tuple[float | None, float | None]:
        if not n_boot:
            return None, None
        finite = samples[np.isfinite(samples)]
        if finite.size == 0:
            return None, None
        return percentile_interval(finite, confidence_level)

    fits = []
    for i, (model, sol, coef) in enumerate(zip(models, sols, coefs, strict=True)):
        rss = ss_within + float(sol.rss[0])
        k = len(model.coef_names)
        aic = (
            -math.inf
            if rss <= 0
            else n_trials * (math.log(2 * math.pi * rss / n_trials) + 1) + 2 * k
        )
        est = model.params(coef)
        boot_params = [model.params(b) for b in boot[i].coef] if boot else []
        params = tuple(
            ModelParam(name, value, *interval(np.array([bp[name] for bp in boot_params])))
            for name, value in est.items()
        )
        fits.append(
            ModelFit(
                model=model.name,
                params=params,
                r_squared=1.0 - rss / tss,
                aic=aic,
                rss=rss,
                n_points=len(cells),
                n_trials=n_trials,
                peak_x=_usl_peak(est) if model.name == "usl" else None,
            )
        )
    best = min(fits, key=lambda f: f.aic).model if fits else None

    # predictions at the group's largest size
    big = float(size.max())
    measured = {lv.x for lv in levels}
    predictions = []
    if predict:
        px = np.array(sorted(set(predict)), dtype=float)
        psize = np.full_like(px, big)
        for i, (model, sol) in enumerate(zip(models, sols, strict=True)):
            basis = model.basis(px, psize)
            point = sol.predict(basis)[0]
            samples = boot[i].predict(basis) if boot else None
            for j, xv in enumerate(px):
                low, high = interval(samples[:, j]) if samples is not None else (None, None)
                predictions.append(
                    Prediction(model.name, float(xv), float(point[j]), low, high, xv in measured)
                )

    # knees: measured medians, then the best model's predictions beyond them
    best_curve: Callable[[np.ndarray], np.ndarray] | None = None
    if best is not None:
        best_model, best_sol = next(
            (mo, so) for mo, so in zip(models, sols, strict=True) if mo.name == best
        )

        def best_curve(xs: np.ndarray) -> np.ndarray:
            return best_sol.predict(best_model.basis(xs, np.full_like(xs, big)))[0]

    seq = [(lv.x, lv.median) for lv in levels]
    beyond = [p for p in sorted(set(predict)) if p > seq[-1][0]]
    if best_curve is not None and beyond:
        seq += list(zip(beyond, best_curve(np.array(beyond)).tolist(), strict=True))
    knee = next(
        (xa for (xa, ta), (_, tb) in zip(seq, seq[1:], strict=False) if (ta - tb) / ta < min_gain),
        None,
    )
    knee_model = None
    if best_curve is not None:
        ms = np.arange(max(1, math.ceil(levels[0].x)), KNEE_SEARCH_MAX + 2, dtype=float)
        times = best_curve(ms)
        hit = np.nonzero((times[:-1] - times[1:]) / times[:-1] < min_gain)[0]
        if hit.size:
            knee_model = float(ms[hit[0]])
    return ScalingGroup(
        level=grp.level,
        levels=levels,
        fits=tuple(fits),
        skipped=tuple(skipped),
        predictions=tuple(predictions),
        best_model=best,
        knee=knee,
        knee_model=knee_model,
    )


def scaling(
    db: Database,
    *,
    x: str = "workers",
    metric: str = "train_s",
    by: Sequence[str] | str = DEFAULT_SCALING_BY,
    size: str | None = None,
    predict: Sequence[float] = (),
    min_gain: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    confidence_level: float = 0.95,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    skip_single_level: bool = False,
) -> ScalingResult:
    """Scaling of ``metric`` (a time) over ``x`` per level of ``by``: the per-level table, the
    Amdahl / USL / Ernest fits, ``predict``ions with bootstrap intervals (``n_boot`` resamples
    with ``seed``; 0 for point estimates only) and the points past which a step buys less than
    ``min_gain`` (a fraction: 0.05 for 5%). ``skip_single_level``: a ``by`` group measured at
    one level of ``x`` is left out with a note (otherwise it is an error)."""
    by = check_distinct(by, "--by")
    if x in by:
        raise AnalysisError(f"--x {x} is also a --by column; drop it from --by")
    if not 0 < min_gain < 1:
        raise AnalysisError(f"--min-gain {min_gain:g} must be between 0 and 1 (e.g. 5%)")
    if n_boot < 0:
        raise AnalysisError(f"--bootstrap {n_boot} must be 0 (no intervals) or more")
    if 0 < n_boot < 100:
        raise AnalysisError(
            f"--bootstrap {n_boot} is too few resamples for percentile intervals; use 1000 "
            "(the default), or 0 for point estimates only"
        )
    if not 0 < confidence_level < 1:
        raise AnalysisError(f"confidence level {confidence_level} must be between 0 and 1")
    if seed < 0:
        raise AnalysisError(f"--seed {seed} must be a whole number >= 0, e.g. --seed 0")
    predict = tuple(float(p) for p in predict)
    bad = [p for p in predict if not (math.isfinite(p) and p > 0)]
    if bad:
        raise AnalysisError(f"--predict {fmt(bad[0])} is not a positive number of workers")
    sel, groups, size = _load(
        db,
        metric=metric,
        x=x,
        by=by,
        size=size,
        where=where,
        include_warmup=include_warmup,
        fetch_values=n_boot > 0,
    )
    notes = []
    if skip_single_level and len(groups) > 1:
        single = [g for g in groups if len(g.levels) < 2]
        groups = [g for g in groups if len(g.levels) >= 2]
        notes += [
            f"left out {_group_text(by, g.level)}: only {x}={format_level(g.levels[0][0])} measured"
            for g in single
        ]
        if not groups:
            raise AnalysisError(
                f"--x {x} has only one level in every group of {', '.join(by) or 'the trials'}; "
                "scaling needs at least two: loosen --where, or pick a factor that varies"
            )
    if n_boot > 0:
        for grp in groups:
            single = [c for c in grp.cells if c.n < 2]
            if single:
                c = single[0]
                raise AnalysisError(
                    f"{x}={format_level(c.m)} in {_group_text(by, grp.level)} has 1 trial, so "
                    "resampling it says nothing about its spread; run more trials, or give "
                    "--bootstrap 0 for point estimates without intervals"
                )
    from threadpoolctl import threadpool_limits

    # The fits are thousands of tiny SVDs: one BLAS thread each. OpenBLAS's threads only spin
    # on them, and on a busy machine that made scaling 2-3x slower (bench/analysis.md).
    with threadpool_limits(limits=1, user_api="blas"):
        out = [
            _fit_group(
                grp,
                by=by,
                x=x,
                metric=metric,
                predict=predict,
                min_gain=min_gain,
                n_boot=n_boot,
                seed=seed,
                confidence_level=confidence_level,
            )
            for grp in groups
        ]
    return ScalingResult(
        metric=metric,
        x=x,
        by=by,
        size=size,
        min_gain=min_gain,
        n_boot=n_boot,
        seed=seed,
        confidence_level=confidence_level,
        groups=tuple(out),
        where=sel.where_text,
        notes=tuple(notes),
    )
