"""Reports: analysis results -> one context -> HTML, LaTeX or PDF (see :func:`build_report`).

Imports are lazy so that ``report --help`` stays instant.
"""

from __future__ import annotations

from typing import Any

from reports.errors import ReportError

__all__ = ["ReportError", "ReportResult", "build_report"]


def __getattr__(name: str) -> Any:
    if name in ("ReportResult", "build_report"):
        from reports import build

        return getattr(build, name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
