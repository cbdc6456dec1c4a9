"""The run journal (runner/journal.py) and its merge into the store: every journaled event lands
exactly once whatever fails when, a dead runner's journal is merged by the next writer, a full
disk stops the run with a clear error and no half line, and a busy database is waited for."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from runner import journal as jr
from runner.journal import Journal, JournalError, journal_path, merge, read_events, sweep
from runner.store import StoreBusy, TrialRecord, now_utc, open_store

PARAMS = {"engine": "local", "workload": "noop", "spin": 0, "metrics": 2}


def _record(run_id: str, i: int, status: str = "ok") -> TrialRecord:
    return TrialRecord(
        run_id=run_id,
        status=status,
        values={
            "config_id": "c1",
            "engine": "local",
            "workload": "noop",
            "params": PARAMS,
            "repetition": i,
            "seed": 100 + i,
            "warmup": False,
            "started_at": now_utc(),
            "wall_s": 0.001 * i,
        },
        metrics={"noop_1": float(100 + i), "noop_2": float(i)},
        samples=[(0.1 * j, 50.0, 100.0 + j, 0, 0, 0, 0) for j in range(i % 3)],
        curves=[(0, "loss", j + 1, 1.0 / (j + 1)) for j in range(i % 2 * 2)],
    )


def _begin(db: Path) -> jr.RunLog:
    with open_store(db) as store:
        return jr.RunLog.begin(store, source="measured", argv=["x"], spec={"n": 1}, env={})


def _counts(db: Path) -> tuple[int, int, int, list[int]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        trials, samples, curves = (
            con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("trials", "samples", "curves")
        )
        reps = [
            r[0] for r in con.execute("SELECT repetition FROM trials ORDER BY trial_id").fetchall()
        ]
    finally:
        con.close()
    return trials, samples, curves, reps


def test_each_event_is_merged_once_in_order_with_its_samples_and_curves(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    log = _begin(db)
    path = log.journal.path
    assert path == tmp_path / "r.duckdb.journal" / f"{log.run_id}.jsonl"
    for i in range(1, 6):
        log.append_trial(_record(log.run_id, i))
    events, _ = read_events(path)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["e"] for e in events] == ["run", "config"] + ["trial"] * 5  # params journaled once
    with open_store(db) as store:
        first = merge(store, path, log.run_id)
        again = merge(store, path, log.run_id)  # the same events again: nothing new
    assert (first.trials, again.trials, again.events) == (5, 0, 0)
    log.append_trial(_record(log.run_id, 6))
    assert log.merge(wait=5)
    assert log.end("finished") is None
    assert not path.exists() and not path.parent.exists()  # merged and ended: deleted
    trials, samples, curves, reps = _counts(db)
    # samples: i % 3 rows per trial, curves: 2 rows for odd i
    assert (trials, samples, curves) == (6, sum(i % 3 for i in range(1, 7)), 2 * 3)
    assert reps == [1, 2, 3, 4, 5, 6]
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT o.seed, o.noop_1, o.spin, (SELECT count(*) FROM samples s WHERE s.trial_id = "
        "o.trial_id), (SELECT min(step) FROM curves c WHERE c.trial_id = o.trial_id) "
        "FROM observations o ORDER BY seed"
    ).fetchall()
    status = con.execute("SELECT status FROM runs").fetchone()[0]
    con.close()
    assert status == "finished"
    for seed, noop_1, spin, n_samples, first_step in rows:
        i = seed - 100
        assert noop_1 == seed and spin == 0 and n_samples == i % 3
        assert first_step == (1 if i % 2 else None)


def test_bulk_insert_matches_one_trial_at_a_time(tmp_path: Path) -> None:
    records = [_record("r", i, "ok" if i % 4 else "interrupted") for i in range(1, 9)]
    rows = {}
    for how in ("one", "bulk"):
        with open_store(tmp_path / f"{how}.duckdb") as store:
            store.begin_run(source="measured", run_id="r")
            if how == "one":
                for record in records:
                    store.append_trial(record)
            else:
                with store.transaction():
                    ids = store.insert_trials(records)
                assert ids == sorted(ids) and len(set(ids)) == 8
            rows[how] = store.con.execute(
                "SELECT * EXCLUDE (trial_id) FROM observations ORDER BY trial_id"
            ).fetchall()
    assert rows["one"] == rows["bulk"] and len(rows["one"]) == 8


def test_a_merge_that_fails_midway_leaves_nothing_and_the_next_one_lands_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "r.duckdb"
    log = _begin(db)
    for i in range(1, 4):
        log.append_trial(_record(log.run_id, i))
    from runner.store import Store

    def boom(self: Store, run_id: str, state: object) -> None:
        raise RuntimeError("crash while recording the merged seq")

    with monkeypatch.context() as m, open_store(db) as store:
        m.setattr(Store, "set_journal_state", boom)
        with pytest.raises(RuntimeError):
            merge(store, log.journal.path, log.run_id)
    assert _counts(db)[0] == 0
    log.journal.close()  # the runner dies: its journal is an orphan
    with open_store(db) as store:  # any writable open merges a dead runner's journal
        notes = store.sweep_notes + sweep(store)
        assert store.con.execute("SELECT status FROM runs").fetchone()[0] == "killed"
    assert len(notes) == 1 and "3 trials" in notes[0] and "killed" in notes[0]
    assert _counts(db)[3] == [1, 2, 3]
    assert not log.journal.path.exists()


def test_a_half_written_last_line_is_left_and_a_live_journal_is_not_swept(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    log = _begin(db)
    log.append_trial(_record(log.run_id, 1))
    with open(log.journal.path, "ab") as fh:
        fh.write(b'{"seq": 99, "e": "trial", "status": "ok", "val')  # cut by a crash
    with open_store(db) as store:
        assert sweep(store) == []  # its runner (this process, another descriptor) holds the lock
        got = merge(store, log.journal.path, log.run_id)
    assert got.trials == 1
    assert _counts(db)[0] == 1


def test_a_full_disk_cuts_the_line_back_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "j" / "run.jsonl")
    journal.write({"e": "run"})
    size = journal.path.stat().st_size

    def half(fd: int, data: bytes) -> int:
        os.write(fd, data[: len(data) // 2])  # what a filling disk does
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jr, "_write", half)
    with pytest.raises(JournalError, match=r"^disk full: cannot write the run journal .*--resume"):
        journal.write({"e": "trial", "values": {"x": "y" * 100}})
    assert journal.path.stat().st_size == size  # no half line
    monkeypatch.setattr(jr, "_write", lambda fd, data: 3)
    with pytest.raises(JournalError, match="disk full"):
        journal.write({"e": "trial"})
    assert journal.path.stat().st_size == size
    journal.close()


def test_a_run_on_a_full_disk_fails_saying_so_with_every_written_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.trials import TrialOptions, run_experiment

    db = tmp_path / "r.duckdb"
    calls = []

    def filling(fd: int, data: bytes) -> int:
        calls.append(data)
        if len(calls) > 12:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    monkeypatch.setattr(jr, "_write", filling)
    options = TrialOptions(
        grid=(("engine", ("local",)), ("workload", ("noop",))), n=50, warmup=0, rounds=1
    )
    with pytest.raises(JournalError, match="^disk full"):
        run_experiment(options, db=db, progress=False)
    written = sum(b'"e":"trial"' in line for line in calls[:12])
    con = duckdb.connect(str(db), read_only=True)
    (run_id, status) = con.execute("SELECT run_id, status FROM runs").fetchone()
    (n,) = con.execute("SELECT count(*) FROM trials WHERE status = 'ok'").fetchone()
    (state,) = con.execute("SELECT value FROM meta WHERE key = ?", [f"journal:{run_id}"]).fetchone()
    con.close()
    assert status == "failed" and "disk full" in state
    assert n == written > 0
    assert not journal_path(db, run_id).exists()


def test_open_store_waits_for_a_busy_file_and_says_how_long(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    open_store(db).close()
    holder = _hold(db, 2.5)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreBusy, match=r"in use by another process.*waited 0\.3 s"):
            open_store(db, read_only=True, wait=0.3)
        assert 0.25 < time.monotonic() - t0 < 2
        with open_store(db, read_only=True, wait=30) as store:  # held for 2.5 s: waited for
            assert store.count_trials() == 0
        assert time.monotonic() - t0 > 1
    finally:
        holder.kill()
        holder.wait()


def _hold(db: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding ``db`` open for writing for ``seconds`` (once it printed)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(float(sys.argv[2]))", str(db), str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_an_end_that_cannot_merge_leaves_the_journal_to_the_next_writer(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    log = _begin(db)
    for i in range(1, 3):
        log.append_trial(_record(log.run_id, i))
    holder = _hold(db, 30)
    try:
        note = log.end("finished", wait=0.3)
    finally:
        holder.kill()
        holder.wait()
    assert note is not None and f"--resume {log.run_id}" in note and "stayed busy" in note
    assert log.journal.path.exists()
    with open_store(db) as store:  # the next writer merges it: the run ended as it said
        assert store.con.execute("SELECT status FROM runs").fetchone()[0] == "finished"
        assert any("2 trials" in n for n in store.sweep_notes)
    assert _counts(db)[0] == 2 and not log.journal.path.exists()


@pytest.fixture
def small_disk(tmp_path: Path):  # noqa: ANN201 - a generator fixture
    """A 1 MiB tmpfs: too small for the database's first commit (needs root to mount)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_real_full_disk_under_the_database_is_one_line_and_resume_finishes_the_run(
    small_disk: Path, tmp_path: Path
) -> None:
    from tests.conftest import assert_user_error, run_cli

    db = small_disk / "r.duckdb"
    args = ["--engine", "local", "--workload", "noop", "--n", "5", "--no-sample", "-q"]
    line = assert_user_error(run_cli("runner", "trials", *args, "--db", db, timeout=300))
    assert line.startswith("error: disk full: cannot merge the run's trials into"), line
    assert "--resume" in line
    (journal,) = Path(f"{db}.journal").iterdir()
    lines = journal.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json_ok(x) for x in lines[:-1])  # no half line
    run_id = journal.stem
    # space freed: the files moved to a disk with room, where --resume merges and finishes
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("r.duckdb", "r.duckdb.wal"):
        if (small_disk / name).exists():
            (moved / name).write_bytes((small_disk / name).read_bytes())
    journal_path(moved / "r.duckdb", run_id).parent.mkdir()
    journal_path(moved / "r.duckdb", run_id).write_bytes(journal.read_bytes())
    proc = run_cli("runner", "trials", "--resume", run_id, "--db", moved / "r.duckdb", "-q")
    assert proc.returncode == 0, proc.stderr
    # the same run, never interrupted, on a disk with room: the reference
    clean = tmp_path / "clean.duckdb"
    assert run_cli("runner", "trials", *args, "--db", clean).returncode == 0
    assert _finished_run(moved / "r.duckdb") == _finished_run(clean)


def _finished_run(db: Path) -> tuple[str, list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        (status,) = con.execute("SELECT status FROM runs").fetchone()
        trials = con.execute(
            "SELECT round, warmup, repetition, seed, status FROM trials ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    return status, trials


def json_ok(line: bytes) -> bool:
    import json

    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_an_unmerged_journal_s_note_counts_with_separators_and_marks_its_command_as_asked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.duckdb.journal" / "k1.jsonl"
    u = jr.Unmerged("k1", path, 5218, "killed")
    note = u.note()
    assert note == (
        f"run k1 was killed; 5,218 finished trials are kept in {path} and are not in the "
        "database yet; `runner trials --resume k1` merges them (so does any command that "
        "writes to the database)"
    )
    assert note.unmerged is u  # a reader naming the run can fold the note into its line
    plain = u.note("")  # a report: no literal backticks
    assert "`" not in plain and "; runner trials --resume k1 merges them" in plain
    assert (
        "ended interrupted; 1 finished trial is kept"
        in jr.Unmerged("i", path, 1, "interrupted").note()
    )
