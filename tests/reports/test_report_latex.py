"""LaTeX escaping, the LaTeX Jinja environment, and the latexmk compile."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jinja2
import pytest

from reports.blocks import Column, Section, Table
from reports.errors import ReportError
from reports.latex import (
    LATEX_ESCAPES,
    Trusted,
    compile_pdf,
    escape_latex,
    latex_environment,
    table_parts,
)

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


def _wide_table(n_factors: int = 30, keys: int = 2) -> Table:
    """A summary-like table: Source, Workload, many factor columns, then numbers."""
    factors = [f"factor_number_{i}" for i in range(n_factors)]
    columns = (
        Column("Source", wrap=True),
        Column("Workload", wrap=True),
        *(Column(f, wrap=True) for f in factors),
        *(Column(h, num=True) for h in ("n", "mean", "sd", "median", "95% CI")),
    )
    rows = tuple(
        (
            f"published:00{r % 5}",
            "mlp",
            *(f"v{r}_{i}" for i in range(n_factors)),
            "10",
            "1.234",
            "0.05678",
            "1.201",
            "[1.10, 1.37]",
        )  # fmt: skip
        for r in range(12)
    )
    return Table(id="summary", caption="Summary", columns=columns, rows=rows, keys=keys)


def test_a_table_too_wide_for_the_page_is_split_into_parts_repeating_its_keys() -> None:
    table = _wide_table()
    parts = table_parts(table)
    assert len(parts) > 1
    names = [c.label for c in table.columns]
    seen: list[str] = []
    for k, part in enumerate(parts, 1):
        labels = [c.label for c in part.columns]
        assert labels[:2] == ["Source", "Workload"]
        seen += labels[2:]
        assert part.caption == f"Summary (part {k} of {len(parts)})"
        assert part.id == ("summary" if k == 1 else f"summary-{k}")
        for r, row in enumerate(part.rows):
            assert list(row) == [table.rows[r][names.index(lb)] for lb in labels]
    assert seen == names[2:]  # every other column once, in order
    # a table that fits, one without keys, and one with header groups stay whole
    small = _wide_table(n_factors=3)
    assert table_parts(small) == [small]
    assert table_parts(_wide_table(keys=0)) == [_wide_table(keys=0)]


@pytest.mark.skipif(
    subprocess.run(["which", "latexmk"], capture_output=True).returncode != 0,
    reason="needs latexmk",
)
def test_split_parts_fit_the_page(tmp_path: Path) -> None:
    section = Section("s", "Summary", blocks=(_wide_table(),))
    source = (
        latex_environment()
        .get_template("report.tex.j2")
        .render(
            title="t", database="d", run_ids="r", n_trials="1", intro=[], sections=[section], toc=[]
        )  # fmt: skip
    )
    (tmp_path / "report.tex").write_text(source, encoding="utf-8")
    subprocess.run(
        [
            "latexmk",
            "-pdf",
            "-interaction=nonstopmode",
            "-halt-on-error",
            "-no-shell-escape",
            "report.tex",
        ],  # fmt: skip
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=True,
    )
    log = (tmp_path / "report.log").read_text(encoding="latin-1")
    assert source.count("(part ") > 1
    assert "Overfull" not in log
