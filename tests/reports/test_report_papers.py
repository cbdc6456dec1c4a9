"""Paper sections: published beside measured, missing cells marked, claims, figures; --paper all
on a fresh database holding only the published tables; the PDF's text holds the numbers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reports import build_report
from runner.published import import_published

from ..conftest import run_cli
from .conftest import PAPERS_DIR, make_paper_db

needs_tex = pytest.mark.skipif(
    shutil.which("latexmk") is None or shutil.which("pdflatex") is None,
    reason="TeX Live (latexmk, pdflatex) not installed",
)
needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="no poppler-utils")


def _mean(rows: list[dict], metric: str, digits: int, **where: object) -> str:
    values = [r[metric] for r in rows if all(r.get(k) == v for k, v in where.items())]
    return f"{np.mean(values):.{digits}f} (n={len(values)})"


@pytest.fixture
def paper_db(tmp_path: Path) -> tuple[Path, list[dict]]:
    path = tmp_path / "p.duckdb"
    return path, make_paper_db(path)


def test_tables_side_by_side(paper_db: tuple[Path, list[dict]], tmp_path: Path) -> None:
    path, rows = paper_db
    out = tmp_path / "p.html"
    build_report(path, fmt="html", out=out, paper="000", papers_dir=PAPERS_DIR)
    html = out.read_text("utf-8")
    # question (escaped), stand-ins, provenance
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "6 Dask workers: 2 cores here" in html
    # Table 2: published 1.00/0.98 beside our mean with n; k = 4..10 not measured: marked
    t2 = html.split('id="p000-t2"')[1].split("</table>")[0]
    knn = {"engine": "local", "workload": "knn"}
    assert '<td class="wrap">1</td><td class="num">1.00</td>' in t2
    assert _mean(rows, "accuracy", 3, params={"k": 1}, **knn) in t2
    assert t2.count("—") == 7 * 3  # k = 4..10, three measured values each
    # Table 3: published seconds; measured wall time means; Ray's CNN not reproducible
    t3 = html.split('id="p000-t3"')[1].split("</table>")[0]
    assert ">3.78<" in t3 and ">15.60<" in t3
    mean = _mean(rows, "train_s", 3, engine="dask", workload="knn", workers=2)
    assert mean in t3
    assert "not reproducible on this machine: test reason: no GPU here" in t3
    # claims table from evaluate_claims; figures drawn
    assert "000-3" in html and "on our trials" in html
    assert html.count("<figure") >= 4


def test_paper_all_on_published_only(tmp_path: Path) -> None:
    db = tmp_path / "fresh.duckdb"
    import_published(db, "all")
    out = tmp_path / "all.html"
    proc = run_cli("report", "build", "--paper", "all", "-f", "html", "--db", db, "--out", out)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text("utf-8")
    for key in ("000", "001", "002", "003", "004"):
        assert f'id="paper-{key}"' in html


def test_paper_all_with_test_descriptions(tmp_path: Path) -> None:
    db = tmp_path / "fresh.duckdb"
    import_published(db, "all")
    out = tmp_path / "all.html"
    build_report(db, fmt="html", out=out, paper="all", papers_dir=PAPERS_DIR)
    html = out.read_text("utf-8")
    t2 = html.split('id="p000-t2"')[1].split("</table>")[0]
    assert ">0.98<" in t2 and "(n=" not in t2  # published filled, measured all marked
    assert "none yet" in html


@needs_tex
@needs_pdftotext
def test_pdf_text_holds_both_sides(paper_db: tuple[Path, list[dict]], tmp_path: Path) -> None:
    path, rows = paper_db
    out = tmp_path / "p.pdf"
    build_report(path, fmt="pdf", out=out, paper="000", papers_dir=PAPERS_DIR)
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    for printed in ("3.78", "2.73", "2.69", "15.60", "13.10"):
        assert printed in text
    assert _mean(rows, "train_s", 3, engine="dask", workload="knn", workers=2) in text
    assert "not reproducible" in text
    outline = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True).stdout
    assert "Pages:" in outline
