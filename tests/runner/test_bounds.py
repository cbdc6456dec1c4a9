"""Values no run can mean: refused before anything starts or is written, one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import MAX_COUNTS, Config
from runner.errors import RunnerError
from tests.conftest import run_cli

CASES = [
    (["-e", "default", "--timeout", "nan"], "--timeout must be a number of seconds"),
    (["-e", "default", "--timeout", "inf"], "--timeout must be a number of seconds"),
    (["-e", "default", "--timeout", "1e308"], "at most 604,800"),
    (["-e", "default", "--timeout", "-1"], "--timeout must be"),
    (["-e", "default", "--n", "1000000000"], "--n must be an integer from 1 to 1,000,000"),
    (["-e", "default", "--warmup", "10000000"], "--warmup must be an integer from 0"),
    (["-e", "default", "--until-ci", "5%", "--max-n", "10000000"], "--max-n must be"),
    (["-e", "default", "--engine", ""], "--engine has an empty name"),
    (["--engine", "local,", "--workload", "knn"], "--engine has an empty name"),
    (["--workload", ""], "--workload has an empty name"),
    (["--engine", "dask", "--workers", "100000"], "workers must be an integer from 1 to 1,024"),
    (["--engine", "dask", "--threads", "5000"], "threads_per_worker must be an integer from 1"),
    (["-e", "default", "--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    (["-e", "default", "--seed", "4294967296"], "--seed must be an integer >= 0 and at most"),
    (["-e", ""], "--experiment is empty"),
    (["--workload", "knn", "--param", "foo=2"], "--param foo: knn takes no parameter foo"),
]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_unusable_run_options_are_refused(tmp_path: Path, args: list[str], needle: str) -> None:
    db = tmp_path / "r.duckdb"
    proc = run_cli("runner", "trials", *args, "--db", db, "--quiet", timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("timeout", "nan", "timeout must be a number of seconds"),
        ("timeout", "inf", "timeout must be a number of seconds"),
        ("timeout", "1e308", "at most 604,800"),
        ("n", "10000000", "n must be an integer from 1 to 1,000,000"),
        ("n", "2.5", "n must be an integer"),
        ("warmup", "-1", "warmup must be an integer from 0"),
    ],
)
def test_unusable_spec_values_are_refused(tmp_path: Path, key: str, value: str, needle: str):
    spec = tmp_path / "t.toml"
    spec.write_text(
        f'name = "t"\n{key} = {value}\n[[matrix]]\nengine = "local"\nworkload = "knn"\n'
    )
    db = tmp_path / "r.duckdb"
    proc = run_cli("runner", "trials", "-e", spec, "--db", db, "--quiet", timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "t.toml" in lines[0], proc.stderr
    assert not db.exists()


def test_bounds_are_the_configuration_checks() -> None:
    base = {"engine": "dask", "workload": "knn", "experiment": "x", "seed": 0}
    for key, top in MAX_COUNTS.items():
        assert Config.from_mapping({**base, key: top}).to_dict()[key] == top
        with pytest.raises(RunnerError, match=f"{key} must be an integer from 1 to {top:,}"):
            Config.from_mapping({**base, key: top + 1})
    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(RunnerError, match="memory_gb must be a finite number > 0"):
            Config.from_mapping({**base, "memory_gb": bad})


def test_a_grid_over_the_limit_needs_yes(tmp_path: Path) -> None:
    from runner.config import MAX_CONFIGS

    spec = tmp_path / "big.toml"
    levels = ",".join(str(k) for k in range(1, MAX_CONFIGS + 2))
    spec.write_text(
        f'name = "big"\n[[matrix]]\nengine = "local"\nworkload = "knn"\nk = [{levels}]\n'
    )
    db = tmp_path / "r.duckdb"
    proc = run_cli("runner", "trials", "-e", spec, "--db", db, "--dry-run", timeout=120)
    assert proc.returncode == 2
    assert f"more than {MAX_CONFIGS:,} configurations" in proc.stderr and "--yes" in proc.stderr
    proc = run_cli("runner", "trials", "-e", spec, "--db", db, "--dry-run", "--yes", "--json",
                   timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    import json

    assert len(json.loads(proc.stdout)["configs"]) == MAX_CONFIGS + 1
    assert not db.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--engine", "local", "--workload", "knn", "--param", "Bad-Name=1"],
        ["-e", "{spec}"],
    ],
)
def test_parameter_names_that_cannot_be_columns_are_refused_first(tmp_path: Path, args):
    spec = tmp_path / "t.toml"
    spec.write_text('name = "t"\n[[matrix]]\nengine = "local"\nworkload = "knn"\n"Bad Name" = 2\n')
    db = tmp_path / "r.duckdb"
    args = [a.format(spec=spec) for a in args]
    proc = run_cli("runner", "trials", *args, "--db", db, "--quiet", timeout=120)
    assert proc.returncode == 2 and "is not a snake_case identifier" in proc.stderr
    assert not db.exists()  # refused before any run is written
