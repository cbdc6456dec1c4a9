"""The real ``analyze`` command on a tmp_path database."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from analysis.cli import app

ANALYZE = Path(sys.executable).parent / "analyze"
runner = CliRunner()


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANALYZE), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_anova_json(db, groups):
    result = invoke("anova", "--group", "workers", "--db", db, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "metric",
        "group",
        "statistic",
        "p_value",
        "df_num",
        "df_den",
        "eta_sq",
        "n",
        "where",
        "groups",
    }
    assert data["statistic"] == pytest.approx(stats.f_oneway(*groups.values()).statistic)
    assert [g["level"] for g in data["groups"]] == ["1", "2", "4"]


def test_anova_table_and_csv(db):
    table = invoke("anova", "--group", "workers", "--db", db)
    assert table.exit_code == 0 and "F(2, 33)" in table.stdout
    csv = invoke("anova", "--group", "workers", "--db", db, "--format", "csv")
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert list(frame.columns) == ["level", "n", "mean", "sd"]


def test_ttest_json_and_where(db, groups):
    result = invoke(
        "ttest",
        "--group", "workers", "--a", "1", "--b", "2", "--student",
        "--where", "engine=dask", "--where", "workers<=2",
        "--db", db, "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("statistic", "p_value", "df", "mean_diff", "ci_low", "ci_high", "cohens_d"):
        assert key in data
    assert data["equal_var"] is True and data["where"] == ["engine=dask", "workers<=2"]
    ref = stats.ttest_ind(groups[1], groups[2], equal_var=True)
    assert data["statistic"] == pytest.approx(ref.statistic, rel=1e-9)


def test_summary_formats(db):
    result = invoke("summary", "--by", "engine, workers", "--metric", "train_s", "--db", db,
                    "--format", "csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert list(frame.columns[:3]) == ["engine", "workers", "n"]
    assert list(frame["failed"]) == [0, 1, 1]
    data = json.loads(invoke("summary", "--db", db, "--format", "json").stdout)
    assert data["by"][0] == "engine" and len(data["rows"]) == 3
    assert "Summary by" in invoke("summary", "--db", db).stdout


def test_json_nan_becomes_null(make_db, trials_for):
    path = make_db(trials_for({1: [1.0]}))
    result = invoke("summary", "--by", "workers", "--metric", "train_s", "--db", path,
                    "--format", "json")  # fmt: skip
    row = json.loads(result.stdout)["rows"][0]
    assert row["train_s_sd"] is None and row["accuracy_mean"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["anova", "--group", "wrkers"], "did you mean workers"),
        (["anova", "--group", "workers", "--metric", "engine"], "not numeric"),
        (["anova", "--group", "engine"], "has only one level"),
        (["anova", "--group", "workers", "--where", "workers"], "COLUMN OP VALUE"),
        (["anova", "--group", "workers", "--where", "workers=x"], "not a number"),
        (["anova", "--group", "workers", "--where", "workers=64"], "no trials match"),
        (["ttest", "--group", "workers", "--a", "1", "--b", "9"], "levels present: 1, 2, 4"),
        (["summary", "--by", "nope"], "--by 'nope' is not a column"),
    ],
)
def test_user_errors_exit_2_one_line(db, file_hash, args, needle):
    before = file_hash(db)
    proc = run(*args, "--db", db)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert file_hash(db) == before


def test_missing_db_exit_2_creates_nothing(tmp_path):
    path = tmp_path / "none.duckdb"
    proc = run("anova", "--group", "workers", "--db", path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no database at")
    assert "Traceback" not in proc.stderr and not path.exists()


def test_bad_option_value_exit_2(db, file_hash):
    before = file_hash(db)
    proc = run("anova", "--group", "workers", "--db", db, "--format", "xml")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert file_hash(db) == before


def test_subcommand_names_and_help():
    proc = run("--help")
    assert proc.returncode == 0
    for name in ("anova", "ttest", "summary"):
        assert name in proc.stdout
