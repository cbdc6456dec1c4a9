"""The HTML report in a real headless Chromium (Debian's ``chromium``, driven over the DevTools
protocol): no console errors or exceptions, no requests beyond the file itself, every figure
rendered with a non-zero size, no page-wide horizontal scroll on a 390 px phone (wide tables
scroll inside their wrapper); screenshots at 1280 px and 390 px (kept in
``$TRIALKIT_SCREENSHOTS`` when set)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reports import build_report

from .cdp import find_browser, inspect_page
from .conftest import PAPERS_DIR, make_db, make_paper_db

pytest.importorskip("websockets")
needs_chromium = pytest.mark.skipif(find_browser() is None, reason="chromium not installed")


def _shots(tmp_path: Path, name: str) -> dict[int, Path]:
    folder = Path(os.environ.get("TRIALKIT_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return {1280: folder / f"{name}-1280.png", 390: folder / f"{name}-390.png"}


def _check(html: Path, tmp_path: Path, name: str, min_figures: int) -> None:
    text = html.read_text("utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)  # self-contained
    assert "<link" not in text and "@import" not in text
    report = inspect_page(html, _shots(tmp_path, name))
    assert report.console_errors == []
    assert report.exceptions == []
    assert set(report.requests) <= {html.resolve().as_uri()}, report.requests
    figures = [f for f in report.figure_sizes if f[0] and f[0] != "svg"]
    assert len(figures) >= min_figures
    for fig_id, width, height in report.figure_sizes:
        assert width > 100 and height > 50, fig_id
    assert report.overflow_px <= 1, report.overflow_px  # tables scroll in their wrapper
    for path in report.screenshots.values():
        assert path.read_bytes().startswith(b"\x89PNG")


@needs_chromium
def test_paper_report_in_chromium(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    make_paper_db(db)
    out = tmp_path / "paper.html"
    build_report(db, fmt="html", out=out, paper="000", papers_dir=PAPERS_DIR)
    _check(out, tmp_path, "paper000", min_figures=4)


@needs_chromium
def test_general_report_in_chromium(tmp_path: Path) -> None:
    db = tmp_path / "g.duckdb"
    make_db(db)
    out = tmp_path / "general.html"
    build_report(db, fmt="html", out=out)
    _check(out, tmp_path, "general", min_figures=1)
