"""The trial loop: for each configuration, start the engine once in a worker process, load the
data once, run the warm-up and measured trials, and journal each trial the moment it ends (see
:mod:`runner.journal`: the journal is merged into the database every second or few, and at
the end); and ``--resume``: the trials an unfinished run is missing, with the seeds it would have
used."""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.config import Config, check_trials
from runner.errors import RunInterrupted, RunnerError, Terminated
from runner.spec import FACTORS
from runner.workerproc import Worker, check_stop, clear_stop, start_worker

#: Seconds allowed for engine start-up and data loading, on top of the trial timeout.
SETUP_GRACE_S = 120.0
#: Seconds each load snapshot (before and after a configuration's round) watches the CPUs.
LOAD_INTERVAL_S = 0.1
#: Most measured trials per configuration ``--until-ci`` adds rounds up to, unless ``--max-n``.
DEFAULT_MAX_N = 50
FACTOR_COLUMNS = ("experiment", *FACTORS)


@dataclass(frozen=True)
class TrialOptions:
    """What `runner trials` was asked for; None means "as the experiment says".

    ``experiment`` None with a ``grid`` builds the configurations from the grid; with an
    experiment the grid filters it (see :func:`runner.spec.load_experiment`)."""

    experiment: str | None = None
    n: int | None = None
    warmup: int | None = None
    #: factor -> levels (engine, workload, dataset, workers, threads_per_worker, batch_size,
    #: epochs, data_fraction)
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    #: workload parameter -> levels (``--param k=1,3``)
    params: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    seed: int | None = None
    timeout: float | None = None
    #: folder or URL of the data, or several (a factor)
    data_dir: str | tuple[str, ...] = ()
    #: rounds the trials are spread over (None: 2, or 1 for a single trial)
    rounds: int | None = None
    #: add rounds until each median's 95% interval is within this fraction (``--until-ci``)
    until_ci: float | None = None
    #: most measured trials per configuration with ``until_ci`` (None: DEFAULT_MAX_N)
    max_n: int | None = None
    #: engine -> address of an existing cluster (spark master URL, dask scheduler, ray address)
    addresses: tuple[tuple[str, str], ...] = ()
    #: "local" | "standalone" for every spark configuration (None: as the experiment says)
    spark_mode: str | None = None
    #: run the experiment's [quick] variant
    quick: bool = False
    #: allow more than runner.config.MAX_CONFIGS configurations (``--yes``)
    yes: bool = False
    #: sample each trial's process tree at 10 Hz (False: ``--no-sample``, no samples rows, no
    #: peak_rss_mb / cpu_s metrics, no sampler thread)
    sample: bool = True


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
    rounds: int = 0
    #: why it took no more trials: n (as planned), ci (--until-ci met), max-n, start-up failed
    stop: str | None = None
    #: half-width of the median train_s's 95% interval over the median (None below 6 trials)
    ci_rel_half_width: float | None = None


@dataclass(frozen=True)
class RunResult:
    run_id: str
    db: str
    experiment: str
    elapsed_s: float
    configs: tuple[ConfigOutcome, ...] = field(default_factory=tuple)
    rounds: int = 1
    notes: tuple[str, ...] = ()
    #: the trial loop's own time per trial (see :class:`Overhead`)
    overhead: dict[str, Any] = field(default_factory=dict)

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
            "rounds": self.rounds,
            "notes": list(self.notes),
            "overhead": self.overhead,
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

        # settings every configuration has that tell them apart beyond the columns (impl, ...);
        # not the library's full parameter set (estimator), which follows from them
        common = [
            {k for k, v in c.settings.items() if not isinstance(v, dict)} for c in self.configs
        ]
        keys = sorted(set.intersection(*common)) if common else []
        varying = [
            k
            for k in keys
            if len({json.dumps(c.settings.get(k), default=str) for c in self.configs}) > 1
        ]
        stops = any(c.stop not in (None, "n") for c in self.configs)
        if stops:
            lines[0] += f"  {'stopped':<16}"
        if varying:
            lines[0] += "  settings"
        for c in self.configs:
            stop = _stop_text(c) if stops else ""
            extra = " ".join(
                f"{k}={json.dumps(c.settings[k], default=str).strip(chr(34))}"
                for k in varying
                if k in c.settings
            )
            lines.append(
                f"{c.engine:<8} {c.workload:<9} {c.dataset:<8} {c.workers:>7} "
                f"{c.threads_per_worker:>7} {fmt(c.setup_s, '8.3f')} {c.n_ok:>4} "
                f"{c.n_failed:>6} {c.n_timeout:>7} {fmt(c.median_train_s, '14.4f')} "
                f"{fmt(c.mean_accuracy, '8.4f')}"
                + (f"  {stop:<16}" if stops else "")
                + (f"  {extra}" if extra else "")
            )
        lines.append("")
        lines.append(
            f"run {self.run_id} ({self.experiment}): {self.n_ok} ok trials, {self.n_bad} failed "
            f"or timed out, {self.rounds} round{'s' if self.rounds != 1 else ''}, in "
            f"{self.elapsed_s:.1f} s -> {self.db}"
        )
        lines.extend(f"note: {note}" for note in self.notes)
        for c in self.configs:
            if c.first_error:
                first = c.first_error.splitlines()[0]
                lines.append(f"  {c.engine}/{c.workload}/workers={c.workers}: {first}")
        return "\n".join(lines)


def _stop_text(c: ConfigOutcome) -> str:
    """``ci +-3.1%``, ``max-n (+-7.9%)``, ``start-up failed``: why a configuration stopped."""
    width = "" if c.ci_rel_half_width is None else f"+-{c.ci_rel_half_width:.1%}"
    if c.stop == "ci":
        return f"ci {width}"
    if c.stop == "max-n":
        return f"max-n ({width or 'no interval'})"
    return c.stop or "-"


def _trial_values(config: Mapping[str, Any], cid: str) -> dict[str, Any]:
    values = {col: config.get(col) for col in FACTOR_COLUMNS}
    values["config_id"] = cid
    values["params"] = dict(config)
    return values


class Overhead:
    """What the trial loop itself spends per trial, in the process that owns the database: from
    one trial's result arriving to the next trial's request leaving the same worker
    (``loop``: the sampler's end and begin, the store's append and commit, the progress bar, the
    rest of the bookkeeping), and of that the store's ``append_trial`` (``store``) and the
    sampler's ``end`` + ``begin`` (``sampler``). Nanoseconds per trial; a few microseconds to
    keep."""

    def __init__(self) -> None:
        self.loop: list[int] = []
        self.store: list[int] = []
        self.sampler: list[int] = []
        self.received: int | None = None

    def summary(self) -> dict[str, Any]:
        """Medians and 90th percentiles in milliseconds, and how many trials each is over."""

        def stats(values: list[int]) -> dict[str, float | None]:
            if not values:
                return {"median_ms": None, "p90_ms": None}
            ordered = sorted(values)
            return {
                "median_ms": statistics.median(ordered) / 1e6,
                "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] / 1e6,
            }

        return {
            "trials": len(self.loop),
            "loop": stats(self.loop),
            "store": stats(self.store),
            "sampler": stats(self.sampler),
        }


def _run_trial(
    worker: Worker, seed: int, timeout: float, overhead: Overhead | None = None
) -> tuple[dict[str, Any], Any, bool]:
    """One trial on a ready worker, its process tree sampled throughout (unless the worker has
    no sampler: ``--no-sample``).

    Returns the worker's result (or a timeout/failure result), the resource samples, and whether
    the worker is still usable (False when it was killed or died)."""
    from runner.sampler import SampleSet
    from runner.store import now_utc

    started = now_utc()
    sampler = worker.sampler
    t0 = time.perf_counter_ns()
    if sampler is not None:
        sampler.begin()
    t1 = time.perf_counter_ns()
    worker.conn.send({"kind": "trial", "seed": seed})
    result = worker.receive(timeout)
    t2 = time.perf_counter_ns()
    resources = sampler.end() if sampler is not None else SampleSet()
    if overhead is not None:
        if overhead.received is not None:
            overhead.loop.append(t1 - overhead.received)
        overhead.received = t2
        overhead.sampler.append(t1 - t0 + time.perf_counter_ns() - t2)
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


@dataclass
class _ConfigState:
    """What one configuration has done so far, across rounds."""

    config: Mapping[str, Any]
    cid: str
    base_values: dict[str, Any]
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0, "timeout": 0})
    train_times: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    first_error: str | None = None
    first_setup_s: float | None = None
    #: trials started so far (warm-ups too): the next trial's seed is base seed + this
    ordinal: int = 0
    #: measured trials started (or recorded failed) so far, and how many are planned so far
    measured: int = 0
    planned_measured: int = 0
    warmups: int = 0
    rounds: int = 0
    #: set when the configuration takes no more trials: why (n, ci, max-n, start-up failure)
    stop: str | None = None
    interval: Any = None
    loads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_ok(self) -> int:
        return self.counts["ok"]

    @property
    def typed(self) -> Config:
        """The configuration's typed view (its defaults were filled once, by the spec)."""
        return Config.from_mapping(self.config)

    def outcome(self) -> ConfigOutcome:
        config, typed = self.config, self.typed
        interval = self.interval
        return ConfigOutcome(
            config_id=self.cid,
            engine=typed.engine,
            workload=typed.workload,
            dataset=typed.dataset,
            workers=typed.workers,
            threads_per_worker=typed.threads_per_worker,
            setup_s=self.first_setup_s,
            n_ok=self.counts["ok"],
            n_failed=self.counts["failed"],
            n_timeout=self.counts["timeout"],
            median_train_s=statistics.median(self.train_times) if self.train_times else None,
            mean_accuracy=statistics.fmean(self.accuracies) if self.accuracies else None,
            first_error=self.first_error,
            settings={k: v for k, v in config.items() if k not in _SHOWN},
            rounds=self.rounds,
            stop=self.stop,
            ci_rel_half_width=None if interval is None else interval.rel_half_width,
        )


#: A trial already recorded in the run being resumed: (status, seed, train_s, accuracy, error),
#: keyed by (config_id, warmup, repetition).
Done = dict[tuple[str, bool, int], tuple[str, int | None, float | None, float | None, str | None]]


def _replay(state: _ConfigState, row: tuple[Any, ...], is_warmup: bool) -> None:
    """Count a trial the resumed run already recorded as if it had just run (the seeds of the
    trials after it, the counts, the --until-ci interval)."""
    status, seed, train_s, accuracy, error = row
    if seed is not None:  # trials recorded failed at a start-up failure took no seed
        state.ordinal += 1
    if is_warmup:
        state.warmups += 1
    else:
        state.measured += 1
        state.counts[status] = state.counts.get(status, 0) + 1
        if status == "ok" and train_s is not None:
            state.train_times.append(train_s)
            if accuracy is not None:
                state.accuracies.append(accuracy)
    if status != "ok" and state.first_error is None:
        state.first_error = error
    if error and error.startswith("engine start-up failed"):
        state.stop = "start-up failed"


def _run_round(
    store: Any,
    run_id: str,
    state: _ConfigState,
    *,
    round_no: int,
    n: int,
    warmup: int,
    timeout: float,
    advance: Any,
    loads: _Loads,
    sample: bool = True,
    overhead: Overhead | None = None,
    done: Done | None = None,
) -> None:
    """One round of a configuration: start its engine afresh, run ``warmup`` warm-up and ``n``
    measured trials, stop the engine. A start-up failure records every trial the configuration
    still has planned as failed (see :func:`_record_failed`). ``store``: what records the run
    (a :class:`runner.journal.RunLog`, or a :class:`runner.store.Store`).

    ``done``: trials a resumed run already recorded; they are counted, not run again (the
    engine starts only for a round that has a trial left), so every trial keeps the seed it
    had in the uninterrupted run. A round taken up after its warm-ups were recorded starts a
    fresh engine, so it runs those warm-ups again first, with their seeds, unrecorded (the run
    keeps the ones recorded): its measured trials run on an engine as warm as in the round it
    replaces. Ctrl-C or SIGTERM during a trial records it as ``interrupted`` (its wall time so
    far) before the run stops."""
    from runner.store import TrialRecord, curve_rows, now_utc

    overhead = Overhead() if overhead is None else overhead
    done = done or {}

    config = state.config
    schedule = [(True, state.warmups + i) for i in range(1, warmup + 1)]
    schedule += [(False, state.measured + i) for i in range(1, n + 1)]
    base_seed = state.typed.seed
    state.rounds += 1
    if done and all((state.cid, w, r) in done for w, r in schedule):
        for is_warmup, repetition in schedule:  # this round ran whole before the interruption
            _replay(state, done[(state.cid, is_warmup, repetition)], is_warmup)
            advance()
        return
    worker: Worker | None = None
    setup: dict[str, Any] = {}
    setup_id: int | None = None
    in_flight: tuple[dict[str, Any], int] | None = None
    #: seeds of this round's recorded warm-ups, run again on the round's first engine
    rewarm: list[int] = []
    load_start = loads.begin()
    try:
        for index, (is_warmup, repetition) in enumerate(schedule):
            check_stop()  # between trials: nothing is half-written
            row = done.get((state.cid, is_warmup, repetition))
            if row is not None:
                _replay(state, row, is_warmup)
                if is_warmup and row[1] is not None:
                    rewarm.append(int(row[1]))
                advance()
                continue
            while worker is None:
                overhead.received = None  # a new worker: no loop span across its start-up
                worker, setup = start_worker(config, timeout + SETUP_GRACE_S, sample)
                setup_id = store.add_setup(
                    run_id=run_id,
                    config_id=state.cid,
                    params=config,
                    started_at=setup.get("started_at") or now_utc(),
                    setup_s=setup.get("setup_s"),
                    load_s=setup.get("load_s"),
                    status="failed" if worker is None else "ok",
                    error=setup.get("error"),
                    round=round_no,
                    load={"start": load_start},
                )
                if worker is None:
                    error = "engine start-up failed: " + setup["error"]
                    _record_failed(store, run_id, state, error, round_no, is_warmup, repetition)
                    for _ in schedule[index:]:
                        advance()
                    return
                if state.first_setup_s is None:
                    state.first_setup_s = setup["setup_s"]
                for warm_seed in rewarm:  # a crash here: a new engine, unwarmed (as mid-round)
                    if not _run_trial(worker, warm_seed, timeout, overhead)[2]:
                        worker = None
                        break
                rewarm = []
            seed = base_seed + state.ordinal
            state.ordinal += 1
            if is_warmup:
                state.warmups += 1
            else:
                state.measured += 1
            values = {
                **state.base_values,
                "repetition": repetition,
                "round": round_no,
                "warmup": is_warmup,
                "seed": seed,
                "setup_s": setup.get("setup_s"),
                "load_s": setup.get("load_s"),
            }
            in_flight = (values, time.perf_counter_ns())
            values["started_at"] = now_utc()
            result, resources, usable = _run_trial(worker, seed, timeout, overhead)
            in_flight = None
            if not usable:
                worker = None
                overhead.received = None
            record = TrialRecord(
                run_id=run_id,
                status=result["status"],
                values={
                    **values,
                    "error": result.get("error"),
                    "started_at": result.get("started_at"),
                    "wall_s": result.get("wall_s"),
                    "train_s": result.get("train_s"),
                    "infer_s": result.get("infer_s"),
                },
                metrics={**result.get("metrics", {}), **resources.metrics()},
                samples=resources.rows,
                curves=curve_rows(result.get("history")),
            )
            t_store = time.perf_counter_ns()
            store.append_trial(record)
            overhead.store.append(time.perf_counter_ns() - t_store)
            if not is_warmup:
                state.counts[result["status"]] += 1
                if result["status"] == "ok":
                    state.train_times.append(result["train_s"])
                    if "accuracy" in result["metrics"]:
                        state.accuracies.append(result["metrics"]["accuracy"])
            if result["status"] != "ok" and state.first_error is None:
                state.first_error = result.get("error")
            advance()
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the trial in flight is abandoned
        if worker is not None:
            worker.kill()  # the worker and its whole process tree, engines included
            worker = None
        if in_flight is not None:
            values, t0 = in_flight
            wall = (time.perf_counter_ns() - t0) / 1e9
            name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
            store.append_trial(
                TrialRecord(
                    run_id=run_id,
                    status="interrupted",
                    values={
                        **values,
                        "wall_s": wall,
                        "error": f"interrupted by {name} after {wall:.3f} s; "
                        "`runner trials --resume` runs it again",
                    },
                )
            )
        raise
    finally:
        if worker is not None:
            worker.stop()
        loads.hold(state, setup_id, load_start)


class _Loads:
    """The machine's load between configurations: one snapshot, taken while no trial runs, ends
    the previous configuration's round and starts the next one's (so each round has a start and
    an end without paying for two snapshots)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._open: tuple[_ConfigState, int | None, dict[str, Any]] | None = None

    def _close(self, end: dict[str, Any]) -> None:
        if self._open is None:
            return
        state, setup_id, start = self._open
        self._open = None
        load = {"start": start, "end": end}
        state.loads.append(load)
        if setup_id is not None:
            self.store.set_setup_load(setup_id, load)

    def begin(self) -> dict[str, Any]:
        from runner.envinfo import load_snapshot

        snapshot = load_snapshot(LOAD_INTERVAL_S)
        self._close(snapshot)
        return snapshot

    def hold(self, state: _ConfigState, setup_id: int | None, start: dict[str, Any]) -> None:
        """A round ended: its end snapshot is the next one taken."""
        self._open = (state, setup_id, start)

    def finish(self) -> None:
        from runner.envinfo import load_snapshot

        if self._open is not None:
            self._close(load_snapshot(LOAD_INTERVAL_S))


def _record_failed(
    store: Any,
    run_id: str,
    state: _ConfigState,
    error: str,
    round_no: int,
    is_warmup: bool,
    repetition: int,
) -> None:
    """The engine did not start: this round's warm-up (if it was next) and every measured trial
    the configuration still has planned are recorded as failed now, and it takes no more rounds
    (restarting an engine that cannot start only spends its grace time again)."""
    from runner.store import TrialRecord, now_utc

    planned = max(0, state.planned_measured - state.measured)
    rows = [(True, repetition)] if is_warmup else []
    rows += [(False, state.measured + i) for i in range(1, planned + 1)]
    store.append_trials(
        TrialRecord(
            run_id=run_id,
            status="failed",
            values={
                **state.base_values,
                "repetition": rep,
                "round": round_no,
                "warmup": warm,
                "started_at": now_utc(),
                "error": error,
            },
        )
        for warm, rep in rows
    )
    state.counts["failed"] += planned
    state.measured += planned
    state.first_error = state.first_error or error
    state.stop = "start-up failed"


def round_sizes(n: int, rounds: int) -> list[int]:
    """``n`` trials over ``rounds`` rounds, as even as can be (10 over 3: 4, 3, 3)."""
    return [n // rounds + (1 if i < n % rounds else 0) for i in range(rounds)]


def default_rounds(n: int) -> int:
    """Rounds when ``--rounds`` is not given: 2 (so drift of the machine between the first and
    the second half of a run is not confounded with the configurations), 1 for a single trial."""
    return min(2, n)


def _more_trials(state: _ConfigState, target: float | None, round_size: int) -> int:
    """Trials the next round gives a configuration whose interval is still too wide: what the
    interval's width says it needs (width ~ 1 / sqrt(n), so n x (width / target)^2), at least a
    round's worth and at most as many as it has (so n grows geometrically: a configuration far
    from the target takes a few rounds, not one per step, and one near it few extra trials)."""
    from runner.stopping import MIN_N

    n = state.measured
    interval = state.interval
    if target is None or interval is None or not math.isfinite(interval.rel_half_width):
        return max(round_size, MIN_N - n)
    needed = math.ceil(n * (interval.rel_half_width / target) ** 2)
    # at most double per round: the interval of a few trials is a rough guide to the spread
    return max(round_size, min(needed - n, n))


def _until_ci_done(state: _ConfigState, target: float | None, max_n: int) -> bool:
    """True (and ``state.stop`` set) when the configuration takes no more rounds: its planned
    ``n`` ran (no ``--until-ci``), its median's interval is within ``target``, or ``max_n``."""
    from runner.stopping import median_interval

    if state.stop is not None:
        return True
    state.interval = median_interval(state.train_times)
    if target is None:
        state.stop = "n"
        return True
    if state.interval is not None and state.interval.rel_half_width <= target:
        state.stop = "ci"
        return True
    if state.measured >= max_n:
        state.stop = "max-n"
        return True
    return False


def plan(options: TrialOptions) -> Plan:
    """The configurations and the schedule ``options`` ask for, checked, with nothing started
    and nothing written (what ``--dry-run`` prints)."""
    from runner.spec import load_experiment

    experiment = load_experiment(
        options.experiment,
        grid=dict(options.grid),
        params=dict(options.params),
        n=options.n,
        warmup=options.warmup,
        seed=options.seed,
        timeout=options.timeout,
        data_dir=[options.data_dir]
        if isinstance(options.data_dir, str)
        else list(options.data_dir),
        addresses=dict(options.addresses),
        spark_mode=options.spark_mode,
        quick=options.quick,
        yes=options.yes,
    )
    n = experiment.n
    rounds = options.rounds
    if rounds is None:
        rounds = default_rounds(n) if experiment.rounds is None else min(experiment.rounds, n)
    if rounds < 1:
        raise RunnerError(f"--rounds must be at least 1, got {rounds}")
    if rounds > n:
        raise RunnerError(
            f"--rounds {rounds} is more than --n {n} trials per configuration; give --rounds "
            f"{n} or fewer, or raise --n"
        )
    target, max_n = options.until_ci, options.max_n
    if target is not None and not (0 < target < 1):  # NaN fails too
        raise RunnerError(f"--until-ci {target:g} must be a fraction in (0, 1), e.g. 5%")
    if max_n is not None and target is None:
        raise RunnerError("--max-n caps --until-ci; give --until-ci too (e.g. --until-ci 5%)")
    if target is not None:
        max_n = DEFAULT_MAX_N if max_n is None else check_trials(max_n, "--max-n")
        if max_n < n:
            raise RunnerError(f"--max-n {max_n} is below --n {n}; raise --max-n or lower --n")
    return Plan(experiment, rounds, target, max_n)


@dataclass(frozen=True)
class Plan:
    """An experiment and how its trials are spread: ``rounds`` rounds (each starting every
    configuration's engine afresh, configurations in a fresh seeded order), and, with
    ``until_ci``, rounds added until each configuration's median interval is narrow enough."""

    experiment: Any
    rounds: int
    until_ci: float | None = None
    max_n: int | None = None

    @property
    def sizes(self) -> list[int]:
        return round_sizes(self.experiment.n, self.rounds)

    def order(self, round_no: int) -> list[int]:
        """Configuration indices in round ``round_no``'s order (seeded by the run's seed)."""
        import random

        order = list(range(len(self.experiment.configs)))
        random.Random(f"{self.experiment.seed}:{round_no}").shuffle(order)
        return order

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "round_sizes": self.sizes,
            "until_ci": self.until_ci,
            "max_n": self.max_n,
        }

    def expected(self, db: str | Path) -> tuple[float | None, int]:
        """Seconds the planned trials are expected to take, from earlier runs of the same
        configurations in ``db`` (median wall time per trial and per start-up), and how many
        configurations it has never run (None when none were run)."""
        from runner.spec import config_id

        exp = self.experiment
        ids = [config_id(c) for c in exp.configs]
        seen = _past_timings(db, ids)
        per_config = exp.n + exp.warmup * self.rounds
        total, missing = 0.0, 0
        for cid in ids:
            if cid not in seen:
                missing += 1
                continue
            wall, setup = seen[cid]
            total += per_config * wall + self.rounds * setup
        if missing == len(ids):
            return None, missing
        return total, missing

    def describe(self, db: str | Path) -> str:
        """The ``--dry-run`` text: every configuration, the schedule, the expected time."""
        exp = self.experiment
        keys = ("engine", "workload", "dataset", "workers", "threads_per_worker")
        rest = sorted(
            {k for c in exp.configs for k, v in c.items() if not isinstance(v, dict)}
            - set(keys)
            - {"experiment", "seed"}
        )
        varying = [k for k in rest if len({json.dumps(c.get(k)) for c in exp.configs}) > 1]
        header = ["#", *keys, *varying]
        rows = [
            [str(i), *(str(c.get(k, "-")) for k in keys + tuple(varying))]
            for i, c in enumerate(exp.configs, 1)
        ]
        widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
        lines = [
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]
        ]
        lines.insert(1, "-" * len(lines[0]))
        sizes = "+".join(map(str, self.sizes))
        lines.append("")
        lines.append(
            f"{exp.name}: {len(exp.configs)} configurations x ({exp.n} trials in {self.rounds} "
            f"round{'s' if self.rounds > 1 else ''} of {sizes}, {exp.warmup} warm-up per round)"
        )
        if self.until_ci is not None:
            lines.append(
                f"then rounds of {self.sizes[0]} until the 95% interval of each median train_s "
                f"is within +-{self.until_ci:.0%}, at most {self.max_n} trials"
            )
        seconds, missing = self.expected(db)
        if seconds is None:
            minutes = exp.expected_minutes.get("quick" if exp.quick else "full")
            lines.append(
                f"expected time: the spec measured {minutes:g} min for its whole grid ({db} holds "
                "no earlier run of these configurations)"
                if minutes
                else f"expected time: unknown ({db} holds no earlier run of these configurations)"
            )
        else:
            extra = f"; {missing} configurations never run, not counted" if missing else ""
            lines.append(
                f"expected time: about {seconds / 60:.1f} min (earlier runs in {db}{extra})"
            )
        lines.extend(f"note: {note}" for note in exp.notes)
        return "\n".join(lines)


def _past_timings(db: str | Path, ids: Sequence[str]) -> dict[str, tuple[float, float]]:
    """config_id -> (median wall_s of its ok trials, median setup_s) from an existing ``db``,
    read as it is (a dry run neither migrates nor writes it); {} when it cannot be read."""
    import duckdb

    if not ids or not Path(db).is_file():
        return {}
    marks = ", ".join("?" for _ in ids)
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return {}
    try:
        rows = con.execute(
            f"SELECT config_id, median(wall_s), median(setup_s) FROM trials "
            f"WHERE status = 'ok' AND config_id IN ({marks}) GROUP BY config_id",
            list(ids),
        ).fetchall()
    except duckdb.Error:
        return {}
    finally:
        con.close()
    return {str(c): (float(w or 0), float(s or 0)) for c, w, s in rows}


def _check_engines(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every engine the configurations use is installed (RunnerError naming the first that is
    not); returns them."""
    from runner.engines import check_installed
    from runner.workloads import uses_keras

    used = sorted({str(c["engine"]) for c in configs})
    for engine in used:
        check_installed(engine)
    keras_on = sorted({str(c["engine"]) for c in configs if uses_keras(c)})
    if keras_on:  # Keras inside another engine's workers needs TensorFlow there too
        check_installed("tensorflow", on=keras_on[0])
    return used


def run_experiment(
    options: TrialOptions,
    *,
    db: str | Path = "results.duckdb",
    argv: Sequence[str] = (),
    progress: bool = True,
) -> RunResult:
    """Run every configuration of the experiment, in rounds; return what happened. Everything
    the user can get wrong is checked before the database is opened.

    The trials go to the run's journal (:mod:`runner.journal`), merged into ``db`` every second
    or few when the file is free, and at the end."""
    from runner.clusters import check_cluster
    from runner.envinfo import collect_env
    from runner.journal import RunLog
    from runner.store import open_store

    clear_stop()  # a request left from an earlier run in this process

    the_plan = plan(options)
    experiment = the_plan.experiment
    used = _check_engines(experiment.configs)
    clusters = [
        check_cluster(engine, address) for engine, address in options.addresses if engine in used
    ]

    t0 = time.perf_counter_ns()
    spec = {**experiment.to_dict(), **the_plan.to_dict(), "sample": options.sample}
    env = collect_env()
    if clusters:  # each existing cluster's nodes: host, cores, memory, library versions
        env["clusters"] = [c.to_dict() for c in clusters]
    with open_store(db) as store:
        log = RunLog.begin(store, source="measured", argv=list(argv), spec=spec, env=env)
    notes = tuple(f"{c.engine} at {c.address}: {w}" for c in clusters for w in c.warnings)
    return _execute(the_plan, log, sample=options.sample, progress=progress, t0=t0, notes=notes)


def resume_run(
    run_id: str | None = None,
    *,
    db: str | Path = "results.duckdb",
    progress: bool = True,
) -> RunResult:
    """Take up a run that did not finish (``run_id`` None: the latest such run of ``db``): its
    journal merged if its runner died, its experiment rebuilt from ``runs.spec``, and only the
    trials it is still missing run, each with the seed it had in the uninterrupted run, into the
    same run, which then ends ``finished``. A finished run, an unknown id, a run still going
    or one whose engines are not installed is refused (RunnerError)."""
    from runner.journal import RunLog, journal_locked, sweep
    from runner.spec import Experiment
    from runner.store import StoreError, check_db_path, open_store

    clear_stop()
    t0 = time.perf_counter_ns()
    check_db_path(Path(db), must_exist=True)
    with open_store(db, read_only=False) as store:
        notes = store.sweep_notes + sweep(store)
        if run_id is None:
            row = store.con.execute(
                "SELECT run_id FROM runs WHERE source = 'measured' AND status <> 'finished' "
                "ORDER BY started_at DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise RunnerError(f"{db} has no unfinished run to resume")
            run_id = str(row[0])
        run = store.run_row(run_id)
        if run is None:
            raise RunnerError(
                f"{db} has no run {run_id!r}; `analyze runs` (or the runs table) lists them"
            )
        if run["status"] == "finished":
            raise RunnerError(f"run {run_id} finished; there is nothing to resume")
        if run["source"] != "measured":
            raise RunnerError(f"run {run_id} is an import ({run['source']}); only runs resume")
        if journal_locked(db, run_id):
            raise RunnerError(f"run {run_id} is still going (its runner holds its journal)")
        spec = run["spec"] or {}
        try:
            experiment = Experiment(
                name=spec["name"],
                path=Path(spec["path"]),
                description=spec.get("description", ""),
                n=int(spec["n"]),
                warmup=int(spec["warmup"]),
                seed=int(spec["seed"]),
                timeout=float(spec["timeout"]),
                configs=tuple(spec["configs"]),
                quick=bool(spec.get("quick", False)),
                expected_minutes=spec.get("expected_minutes") or {},
                notes=tuple(spec.get("notes") or ()),
                from_grid=bool(spec.get("from_grid", False)),
                rounds=spec.get("spec_rounds"),
            )
            the_plan = Plan(
                experiment, int(spec["rounds"]), spec.get("until_ci"), spec.get("max_n")
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"run {run_id} has no usable spec to resume from ({exc})") from None
        _check_engines(experiment.configs)
        done = _recorded(store, run_id)
        log = RunLog.resume(store, run_id)
    log.notes += notes
    return _execute(
        the_plan,
        log,
        sample=bool(spec.get("sample", True)),
        progress=progress,
        t0=t0,
        done=done,
    )


def _recorded(store: Any, run_id: str) -> Done:
    """The trials run ``run_id`` holds (but those interrupted, which run again)."""
    accuracy = "accuracy" if "accuracy" in store.view_columns() else "NULL"
    rows = store.con.execute(
        f"SELECT config_id, coalesce(warmup, false), repetition, status, seed, train_s, "
        f"{accuracy}, error FROM observations WHERE run_id = ? AND status <> 'interrupted'",
        [run_id],
    ).fetchall()
    return {(str(c), bool(w), int(r)): tuple(rest) for c, w, r, *rest in rows}  # type: ignore[misc]


def _execute(
    the_plan: Plan,
    log: Any,
    *,
    sample: bool,
    progress: bool,
    t0: int,
    done: Done | None = None,
    notes: tuple[str, ...] = (),
) -> RunResult:
    """The rounds of ``the_plan`` into the run ``log`` records (see :func:`run_experiment`)."""
    from runner.journal import JournalError
    from runner.spec import config_id

    experiment = the_plan.experiment
    run_id = log.run_id
    states = [
        _ConfigState(config, config_id(config), _trial_values(config, config_id(config)))
        for config in experiment.configs
    ]
    cap = the_plan.max_n if the_plan.until_ci is not None else experiment.n
    for state in states:
        state.planned_measured = experiment.n
    loads = _Loads(log)
    overhead = Overhead()
    round_no = 0
    try:
        with _progress(progress) as bar:
            per_round = experiment.warmup
            total = sum(len(states) * (size + per_round) for size in the_plan.sizes)
            task = bar.add_task("trials", total=total)
            sizes = list(the_plan.sizes)
            while True:
                active = [s for s in states if s.stop is None]
                if round_no >= len(sizes):
                    active = [s for s in active if not _until_ci_done(s, the_plan.until_ci, cap)]
                    if not active:
                        break
                    added = 0
                    for s in active:
                        more = _more_trials(s, the_plan.until_ci, sizes[0])
                        s.planned_measured = min(cap, s.measured + more)
                        added += s.planned_measured - s.measured + per_round
                    size = max(s.planned_measured - s.measured for s in active)
                    sizes.append(size)
                    bar.update(task, total=bar.tasks[0].total + added)
                round_no += 1
                size = sizes[round_no - 1]
                for index in the_plan.order(round_no):
                    state = states[index]
                    if state not in active:
                        continue
                    c = state.config
                    label = f"r{round_no} {c['engine']} {c['workload']} workers={c['workers']}"
                    bar.update(task, description=label)
                    _run_round(
                        log,
                        run_id,
                        state,
                        round_no=round_no,
                        n=min(size, state.planned_measured - state.measured),
                        warmup=experiment.warmup,
                        timeout=experiment.timeout,
                        advance=lambda: bar.advance(task),
                        loads=loads,
                        sample=sample,
                        overhead=overhead,
                        done=done,
                    )
        loads.finish()
        for state in states:
            _until_ci_done(state, the_plan.until_ci, cap)
            interval = state.interval
            log.add_stop(
                run_id=run_id,
                config_id=state.cid,
                n_ok=state.n_ok,
                rounds=state.rounds,
                reason=state.stop or "n",
                metric="train_s",
                statistic=None if interval is None else "median",
                estimate=None if interval is None else interval.median,
                ci=None if interval is None else (interval.low, interval.high),
                rel_half_width=None if interval is None else interval.rel_half_width,
                target=the_plan.until_ci,
            )
    except KeyboardInterrupt as exc:
        signal_name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        note = log.end("interrupted", signal_name)  # recorded as the run's end error
        raise RunInterrupted(run_id, str(log.db), signal_name, note) from None
    except BaseException as exc:
        # "disk full" / "I/O error" from the journal, else the error's first line
        text = str(exc).strip() or type(exc).__name__
        error = text.split(":", 1)[0] if isinstance(exc, JournalError) else text.splitlines()[0]
        note = log.end("failed", error)
        if note is not None and isinstance(exc, RunnerError):
            exc.args = (f"{exc}; {note}",)
        raise
    note = log.end("finished")
    if note is not None:
        log.notes.append(note)
    overhead_summary = overhead.summary()
    overhead_summary["merges"] = log.merge_summary()
    return RunResult(
        run_id=run_id,
        db=str(log.db),
        experiment=experiment.name,
        elapsed_s=(time.perf_counter_ns() - t0) / 1e9,
        configs=tuple(s.outcome() for s in states),
        rounds=round_no,
        overhead=overhead_summary,
        notes=(experiment.notes + notes + tuple(log.notes) + tuple(_busy_notes(states))),
    )


def _busy_notes(states: Sequence[_ConfigState]) -> list[str]:
    from runner.envinfo import busy_warning

    notes = []
    for state in states:
        for load in state.loads:
            warning = busy_warning(load.get("start"))
            if warning:
                c = state.config
                notes.append(f"{c['engine']}/{c['workload']}/workers={c['workers']}: {warning}")
                break
    return notes


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
