"""The trial loop: for each configuration, start the engine once in a worker process, load the
data once, run the warm-up and measured trials, and append each trial to the store the moment it
ends (its own transaction)."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.spec import FACTORS

#: Seconds allowed for engine start-up and data loading, on top of the trial timeout.
SETUP_GRACE_S = 120.0
FACTOR_COLUMNS = ("experiment", *FACTORS)


@dataclass(frozen=True)
class TrialOptions:
    """What `runner trials` was asked for; None means "as the experiment says"."""

    experiment: str = "default"
    n: int | None = None
    warmup: int | None = None
    engines: tuple[str, ...] | None = None
    workloads: tuple[str, ...] | None = None
    workers: tuple[int, ...] | None = None
    seed: int | None = None
    timeout: float | None = None
    datasets: tuple[str, ...] | None = None
    data_dir: str | None = None
    #: engine -> address of an existing cluster (spark master URL, dask scheduler, ray address)
    addresses: tuple[tuple[str, str], ...] = ()
    #: "local" | "standalone" for every spark configuration (None: as the experiment says)
    spark_mode: str | None = None
    #: run the experiment's [quick] variant
    quick: bool = False


#: Configuration keys the run table shows as columns (or that name the run, not the config).
_SHOWN = frozenset(
    ("engine", "workload", "dataset", "workers", "threads_per_worker", "experiment", "seed")
)


@dataclass(frozen=True)
class ConfigOutcome:
    config_id: str
    engine: str
    workload: str
    dataset: str
    workers: int
    threads_per_worker: int
    setup_s: float | None
    n_ok: int
    n_failed: int
    n_timeout: int
    median_train_s: float | None
    mean_accuracy: float | None
    first_error: str | None
    #: the rest of the configuration (factors not in the table, workload parameters)
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    db: str
    experiment: str
    elapsed_s: float
    configs: tuple[ConfigOutcome, ...] = field(default_factory=tuple)

    @property
    def n_ok(self) -> int:
        return sum(c.n_ok for c in self.configs)

    @property
    def n_bad(self) -> int:
        return sum(c.n_failed + c.n_timeout for c in self.configs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "db": self.db,
            "experiment": self.experiment,
            "elapsed_s": self.elapsed_s,
            "n_ok": self.n_ok,
            "n_bad": self.n_bad,
            "configs": [asdict(c) for c in self.configs],
        }

    def __str__(self) -> str:
        head = (
            f"{'engine':<8} {'workload':<9} {'dataset':<8} {'workers':>7} {'threads':>7} "
            f"{'setup_s':>8} {'ok':>4} {'failed':>6} {'timeout':>7} {'median train_s':>14} "
            f"{'accuracy':>8}"
        )
        lines = [head, "-" * len(head)]

        def fmt(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        # settings every configuration has that tell them apart beyond the columns (impl, ...)
        common = [set(c.settings) for c in self.configs]
        keys = sorted(set.intersection(*common)) if common else []
        varying = [
            k
            for k in keys
            if len({json.dumps(c.settings.get(k), default=str) for c in self.configs}) > 1
        ]
        if varying:
            lines[0] += "  settings"
        for c in self.configs:
            extra = " ".join(
                f"{k}={json.dumps(c.settings[k], default=str).strip(chr(34))}"
                for k in varying
                if k in c.settings
            )
            lines.append(
                f"{c.engine:<8} {c.workload:<9} {c.dataset:<8} {c.workers:>7} "
                f"{c.threads_per_worker:>7} {fmt(c.setup_s, '8.3f')} {c.n_ok:>4} "
                f"{c.n_failed:>6} {c.n_timeout:>7} {fmt(c.median_train_s, '14.4f')} "
                f"{fmt(c.mean_accuracy, '8.4f')}" + (f"  {extra}" if extra else "")
            )
        lines.append("")
        lines.append(
            f"run {self.run_id} ({self.experiment}): {self.n_ok} ok trials, {self.n_bad} failed "
            f"or timed out, in {self.elapsed_s:.1f} s -> {self.db}"
        )
        for c in self.configs:
            if c.first_error:
                first = c.first_error.splitlines()[0]
                lines.append(f"  {c.engine}/{c.workload}/workers={c.workers}: {first}")
        return "\n".join(lines)


class _Worker:
    """A running configuration worker process."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        import multiprocessing

        from runner.worker import config_worker

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=config_worker, args=(child, dict(config)))
        self.process.start()
        child.close()

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or None if none came within ``timeout`` or the worker died."""
        try:
            if self.conn.poll(timeout):
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        return None

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        import psutil

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
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send({"kind": "stop"})
        self.process.join(60)
        if self.process.is_alive():
            self.kill()
        else:
            self.conn.close()


def _trial_values(config: Mapping[str, Any], cid: str) -> dict[str, Any]:
    values = {col: config.get(col) for col in FACTOR_COLUMNS}
    values["config_id"] = cid
    values["params"] = dict(config)
    return values


def _start_worker(config: Mapping[str, Any], grace: float) -> tuple[_Worker | None, dict[str, Any]]:
    """Start a worker and wait until its engine is up and the data loaded.

    Returns the worker and its ``ready`` message, or None and a message whose ``error`` says why
    start-up failed (the worker is then already gone)."""
    worker = _Worker(config)
    message = worker.receive(grace)
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


def _run_trial(worker: _Worker, seed: int, timeout: float) -> tuple[dict[str, Any], Any, bool]:
    """One trial on a ready worker, its process tree sampled throughout.

    Returns the worker's result (or a timeout/failure result), the resource samples, and whether
    the worker is still usable (False when it was killed or died)."""
    from runner.sampler import TreeSampler
    from runner.store import now_utc

    started = now_utc()
    sampler = TreeSampler(worker.process.pid).start()
    worker.conn.send({"kind": "trial", "seed": seed})
    result = worker.receive(timeout)
    resources = sampler.stop()
    if result is not None:
        return result, resources, True
    timed_out = worker.alive()
    code = worker.process.exitcode
    worker.kill()
    result = {
        "status": "timeout" if timed_out else "failed",
        "error": f"trial exceeded --timeout {timeout:g} s and was stopped"
        if timed_out
        else f"engine worker died during the trial (exit code {code})",
        "started_at": started,
        "wall_s": timeout if timed_out else None,
        "metrics": {},
    }
    return result, resources, False


def _run_config(
    store: Any,
    run_id: str,
    config: Mapping[str, Any],
    *,
    n: int,
    warmup: int,
    timeout: float,
    advance: Any,
) -> ConfigOutcome:
    from runner.spec import config_id
    from runner.store import TrialRecord, curve_rows, now_utc

    cid = config_id(config)
    schedule = [(True, i) for i in range(1, warmup + 1)] + [(False, i) for i in range(1, n + 1)]
    base_seed = int(config.get("seed", 0))
    base_values = _trial_values(config, cid)
    counts = {"ok": 0, "failed": 0, "timeout": 0}
    train_times: list[float] = []
    accuracies: list[float] = []
    first_error: str | None = None
    first_setup_s: float | None = None
    worker: _Worker | None = None
    setup: dict[str, Any] = {}
    try:
        for ordinal, (is_warmup, repetition) in enumerate(schedule):
            if worker is None:
                worker, setup = _start_worker(config, timeout + SETUP_GRACE_S)
                store.add_setup(
                    run_id=run_id,
                    config_id=cid,
                    params=config,
                    started_at=setup.get("started_at") or now_utc(),
                    setup_s=setup.get("setup_s"),
                    load_s=setup.get("load_s"),
                    status="failed" if worker is None else "ok",
                    error=setup.get("error"),
                )
                if worker is None:
                    # Every remaining trial of this configuration is recorded as failed.
                    error = "engine start-up failed: " + setup["error"]
                    remaining = schedule[ordinal:]
                    store.append_trials(
                        TrialRecord(
                            run_id=run_id,
                            status="failed",
                            values={
                                **base_values,
                                "repetition": rep,
                                "warmup": warm,
                                "started_at": now_utc(),
                                "error": error,
                            },
                        )
                        for warm, rep in remaining
                    )
                    counts["failed"] += sum(not warm for warm, _ in remaining)
                    for _ in remaining:
                        advance()
                    first_error = first_error or error
                    break
                if first_setup_s is None:
                    first_setup_s = setup["setup_s"]
            seed = base_seed + ordinal
            result, resources, usable = _run_trial(worker, seed, timeout)
            if not usable:
                worker = None
            store.append_trial(
                TrialRecord(
                    run_id=run_id,
                    status=result["status"],
                    values={
                        **base_values,
                        "repetition": repetition,
                        "warmup": is_warmup,
                        "seed": seed,
                        "error": result.get("error"),
                        "started_at": result.get("started_at"),
                        "wall_s": result.get("wall_s"),
                        "train_s": result.get("train_s"),
                        "infer_s": result.get("infer_s"),
                        "setup_s": setup.get("setup_s"),
                        "load_s": setup.get("load_s"),
                    },
                    metrics={**result.get("metrics", {}), **resources.metrics()},
                    samples=resources.rows,
                    curves=curve_rows(result.get("history")),
                )
            )
            if not is_warmup:
                counts[result["status"]] += 1
                if result["status"] == "ok":
                    train_times.append(result["train_s"])
                    if "accuracy" in result["metrics"]:
                        accuracies.append(result["metrics"]["accuracy"])
            if result["status"] != "ok" and first_error is None:
                first_error = result.get("error")
            advance()
    finally:
        if worker is not None:
            worker.stop()
    return ConfigOutcome(
        config_id=cid,
        engine=str(config["engine"]),
        workload=str(config["workload"]),
        dataset=str(config["dataset"]),
        workers=int(config["workers"]),
        threads_per_worker=int(config.get("threads_per_worker") or 1),
        setup_s=first_setup_s,
        n_ok=counts["ok"],
        n_failed=counts["failed"],
        n_timeout=counts["timeout"],
        median_train_s=statistics.median(train_times) if train_times else None,
        mean_accuracy=statistics.fmean(accuracies) if accuracies else None,
        first_error=first_error,
        settings={k: v for k, v in config.items() if k not in _SHOWN},
    )


def run_experiment(
    options: TrialOptions,
    *,
    db: str | Path = "results.duckdb",
    argv: Sequence[str] = (),
    progress: bool = True,
) -> RunResult:
    """Run every configuration of the experiment; return what happened. Everything the user can
    get wrong is checked before the database is opened."""
    from runner.engines import check_installed, check_reachable
    from runner.envinfo import collect_env
    from runner.spec import load_experiment
    from runner.store import open_store
    from runner.workloads import uses_keras

    experiment = load_experiment(
        options.experiment,
        engines=options.engines,
        workloads=options.workloads,
        workers=options.workers,
        n=options.n,
        warmup=options.warmup,
        seed=options.seed,
        timeout=options.timeout,
        datasets=options.datasets,
        data_dir=options.data_dir,
        addresses=dict(options.addresses),
        spark_mode=options.spark_mode,
        quick=options.quick,
    )
    used = sorted({str(c["engine"]) for c in experiment.configs})
    for engine in used:
        check_installed(engine)
    keras_on = sorted({str(c["engine"]) for c in experiment.configs if uses_keras(c)})
    if keras_on:  # Keras inside another engine's workers needs TensorFlow there too
        check_installed("tensorflow", on=keras_on[0])
    for engine, address in options.addresses:
        if engine in used:
            check_reachable(engine, address)

    t0 = time.perf_counter_ns()
    store = open_store(db)
    outcomes: list[ConfigOutcome] = []
    run_id = store.begin_run(
        source="measured", argv=list(argv), spec=experiment.to_dict(), env=collect_env()
    )
    status = "failed"
    try:
        with _progress(progress) as bar:
            total = len(experiment.configs) * (experiment.n + experiment.warmup)
            task = bar.add_task("trials", total=total)
            for config in experiment.configs:
                label = f"{config['engine']} {config['workload']} workers={config['workers']}"
                bar.update(task, description=label)
                outcomes.append(
                    _run_config(
                        store,
                        run_id,
                        config,
                        n=experiment.n,
                        warmup=experiment.warmup,
                        timeout=experiment.timeout,
                        advance=lambda: bar.advance(task),
                    )
                )
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        store.finish_run(run_id, status)
        store.close()
    return RunResult(
        run_id=run_id,
        db=str(db),
        experiment=experiment.name,
        elapsed_s=(time.perf_counter_ns() - t0) / 1e9,
        configs=tuple(outcomes),
    )


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )
