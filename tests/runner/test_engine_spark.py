"""Engine ``spark`` for real: `runner trials` on a local[N] pyspark session (knn, MLlib's MLP with
l-bfgs and gd), on a standalone master + worker started here (``--spark-master``), and on a
standalone cluster the runner starts and stops itself (``spark_mode = "standalone"``), into a tmp
DuckDB.

Every configuration starts its own JVM (5-10 s; a runner-managed cluster 15-25 s), so the matrix
is kept to one configuration per point worth checking: knn on local[2], l-bfgs on local[2], gd on
local[1], knn with workers=1 on the existing cluster, knn with workers=2 on the runner's own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import (
    JOBS,
    Background,
    Job,
    assert_user_error,
    digest,
    free_port,
    remember_run,
    run_cli,
    uses,
)

pytest.importorskip("pyspark")

SPEC = """\
name = "spark-test"
n = 1
warmup = 0
seed = 0
timeout = 300

[defaults]
dataset = "digits"
threads_per_worker = 1

[workloads.knn]
k = 5

[workloads.mlp]
hidden = [100]

{matrix}
"""

MATRIX = """\
[[matrix]]
engine = "spark"
workload = "knn"
workers = 2

[[matrix]]
engine = "spark"
workload = "mlp"
workers = 2
solver = "l-bfgs"
epochs = 30

[[matrix]]
engine = "spark"
workload = "mlp"
workers = 1
solver = "gd"
epochs = 5
"""


def _spec(tmp: Path, matrix: str) -> Path:
    path = tmp / "spark.toml"
    path.write_text(SPEC.format(matrix=matrix), encoding="utf-8")
    return path


def _matrix_run(tmp: Path) -> tuple[Path, str, str]:
    """MATRIX's database, and what `runner trials` wrote on stdout and stderr."""
    db = tmp / "results.duckdb"
    # three JVMs one after the other, beside other engine runs: minutes on a loaded machine
    proc = _trials(tmp, MATRIX, db, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return remember_run(db), proc.stdout, proc.stderr


JOBS["spark"] = Job(_matrix_run, "engines", minutes=1.5, needed_by=uses("spark_run"))


@pytest.fixture(scope="module")
def spark_run(background: Background) -> tuple[Path, str, str]:
    """_matrix_run, in the background beside the other engine suites' module runs."""
    return background.result("spark")


def _trials(
    tmp: Path,
    matrix: str,
    db: Path,
    *extra: str,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`runner trials` on a one-off experiment: one trial per configuration, no warm-up."""
    return run_cli(
        "runner",
        "trials",
        "-e",
        _spec(tmp, matrix),
        "--n",
        "1",
        "--warmup",
        "0",
        "--db",
        db,
        "-q",
        *extra,
        timeout=timeout,
        env=env,
    )


def _rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.engine
def test_every_spark_configuration_runs_ok(spark_run: tuple[Path, str, str]) -> None:
    db, stdout, stderr = spark_run
    assert "3 ok trials" in stdout
    # the JVM's banner and log4j warnings stay out of the runner's output
    assert stderr.strip() == ""
    for noise in ("log4j", "WARN", "Setting default log level", "incubator"):
        assert noise not in stdout
    rows = _rows(
        db,
        "SELECT workload, workers, coalesce(params->>'solver', ''), status, error "
        "FROM observations ORDER BY ALL",
    )
    assert rows == [
        ("knn", 2, "", "ok", None),
        ("mlp", 1, "gd", "ok", None),
        ("mlp", 2, "l-bfgs", "ok", None),
    ]


@pytest.mark.engine
def test_spark_accuracy_is_sane(spark_run: tuple[Path, str, str]) -> None:
    db = spark_run[0]
    knn = _rows(db, "SELECT min(accuracy) FROM observations WHERE workload = 'knn'")[0][0]
    assert knn >= 0.97
    lbfgs = _rows(db, "SELECT accuracy, train_accuracy FROM observations WHERE solver = 'l-bfgs'")
    assert lbfgs[0][0] >= 0.90 and lbfgs[0][1] >= 0.95
    # 5 full-batch gd steps at MLlib's default step size barely move: valid, not good
    gd = _rows(db, "SELECT accuracy FROM observations WHERE solver = 'gd'")[0][0]
    assert 0.0 <= gd <= 1.0


@pytest.mark.engine
def test_jvm_start_is_setup_not_trial_time(spark_run: tuple[Path, str, str]) -> None:
    db = spark_run[0]
    bad = _rows(
        db,
        "SELECT count(*) FROM trials WHERE NOT (setup_s > 0.5 AND load_s > 0 AND train_s > 0 "
        "AND infer_s > 0 AND wall_s >= train_s + infer_s)",
    )[0][0]
    assert bad == 0
    # one JVM start per configuration, each timed in its setup record
    setups = _rows(db, "SELECT count(*), count(DISTINCT config_id), min(setup_s) FROM setups")[0]
    assert setups[0] == setups[1] == 3 and setups[2] > 0.5
    # a warm knn trial is far cheaper than starting Spark
    knn = _rows(
        db,
        "SELECT max(t.train_s + t.infer_s), min(s.setup_s) FROM trials t JOIN setups s "
        "USING (config_id) WHERE t.workload = 'knn'",
    )[0]
    assert knn[0] < knn[1]


@pytest.mark.engine
def test_spark_knn_reuses_the_models_fitted_in_train(spark_run: tuple[Path, str, str]) -> None:
    db = spark_run[0]
    rows = _rows(
        db,
        "SELECT workers, partitions, task_processes, knn_refits FROM observations "
        "WHERE workload = 'knn'",
    )
    # local[2]: two partitions scored by one or two reused Python workers; which worker takes
    # which task is Spark's choice, so a refit in predict() is possible, and then it is counted
    (workers, partitions, processes, refits) = rows[0]
    assert (workers, partitions) == (2, 2.0)
    assert 1.0 <= processes <= 2.0 and 0.0 <= refits <= processes
    mlp = _rows(
        db, "SELECT min(partitions), max(partitions) FROM observations WHERE workload = 'mlp'"
    )[0]
    assert mlp == (2.0, 2.0)


@pytest.mark.engine
def test_adam_is_not_a_spark_solver(tmp_path: Path) -> None:
    matrix = '[[matrix]]\nengine = "spark"\nworkload = "mlp"\nsolver = "adam"\n'
    db = tmp_path / "results.duckdb"
    proc = _trials(tmp_path, matrix, db, timeout=60)
    line = assert_user_error(proc)
    assert "solver 'adam'" in line and "l-bfgs" in line and "gd" in line
    assert digest(db) is None  # nothing written


# -- an existing standalone cluster ---------------------------------------------------------


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import psutil

    with contextlib.suppress(psutil.Error):
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()


@pytest.fixture
def standalone(tmp_path: Path):  # type: ignore[no-untyped-def]
    import pyspark

    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    master_log, worker_log = tmp_path / "master.log", tmp_path / "worker.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(master_log, "wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        str(spark_class),
                        "org.apache.spark.deploy.master.Master",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--webui-port",
                        str(free_port()),
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
        with open(worker_log, "wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        str(spark_class),
                        "org.apache.spark.deploy.worker.Worker",
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "2",
                        "--memory",
                        "2g",
                        "--webui-port",
                        str(free_port()),
                        "--work-dir",
                        str(tmp_path / "work"),
                        url,
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
        _wait_for(
            lambda: "Successfully registered with master" in worker_log.read_text(errors="replace"),
            90,
            f"a Spark worker to register with {url}; worker log:\n{worker_log}",
        )
        yield url
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.mark.engine
def test_spark_runs_on_an_existing_standalone_master(tmp_path: Path, standalone: str) -> None:
    matrix = '[[matrix]]\nengine = "spark"\nworkload = "knn"\nworkers = 1\n'
    db = tmp_path / "results.duckdb"
    proc = _trials(tmp_path, matrix, db, "--spark-master", standalone)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(
        db,
        "SELECT status, params->>'address', accuracy, setup_s, train_s, infer_s, task_processes, "
        "knn_refits, executors "
        "FROM observations",
    )
    assert len(rows) == 1
    status, address, accuracy, setup_s, train_s, infer_s, processes, refits, executors = rows[0]
    assert (status, address, executors) == ("ok", standalone, 1.0)
    assert accuracy >= 0.97 and setup_s > 0.5 and train_s > 0 and infer_s > 0
    # one executor with one core: one reused Python worker, which fitted in train()
    assert (processes, refits) == (1.0, 0.0)


# -- a standalone cluster the runner starts and stops itself -------------------------------------


def _spark_processes(under: Path) -> list[str]:
    """Spark JVMs (master, workers, executors) and pyspark daemons that run from a folder under
    ``under`` or name one on their command line: those a run with TMPDIR=``under`` started."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(proc.cmdline())
            if "org.apache.spark" not in cmdline and "pyspark" not in cmdline:
                continue
            if str(under) in cmdline or str(under) in proc.cwd():
                found.append(f"{proc.pid}: {cmdline[:200]}")
    return found


def _deploy_pids(under: Path) -> set[int]:
    """Spark standalone daemons (master, workers, executors) whose TMPDIR is under ``under``: a
    run's with TMPDIR=``under``, not those of runs elsewhere on the machine."""
    import psutil

    needle = f"\0TMPDIR={under}/".encode()
    pids = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if "org.apache.spark.deploy" not in " ".join(proc.cmdline()):
                continue
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                if needle in b"\0" + f.read():
                    pids.add(proc.pid)
    return pids


STANDALONE = """\
[[matrix]]
engine = "spark"
workload = "knn"
spark_mode = "standalone"
workers = 2
threads_per_worker = 1
memory_gb = 1
data_fraction = 0.3
"""


@pytest.mark.engine
def test_spark_standalone_mode_runs_on_a_cluster_of_its_own(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"  # the runner's temporary folders, so its processes can be told
    scratch.mkdir()
    db = tmp_path / "results.duckdb"
    proc = _trials(tmp_path, STANDALONE, db, env={**os.environ, "TMPDIR": str(scratch)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""  # the cluster's logs go to files, not to the runner's output
    rows = _rows(
        db,
        "SELECT status, params->>'spark_mode', workers, threads_per_worker, memory_gb, accuracy, "
        "executors, partitions, setup_s, train_s, infer_s FROM observations",
    )
    assert len(rows) == 1
    status, mode, workers, threads, memory, accuracy, executors, partitions, *times = rows[0]
    assert (status, mode, workers, threads, memory) == ("ok", "standalone", 2, 1, 1.0)
    assert accuracy >= 0.95
    # one executor per worker really ran, and the data had a partition for each
    assert executors == 2.0 and partitions >= 2.0
    setup_s, train_s, infer_s = times
    assert setup_s > 1.0 and train_s > 0 and infer_s > 0
    # the master, the workers and their executors are gone with the configuration
    assert _spark_processes(scratch) == []
    assert _deploy_pids(scratch) == set()


@pytest.mark.engine
def test_a_cluster_that_does_not_come_up_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    from runner.engines.spark_cluster import StandaloneCluster

    cluster = StandaloneCluster(2, 1, None, tmp_path / "cluster", timeout=0.5)
    with pytest.raises(RuntimeError, match=r"timed out after 0.5 s waiting for .*master.log"):
        cluster.start()
    assert _spark_processes(tmp_path) == []
    cluster.stop()  # again: harmless


def test_spark_mode_must_be_local_or_standalone(tmp_path: Path) -> None:
    matrix = '[[matrix]]\nengine = "spark"\nworkload = "knn"\n'
    db = tmp_path / "results.duckdb"
    proc = _trials(tmp_path, matrix, db, "--spark-mode", "nonsense", timeout=60)
    line = assert_user_error(proc)
    assert "--spark-mode" in line and "local, standalone" in line and "'nonsense'" in line
    assert digest(db) is None  # nothing written


def test_spark_mode_standalone_and_an_existing_master_exclude_each_other(tmp_path: Path) -> None:
    matrix = '[[matrix]]\nengine = "spark"\nworkload = "knn"\n'
    db = tmp_path / "results.duckdb"
    extra = ("--spark-mode", "standalone", "--spark-master", "spark://127.0.0.1:1")
    proc = _trials(tmp_path, matrix, db, *extra, timeout=60)
    line = assert_user_error(proc)
    assert "choose one" in line and "spark://127.0.0.1:1" in line
    assert digest(db) is None
