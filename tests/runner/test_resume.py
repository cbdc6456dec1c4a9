"""SIGKILL of `runner trials` at random moments loses no journaled trial and duplicates none, and
`runner trials --resume` completes the run to exactly its planned trials with the seeds an
uninterrupted run uses; what --resume refuses."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pytest

from tests.conftest import assert_user_error, run_cli

RUNNER = Path(sys.executable).parent / "runner"
#: two configurations, 2 rounds of 60 + 1 warm-up each: 242 trials
ARGS = ["--engine", "local", "--workload", "noop", "--param", "spin=0,20000", "--n", "120",
        "--seed", "11", "-q"]  # fmt: skip
PLANNED = 2 * (120 + 2)
KILLS = 10
#: seconds `runner trials --help` takes on an idle machine (about; bench/RESULTS.md: 0.14-0.19)
HELP_S = 0.3


def _journaled(db: Path) -> set[tuple[str, bool, int, int]]:
    """(params_id, warmup, repetition, seed) of every trial line in db's journals now."""
    out = set()
    for path in Path(f"{db}.journal").glob("*.jsonl"):
        for line in path.read_bytes().split(b"\n")[:-1]:
            event = json.loads(line)
            records = [event] if event["e"] == "trial" else event.get("records", [])
            for r in records:
                if r["status"] != "interrupted":
                    v = r["values"]
                    out.add((v["params_id"], v["warmup"], v["repetition"], v["seed"]))
    return out


def _rows(db: Path) -> list[tuple]:
    if not db.exists():  # killed before it was made
        return []
    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = {r[0] for r in con.execute("DESCRIBE trials").fetchall()}
        metric = "noop_1" if "noop_1" in columns else "NULL"  # added with the first trial
        return con.execute(
            f"SELECT params_id, warmup, repetition, seed, round, status, wall_s, {metric}, "
            "run_id FROM trials WHERE status <> 'interrupted'"
        ).fetchall()
    finally:
        con.close()


def _unfinished(db: Path) -> bool:
    if not db.exists():
        return False
    con = duckdb.connect(str(db), read_only=True)
    try:
        return bool(
            con.execute("SELECT count(*) FROM runs WHERE status <> 'finished'").fetchone()[0]
        )
    finally:
        con.close()


def _kill_after(args: list[str], delay: float) -> None:
    proc = subprocess.Popen([str(RUNNER), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    runner = psutil.Process(proc.pid)
    time.sleep(delay)
    try:
        tree = runner.children(recursive=True)
    except psutil.Error:
        tree = []
    proc.kill()
    proc.wait()
    for child in tree:  # the worker (cleaning up after a SIGKILLed runner is not the point here)
        with contextlib.suppress(psutil.Error):
            child.kill()


def test_random_sigkills_lose_nothing_and_resume_completes_with_the_same_seeds(
    tmp_path: Path,
) -> None:
    seed = int.from_bytes(os.urandom(4))
    rng = random.Random(seed)
    db = tmp_path / "r.duckdb"
    # an uninterrupted run of the same spec, meanwhile: the trials, rounds and seeds to get
    clean = tmp_path / "clean.duckdb"
    reference = subprocess.Popen(
        [str(RUNNER), "trials", *ARGS, "--db", str(clean)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # the kills land 0.8-4 s into a run on an idle machine (start-up ~1 s); a loaded one starts
    # slower (21 s at load 10, where no kill reached a trial): the delays stretch with it
    t = time.monotonic()
    assert run_cli("runner", "trials", "--help").returncode == 0
    stretch = max(1.0, (time.monotonic() - t) / HELP_S)
    journaled: set[tuple[str, bool, int, int]] = set()
    kills = 0
    resumed = 0
    while kills < KILLS:
        resume = _unfinished(db)
        args = ["trials", "--resume", "--db", str(db), "-q"] if resume else \
            ["trials", *ARGS, "--db", str(db)]  # fmt: skip
        _kill_after(args, rng.uniform(0.8, 4.0) * stretch)
        kills += 1
        resumed += resume
        journaled |= _journaled(db)
        rows = _rows(db)  # the database opens after every kill
        # a run that finished between kills is followed by a new run of the same spec: the
        # same configurations, repetitions and seeds, in another run
        keys = [(r[-1], *r[:3]) for r in rows]
        assert len(keys) == len(set(keys)), f"duplicated trials (seed {seed})"
        for *_, status, wall_s, noop_1, _run in rows:
            assert status == "ok" and wall_s is not None and noop_1 is not None  # no half rows
    for _ in range(3):  # the run left unfinished (and one whose start a kill cut, if any)
        if not _unfinished(db):
            break
        proc = run_cli("runner", "trials", "--resume", "--db", db, "-q", timeout=300)
        assert proc.returncode == 0, proc.stderr
        resumed += 1
    assert not _unfinished(db)
    rows = _rows(db)
    assert journaled <= {r[:4] for r in rows}, f"journaled trials lost (seed {seed})"
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err
    want = sorted(r[:5] for r in _rows(clean))
    assert len(want) == PLANNED
    by_run: dict[str, list[tuple]] = {}
    for r in rows:
        by_run.setdefault(r[-1], []).append(r[:5])
    assert by_run
    for run_rows in by_run.values():  # one run, or two when a kill cut a run's very start
        assert sorted(run_rows) == want, f"seed {seed}"
    assert not Path(f"{db}.journal").exists()
    # a finished run, an unknown one, none left: refused
    run_id = next(iter(by_run))
    line = assert_user_error(run_cli("runner", "trials", "--resume", run_id, "--db", db))
    assert f"run {run_id} finished; there is nothing to resume" in line
    line = assert_user_error(run_cli("runner", "trials", "--resume", "nope", "--db", db))
    assert "has no run 'nope'" in line
    line = assert_user_error(run_cli("runner", "trials", "--resume", "--db", db))
    assert "no unfinished run to resume" in line
    print(f"{kills} kills, {resumed} resumes, {len(by_run)} runs (random seed {seed}, delays "
          f"x{stretch:.1f})")  # fmt: skip


def test_resume_refuses_what_it_cannot_take_up(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    line = assert_user_error(run_cli("runner", "trials", "--resume", "--db", db))
    assert "no database" in line
    line = assert_user_error(run_cli("runner", "trials", "--resume", "--n", "3", "--db", db))
    assert "leave out --n" in line
    line = assert_user_error(run_cli("runner", "trials", "abc", "--db", db))
    assert "add --resume" in line
    assert not db.exists()


def test_resume_refuses_a_run_whose_engine_is_not_installed(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    from runner.store import open_store

    spec = {"name": "x", "path": "x.toml", "n": 2, "warmup": 0, "seed": 0, "timeout": 60,
            "rounds": 1, "configs": [{"engine": "nosuchengine", "workload": "noop"}]}  # fmt: skip
    with open_store(db) as store:
        store.begin_run(source="measured", run_id="abc", spec=spec)
    line = assert_user_error(run_cli("runner", "trials", "--resume", "abc", "--db", db))
    assert "nosuchengine" in line


def test_a_resumed_round_runs_its_warm_ups_again_on_its_fresh_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed after a round's warm-up and first measured trial: the resumed round starts a
    new engine, runs the warm-up again (its seed, unrecorded) before the measured trials left,
    and the run ends with exactly the uninterrupted run's trials."""
    from runner import trials
    from runner.trials import TrialOptions, resume_run, run_experiment

    db = tmp_path / "r.duckdb"
    options = TrialOptions(
        grid=(("engine", ("local",)), ("workload", ("noop",))),
        n=4, warmup=1, rounds=1, seed=5, sample=False,
    )  # fmt: skip
    run_id = run_experiment(options, db=db, progress=False).run_id
    query = ("SELECT warmup, repetition, seed, round, status FROM trials WHERE run_id = ? "
             "ORDER BY warmup DESC, repetition")  # fmt: skip
    con = duckdb.connect(str(db))
    try:
        want = con.execute(query, [run_id]).fetchall()
        # what a kill after the warm-up and the first measured trial leaves
        con.execute("DELETE FROM trials WHERE NOT warmup AND repetition > 1")
        con.execute("DELETE FROM stops")
        con.execute("UPDATE runs SET status = 'killed', finished_at = NULL")
    finally:
        con.close()
    assert [r[:2] for r in want] == [(True, 1), (False, 1), (False, 2), (False, 3), (False, 4)]
    seeds: list[int] = []
    real = trials._run_trial

    def spy(worker: Any, seed: int, *args: Any, **kwargs: Any) -> Any:
        seeds.append(seed)
        return real(worker, seed, *args, **kwargs)

    monkeypatch.setattr(trials, "_run_trial", spy)
    result = resume_run(db=db, progress=False)
    assert result.run_id == run_id
    # the warm-up's seed first (on the new engine), then measured trials 2-4: 3 rows, not 4
    assert seeds == [want[0][2], *(r[2] for r in want[2:])]
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute(query, [run_id]).fetchall() == want
        (setups,) = con.execute("SELECT count(*) FROM setups WHERE run_id = ?", [run_id]).fetchone()
    finally:
        con.close()
    assert setups == 2  # the first round's engine, and the resumed round's
