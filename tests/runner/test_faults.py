"""Faults inside a run: each is recorded as a ``failed`` or ``timeout`` trial with its error text,
the run goes on (the engine restarted when it is broken), ends normally, and leaves no process or
scratch folder behind (tests/runner/test_leaks.py's checks).

Injected: a workload raising (knn asked for more neighbours than there are training rows), a
trial over ``--timeout`` (noop's spin loop), a Dask worker process killed mid-run, a Spark
executor JVM killed, a Ray actor process killed, a Dask worker over its memory_gb (its nanny
kills it).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pytest

import runner
from tests.runner.test_leaks import Run, Runs, cmdline

RUNNER_CODE = Path(runner.__file__).parent


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    started = Runs(tmp_path)
    yield started
    started.close()


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _trials(run: Run) -> list[tuple[str, str | None]]:
    """(status, error) of the run's measured trials, in order."""
    return _rows(run.db, "SELECT status, error FROM trials WHERE NOT warmup ORDER BY trial_id")


def _finish(run: Run) -> list[tuple[str, str | None]]:
    """Let the run end: exit code 1 (some trials failed, every trial ran), no traceback, nothing
    left behind; its trials."""
    code = run.end()
    assert code == 1, run.out[-2000:] + run.err[-4000:]
    assert "failed or timed out" in run.out
    # no traceback of the runner's own (an engine may log its own, e.g. Dask losing a worker)
    assert f'File "{RUNNER_CODE}' not in run.err, run.err[-4000:]
    run.assert_clean()
    return _trials(run)


def _engine_process(run: Run, text: str) -> psutil.Process:
    """One of the run's processes with ``text`` in its command line."""
    found = [p for p in run.processes() if text in cmdline(p)]
    assert found, f"no process of the run has {text!r} in its command line"
    return found[0]


def test_a_raising_workload_is_a_failed_trial_and_the_run_goes_on(runs: Runs) -> None:
    run = runs("--engine", "local", "--workload", "knn", "--dataset", "digits",
               "--param", "k=1500,1", "--n", "2", "--rounds", "1")  # fmt: skip
    _finish(run)
    rows = _rows(
        run.db, "SELECT k::INT, status, error FROM observations WHERE NOT warmup ORDER BY trial_id"
    )
    assert sorted((k, status) for k, status, _ in rows) == [
        (1, "ok"), (1, "ok"), (1500, "failed"), (1500, "failed")
    ]  # fmt: skip
    for k, _, error in rows:
        if k == 1500:
            assert error.startswith("ValueError: Expected n_neighbors <= n_samples_fit"), error


def test_a_trial_over_its_timeout_is_stopped_and_the_run_goes_on(runs: Runs) -> None:
    run = runs("--engine", "local", "--workload", "noop", "--param", "spin=0,2000000000",
               "--timeout", "1", "--n", "2", "--rounds", "1", "--warmup", "0")  # fmt: skip
    _finish(run)
    rows = _rows(
        run.db,
        "SELECT spin::BIGINT, status, error, wall_s FROM observations WHERE NOT warmup "
        "ORDER BY trial_id",
    )
    slow = [r for r in rows if r[0] > 0]
    assert [r[0] for r in rows if r[1] == "ok"] == [0, 0]
    assert [r[1] for r in slow] == ["timeout", "timeout"]
    for _, _, error, wall in slow:
        assert error == "trial exceeded --timeout 1 s and was stopped" and wall == 1.0
    # each timeout killed the worker: the second trial ran on an engine started afresh
    (setups,) = _rows(run.db, "SELECT count(*) FROM setups WHERE params LIKE '%2000000000%'")
    assert setups == (2,)


def _kill_mid_run(run: Run, text: str, n: int) -> tuple[list[tuple[str, str | None]], int]:
    """Wait for the first trial, SIGKILL one engine process whose command line has ``text``,
    let the run finish; its trials and the killed pid."""
    run.wait_for_trials(1)
    victim = _engine_process(run, text)
    victim.send_signal(signal.SIGKILL)
    trials = _finish(run)
    assert len(trials) == n
    return trials, victim.pid


def _assert_recovered(trials: list[tuple[str, str | None]], words: str) -> None:
    """At least one trial failed with the loss named, and the engine, restarted, ran the last
    trials."""
    failed = [error or "" for status, error in trials if status != "ok"]
    assert failed, trials
    assert any(words in error for error in failed), failed
    assert trials[-1][0] == "ok", trials
    assert any("the engine was restarted" in e for e in failed), failed


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.Error:
        return []


@pytest.mark.engine
def test_a_dask_worker_killed_mid_run(runs: Runs) -> None:
    run = runs("--engine", "dask", "--workload", "knn", "--dataset", "digits", "--workers", "2",
               "--n", "12", "--rounds", "1", "--timeout", "60")  # fmt: skip
    run.wait_for_trials(1)
    # the configuration worker is the runner's child; Dask's worker processes are its children
    config_worker = next(p for p in _children(run.proc.pid) if "resource_tracker" not in cmdline(p))
    dask_workers = [p for p in _children(config_worker.pid) if "spawn_main" in cmdline(p)
                    and "resource_tracker" not in cmdline(p)]  # fmt: skip
    assert len(dask_workers) == 2, [cmdline(p) for p in _children(config_worker.pid)]
    dask_workers[0].send_signal(signal.SIGKILL)
    trials = _finish(run)
    assert len(trials) == 12
    _assert_recovered(trials, "Dask workers gone")


@pytest.mark.engine
def test_a_spark_executor_killed_mid_run(runs: Runs) -> None:
    run = runs("--engine", "spark", "--spark-mode", "standalone", "--workload", "knn",
               "--dataset", "digits", "--workers", "1", "--n", "8", "--rounds", "1",
               "--timeout", "120")  # fmt: skip
    trials, _ = _kill_mid_run(run, "CoarseGrainedExecutorBackend", 8)
    _assert_recovered(trials, "Spark executors lost")


@pytest.mark.engine
def test_a_ray_worker_killed_mid_run(runs: Runs) -> None:
    run = runs("--engine", "ray", "--workload", "knn", "--dataset", "digits", "--workers", "2",
               "--n", "12", "--rounds", "1", "--timeout", "60")  # fmt: skip
    run.wait_for_trials(1)
    deadline = time.monotonic() + 30
    while not [p for p in run.processes() if "ray::_Worker" in cmdline(p)]:
        assert time.monotonic() < deadline, [cmdline(p) for p in run.processes()]
        time.sleep(0.2)
    trials, _ = _kill_mid_run(run, "ray::_Worker", 12)
    _assert_recovered(trials, "Ray actor")


@pytest.mark.engine
def test_a_dask_worker_over_its_memory_gb(runs: Runs, tmp_path: Path) -> None:
    """The scratch network's hidden layer makes every gradient step hold a batch x 100,000
    activation matrix (over 1 GiB) in a worker limited to 0.5 GiB: its nanny kills it."""
    spec = tmp_path / "memory.toml"
    spec.write_text(
        'name = "memory"\nn = 2\nwarmup = 0\nseed = 0\ntimeout = 120\n\n'
        '[[matrix]]\nengine = "dask"\nworkload = "mlp"\ndataset = "digits"\nworkers = 1\n'
        'threads_per_worker = 1\nmemory_gb = 0.5\nimpl = "scratch"\nhidden = [100000]\n'
        "batch_size = 2048\nepochs = 1\n",
        encoding="utf-8",
    )
    run = runs("-e", str(spec), "--rounds", "1")
    trials = _finish(run)
    assert [status for status, _ in trials] == ["failed", "failed"], trials
    for _, error in trials:
        assert "over 95% of its memory limit (memory_gb)" in error, error
        assert "the engine was restarted" in error, error


def _exit_worker() -> None:
    import os

    os._exit(1)


@pytest.mark.engine
def test_a_dask_call_that_fails_because_its_worker_died_names_the_lost_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call whose worker dies can fail with Dask's own error (here KilledWorker: no retry is
    allowed) before the periodic look for lost workers: the trial's error says the workers are
    gone, as it does when the wait times out, not just the bare error. A task's own error is
    raised as it is."""
    import dask
    import distributed  # noqa: F401  (its defaults loaded first: leaving set() would drop them)

    from runner.engines import dask as dask_engine
    from runner.engines import make_session
    from runner.workloads import get_workload

    monkeypatch.setattr(dask_engine, "WATCH_S", 120.0)  # only the error path can answer first
    config = get_workload("knn").resolve(
        {"engine": "dask", "workload": "knn", "workers": 1, "experiment": "t", "seed": 0}
    )
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        session = make_session(config)
        session.start()
        try:
            (address,) = session.addresses
            raising = session.client.submit(int, "not a number", pure=False)
            with pytest.raises(ValueError, match="invalid literal for int"):
                session._results([raising])
            dying = session.client.submit(_exit_worker, pure=False)
            with pytest.raises(RuntimeError) as caught:
                session._results([dying])
        finally:
            session.close()
    said = str(caught.value)
    assert said.startswith(f"1 of 1 Dask workers gone ({address}): the trial's tasks cannot finish")
    assert said.endswith("(KilledWorker)"), said


@pytest.mark.engine
def test_a_healthy_dask_cluster_never_seems_to_have_lost_workers() -> None:
    """``client.scheduler_info(n_workers=-1)`` asks the scheduler, then reads back the client's
    cached identity, which the client's periodic update (with no workers) may have replaced in
    between: on a busy machine, a trial then failed with every worker "gone". Here the periodic
    update runs every 5 ms (2 s by default), so that race would show in a few hundred looks."""
    import dask
    import distributed  # noqa: F401  (its defaults loaded first: leaving set() would drop them)

    from runner.engines import make_session
    from runner.workloads import get_workload

    config = get_workload("knn").resolve(
        {"engine": "dask", "workload": "knn", "workers": 2, "experiment": "t", "seed": 0}
    )
    with dask.config.set({"distributed.client.scheduler-info-interval": "5ms"}):
        session = make_session(config)
        session.start()
        try:
            assert len(session.addresses) == 2, session.addresses
            said = [session.lost_workers() for _ in range(400)]
        finally:
            session.close()
    assert [s for s in said if s is not None] == []
