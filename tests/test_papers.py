"""The five papers end to end, as a user runs them: each paper's quick experiment on the real
engines, then its section of the report as a PDF; and the published tables alone as HTML.

Each quick experiment runs once into its own DuckDB file, with its paper's published tables,
then `report build --paper KEY --format pdf` on it (tests/conftest.py's background: beside
other tests, two at a time once these wait); the PDF's text is checked for
the paper's published numbers, our measured cells and every claim's verdicts. Paper 000's database
is README tour's papers.duckdb, which tests/test_tour.py shares: the same quick experiment with
every paper's published tables, so 000's experiment runs once for both.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from reports.claims import OUR_VERDICTS, evaluate_claims, load_claims
from tests.conftest import Background, paper_pdf, run_cli

PAPERS = ("000", "001", "002", "003", "004")
#: A number each paper printed, that its section must show on the published side.
PRINTED = {"000": "3.78", "001": "91.64", "002": "15.25", "003": "137.9", "004": "1183"}

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("key", PAPERS)
def test_quick_experiment_then_paper_pdf(key: str, background: Background) -> None:
    db = background.result(f"paper{key}")  # its job built the PDF too (`report build` exit 0)
    out = paper_pdf(db, key)
    assert out.read_bytes().startswith(b"%PDF")
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(text.split())
    assert PRINTED[key] in flat  # the published table is there
    verdicts = evaluate_claims(db, key)
    assert len(verdicts) == len(load_claims(key))
    # the quick variant runs a reduced grid: some claims need the full one ("no trials"), but
    # our trials reach a test for at least one claim of every paper
    assert all(v.our_verdict in OUR_VERDICTS for v in verdicts)
    assert any(v.our_test not in ("-", "") for v in verdicts), [v.our_detail for v in verdicts]
    for v in verdicts:
        assert v.id in flat, v.id


def test_published_only_html_for_all_papers(tmp_path: Path) -> None:
    db = tmp_path / "published.duckdb"
    imp = run_cli("runner", "import", "published", "--paper", "all", "--db", db, cwd=tmp_path)
    assert imp.returncode == 0, imp.stderr
    out = tmp_path / "papers.html"
    proc = run_cli(
        "report",
        "build",
        "--paper",
        "all",
        "--format",
        "html",
        "--db",
        db,
        "--out",
        out,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    html = out.read_text(encoding="utf-8")
    for key in PAPERS:
        assert PRINTED[key] in html, key
        for claim in load_claims(key):
            assert claim["id"] in html, claim["id"]
    # self-contained: nothing to fetch (XML namespaces of the inline SVGs are not requests)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
