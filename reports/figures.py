"""Figures from precomputed statistics (no raw rows): a horizontal boxplot of box statistics.

Output is deterministic: a fixed SVG hash salt and no creation dates in SVG or PDF metadata.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_RC = {
    "svg.hashsalt": "trialkit",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "text.usetex": False,
    "font.family": "DejaVu Sans",
    "font.size": 9,
}
_MAX_PART = 30  # characters of one " / "-separated label part before its middle is elided
_WRAP = 44  # characters per label line


@dataclass(frozen=True)
class RenderedFigure:
    """One figure in both formats a report needs."""

    svg: str  # an ``<svg>`` element, without the XML prolog, for inlining in HTML
    pdf: bytes  # for ``\\includegraphics`` in LaTeX


def _shorten(part: str) -> str:
    if len(part) <= _MAX_PART:
        return part
    keep = (_MAX_PART - 1) // 2
    return part[:keep] + "…" + part[-keep:]


def _plain_label(label: str, *, wrap: bool = True) -> str:
    """Make a label from the database readable and safe for matplotlib's text engine.

    Each `` / ``-separated part longer than 30 characters loses its middle (the ends, which tell
    configurations apart, stay); the label wraps onto lines of about 44 characters; ``$`` is
    escaped, since it would start mathtext.
    """
    text = " ".join(str(label).split())
    text = " / ".join(_shorten(part) for part in text.split(" / "))
    if wrap:
        text = "\n".join(textwrap.wrap(text, _WRAP, break_on_hyphens=False)) or text
    return text.replace("$", r"\$")


def _stats(boxes: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "label": _plain_label(f"{b.label} (n={b.n})"),
            "q1": b.q1,
            "med": b.median,
            "q3": b.q3,
            "whislo": b.whislo,
            "whishi": b.whishi,
            "fliers": list(b.fliers),
        }
        for b in reversed(list(boxes))
    ]


def boxplot(
    panels: Sequence[tuple[str, Sequence[Any]]], *, metric: str, xlabel: str | None = None
) -> RenderedFigure:
    """Draw one panel per ``(title, boxes)``, one horizontal box per ``BoxStats`` (label, n, q1,
    median, q3, whislo, whishi, fliers), each panel on its own time scale.

    Boxes run top to bottom in the given order; labels sit on the y axis, so they stay
    horizontal and readable however many configurations there are.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    drawn = [(_plain_label(title, wrap=False), _stats(boxes)) for title, boxes in panels if boxes]
    if not drawn:
        raise ValueError("boxplot needs at least one panel with boxes")
    rows = [
        0.55 + 0.26 * len(stats) + 0.13 * sum(s["label"].count("\n") for s in stats)
        for _, stats in drawn
    ]
    height = 0.45 + sum(rows)
    with matplotlib.rc_context(_RC):
        fig, axes = plt.subplots(
            len(drawn),
            1,
            figsize=(7.5, height),
            layout="constrained",
            height_ratios=rows,
            squeeze=False,
        )
        try:
            for ax, (title, stats) in zip(axes[:, 0], drawn, strict=True):
                ax.bxp(
                    stats,
                    orientation="horizontal",
                    showfliers=True,
                    patch_artist=True,
                    boxprops={"facecolor": "#dbe6f3", "edgecolor": "#2b4c7e"},
                    medianprops={"color": "#c0392b", "linewidth": 1.6},
                    flierprops={"marker": "o", "markersize": 3, "markerfacecolor": "none"},
                )
                ax.set_title(title, loc="left", fontsize=9, fontweight="bold")
                ax.grid(axis="x", color="#dddddd", linewidth=0.6)
                ax.set_axisbelow(True)
                ax.tick_params(axis="y", labelsize=8)
            axes[-1, 0].set_xlabel(_plain_label(xlabel or f"{metric} (s)", wrap=False))
            svg_buf = io.StringIO()
            fig.savefig(svg_buf, format="svg", metadata={"Date": None})
            pdf_buf = io.BytesIO()
            fig.savefig(pdf_buf, format="pdf", metadata={"CreationDate": None, "ModDate": None})
        finally:
            plt.close(fig)
    svg = svg_buf.getvalue()
    start = svg.find("<svg")
    return RenderedFigure(svg=svg[start:], pdf=pdf_buf.getvalue())
