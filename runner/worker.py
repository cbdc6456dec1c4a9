"""The configuration worker: a child process that starts one engine, loads the data once, and
runs trials on request from the trial loop (``runner.trials``).

Running the engine in a child lets the trial loop stop a trial that overruns ``--timeout`` (it
kills the child and its process tree) without losing the loop, and keeps every engine's threads
and processes out of the process that owns the database.

Run by the runner (``runner.workerproc.Worker``), it first makes itself a session and process
group leader, exports the worker's mark, its runner's identity and its own temporary folder
(``TMPDIR``), and starts a watchdog thread: when the runner is gone (its parent changed, so SIGKILL
included), it kills every process of its group and every marked one, removes the folder (and the
folders it lists as the worker's) and exits, so no engine process or scratch folder outlives a
killed runner. (When runner and worker die together, the next runner's sweep does this:
``runner.workerproc.sweep_stale``.)

Protocol over a ``multiprocessing`` pipe (all messages are plain dicts):
  child -> parent  {"kind": "ready", "setup_s", "load_s", "started_at"} | {"kind": "setup_failed",
                   "error", "setup_s", "load_s", "started_at"}
  parent -> child  {"kind": "trial", "seed"} | {"kind": "stop"}
  child -> parent  {"kind": "result", "status", "error", "started_at", "wall_s", "train_s",
                   "infer_s", "metrics", "history"}, preceded by {"kind": "restarting"} when
                   the engine lost workers during the trial and is being restarted (the trial is
                   then ``failed`` with the loss in its error; ``runner.workerproc`` waits longer)

A session either trains and scores (``train(seed)`` timed as train_s, ``predict()`` as infer_s,
then classification metrics, untimed: ``train_accuracy`` is scored on a seeded stratified sample
of at most ``TRAIN_SAMPLE_ROWS`` training rows, ``predict_train(rows)``, and
``train_accuracy_n`` says how many), or times its own trial: ``run_trial(seed) -> {"train_s",
"infer_s", "metrics"}`` (the preprocess workload). Optional: ``trial_metrics()`` (more metrics) and
``trial_history()`` (per-epoch curves, one mapping or one per trainer; stored in ``curves``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

#: The most training rows ``train_accuracy`` is scored on: predicting all of Fashion-MNIST's
#: 60,000 with KNN took 225 s against 37 s of timed work.
TRAIN_SAMPLE_ROWS = 10_000


def train_sample(y: Any, seed: int, limit: int = TRAIN_SAMPLE_ROWS) -> Any:
    """Indices (sorted) of a stratified random sample of at most ``limit`` of the rows whose
    labels are ``y``, drawn with ``numpy.random.default_rng(seed)``; all rows when there are no
    more than ``limit``. Class c gets floor or ceil of limit x n_c / n rows (largest remainders
    round up, ties to the smaller label), so every class's share is within one row of its share
    of the full set."""
    import numpy as np

    y = np.asarray(y)
    n = len(y)
    if n <= limit:
        return np.arange(n)
    labels, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    exact = counts * limit / n
    take = np.floor(exact).astype(np.int64)
    short = limit - int(take.sum())
    order = np.lexsort((np.arange(len(labels)), -(exact - take)))  # largest remainder first
    take[order[:short]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(inverse == i), size=int(k), replace=False)
        for i, k in enumerate(take)
    ]
    return np.sort(np.concatenate(chosen))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _seconds(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e9


def _error_text(exc: BaseException) -> str:
    first = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return first + "\n" + "".join(traceback.format_exception(exc))


def classification_metrics(
    y_true: Any, y_pred: Any, y_train: Any, y_train_pred: Any
) -> dict[str, float]:
    """Test accuracy, macro precision / recall / F1, and train accuracy (of the training rows
    given: the caller's sample)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "train_accuracy": float(accuracy_score(y_train, y_train_pred)),
    }


def run_one_trial(session: Any, split: Any, seed: int) -> dict[str, Any]:
    """Time one trial: train (train_s), predict the test set (infer_s), then score (untimed
    except in wall_s; train_accuracy on :func:`train_sample`'s rows for this seed)."""
    started_at = _now()
    t0 = time.perf_counter_ns()
    out: dict[str, Any] = {"kind": "result", "started_at": started_at, "metrics": {}}
    try:
        own = getattr(session, "run_trial", None)
        if own is not None:  # a workload that is not train-and-score (preprocess)
            timed = own(seed)
            out["train_s"], out["infer_s"] = timed.get("train_s"), timed.get("infer_s")
            out["metrics"] = dict(timed.get("metrics", {}))
        else:
            t = time.perf_counter_ns()
            session.train(seed)
            out["train_s"] = _seconds(t)
            t = time.perf_counter_ns()
            y_pred = session.predict()
            out["infer_s"] = _seconds(t)
            rows = train_sample(split.y_train, seed, TRAIN_SAMPLE_ROWS)
            out["metrics"] = classification_metrics(
                split.y_test, y_pred, split.y_train[rows], session.predict_train(rows)
            )
            out["metrics"]["train_accuracy_n"] = float(len(rows))
        extra = getattr(session, "trial_metrics", None)
        if extra is not None:
            out["metrics"].update(extra())
        history = getattr(session, "trial_history", None)
        if history is not None:
            out["history"] = history()
        out["status"], out["error"] = "ok", None
    except Exception as exc:  # a failed trial is data; the loop goes on
        out["status"], out["error"] = "failed", _error_text(exc)
    out["wall_s"] = _seconds(t0)
    return out


#: How often the watchdog looks whether the runner is still there, in seconds.
WATCH_PERIOD_S = 0.2


def _own_processes(
    mark: str, tmpdir: str | None, runner_pid: int, owner: str | None = None
) -> None:
    """Lead a session of our own (a terminal's Ctrl-C reaches only the runner, which stops us),
    mark every process started from now on (and name the runner, ``owner``, in them), keep
    scratch files in ``tmpdir``, and watch the runner (:func:`_abandon` when it is gone)."""
    import tempfile

    import psutil  # noqa: F401  (imported now: the watchdog must not wait for an import lock)

    from runner.workerproc import MARK_ENV, RUNNER_ENV

    with contextlib.suppress(OSError):  # already a group leader (run by hand)
        os.setsid()
    os.environ[MARK_ENV] = mark
    if owner is not None:
        os.environ[RUNNER_ENV] = owner
    if tmpdir is not None:
        os.environ["TMPDIR"] = tmpdir
        tempfile.tempdir = None  # gettempdir() reads TMPDIR again

    def watch() -> None:
        while os.getppid() == runner_pid:
            time.sleep(WATCH_PERIOD_S)
        _abandon(mark, tmpdir)

    threading.Thread(target=watch, name="runner-watchdog", daemon=True).start()
    if os.getppid() != runner_pid:  # the runner died while this process started
        _abandon(mark, tmpdir)


def _abandon(mark: str, tmpdir: str | None) -> None:
    """The runner is gone: kill every process of this worker's group and every marked one (no
    engine is closed politely: it may be what hangs), remove the folder (and those it lists as
    the worker's), exit."""
    from runner.workerproc import kill_marked, remove_owned

    with contextlib.suppress(BaseException):
        kill_marked(mark, group=os.getpgrp())
    if tmpdir is not None:
        with contextlib.suppress(BaseException):
            remove_owned(tmpdir)
    with contextlib.suppress(BaseException):
        sys.stderr.flush()
    os._exit(0)


def config_worker(
    conn: Connection,
    config: Mapping[str, Any],
    *,
    mark: str | None = None,
    tmpdir: str | None = None,
    runner_pid: int | None = None,
    owner: str | None = None,
) -> None:
    """Entry point of the child process: ``config`` is the configuration as the spec stores it
    (a plain dict), made a :class:`runner.config.Config` here, once. ``mark``, ``tmpdir``,
    ``runner_pid`` and ``owner`` (from ``runner.workerproc.Worker``): see
    :func:`_own_processes`."""
    import warnings

    if mark is not None and runner_pid is not None:
        _own_processes(mark, tmpdir, runner_pid, owner)

    # Keep engine libraries quiet in this process and the processes the engine starts.
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.filterwarnings("ignore")
    from runner.config import Config
    from runner.datasets import load_split
    from runner.engines import make_session

    started_at = _now()
    setup_s = load_s = None
    session = None
    try:
        resolved = Config.from_mapping(config)  # once: everything below reads its typed fields
        session = make_session(resolved)
        t = time.perf_counter_ns()
        session.start()
        setup_s = _seconds(t)
        t = time.perf_counter_ns()
        split = load_split(
            resolved.dataset,
            seed=resolved.seed,
            data_fraction=resolved.data_fraction,
            data_dir=resolved.get("data_dir"),
        )
        session.load(split)
        load_s = _seconds(t)
    except Exception as exc:
        try:
            conn.send(
                {
                    "kind": "setup_failed",
                    "error": _error_text(exc),
                    "setup_s": setup_s,
                    "load_s": load_s,
                    "started_at": started_at,
                }
            )
        except (BrokenPipeError, ConnectionResetError):
            if mark is not None:  # the runner is gone
                _abandon(mark, tmpdir)
        _close(session)
        return
    broken: str | None = None  # why the engine could not be restarted
    try:
        conn.send({"kind": "ready", "setup_s": setup_s, "load_s": load_s, "started_at": started_at})
        while True:
            message = conn.recv()
            if message["kind"] == "stop":
                break
            if broken is not None:
                conn.send(_refused(broken))
                continue
            out = run_one_trial(session, split, int(message["seed"]))
            lost = _lost_workers(session)
            if lost is not None:  # the trial is no measurement; the engine starts afresh
                conn.send({"kind": "restarting"})  # the runner waits longer for this result
                session, broken = _restart(session, resolved, split, out, lost, mark)
            conn.send(out)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        if mark is not None:  # the runner is gone: nothing to report to, nobody to clean up
            _abandon(mark, tmpdir)
    except KeyboardInterrupt:
        pass  # stopping: close the engine
    finally:
        _close(session)
        conn.close()


def _lost_workers(session: Any) -> str | None:
    """What the engine lost since it loaded (a worker, an executor, an actor: killed, out of
    memory), from the session's optional ``lost_workers()``; None when nothing, or when the
    session cannot tell. An engine that does not answer has lost everything."""
    check = getattr(session, "lost_workers", None)
    if check is None:
        return None
    try:
        return check()  # type: ignore[no-any-return]
    except Exception as exc:
        return f"the engine does not answer ({_error_text(exc).splitlines()[0]})"


def _restart(
    session: Any, config: Any, split: Any, out: dict[str, Any], lost: str, mark: str | None
) -> tuple[Any, str | None]:
    """The engine lost workers during the trial whose result is ``out``: the trial becomes
    ``failed`` (its times include the engine's recovery, if it recovered at all), the engine is
    closed, whatever it left is killed, and it is started and loaded afresh (``engine_restart_s``
    in the trial's metrics). Returns the new session and None, or the old one and why a restart
    failed (the worker then refuses every later trial)."""
    from runner.engines import make_session

    why = f"the engine lost workers during the trial: {lost}"
    first = out.get("error")
    out["status"] = "failed"
    out["error"] = why + ("" if first is None else "\n" + first)
    _close(session)
    if mark is not None:  # nothing of the old engine may linger beside the new one
        from runner.workerproc import kill_marked

        kill_marked(mark, group=os.getpgrp())
    t = time.perf_counter_ns()
    fresh = None
    try:
        fresh = make_session(config)
        fresh.start()
        fresh.load(split)
    except Exception as exc:
        _close(fresh)
        broken = f"{why}; restarting it failed: {_error_text(exc)}"
        out["error"] = broken
        return session, broken
    finally:
        out.setdefault("metrics", {})["engine_restart_s"] = _seconds(t)
    out["error"] += "\n(the engine was restarted)"
    return fresh, None


def _refused(broken: str) -> dict[str, Any]:
    return {
        "kind": "result",
        "status": "failed",
        "error": "not run: the engine is down since an earlier trial: " + broken,
        "started_at": _now(),
        "metrics": {},
    }


def _close(session: Any) -> None:
    if session is None:
        return
    # Closing a broken engine must not mask the trial's outcome.
    with contextlib.suppress(Exception):
        session.close()
