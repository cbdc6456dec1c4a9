"""Distributions of repeated trials: a box per group with 10 trials or more, otherwise every trial
as a dot (deterministic jitter) with its median marked."""

from __future__ import annotations

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


def _prepare(group: Group, dot_below: int) -> tuple[str, dict[str, Any] | list[float], int]:
    """(kind-tagged drawing data, dropped count): a ``bxp`` dict or the list of dot values."""
    if isinstance(group, Trials):
        values = [float(v) for v in group.values if finite(v)]
        dropped = len(group.values) - len(values)
        label = _plain_label(f"{group.label} (n={len(values)})", wrap=_LABEL_WRAP)
        if not values:
            return label, [], dropped
        if len(values) < dot_below:
            return label, sorted(values), dropped
        return label, _box_from_values(label, values), dropped
    label = _plain_label(f"{group.label} (n={group.n})", wrap=_LABEL_WRAP)
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
) -> tuple[Figure, int, str]:
    """The figure (not yet rendered), the count of non-finite values left out and the note on
    fliers drawn once (see :data:`MAX_FLIERS`; "" when none were)."""
    dropped = thinned = 0
    drawn: list[tuple[str, list[tuple[str, dict[str, Any] | list[float]]]]] = []
    for title_text, groups in panels:
        rows = []
        for g in groups:
            label, data, lost = _prepare(g, dot_below)
            dropped += lost
            if data:
                rows.append((label, data))
        if rows:
            thinned += _thin_panel(rows)
            drawn.append((_plain_label(title_text, wrap=70, elide=False), rows[::-1]))
    if not drawn:
        raise FigureDataError(f"no group with a finite {metric} to draw")
    heights = [
        0.6 + 0.3 * len(rows) + 0.15 * sum(label.count("\n") for label, _ in rows)
        for _, rows in drawn
    ]
    any_dots = any(isinstance(d, list) for _, rows in drawn for _, d in rows)
    with style():
        fig, axes = new_figure(
            len(drawn),
            height=0.5 + sum(heights) + 0.3 * (any_dots + bool(dropped)),
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
) -> RenderedFigure:
    """One panel per ``(title, groups)``; per group a horizontal box, or its trials as dots.

    A group is either an ``analysis.BoxStats`` (label, n, quartiles, whiskers, fliers; only with
    n ≥ 10 — fewer raises ``ValueError``, since the dots need the values) or :class:`Trials`
    (label, raw values): fewer than 10 finite values are drawn one dot per trial, jittered
    deterministically, with the median as a red bar; 10 or more as a Tukey box (1.5 IQR, as
    ``analysis.box_stats``). Groups run top to bottom in the given order, labels (with n) on the
    y axis, each panel on its own scale. Raises :class:`FigureDataError` when no group has a
    finite value; non-finite values are dropped and counted.
    """
    fig, dropped, note = _build_distribution(panels, metric=metric, xlabel=xlabel)
    return render(fig, dropped=dropped, note=note)


def boxplot(
    panels: Sequence[tuple[str, Sequence[Any]]], *, metric: str, xlabel: str | None = None
) -> RenderedFigure:
    """Every group a box, whatever its n: the general report's figure of ``BoxStats``. Prefer
    :func:`distribution`, which draws groups of fewer than 10 trials as dots."""
    fig, dropped, note = _build_distribution(panels, metric=metric, xlabel=xlabel, dot_below=0)
    return render(fig, dropped=dropped, note=note)


__all__ = ["DOT_BELOW", "MAX_FLIERS", "Trials", "boxplot", "distribution", "jitter", "thin_fliers"]
