"""How a time scales with the number of workers (or any positive numeric factor): per-level
medians, speed-up, efficiency, percent change and Karp-Flatt serial fraction, and fits of Amdahl's
law, the Universal Scalability Law and Ernest's model with bootstrap intervals.

The statistics live here and in :mod:`analysis.scaling_models` (the models, exact NNLS) and
:mod:`analysis.scaling_data` (what DuckDB computes); text, frames, tables and LaTeX in
:mod:`analysis.scaling_text`.

- The models are fitted by least squares on **every trial** (not on the medians): the sum of
  squares over trials is the within-cell sum of squares (fixed) plus ``n * (cell mean -
  model)^2``, so the fit is non-negative least squares on the cell means weighted by their
  counts, and R^2 and AIC are over all trials.
- Bootstrap (``n_boot`` resamples, seeded): trials are resampled with replacement within each
  cell and the models refitted. A cell of at most ``BOOT_EXACT_MAX`` trials is resampled from
  its values; a larger cell's resampled mean is drawn from its normal approximation
  ``N(mean, sd^2 / n)``, so a huge database is never loaded. A group with a cell of one trial
  (a published table: one run per configuration) gets point estimates without intervals, said.
- Precision: the fits work on the deviations of the cell means from the group's smallest time
  ``t0``. Every model can make a constant (Amdahl's and Ernest's first column; the USL's first
  two add up to 1), so a solution whose support holds those columns is the least-squares fit of
  the deviations with ``t0`` added back to the constant: times such as ``1e12 + tiny noise``
  keep their digits. Times beyond 2^400 in magnitude (or below 2^-400) are divided by a power of
  two first (exact) and every time-valued result multiplied back, so 1e300 and 1e-300 give
  finite, correct fits; only ``rss`` (a squared time) may overflow to inf.

A model is fitted only when there are more distinct design points than parameters (otherwise it
would interpolate and R^2/AIC mean nothing); the others are listed in ``skipped`` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from analysis.data import Database, Filter, check_distinct, fmt, format_level
from analysis.errors import AnalysisError
from analysis.options import (
    CONFIDENCE,
    DEFAULT_SEED,
    N_BOOT,
    check_bootstrap,
    check_confidence,
    check_fraction,
    check_seed,
)
from analysis.scaling_data import BOOT_EXACT_MAX, Group, load
from analysis.scaling_fit import KNEE_SEARCH_MAX, fit_group, group_text
from analysis.scaling_results import (
    DEFAULT_SCALING_BY,
    LEVEL_COLUMNS,
    ModelFit,
    ModelParam,
    Prediction,
    ScalingGroup,
    ScalingLevel,
    ScalingResult,
)

#: The most bootstrap resamples a scaling analysis takes: every model is refitted to each one in
#: Python (100,000 took 3.4 s and 85 MB more than the default; the general bound of
#: :mod:`analysis.options`, 10,000,000, would take minutes and gigabytes).
SCALING_MAX_BOOT = 200_000

__all__ = [
    "BOOT_EXACT_MAX",
    "DEFAULT_SCALING_BY",
    "KNEE_SEARCH_MAX",
    "LEVEL_COLUMNS",
    "ModelFit",
    "ModelParam",
    "Prediction",
    "ScalingGroup",
    "ScalingLevel",
    "ScalingResult",
    "scaling",
]


def _single_trial_cells(grp: Group, x: str) -> str:
    """Why ``grp`` gets no bootstrap: the levels of ``x`` measured by one trial (or "")."""
    single = sorted({c.m for c in grp.cells if c.n < 2})
    if not single:
        return ""
    where = ", ".join(format_level(v) for v in single)
    return (
        f"{x}={where} measured by 1 trial, and resampling one trial says nothing about its "
        "spread: point estimates without intervals (run more trials for intervals)"
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
    n_boot: int = N_BOOT,
    seed: int = DEFAULT_SEED,
    confidence_level: float = CONFIDENCE,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    skip_single_level: bool = False,
) -> ScalingResult:
    """Scaling of ``metric`` (a time) over ``x`` per level of ``by``: the per-level table, the
    Amdahl / USL / Ernest fits, ``predict``ions with bootstrap intervals (``n_boot`` resamples
    with ``seed``; 0 for point estimates only) and the points past which a step buys less than
    ``min_gain`` (a fraction: 0.05 for 5%). ``skip_single_level``: a ``by`` group measured at
    one level of ``x`` is left out with a note (otherwise it is an error). A group with a level
    measured by a single trial gets point estimates without intervals, said in its text."""
    by = check_distinct(by, "--by")
    if x in by:
        raise AnalysisError(f"--x {x} is also a --by column; drop it from --by")
    min_gain = check_fraction(min_gain, "--min-gain")
    n_boot = check_bootstrap(n_boot)
    if n_boot > SCALING_MAX_BOOT:
        raise AnalysisError(
            f"--bootstrap {n_boot:,}: scaling refits every model to each resample, so at most "
            f"{SCALING_MAX_BOOT:,} resamples (about 15 s); use {N_BOOT} (the default), or 0 "
            "for no intervals"
        )
    seed = check_seed(seed)
    confidence_level = check_confidence(confidence_level)
    predict = tuple(float(p) for p in predict)
    bad = [p for p in predict if not (math.isfinite(p) and p > 0)]
    if bad:
        raise AnalysisError(f"--predict {fmt(bad[0])} is not a positive number of workers")
    data = load(db, metric=metric, x=x, by=by, size=size, where=where,
                include_warmup=include_warmup, fetch_values=n_boot > 0)  # fmt: skip
    groups = data.groups
    notes = []
    if skip_single_level and len(groups) > 1:
        single = [g for g in groups if len(g.levels) < 2]
        groups = [g for g in groups if len(g.levels) >= 2]
        notes += [
            f"left out {group_text(by, g.level)}: only {x}={format_level(g.levels[0][0])} measured"
            for g in single
        ]
        if not groups:
            raise AnalysisError(
                f"--x {x} has only one level in every group of {', '.join(by) or 'the trials'}; "
                "scaling needs at least two: loosen --where, or pick a factor that varies"
            )
    why = {id(g): _single_trial_cells(g, x) if n_boot else "" for g in groups}
    point_only = sum(bool(w) for w in why.values())
    if point_only:
        notes.append(
            f"{point_only} of {len(groups)} groups without intervals: a level measured by one "
            "trial (as a published table) gives point estimates only"
        )
    from threadpoolctl import threadpool_limits

    # The fits are thousands of tiny SVDs: one BLAS thread each. OpenBLAS's threads only spin
    # on them, and on a busy machine that made scaling 2-3x slower (bench/analysis.md).
    with threadpool_limits(limits=1, user_api="blas"):
        out = [
            fit_group(
                grp,
                by=by,
                x=x,
                metric=metric,
                predict=predict,
                min_gain=min_gain,
                n_boot=0 if why[id(grp)] else n_boot,
                seed=seed,
                confidence_level=confidence_level,
                scale=data.scale,
                no_intervals=why[id(grp)],
            )  # fmt: skip
            for grp in groups
        ]
    return ScalingResult(
        metric=metric,
        x=x,
        by=by,
        size=data.size,
        min_gain=min_gain,
        n_boot=n_boot,
        seed=seed,
        confidence_level=confidence_level,
        groups=tuple(out),
        where=data.sel.where_text,
        notes=tuple(notes),
    )
