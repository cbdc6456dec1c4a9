"""README's "A short tour", run verbatim: every line of its code block, as a user types it, on
the databases the tour's own `runner` lines leave.

The block is read from README.md (comments stripped, backslash-continued lines joined), so the
test follows the README. `runner trials --n 10` (the first command) makes results.duckdb;
`analyze compare RUN1 RUN2` needs two runs of the default experiment: it runs on a copy of that
database with a second, shorter run (`runner trials --n 3`) appended, so every other line sees
exactly what the first command leaves. The `--db papers.duckdb` lines use papers.duckdb from the
tour's `runner trials --experiment 000 --quick` and `runner import published` lines. Everything
is written into a temporary directory (reports too: they are built there).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.engine

README = Path(__file__).resolve().parent.parent / "README.md"
TOOLS = ("runner", "analyze", "report")
#: lines whose failure is known and owned by another module: line -> reason (xfail, strict)
KNOWN: dict[str, str] = {}


def tour_lines(text: str | None = None) -> list[list[str]]:
    """The commands of README's "A short tour" code block, each as argv: comments stripped,
    backslash-continued lines joined, blank lines dropped."""
    text = README.read_text(encoding="utf-8") if text is None else text
    section = text.split("## A short tour", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert match, "README's tour has no ```bash block"
    joined = re.sub(r"\\\n", " ", match.group(1))
    commands = [shlex.split(line, comments=True) for line in joined.splitlines()]
    commands = [c for c in commands if c]
    assert all(c[0] in TOOLS for c in commands), commands
    return commands


def _is_setup(argv: list[str]) -> bool:
    """The tour's lines that write a database: run once by the fixture, in README order."""
    return argv[:2] in (["runner", "trials"], ["runner", "import"])


LINES = tour_lines()
CASES = [c for c in LINES if not _is_setup(c)]


def test_the_tour_parses() -> None:
    """The block runs the README's one command first among those that write a database, and
    has analyze and report lines."""
    assert [c for c in LINES if _is_setup(c)][0] == ["runner", "trials", "--n", "10"]
    assert sum(c[0] == "analyze" for c in CASES) >= 10
    assert any(c[0] == "report" for c in CASES)
    block = "## A short tour\n```bash\nanalyze summary \\\n  --by engine  # c\n\n# d\n```\n"
    assert tour_lines(block) == [["analyze", "summary", "--by", "engine"]]


def _failed(argv: list[str], proc: subprocess.CompletedProcess[str]) -> str:
    """What a failing line said, untruncated by pytest's assertion rewriting."""
    return (
        f"`{' '.join(argv)}` exited {proc.returncode}\n--- stdout (end)\n{proc.stdout[-3000:]}"
        f"\n--- stderr (end)\n{proc.stderr[-3000:]}"
    )


def _ok(argv: list[str], cwd: Path, timeout: float = 1200) -> str:
    proc = run_cli(argv[0], *argv[1:], cwd=cwd, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(_failed(argv, proc), pytrace=False)
    return proc.stdout


def _run_ids(db: Path) -> list[str]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT run_id FROM runs ORDER BY started_at").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"tour": dir, "two": dir}``: the tour's databases in ``tour`` (every runner line of the
    block, in order) and, in ``two``, results.duckdb with a second run of the default experiment."""
    here = tmp_path_factory.mktemp("tour")
    for argv in LINES:
        if _is_setup(argv):
            _ok(argv, here)
    two = tmp_path_factory.mktemp("two")
    shutil.copy(here / "results.duckdb", two / "results.duckdb")
    _ok(["runner", "trials", "--n", "3", "--quiet"], two)
    return {"tour": here, "two": two}


def _case_id(argv: list[str]) -> str:
    return " ".join(argv)[:90]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN[" ".join(c)]))
        if " ".join(c) in KNOWN
        else c
        for c in CASES
    ],
    ids=_case_id,
)
def test_tour_line(tour: dict[str, Path], argv: list[str]) -> None:
    cwd = tour["tour"]
    if "RUN1" in argv:
        cwd = tour["two"]
        first, second = _run_ids(cwd / "results.duckdb")
        argv = [first if a == "RUN1" else second if a == "RUN2" else a for a in argv]
    proc = run_cli(argv[0], *argv[1:], cwd=cwd, timeout=900)
    allowed = {0}
    if argv[:2] == ["analyze", "compare"] and "--fail-on-regression" in argv:
        # exit 1 is this option's documented answer when a configuration got slower by 5% or
        # more: two runs on a shared 2-core machine may legitimately differ that much
        allowed = {0, 1}
    if proc.returncode not in allowed:
        pytest.fail(_failed(argv, proc), pytrace=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 1:
        assert proc.stderr.startswith("regression of 5% or more"), proc.stderr
    if argv[0] == "analyze":
        assert proc.stdout.strip(), "no output"
        if "--format" not in argv and "--wide" not in argv:
            long = [line for line in proc.stdout.splitlines() if len(line) > 120]
            assert not long, long
