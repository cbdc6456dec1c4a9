"""Project-wide checks: lint clean, and the CLIs' --help stays light (no engine imports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BIN, run_cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "sklearn",
    "dask",
    "distributed",
    "pyspark",
    "ray",
    "tensorflow",
    "statsmodels",
    "matplotlib",
    "scipy",
    "pandas",
)


def test_ruff_clean() -> None:
    ruff = BIN / "ruff"
    if not ruff.exists():
        pytest.skip("ruff not installed (pip install 'trialkit[test]')")
    proc = subprocess.run([str(ruff), "check", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_cli_modules_import_no_heavy_libraries() -> None:
    code = (
        "import sys, runner.cli, analysis.cli, reports.cli; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("tool", ["runner", "analyze", "report"])
def test_help_works(tool: str) -> None:
    proc = run_cli(tool, "--help")
    assert proc.returncode == 0
    assert "Usage" in proc.stdout


def test_subcommand_names_are_kept() -> None:
    proc = run_cli("runner", "trials", "--help")
    assert proc.returncode == 0 and "--n" in proc.stdout


def test_list_engines_shows_the_matrix() -> None:
    proc = run_cli("runner", "list", "engines")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["engine", "installed"]
    assert any(line.startswith("local") and "yes" in line for line in lines)
    assert any(line.startswith("dask") for line in lines)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["runner", "trials", "--n", "x"], "'--n'"),
        (["runner", "--bogus"], "--bogus"),
        (["analyze", "anova", "--group", "workers", "--posthoc", "scheffe"], "scheffe"),
        (["analyze", "ttest", "--group", "engine"], "--a"),
        (["report", "build", "--format", "docx"], "docx"),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path, args: list[str], needle: str) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / args[0]), *args[1:]],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert "--help" in lines[0] and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("tool", ["runner", "analyze", "report"])
def test_no_arguments_prints_help(tool: str) -> None:
    proc = run_cli(tool)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stdout.count("Usage") == 1, proc.stdout  # printed once, not twice
