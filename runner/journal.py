"""The run journal: what ``runner trials`` records between its merges into the database.

A run appends one JSON line per event to its own file, ``<db>.journal/<run_id>.jsonl`` (for
``--db results.duckdb``: ``results.duckdb.journal/``), each with an increasing ``seq``:

- ``run``: the run's row (source, argv, spec, env, started_at); ``resume``: the run taken up again;
- ``config``: a configuration's params (once), which its trials refer to by ``params_id``;
- ``setup``: an engine start-up (a ``setups`` row), known by its ``seq``; ``setup_load``: the
  machine's load around it, set at the end of its round;
- ``trial`` / ``trials``: a finished trial (a :class:`runner.store.TrialRecord`: values, metrics,
  samples, curves), or several that must land together;
- ``stop``: why a configuration took no more trials; ``end``: how the run ended.

Each line is written with one ``os.write`` of its encoded bytes: no Python buffering and no
fsync, so when the process is killed (SIGKILL included) every line it wrote is in the page cache
and survives; a line is never half there unless the machine itself fails or the disk fills, and
a last line without its newline is ignored when read. A write that fails (a full disk, an I/O
error) is cut back off the file and raises :class:`JournalError`.

The runner holds ``flock(LOCK_EX)`` on its journal for its whole life: whoever can take the lock
knows its writer is dead. :func:`merge` replays the events after the run's last merged ``seq``
into the database in ONE transaction, through the store's own methods, and records the new
``seq`` (and the setup ids a later ``setup_load`` needs) in ``meta`` (key ``journal:<run_id>``)
in the same transaction: a crash at any moment merges nothing twice and loses nothing.
:func:`sweep` merges the journals of dead writers (marking their runs ``killed`` unless they
recorded an end) and deletes them; :class:`RunLog` is the runner's side.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.errors import RunnerError

#: Least seconds between the runner's attempts to merge its journal (a busy database is tried
#: again after this).
MERGE_EVERY_S = 1.0
#: After a merge, the next waits at least this many times as long as the merge took, so merging
#: (opening the database, one transaction, closing it: ~50 ms idle, whatever the trial count)
#: costs at most ~2% of a run's time, whether its trials take a millisecond or a minute ...
MERGE_SPACING = 50.0
#: ... but readers wait at most this many seconds for a finished trial.
MERGE_AT_MOST_S = 30.0
#: Seconds the merge at the end of a run waits for a busy database.
FINAL_WAIT_S = 120.0
SUFFIX = ".jsonl"
#: The one system call that writes a journal line (a seam for tests of a full disk).
_write = os.write


class JournalError(RunnerError):
    """The journal cannot be written (a full disk, an I/O error) or read."""


def journal_dir(db: str | Path) -> Path:
    """The folder of ``db``'s journals: ``<db>.journal`` beside it."""
    db = Path(db)
    return db.with_name(db.name + ".journal")


def journal_path(db: str | Path, run_id: str) -> Path:
    return journal_dir(db) / f"{run_id}{SUFFIX}"


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


class Journal:
    """A run's journal, open for appending and locked (``flock``) until :meth:`close`."""

    def __init__(self, path: Path, seq: int = 0) -> None:
        self.path = path
        self.seq = seq
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        for _ in range(5):  # another runner may remove the (empty) folder in between
            path.parent.mkdir(exist_ok=True)
            try:
                self.fd = os.open(path, flags, 0o644)
                break
            except FileNotFoundError:
                continue
        else:
            raise JournalError(f"cannot create the journal {path}")
        import fcntl

        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise JournalError(
                f"{path} is locked by another runner (is run {path.stem} still going?)"
            ) from None
        self.size = os.fstat(self.fd).st_size

    def write(self, event: Mapping[str, Any]) -> int:
        """Append one event (a ``seq`` added) with one write; return its ``seq``."""
        seq = self.seq + 1
        data = (
            json.dumps({"seq": seq, **event}, separators=(",", ":"), default=_default) + "\n"
        ).encode()
        try:
            written = _write(self.fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write")
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)  # no half line left behind
            what = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "I/O error"
            raise JournalError(
                f"{what}: cannot write the run journal {self.path} ({exc.strerror or exc}); "
                "free space (or fix the disk), then `runner trials --resume` continues the run"
            ) from None
        self.size += len(data)
        self.seq = seq
        return seq

    def close(self, delete: bool = False) -> None:
        """Release the lock (deleting the file first when ``delete``); idempotent."""
        if self.fd < 0:
            return
        if delete:
            with contextlib.suppress(OSError):
                self.path.unlink()
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # only when empty
        os.close(self.fd)
        self.fd = -1


def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete lines of ``path`` from byte ``offset`` on, decoded, and the offset after the
    last of them (a last line without its newline is left for later)."""
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    events = []
    for number, line in enumerate(data[:end].splitlines(), 1):
        try:
            events.append(json.loads(line))
        except ValueError:
            raise JournalError(
                f"{path}: line {number} after byte {offset} is not JSON; the journal is damaged "
                "(move it away to open the database without it)"
            ) from None
    return events, offset + end


def trial_event(record: Any, params_id: str | None) -> dict[str, Any]:
    """A :class:`runner.store.TrialRecord` as a journal event's fields (its params by id)."""
    values = {k: v for k, v in record.values.items() if k != "params"}
    if params_id is not None:
        values["params_id"] = params_id
    out: dict[str, Any] = {"status": record.status, "values": values, "metrics": record.metrics}
    if record.samples:
        out["samples"] = record.samples
    if record.curves:
        out["curves"] = record.curves
    return out


def _record(run_id: str, event: Mapping[str, Any]) -> Any:
    from runner.store import TrialRecord

    values = dict(event["values"])
    if "started_at" in values:
        values["started_at"] = _time(values["started_at"])
    return TrialRecord(
        run_id=run_id,
        status=event["status"],
        values=values,
        metrics=event.get("metrics") or {},
        samples=event.get("samples") or [],
        curves=[tuple(c) for c in event.get("curves") or []],
    )


@dataclass
class Merged:
    """What one merge did."""

    events: int = 0
    trials: int = 0
    #: the run's status after the merge (None: no such run)
    status: str | None = None
    offset: int = 0
    seconds: float = 0.0


def merge(
    store: Any,
    path: Path,
    run_id: str,
    *,
    offset: int = 0,
    finish: tuple[str, str | None] | None = None,
) -> Merged:
    """Replay the events of ``path`` after the run's last merged ``seq`` into ``store`` in one
    transaction, and record the new ``seq`` in it. ``finish`` (status, reason): end the run so
    when it is still ``running`` after the events (a dead writer's run: ``killed``; a run whose
    end could not be journaled). ``offset``: where in the file the unmerged events start, when
    the caller knows (its own journal); else the whole file is read."""
    t0 = time.perf_counter()
    events, end = read_events(path, offset)
    out = Merged(offset=end)
    with store.transaction():
        state = store.journal_state(run_id)
        last = int(state["seq"])
        setups = state["setups"]
        records = []
        for event in events:
            seq = int(event["seq"])
            if seq <= last:
                continue
            last = seq
            out.events += 1
            kind = event["e"]
            if kind == "trial":
                records.append(_record(run_id, event))
            elif kind == "trials":
                records += [_record(run_id, e) for e in event["records"]]
            elif kind == "config":
                store.add_params(event["params"])
            elif kind == "setup":
                fields = dict(event["fields"])
                fields["started_at"] = _time(fields["started_at"])
                setups[str(seq)] = store.add_setup(run_id=run_id, **fields)
            elif kind == "setup_load":
                setup_id = setups.pop(str(event["setup"]), None)
                if setup_id is not None:
                    store.set_setup_load(setup_id, event["load"])
            elif kind == "stop":
                fields = dict(event["fields"])
                if fields.get("ci") is not None:
                    fields["ci"] = tuple(fields["ci"])
                store.add_stop(run_id=run_id, **fields)
            elif kind == "run":
                if store.run_row(run_id) is None:
                    store.begin_run(
                        run_id=run_id,
                        source=event["source"],
                        argv=event.get("argv") or (),
                        spec=event.get("spec"),
                        env=event.get("env"),
                        started_at=_time(event.get("started_at")),
                    )
            elif kind == "resume":  # the old journal's setups take no more events
                store.reopen_run(run_id)
                state.pop("error", None)
                setups.clear()
            elif kind == "end":
                store.finish_run(run_id, event["status"], _time(event.get("finished_at")))
                if event.get("error"):
                    state["error"] = event["error"]
            else:
                raise JournalError(f"{path}: unknown event {kind!r} (seq {seq})")
        out.trials = len(store.insert_trials(records))
        row = store.run_row(run_id)
        out.status = None if row is None else row["status"]
        if finish is not None and out.status == "running":
            store.finish_run(run_id, finish[0])
            out.status = finish[0]
            if finish[1]:
                state["error"] = finish[1]
        state["seq"] = last
        store.set_journal_state(run_id, state)
    out.seconds = time.perf_counter() - t0
    return out


def _dead_journals(
    store: Any, *, hold: bool, skip: Iterable[str] = ()
) -> Iterator[tuple[Path, str]]:
    """(path, run_id) of each journal beside ``store``'s file whose runner is dead: its lock can
    be taken (sorted; the runs in ``skip`` left out). ``hold``: the lock is taken exclusive and
    held until the caller asks for the next journal (:func:`sweep` merges and deletes it
    meanwhile), and a journal another process merged and deleted or replaced in between is left
    out; else it is taken shared and released at once (:func:`unmerged` only reads), so a runner
    taking the journal over (``--resume``) in that instant is refused the lock either way."""
    import fcntl

    folder = journal_dir(store.path)
    if not folder.is_dir():
        return
    skipped = set(skip)
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        run_id = path.name[: -len(SUFFIX)]
        if run_id in skipped:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if hold else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its runner is alive (and merges it)
            if not hold:
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:
                try:
                    if os.stat(path).st_ino != os.fstat(fd).st_ino:
                        continue  # merged and replaced meanwhile
                except FileNotFoundError:
                    continue  # merged and deleted by another process meanwhile
            yield path, run_id
        finally:
            os.close(fd)


def sweep(store: Any, skip: Iterable[str] = ()) -> list[str]:
    """Merge every journal of ``store`` whose writer is dead (its lock can be taken), ending
    runs that recorded no end as ``killed``, and delete it. Returns a note per journal merged
    (or left, when it cannot be merged)."""
    notes = []
    for path, run_id in _dead_journals(store, hold=True, skip=skip):
        try:
            done = merge(store, path, run_id, finish=("killed", "the runner died"))
        except (RunnerError, ValueError, KeyError) as exc:
            notes.append(f"journal {path} of run {run_id} left unmerged: {exc}")
            continue
        with contextlib.suppress(OSError):
            path.unlink()
        notes.append(
            f"merged the journal of run {run_id} ({done.trials} trials; the run is {done.status})"
        )
    with contextlib.suppress(OSError):
        journal_dir(store.path).rmdir()  # only when empty
    return notes


@dataclass
class Unmerged:
    """A dead runner's journal holding finished trials the database does not have yet (what a
    read-only open reports: only a writer can merge them)."""

    run_id: str
    path: Path
    #: finished trials after the last merged ``seq``
    trials: int
    #: how the run ended by its journal (``killed``: it recorded no end)
    status: str

    def note(self, mark: str = "`") -> JournalNote:
        """One line for a reader of the database (the command between ``mark``: a report
        passes ``""``), as a :class:`JournalNote` that still knows the run and its count."""
        how = "was killed" if self.status == "killed" else f"ended {self.status}"
        text = (
            f"run {self.run_id} {how}; {self.trials:,} finished "
            f"{'trial is' if self.trials == 1 else 'trials are'} kept in {self.path} "
            f"and are not in the database yet; {mark}runner trials --resume {self.run_id}{mark} "
            "merges them (so does any command that writes to the database)"
        )
        return JournalNote(text, self)


class JournalNote(str):
    """A store note on a dead runner's unmerged journal: the text, plus the :class:`Unmerged`
    it tells of, so a reader that also names the run (``analysis.provenance``) can make one
    line of the two, and re-mark the command for a report."""

    unmerged: Unmerged

    def __new__(cls, text: str, unmerged: Unmerged) -> JournalNote:
        note = super().__new__(cls, text)
        note.unmerged = unmerged
        return note


def unmerged(store: Any) -> list[Unmerged]:
    """The journals beside ``store``'s file whose runner is dead and that hold trials not merged
    into it, without writing anything (a read-only open's view; :func:`sweep` merges them). A
    journal whose runner is alive (it holds the lock) is not read: its merges are under way. A
    damaged journal is skipped."""
    out = []
    for path, run_id in _dead_journals(store, hold=False):
        try:
            events, _ = read_events(path)
        except (OSError, JournalError):
            continue
        last = int(store.journal_state(run_id)["seq"])
        trials, status = 0, "killed"
        for event in events:
            if int(event.get("seq", 0)) <= last:
                continue
            kind = event.get("e")
            if kind == "trial":
                trials += 1
            elif kind == "trials":
                trials += len(event.get("records") or ())
            elif kind == "end":
                status = str(event.get("status"))
        if trials:
            out.append(Unmerged(run_id, path, trials, status))
    return out


def journal_locked(db: str | Path, run_id: str) -> bool:
    """True when ``run_id``'s journal exists and a live runner holds its lock."""
    import fcntl

    path = journal_path(db, run_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class RunLog:
    """The runner's side of a run: the store's writing methods the trial loop calls
    (:meth:`add_setup`, :meth:`set_setup_load`, :meth:`append_trial`, :meth:`append_trials`,
    :meth:`add_stop`) go to the journal; after a trial, at most every :data:`MERGE_EVERY_S`
    seconds (and :data:`MERGE_SPACING` times a merge's own time) it tries to merge, skipping
    when the database is busy, and :meth:`end` merges what is left.

    Start one with :meth:`begin` (a new run) or :meth:`resume`, each given a writable store
    that they use and leave open (the caller closes it)."""

    def __init__(self, db: Path, run_id: str, journal: Journal) -> None:
        self.db = db
        self.run_id = run_id
        self.journal = journal
        self.offset = 0
        self.next_merge = time.monotonic() + MERGE_EVERY_S
        self._params: dict[int, tuple[Any, str]] = {}
        #: seconds each merge took, and how many trials it merged
        self.merges: list[tuple[float, int]] = []
        self.busy = 0
        self.notes: list[str] = []

    @classmethod
    def begin(
        cls,
        store: Any,
        *,
        source: str,
        argv: Sequence[str],
        spec: Mapping[str, Any],
        env: Mapping[str, Any],
    ) -> RunLog:
        """A new run: dead runners' journals merged, this run's journal started with its
        ``run`` event, and merged at once (the run's row is in the database)."""
        from runner.store import new_run_id, now_utc

        notes = store.sweep_notes + sweep(store)
        run_id = new_run_id()
        journal = Journal(journal_path(store.path, run_id))
        log = cls(Path(store.path), run_id, journal)
        log.notes += notes
        try:
            journal.write(
                {
                    "e": "run",
                    "source": source,
                    "argv": list(argv),
                    "spec": spec,
                    "env": env,
                    "started_at": now_utc(),
                }
            )
            log._merge_into(store)
        except BaseException:
            journal.close(delete=True)
            raise
        return log

    @classmethod
    def resume(cls, store: Any, run_id: str) -> RunLog:
        """Take ``run_id`` up again (its old journal already merged, see :func:`sweep`): a new
        journal continuing its ``seq``, with a ``resume`` event, merged at once."""
        state = store.journal_state(run_id)
        journal = Journal(journal_path(store.path, run_id), seq=int(state["seq"]))
        if journal.size:  # a journal nobody merged (sweep could not): refuse to mix them
            journal.close()
            raise JournalError(
                f"{journal.path} was not merged; run `runner trials` once (any writer merges "
                "it) or move it away, then resume"
            )
        log = cls(Path(store.path), run_id, journal)
        try:
            journal.write({"e": "resume"})
            log._merge_into(store)
        except BaseException:
            journal.close(delete=True)
            raise
        return log

    # -- the store's writing methods, journaled ------------------------------------------------
    def add_setup(self, *, run_id: str, **fields: Any) -> int:
        """An engine start-up; returns its number in this journal (for :meth:`set_setup_load`)."""
        return self.journal.write({"e": "setup", "fields": fields})

    def set_setup_load(self, setup: int, load: Mapping[str, Any]) -> None:
        self.journal.write({"e": "setup_load", "setup": setup, "load": load})

    def _params_id(self, params: Any) -> str | None:
        """The params_id of a trial's params, journaling them the first time (cached by the
        mapping's identity: the trial loop passes each configuration's one dict)."""
        if params is None:
            return None
        got = self._params.get(id(params))
        if got is not None and got[0] is params:
            return got[1]
        from runner.store import params_key

        params_id, _ = params_key(params)
        if params_id not in {v[1] for v in self._params.values()}:
            self.journal.write({"e": "config", "params_id": params_id, "params": params})
        self._params[id(params)] = (params, params_id)
        return params_id

    def append_trial(self, record: Any) -> None:
        params_id = self._params_id(record.values.get("params"))
        self.journal.write({"e": "trial", **trial_event(record, params_id)})
        if time.monotonic() >= self.next_merge:
            self.merge(wait=0)

    def append_trials(self, records: Iterable[Any]) -> None:
        """Several trials in one event: all of them land, or none."""
        events = []
        for record in records:
            events.append(trial_event(record, self._params_id(record.values.get("params"))))
        self.journal.write({"e": "trials", "records": events})

    def add_stop(self, *, run_id: str, **fields: Any) -> None:
        self.journal.write({"e": "stop", "fields": fields})

    # -- merging -------------------------------------------------------------------------------
    def _merge_into(self, store: Any, finish: tuple[str, str | None] | None = None) -> Merged:
        done = merge(store, self.journal.path, self.run_id, offset=self.offset, finish=finish)
        self.offset = done.offset
        self.merges.append((done.seconds, done.trials))
        return done

    def merge(self, wait: float, finish: tuple[str, str | None] | None = None) -> bool:
        """Open the database (waiting at most ``wait`` s for it), merge, close. False when it
        stayed busy (the events stay journaled for the next merge)."""
        from runner.store import StoreBusy, open_store

        self.next_merge = time.monotonic() + MERGE_EVERY_S
        t0 = time.perf_counter()
        try:
            store = open_store(self.db, wait=wait)
        except StoreBusy:
            self.busy += 1
            return False
        import duckdb

        try:
            self.notes += store.sweep_notes
            self._merge_into(store, finish)
        except duckdb.Error as exc:  # the database's disk full, or an I/O error under it
            first = str(exc).splitlines()[0]
            what = "disk full" if "No space left" in first else f"I/O error ({first})"
            # the run's end says where its trials stay and how to merge them
            raise JournalError(f"{what}: cannot merge the run's trials into {self.db}") from None
        finally:
            with contextlib.suppress(duckdb.Error):  # a failed checkpoint: the WAL has it
                store.close()
        # the whole merge, the open and the close (DuckDB's checkpoint) included
        seconds = time.perf_counter() - t0
        self.merges[-1] = (seconds, self.merges[-1][1])
        spacing = min(MERGE_AT_MOST_S, max(MERGE_EVERY_S, MERGE_SPACING * seconds))
        self.next_merge = time.monotonic() + spacing
        return True

    def end(self, status: str, error: str | None = None, wait: float = FINAL_WAIT_S) -> str | None:
        """Journal the run's end, merge what is left (waiting up to ``wait`` s for the
        database) and delete the journal. Returns a note when the journal had to stay."""
        from runner.store import StoreError, now_utc

        finish = None
        try:
            self.journal.write(
                {"e": "end", "status": status, "finished_at": now_utc(), "error": error}
            )
        except JournalError:  # the disk is full: end the run in the merge's transaction
            finish = (status, error)
        try:
            merged = self.merge(wait, finish)
        except (StoreError, JournalError) as exc:
            merged, reason = False, str(exc)
        except Exception as exc:  # duckdb.Error (a full disk under the database too)
            merged, reason = False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        else:
            reason = f"{self.db} stayed busy for {wait:g} s"
        self.journal.close(delete=merged)
        if merged:
            return None
        return (
            f"the last trials of run {self.run_id} are in its journal {self.journal.path}, not "
            f"yet in the database ({reason}); the next `runner trials` (or `runner trials "
            f"--resume {self.run_id}`) on {self.db} merges them"
        )

    def merge_summary(self) -> dict[str, Any]:
        """Merges so far: count, trials, median and mean seconds, attempts the database was
        busy."""
        import statistics

        times = [s for s, _ in self.merges]
        return {
            "merges": len(times),
            "trials": sum(n for _, n in self.merges),
            "median_ms": statistics.median(times) * 1e3 if times else None,
            "mean_ms": statistics.fmean(times) * 1e3 if times else None,
            "total_ms": sum(times) * 1e3,
            "busy": self.busy,
        }
