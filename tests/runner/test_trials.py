"""`runner trials` for real: local scikit-learn and a real Dask LocalCluster, into a tmp DuckDB."""

from __future__ import annotations

import json
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
    run_cli,
    uses,
)


def _default_run(folder: Path) -> tuple[Path, str]:
    """The default experiment at --n 2 (its stdout too), as a background job of the engine
    suites' group (tests/conftest.py): it runs beside them, not in this module's time."""
    db = folder / "results.duckdb"
    proc = run_cli("runner", "trials", "--n", "2", "--db", db, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return db, proc.stdout


JOBS["default-n2"] = Job(_default_run, "engines", minutes=0.7, needed_by=uses("default_run"))


@pytest.fixture(scope="module")
def default_run(background: Background) -> tuple[Path, str]:
    """The default experiment's run (read only)."""
    result: tuple[Path, str] = background.result("default-n2")
    return result


@pytest.mark.engine
def test_default_experiment_records_every_trial(default_run: tuple[Path, str]) -> None:
    db, stdout = default_run
    assert "12 ok trials, 0 failed" in stdout
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT engine, workload, workers, count(*) FILTER (WHERE warmup), "
        "count(*) FILTER (WHERE NOT warmup), count(DISTINCT config_id), "
        "bool_and(status = 'ok') FROM trials GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    # two rounds (the default), a warm-up in each
    assert rows == [
        ("dask", "knn", 1, 2, 2, 1, True),
        ("dask", "knn", 2, 2, 2, 1, True),
        ("dask", "mlp", 1, 2, 2, 1, True),
        ("dask", "mlp", 2, 2, 2, 1, True),
        ("local", "knn", 1, 2, 2, 1, True),
        ("local", "mlp", 1, 2, 2, 1, True),
    ]
    # timings: every phase measured, and a trial's parts fit inside its wall time
    bad = con.execute(
        "SELECT count(*) FROM trials WHERE NOT (train_s > 0 AND infer_s > 0 AND "
        "wall_s >= train_s + infer_s AND setup_s >= 0 AND load_s > 0)"
    ).fetchone()[0]
    assert bad == 0
    # engine start-up is timed once per configuration and round, outside the trials
    setups = con.execute(
        "SELECT count(*), count(DISTINCT (config_id, round)), min(setup_s) FILTER (WHERE "
        "config_id IN (SELECT config_id FROM trials WHERE engine = 'dask')) FROM setups"
    ).fetchone()
    assert setups[0] == setups[1] == 12
    assert setups[2] > 0.05  # a LocalCluster takes a measurable time to start
    # the five classification metrics for every trial, sane values
    metrics = dict(con.execute("SELECT name, kind FROM observation_columns").fetchall())
    assert {"accuracy", "precision", "recall", "f1", "train_accuracy"} <= set(metrics)
    knn_acc = con.execute(
        "SELECT min(accuracy) FROM observations WHERE workload = 'knn'"
    ).fetchone()[0]
    assert knn_acc >= 0.97
    mlp_acc = con.execute(
        "SELECT min(accuracy) FROM observations WHERE workload = 'mlp'"
    ).fetchone()[0]
    assert mlp_acc >= 0.90
    # the Dask work was really spread: 2-worker clusters scored shards on both workers
    used = con.execute(
        "SELECT workers, min(workers_used), max(workers_used) FROM observations "
        "WHERE engine = 'dask' GROUP BY workers ORDER BY workers"
    ).fetchall()
    assert used == [(1, 1.0, 1.0), (2, 2.0, 2.0)]
    # resources: every trial's CPU and memory measured; samples at ~10 Hz during a trial
    # (none for one shorter than a period), and a last one at its end; the Dask tree
    # (scheduler side + worker processes) is bigger than the in-process engine's
    assert (
        con.execute(
            "SELECT count(*) FROM observations WHERE cpu_s IS NULL OR peak_rss_mb IS NULL"
        ).fetchone()[0]
        == 0
    )
    sampled = con.execute(
        "SELECT t.wall_s, count(s.trial_id) FROM trials t LEFT JOIN samples s "
        "ON s.trial_id = t.trial_id GROUP BY t.trial_id, t.wall_s"
    ).fetchall()
    for wall_s, samples in sampled:
        # at most one per period (the trial loop's span is the worker's wall_s and a reply)
        assert samples <= (wall_s + 0.2) / 0.1 + 1, (wall_s, samples)
        if wall_s >= 0.5:
            assert samples >= 2, (wall_s, samples)
    assert any(samples >= 2 for _, samples in sampled)
    rss = dict(
        con.execute(
            "SELECT engine || workers, min(peak_rss_mb) FROM observations "
            "WHERE workload = 'mlp' GROUP BY ALL"
        ).fetchall()
    )
    assert rss["dask2"] > rss["dask1"] > rss["local1"] > 50
    assert con.execute("SELECT min(cpu_s) FROM observations").fetchone()[0] >= 0
    # per-run metadata
    run = con.execute("SELECT argv, spec, env, source, status, finished_at FROM runs").fetchall()
    assert len(run) == 1
    argv, spec, env, source, status, finished = run[0]
    assert json.loads(argv)[1:3] == ["trials", "--n"]
    assert json.loads(spec)["name"] == "default" and json.loads(spec)["n"] == 2
    env = json.loads(env)
    assert {
        "python",
        "packages",
        "cpu_model",
        "logical_cores",
        "memory_gb",
        "os",
        "hostname",
        "git_commit",
    } <= set(env)
    assert source == "measured" and status == "finished" and finished is not None
    # seeds are recorded and differ between repetitions
    assert con.execute(
        "SELECT count(DISTINCT seed) = count(*) FROM trials WHERE config_id = "
        "(SELECT min(config_id) FROM trials)"
    ).fetchone()[0]
    # the data split is paper 000's 1437/360: test-set accuracy is a multiple of 1/360
    acc = con.execute("SELECT accuracy FROM observations LIMIT 1").fetchone()[0]
    assert abs(acc * 360 - round(acc * 360)) < 1e-9


@pytest.mark.engine
def test_local_engine_limits_every_thread_pool(default_run: tuple[Path, str]) -> None:
    """threads_per_worker = 1 holds for BLAS and for scikit-learn's OpenMP (which loads after the
    engine starts), as threadpoolctl reports them inside the trial."""
    db, _ = default_run
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT workload, max(pool_threads), max(threads_per_worker) FROM observations "
        "WHERE engine = 'local' GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert rows == [("knn", 1.0, 1), ("mlp", 1.0, 1)]


@pytest.mark.engine
def test_anova_and_report_on_a_fresh_run(default_run: tuple[Path, str], tmp_path: Path) -> None:
    db, _ = default_run
    proc = run_cli("analyze", "anova", "--group", "workers", "--db", db, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # one ANOVA per engine x workload (held fixed); local ran one worker count only
    compared = [s for s in result["strata"] if s["result"] is not None]
    assert len(result["strata"]) == 4 and len(compared) == 2
    for stratum in compared:
        assert stratum["stratum"]["engine"] == "dask"
        assert {g["level"] for g in stratum["result"]["groups"]} == {"1", "2"}
        assert sum(g["n"] for g in stratum["result"]["groups"]) == 4
    skipped = [s for s in result["strata"] if s["result"] is None]
    assert all(s["stratum"]["engine"] == "local" and s["reason"] for s in skipped)


def _experiment(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(body)
    return path


def test_failed_trials_are_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    # k larger than the training set: scikit-learn raises at predict time
    exp = _experiment(
        tmp_path,
        """name = "failing"
[[matrix]]
engine = "local"
workload = "knn"
k = [5000, 5]
""",
    )
    db = tmp_path / "r.duckdb"
    proc = run_cli("runner", "trials", "-e", exp, "--n", "2", "--warmup", "0", "--db", db, "-q")
    assert proc.returncode == 1, proc.stderr
    assert "2 ok trials, 2 failed" in proc.stdout
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT json_extract(params, '$.k')::INT AS k, status, error IS NOT NULL, "
        "train_s IS NOT NULL FROM observations ORDER BY k, repetition"
    ).fetchall()
    assert rows == [
        (5, "ok", False, True),
        (5, "ok", False, True),
        (5000, "failed", True, True),
        (5000, "failed", True, True),
    ]
    error = con.execute("SELECT error FROM trials WHERE status = 'failed' LIMIT 1").fetchone()[0]
    assert "n_neighbors" in error.splitlines()[0]


def test_a_trial_over_the_timeout_is_stopped_and_recorded(tmp_path: Path) -> None:
    exp = _experiment(
        tmp_path,
        """name = "slow"
[[matrix]]
engine = "local"
workload = "mlp"
epochs = 400
""",
    )
    db = tmp_path / "r.duckdb"
    proc = run_cli(
        "runner",
        "trials",
        "-e",
        exp,
        "--n",
        "2",
        "--warmup",
        "0",
        "--timeout",
        "0.05",
        "--db",
        db,
        "-q",
    )
    assert proc.returncode == 1
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT status, count(*) FROM trials GROUP BY ALL").fetchall() == [
        ("timeout", 2)
    ]
    # the worker was killed and restarted, so each trial got its own engine set-up
    assert con.execute("SELECT count(*) FROM setups").fetchone()[0] == 2
    assert con.execute("SELECT status FROM runs").fetchone()[0] == "finished"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--engine", "spork"], "unknown engine 'spork'"),
        (["--workload", "svm"], "unknown workload 'svm'"),
        (["--experiment", "nope"], "unknown experiment 'nope'"),
        (["--n", "0"], "--n must be an integer from 1"),
        (["--n", "-2"], "--n must be an integer from 1"),
        (["--workers", "1,x"], "--workers takes comma-separated integers"),
        (["--workers", "0"], "--workers must all be >= 1"),
        (["--timeout", "0"], "--timeout must be a number of seconds > 0"),
        (["--experiment", "missing.toml"], "not found"),
    ],
)
def test_bad_input_writes_nothing(tmp_path: Path, args: list[str], expected: str) -> None:
    db = tmp_path / "r.duckdb"
    line = assert_user_error(run_cli("runner", "trials", *args, "--db", db, "-q"))
    assert expected in line
    assert not db.exists()


@pytest.mark.parametrize("kind", ["directory", "not-duckdb"])
def test_bad_db_path(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        db = tmp_path
        before = None
    else:
        db = tmp_path / "notes.duckdb"
        db.write_text("these are my notes, not a database\n")
        before = digest(db)
    line = assert_user_error(run_cli("runner", "trials", "--n", "1", "--db", db, "-q"))
    assert str(db) in line
    if before:
        assert digest(db) == before


def test_unreachable_cluster_address_is_refused_fast(tmp_path: Path) -> None:
    import time

    port = free_port()  # nobody listens there
    db = tmp_path / "r.duckdb"
    t0 = time.monotonic()
    proc = run_cli(
        "runner",
        "trials",
        "--engine",
        "dask",
        "--n",
        "1",
        "--dask-scheduler",
        f"tcp://127.0.0.1:{port}",
        "--db",
        db,
        "-q",
    )
    line = assert_user_error(proc)
    assert "--dask-scheduler" in line and "cannot connect" in line
    assert time.monotonic() - t0 < 30
    assert not db.exists()


@pytest.mark.engine
def test_existing_dask_cluster(tmp_path: Path) -> None:
    """A scheduler and two workers started as separate processes, as a user would."""
    import socket
    import subprocess
    import time

    from tests.conftest import BIN

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "dask"),
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--nworkers",
                        "1",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        db = tmp_path / "r.duckdb"
        proc = run_cli(
            "runner",
            "trials",
            "--engine",
            "dask",
            "--workload",
            "knn",
            "--workers",
            "2",
            "--n",
            "2",
            "--warmup",
            "0",
            "--dask-scheduler",
            address,
            "--db",
            db,
            "-q",
        )
        assert proc.returncode == 0, proc.stderr + proc.stdout
        con = duckdb.connect(str(db), read_only=True)
        rows = con.execute(
            "SELECT status, accuracy, json_extract_string(params, '$.address') FROM observations"
        ).fetchall()
        assert [(s, a) for s, a, _ in rows] == [("ok", rows[0][1])] * 2
        assert rows[0][1] >= 0.97 and rows[0][2] == address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


MEMORY_SPEC = """\
name = "memory"
n = 1
warmup = 0

[[matrix]]
engine = "{engine}"
workload = "knn"
workers = {workers}
memory_gb = {memory_gb}
"""


@pytest.mark.parametrize(
    ("engine", "workers", "memory_gb", "expected"),
    [
        ("spark", 1, 0.25, "memory_gb 0.25 is too small for spark: it needs at least 0.44 GiB"),
        ("dask", 2, 0.1, "memory_gb 0.1 is too small for dask"),
        ("ray", 1, 0.1, "memory_gb 0.1 is too small for ray"),
        ("dask", 4, 100000, "memory_gb 100000 x 4 workers is more than this machine's"),
    ],
)
def test_memory_too_small_or_too_large_is_refused(
    tmp_path: Path, engine: str, workers: int, memory_gb: float, expected: str
) -> None:
    spec = tmp_path / "memory.toml"
    spec.write_text(MEMORY_SPEC.format(engine=engine, workers=workers, memory_gb=memory_gb))
    db = tmp_path / "r.duckdb"
    run_cli("runner", "trials", "--n", "1", "--db", db, "-q", "--engine", "local")
    before = digest(db)
    line = assert_user_error(run_cli("runner", "trials", "-e", spec, "--db", db, "-q"))
    assert expected in line
    assert digest(db) == before


def test_an_engine_extra_not_installed_is_refused(tmp_path: Path) -> None:
    """A real environment without Ray: a new venv whose site-packages holds everything of this
    one except ray (symlinks), so `import ray` genuinely fails there."""
    import site
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    (target,) = (venv / "lib").glob("python3*/site-packages")
    (source,) = (p for p in map(Path, site.getsitepackages()) if (p / "duckdb").exists())
    for item in source.iterdir():
        if item.name == "ray" or item.name.startswith("ray-"):
            continue
        (target / item.name).symlink_to(item)
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import ray"], capture_output=True, text=True)
    assert probe.returncode == 1 and "No module named 'ray'" in probe.stderr
    db = tmp_path / "r.duckdb"
    spec = tmp_path / "ray.toml"
    spec.write_text('[[matrix]]\nengine = "ray"\nworkload = "knn"\n')
    proc = subprocess.run(
        [python, "-c", "from runner.cli import main; main()", "trials", "-e", str(spec)]
        + ["--n", "1", "--db", str(db), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = assert_user_error(proc)
    assert "engine ray is not installed; install it with pip install 'trialkit[ray]'" in line
    assert not db.exists()
