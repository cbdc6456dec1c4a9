"""Engine ``ray`` for real: `runner trials` on a local Ray runtime and on an existing cluster
started with `ray start`, into a tmp DuckDB. No mocks."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import (
    BIN,
    JOBS,
    Background,
    Job,
    assert_user_error,
    free_port,
    remember_run,
    run_cli,
)

pytest.importorskip("ray")

EXPERIMENT = """\
name = "ray-test"
description = "KNN and scikit-learn's MLP on digits, on Ray with 1 and 2 actors."
n = 1
warmup = 0
seed = 0
timeout = 300

[defaults]
dataset = "digits"
threads_per_worker = 1
data_fraction = 1.0

[workloads.knn]
k = 5

[workloads.mlp]
hidden = [100]
activation = "relu"
solver = "adam"
epochs = 200

[[matrix]]
engine = "ray"
workload = ["knn", "mlp"]
workers = [1, 2]
"""


def _rows(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT t.workload, t.workers, t.status, t.setup_s, t.train_s, o.accuracy, "
            "o.workers_used FROM trials t JOIN observations o USING (trial_id) "
            "ORDER BY t.workload, t.workers"
        ).fetchall()
    finally:
        con.close()


def _assert_good(rows: list[tuple], min_setup_s: float) -> None:
    for workload, workers, status, setup_s, train_s, accuracy, used in rows:
        where = (workload, workers)
        assert status == "ok", where
        assert setup_s > min_setup_s, where  # the Ray runtime / actors start in setup
        assert train_s > 0, where
        assert accuracy >= (0.97 if workload == "knn" else 0.90), (where, accuracy)
        assert used == workers, (where, used)  # every actor scored its test shards


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray") / "ray.toml"
    path.write_text(EXPERIMENT)
    return path


def _local_run(tmp: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """EXPERIMENT on a local Ray runtime: the database and the finished `runner trials`."""
    experiment = tmp / "ray.toml"
    experiment.write_text(EXPERIMENT)
    db = tmp / "results.duckdb"
    args = ("trials", "-e", experiment, "--n", "1", "--warmup", "0", "--db", db, "-q")
    return db, run_cli("runner", *args, timeout=300)


JOBS["ray-local"] = Job(
    _local_run,
    "engines",
    minutes=1.5,
    needed_by=lambda item: item.name == "test_local_runtime_runs_knn_and_mlp_on_one_and_two_actors",
)


@pytest.mark.engine
def test_local_runtime_runs_knn_and_mlp_on_one_and_two_actors(background: Background) -> None:
    db, proc = background.result("ray-local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 ok trials, 0 failed" in proc.stdout
    rows = _rows(db)
    assert [(r[0], r[1]) for r in rows] == [("knn", 1), ("knn", 2), ("mlp", 1), ("mlp", 2)]
    _assert_good(rows, min_setup_s=0.3)
    remember_run(db)


def _wait_for_head_node(address: str, env: dict[str, str], deadline: float) -> None:
    """The head node registers a moment after the GCS opens its port, and `runner trials`
    refuses a cluster with no alive node: wait for it with the same check."""
    from unittest import mock

    from runner.clusters import check_cluster
    from runner.errors import RunnerError

    with mock.patch.dict(os.environ, env):
        while True:
            try:
                check_cluster("ray", address, timeout=5.0)
                return
            except RunnerError as exc:
                assert "no alive node yet" in str(exc), exc
                assert time.monotonic() < deadline, "ray head node not alive in 60 s"
                time.sleep(0.5)


@pytest.fixture
def ray_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A real head node (`ray start --head --block`) in its own session; yields its address and
    the environment a client needs (token authentication on, with a throwaway token)."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="trk-ray-", dir="/tmp")  # short: Ray's socket paths
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
            "--block",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert head.poll() is None, "ray start exited early"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "ray head did not come up in 60 s"
                time.sleep(0.3)
        _wait_for_head_node(f"127.0.0.1:{port}", env, deadline)
        yield f"127.0.0.1:{port}", env
    finally:
        # `ray start --block` stops the processes it started on SIGTERM; kill only its session
        # if it lingers (never `ray stop`, which would stop every Ray on the machine).
        head.terminate()
        try:
            head.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=10)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.engine
def test_existing_cluster_via_ray_address(
    experiment: Path, tmp_path: Path, ray_cluster: tuple[str, dict[str, str]]
) -> None:
    address, env = ray_cluster
    db = tmp_path / "results.duckdb"
    args = ("trials", "-e", experiment, "--workers", "2", "--n", "1", "--warmup", "0")
    proc = run_cli(
        "runner", *args, "--ray-address", address, "--db", db, "-q", env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 ok trials, 0 failed" in proc.stdout
    rows = _rows(db)
    assert [(r[0], r[1]) for r in rows] == [("knn", 2), ("mlp", 2)]
    _assert_good(rows, min_setup_s=0.0)
    con = duckdb.connect(str(db), read_only=True)
    try:
        params = con.execute("SELECT DISTINCT params->>'address' FROM observations").fetchall()
    finally:
        con.close()
    assert params == [(address,)]  # the cluster address is part of the configuration


@pytest.mark.engine
def test_unreachable_ray_address_is_refused_before_starting(
    experiment: Path, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    db = tmp_path / "results.duckdb"
    t0 = time.monotonic()
    proc = run_cli(
        "runner", "trials", "-e", experiment, "--ray-address", address, "--db", db, timeout=30
    )
    assert time.monotonic() - t0 < 30
    line = assert_user_error(proc)
    assert "--ray-address" in line and address in line
    assert not db.exists()  # refused before anything was recorded
