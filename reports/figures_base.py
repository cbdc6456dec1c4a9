"""What every report figure shares: the rendered pair, the style, safe labels, rendering.

Figures are drawn at 6.5 in wide (a LaTeX text width) with text of at least 9 pt; the SVG keeps
its ``viewBox`` and loses its absolute ``width``/``height``, so it scales to its container (a
390 px phone screen as well as a desktop column). Output is deterministic: a fixed SVG hash salt,
no creation dates in SVG or PDF metadata.

Empty input: every figure function raises :class:`FigureDataError` (a ``ValueError``) when it is
left with nothing finite to draw; the caller decides whether that is a note in the report or a
bug. Non-finite values (NaN, ±inf) are dropped point by point, counted in
:attr:`RenderedFigure.dropped` and said in a note under the figure.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import math
import re
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_RC: dict[str, Any] = {
    "svg.hashsalt": "trialkit",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "text.usetex": False,
    "font.family": "DejaVu Sans",
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.5,
}
WIDTH_IN = 6.5  # a LaTeX text width; 390 px shows it at 0.6 scale
_MAX_PART = 30  # characters of one " / "-separated label part before its middle is elided
_WRAP = 44  # characters per label line
#: Colour-blind-safe qualitative palette (Okabe–Ito, black last), then repeated with markers.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
BOX_FACE = "#dbe6f3"
BOX_EDGE = "#2b4c7e"
MEDIAN = "#c0392b"


class FigureDataError(ValueError):
    """Nothing (finite) to draw: the message says what was missing."""


@dataclass(frozen=True)
class RenderedFigure:
    """One figure in both formats a report needs."""

    svg: str  # an ``<svg>`` element, without the XML prolog, for inlining in HTML
    pdf: bytes  # for ``\\includegraphics`` in LaTeX
    dropped: int = 0  # non-finite input values left out (said under the figure too)
    note: str = ""  # how the data were reduced for drawing, for the caption ("" when not)


def _shorten(part: str) -> str:
    if len(part) <= _MAX_PART:
        return part
    keep = (_MAX_PART - 1) // 2
    return part[:keep] + "…" + part[-keep:]


def _plain_label(label: object, *, wrap: bool | int = True, elide: bool = True) -> str:
    """Make a label from the database readable and safe for matplotlib's text engine.

    Each `` / ``-separated part longer than 30 characters loses its middle (the ends, which tell
    configurations apart, stay); the label wraps onto lines of about 44 characters (or ``wrap``
    characters when an int; ``elide=False`` keeps every part whole, for titles); ``$`` is
    escaped, since it would start mathtext.
    """
    text = " ".join(str(label).split())
    if elide:
        text = " / ".join(_shorten(part) for part in text.split(" / "))
    if wrap:
        width = _WRAP if wrap is True else int(wrap)
        text = "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text
    return text.replace("$", r"\$")


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def marker(i: int) -> str:
    return MARKERS[(i // len(PALETTE) + i) % len(MARKERS)]


def finite(*values: float | None) -> bool:
    """True when every value given is a finite number (None counts as not finite)."""
    for v in values:
        if v is None:
            return False
        try:
            if not math.isfinite(float(v)):
                return False
        except (TypeError, ValueError):
            return False
    return True


def opt_finite(value: float | None) -> float | None:
    """``value`` when finite, else None (for optional interval ends)."""
    return float(value) if value is not None and finite(value) else None


def close(fig: Figure) -> None:
    """Drop a figure that will not be rendered (an error after it was made). Figures are made
    without pyplot (see :func:`new_figure`), so nothing holds them but their callers: this only
    frees the artists at once."""
    fig.clear()


def new_figure(
    rows: int, *, height: float, sharex: bool = False, height_ratios: Sequence[float] | None = None
) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure 6.5 in wide with ``rows`` stacked panels (call inside
    :func:`style`). Made as a plain :class:`matplotlib.figure.Figure`, not through pyplot: no
    GUI backend, no figure manager, and about 0.1 s less import; ``savefig`` picks the SVG or PDF
    canvas itself."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False, height_ratios=height_ratios)
    return fig, list(axes[:, 0])


def style() -> Any:
    """The rc context every figure is built and rendered in."""
    import matplotlib

    return matplotlib.rc_context(_RC)


def grid(ax: Axes, axis: str = "both") -> None:
    ax.grid(axis=axis, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def legend_below(
    fig: Figure,
    handles: Sequence[Any],
    labels: Sequence[str],
    *,
    dropped: int = 0,
    ncols: int | None = None,
) -> None:
    """A figure legend under the panels, where it cannot cover data (one or two columns by the
    longest label), ending with the note of non-finite values left out, if any."""
    from matplotlib.lines import Line2D

    handles, labels = list(handles), list(labels)
    if dropped:
        s = "" if dropped == 1 else "s"
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(f"{dropped} non-finite value{s} (NaN or inf) not drawn")
    if not handles:
        return
    longest = max(max(map(len, lb.split("\n"))) for lb in labels)
    if ncols is None:
        ncols = 1 if longest > 34 or len(labels) == 1 else 2
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False)


def title(ax: Axes, text: str | None) -> None:
    if text:
        ax.set_title(_plain_label(text, wrap=70, elide=False), loc="left", fontweight="bold")


def plain_log_ticks(axis: Any) -> None:
    """Log-axis ticks at 1, 2 and 5 times powers of ten, written plainly (``%g``), no minor
    labels: readable at phone width, where ``6×10³`` labels crowd."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


_ROOT_SIZE = re.compile(r'\s(?:width|height)="[^"]*"')
_ID = re.compile(r'(\sid="|href="#|url\(#)([^")]+)')


def _scope_ids(svg: str) -> str:
    """Prefix every id (and every reference to one) with a digest of the figure, so several
    figures inlined in one HTML page never resolve each other's glyphs, markers or clip paths
    (a figure in a collapsed section would otherwise break the ones that borrow from it)."""
    import hashlib

    prefix = "f" + hashlib.sha1(svg.encode()).hexdigest()[:10] + "-"
    return _ID.sub(lambda m: m.group(1) + prefix + m.group(2), svg)


#: The formats :func:`render` writes (a report needs one: SVG for HTML, PDF for LaTeX).
_FORMATS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "figure_formats", default=frozenset({"svg", "pdf"})
)


@contextlib.contextmanager
def rendering(*formats: str) -> Iterator[None]:
    """Within this block :func:`render` writes only ``formats`` (``"svg"``, ``"pdf"``); the
    other field of :class:`RenderedFigure` stays empty. Outside it, both."""
    token = _FORMATS.set(frozenset(formats))
    try:
        yield
    finally:
        _FORMATS.reset(token)


def for_pages() -> bool:
    """True within :func:`rendering` of PDF alone (a LaTeX or PDF report): figures then fit a
    printed page (see :func:`reports.figures_dist.page_panels`); an HTML page scrolls."""
    return "svg" not in _FORMATS.get()


def render(fig: Figure, *, dropped: int = 0, note: str = "") -> RenderedFigure:
    """SVG (scalable: viewBox, no absolute size) and PDF of ``fig`` (only those
    :func:`rendering` asks for). Nothing but the caller holds ``fig`` (no pyplot), so there is
    nothing to close."""
    formats = _FORMATS.get()
    svg, pdf = "", b""
    with style():
        if "svg" in formats:
            svg_buf = io.StringIO()
            fig.savefig(svg_buf, format="svg", metadata={"Date": None})
            svg = svg_buf.getvalue()
        if "pdf" in formats:
            pdf_buf = io.BytesIO()
            fig.savefig(pdf_buf, format="pdf", metadata={"CreationDate": None, "ModDate": None})
            pdf = pdf_buf.getvalue()
    if svg:
        svg = svg[svg.find("<svg") :]
        end = svg.find(">")
        root = _ROOT_SIZE.sub("", svg[:end])
        svg = _scope_ids(root + svg[end:])
    return RenderedFigure(svg=svg, pdf=pdf, dropped=dropped, note=note)


def count_nonfinite(values: Iterable[float | None]) -> int:
    return sum(1 for v in values if not finite(v))
