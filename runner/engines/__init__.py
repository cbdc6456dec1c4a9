"""Engines: the real libraries that run a workload, started once per configuration.

An engine session has a fixed life cycle, driven by the trial loop in a worker process:
``start()`` (timed as setup_s) -> ``load(split)`` (ships the data once; timed into load_s) ->
per trial ``train(seed)`` (train_s) and ``predict()`` (infer_s), then, untimed,
``predict_train(rows)`` (the training rows of the train-accuracy sample) -> ``close()``.

Which engine runs which workload, with which implementations and which session, is
``runner.registry``'s table; this package reads it (and re-exports ``ENGINES``, ``EngineInfo`` and
``is_loopback`` from it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from runner import registry
from runner.config import Config
from runner.errors import RunnerError
from runner.registry import ENGINES, EngineInfo, is_loopback

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ENGINES",
    "EngineInfo",
    "EngineSession",
    "check_installed",
    "check_memory",
    "check_supported",
    "fit_in_driver",
    "get_engine",
    "is_loopback",
    "make_session",
    "support_matrix",
]


class EngineSession(Protocol):
    def start(self) -> None: ...
    def load(self, split: Any) -> None: ...
    def train(self, seed: int) -> None: ...
    def predict(self) -> np.ndarray: ...
    def predict_train(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Predictions for the training rows with these indices (all rows when None)."""
        ...

    def close(self) -> None: ...

    # Optional: ``trial_metrics() -> dict[str, float]``, engine facts about the last trial.


def get_engine(name: str) -> EngineInfo:
    """The engine's row of the registry (RunnerError naming the engines for an unknown one)."""
    return registry.get_engine(name)


def check_supported(engine: str, workload: str, workers: int) -> None:
    """Refuse unsupported combinations before anything starts."""
    info = get_engine(engine)
    registry.cell(engine, workload)
    if workers < 1:
        raise RunnerError(f"workers must be >= 1, got {workers}")
    if info.max_workers is not None and workers > info.max_workers:
        raise RunnerError(
            f"engine {engine} runs in-process and supports workers=1 only, got {workers}; "
            "use a distributed engine (e.g. dask) for more workers"
        )


#: The least memory_gb (GiB per worker) each engine can start with: Spark's JVM refuses less than
#: 450 MiB (1.5 x its 300 MiB reserve); a Dask worker or Ray actor process alone takes ~150 MiB.
MIN_MEMORY_GB = {"spark": 450 / 1024, "dask": 0.25, "ray": 0.25}


def check_memory(engine: str, config: Mapping[str, Any]) -> None:
    """Refuse a memory_gb the engine cannot start with, or that this machine does not have."""
    memory_gb = config.get("memory_gb")
    if memory_gb is None:
        return
    least = MIN_MEMORY_GB.get(engine)
    if least is not None and float(memory_gb) < least:
        raise RunnerError(
            f"memory_gb {memory_gb:g} is too small for {engine}: it needs at least "
            f"{least:.2f} GiB per worker; raise memory_gb"
        )
    if config.get("address"):  # an existing cluster: its own machines
        return
    import psutil

    total_gb = psutil.virtual_memory().total / 2**30
    workers = int(config["workers"])
    if least is not None and float(memory_gb) * workers > total_gb:
        raise RunnerError(
            f"memory_gb {memory_gb:g} x {workers} workers is more than this machine's "
            f"{total_gb:.1f} GiB; lower memory_gb or workers"
        )


def check_installed(engine: str, on: str | None = None) -> None:
    """Refuse an engine whose libraries are missing (``on``: the engine that needs them, when
    Keras runs inside another engine's workers)."""
    info = get_engine(engine)
    if not info.installed():
        what = f"engine {engine}" if on is None else f"Keras on engine {on} needs {engine}, which"
        raise RunnerError(
            f"{what} is not installed; install it with pip install 'trialkit[{info.extra}]'"
        )


def fit_in_driver(
    workload: Any, config: Config, seed: int, split: Any, threads: int, backend: str
) -> Any:
    """Paper 001's way: fit the workload's scikit-learn estimator inside
    ``joblib.parallel_backend(backend)`` (the engine registers it), in the driver, its BLAS held to
    a worker's ``threads`` as the local engine's is."""
    import joblib
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads), joblib.parallel_backend(backend):
        return workload.fit(config, seed, split.x_train, split.y_train)


def make_session(config: Mapping[str, Any]) -> EngineSession:
    """The session of the configuration's registry cell (its module imported now), given the
    configuration as a :class:`runner.config.Config` (a resolved configuration's dict is made one
    here; the configuration worker passes the one it built)."""
    resolved = Config.from_mapping(config)
    found = registry.cell(resolved.engine, resolved.workload)
    return found.session_factory()(resolved)  # type: ignore[no-any-return]


def support_matrix() -> str:
    """Engine x workload table as text (the implementations where a cell has several), install
    status, and each cell's description: the registry, as `runner list engines` prints it."""
    names = registry.workload_names()

    def cell(info: EngineInfo, workload: str) -> str:
        found = registry.find_cell(info.name, workload)
        if found is None:
            return "-"
        return ",".join(found.impls) if found.impls else "yes"

    widths = {n: max(len(n), *(len(cell(i, n)) for i in ENGINES.values())) for n in names}
    width = max(len(n) for n in ENGINES) + 2
    lines = [
        (
            "engine".ljust(width) + "installed  " + "  ".join(n.ljust(widths[n]) for n in names)
        ).rstrip(),
    ]
    for info in ENGINES.values():
        cells = [cell(info, n).ljust(widths[n]) for n in names]
        lines.append(
            info.name.ljust(width)
            + ("yes" if info.installed() else f"no: pip install 'trialkit[{info.extra}]'").ljust(11)
            + "  ".join(cells).rstrip()
        )
    lines.append("")
    for info in ENGINES.values():
        lines.append(f"{info.name}: {info.description}")
        for workload, how in info.workloads.items():
            lines.append(f"  {workload}: {how}")
    return "\n".join(lines)
