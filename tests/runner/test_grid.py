"""Configurations from the command line, rounds, --until-ci and --dry-run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest

from runner.errors import RunnerError
from runner.spec import load_experiment
from runner.stopping import MIN_N, median_ci_ranks, median_interval
from runner.trials import Plan, TrialOptions, plan, round_sizes
from tests.conftest import assert_user_error, run_cli

ALL_ENGINES = ["local", "dask", "spark", "ray"]


def cells(exp: object) -> set[tuple[str, str, int]]:
    return {(c["engine"], c["workload"], c["workers"]) for c in exp.configs}  # type: ignore[attr-defined]


def test_grid_from_options_without_an_experiment() -> None:
    exp = load_experiment(grid={"engine": ALL_ENGINES, "workload": ["knn", "mlp"], "workers": [2]})
    # local runs in-process: one worker; every distributed engine gets the 2 asked for
    assert cells(exp) == {
        ("local", "knn", 1),
        ("local", "mlp", 1),
        *((e, w, 2) for e in ("dask", "spark", "ray") for w in ("knn", "mlp")),
    }
    assert exp.from_grid and exp.name == "cli" and exp.n == 10 and exp.warmup == 1
    # the workload's own defaults fill what the options leave out
    knn = next(c for c in exp.configs if c["workload"] == "knn")
    assert knn["k"] == 5 and knn["dataset"] == "digits" and knn["threads_per_worker"] == 1


def test_grid_levels_cross_and_apply_where_they_mean_something() -> None:
    exp = load_experiment(
        grid={"workload": ["knn", "mlp"], "epochs": [5, 10], "threads_per_worker": [1, 2]},
        params={"k": [1, 3]},
    )
    knn = [c for c in exp.configs if c["workload"] == "knn"]
    mlp = [c for c in exp.configs if c["workload"] == "mlp"]
    # k only on KNN, epochs only on the MLP; threads on both
    assert sorted((c["k"], c["threads_per_worker"]) for c in knn) == [
        (1, 1),
        (1, 2),
        (3, 1),
        (3, 2),
    ]
    assert all("epochs" not in c for c in knn)
    assert sorted((c["epochs"], c["threads_per_worker"]) for c in mlp) == [
        (5, 1),
        (5, 2),
        (10, 1),
        (10, 2),
    ]
    assert all("k" not in c for c in mlp)


def test_cells_the_registry_lacks_are_left_out_with_a_note() -> None:
    exp = load_experiment(grid={"engine": ["local", "tensorflow"], "workload": ["knn", "cnn"]})
    assert ("tensorflow", "cnn", 1) in cells(exp) and ("local", "knn", 1) in cells(exp)
    assert any("local/cnn" in note and "tensorflow/knn" in note for note in exp.notes)
    with pytest.raises(RunnerError, match="no engine you named runs the workloads"):
        load_experiment(grid={"engine": ["local"], "workload": ["cnn"]})


def test_with_an_experiment_the_options_filter_it() -> None:
    exp = load_experiment("default", grid={"engine": ["dask"], "workers": [2]})
    assert cells(exp) == {("dask", "knn", 2), ("dask", "mlp", 2)}
    # a level the experiment does not have is an error naming it (not a smaller run)
    with pytest.raises(RunnerError, match=r"no configuration with engine spark \(its levels"):
        load_experiment("default", grid={"engine": ["local", "spark"]})
    with pytest.raises(RunnerError, match=r"no configuration with workers 4"):
        load_experiment("default", grid={"workers": [1, 4]})
    with pytest.raises(RunnerError, match=r"no configuration with param k 7"):
        load_experiment("default", params={"k": [5, 7]})


def test_a_level_no_configuration_takes_is_an_error() -> None:
    with pytest.raises(RunnerError, match="--workers 2: no configuration takes it"):
        load_experiment(grid={"engine": ["local"], "workers": [2]})
    with pytest.raises(RunnerError, match="--param workers is a factor"):
        load_experiment(grid={"engine": ["local"]}, params={"workers": [2]})


def test_round_sizes_and_orders() -> None:
    assert round_sizes(10, 2) == [5, 5] and round_sizes(10, 3) == [4, 3, 3]
    assert round_sizes(3, 1) == [3]
    p = plan(TrialOptions(grid=(("engine", ("local", "dask")), ("workload", ("knn", "mlp"))), n=4))
    assert p.rounds == 2  # the default
    assert plan(TrialOptions(n=2)).rounds == 2 and plan(TrialOptions(n=1)).rounds == 1
    orders = [p.order(r) for r in range(1, 9)]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len({tuple(o) for o in orders}) > 1  # a fresh order per round
    assert orders == [Plan(p.experiment, 2).order(r) for r in range(1, 9)]  # seeded
    with pytest.raises(RunnerError, match="--rounds 5 is more than --n 2"):
        plan(TrialOptions(n=2, rounds=5))
    with pytest.raises(RunnerError, match="--max-n caps --until-ci"):
        plan(TrialOptions(max_n=20))


def test_median_interval_ranks_match_the_binomial() -> None:
    from scipy import stats

    for n in range(1, 60):
        ranks = median_ci_ranks(n)
        if n < 6:
            assert ranks is None
            continue
        assert ranks is not None
        j, k = ranks
        assert k == n + 1 - j
        # P(X(j) <= median < X(k)) = P(j <= B <= n - j), B ~ Bin(n, 1/2)
        cover = stats.binom.cdf(n - j, n, 0.5) - stats.binom.cdf(j - 1, n, 0.5)
        assert cover >= 0.95
        wider = stats.binom.cdf(n - j - 1, n, 0.5) - stats.binom.cdf(j, n, 0.5)
        assert wider < 0.95  # the narrowest pair with 95% coverage
    assert min(n for n in range(1, 60) if median_ci_ranks(n) is not None) == MIN_N
    got = median_interval([5.0, 1.0, 4.0, 2.0, 3.0, 6.0])
    assert got is not None and (got.median, got.low, got.high) == (3.5, 1.0, 6.0)
    assert got.rel_half_width == pytest.approx(2.5 / 3.5)


# -- the command line, with the in-process engine --------------------------------------------
def test_dry_run_prints_the_grid_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    args = ["--engine", "local,dask,spark,ray", "--workload", "knn,mlp", "--workers", "2"]
    proc = run_cli("runner", "trials", *args, "--n", "4", "--dry-run", "--db", db)
    assert proc.returncode == 0, proc.stderr
    assert not db.exists()
    rows = [line.split() for line in proc.stdout.splitlines() if re.match(r"^\d+\s", line)]
    assert len(rows) == 8
    assert "8 configurations x (4 trials in 2 rounds of 2+2" in proc.stdout
    assert "expected time: unknown" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "2", "--rounds", "3"], "--rounds 3 is more than --n 2"),
        (["--until-ci", "150%"], "--until-ci 150% must be between 0% and 100%"),
        (["--until-ci", "five"], "--until-ci takes a percentage"),
        (["--param", "k"], "--param takes KEY=V1,V2"),
        (["--workers", "1,x"], "--workers takes comma-separated integers"),
        (["-e", "default", "--engine", "local,spark"], "no configuration with engine spark"),
        (["--engine", "local", "--workers", "2"], "--workers 2: no configuration takes it"),
        (["--engine", "nope"], "unknown engine 'nope'"),
    ],
)
def test_bad_grid_options_are_one_line_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    db = tmp_path / "r.duckdb"
    line = assert_user_error(run_cli("runner", "trials", *args, "--db", db, "-q"))
    assert message in line
    assert not db.exists()


def test_rounds_are_stored_and_each_starts_the_engine_afresh(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    args = ["--engine", "local", "--workload", "knn", "--param", "k=1,3", "--n", "4"]
    proc = run_cli("runner", "trials", *args, "--warmup", "1", "--db", db, "-q")
    assert proc.returncode == 0, proc.stderr
    assert "2 rounds" in proc.stdout
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT params->>'$.k', round, count(*) FILTER (WHERE NOT warmup), "
        "count(*) FILTER (WHERE warmup), list(repetition ORDER BY repetition) "
        "FILTER (WHERE NOT warmup) FROM observations GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert rows == [
        ("1", 1, 2, 1, [1, 2]),
        ("1", 2, 2, 1, [3, 4]),
        ("3", 1, 2, 1, [1, 2]),
        ("3", 2, 2, 1, [3, 4]),
    ]
    # one engine start-up per configuration and round, with the machine's load around it
    setups = con.execute(
        "SELECT config_id, round, (load->'$.start') IS NOT NULL, (load->'$.end') IS NOT NULL "
        "FROM setups ORDER BY ALL"
    ).fetchall()
    assert [(r, s, e) for _, r, s, e in setups] == [(1, True, True), (2, True, True)] * 2
    # seeds are distinct across rounds (a round does not repeat the previous one's seeds)
    seeds = con.execute("SELECT config_id, list(seed) FROM trials GROUP BY ALL").fetchall()
    assert all(len(set(s)) == len(s) == 6 for _, s in seeds)
    assert con.execute("SELECT DISTINCT reason FROM stops").fetchall() == [("n",)]
    spec = json.loads(con.execute("SELECT spec FROM runs").fetchone()[0])
    assert spec["rounds"] == 2 and spec["round_sizes"] == [2, 2] and spec["from_grid"]


def test_until_ci_adds_rounds_until_the_interval_is_narrow(tmp_path: Path) -> None:
    from scipy import stats

    db = tmp_path / "r.duckdb"
    args = ["--engine", "local", "--workload", "knn", "--n", "6", "--rounds", "2"]
    proc = run_cli(
        "runner", "trials", *args, "--until-ci", "1%", "--max-n", "9", "--warmup", "0",
        "--db", db, "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    con = duckdb.connect(str(db), read_only=True)
    n_ok, rounds, reason, low, high, rel, target = con.execute(
        "SELECT n_ok, rounds, reason, ci_low, ci_high, rel_half_width, target FROM stops"
    ).fetchone()
    rows = con.execute("SELECT train_s FROM trials WHERE NOT warmup").fetchall()
    times = sorted(r[0] for r in rows)
    assert len(times) == n_ok and target == 0.01
    # the interval, recomputed from the raw times with scipy's binomial
    n = len(times)
    j = max(
        j
        for j in range(1, n // 2 + 1)
        if stats.binom.cdf(n - j, n, 0.5) - stats.binom.cdf(j - 1, n, 0.5) >= 0.95
    )
    assert (low, high) == (times[j - 1], times[n - j])
    median = float(stats.scoreatpercentile(times, 50))
    assert rel == pytest.approx((high - low) / 2 / median)
    if reason == "ci":
        assert rel <= 0.01 and 6 <= n <= 9
    else:  # a 1% interval on millisecond KNN times is rarely reached: the cap stops it
        assert reason == "max-n" and n == 9 and rel > 0.01 and rounds == 3  # 3 + 3, then 3
    assert reason in proc.stdout.replace("max-n", "max-n ")


def test_a_spec_may_set_its_rounds(tmp_path: Path) -> None:
    spec = tmp_path / "r.toml"
    spec.write_text(
        'n = 6\nrounds = 3\n[[matrix]]\nengine = "local"\nworkload = "knn"\n'
        "[quick]\nn = 2\nrounds = 1\n",
        encoding="utf-8",
    )
    assert plan(TrialOptions(experiment=str(spec))).rounds == 3
    assert plan(TrialOptions(experiment=str(spec), quick=True)).rounds == 1
    assert plan(TrialOptions(experiment=str(spec), rounds=2)).rounds == 2  # the option wins
    # the papers' quick variants are one pass; their full runs take the default 2
    assert plan(TrialOptions(experiment="000", quick=True)).rounds == 1
    assert plan(TrialOptions(experiment="000")).rounds == 2
    spec.write_text('rounds = 0\n[[matrix]]\nengine = "local"\nworkload = "knn"\n')
    with pytest.raises(RunnerError, match="rounds must be an integer from 1 to"):
        plan(TrialOptions(experiment=str(spec)))


def test_median_interval_ranks_at_large_n() -> None:
    """Beyond a thousand values the ranks stay exact (no float overflow of 2**n), and the
    log-space path above EXACT_N agrees with SciPy's binomial."""
    from scipy import stats

    from runner.stopping import EXACT_N

    for n in (1000, 1031, 4999, EXACT_N, EXACT_N + 1, 20_000, 200_001):
        ranks = median_ci_ranks(n)
        assert ranks is not None
        j, k = ranks
        assert k == n + 1 - j
        assert 2 * stats.binom.cdf(j - 1, n, 0.5) <= 0.05
        assert 2 * stats.binom.cdf(j, n, 0.5) > 0.05
