"""A configuration's worker process, seen from the runner: start it, wait for its messages (acting
on a stop request while waiting), stop or kill it with its process tree."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from runner.errors import Terminated

#: The signal that asked the run to stop ("SIGINT" or "SIGTERM"), set by :func:`request_stop`
#: from a signal handler and acted on by :func:`check_stop` where stopping is safe (never in the
#: middle of a database write).
_STOP_REQUESTED: list[str] = []
#: How often a wait for the worker looks at a stop request, in seconds.
_STOP_POLL_S = 0.25


def request_stop(signal_name: str) -> None:
    """Ask the running experiment to stop at its next safe point (a signal handler calls this);
    a second request while the first is pending stops at once."""
    if _STOP_REQUESTED:
        raise Terminated() if signal_name == "SIGTERM" else KeyboardInterrupt()
    _STOP_REQUESTED.append(signal_name)


def clear_stop() -> None:
    """Forget a stop request left from an earlier run in this process."""
    _STOP_REQUESTED.clear()


def check_stop() -> None:
    """Raise :class:`Terminated` (SIGTERM) or KeyboardInterrupt (SIGINT) if a stop was asked."""
    if _STOP_REQUESTED:
        name = _STOP_REQUESTED.pop()
        _STOP_REQUESTED.clear()
        raise Terminated() if name == "SIGTERM" else KeyboardInterrupt()


class Worker:
    """A running configuration worker process, and the sampler of its process tree (one for all
    its trials; None with ``--no-sample``)."""

    def __init__(self, config: Mapping[str, Any], sample: bool = True) -> None:
        import multiprocessing

        from runner.sampler import TreeSampler
        from runner.worker import config_worker

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=config_worker, args=(child, dict(config)))
        self.process.start()
        child.close()
        self.sampler = TreeSampler(self.process.pid) if sample else None

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or None if none came within ``timeout`` or the worker died. A stop
        request (Ctrl-C, SIGTERM) is acted on while waiting (:func:`check_stop`)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                check_stop()
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if self.conn.poll(min(left, _STOP_POLL_S)):
                    return self.conn.recv()
                if not self.process.is_alive() and not self.conn.poll(0):
                    return None
        except (EOFError, OSError):
            pass
        return None

    def alive(self) -> bool:
        return self.process.is_alive()

    def close_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None

    def kill(self) -> None:
        import psutil

        self.close_sampler()
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.process.kill()
        self.process.join(10)
        self.conn.close()

    def stop(self) -> None:
        self.close_sampler()
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send({"kind": "stop"})
        self.process.join(60)
        if self.process.is_alive():
            self.kill()
        else:
            self.conn.close()


def start_worker(
    config: Mapping[str, Any], grace: float, sample: bool = True
) -> tuple[Worker | None, dict[str, Any]]:
    """Start a worker and wait until its engine is up and the data loaded.

    Returns the worker and its ``ready`` message, or None and a message whose ``error`` says why
    start-up failed (the worker is then already gone)."""
    worker = Worker(config, sample)
    try:
        message = worker.receive(grace)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM during start-up: no half-started engine left
        worker.kill()
        raise
    if message is not None and message["kind"] == "ready":
        return worker, message
    if message is None:
        message = {
            "error": f"engine start-up did not finish within {grace:g} s"
            if worker.alive()
            else f"engine worker died during start-up (exit code {worker.process.exitcode})"
        }
    worker.kill()
    return None, message
