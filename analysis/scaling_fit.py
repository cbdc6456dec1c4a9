"""The statistics of one scaling group: the per-level table, the fits, their bootstrap, the
predictions and the knees (see :mod:`analysis.scaling` for the method). Cells come in units of a
power of two (:mod:`analysis.scaling_data`); every time-valued result is multiplied back."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from analysis.data import format_level, level_label
from analysis.errors import AnalysisError
from analysis.scaling_data import Group
from analysis.scaling_models import MODELS, Solution, nnls, unit_columns, usl_peak
from analysis.scaling_results import ModelFit, ModelParam, Prediction, ScalingGroup, ScalingLevel

if TYPE_CHECKING:
    import numpy as np

#: How far the one-more-worker search of ``knee_model`` looks.
KNEE_SEARCH_MAX = 100_000


def group_text(by: Sequence[str], level: Sequence[Any]) -> str:
    return level_label(by, level) or "the selected trials"


def _levels_table(
    grp: Group, *, by: Sequence[str], x: str, metric: str, scale: float
) -> tuple[ScalingLevel, ...]:
    where = group_text(by, grp.level)
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
                median=median * scale,
                mean=mean * scale,
                sd=math.sqrt(var) * scale if not math.isnan(var) else math.nan,
                speedup=speedup,
                efficiency=speedup / p,
                change_pct=None if prev is None else 100.0 * (median - prev) / prev,
                karp_flatt=None if m == m0 else (1 / speedup - 1 / p) / (1 - 1 / p),
            )
        )
        prev = median
    return tuple(out)


def _bootstrap_means(grp: Group, t0: float, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` x cells resampled cell means, as deviations from ``t0``."""
    import numpy as np

    from analysis.ratio import BOOT_CHUNK

    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, len(grp.cells)))
    for j, c in enumerate(grp.cells):
        if c.values is not None:
            # in chunks of about BOOT_CHUNK drawn indices, so memory stays bounded whatever
            # n_boot x n is (numpy draws them in sequence: the same as in one piece)
            rows = max(1, BOOT_CHUNK // max(c.n, 1))
            for start in range(0, n_boot, rows):
                stop = min(start + rows, n_boot)
                idx = rng.integers(0, c.n, size=(stop - start, c.n))
                out[start:stop, j] = (c.shift - t0) + c.values[idx].mean(axis=1)
        else:
            sd = 0.0 if math.isnan(c.var) else math.sqrt(c.var)
            out[:, j] = rng.normal((c.shift - t0) + c.mean_dev, sd / math.sqrt(c.n), n_boot)
    return out


def fit_group(
    grp: Group,
    *,
    by: Sequence[str],
    x: str,
    metric: str,
    predict: Sequence[float],
    min_gain: float,
    n_boot: int,
    seed: int,
    confidence_level: float,
    scale: float,
    no_intervals: str = "",
) -> ScalingGroup:
    """Everything for one group; the cells are in units of ``scale`` (a power of two), and
    every time-valued result is multiplied back by it."""
    import numpy as np

    from analysis.bootstrap import percentile_interval

    levels = _levels_table(grp, by=by, x=x, metric=metric, scale=scale)
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
            f"{metric} is the same in every trial of {group_text(by, grp.level)}, so there is "
            "no scaling to fit; check the data or pick another --metric"
        )
    models, designs, skipped = [], [], []
    distinct_m = len(set(m.tolist()))
    distinct_points = len({(a, b) for a, b in zip(m.tolist(), size.tolist(), strict=True)})
    for model in MODELS.values():
        k = len(model.coef_names)
        points = distinct_points if model.name == "ernest" else distinct_m
        if points <= k:
            skipped.append(f"{model.name} needs more than {k} {model.needs} (has {points})")
            continue
        design = model.basis(m, size)
        if np.linalg.matrix_rank(unit_columns(design, np.sqrt(n))[0]) < k:
            skipped.append(f"{model.name}: its terms are collinear on these {model.needs}")
            continue
        models.append(model)
        designs.append(design)
    pairs = list(zip(models, designs, strict=True))
    sols = [nnls(design, dev[None, :], n, t0, model.constant) for model, design in pairs]
    boot: list[Solution] = []
    if n_boot > 0 and models:
        boot_dev = _bootstrap_means(grp, t0, n_boot, seed)
        boot = [nnls(design, boot_dev, n, t0, model.constant) for model, design in pairs]

    def interval(samples: np.ndarray) -> tuple[float | None, float | None]:
        finite = samples[np.isfinite(samples)]
        if not n_boot or finite.size == 0:
            return None, None
        return percentile_interval(finite, confidence_level)

    fits = []
    for i, (model, sol) in enumerate(zip(models, sols, strict=True)):
        rss = ss_within + float(sol.rss[0])  # in scaled units
        k = len(model.coef_names)
        log_l = math.log(2 * math.pi * rss / n_trials) + 2 * math.log(scale) if rss > 0 else 0
        aic = -math.inf if rss <= 0 else n_trials * (log_l + 1) + 2 * k
        est = model.params(sol.coef[0] * scale)
        boot_params = [model.params(b * scale) for b in boot[i].coef] if boot else []
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
                rss=rss * scale * scale,
                n_points=len(cells),
                n_trials=n_trials,
                peak_x=usl_peak(est) if model.name == "usl" else None,
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
            point = sol.predict(basis)[0] * scale
            samples = boot[i].predict(basis) * scale if boot else None
            for j, xv in enumerate(px):
                low, high = interval(samples[:, j]) if samples is not None else (None, None)
                predictions.append(
                    Prediction(model.name, float(xv), float(point[j]), low, high, xv in measured)
                )

    # knees: measured medians, then the best model's predictions beyond them
    best_curve: Callable[[np.ndarray], np.ndarray] | None = None
    if best is not None:
        best_model, best_sol = next((mo, so) for mo, so in zip(models, sols, strict=True)
                                    if mo.name == best)  # fmt: skip

        def best_curve(xs: np.ndarray) -> np.ndarray:
            return best_sol.predict(best_model.basis(xs, np.full_like(xs, big)))[0] * scale

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
    return ScalingGroup(grp.level, levels, tuple(fits), tuple(skipped), tuple(predictions), best,
                        knee, knee_model, no_intervals)  # fmt: skip
