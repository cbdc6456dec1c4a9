"""The ``noop`` workload (the runner's own cost per trial) and ``runner trials --no-sample``."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from runner.workloads.noop import spin
from tests.conftest import assert_user_error, run_cli

#: Iterations of the spin loop that take well over a sampling period (~0.3 s here).
LONG = 6_000_000  # about 0.4 s idle: longer than a sampling period on any machine here


def _noop(db: Path, *args: str) -> str:
    proc = run_cli(
        "runner", "trials", "--engine", "local", "--workload", "noop", "--warmup", "0",
        "--rounds", "1", "--db", db, "-q", *args,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_noop_trials_record_metrics_and_sample_only_long_trials(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    out = _noop(db, "--n", "10", "--param", f"spin=0,{LONG}")
    assert "20 ok trials, 0 failed" in out
    con = duckdb.connect(str(db), read_only=True)
    names = {r[0] for r in con.execute("SELECT name FROM observation_columns").fetchall()}
    assert {f"noop_{i}" for i in range(1, 8)} | {"cpu_s", "peak_rss_mb"} <= names
    assert "noop_8" not in names
    rows = con.execute(
        "SELECT o.spin, o.seed, o.noop_1, o.noop_7, o.train_s, o.infer_s, o.wall_s, o.cpu_s, "
        "o.peak_rss_mb, (SELECT count(*) FROM samples s WHERE s.trial_id = o.trial_id) "
        "FROM observations o ORDER BY o.spin, o.seed"
    ).fetchall()
    assert len(rows) == 20
    for spin_n, seed, first, last, train_s, infer_s, wall_s, cpu_s, rss, samples in rows:
        assert first == last == float(seed)  # each metric is the trial's seed
        assert infer_s == 0.0 and 0 <= train_s <= wall_s
        assert cpu_s is not None and cpu_s >= 0 and rss > 10  # the worker: a Python process
        if spin_n:
            assert train_s > 0.1 and cpu_s > 0  # the loop burns CPU (how much: the load's say)
            if wall_s >= 0.25:
                assert samples >= 2
    quick = [r for r in rows if r[0] == 0]
    # a trial shorter than a sampling period takes no sample (one may, if the machine stalls)
    assert sum(1 for r in quick if r[-1] > 0) <= 1
    assert max(r[4] for r in quick) < 0.01
    spec = json.loads(con.execute("SELECT spec FROM runs").fetchone()[0])
    assert spec["sample"] is True


def test_no_sample_takes_no_samples_and_no_resource_metrics(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    out = json.loads(_noop(db, "--n", "2", "--param", f"spin={LONG}", "--no-sample", "--json"))
    assert out["n_ok"] == 2
    # the loop's own spans: one between the two trials of the one worker; no sampler ran
    spans = out["overhead"]
    assert spans["trials"] == 1
    assert 0 < spans["store"]["median_ms"] <= spans["loop"]["median_ms"]
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
    names = {r[0] for r in con.execute("SELECT name FROM observation_columns").fetchall()}
    assert "noop_1" in names and not names & {"cpu_s", "peak_rss_mb"}
    assert con.execute("SELECT min(train_s) FROM trials").fetchone()[0] > 0.1
    assert json.loads(con.execute("SELECT spec FROM runs").fetchone()[0])["sample"] is False


def test_noop_refuses_bad_parameters(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    proc = run_cli(
        "runner", "trials", "--engine", "local", "--workload", "noop", "--param", "spin=-1",
        "--db", db,
    )  # fmt: skip
    line = assert_user_error(proc)
    assert "noop: spin must be an integer >= 0, got -1" in line
    assert not db.exists()


def test_spin_is_the_loop_it_says() -> None:
    # sum of i*i mod 2**16 over range(n), by the closed form n(n-1)(2n-1)/6
    for n in (0, 1, 7, 1000, 123_457):
        assert spin(n) == (n * (n - 1) * (2 * n - 1) // 6) % 2**16
