"""runner.clusters: checks of an existing Dask / Spark / Ray cluster before anything starts.

Unmarked tests need no cluster (nothing listens, or something that is not a cluster listens, or
the checks' pure parts on recorded answers); engine-marked tests start a real Dask scheduler and
workers, a Spark standalone master and workers, a Ray head node with token authentication."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from runner import clusters
from runner.clusters import ClusterInfo, check_cluster
from runner.errors import RunnerError
from tests.conftest import BIN, free_port

ADDRESS = {
    "dask": "tcp://127.0.0.1:{port}",
    "spark": "spark://127.0.0.1:{port}",
    "ray": "127.0.0.1:{port}",
}


def _one_line(exc: pytest.ExceptionInfo[RunnerError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# -- nothing there, or something that is not a cluster -----------------------------------------


@pytest.mark.parametrize("engine", ["dask", "spark", "ray"])
def test_unreachable_address_is_refused_at_once(engine: str) -> None:
    address = ADDRESS[engine].format(port=free_port())  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(RunnerError) as exc:
        check_cluster(engine, address, timeout=2.0)
    assert time.monotonic() - t0 < 2.0
    line = _one_line(exc)
    assert line.startswith(f"{clusters.OPTION[engine]} {address}: cannot connect")
    assert "start the cluster there or fix the address" in line


@pytest.mark.parametrize(
    ("engine", "address", "message"),
    [
        ("dask", "127.0.0.1", "no host:port in '127.0.0.1'; write e.g. tcp://127.0.0.1:8786"),
        ("spark", "http://127.0.0.1:7077", "the scheme must be spark://"),
        ("spark", "spark://127.0.0.1", "no host:port"),
        ("ray", "127.0.0.1:port", "no host:port"),
    ],
)
def test_malformed_addresses(engine: str, address: str, message: str) -> None:
    with pytest.raises(RunnerError) as exc:
        check_cluster(engine, address)
    assert message in _one_line(exc)


def test_engines_without_clusters() -> None:
    with pytest.raises(RunnerError, match="engine 'local' does not run on an existing cluster"):
        check_cluster("local", "127.0.0.1:1")


@contextlib.contextmanager
def _silent_listener() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def test_a_silent_service_is_not_taken_for_a_dask_scheduler() -> None:
    with _silent_listener() as port:
        address = f"tcp://127.0.0.1:{port}"
        t0 = time.monotonic()
        with pytest.raises(RunnerError) as exc:
            check_cluster("dask", address, timeout=1.0)
        elapsed = time.monotonic() - t0
    line = _one_line(exc)
    assert line.startswith(f"--dask-scheduler {address}: ")
    # Client(timeout=1) alone waited until the peer went away (50 s here): the probe is bounded
    assert elapsed < 1.0 + 2.0 + clusters.IMPORT_SLACK_S


# -- the checks' verdicts on recorded answers (pure) ------------------------------------------


def _versions(python: str = "3.11.7.final.0", **packages: str | None) -> dict[str, Any]:
    mine = {
        "python": python,
        "dask": "2026.8.0",
        "distributed": "2026.8.0",
        "numpy": "2.3.1",
        "scikit-learn": "1.8.0",
    }
    return {"host": {"python": python}, "packages": {**mine, **packages}}


def _dask(worker: dict[str, Any], scheduler: dict[str, Any] | None = None) -> ClusterInfo:
    versions = {
        "client": _versions(),
        "scheduler": scheduler or _versions(numpy=None, **{"scikit-learn": None}),
        "workers": {"tcp://10.0.0.5:4000": worker},
    }
    workers = {
        "tcp://10.0.0.5:4000": {"host": "10.0.0.5", "nthreads": 4, "memory_limit": 3 * 2**30}
    }
    return clusters._dask_info("tcp://s:8786", versions, workers, 0.1)


def test_dask_versions_that_agree() -> None:
    # the scheduler runs no tasks: it need not have numpy or scikit-learn
    info = _dask(_versions(python="3.11.9.final.0"))  # another patch release is fine
    assert info.version == "2026.8.0"
    assert [(n.name, n.host, n.cores, n.memory_gb) for n in info.nodes] == [
        ("tcp://10.0.0.5:4000", "10.0.0.5", 4, 3.0)
    ]
    assert info.nodes[0].versions["numpy"] == "2.3.1"
    assert info.to_dict()["nodes"][0]["versions"]["scikit-learn"] == "1.8.0"


@pytest.mark.parametrize(
    ("worker", "scheduler", "message"),
    [
        (
            _versions(numpy="2.1.0"),
            None,
            "--dask-scheduler tcp://s:8786: worker tcp://10.0.0.5:4000 has numpy 2.1.0, the "
            "runner has 2.3.1; install numpy==2.3.1 there (or the same version here)",
        ),
        (
            _versions(**{"scikit-learn": None}),
            None,
            "worker tcp://10.0.0.5:4000 has no scikit-learn, the runner has 1.8.0",
        ),
        (
            _versions(python="3.12.1.final.0"),
            None,
            "worker tcp://10.0.0.5:4000 runs python 3.12.1.final.0, the runner 3.11.7.final.0",
        ),
        (
            _versions(),
            _versions(distributed="2025.1.0"),
            "the scheduler has distributed 2025.1.0, the runner has 2026.8.0",
        ),
    ],
)
def test_dask_mismatches(
    worker: dict[str, Any], scheduler: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(RunnerError) as exc:
        _dask(worker, scheduler)
    assert message in _one_line(exc)


def test_dask_scheduler_without_workers() -> None:
    versions = {"client": _versions(), "scheduler": _versions(), "workers": {}}
    with pytest.raises(RunnerError, match=r"no workers; start some with `dask worker tcp://s:1`"):
        clusters._dask_info("tcp://s:1", versions, {}, 0.1)


def _spark_state(port: int = 7077, alive: int = 1) -> dict[str, Any]:
    worker = {"id": "worker-1", "host": "10.0.0.7", "cores": 8, "memory": 6144, "state": "ALIVE"}
    dead = {**worker, "id": "worker-0", "state": "DEAD"}
    return {"url": f"spark://m:{port}", "workers": [dead] + [worker] * alive, "status": "ALIVE"}


def test_spark_master_state() -> None:
    mine = metadata.version("pyspark")
    info = clusters._spark_info("spark://m:7077", 7077, "http://m:8080", _spark_state(), mine, 0.1)
    assert info.version == mine and info.warnings == ()
    assert [(n.name, n.host, n.cores, n.memory_gb) for n in info.nodes] == [
        ("worker-1", "10.0.0.7", 8, 6.0)  # 6144 MB; the dead worker is left out
    ]


def test_spark_version_mismatch() -> None:
    with pytest.raises(RunnerError) as exc:
        clusters._spark_info("spark://m:7077", 7077, "http://m:8080", _spark_state(), "3.5.1", 0.1)
    mine = metadata.version("pyspark")
    assert _one_line(exc) == (
        f"--spark-master spark://m:7077: the master runs Spark 3.5.1, the runner has pyspark "
        f"{mine}; install pyspark==3.5.1 or use a Spark {mine} cluster"
    )


def test_spark_master_without_alive_workers() -> None:
    state = _spark_state(alive=0)
    with pytest.raises(RunnerError, match=r"no alive workers; start one with `start-worker.sh"):
        clusters._spark_info("spark://m:7077", 7077, "http://m:8080", state, None, 0.1)


def test_spark_ui_of_another_master_is_not_believed() -> None:
    info = clusters._spark_info(
        "spark://m:7077", 7077, "http://m:8080", _spark_state(port=7078), "0.0.1", 0.1
    )
    assert info.version is None and info.nodes == ()
    assert "belongs to master spark://m:7078" in info.warnings[0]


def test_ray_auth_errors_say_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = {"ok": False, "type": "AuthenticationError", "error": "RPC error: InvalidAuthToken"}
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    cases = []
    for setup in (
        {},
        {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "x"},
        {"RAY_AUTH_MODE": "token"},
    ):
        with monkeypatch.context() as m:
            for key, value in setup.items():
                m.setenv(key, value)
            with pytest.raises(RunnerError) as exc:
                clusters._ray_info("h:6379", refused, 0.1)
            cases.append(_one_line(exc))
    prefix = "--ray-address h:6379: the cluster requires token authentication; "
    assert cases[0] == prefix + (
        "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the cluster's token "
        "(`ray get-auth-token` on the head node prints it)"
    )
    assert cases[1] == prefix + (
        "the token from RAY_AUTH_TOKEN was refused: use the head node's (`ray get-auth-token`)"
    )
    assert "no token" in cases[2]
    # a token in the default file is sent to an explicit address only with RAY_AUTH_MODE=token
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret")
    with pytest.raises(RunnerError) as exc:
        clusters._ray_info("h:6379", refused, 0.1)
    assert "set RAY_AUTH_MODE=token (the token in ~/.ray/auth_token is sent only then)" in str(
        exc.value
    )


def _ray_answer(ray_version: str, python: str) -> dict[str, Any]:
    node = {
        "node_id": "ab" * 28,
        "hostname": "n1",
        "address": "10.0.0.9",
        "alive": True,
        "head": True,
        "resources": {"CPU": 3.0, "memory": 2.5 * 2**30},
    }
    dead = {**node, "alive": False, "node_id": "cd" * 28}
    return {
        "ok": True,
        "metadata": {"ray_version": ray_version, "python_version": python},
        "nodes": [node, dead],
    }


def test_ray_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    mine, python = metadata.version("ray"), platform.python_version()
    info = clusters._ray_info("h:6379", _ray_answer(mine, python), 0.1)
    assert [(n.host, n.cores, n.memory_gb) for n in info.nodes] == [("n1", 3.0, 2.5)]
    assert info.nodes[0].versions == {"ray": mine, "python": python}
    with pytest.raises(RunnerError, match=rf"runs Ray 2\.9\.0, the runner has {re.escape(mine)};"):
        clusters._ray_info("h:6379", _ray_answer("2.9.0", python), 0.1)
    other = python.rsplit(".", 1)[0] + ".99"
    monkeypatch.delenv("RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL", raising=False)
    with pytest.raises(RunnerError, match=rf"runs python {re.escape(other)}, the runner"):
        clusters._ray_info("h:6379", _ray_answer(mine, other), 0.1)  # ray.init refuses it too
    monkeypatch.setenv("RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL", "minor")
    assert clusters._ray_info("h:6379", _ray_answer(mine, other), 0.1).version == mine


# -- real clusters -------------------------------------------------------------------------------


@pytest.mark.engine
def test_dask_scheduler_and_workers() -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        memory_limit="512MiB",
        dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:
        info = check_cluster("dask", cluster.scheduler_address, timeout=10.0)
        expected = sorted(cluster.scheduler_info["workers"])
    assert info.engine == "dask" and info.version == metadata.version("distributed")
    assert [n.name for n in info.nodes] == expected
    for node in info.nodes:
        assert (node.host, node.cores, node.memory_gb) == ("127.0.0.1", 1, 0.5)
        for pkg in ("dask", "distributed", "numpy", "scikit-learn"):
            assert node.versions[pkg] == metadata.version(pkg)
    assert info.cores == 2 and info.memory_gb == 1.0
    assert info.check_s < 10.0
    print(f"dask check: {info.check_s:.2f} s")


@pytest.mark.engine
def test_dask_scheduler_without_workers_is_refused() -> None:
    from distributed import LocalCluster

    with (
        LocalCluster(n_workers=0, dashboard_address=None, host="127.0.0.1") as cluster,
        pytest.raises(RunnerError, match="the scheduler has no workers"),
    ):
        check_cluster("dask", cluster.scheduler_address, timeout=10.0)


@pytest.mark.engine
def test_spark_standalone_master(tmp_path: Path) -> None:
    from runner.engines.spark_cluster import StandaloneCluster

    cluster = StandaloneCluster(2, 1, 1.0, tmp_path / "cluster")
    try:
        url = cluster.start()
        log = (tmp_path / "cluster" / "master.log").read_text()
        ui_port = int(re.search(r"MasterWebUI.*started at http://[\w.\-]+:(\d+)", log).group(1))
        info = check_cluster("spark", url, timeout=5.0, ui_port=ui_port)
        elsewhere = check_cluster("spark", url, timeout=5.0, ui_port=free_port())
    finally:
        cluster.stop()
    assert info.version == metadata.version("pyspark") and info.warnings == ()
    assert sorted((n.host, n.cores, n.memory_gb) for n in info.nodes) == [
        ("127.0.0.1", 1, 1.0),
        ("127.0.0.1", 1, 1.0),
    ]
    assert info.check_s < 5.0
    print(f"spark check: {info.check_s:.2f} s")
    # the UI is not where we looked: reachable master, nothing else known, said so
    assert elsewhere.version is None and elsewhere.nodes == ()
    assert "did not answer" in elsewhere.warnings[0]


@pytest.fixture
def ray_head() -> Iterator[tuple[str, str]]:
    """A real head node with token authentication (`ray start --head --block`) in its own
    session, in a throwaway HOME; yields its address and its token."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="tk-ray-", dir="/tmp")  # short: Ray's socket paths
    token = secrets.token_hex(32)
    env = {
        **os.environ,
        "HOME": temp_dir,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            f"--port={port}",
            f"--ray-client-server-port={free_port()}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}/r",
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
        yield f"127.0.0.1:{port}", token
    finally:
        # `ray start --block` stops what it started on SIGTERM; never `ray stop` (every Ray here)
        head.terminate()
        try:
            head.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=10)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.engine
def test_ray_token_auth(
    ray_head: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address, token = ray_head
    monkeypatch.setenv("HOME", str(tmp_path))  # no token file of the user's
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    deadline = time.monotonic() + 30
    while True:  # the head node registers a moment after the GCS opens its port
        try:
            info = check_cluster("ray", address, timeout=5.0)
            break
        except RunnerError as exc:
            assert "no alive node yet" in str(exc) and time.monotonic() < deadline
            time.sleep(0.5)
    assert info.version == metadata.version("ray")
    assert [n.cores for n in info.nodes] == [2.0]  # --num-cpus=2
    assert info.nodes[0].memory_gb and info.nodes[0].memory_gb > 0

    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    t0 = time.monotonic()
    with pytest.raises(RunnerError) as exc:
        check_cluster("ray", address, timeout=5.0)
    no_token_s = time.monotonic() - t0
    assert "the cluster requires token authentication; set RAY_AUTH_MODE=token" in _one_line(exc)
    assert no_token_s < 10.0  # ray.init took 43 s to fail here
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0" * 64)
    with pytest.raises(RunnerError, match="the token from RAY_AUTH_TOKEN was refused"):
        check_cluster("ray", address, timeout=5.0)
    print(f"ray check: refused without token in {no_token_s:.2f} s, ok in {info.check_s:.2f} s")


@pytest.mark.engine
def test_a_silent_service_is_not_taken_for_a_ray_gcs() -> None:
    with _silent_listener() as port:
        address = f"127.0.0.1:{port}"
        t0 = time.monotonic()
        with pytest.raises(RunnerError) as exc:
            check_cluster("ray", address, timeout=1.0)
        elapsed = time.monotonic() - t0
    assert _one_line(exc).startswith(f"--ray-address {address}: ")
    assert elapsed < 3 * 1 + 2.0 + clusters.IMPORT_SLACK_S  # not Ray's 40 s of retries
