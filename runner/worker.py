"""The configuration worker: a child process that starts one engine, loads the data once, and
runs trials on request from the trial loop (``runner.trials``).

Running the engine in a child lets the trial loop stop a trial that overruns ``--timeout`` (it
kills the child and its process tree) without losing the loop, and keeps every engine's threads
and processes out of the process that owns the database.

Protocol over a ``multiprocessing`` pipe (all messages are plain dicts):
  child -> parent  {"kind": "ready", "setup_s", "load_s", "started_at"} | {"kind": "setup_failed",
                   "error", "setup_s", "load_s", "started_at"}
  parent -> child  {"kind": "trial", "seed"} | {"kind": "stop"}
  child -> parent  {"kind": "result", "status", "error", "started_at", "wall_s", "train_s",
                   "infer_s", "metrics", "history"}

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


def config_worker(conn: Connection, config: Mapping[str, Any]) -> None:
    """Entry point of the child process: ``config`` is the configuration as the spec stores it
    (a plain dict), made a :class:`runner.config.Config` here, once."""
    import warnings

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
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.send(
                {
                    "kind": "setup_failed",
                    "error": _error_text(exc),
                    "setup_s": setup_s,
                    "load_s": load_s,
                    "started_at": started_at,
                }
            )
        _close(session)
        return
    try:
        conn.send({"kind": "ready", "setup_s": setup_s, "load_s": load_s, "started_at": started_at})
        while True:
            message = conn.recv()
            if message["kind"] == "stop":
                break
            conn.send(run_one_trial(session, split, int(message["seed"])))
    except (EOFError, BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass  # the runner is gone or stopping: nothing to report to
    finally:
        _close(session)
        conn.close()


def _close(session: Any) -> None:
    if session is None:
        return
    # Closing a broken engine must not mask the trial's outcome.
    with contextlib.suppress(Exception):
        session.close()
