"""``analyze`` says when the trials it uses come from runs that did not finish (killed,
interrupted, failed, still running or with a dead runner), how to resume them and how to leave
them out, and prints the store's notes on dead runners' unmerged journals: on stderr, never in
the result on stdout. Counts are checked against DuckDB queries on the file."""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path

import duckdb
import pytest

from runner.store import open_store
from tests.conftest import run_cli
from tests.reports.unfinished import add_run, db_count, make_killed_db

OK = "status = 'ok' AND (warmup = false OR warmup IS NULL)"


def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note: ")]


def _journal_trials(db: Path, run_id: str) -> int:
    """Finished trials in ``run_id``'s journal after the seq merged into ``db`` (read from the
    JSON lines and the database directly; a half-written last line does not count)."""
    path = Path(f"{db}.journal") / f"{run_id}.jsonl"
    if not path.exists():
        return 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", [f"journal:{run_id}"]).fetchone()
    finally:
        con.close()
    merged = json.loads(row[0])["seq"] if row else 0
    n = 0
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("seq", 0) > merged:
            n += {"trial": 1, "trials": len(event.get("records") or ())}.get(event.get("e"), 0)
    return n


def _analyze(*args: str | Path) -> tuple[str, list[str]]:
    proc = run_cli("analyze", *args)
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if not line.startswith("note: ")] == []
    return proc.stdout, _notes(proc.stderr)


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    db = tmp_path_factory.mktemp("killed") / "r.duckdb"
    finished, killed = make_killed_db(db)
    return db, finished, killed


def test_a_sigkilled_runner_s_trials_are_named_before_and_after_a_writer_marks_it_killed(
    killed: tuple[Path, str, str],
) -> None:
    db, finished, run_id = killed
    # before any writer: the run is still 'running', its runner dead; its journal may hold
    # trials not merged yet
    stdout, notes = _analyze("summary", "--db", db, "--format", "json")
    json.loads(stdout)  # the result is untouched
    n = db_count(db, f"SELECT count(*) FROM trials WHERE run_id = ? AND {OK}", [run_id])
    total = db_count(db, f"SELECT count(*) FROM trials WHERE {OK}")
    assert 0 < n < total
    assert notes[0].startswith(
        f"note: {n:,} of {total:,} selected trials come from run {run_id}, which did not finish "
        "(its runner is gone; last trial "
    )
    assert f"`runner trials --resume {run_id} --db {db}`" in notes[0]
    assert notes[0].endswith("; leave out: --where run_status=finished")
    journal = Path(f"{db}.journal") / f"{run_id}.jsonl"
    kept = _journal_trials(db, run_id)
    # one line for the run, with what its journal still holds (not a second line for that)
    assert len(notes) == 1
    if kept:
        assert (
            f"; {kept:,} more of its finished trials are in its journal {journal}, not in the "
            f"database yet; resume (merges them too): `runner trials --resume {run_id} "
            f"--db {db}`"
        ) in notes[0]
    # the way out it names works: the finished run's trials only (counted by DuckDB), and only
    # the journal's note is left
    stdout, left = _analyze(
        "summary", "--db", db, "--where", "run_status=finished", "--format", "json"
    )
    rows = json.loads(stdout)["rows"]
    done = db_count(db, f"SELECT count(*) FROM trials WHERE run_id = ? AND {OK}", [finished])
    assert sum(r["n"] for r in rows) == done > 0
    assert done == db_count(
        db,
        "SELECT count(*) FROM trials t JOIN runs r USING (run_id) WHERE r.status = 'finished' "
        "AND t.status = 'ok' AND (t.warmup = false OR t.warmup IS NULL)",
    )
    if kept:
        assert len(left) == 1 and left[0].startswith(
            f"note: run {run_id} was killed; {kept:,} finished trial"
        )
        assert f"in {journal} and are not in the database yet; `runner trials" in left[0]
    else:
        assert left == []
    # a writer merges the dead runner's journal and marks the run killed
    open_store(db).close()
    assert db_count(db, "SELECT count(*) FROM runs WHERE status = 'killed'") == 1
    n = db_count(db, f"SELECT count(*) FROM trials WHERE run_id = ? AND {OK}", [run_id])
    total = db_count(db, f"SELECT count(*) FROM trials WHERE {OK}")
    _, notes = _analyze("ttest", "--db", db, "--group", "spin", "--a", "0", "--b", "20000")
    assert len(notes) == 1  # merged: no journal left to mention
    assert notes[0].startswith(
        f"note: {n:,} of {total:,} selected trials come from run {run_id}, which was killed "
        "(its runner died; last trial 20"
    )
    assert re.search(r"last trial \d{4}-\d\d-\d\d \d\d:\d\d UTC\); resume: ", notes[0])
    # compare names the unfinished side's trials only
    _, notes = _analyze("compare", finished, run_id, "--db", db)
    assert len(notes) == 1 and f"of {total:,} selected" in notes[0]


def test_each_ending_is_named_with_its_reason_and_counts(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    add_run(db, "good", "finished", 6)
    add_run(db, "int1", "interrupted", 4, signal="SIGTERM", minute=1)
    add_run(db, "fail1", "failed", 3, error="disk full", minute=2)
    add_run(db, "imp1", "killed", 2, source="import:x.csv", minute=3)
    _, notes = _analyze("summary", "--db", db, "--by", "engine")
    assert notes == [
        "note: 4 of 15 selected trials come from run int1, which was interrupted (SIGTERM; last "
        "trial 2026-12-07 02:01 UTC); resume: `runner trials --resume int1 --db "
        f"{db}`",
        "note: 3 of 15 selected trials come from run fail1, which ended failed (disk full; last "
        f"trial 2026-12-07 02:02 UTC); resume: `runner trials --resume fail1 --db {db}`",
        # an import is not resumed
        "note: 2 of 15 selected trials come from run imp1, which was killed (its runner died; "
        "last trial 2026-12-07 02:03 UTC); leave out: --where run_status=finished",
    ]
    # the --where that selects only the finished run's trials: nothing to say
    _, notes = _analyze("summary", "--db", db, "--where", "run_id=good")
    assert notes == []


def test_a_run_still_running_is_named_as_such_without_a_resume_line(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    add_run(db, "done", "finished", 5)
    add_run(db, "live", "running", 2, minute=5)
    folder = Path(f"{db}.journal")
    folder.mkdir()
    fd = os.open(folder / "live.jsonl", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a live runner holds
        proc = run_cli("analyze", "summary", "--by", "engine", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert _notes(proc.stderr) == [
            "note: 2 of 7 selected trials come from run live, which is still running (last "
            "trial 2026-12-07 02:05 UTC); leave out: --where run_status=finished"
        ]
    finally:
        os.close(fd)
    # its runner gone (the lock released): resumable, and the default --db is not repeated
    proc = run_cli("analyze", "summary", "--by", "engine", cwd=tmp_path)
    assert _notes(proc.stderr)[0].endswith(
        "which did not finish (its runner is gone; last trial 2026-12-07 02:05 UTC); resume: "
        "`runner trials --resume live`; leave out: --where run_status=finished"
    )


def test_finished_runs_only_add_no_note_and_errors_stay_one_line(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    add_run(db, "a", "finished", 5)
    add_run(db, "b", "finished", 5, engine="dask")
    for args in (
        ("summary",),
        ("ttest", "--group", "engine", "--a", "local", "--b", "dask"),
    ):
        proc = run_cli("analyze", *args, "--db", db)
        assert proc.returncode == 0, proc.stderr
        assert _notes(proc.stderr) == []
    proc = run_cli("analyze", "summary", "--db", tmp_path / "none.duckdb")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: no database at ")


def test_hostile_run_ids_and_paths_stay_one_quoted_line(tmp_path: Path) -> None:
    folder = tmp_path / "a b;$(x)"
    folder.mkdir()
    db = folder / "r'1.duckdb"
    run_id = "k; rm -rf ~ \x1b[31m"
    add_run(db, "fine", "finished", 2)
    add_run(db, run_id, "killed", 1, minute=1)
    _, notes = _analyze("summary", "--db", db)
    assert len(notes) == 1
    assert "\x1b" not in notes[0]  # shown as a visible escape, not sent to the terminal
    assert "--resume 'k; rm -rf ~ " in notes[0]
    assert "--db '" in notes[0] and "a b;$(x)/r'\"'\"'1.duckdb'" in notes[0]


def test_an_ending_without_a_trial_time_or_reason_says_only_what_is_known() -> None:
    from analysis.provenance import UnfinishedRun

    def run(status: str, alive: bool = False, reason: str | None = None) -> str:
        return UnfinishedRun("r", status, alive, "import:x.csv", 1, None, reason).ending()

    assert run("killed") == "was killed (its runner died)"
    assert run("interrupted") == "was interrupted"
    assert run("failed", reason="disk full") == "ended failed (disk full)"
    assert run("running", alive=True) == "is still running"
    assert run("running") == "did not finish (its runner is gone)"


def test_a_journal_note_on_a_named_run_is_folded_into_its_line(tmp_path: Path) -> None:
    """A dead run with trials both merged and still in its journal: one line (the run's, with
    the journal's count), not two; the note on a journal of a run not selected stays its own
    line; the report's lines (mark "") carry no backticks; counts with thousands separators."""
    from analysis.provenance import provenance
    from runner.journal import Unmerged

    db = tmp_path / "r.duckdb"
    add_run(db, "good", "finished", 6)
    add_run(db, "k1", "killed", 4, minute=1)
    add_run(db, "k2", "killed", 2, minute=2)
    folder = Path(f"{db}.journal")
    notes = [
        Unmerged("k1", folder / "k1.jsonl", 5218, "killed").note(),
        Unmerged("k2", folder / "k2.jsonl", 1234567, "killed").note(),
        "some other note of the store",
    ]
    with open_store(db, read_only=True) as store:
        found = provenance(store.con, db=db, selections=[["run_id!=k2"]], store_notes=notes)
    lines = found.lines()
    assert len(lines) == 3, lines
    assert lines[0] == (
        f"4 of 10 selected trials come from run k1, which was killed (its runner died; last "
        f"trial 2026-12-07 02:01 UTC); 5,218 more of its finished trials are in its journal "
        f"{folder / 'k1.jsonl'}, not in the database yet; resume (merges them too): "
        f"`runner trials --resume k1 --db {db}`; leave out: --where run_status=finished"
    )
    assert lines[1].startswith("run k2 was killed; 1,234,567 finished trials are kept in ")
    assert "; `runner trials --resume k2` merges them" in lines[1]
    assert lines[2] == "some other note of the store"
    report = found.lines(exclude_hint=False, mark="")
    assert not any("`" in line for line in report), report
    assert report[0].endswith(f"resume (merges them too): runner trials --resume k1 --db {db}")
    assert "; runner trials --resume k2 merges them" in report[1]


def test_a_sigterm_is_recorded_as_the_run_s_end_and_named_from_there(tmp_path: Path) -> None:
    """SIGTERM: the runner records the signal where a failed run's error goes (the journal
    state in meta), and the note names it from there, not from the interrupted trial's text."""
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "r.duckdb"
    runner = Path(sys.executable).parent / "runner"
    proc = subprocess.Popen(
        [str(runner), "trials", "--engine", "local", "--workload", "noop", "--n", "1000000",
         "--param", "spin=25000000", "--warmup", "0", "--db", str(db), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    folder = Path(f"{db}.journal")
    deadline = time.monotonic() + 180
    try:  # once a trial is journaled, the signal lands in a later one
        while time.monotonic() < deadline and not any(
            b'"e":"trial"' in p.read_bytes() for p in folder.glob("*.jsonl")
        ):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    con = duckdb.connect(str(db))
    try:
        run_id, status = con.execute("SELECT run_id, status FROM runs").fetchone()
        (state,) = con.execute(
            "SELECT value FROM meta WHERE key = ?", [f"journal:{run_id}"]
        ).fetchone()
        n = con.execute(f"SELECT count(*) FROM trials WHERE {OK}").fetchone()[0]
        # an old database's fallback (the trial's text) cannot be what names it below
        con.execute("UPDATE trials SET error = 'cut' WHERE status = 'interrupted'")
    finally:
        con.close()
    assert status == "interrupted" and json.loads(state)["error"] == "SIGTERM"
    assert n > 0
    _, notes = _analyze("summary", "--db", db)
    assert len(notes) == 1 and notes[0].startswith(
        f"note: {n:,} of {n:,} selected trials come from run {run_id}, which was interrupted "
        "(SIGTERM; last trial "
    )


def test_a_view_from_before_run_status_is_told_the_run_id_items(tmp_path: Path) -> None:
    """A file whose view predates ``run_status``, read without a writer since: the way out
    names each run (``--where run_id!=...``), which works there."""
    db = tmp_path / "r.duckdb"
    add_run(db, "good", "finished", 6)
    add_run(db, "k1", "killed", 4, minute=1)
    con = duckdb.connect(str(db))
    try:
        (sql,) = con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'observations'"
        ).fetchone()
        con.execute(sql.replace(", r.status AS run_status", "").replace(
            "CREATE VIEW", "CREATE OR REPLACE VIEW"))  # fmt: skip
    finally:
        con.close()
    _, notes = _analyze("summary", "--db", db)
    assert len(notes) == 1 and notes[0].endswith("; leave out: --where run_id!=k1")
    _, notes = _analyze("summary", "--db", db, "--where", "run_id!=k1")
    assert notes == []
