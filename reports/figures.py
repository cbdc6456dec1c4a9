"""The report's figures, drawn with matplotlib from plain precomputed data (numbers and labels,
never a database connection), each rendered to a deterministic scalable SVG and a vector PDF.

=================  =========================================================================
``distribution``   box per group of ≥ 10 trials, dots (every trial) below 10
``boxplot``        every group a box (the general report's figure)
``line_plot``      series of (x, y, CI) against x; optional second panel sharing x
``curves_plot``    loss and accuracy per epoch (train and validation) from ``curves`` rows
``scatter_fit``    regression scatter with the fitted line, confidence and prediction bands
``scaling_plot``   medians per worker count, fitted scaling law with its band, predictions
``pareto_plot``    cost against time, the Pareto front highlighted and numbered
``resource_plot``  CPU % and RSS over time within trials (``samples`` rows)
=================  =========================================================================

Rule for empty input: :class:`FigureDataError` (a ``ValueError``) when nothing finite is left
to draw. Non-finite values are dropped, counted in ``RenderedFigure.dropped`` and noted under
the figure. Labels from the database are shortened, wrapped and kept out of mathtext.
"""

from __future__ import annotations

from reports.figures_base import FigureDataError, RenderedFigure, _plain_label
from reports.figures_cost import CostPoint, pareto_plot
from reports.figures_dist import DOT_BELOW, Trials, boxplot, distribution
from reports.figures_fit import (
    BandPoint,
    FitPoint,
    LineFit,
    ScalingSeries,
    linear_fit,
    scaling_plot,
    scatter_fit,
)
from reports.figures_lines import (
    CurveRow,
    Point,
    ResourceSeries,
    Series,
    curves_plot,
    line_plot,
    resource_plot,
)

__all__ = [
    "DOT_BELOW",
    "BandPoint",
    "CostPoint",
    "CurveRow",
    "FitPoint",
    "LineFit",
    "ScalingSeries",
    "linear_fit",
    "pareto_plot",
    "scaling_plot",
    "scatter_fit",
    "FigureDataError",
    "Point",
    "RenderedFigure",
    "ResourceSeries",
    "Series",
    "Trials",
    "_plain_label",
    "boxplot",
    "curves_plot",
    "distribution",
    "line_plot",
    "resource_plot",
]
