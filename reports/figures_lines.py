"""Lines against x: measured series with error bars, per-epoch training curves, resource use over
time within trials."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
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
    plain_log_ticks,
    render,
    style,
    title,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_MAX_TICKS = 10  # up to this many distinct x values are ticked at the values themselves
_YWRAP = 24  # characters per y-axis label line


@dataclass(frozen=True)
class Point:
    """A measured y at x with its optional interval (e.g. the median and its 95% CI)."""

    x: float
    y: float
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class Series:
    """One line: a label and its points (``Point`` or tuples ``(x, y[, ci_low, ci_high])``)."""

    label: str
    points: Sequence[Point | tuple[float, ...]]


def _point(p: Point | tuple[float, ...]) -> Point:
    return p if isinstance(p, Point) else Point(*p)


def _plain_ticks(ax: Axes, xs: Sequence[float], *, log: bool) -> None:
    """Tick x at the measured values when there are few (worker counts, batch sizes, fractions),
    written plainly (``%g``), also on a log axis."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    distinct = sorted(set(xs))
    if len(distinct) <= _MAX_TICKS:
        ax.set_xticks(distinct)
        if log:
            ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _draw_series(
    ax: Axes,
    series: Sequence[Series],
    colors: dict[str, int],
    legend: dict[str, Any],
    *,
    log_x: bool = False,
    log_y: bool = False,
) -> tuple[int, list[float]]:
    """Draw each series with markers and error bars (a label's colour kept in ``colors``, its
    first handle in ``legend``); return (dropped, xs drawn). On a log axis a value <= 0 cannot
    be drawn: it is dropped and counted like a NaN."""
    dropped, all_x = 0, []
    for s in series:
        pts = [_point(p) for p in s.points]
        ok = sorted(
            (
                p
                for p in pts
                if finite(p.x, p.y) and (p.x > 0 or not log_x) and (p.y > 0 or not log_y)
            ),
            key=lambda p: p.x,
        )
        dropped += len(pts) - len(ok)
        if not ok:
            continue
        lows, highs = [], []
        for p in ok:
            lo, hi = p.ci_low, p.ci_high
            dropped += (lo is not None and not finite(lo)) + (hi is not None and not finite(hi))
            lows.append(p.y - lo if finite(lo) else 0.0)
            highs.append(hi - p.y if finite(hi) else 0.0)
        i = colors.setdefault(s.label, len(colors))
        xs, ys = [p.x for p in ok], [p.y for p in ok]
        has_ci = any(lows) or any(highs)
        bars = ax.errorbar(
            xs,
            ys,
            yerr=[[max(v, 0.0) for v in lows], [max(v, 0.0) for v in highs]] if has_ci else None,
            color=color(i),
            marker=marker(i),
            capsize=3,
            elinewidth=1.0,
        )
        bars.lines[0].set_gid(f"series_{i}_{ax.get_subplotspec().rowspan.start}")
        legend.setdefault(_plain_label(s.label), bars)
        all_x += xs
    return dropped, all_x


def _build_line_plot(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    lower: Sequence[Series] | None = None,
    lower_y_label: str | None = None,
    title_text: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
    lower_log_y: bool = False,
) -> tuple[Figure, int]:
    panels = [(series, y_label, log_y)]
    if lower is not None:
        panels.append((lower, lower_y_label or "", lower_log_y))
    with style():
        fig, axes = new_figure(len(panels), height=3.4 + 2.2 * (len(panels) - 1), sharex=True)
        colors: dict[str, int] = {}
        legend: dict[str, Any] = {}
        dropped, xs, drawn = 0, [], 0
        for ax, (ss, label, logy) in zip(axes, panels, strict=True):
            lost, got = _draw_series(ax, ss, colors, legend, log_x=log_x, log_y=logy)
            dropped, xs, drawn = dropped + lost, xs + got, drawn + len(got)
            ax.set_ylabel(_plain_label(label, wrap=_YWRAP))
            if logy:
                ax.set_yscale("log")
                plain_log_ticks(ax.yaxis)
            grid(ax)
        if not drawn:
            close(fig)
            raise FigureDataError(f"no finite point to draw for {y_label}")
        if log_x:
            axes[0].set_xscale("log", base=2 if min(xs) > 0 and _powers_of_two(xs) else 10)
        _plain_ticks(axes[-1], xs, log=log_x)
        axes[-1].set_xlabel(_plain_label(x_label, wrap=False))
        title(axes[0], title_text)
        # handles passed explicitly: a label starting with "_" is not hidden
        legend_below(fig, list(legend.values()), list(legend.keys()), dropped=dropped)
    return fig, dropped


def _powers_of_two(xs: Sequence[float]) -> bool:
    return all(math.log2(x).is_integer() for x in xs if x > 0)


def line_plot(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    lower: Sequence[Series] | None = None,
    lower_y_label: str | None = None,
    title: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
    lower_log_y: bool = False,
) -> RenderedFigure:
    """Each :class:`Series` as a line with markers and its intervals as error bars (runtime and
    accuracy against training fraction, throughput against batch size, time against workers).

    ``lower`` adds a second panel under the first, sharing x (e.g. accuracy under runtime); a
    label keeps its colour in both panels and appears once in the legend (below the panels).
    ``log_x`` uses base 2 when every x is a power of two (batch sizes), else 10. Up to 10
    distinct x values are ticked at the values. Points with a non-finite x or y, and non-finite
    interval ends, are dropped and counted (so are values <= 0 on a log axis);
    :class:`FigureDataError` when no point is left.
    """
    fig, dropped = _build_line_plot(
        series,
        x_label=x_label,
        y_label=y_label,
        lower=lower,
        lower_y_label=lower_y_label,
        title_text=title,
        log_x=log_x,
        log_y=log_y,
        lower_log_y=lower_log_y,
    )
    return render(fig, dropped=dropped)


# ---------------------------------------------------------------- training curves


@dataclass(frozen=True)
class CurveRow:
    """A row of the ``curves`` table: ``part`` is the trainer (0 when one model is trained),
    ``step`` the epoch, ``name`` loss, accuracy, val_loss, val_accuracy, …"""

    trial_id: int
    part: int
    name: str
    step: int
    value: float | None


def _curve_panel(name: str) -> tuple[str, bool]:
    """(panel, validation?) of a curve name: ``val_loss`` -> ("loss", True)."""
    val = name.startswith("val_")
    base = name[4:] if val else name
    if base.endswith("loss"):
        return "loss", val
    if base in ("acc", "accuracy") or base.endswith("accuracy"):
        return "accuracy", val
    return base, val


def _build_curves_plot(
    rows: Sequence[CurveRow | tuple[int, int, str, int, float | None]],
    *,
    part_labels: Mapping[int, str] | None = None,
    title_text: str | None = None,
) -> tuple[Figure, int]:
    by_line: dict[tuple[str, bool, int], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    dropped = 0
    for r in rows:
        row = r if isinstance(r, CurveRow) else CurveRow(*r)
        if not finite(row.value, row.step):
            dropped += 1
            continue
        panel, val = _curve_panel(str(row.name))
        by_line[(panel, val, int(row.part))][int(row.step)].append(float(row.value))  # type: ignore[arg-type]
    if not by_line:
        raise FigureDataError("no finite training-curve value to draw")
    order = {"loss": 0, "accuracy": 1}
    panels = sorted({k[0] for k in by_line}, key=lambda p: (order.get(p, 2), p))
    parts = sorted({k[2] for k in by_line})
    labels = dict(part_labels or {})
    with style():
        fig, axes = new_figure(len(panels), height=0.9 + 2.2 * len(panels), sharex=True)
        handles: dict[str, Any] = {}
        for ax, panel in zip(axes, panels, strict=True):
            for (p_name, val, part), steps in sorted(by_line.items()):
                if p_name != panel:
                    continue
                xs = sorted(steps)
                means = [sum(steps[s]) / len(steps[s]) for s in xs]
                i = parts.index(part)
                who = labels.get(part, f"trainer {part}") if len(parts) > 1 else ""
                text = _plain_label(f"{who}: " * bool(who) + ("validation" if val else "train"))
                (line,) = ax.plot(
                    xs,
                    means,
                    color=color(i),
                    linestyle="--" if val else "-",
                    marker=marker(i) if len(xs) <= 30 else None,
                    markerfacecolor="white" if val else color(i),
                    gid=f"curve_{panel}_{int(val)}_{part}",
                )
                spread = [(min(steps[s]), max(steps[s])) for s in xs]
                if any(lo < hi for lo, hi in spread):
                    ax.fill_between(
                        xs,
                        [lo for lo, _ in spread],
                        [hi for _, hi in spread],
                        color=color(i),
                        alpha=0.15,
                        linewidth=0,
                    )
                handles.setdefault(text, line)
            ax.set_ylabel(_plain_label(panel, wrap=_YWRAP))
            grid(ax)
        from matplotlib.ticker import MaxNLocator

        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[-1].set_xlabel("epoch")
        title(axes[0], title_text)
        legend_below(fig, list(handles.values()), list(handles.keys()), dropped=dropped)
    return fig, dropped


def curves_plot(
    rows: Sequence[CurveRow | tuple[int, int, str, int, float | None]],
    *,
    part_labels: Mapping[int, str] | None = None,
    title: str | None = None,
) -> RenderedFigure:
    """Loss and accuracy per epoch from ``curves`` rows ``(trial_id, part, name, step, value)``
    of the trials to show: a loss panel (``*loss``), an accuracy panel (``*accuracy``, ``acc``),
    and a panel for any other name; one line per (name, part): train solid, validation
    (``val_*``) dashed, a colour per part (labelled by ``part_labels``, else "trainer N", when
    there are several). Each line is the mean over the trials at each epoch; with several trials
    a band shows their range (min to max). Non-finite values are dropped and counted;
    :class:`FigureDataError` when none is left.
    """
    fig, dropped = _build_curves_plot(rows, part_labels=part_labels, title_text=title)
    return render(fig, dropped=dropped)


# ---------------------------------------------------------------- resource use


@dataclass(frozen=True)
class ResourceSeries:
    """Samples of one trial (or configuration) from the ``samples`` table: seconds since the
    trial started, process-tree CPU % (100 = one core) and resident memory in MB."""

    label: str
    t_s: Sequence[float]
    cpu_percent: Sequence[float | None]
    rss_mb: Sequence[float | None]


def _build_resource_plot(
    series: Sequence[ResourceSeries], *, title_text: str | None = None
) -> tuple[Figure, int]:
    dropped, drawn = 0, 0
    legend: dict[str, Any] = {}
    with style():
        fig, axes = new_figure(2, height=4.6, sharex=True)
        for i, s in enumerate(series):
            if not (len(s.t_s) == len(s.cpu_percent) == len(s.rss_mb)):
                close(fig)
                raise ValueError(f"{s.label!r}: t_s, cpu_percent and rss_mb differ in length")
            for ax, ys, what in ((axes[0], s.cpu_percent, "cpu"), (axes[1], s.rss_mb, "rss")):
                pts = sorted((t, y) for t, y in zip(s.t_s, ys, strict=True) if finite(t, y))
                dropped += len(ys) - len(pts)
                if not pts:
                    continue
                drawn += len(pts)
                (line,) = ax.plot(
                    [t for t, _ in pts],
                    [y for _, y in pts],
                    color=color(i),
                    linestyle=("-", "--", ":", "-.")[(i // 7) % 4],
                    drawstyle="steps-post",
                    gid=f"{what}_{i}",
                )
                legend.setdefault(_plain_label(s.label), line)
        if not drawn:
            close(fig)
            raise FigureDataError("no finite resource sample to draw")
        axes[0].set_ylabel("CPU (%)")
        axes[0].set_ylim(bottom=0)
        axes[1].set_ylabel("RSS (MB)")
        axes[1].set_xlabel("time since trial start (s)")
        for ax in axes:
            grid(ax)
        title(axes[0], title_text)
        legend_below(fig, list(legend.values()), list(legend.keys()), dropped=dropped)
    return fig, dropped


def resource_plot(series: Sequence[ResourceSeries], *, title: str | None = None) -> RenderedFigure:
    """CPU % (top) and RSS MB (bottom) against time within a trial, one line per
    :class:`ResourceSeries` (a trial, or a configuration's representative trial), drawn as
    steps between samples. Non-finite samples are dropped and counted;
    :class:`FigureDataError` when none is left."""
    fig, dropped = _build_resource_plot(series, title_text=title)
    return render(fig, dropped=dropped)
