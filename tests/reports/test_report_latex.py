"""LaTeX escaping, the LaTeX Jinja environment, and the latexmk compile."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jinja2
import pytest

from reports.errors import ReportError
from reports.latex import LATEX_ESCAPES, Trusted, compile_pdf, escape_latex, latex_environment

EXPECTED = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


@pytest.mark.parametrize("char", sorted(EXPECTED))
def test_each_special_character_is_escaped(char: str) -> None:
    assert escape_latex(char) == EXPECTED[char]
    assert LATEX_ESCAPES[char] == EXPECTED[char]


def test_plain_text_is_unchanged() -> None:
    assert escape_latex("dask knn 0.5123 workers=2 (n=5)") == "dask knn 0.5123 workers=2 (n=5)"


def test_nothing_is_escaped_twice() -> None:
    # The backslash of an escape is never itself escaped again, in either order.
    assert escape_latex("\\{") == r"\textbackslash{}\{"
    assert escape_latex("{\\}") == r"\{\textbackslash{}\}"
    assert escape_latex(r"\input{/etc/passwd}") == r"\textbackslash{}input\{/etc/passwd\}"
    text = r"_ % & $ # { } ~ ^ \ <script>"
    assert escape_latex(text) == "".join(escape_latex(c) for c in text)


def test_ligatures_and_row_options_are_broken() -> None:
    assert escape_latex("--where") == "-{}-{}where"
    assert escape_latex("[x]") == "{[}x{]}"


def test_line_breaks_and_control_characters() -> None:
    assert escape_latex("a\n\nb\tc") == "a  b c"
    assert escape_latex("a\x00b") == "ab"


def test_unicode_outside_latin1_is_shown_as_code_point() -> None:
    assert escape_latex("é–") == "é–"
    assert escape_latex("\U0001f600") == "{[}U+1F600{]}"


def test_trusted_and_none() -> None:
    assert escape_latex(Trusted(r"\textbf{x}")) == r"\textbf{x}"
    assert escape_latex(None) == ""
    assert escape_latex(0.5) == "0.5"
    # Deriving a new string from a trusted one loses the trust.
    assert escape_latex(Trusted("a_b").upper()) == r"A\_B"


def _render(source: str, **context: object) -> str:
    return latex_environment().from_string(source).render(**context)


def test_environment_escapes_every_value() -> None:
    out = _render(r"\textbf{\VAR{x}} \VAR{t}", x="50% & $5_", t=Trusted(r"\emph{ok}"))
    assert out == r"\textbf{50\% \& \$5\_} \emph{ok}"


def test_environment_blocks_comments_and_no_line_statements() -> None:
    source = (
        "\\#{ a comment }\n\\BLOCK{for r in rows}\n\\VAR{r} \\\\\n\\BLOCK{endfor}\n"
        "# kept\n%% kept\n"
    )
    assert _render(source, rows=["a_b", "c"]) == "a\\_b \\\\\nc \\\\\n# kept\n%% kept\n"


def test_environment_is_strict() -> None:
    with pytest.raises(jinja2.UndefinedError):
        _render(r"\VAR{missing}")


def test_package_templates_load() -> None:
    env = latex_environment()
    for name in ("report.tex.j2", "partials/blocks.tex.j2"):
        env.get_template(name)


def test_compile_pdf_makes_a_pdf() -> None:
    source = (
        "\\documentclass{article}\\begin{document}" + escape_latex("x_1 & 50%") + "\\end{document}"
    )
    assert compile_pdf(source).startswith(b"%PDF")


def test_compile_failure_points_at_the_log() -> None:
    source = "\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}"
    with pytest.raises(
        ReportError, match=r"LaTeX failed .*Undefined control sequence.*report\.log"
    ):
        compile_pdf(source)


def test_shell_escape_is_off(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    source = (
        "\\documentclass{article}\\begin{document}"
        f"\\immediate\\write18{{touch {marker}}}"
        "shell=\\the\\pdfshellescape\\end{document}"
    )
    pdf = tmp_path / "shell.pdf"
    pdf.write_bytes(compile_pdf(source))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "shell=0" in text
    assert not marker.exists()
