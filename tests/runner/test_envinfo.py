"""runner.envinfo: what collect_env records about this machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

import pytest

from runner import envinfo
from runner.envinfo import collect_env

# envinfo's own file, not the ``runner`` package's: under pytest ``runner`` can resolve to a
# namespace package (tests/runner) without a __file__, while its modules still load from the source.
CHECKOUT = Path(envinfo.__file__).resolve().parent.parent
IS_CHECKOUT = (
    shutil.which("git") is not None
    and subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True
    ).returncode
    == 0
)


def test_keys_and_types() -> None:
    env = collect_env()
    assert isinstance(env["python"], str) and re.match(r"^\d+\.\d+\.\d+", env["python"])
    assert isinstance(env["implementation"], str) and env["implementation"]
    assert isinstance(env["packages"], dict)
    assert env["packages"]["duckdb"] == metadata.version("duckdb")
    assert env["packages"]["pandas"] == metadata.version("pandas")
    assert all(isinstance(v, str) for v in env["packages"].values())
    assert env["cpu_model"] is None or isinstance(env["cpu_model"], str)
    assert env["logical_cores"] == os.cpu_count()
    assert isinstance(env["memory_gb"], float) and env["memory_gb"] > 0
    assert isinstance(env["os"], str) and env["os"]
    assert isinstance(env["hostname"], str)
    assert isinstance(env["blas"], list)
    assert env["git_dirty"] in (True, False, None)
    assert env["java"] is None or (isinstance(env["java"], str) and "\n" not in env["java"])
    json.dumps(env)  # stored as JSON in runs.env


def test_not_installed_packages_left_out() -> None:
    packages = collect_env()["packages"]
    for name in ("pyspark", "ray", "tensorflow"):
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            assert name not in packages


@pytest.mark.skipif(not IS_CHECKOUT, reason="trialkit is not running from a git checkout")
def test_git_commit_of_checkout() -> None:
    env = collect_env()
    head = subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])
    assert env["git_commit"] == head
    assert isinstance(env["git_dirty"], bool)


def test_git_commit_independent_of_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = collect_env()["git_commit"]
    monkeypatch.chdir(tmp_path)  # not a repository: the commit still comes from the source folder
    assert collect_env()["git_commit"] == expected


@pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH")
def test_java_version_line() -> None:
    assert "version" in collect_env()["java"]


def test_fast() -> None:
    collect_env()  # warm caches (metadata, page cache)
    start = time.perf_counter()
    collect_env()
    assert time.perf_counter() - start < 1.0  # target 0.5 s; slack for loaded CI machines
