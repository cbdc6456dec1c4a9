"""Cost against time: the Pareto front of configurations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reports.figures_base import (
    FigureDataError,
    RenderedFigure,
    _plain_label,
    color,
    finite,
    grid,
    legend_below,
    new_figure,
    plain_log_ticks,
    render,
    style,
    title,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_GREY = "#8c8c8c"


@dataclass(frozen=True)
class CostPoint:
    """A configuration's median time and median cost per run (``analysis.cost``'s ``CostRow``:
    ``CostPoint(row.label, row.median_s, row.median_cost_usd)``)."""

    label: str
    time_s: float
    cost_usd: float


def _build_pareto_plot(
    points: Sequence[CostPoint],
    front: Sequence[bool] | None = None,
    *,
    x_label: str = "median time per run (s)",
    y_label: str = "median cost per run (USD)",
    title_text: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
) -> tuple[Figure, int]:
    from analysis.cost import pareto_front

    ok = [p for p in points if finite(p.time_s, p.cost_usd)]
    dropped = len(points) - len(ok)
    if not ok:
        raise FigureDataError("no configuration with a finite time and cost to draw")
    if front is None:
        flags = pareto_front([(p.time_s, p.cost_usd) for p in ok])
    else:
        if len(front) != len(points):
            raise ValueError(f"front has {len(front)} flags for {len(points)} points")
        flags = [f for p, f in zip(points, front, strict=True) if finite(p.time_s, p.cost_usd)]
    on = sorted(
        (p for p, f in zip(ok, flags, strict=True) if f), key=lambda p: (p.time_s, p.cost_usd)
    )
    off = [p for p, f in zip(ok, flags, strict=True) if not f]
    legend: dict[str, Any] = {}
    with style():
        fig, (ax,) = new_figure(1, height=3.9 + 0.2 * len(on))
        if off:
            (rest,) = ax.plot(
                [p.time_s for p in off],
                [p.cost_usd for p in off],
                linestyle="none",
                marker="o",
                color=_GREY,
                markerfacecolor="none",
                gid="dominated",
            )
            legend["dominated configuration"] = rest
        if on:
            (line,) = ax.plot(
                [p.time_s for p in on],
                [p.cost_usd for p in on],
                drawstyle="steps-post",
                marker="o",
                color=color(1),
                gid="front",
            )
            legend["Pareto front (number: configuration below)"] = line
            for k, p in enumerate(on, 1):
                ax.annotate(
                    str(k),
                    (p.time_s, p.cost_usd),
                    xytext=(4, 4),
                    textcoords="offset points",
                    fontsize=10,
                    fontweight="bold",
                    color=color(1),
                )
        if log_x:
            ax.set_xscale("log")
            plain_log_ticks(ax.xaxis)
        if log_y:
            ax.set_yscale("log")
            plain_log_ticks(ax.yaxis)
        ax.margins(0.08)
        ax.set_xlabel(_plain_label(x_label, wrap=False))
        ax.set_ylabel(_plain_label(y_label, wrap=24))
        grid(ax)
        title(ax, title_text)
        from matplotlib.lines import Line2D

        for k, p in enumerate(on, 1):
            legend[f"{k}  {_plain_label(p.label, wrap=60)}"] = Line2D([], [], linestyle="none")
        legend_below(fig, list(legend.values()), list(legend.keys()), dropped=dropped, ncols=1)
    return fig, dropped


def pareto_plot(
    points: Sequence[CostPoint],
    front: Sequence[bool] | None = None,
    *,
    x_label: str = "median time per run (s)",
    y_label: str = "median cost per run (USD)",
    title: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
) -> RenderedFigure:
    """Cost against time per configuration: dominated ones as grey rings, the Pareto front
    (``front``: one flag per point, as ``CostRow.pareto``; computed with
    ``analysis.cost.pareto_front`` when None) as a staircase, its points numbered from the
    fastest, the numbers' configurations listed under the plot. Non-finite points are dropped
    and counted; :class:`FigureDataError` when none is left."""
    fig, dropped = _build_pareto_plot(
        points,
        front,
        x_label=x_label,
        y_label=y_label,
        title_text=title,
        log_x=log_x,
        log_y=log_y,
    )
    return render(fig, dropped=dropped)
