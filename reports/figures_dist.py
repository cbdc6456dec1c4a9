"""Distributions of repeated trials: a box per group with 10 trials or more, otherwise every trial
as a dot (deterministic jitter) with its median marked."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from analysis.summary import TUKEY_K
from reports.figures_base import (
    BOX_EDGE,
    BOX_FACE,
    MEDIAN,
    FigureDataError,
    RenderedFigure,
    _plain_label,
    finite,
    grid,
    legend_below,
    new_figure,
    render,
    style,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Below this many trials a group is drawn as dots: a box of 4 points draws quartiles nobody
#: measured.
DOT_BELOW = 10
_GOLDEN = 0.6180339887498949

#: A box with more points beyond its whiskers than this draws each circle that would cover
#: another (values within 1/FLIER_BINS of the panel's range) once; the caption says so.
MAX_FLIERS = 1000
FLIER_BINS = 2000

_LABEL_WRAP = 30  # characters per y label line: the data keep most of a phone-wide figure

#: Inches of a distribution figure: around the panels, legend line, each panel's title and
#: axis, each row, each further line of a row's label.
_FIG_EXTRA_IN, _LEGEND_IN, _PANEL_IN, _ROW_IN, _LINE_IN = 0.5, 0.3, 0.6, 0.3, 0.15
#: Tallest figure :func:`page_panels` makes: LaTeX sets a figure at most 0.72 of the text
#: height (12.8 cm, 5.05 in, on the report's landscape A4), so 6.5 in keeps 10 pt tick labels
#: at 7.8 pt or more (a 36 in figure of 78 boxes had them at 1.4 pt).
PAGE_HEIGHT_IN = 6.5


class BoxLike(Protocol):
    """``analysis.BoxStats``' fields."""

    label: str
    n: int
    q1: float
    median: float
    q3: float
    whislo: float
    whishi: float
    fliers: Sequence[float]


@dataclass(frozen=True)
class Trials:
    """A group's raw values (one per trial), for the dot plot (or a box when there are ≥ 10)."""

    label: str
    values: Sequence[float]


Group = BoxLike | Trials


def jitter(k: int, spread: float = 0.5) -> list[float]:
    """``k`` deterministic offsets in ``[-spread/2, spread/2)``: the golden-ratio sequence, so
    neighbours land apart and the same input gives the same picture."""
    return [((i * _GOLDEN) % 1.0 - 0.5) * spread for i in range(k)]


def _box_from_values(label: str, values: Sequence[float]) -> dict[str, Any]:
    from matplotlib import cbook

    (s,) = cbook.boxplot_stats(list(values), whis=TUKEY_K)
    return {
        "label": label,
        "q1": s["q1"],
        "med": s["med"],
        "q3": s["q3"],
        "whislo": s["whislo"],
        "whishi": s["whishi"],
        "fliers": list(s["fliers"]),
    }


def _group_label(group: Group) -> str:
    """A group's y label as drawn: its label and n, shortened and wrapped."""
    if isinstance(group, Trials):
        n = sum(1 for v in group.values if finite(v))
        return _plain_label(f"{group.label} (n={n})", wrap=_LABEL_WRAP)
    return _plain_label(f"{group.label} (n={group.n})", wrap=_LABEL_WRAP)


def _prepare(group: Group, dot_below: int) -> tuple[str, dict[str, Any] | list[float], int]:
    """(kind-tagged drawing data, dropped count): a ``bxp`` dict or the list of dot values."""
    if isinstance(group, Trials):
        values = [float(v) for v in group.values if finite(v)]
        dropped = len(group.values) - len(values)
        label = _group_label(group)
        if not values:
            return label, [], dropped
        if len(values) < dot_below:
            return label, sorted(values), dropped
        return label, _box_from_values(label, values), dropped
    label = _group_label(group)
    if group.n < dot_below:
        raise ValueError(
            f"group {group.label!r} has {group.n} trials (< {dot_below}): pass its values as "
            "Trials(label, values) so every trial is drawn as a dot"
        )
    nums = (group.q1, group.median, group.q3, group.whislo, group.whishi)
    if not finite(*nums):
        return label, [], 1
    fliers = [float(f) for f in group.fliers if finite(f)]
    box = {
        "label": label,
        "q1": group.q1,
        "med": group.median,
        "q3": group.q3,
        "whislo": group.whislo,
        "whishi": group.whishi,
        "fliers": fliers,
    }
    return label, box, len(group.fliers) - len(fliers)


def thin_fliers(fliers: Sequence[float], lo: float, hi: float) -> list[float]:
    """``fliers`` (sorted) with one value kept per ``1/FLIER_BINS`` of ``[lo, hi]`` (the
    smallest in each bin): circles 3 pt wide on a 6.5 in axis, so the dropped ones lay within a
    quarter point of one kept. Every value is a data value; the extremes are kept."""
    span = hi - lo
    if not span > 0 or len(fliers) <= MAX_FLIERS:
        return list(fliers)
    kept: list[float] = []
    last = None
    for v in sorted(fliers):
        b = int((v - lo) / span * FLIER_BINS)
        if b != last:
            kept.append(v)
            last = b
    top = max(fliers)
    if kept[-1] != top:
        kept.append(top)
    return kept


def _thin_panel(rows: list[tuple[str, dict[str, Any] | list[float]]]) -> int:
    """Thin the fliers of the boxes of one panel in place; the count of circles not drawn."""
    values = [v for _, d in rows for v in (d if isinstance(d, list) else d["fliers"])]
    values += [d[k] for _, d in rows if isinstance(d, dict) for k in ("whislo", "whishi")]
    if not values:
        return 0
    lo, hi = min(values), max(values)
    gone = 0
    for _, d in rows:
        if isinstance(d, dict) and len(d["fliers"]) > MAX_FLIERS:
            kept = thin_fliers(d["fliers"], lo, hi)
            gone += len(d["fliers"]) - len(kept)
            d["fliers"] = kept
    return gone


def _build_distribution(
    panels: Sequence[tuple[str, Sequence[Group]]],
    *,
    metric: str,
    xlabel: str | None = None,
    dot_below: int = DOT_BELOW,
    xlims: Sequence[tuple[float, float] | None] | None = None,
) -> tuple[Figure, int, str]:
    """The figure (not yet rendered), the count of non-finite values left out and the note on
    fliers drawn once (see :data:`MAX_FLIERS`; "" when none were). ``xlims``: per panel, the
    data range its axis shows (None: its own)."""
    dropped = thinned = 0
    drawn: list[tuple[str, list[tuple[str, dict[str, Any] | list[float]]]]] = []
    limits: list[tuple[float, float] | None] = []
    for p, (title_text, groups) in enumerate(panels):
        rows = []
        for g in groups:
            label, data, lost = _prepare(g, dot_below)
            dropped += lost
            if data:
                rows.append((label, data))
        if rows:
            thinned += _thin_panel(rows)
            drawn.append((_plain_label(title_text, wrap=70, elide=False), rows[::-1]))
            limits.append(xlims[p] if xlims else None)
    if not drawn:
        raise FigureDataError(f"no group with a finite {metric} to draw")
    heights = [_panel_height([label for label, _ in rows]) for _, rows in drawn]
    any_dots = any(isinstance(d, list) for _, rows in drawn for _, d in rows)
    with style():
        fig, axes = new_figure(
            len(drawn),
            height=_FIG_EXTRA_IN + sum(heights) + _LEGEND_IN * (any_dots + bool(dropped)),
            height_ratios=heights,
        )
        legend: dict[str, Any] = {}
        for p, (ax, (title_text, rows)) in enumerate(zip(axes, drawn, strict=True)):
            boxes = [(i + 1, d) for i, (_, d) in enumerate(rows) if isinstance(d, dict)]
            if boxes:
                ax.bxp(
                    [d for _, d in boxes],
                    positions=[pos for pos, _ in boxes],
                    orientation="horizontal",
                    showfliers=True,
                    patch_artist=True,
                    widths=0.55,
                    boxprops={"facecolor": BOX_FACE, "edgecolor": BOX_EDGE},
                    medianprops={"color": MEDIAN, "linewidth": 1.6},
                    flierprops={"marker": "o", "markersize": 3, "markerfacecolor": "none"},
                )
            for i, (_, d) in enumerate(rows):
                if not isinstance(d, list):
                    continue
                pos = i + 1
                (dots,) = ax.plot(
                    d,
                    [pos + o for o in jitter(len(d))],
                    linestyle="none",
                    marker="o",
                    markersize=4.5,
                    markerfacecolor=BOX_FACE,
                    markeredgecolor=BOX_EDGE,
                    gid=f"trials_{p}_{i}",
                )
                mid = statistics.median(d)
                (med,) = ax.plot(
                    [mid, mid],
                    [pos - 0.33, pos + 0.33],
                    color=MEDIAN,
                    linewidth=1.8,
                    gid=f"median_{p}_{i}",
                )
                legend.setdefault("one dot per trial (fewer than 10)", dots)
                legend.setdefault("median", med)
            ax.set_yticks(range(1, len(rows) + 1), [label for label, _ in rows])
            ax.set_ylim(0.4, len(rows) + 0.6)
            if limits[p] is not None:
                lo, hi = limits[p]
                pad = 0.05 * (hi - lo) if hi > lo else 0.5 * abs(lo) or 0.5
                ax.set_xlim(lo - pad, hi + pad)
            ax.set_title(title_text, loc="left", fontweight="bold")
            grid(ax, "x")
        axes[-1].set_xlabel(_plain_label(xlabel or f"{metric} (s)", wrap=False))
        legend_below(fig, list(legend.values()), list(legend.keys()), dropped=dropped)
    note = ""
    if thinned:
        note = (
            f"Boxes with more than {MAX_FLIERS} trials beyond the whiskers: circles that would "
            f"overlap (within 1/{FLIER_BINS} of the axis) drawn once ({thinned} not drawn)."
        )
    return fig, dropped, note


def distribution(
    panels: Sequence[tuple[str, Sequence[Group]]],
    *,
    metric: str,
    xlabel: str | None = None,
    xlims: Sequence[tuple[float, float] | None] | None = None,
) -> RenderedFigure:
    """One panel per ``(title, groups)``; per group a horizontal box, or its trials as dots.

    A group is either an ``analysis.BoxStats`` (label, n, quartiles, whiskers, fliers; only with
    n ≥ 10 — fewer raises ``ValueError``, since the dots need the values) or :class:`Trials`
    (label, raw values): fewer than 10 finite values are drawn one dot per trial, jittered
    deterministically, with the median as a red bar; 10 or more as a Tukey box (1.5 IQR, as
    ``analysis.box_stats``). Groups run top to bottom in the given order, labels (with n) on the
    y axis, each panel on its own scale. Raises :class:`FigureDataError` when no group has a
    finite value; non-finite values are dropped and counted. ``xlims``: per panel, the data
    range its axis shows (None: its own; see :func:`page_panels`).
    """
    fig, dropped, note = _build_distribution(panels, metric=metric, xlabel=xlabel, xlims=xlims)
    return render(fig, dropped=dropped, note=note)


def _panel_height(labels: Sequence[str]) -> float:
    """Inches of one panel: its title and axis, and each row by its label's lines."""
    return _PANEL_IN + _ROW_IN * len(labels) + _LINE_IN * sum(lb.count("\n") for lb in labels)


def _data_range(groups: Sequence[Group]) -> tuple[float, float] | None:
    """The smallest and largest finite value drawn for ``groups`` (whiskers, fliers, dots)."""
    values: list[float] = []
    for g in groups:
        if isinstance(g, Trials):
            values += [float(v) for v in g.values if finite(v)]
        else:
            values += [float(v) for v in (g.whislo, g.whishi, *g.fliers) if finite(v)]
    return (min(values), max(values)) if values else None


Page = tuple[list[tuple[str, Sequence[Group]]], list[tuple[float, float] | None]]


def page_panels(
    panels: Sequence[tuple[str, Sequence[Group]]],
    *,
    max_panels: int,
    max_height: float = PAGE_HEIGHT_IN,
) -> list[Page]:
    """``panels`` cut into figures that fit a printed page: at most ``max_panels`` panels and
    ``max_height`` inches each (so that a page shows the text at 0.78 of its size or larger). A
    panel too tall for one figure is split into consecutive parts of about equal size, titled
    ``… (part 1 of 3)``, which share its range on the x axis so they read as one panel. Each
    figure: its panels and their x ranges (None: the panel's own), for :func:`distribution`."""
    budget = max_height - _FIG_EXTRA_IN - _LEGEND_IN
    pieces: list[tuple[str, Sequence[Group], float, tuple[float, float] | None]] = []
    for title_text, groups in panels:
        labels = [_group_label(g) for g in groups]
        if _panel_height(labels) <= budget or len(groups) <= 1:
            pieces.append((title_text, groups, _panel_height(labels), None))
            continue
        k = 2
        while True:
            size = -(-len(groups) // k)
            cuts = [range(i, min(i + size, len(groups))) for i in range(0, len(groups), size)]
            if all(_panel_height([labels[i] for i in c]) <= budget for c in cuts) or size == 1:
                break
            k += 1
        shared = _data_range(groups)
        for n, c in enumerate(cuts, 1):
            part = [groups[i] for i in c]
            pieces.append(
                (
                    f"{title_text} (part {n} of {len(cuts)})",
                    part,
                    _panel_height([labels[i] for i in c]),
                    shared,
                )
            )
    pages: list[Page] = []
    used = math.inf
    for title_text, groups, height, xlim in pieces:
        if used + height > budget or len(pages[-1][0]) >= max_panels:
            pages.append(([], []))
            used = 0.0
        pages[-1][0].append((title_text, groups))
        pages[-1][1].append(xlim)
        used += height
    return pages


def boxplot(
    panels: Sequence[tuple[str, Sequence[Any]]], *, metric: str, xlabel: str | None = None
) -> RenderedFigure:
    """Every group a box, whatever its n: the general report's figure of ``BoxStats``. Prefer
    :func:`distribution`, which draws groups of fewer than 10 trials as dots."""
    fig, dropped, note = _build_distribution(panels, metric=metric, xlabel=xlabel, dot_below=0)
    return render(fig, dropped=dropped, note=note)


__all__ = [
    "DOT_BELOW",
    "MAX_FLIERS",
    "PAGE_HEIGHT_IN",
    "Trials",
    "boxplot",
    "distribution",
    "jitter",
    "page_panels",
    "thin_fliers",
]
