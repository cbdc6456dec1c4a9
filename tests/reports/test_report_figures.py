"""Report figures: drawn from plain precomputed data, deterministic, scalable SVG and vector PDF,
the right number of marks, safe with hostile labels, empty input refused."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from analysis import BoxStats
from reports.figures import (
    FigureDataError,
    RenderedFigure,
    Trials,
    boxplot,
    curves_plot,
    distribution,
    line_plot,
    pareto_plot,
    resource_plot,
    scaling_plot,
    scatter_fit,
)
from reports.figures_base import close
from reports.figures_cost import CostPoint, _build_pareto_plot
from reports.figures_dist import (
    FLIER_BINS,
    MAX_FLIERS,
    PAGE_HEIGHT_IN,
    _build_distribution,
    jitter,
    page_panels,
)
from reports.figures_fit import (
    FitPoint,
    LineFit,
    ScalingSeries,
    _build_scaling_plot,
    _build_scatter_fit,
    linear_fit,
)
from reports.figures_lines import (
    Point,
    ResourceSeries,
    Series,
    _build_curves_plot,
    _build_line_plot,
    _build_resource_plot,
)

from .conftest import HOSTILE

NAN, INF = float("nan"), float("inf")
#: Labels that must come out literally: markup, mathtext, LaTeX, every special character.
HOSTILE_LABELS = ["<script>alert(1)</script>", "$x$", r"\input{x}", "_%&#{}~^", HOSTILE]


def _boxes(labels: list[str], n: int = 10) -> list[BoxStats]:
    return [
        BoxStats(label, n, 1.0 + i, 1.5 + i, 2.0 + i, 0.5 + i, 2.5 + i, (3.5 + i,))
        for i, label in enumerate(labels)
    ]


def _check_svg(fig: RenderedFigure) -> ET.Element:
    """The SVG parses, scales to its container (viewBox, no absolute size); the PDF is a PDF
    with no creation date."""
    assert fig.svg.startswith("<svg")
    root = ET.fromstring(fig.svg)
    assert len(root.get("viewBox", "").split()) == 4
    assert "width" not in root.attrib and "height" not in root.attrib
    assert fig.pdf.startswith(b"%PDF")
    assert b"CreationDate" not in fig.pdf and b"ModDate" not in fig.pdf
    ids = re.findall(r'\sid="([^"]+)"', fig.svg)
    refs = set(re.findall(r'(?:href="#|url\(#)([^")]+)', fig.svg))
    assert len(ids) == len(set(ids))
    assert refs <= set(ids)
    assert len({i.split("-", 1)[0] for i in ids}) == 1  # one prefix per figure
    return root


def _deterministic(make: Callable[[], RenderedFigure]) -> RenderedFigure:
    first, second = make(), make()
    assert first.svg == second.svg
    assert first.pdf == second.pdf
    _check_svg(first)
    return first


def _texts(fig: Any) -> list[Any]:
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_text()]


def _assert_literal(fig: Any, labels: list[str]) -> None:
    """Every hostile label is drawn as plain text (never mathtext), showing what it says."""
    shown = []
    for t in _texts(fig):
        text, is_math = t._preprocess_math(t.get_text())
        assert not is_math, t.get_text()
        shown.append(" ".join(text.split()))
    joined = " ".join(shown)
    for label in labels:
        # long labels lose their middle: their first 10 characters stay literal
        assert " ".join(label.split())[:10] in joined, label


def _assert_safe_svg(svg: str) -> None:
    assert "<script" not in svg
    body = svg.replace("<!--", "").replace("-->", "")
    assert "--" not in body.replace("stroke-dasharray", "")
    ET.fromstring(svg)


def _lines_by_gid(fig: Any, prefix: str) -> list[Any]:
    """The data lines (not legend handles) whose gid starts with ``prefix``."""
    return [
        ln for ax in fig.axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith(prefix)
    ]


def _close(fig: Any) -> None:
    close(fig)


# ---------------------------------------------------------------- boxplot / distribution


def test_boxplot_output_is_deterministic() -> None:
    boxes = _boxes([f"dask / knn / workers={w}" for w in range(1, 9)])
    _deterministic(lambda: boxplot([("knn", boxes)], metric="train_s"))


def test_hostile_labels_stay_escaped_in_svg() -> None:
    labels = [HOSTILE, "a --> <b>", "$\\input{x}$", "$$", "unbalanced $ dollar \\$"]
    fig = boxplot([(HOSTILE, _boxes(labels))], metric="train_s")
    _assert_safe_svg(fig.svg)
    assert "<b>" not in fig.svg
    assert fig.pdf.startswith(b"%PDF")


def test_two_panels_of_six_long_configurations_render() -> None:
    labels = [f"tensorflow / mlp-784-100-50-10 / workers={w}" for w in range(1, 7)]
    fig = boxplot([("mlp", _boxes(labels)), ("knn", _boxes(labels))], metric="train_s")
    assert len(re.findall(r'<g id="f[0-9a-f]+-patch_', fig.svg)) >= 12


def test_boxplot_draws_every_group_as_a_box_whatever_its_n() -> None:
    fig = boxplot([("knn", _boxes(["a", "b"], n=3))], metric="train_s")
    _check_svg(fig)


def test_no_boxes_is_an_error() -> None:
    with pytest.raises(FigureDataError):
        boxplot([("knn", [])], metric="train_s")
    with pytest.raises(ValueError):
        distribution([], metric="train_s")


def test_distribution_dots_below_ten_trials_box_from_ten() -> None:
    groups = [
        Trials("nine", [float(v) for v in range(9)]),
        Trials("ten", [float(v) for v in range(10)]),
        BoxStats("stats", 12, 1.0, 2.0, 3.0, 0.0, 4.0, ()),
        Trials("two", [1.0, 2.0]),
    ]
    fig, dropped, note = _build_distribution([("p", groups)], metric="train_s")
    assert note == ""
    try:
        assert dropped == 0
        (ax,) = fig.axes
        dots = _lines_by_gid(fig, "trials_")
        assert sorted(len(d.get_xdata()) for d in dots) == [2, 9]
        assert len(_lines_by_gid(fig, "median_")) == 2
        assert len(ax.patches) == 2  # boxes: "ten" and "stats"
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == ["two (n=2)", "stats (n=12)", "ten (n=10)", "nine (n=9)"]
    finally:
        _close(fig)


def test_distribution_medians_and_jitter_are_exact_and_deterministic() -> None:
    fig, _, _ = _build_distribution([("p", [Trials("g", [3.0, 1.0, 2.0, 10.0])])], metric="m")
    try:
        (med,) = _lines_by_gid(fig, "median_")
        assert list(med.get_xdata()) == [2.5, 2.5]
        (dots,) = _lines_by_gid(fig, "trials_")
        assert sorted(dots.get_xdata()) == [1.0, 2.0, 3.0, 10.0]
        assert [y - 1 for y in dots.get_ydata()] == pytest.approx(jitter(4))
    finally:
        _close(fig)
    assert all(-0.25 <= o < 0.25 for o in jitter(100))


def test_many_fliers_drawn_once_per_bin_with_a_caption_note() -> None:
    # 5000 fliers above a box on [0, 1]: circles closer than 1/FLIER_BINS of the panel's range
    # are drawn once, every kept circle is a data value, the extremes stay, and the note says so
    step = 1e-6  # far below 1/FLIER_BINS of the range: most circles coincide
    fliers = tuple(2.0 + i * step for i in range(MAX_FLIERS + 4000)) + (9.0,)
    box = BoxStats("many", 100_000, 0.25, 0.5, 0.75, 0.0, 1.0, fliers)
    few = BoxStats("few", 100, 0.25, 0.5, 0.75, 0.0, 1.0, (1.5, 1.5000001))
    fig, dropped, note = _build_distribution([("p", [box, few])], metric="m")
    try:
        (ax,) = fig.axes
        drawn = {}
        for line in ax.lines:
            xs = [float(x) for x in line.get_xdata()]
            if line.get_marker() == "o" and xs:
                drawn[len(drawn)] = xs
        kept = sorted(v for xs in drawn.values() for v in xs if v > 1.6)
        assert set(kept) <= set(fliers)
        assert min(kept) == min(fliers) and max(kept) == max(fliers)
        width = (9.0 - 0.0) / FLIER_BINS
        assert all(any(abs(v - k) <= width for k in kept) for v in fliers)
        assert len(kept) < 10
        # the small box keeps both of its (overlapping) circles
        assert sorted(v for xs in drawn.values() for v in xs if 1.4 < v < 1.6) == [1.5, 1.5000001]
        assert str(MAX_FLIERS) in note and f"{len(fliers) - len(kept)} not drawn" in note
    finally:
        _close(fig)


def test_distribution_needs_values_below_ten() -> None:
    with pytest.raises(ValueError, match="Trials"):
        distribution([("p", _boxes(["few"], n=5))], metric="train_s")


def test_distribution_drops_and_counts_nonfinite() -> None:
    groups = [Trials("a", [1.0, NAN, 2.0, INF]), Trials("b", [NAN]), Trials("c", [3.0] * 12)]
    fig = _deterministic(lambda: distribution([("p", groups)], metric="train_s"))
    assert fig.dropped == 3
    with pytest.raises(FigureDataError):
        distribution([("p", [Trials("a", [NAN, INF])])], metric="train_s")


def test_distribution_hostile_labels() -> None:
    groups = [Trials(lb, [1.0, 2.0]) for lb in HOSTILE_LABELS]
    fig, _, _ = _build_distribution([(HOSTILE, groups)], metric="m", xlabel="$x$ (s)")
    try:
        _assert_literal(fig, HOSTILE_LABELS)
    finally:
        _close(fig)
    _assert_safe_svg(distribution([(HOSTILE, groups)], metric="m").svg)


def test_page_panels_fit_a_page_and_split_a_tall_panel_on_one_scale() -> None:
    # 39 configurations with two-line labels in each of two workloads (the 10M database's
    # figure): 78 boxes in one 36 in figure before; now figures of at most PAGE_HEIGHT_IN,
    # each workload in equal consecutive parts sharing one x range, nothing lost or reordered
    labels = [f"dask / workers={w} / data_fraction={f}" for w in range(13) for f in (1, 2, 3)]
    knn = [
        BoxStats(lb, 12_000, 1.0 + i, 2.0 + i, 3.0 + i, 0.5 + i, 4.0 + i, (9.0 + i,))
        for i, lb in enumerate(labels)
    ]
    mlp = knn[:5]
    pages = page_panels([("knn", knn), ("mlp", mlp)], max_panels=6)
    drawn = [g for chunk, _ in pages for _, groups in chunk for g in groups]
    assert drawn == [*knn, *mlp]
    titles = [t for chunk, _ in pages for t, _ in chunk]
    parts = [t for t in titles if t.startswith("knn")]
    assert len(parts) > 1 and parts[0] == f"knn (part 1 of {len(parts)})"
    assert titles[-1] == "mlp"
    sizes = [len(g) for chunk, _ in pages for t, g in chunk if t.startswith("knn")]
    assert max(sizes) - min(sizes) <= 1
    # the parts share the workload's range: lowest whisker to highest flier
    xlims = [x for chunk, xl in pages for (t, _), x in zip(chunk, xl, strict=True)]
    assert set(xlims[: len(parts)]) == {(0.5, 9.0 + len(knn) - 1)}
    assert xlims[-1] is None
    for chunk, xl in pages:
        fig, _, _ = _build_distribution(chunk, metric="train_s", xlims=xl)
        try:
            width, height = fig.get_size_inches()
            assert height <= PAGE_HEIGHT_IN + 0.01
            for ax, x in zip(fig.axes, xl, strict=True):
                if x is not None:
                    lo, hi = ax.get_xlim()
                    assert lo < x[0] and hi > x[1]
        finally:
            _close(fig)
    # a few panels stay as they were: one figure, no parts, their own scales
    (only,) = page_panels([("knn", knn[:4]), ("mlp", mlp[:3])], max_panels=6)
    assert [t for t, _ in only[0]] == ["knn", "mlp"] and only[1] == [None, None]


# ---------------------------------------------------------------- line plot

FRACTIONS = [0.3, 0.5, 0.7, 0.9]


def _series(k: int = 3) -> list[Series]:
    return [
        Series(
            f"engine {i}", [Point(f, 10 * f + i, 10 * f + i - 1, 10 * f + i + 1) for f in FRACTIONS]
        )
        for i in range(k)
    ]


def test_line_plot_deterministic_and_counts() -> None:
    acc = [Series(s.label, [(p.x, 0.9) for p in s.points]) for s in _series()]
    _deterministic(
        lambda: line_plot(_series(), x_label="training fraction", y_label="s", lower=acc)
    )
    fig, dropped = _build_line_plot(
        _series(), x_label="fraction", y_label="s", lower=acc, lower_y_label="acc"
    )
    try:
        assert dropped == 0
        top, bottom = fig.axes[:2]
        data = _lines_by_gid(fig, "series_")
        assert len(data) == 6 and all(len(d.get_xdata()) == 4 for d in data)
        # the same label keeps its colour in both panels; one legend entry per label
        assert data[0].get_color() == data[3].get_color()
        (legend,) = fig.legends
        assert [t.get_text() for t in legend.get_texts()] == ["engine 0", "engine 1", "engine 2"]
        assert [t.get_text() for t in bottom.get_xticklabels()] == ["0.3", "0.5", "0.7", "0.9"]
    finally:
        _close(fig)


def test_line_plot_error_bars_follow_the_intervals() -> None:
    fig, _ = _build_line_plot(
        [Series("a", [Point(1, 5.0, 4.0, 7.0), Point(2, 6.0)])], x_label="x", y_label="y"
    )
    try:
        from matplotlib.collections import LineCollection

        (bars,) = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
        segs = [s.tolist() for s in bars.get_segments()]
        assert [[1.0, 4.0], [1.0, 7.0]] in segs
        assert [[2.0, 6.0], [2.0, 6.0]] in segs  # no interval: a zero-length bar
    finally:
        _close(fig)


def test_line_plot_log_axes_and_nonfinite() -> None:
    series = [
        Series("s", [(32, 100.0), (64, 210.0), (128, NAN), (INF, 1.0), (256, 800.0, NAN, 900.0)])
    ]
    fig = _deterministic(
        lambda: line_plot(series, x_label="batch size", y_label="ips", log_x=True, log_y=True)
    )
    assert fig.dropped == 3
    built, _ = _build_line_plot(series, x_label="b", y_label="y", log_x=True, log_y=True)
    try:
        ax = built.axes[0]
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["32", "64", "256"]
    finally:
        _close(built)
    zeros = line_plot([Series("s", [(0, 1.0), (1, 0.0), (2, 3.0)])], x_label="x", y_label="y")
    assert zeros.dropped == 0
    on_log = line_plot(
        [Series("s", [(0, 1.0), (1, 0.0), (2, 3.0)])],
        x_label="x",
        y_label="y",
        log_x=True,
        log_y=True,
    )
    assert on_log.dropped == 2
    with pytest.raises(FigureDataError):
        line_plot([Series("s", [(NAN, 1.0)])], x_label="x", y_label="y")
    with pytest.raises(FigureDataError):
        line_plot([], x_label="x", y_label="y")


def test_line_plot_hostile_labels() -> None:
    series = [Series(lb, [(1, 1.0), (2, 2.0)]) for lb in HOSTILE_LABELS]
    fig, _ = _build_line_plot(series, x_label="$x$", y_label=HOSTILE, title_text=HOSTILE)
    try:
        _assert_literal(fig, [*HOSTILE_LABELS, "$x$"])
    finally:
        _close(fig)
    _assert_safe_svg(line_plot(series, x_label="$x$", y_label=HOSTILE, title=HOSTILE).svg)


# ---------------------------------------------------------------- training curves


def _curve_rows(trials: int = 3, epochs: int = 10) -> list[tuple[int, int, str, int, float]]:
    rows = []
    for t in range(trials):
        for e in range(1, epochs + 1):
            rows += [
                (t, 0, "loss", e, 1 / e + t / 100),
                (t, 0, "val_loss", e, 1.2 / e),
                (t, 0, "accuracy", e, 1 - 0.5 / e),
                (t, 0, "val_accuracy", e, 0.95 - 0.5 / e - t / 100),
            ]
    return rows


def test_curves_plot_panels_lines_means_and_bands() -> None:
    _deterministic(lambda: curves_plot(_curve_rows()))
    fig, dropped = _build_curves_plot(_curve_rows())
    try:
        assert dropped == 0
        loss_ax, acc_ax = fig.axes[:2]
        assert loss_ax.get_ylabel() == "loss" and acc_ax.get_ylabel() == "accuracy"
        lines = _lines_by_gid(fig, "curve_")
        assert len(lines) == 4 and all(len(ln.get_xdata()) == 10 for ln in lines)
        (train_loss,) = _lines_by_gid(fig, "curve_loss_0_0")
        assert train_loss.get_ydata()[0] == pytest.approx(1.01)  # mean of 1.00, 1.01, 1.02
        # bands only where trials differ: train loss and validation accuracy
        assert len(loss_ax.collections) == 1 and len(acc_ax.collections) == 1
        (legend,) = fig.legends
        assert [t.get_text() for t in legend.get_texts()] == ["train", "validation"]
    finally:
        _close(fig)


def test_curves_plot_one_trial_no_band_several_parts() -> None:
    rows = [(1, p, n, e, 0.5) for p in (0, 1) for n in ("loss", "val_loss") for e in (1, 2, 3)]
    fig, _ = _build_curves_plot(rows, part_labels={0: "worker <0>", 1: "$w1$"})
    try:
        assert len(fig.axes) == 1  # no accuracy rows: one panel
        assert len(_lines_by_gid(fig, "curve_")) == 4
        assert not fig.axes[0].collections
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "worker <0>: train" in texts and r"\$w1\$: validation" in texts
        _assert_literal(fig, ["$w1$: validation"])
    finally:
        _close(fig)


def test_curves_plot_nonfinite_and_empty() -> None:
    rows = [*_curve_rows(1, 3), (0, 0, "loss", 4, NAN), (0, 0, "loss", 5, None)]
    assert curves_plot(rows).dropped == 2
    with pytest.raises(FigureDataError):
        curves_plot([(0, 0, "loss", 1, NAN)])
    with pytest.raises(FigureDataError):
        curves_plot([])


# ---------------------------------------------------------------- resource use


def _resources() -> list[ResourceSeries]:
    ts = [0.5 * i for i in range(20)]
    return [
        ResourceSeries(
            f"dask / workers={w}",
            ts,
            [min(100.0 * w, 40.0 * t) for t in ts],
            [200.0 + 10 * w * t for t in ts],
        )
        for w in (1, 2, 4)
    ]


def test_resource_plot_lines_and_determinism() -> None:
    _deterministic(lambda: resource_plot(_resources()))
    fig, dropped = _build_resource_plot(_resources())
    try:
        assert dropped == 0
        cpu, rss = _lines_by_gid(fig, "cpu_"), _lines_by_gid(fig, "rss_")
        assert len(cpu) == len(rss) == 3
        assert all(len(ln.get_xdata()) == 20 for ln in cpu + rss)
        assert fig.axes[0].get_ylabel() == "CPU (%)" and fig.axes[1].get_ylabel() == "RSS (MB)"
        assert len(fig.legends[0].get_texts()) == 3
    finally:
        _close(fig)


def test_resource_plot_nonfinite_mismatch_and_empty() -> None:
    s = ResourceSeries("t <script>", [0.0, 1.0, 2.0], [10.0, NAN, None], [100.0, 110.0, INF])
    fig = resource_plot([s])
    assert fig.dropped == 3
    _assert_safe_svg(fig.svg)
    with pytest.raises(ValueError, match="length"):
        resource_plot([ResourceSeries("x", [0.0], [1.0, 2.0], [1.0])])
    with pytest.raises(FigureDataError):
        resource_plot([ResourceSeries("x", [0.0], [NAN], [NAN])])
    with pytest.raises(FigureDataError):
        resource_plot([])


def test_svg_sizes_are_relative_only() -> None:
    fig = line_plot(_series(1), x_label="x", y_label="y")
    root = _check_svg(fig)
    w, h = (float(v) for v in root.get("viewBox", "").split()[2:])
    assert w == pytest.approx(6.5 * 72)
    assert h > 0 and math.isfinite(h)
    assert not re.search(r'<svg[^>]*\s(width|height)="', fig.svg)


# ---------------------------------------------------------------- regression scatter

SCATTER = [(2.0, 210.0), (4.0, 140.0), (8.0, 95.0), (16.0, 60.0), (4.0, 150.0), (8.0, 80.0)]


def test_linear_fit_matches_statsmodels() -> None:
    import numpy as np
    import statsmodels.api as sm

    fit = linear_fit(SCATTER, confidence_level=0.9, steps=7)
    x = np.array([p[0] for p in SCATTER])
    y = np.array([p[1] for p in SCATTER])
    res = sm.OLS(y, sm.add_constant(x)).fit()
    assert (fit.intercept, fit.slope) == pytest.approx(tuple(res.params))
    assert fit.r_squared == pytest.approx(res.rsquared)
    grid = np.array([b.x for b in fit.band])
    assert grid[0] == 2.0 and grid[-1] == 16.0 and len(grid) == 7
    frame = res.get_prediction(sm.add_constant(grid)).summary_frame(alpha=0.1)
    assert [b.conf_low for b in fit.band] == pytest.approx(list(frame["mean_ci_lower"]))
    assert [b.conf_high for b in fit.band] == pytest.approx(list(frame["mean_ci_upper"]))
    assert [b.pred_low for b in fit.band] == pytest.approx(list(frame["obs_ci_lower"]))
    assert [b.pred_high for b in fit.band] == pytest.approx(list(frame["obs_ci_upper"]))


def test_linear_fit_refuses_what_is_no_line() -> None:
    with pytest.raises(FigureDataError):
        linear_fit([(1.0, 2.0)])
    with pytest.raises(FigureDataError):
        linear_fit([(1.0, 2.0), (1.0, 3.0), (1.0, 4.0)])
    two = linear_fit([(1.0, 2.0), (2.0, 4.0)])
    assert two.slope == pytest.approx(2.0) and two.band[0].conf_low is None


def test_scatter_fit_points_line_bands_and_r2() -> None:
    points = [*SCATTER, (NAN, 1.0), (3.0, INF)]
    fig = _deterministic(lambda: scatter_fit(points, x_label="vCPU", y_label="train_s (s)"))
    assert fig.dropped == 2
    built, _ = _build_scatter_fit(points, x_label="vCPU", y_label="s")
    try:
        (dots,) = _lines_by_gid(built, "points")
        assert len(dots.get_xdata()) == len(SCATTER)
        assert len(_lines_by_gid(built, "fit")) == 1
        assert len(built.axes[0].collections) == 2  # confidence and prediction bands
        texts = [t.get_text() for t in built.legends[0].get_texts()]
        r2 = linear_fit(SCATTER).r_squared
        assert f"least-squares line, R² = {r2:.3f}" in texts
        assert "trials (n = 6)" in texts
    finally:
        _close(built)


def test_scatter_fit_given_fit_without_band_and_hostile_labels() -> None:
    fit = LineFit(intercept=1.0, slope=2.0, r_squared=0.431)
    built, _ = _build_scatter_fit(SCATTER, fit, x_label="$x$", y_label=HOSTILE, title_text=HOSTILE)
    try:
        assert not built.axes[0].collections
        (line,) = _lines_by_gid(built, "fit")
        assert list(line.get_ydata()) == [5.0, 33.0]
        _assert_literal(built, ["$x$", HOSTILE])
    finally:
        _close(built)
    _assert_safe_svg(scatter_fit(SCATTER, fit, x_label="$x$", y_label=HOSTILE, title=HOSTILE).svg)
    with pytest.raises(FigureDataError):
        scatter_fit([(NAN, NAN)], x_label="x", y_label="y")
    with pytest.raises(FigureDataError):
        scatter_fit([], x_label="x", y_label="y")


# ---------------------------------------------------------------- scaling law


def _law(x: float) -> float:
    return 100 * (0.2 + 0.8 / x)


def _scaling(label: str = "dask / knn") -> ScalingSeries:
    grid = [1 + 0.25 * i for i in range(61)]  # 1 .. 16
    return ScalingSeries(
        label,
        [FitPoint(w, _law(w) * 1.01, _law(w) * 0.95, _law(w) * 1.05) for w in (1, 2, 4)],
        [FitPoint(x, _law(x), _law(x) * 0.9, _law(x) * 1.1) for x in grid],
        [FitPoint(x, _law(x), _law(x) * 0.8, _law(x) * 1.2) for x in (8, 16)],
        "amdahl, R² = 0.981",
    )


def test_scaling_plot_marks_measured_curve_and_predictions() -> None:
    groups = [_scaling(), _scaling("ray / knn")]
    _deterministic(lambda: scaling_plot(groups))
    fig, dropped = _build_scaling_plot(groups)
    try:
        assert dropped == 0
        assert [len(ln.get_xdata()) for ln in _lines_by_gid(fig, "measured_")] == [3, 3]
        assert [len(ln.get_xdata()) for ln in _lines_by_gid(fig, "predicted_")] == [2, 2]
        (law,) = _lines_by_gid(fig, "law_0")
        (beyond,) = _lines_by_gid(fig, "extrapolated_0")
        assert max(law.get_xdata()) == 4 and min(beyond.get_xdata()) == 4
        assert len(law.get_xdata()) + len(beyond.get_xdata()) == 61 + 1  # x = 4 in both
        assert len(fig.axes[0].collections) >= 2  # one band per group (plus error bars)
        ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        assert ticks == ["1", "2", "4", "8", "16"]
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "dask / knn: amdahl, R² = 0.981" in texts
    finally:
        _close(fig)


def test_scaling_series_from_an_analysis_group() -> None:
    from analysis.scaling import ModelFit, Prediction, ScalingGroup, ScalingLevel

    levels = tuple(
        ScalingLevel(w, 5, _law(w), _law(w), 1.0, 1.0, 1.0, None, None) for w in (1, 2, 4)
    )
    preds = tuple(
        Prediction(m, x, _law(x), _law(x) - 1, _law(x) + 1, x in (1, 2, 4))
        for m in ("amdahl", "usl")
        for x in (1.0, 2.0, 3.0, 4.0, 8.0, 16.0)
    )
    fits = (
        ModelFit("amdahl", (), 0.97, 1.0, 1.0, 3, 15),
        ModelFit("usl", (), 0.5, 9.0, 1.0, 3, 15),
    )
    group = ScalingGroup(("dask",), levels, fits, (), preds, "amdahl", None, None)
    s = ScalingSeries.from_group(group, "dask", measured_ci=[(1.0, 2.0)] * 3, marks=(4.0, 16.0))
    assert [p.x for p in s.measured] == [1, 2, 4] and s.measured[0].low == 1.0
    assert [p.x for p in s.curve] == [1.0, 2.0, 3.0, 4.0, 8.0, 16.0]
    assert [p.x for p in s.predicted] == [16.0]  # 4 was measured
    assert s.model == "amdahl, R² = 0.970"
    _check_svg(scaling_plot([s]))


def test_scaling_plot_nonfinite_empty_and_hostile() -> None:
    bad = ScalingSeries(HOSTILE, [FitPoint(1, 10.0), FitPoint(2, NAN), FitPoint(4, 5.0, NAN, 6.0)])
    fig = scaling_plot([bad], x_label="$x$", title=HOSTILE)
    assert fig.dropped == 2
    _assert_safe_svg(fig.svg)
    built, _ = _build_scaling_plot([bad], x_label="$x$", title_text=HOSTILE)
    try:
        _assert_literal(built, ["$x$", HOSTILE])
    finally:
        _close(built)
    with pytest.raises(FigureDataError):
        scaling_plot([ScalingSeries("a", [FitPoint(NAN, 1.0)])])
    with pytest.raises(FigureDataError):
        scaling_plot([])


# ---------------------------------------------------------------- cost and time

COSTS = [
    CostPoint("m4.xlarge / spark / nodes=1", 300.0, 0.02),
    CostPoint("m4.2xlarge / spark / nodes=2", 180.0, 0.03),
    CostPoint("m4.2xlarge / tensorflow", 250.0, 0.035),  # dominated by the one above
    CostPoint("m4.4xlarge / spark / nodes=4", 120.0, 0.05),
    CostPoint("m4.10xlarge / spark / nodes=8", 200.0, 0.2),  # dominated
]


def test_pareto_plot_front_highlighted_and_numbered() -> None:
    _deterministic(lambda: pareto_plot(COSTS))
    fig, dropped = _build_pareto_plot(COSTS)
    try:
        assert dropped == 0
        (front,) = _lines_by_gid(fig, "front")
        (rest,) = _lines_by_gid(fig, "dominated")
        assert list(front.get_xdata()) == [120.0, 180.0, 300.0]  # from the fastest
        assert len(rest.get_xdata()) == 2
        numbers = [t.get_text() for t in fig.axes[0].texts]
        assert numbers == ["1", "2", "3"]
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "1  m4.4xlarge / spark / nodes=4" in texts
        assert "3  m4.xlarge / spark / nodes=1" in texts
    finally:
        _close(fig)


def test_pareto_plot_given_flags_nonfinite_and_empty() -> None:
    flags = [True, False, False, False, False]
    points = [*COSTS, CostPoint("nan", NAN, 1.0)]
    fig, dropped = _build_pareto_plot(points, [*flags, True])
    try:
        assert dropped == 1
        (front,) = _lines_by_gid(fig, "front")
        assert list(front.get_xdata()) == [300.0]
    finally:
        _close(fig)
    with pytest.raises(ValueError, match="flags"):
        pareto_plot(COSTS, [True])
    with pytest.raises(FigureDataError):
        pareto_plot([CostPoint("x", INF, 1.0)])
    with pytest.raises(FigureDataError):
        pareto_plot([])


def test_pareto_plot_hostile_labels() -> None:
    points = [CostPoint(lb, 10.0 + i, 5.0 - i) for i, lb in enumerate(HOSTILE_LABELS)]
    fig, _ = _build_pareto_plot(points, title_text=HOSTILE, log_x=True, log_y=True)
    try:
        _assert_literal(fig, HOSTILE_LABELS)
    finally:
        _close(fig)
    _assert_safe_svg(pareto_plot(points, title=HOSTILE).svg)


# ---------------------------------------------------------------- every figure

BUILDERS: dict[str, Callable[[], tuple[Any, int]]] = {
    "distribution": lambda: _build_distribution(
        [("p", [Trials("a", [1.0, 2.0]), Trials("b", [float(v) for v in range(12)])])], metric="m"
    )[:2],
    "line_plot": lambda: _build_line_plot(
        _series(), x_label="x", y_label="y", lower=_series(), lower_y_label="z"
    ),
    "curves_plot": lambda: _build_curves_plot(_curve_rows()),
    "resource_plot": lambda: _build_resource_plot(_resources()),
    "scatter_fit": lambda: _build_scatter_fit(SCATTER, x_label="x", y_label="y"),
    "scaling_plot": lambda: _build_scaling_plot([_scaling()]),
    "pareto_plot": lambda: _build_pareto_plot(COSTS),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_text_is_at_least_9pt_at_6_5_inches(name: str) -> None:
    fig, _ = BUILDERS[name]()
    try:
        assert fig.get_figwidth() == pytest.approx(6.5)
        sizes = [t.get_fontsize() for t in _texts(fig)]
        assert sizes and min(sizes) >= 9
    finally:
        _close(fig)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_rendered_pdf_is_vector(name: str) -> None:
    from reports.figures_base import render

    fig, _ = BUILDERS[name]()
    pdf = render(fig).pdf
    assert b"/Subtype /Image" not in pdf
    assert b"/Type /Font" in pdf  # text as embedded font glyphs, not pixels


def test_two_figures_share_no_ids() -> None:
    def ids(svg: str) -> set[str]:
        return set(re.findall(r'\sid="([^"]+)"', svg))

    a = line_plot(_series(1), x_label="x", y_label="y").svg
    b = line_plot(_series(2), x_label="x", y_label="y").svg
    assert ids(a) and ids(b) and not ids(a) & ids(b)
