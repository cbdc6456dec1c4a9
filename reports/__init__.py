"""Reports: analysis results -> one context -> HTML, LaTeX or PDF (see :func:`build_report`)."""

from reports.build import ReportResult, build_report
from reports.errors import ReportError

__all__ = ["ReportError", "ReportResult", "build_report"]
