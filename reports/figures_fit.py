"""Fits drawn over their data: a regression scatter with its bands, a scaling law over measured
medians."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reports.figures_base import (
    FigureDataError,
    RenderedFigure,
    _plain_label,
    close,
    color,
    finite,
    grid,
    legend_below,
    marker,
    new_figure,
    opt_finite,
    plain_log_ticks,
    render,
    style,
    title,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _pct(level: float) -> str:
    return f"{100 * level:g}%"


# ---------------------------------------------------------------- regression scatter


@dataclass(frozen=True)
class BandPoint:
    """The fitted line at ``x`` with its confidence band (of the mean) and prediction band (of
    one new trial); either band may be missing (None)."""

    x: float
    fit: float
    conf_low: float | None = None
    conf_high: float | None = None
    pred_low: float | None = None
    pred_high: float | None = None


@dataclass(frozen=True)
class LineFit:
    """A straight-line fit ``y = intercept + slope x`` with its R² and, optionally, its bands
    sampled along x (from :func:`linear_fit`, or from ``analysis.regress`` by the caller)."""

    intercept: float
    slope: float
    r_squared: float
    band: Sequence[BandPoint] = ()
    confidence_level: float = 0.95


def linear_fit(
    points: Sequence[tuple[float, float]], *, confidence_level: float = 0.95, steps: int = 60
) -> LineFit:
    """OLS of y on x over the finite points, with the t-based confidence band of the mean and
    prediction band of a new observation at ``steps`` x values across the data (bands need at
    least 3 points). Same numbers as ``analysis.regress`` / statsmodels' ``get_prediction`` on
    these points. :class:`FigureDataError` when x does not vary or fewer than 2 points."""
    from analysis.intervals import t_quantile

    pts = [(float(x), float(y)) for x, y in points if finite(x, y)]
    n = len(pts)
    if n < 2:
        raise FigureDataError(f"a line needs 2 finite points (has {n})")
    xbar = math.fsum(x for x, _ in pts) / n
    ybar = math.fsum(y for _, y in pts) / n
    sxx = math.fsum((x - xbar) ** 2 for x, _ in pts)
    if sxx <= 0:
        raise FigureDataError("x does not vary: no line to fit")
    slope = math.fsum((x - xbar) * (y - ybar) for x, y in pts) / sxx
    intercept = ybar - slope * xbar
    rss = math.fsum((y - intercept - slope * x) ** 2 for x, y in pts)
    tss = math.fsum((y - ybar) ** 2 for _, y in pts)
    r2 = 1.0 - rss / tss if tss > 0 else math.nan
    lo, hi = min(x for x, _ in pts), max(x for x, _ in pts)
    xs = [lo + (hi - lo) * i / (steps - 1) for i in range(steps)]
    if n < 3:
        band = [BandPoint(x, intercept + slope * x) for x in xs]
    else:
        s2 = rss / (n - 2)
        q = t_quantile(confidence_level, n - 2)
        band = []
        for x in xs:
            fit = intercept + slope * x
            se_mean = math.sqrt(s2 * (1 / n + (x - xbar) ** 2 / sxx))
            se_new = math.sqrt(s2 + se_mean**2)
            band.append(
                BandPoint(
                    x, fit, fit - q * se_mean, fit + q * se_mean, fit - q * se_new, fit + q * se_new
                )
            )
    return LineFit(intercept, slope, r2, tuple(band), confidence_level)


def _fill(ax: Axes, band: Sequence[BandPoint], low: str, high: str, **kw: Any) -> Any:
    rows = [
        (b.x, getattr(b, low), getattr(b, high))
        for b in band
        if finite(b.x, getattr(b, low), getattr(b, high))
    ]
    if not rows:
        return None
    return ax.fill_between(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], linewidth=0, **kw
    )


def _build_scatter_fit(
    points: Sequence[tuple[float, float]],
    fit: LineFit | None = None,
    *,
    x_label: str,
    y_label: str,
    title_text: str | None = None,
) -> tuple[Figure, int]:
    pts = [(float(x), float(y)) for x, y in points if finite(x, y)]
    dropped = len(points) - len(pts)
    if not pts:
        raise FigureDataError("no finite point to draw")
    if fit is None:
        fit = linear_fit(pts)
    legend: dict[str, Any] = {}
    with style():
        fig, (ax,) = new_figure(1, height=3.9)
        cl = _pct(fit.confidence_level)
        pred = _fill(ax, fit.band, "pred_low", "pred_high", color=color(0), alpha=0.12)
        conf = _fill(ax, fit.band, "conf_low", "conf_high", color=color(0), alpha=0.28)
        xs = [b.x for b in fit.band if finite(b.x)] or sorted({x for x, _ in pts})
        lo, hi = min(xs + [x for x, _ in pts]), max(xs + [x for x, _ in pts])
        (line,) = ax.plot(
            [lo, hi],
            [fit.intercept + fit.slope * lo, fit.intercept + fit.slope * hi],
            color=color(0),
            gid="fit",
        )
        (dots,) = ax.plot(
            [x for x, _ in pts],
            [y for _, y in pts],
            linestyle="none",
            marker="o",
            markerfacecolor="white",
            markeredgecolor=color(1),
            markeredgewidth=1.2,
            gid="points",
        )
        r2 = f"{fit.r_squared:.3f}" if finite(fit.r_squared) else "undefined"
        legend[f"trials (n = {len(pts)})"] = dots
        legend[f"least-squares line, R² = {r2}"] = line
        if conf is not None:
            legend[f"{cl} confidence band (mean)"] = conf
        if pred is not None:
            legend[f"{cl} prediction band (one trial)"] = pred
        ax.set_xlabel(_plain_label(x_label, wrap=False))
        ax.set_ylabel(_plain_label(y_label, wrap=24))
        grid(ax)
        title(ax, title_text)
        legend_below(fig, list(legend.values()), list(legend.keys()), dropped=dropped)
    return fig, dropped


def scatter_fit(
    points: Sequence[tuple[float, float]],
    fit: LineFit | None = None,
    *,
    x_label: str,
    y_label: str,
    title: str | None = None,
) -> RenderedFigure:
    """Trials as points ``(x, y)`` with the fitted line, its confidence band (of the mean) and
    prediction band (of one trial), R² in the legend — e.g. train time against vCPU or memory.
    ``fit`` defaults to :func:`linear_fit` of the points. Non-finite points are dropped and
    counted; :class:`FigureDataError` when none is left."""
    fig, dropped = _build_scatter_fit(
        points, fit, x_label=x_label, y_label=y_label, title_text=title
    )
    return render(fig, dropped=dropped)


# ---------------------------------------------------------------- scaling law


@dataclass(frozen=True)
class FitPoint:
    """A value at x with an optional interval: a measured median and its CI, or a model's
    prediction and its band."""

    x: float
    y: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class ScalingSeries:
    """One scaling group: ``measured`` medians per x (with CIs), the fitted law's ``curve`` on a
    dense x grid (with its band: bootstrap percentile interval of ``analysis.scaling``'s
    predictions), and ``predicted`` points to mark (extrapolations, e.g. 8 and 16 workers).
    ``model`` names the law in the legend (e.g. "Amdahl, R² = 0.97")."""

    label: str
    measured: Sequence[FitPoint]
    curve: Sequence[FitPoint] = ()
    predicted: Sequence[FitPoint] = ()
    model: str = ""

    @classmethod
    def from_group(
        cls,
        group: Any,
        label: str,
        *,
        measured_ci: Sequence[tuple[float | None, float | None]] | None = None,
        marks: Sequence[float] = (),
    ) -> ScalingSeries:
        """From an ``analysis.scaling`` ``ScalingGroup`` computed with ``predict=`` a dense grid
        (plus ``marks``): medians of its levels (with ``measured_ci``, one (low, high) per level,
        if given), the best model's predictions as the curve, those at ``marks`` that were not
        measured as predicted points."""
        cis = list(measured_ci) if measured_ci is not None else [(None, None)] * len(group.levels)
        measured = [
            FitPoint(lv.x, lv.median, lo, hi)
            for lv, (lo, hi) in zip(group.levels, cis, strict=True)
        ]
        best = group.best_model
        preds = sorted((p for p in group.predictions if p.model == best), key=lambda p: p.x)
        curve = [FitPoint(p.x, p.time, p.ci_low, p.ci_high) for p in preds]
        wanted = set(marks)
        predicted = [
            c for c, p in zip(curve, preds, strict=True) if p.x in wanted and not p.measured
        ]
        fit = next((f for f in group.fits if f.model == best), None)
        model = "" if fit is None else f"{best}, R² = {fit.r_squared:.3f}"
        return cls(label, measured, curve, predicted, model)


def _points(ps: Sequence[FitPoint]) -> tuple[list[FitPoint], int]:
    ok = sorted((p for p in ps if finite(p.x, p.y)), key=lambda p: p.x)
    bad_ci = sum(
        (p.low is not None and not finite(p.low)) + (p.high is not None and not finite(p.high))
        for p in ok
    )
    return ok, len(ps) - len(ok) + bad_ci


def _yerr(ps: Sequence[FitPoint]) -> list[list[float]] | None:
    lows = [p.y - lo if (lo := opt_finite(p.low)) is not None else 0.0 for p in ps]
    highs = [hi - p.y if (hi := opt_finite(p.high)) is not None else 0.0 for p in ps]
    if not any(lows) and not any(highs):
        return None
    return [[max(v, 0.0) for v in lows], [max(v, 0.0) for v in highs]]


def _build_scaling_plot(
    groups: Sequence[ScalingSeries],
    *,
    x_label: str = "workers",
    y_label: str = "train_s (s)",
    band_label: str = "95% band of the fitted law",
    title_text: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
) -> tuple[Figure, int]:
    dropped, drawn = 0, 0
    legend: dict[str, Any] = {}
    all_x: list[float] = []
    with style():
        fig, (ax,) = new_figure(1, height=4.2)
        for i, g in enumerate(groups):
            c, name = color(i), _plain_label(g.label, wrap=False)
            measured, lost = _points(g.measured)
            curve, lost_c = _points(g.curve)
            predicted, lost_p = _points(g.predicted)
            dropped += lost + lost_c + lost_p
            if not (measured or curve or predicted):
                continue
            drawn += 1
            if curve:
                band = [p for p in curve if finite(p.low, p.high)]
                if band:
                    fill = ax.fill_between(
                        [p.x for p in band],
                        [p.low for p in band],  # type: ignore[misc]
                        [p.high for p in band],  # type: ignore[misc]
                        color=c,
                        alpha=0.15,
                        linewidth=0,
                    )
                    legend.setdefault(band_label, fill)
                last = max((p.x for p in measured), default=math.inf)
                inside = [p for p in curve if p.x <= last]
                beyond = [p for p in curve if p.x >= last]
                law = f"{name}: {_plain_label(g.model or 'fitted law', wrap=False)}"
                for part, ls, tag in ((inside, "-", "law"), (beyond, "--", "extrapolated")):
                    if len(part) >= 2:
                        (ln,) = ax.plot(
                            [p.x for p in part],
                            [p.y for p in part],
                            color=c,
                            linestyle=ls,
                            gid=f"{tag}_{i}",
                        )
                        legend.setdefault(law, ln)
                all_x += [p.x for p in curve]
            if measured:
                bars = ax.errorbar(
                    [p.x for p in measured],
                    [p.y for p in measured],
                    yerr=_yerr(measured),
                    color=c,
                    marker=marker(i),
                    linestyle="none",
                    capsize=3,
                )
                bars.lines[0].set_gid(f"measured_{i}")
                legend[f"{name}: measured median"] = bars
                all_x += [p.x for p in measured]
            if predicted:
                bars = ax.errorbar(
                    [p.x for p in predicted],
                    [p.y for p in predicted],
                    yerr=_yerr(predicted),
                    color=c,
                    marker=marker(i),
                    markerfacecolor="white",
                    linestyle="none",
                    capsize=3,
                )
                bars.lines[0].set_gid(f"predicted_{i}")
                legend[f"{name}: predicted"] = bars
                all_x += [p.x for p in predicted]
        if not drawn:
            close(fig)
            raise FigureDataError("no finite measured or predicted point to draw")
        if log_x:
            ax.set_xscale("log", base=2)
        if log_y:
            ax.set_yscale("log")
            plain_log_ticks(ax.yaxis)
        ticks = sorted({p.x for g in groups for p in (*g.measured, *g.predicted) if finite(p.x)})
        if 0 < len(ticks) <= 12:
            from matplotlib.ticker import FuncFormatter, NullLocator

            ax.set_xticks(ticks)
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel(_plain_label(x_label, wrap=False))
        ax.set_ylabel(_plain_label(y_label, wrap=24))
        grid(ax)
        title(ax, title_text)
        legend_below(fig, list(legend.values()), list(legend.keys()), dropped=dropped)
    return fig, dropped


def scaling_plot(
    groups: Sequence[ScalingSeries],
    *,
    x_label: str = "workers",
    y_label: str = "train_s (s)",
    band_label: str = "95% band of the fitted law",
    title: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
) -> RenderedFigure:
    """Per :class:`ScalingSeries`, its measured medians with CIs (filled markers), the fitted
    law as a line (dashed beyond the largest measured x) with its band, and predicted points
    (open markers, with intervals). x is ticked at the measured and predicted values (up to 12);
    ``log_x`` uses base 2. Non-finite points are dropped and counted;
    :class:`FigureDataError` when no group has a point left."""
    fig, dropped = _build_scaling_plot(
        groups,
        x_label=x_label,
        y_label=y_label,
        band_label=band_label,
        title_text=title,
        log_x=log_x,
        log_y=log_y,
    )
    return render(fig, dropped=dropped)
