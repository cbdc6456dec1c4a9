"""Experiment specs: TOML files that expand to configurations (engine x workload x dataset x
factor levels).

```toml
name = "default"
n = 10          # measured trials per configuration
warmup = 1      # warm-up trials per configuration (stored, flagged, not counted)
seed = 0
timeout = 600   # seconds per trial

[defaults]                  # every configuration starts from these
dataset = "digits"
threads_per_worker = 1

[workloads.knn]             # then the workload's own defaults
k = 5

[[matrix]]                  # then each matrix entry; a list gives levels to cross
engine = "dask"
workload = ["knn", "mlp"]
workers = [1, 2]
```
``rounds = R`` (top level or in ``[quick]``) spreads the trials over R rounds (the default is 2;
``--rounds`` overrides it). An optional top-level ``[quick]`` table is the reduced variant
``runner trials --quick`` runs (for CI: a few minutes). It overrides ``n``, ``warmup``, ``timeout``
and ``rounds``, may replace the whole grid
with its own ``[[quick.matrix]]`` entries, and may keep only the configurations that match
``where`` (a key -> a value or a list of allowed values; a configuration without that key is not
filtered by it). ``expected_minutes = {full = 12, quick = 2.5}`` says how long each variant takes
on the machine it was measured on (``runner list experiments`` shows it)::

    expected_minutes = {full = 12, quick = 2.5}

    [quick]
    n = 2
    warmup = 0
    where = {workers = 1, data_fraction = [0.3, 0.9]}

Keys that are trial columns (``FACTORS``) become columns; any other key is a workload parameter
(kept in ``params``). A list of lists gives levels of a list-valued parameter (``hidden``). A
configuration holds only keys its workload takes (``runner.workloads``: the workload's own
``params``, ``LABELS`` such as ``table`` or ``cluster`` that name it for the reports, and the
engine keys ``RUNNER_KEYS``); any other key (``foo = 2`` for knn) is refused with that list, before
anything runs. Values are strings, booleans, integers, finite numbers or lists of them; ``name``
and ``seed`` are set at the top only.

``spark_mode`` (``"local"`` by default, or ``"standalone"``: the runner starts a Spark standalone
cluster itself) is an engine parameter of ``spark`` configurations. It may sit in ``[defaults]``
or ``[workloads.*]``, where configurations of other engines ignore it (and do not store it); a
``[[matrix]]`` entry that sets it must be for engine spark only. ``"local"`` is not stored, so a
configuration's id does not change by spelling out the default. ``strategy`` (tensorflow's
distribution strategy) is an engine parameter of ``tensorflow`` configurations in the same way.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.config import (
    FACTOR_DEFAULTS,
    MAX_CONFIGS,
    NAME_RE,
    Config,
    check_seed,
    check_timeout,
    check_trials,
)
from runner.errors import RunnerError

EXPERIMENTS_DIR = Path(__file__).parent / "experiments"
FACTORS = (
    "engine",
    "workload",
    "dataset",
    "workers",
    "threads_per_worker",
    "memory_gb",
    "batch_size",
    "epochs",
    "data_fraction",
)
_FLOAT_FACTORS = ("memory_gb", "data_fraction")
#: Parameters whose value is itself a list (a plain list is one value, a list of lists levels).
LIST_PARAMS = ("hidden",)
_TOP_KEYS = {
    "name",
    "description",
    "n",
    "warmup",
    "seed",
    "timeout",
    "defaults",
    "workloads",
    "matrix",
    "quick",
    "expected_minutes",
    "rounds",
}
#: Keys of the ``[quick]`` table.
QUICK_KEYS = ("n", "warmup", "timeout", "rounds", "matrix", "where")
#: Keys of ``expected_minutes``.
EXPECTED_KEYS = ("full", "quick")
#: Keys a spec sets at its top level only: ``name`` (the ``experiment`` of every trial) and
#: ``seed`` (the base seed); in a table they would silently override them.
TOP_ONLY = ("experiment", "seed")
#: The longest experiment name (it is stored with every trial).
MAX_NAME = 256
#: The range of an integer the results database stores (DuckDB's BIGINT).
_INT64 = (-(2**63), 2**63 - 1)
#: Ways the spark engine runs: local[N], or a standalone cluster the runner starts and stops.
SPARK_MODES = ("local", "standalone")
#: What a configuration gets when nothing sets these factors (one place: runner.config).
BASE_DEFAULTS: dict[str, Any] = dict(FACTOR_DEFAULTS)


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    description: str
    n: int
    warmup: int
    seed: int
    timeout: float
    configs: tuple[dict[str, Any], ...]
    #: True when this is the spec's ``[quick]`` variant
    quick: bool = False
    #: minutes each variant is expected to take: {"full": .., "quick": ..} (either may be absent)
    expected_minutes: Mapping[str, float] = field(default_factory=dict)
    #: what the user should know about how the configurations were chosen (cells left out)
    notes: tuple[str, ...] = ()
    #: True when the configurations come from the command line's grid, not a spec file
    from_grid: bool = False
    #: rounds the spec asks for (``rounds = 1`` in a [quick] table: one pass), None: the default
    rounds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "description": self.description,
            "n": self.n,
            "warmup": self.warmup,
            "seed": self.seed,
            "timeout": self.timeout,
            "quick": self.quick,
            "expected_minutes": dict(self.expected_minutes),
            "notes": list(self.notes),
            "from_grid": self.from_grid,
            "spec_rounds": self.rounds,
            "configs": [dict(c) for c in self.configs],
        }


@dataclass(frozen=True)
class ExperimentInfo:
    """What ``runner list experiments`` shows of a spec, read without expanding it."""

    name: str
    path: Path
    description: str
    expected_minutes: Mapping[str, float]
    has_quick: bool

    @property
    def summary(self) -> str:
        """The description's first sentence, on one line."""
        text = " ".join(self.description.split())
        match = re.match(r"(.+?[.!?])(?=\s|$)", text)
        return match.group(1) if match else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "description": self.description,
            "summary": self.summary,
            "expected_minutes": dict(self.expected_minutes),
            "has_quick": self.has_quick,
        }


def builtin_experiments() -> dict[str, Path]:
    return {p.stem: p for p in sorted(EXPERIMENTS_DIR.glob("*.toml"))}


def resolve_experiment(name_or_path: str) -> Path:
    """A built-in name (``paper002``), a bare paper key (``002`` -> ``paper002``) or a path."""
    builtin = builtin_experiments()
    if name_or_path in builtin:
        return builtin[name_or_path]
    if name_or_path.isdigit() and f"paper{name_or_path}" in builtin:
        return builtin[f"paper{name_or_path}"]
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise RunnerError(f"experiment file {path} not found; give an existing .toml file")
        return path
    raise RunnerError(
        f"unknown experiment {name_or_path!r}; give a .toml path or one of: {', '.join(builtin)}"
    )


def config_id(config: Mapping[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _levels(key: str, value: Any) -> list[Any]:
    if isinstance(value, list):
        if key in LIST_PARAMS and not any(isinstance(v, list) for v in value):
            return [value]
        if not value:
            raise RunnerError(f"spec key {key!r} has an empty list of levels; give at least one")
        return list(value)
    return [value]


def _expand(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    keys = list(entry)
    return [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(_levels(k, entry[k]) for k in keys))
    ]


def _check_factor_types(config: dict[str, Any], where: str) -> None:
    """The factors' types and bounds, checked where they are kept
    (:meth:`runner.config.Config.from_mapping`, the one place for them) and named with
    ``where``; the float factors stored as floats (``memory_gb = 4`` is 4.0)."""
    try:
        Config.from_mapping({"experiment": "-", "seed": 0, **config})
    except RunnerError as exc:
        raise RunnerError(f"{where}: {str(exc).removeprefix('configuration: ')}") from None
    for key in _FLOAT_FACTORS:
        if config.get(key) is not None:
            config[key] = float(config[key])


#: Parameters of one engine: in [defaults] or [workloads.X] they apply to that engine's
#: configurations only; in a [[matrix]] entry for other engines they are refused.
ENGINE_PARAMS = {"spark_mode": "spark", "strategy": "tensorflow"}


def _check_spark_mode(value: Any, where: str) -> None:
    for mode in value if isinstance(value, list) else [value]:
        if mode not in SPARK_MODES:
            raise RunnerError(
                f"{where}: spark_mode must be one of {', '.join(SPARK_MODES)}, got {mode!r}"
            )


def _spark_mode(config: dict[str, Any], engine: str, where: str) -> None:
    """Keep ``spark_mode`` for spark configurations only, and only when it is not the default;
    refuse a standalone cluster together with an existing one."""
    mode = config.pop("spark_mode", None)
    if engine != "spark" or mode in (None, "local"):
        return
    address = config.get("address")
    if address:
        raise RunnerError(
            f"{where}: spark_mode 'standalone' starts a Spark cluster and --spark-master "
            f"{address} uses an existing one; choose one"
        )
    config["spark_mode"] = mode


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RunnerError(f"experiment {path} is not valid TOML: {exc}") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise RunnerError(
            f"experiment {path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: "
            f"{', '.join(sorted(_TOP_KEYS))}"
        )
    where = f"experiment {path.name}"
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or "\0" in name:
        raise RunnerError(
            f"{where}: name must be a non-empty string of at most {MAX_NAME} characters, got "
            f"{_short(name)}"
        )
    if not isinstance(raw.get("description", ""), str):
        shown = _short(raw["description"])
        raise RunnerError(f"{where}: description must be a string, got {shown}")
    for key in ("defaults", "workloads"):
        if not isinstance(raw.get(key, {}), dict):
            raise RunnerError(f"{where}: {key} must be a table ([{key}]), got {_short(raw[key])}")
    for workload, table in raw.get("workloads", {}).items():
        if not isinstance(table, dict):
            raise RunnerError(
                f"{where}: workloads.{workload} must be a table ([workloads.{workload}]) of its "
                f"parameters, got {_short(table)}"
            )
    return raw


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_value(key: str, value: Any, where: str, depth: int = 0) -> None:
    """A spec value the results database can store as it is: a string, a boolean, an integer
    within BIGINT, a finite number, or a list of those (a list of lists for the levels of a list
    parameter such as ``hidden``). Tables, dates and times, NaN and infinities are refused."""
    if isinstance(value, list) and depth < 2:
        for item in value:
            _check_value(key, item, where, depth + 1)
        return
    ok = (
        (isinstance(value, str) and "\0" not in value)
        or isinstance(value, bool)
        or (isinstance(value, int) and _INT64[0] <= value <= _INT64[1])
        or (isinstance(value, float) and math.isfinite(value))
    )
    if not ok:
        kind = (
            "a date or time"
            if isinstance(value, datetime.date | datetime.time)
            else "a table"
            if isinstance(value, dict)
            else "too deeply nested"
            if isinstance(value, list)
            else None
        )
        shown = kind or _short(value)
        raise RunnerError(
            f"{where}: {key} = {shown} cannot be stored; give a string, true/false, an integer, "
            "a finite number, or a list of them as levels"
        )


def _expected_minutes(raw: Mapping[str, Any], path: Path) -> dict[str, float]:
    value = raw.get("expected_minutes", {})
    where = f"experiment {path.name}: expected_minutes"
    if not isinstance(value, dict):
        raise RunnerError(f"{where} must be a table such as {{full = 12, quick = 2.5}}")
    unknown = set(value) - set(EXPECTED_KEYS)
    if unknown:
        raise RunnerError(
            f"{where} has unknown key(s) {', '.join(sorted(unknown))}; allowed: "
            f"{', '.join(EXPECTED_KEYS)}"
        )
    out: dict[str, float] = {}
    for key in EXPECTED_KEYS:
        if key not in value:
            continue
        minutes = value[key]
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int | float)
            or not math.isfinite(minutes)
            or minutes <= 0
        ):
            raise RunnerError(f"{where}.{key} must be a number of minutes > 0, got {minutes!r}")
        out[key] = float(minutes)
    return out


def _quick_table(raw: Mapping[str, Any], path: Path) -> dict[str, Any] | None:
    quick = raw.get("quick")
    if quick is None:
        return None
    where = f"experiment {path.name}: [quick]"
    if not isinstance(quick, dict):
        raise RunnerError(f"{where} must be a table with any of: {', '.join(QUICK_KEYS)}")
    unknown = set(quick) - set(QUICK_KEYS)
    if unknown:
        raise RunnerError(
            f"{where} has unknown key(s) {', '.join(sorted(unknown))}; allowed: "
            f"{', '.join(QUICK_KEYS)}"
        )
    if "matrix" in quick and (
        not isinstance(quick["matrix"], list)
        or not quick["matrix"]
        or not all(isinstance(e, dict) for e in quick["matrix"])
    ):
        raise RunnerError(f"{where}: matrix must be [[quick.matrix]] entries, at least one")
    filters = quick.get("where", {})
    if not isinstance(filters, dict):
        raise RunnerError(f"{where}: where must be a table such as {{workers = [1, 2]}}")
    for key, value in filters.items():
        if isinstance(value, dict) or value == []:
            raise RunnerError(f"{where}: where.{key} must be a value or a list of values")
    return quick


def _spec_number(
    raw: Mapping[str, Any],
    quick: Mapping[str, Any] | None,
    key: str,
    default: float,
    minimum: float,
    path: Path,
) -> Any:
    """``n``, ``warmup`` or ``timeout`` from ``[quick]`` (when running it) or the top level,
    checked: an integer >= minimum (n, warmup) or a number > 0 (timeout)."""
    table, where = raw, f"experiment {path.name}: {key}"
    if quick is not None and key in quick:
        table, where = quick, f"experiment {path.name}: [quick] {key}"
    value = table.get(key, default)
    if key == "timeout":
        return check_timeout(value, where)
    return check_trials(value, where, minimum=int(minimum))


def _matches(config: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    return all(
        key not in config or config[key] in _levels(key, value) for key, value in filters.items()
    )


def experiment_info(name_or_path: str) -> ExperimentInfo:
    """Name, description and expected minutes of a spec, without expanding it."""
    path = resolve_experiment(name_or_path)
    raw = _read_spec(path)
    return ExperimentInfo(
        name=str(raw.get("name", path.stem)),
        path=path,
        description=str(raw.get("description", "")),
        expected_minutes=_expected_minutes(raw, path),
        has_quick=_quick_table(raw, path) is not None,
    )


#: Command-line grid options, in the order a configuration is labelled, and the key each sets.
GRID_OPTIONS: dict[str, str] = {
    "engine": "--engine",
    "workload": "--workload",
    "dataset": "--dataset",
    "workers": "--workers",
    "threads_per_worker": "--threads",
    "batch_size": "--batch-size",
    "epochs": "--epochs",
    "data_fraction": "--data-fraction",
}
#: What a grid from the command line runs when it does not name engines or workloads.
CLI_ENGINES = ("local",)
CLI_WORKLOADS = ("knn", "mlp")
#: Trials, warm-ups, seed and timeout of a grid from the command line (the default spec's).
CLI_SPEC = {"name": "cli", "n": 10, "warmup": 1, "seed": 0, "timeout": 600}
#: Training keys a grid gives only to the workloads that train in epochs / batches (KNN has
#: neither, so ``--workload knn,mlp --epochs 10`` sets epochs on the MLP alone).
_TRAINING_KEYS = {"epochs": ("mlp", "cnn"), "batch_size": ("mlp", "cnn", "preprocess")}


def _same(a: Any, b: Any) -> bool:
    """Spec values compared as a user means them: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _grid_spec(grid: Mapping[str, Sequence[Any]], params: Mapping[str, Sequence[Any]]) -> dict:
    """An in-memory spec of the command line's grid: every supported engine x workload cell,
    crossed with the other options' levels (workers only on distributed engines)."""
    from runner.engines import ENGINES, get_engine
    from runner.workloads import get_workload

    engines = list(grid.get("engine") or CLI_ENGINES)
    workloads = list(grid.get("workload") or CLI_WORKLOADS)
    for name in engines:
        get_engine(name)
    for name in workloads:
        get_workload(name)
    matrix = []
    for workload in workloads:
        cell_engines = [e for e in engines if workload in ENGINES[e].workloads]
        if not cell_engines:
            continue
        entry: dict[str, Any] = {"engine": cell_engines, "workload": workload}
        for key, values in grid.items():
            if key in ("engine", "workload", "workers") or not values:
                continue
            if key in _TRAINING_KEYS and workload not in _TRAINING_KEYS[key]:
                continue
            entry[key] = list(values)
        known = get_workload(workload).params
        for key, values in params.items():
            if key in known or not any(key in get_workload(w).params for w in workloads):
                entry[key] = list(values)
        matrix.append(entry)
    shown = " ".join(
        f"{GRID_OPTIONS.get(k, '--' + k)} {','.join(map(str, v))}" for k, v in grid.items() if v
    )
    shown += "".join(f" --param {k}={','.join(map(str, v))}" for k, v in params.items())
    return {
        **CLI_SPEC,
        "description": f"configurations from the command line: {shown.strip() or '(defaults)'}",
        "matrix": matrix,
    }


def _unsupported(engines: Sequence[str], workloads: Sequence[str]) -> list[str]:
    from runner.engines import ENGINES

    return [f"{e}/{w}" for w in workloads for e in engines if w not in ENGINES[e].workloads]


def load_experiment(
    name_or_path: str | None = None,
    *,
    grid: Mapping[str, Sequence[Any] | None] | None = None,
    params: Mapping[str, Sequence[Any]] | None = None,
    engines: Sequence[str] | None = None,
    workloads: Sequence[str] | None = None,
    workers: Sequence[int] | None = None,
    datasets: Sequence[str] | None = None,
    n: int | None = None,
    warmup: int | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    data_dir: str | Sequence[str] | None = None,
    addresses: Mapping[str, str] | None = None,
    spark_mode: str | None = None,
    quick: bool = False,
    yes: bool = False,
) -> Experiment:
    """Read and expand an experiment, or build one from the command line's grid.

    ``data_dir``: one folder or URL, or several (a factor: every configuration runs on each,
    and its ``storage``, ``file`` / ``s3`` / …, is stored beside it).

    ``grid`` maps a factor (:data:`GRID_OPTIONS`) to its levels and ``params`` a workload
    parameter to its levels (``engines`` … ``datasets`` are shorthands for grid entries). With
    no experiment named (``name_or_path`` None) and a grid given, the configurations are the
    grid's cross product over each workload's defaults (engine x workload cells the registry
    does not have are left out, with a note); with no grid either, the default experiment runs.
    With an experiment named, the grid filters its configurations, and a level that matches
    none of them is an error naming it. Other options override the spec (``spark_mode``: that
    of every spark configuration). ``quick``: the spec's ``[quick]`` variant. Every
    configuration is checked (engine, workload, dataset, support, factor types) before anything
    runs. More than :data:`~runner.config.MAX_CONFIGS` configurations are refused, before they
    are expanded, unless ``yes``."""
    if name_or_path is not None and not name_or_path.strip():
        raise RunnerError(
            "--experiment is empty; give a spec (a .toml path or one of: "
            f"{', '.join(builtin_experiments())}), or leave it out to build the grid from the "
            "options"
        )
    wanted: dict[str, list[Any]] = {k: list(v) for k, v in (grid or {}).items() if v}
    for key, values in (
        ("engine", engines),
        ("workload", workloads),
        ("workers", workers),
        ("dataset", datasets),
    ):
        if values:
            wanted[key] = list(values)
    unknown = sorted(set(wanted) - set(GRID_OPTIONS))
    if unknown:
        raise RunnerError(
            f"{unknown[0]} is not a grid option; use one of {', '.join(GRID_OPTIONS)}"
        )
    param_levels = {k: list(v) for k, v in (params or {}).items()}
    clash = sorted(set(param_levels) & (set(FACTORS) | {"experiment", "seed"}))
    if clash:
        option = GRID_OPTIONS.get(clash[0], "")
        raise RunnerError(
            f"--param {clash[0]} is a factor, not a workload parameter; use "
            f"{option or 'a spec file'}"
        )
    from_grid = name_or_path is None and bool(wanted or param_levels)
    notes: list[str] = []
    if from_grid:
        if quick:
            raise RunnerError("--quick needs an experiment (-e NAME) with a [quick] table")
        raw = _grid_spec(wanted, param_levels)
        path = Path("<command line>")
        skipped = _unsupported(
            wanted.get("engine") or CLI_ENGINES, wanted.get("workload") or CLI_WORKLOADS
        )
        if skipped:
            notes.append(f"left out (not in `runner list engines`): {', '.join(skipped)}")
        if not raw["matrix"]:
            raise RunnerError(
                f"no engine you named runs the workloads you named ({', '.join(skipped)}); see "
                "`runner list engines`"
            )
    else:
        path = resolve_experiment(name_or_path or "default")
        raw = _read_spec(path)
    configs, meta = _expand_spec(
        raw,
        path,
        n=n,
        warmup=warmup,
        seed=seed,
        timeout=timeout,
        workers=wanted.get("workers") if from_grid else None,
        data_dir=data_dir,
        addresses=addresses,
        spark_mode=spark_mode,
        quick=quick,
        yes=yes,
    )
    if from_grid:
        _check_all_used(configs, wanted, param_levels, meta["name"], grid_built=True)
    elif wanted or param_levels:
        _check_all_used(configs, wanted, param_levels, meta["name"], grid_built=False)
        configs = [
            c
            for c in configs
            if all(any(_same(c.get(k), v) for v in vals) for k, vals in wanted.items())
            and all(any(_same(c.get(k), v) for v in vals) for k, vals in param_levels.items())
        ]
        if not configs:
            shown = ", ".join(
                f"{k} {'/'.join(map(str, v))}" for k, v in {**wanted, **param_levels}.items()
            )
            raise RunnerError(
                f"experiment {meta['name']} has no configuration with {shown} together; drop a "
                "filter, or name no experiment to build the grid from the options"
            )
    return Experiment(
        meta["name"],
        path,
        meta["description"],
        meta["n"],
        meta["warmup"],
        meta["seed"],
        meta["timeout"],
        tuple(configs),
        quick=quick,
        expected_minutes=meta["expected_minutes"],
        notes=tuple(notes),
        from_grid=from_grid,
        rounds=meta["rounds"],
    )


def _check_all_used(
    configs: Sequence[Mapping[str, Any]],
    wanted: Mapping[str, Sequence[Any]],
    params: Mapping[str, Sequence[Any]],
    name: str,
    *,
    grid_built: bool,
) -> None:
    """Every level the user named must appear in some configuration: a level that matches
    nothing is an error naming it (never a silently smaller run)."""
    for key, values in [*wanted.items(), *params.items()]:
        option = GRID_OPTIONS.get(key, f"--param {key}")
        have = [c.get(key) for c in configs if key in c]
        for value in values:
            if any(_same(h, value) for h in have):
                continue
            present = sorted({str(h) for h in have})
            if grid_built:
                why = "no configuration takes it" + (
                    " (workers apply to distributed engines only: dask, ray, spark, tensorflow)"
                    if key == "workers"
                    else ""
                )
                raise RunnerError(
                    f"{option} {value}: {why}; drop it or add an engine that takes it"
                )
            levels = ", ".join(present) if present else "none (no configuration sets it)"
            raise RunnerError(
                f"experiment {name} has no configuration with {option.lstrip('-')} {value} "
                f"(its levels: {levels}); drop it, or name no experiment to build the grid "
                "from the options"
            )


def _expand_spec(
    raw: Mapping[str, Any],
    path: Path,
    *,
    n: int | None,
    warmup: int | None,
    seed: int | None,
    timeout: float | None,
    workers: Sequence[int] | None,
    data_dir: str | Sequence[str] | None,
    addresses: Mapping[str, str] | None,
    spark_mode: str | None,
    quick: bool,
    yes: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A spec's configurations, checked, and its run settings (name, n, warmup, …)."""
    from runner.datasets import check_dataset, data_source
    from runner.engines import ENGINES, check_memory, check_supported, get_engine
    from runner.workloads import get_workload

    name = str(raw.get("name", path.stem))
    expected = _expected_minutes(raw, path)
    quick_table = _quick_table(raw, path)
    if quick and quick_table is None:
        raise RunnerError(
            f"experiment {name} has no [quick] table; run it without --quick or add one"
        )
    variant = {**raw, **(quick_table or {})} if quick else raw
    n = _spec_number(raw, quick_table if quick else None, "n", 10, 1, path) if n is None else n
    if warmup is None:
        warmup = _spec_number(raw, quick_table if quick else None, "warmup", 1, 0, path)
    rounds = None
    if "rounds" in raw or (quick and "rounds" in (quick_table or {})):
        rounds = _spec_number(raw, quick_table if quick else None, "rounds", 2, 1, path)
    if seed is None:
        seed = check_seed(raw.get("seed", 0), f"experiment {path.name}: seed")
    else:
        seed = check_seed(seed, "--seed")
    if timeout is None:
        timeout = float(_spec_number(raw, quick_table if quick else None, "timeout", 600, 0, path))
    check_trials(n, "--n")
    check_trials(warmup, "--warmup", minimum=0)
    timeout = check_timeout(timeout, "--timeout")
    if workers is not None and any(w < 1 for w in workers):
        raise RunnerError(f"--workers must all be >= 1, got {','.join(map(str, workers))}")
    if spark_mode is not None and spark_mode not in SPARK_MODES:
        raise RunnerError(
            f"--spark-mode must be one of {', '.join(SPARK_MODES)}, got {spark_mode!r}"
        )
    if spark_mode == "standalone" and addresses and addresses.get("spark"):
        raise RunnerError(
            "--spark-mode standalone starts a Spark cluster and --spark-master "
            f"{addresses['spark']} uses an existing one; choose one"
        )

    matrix = variant.get("matrix")
    if not isinstance(matrix, list) or not matrix:
        raise RunnerError(f"experiment {path} has no [[matrix]] entries; add at least one")
    for i, entry in enumerate(matrix, 1):
        if not isinstance(entry, dict):
            raise RunnerError(
                f"experiment {path.name}: [[matrix]] entry {i} must be a table of keys, got "
                f"{_short(entry)}"
            )
    tables: list[tuple[str, Mapping[str, Any]]] = [
        (f"experiment {path.name}, [defaults]", raw.get("defaults", {})),
        *(
            (f"experiment {path.name}, [workloads.{w}]", t)
            for w, t in raw.get("workloads", {}).items()
        ),
        *((f"experiment {path.name}, [[matrix]] entry {i}", e) for i, e in enumerate(matrix, 1)),
    ]
    if path.name == "<command line>":  # a grid from the options: its values come from --param
        tables = [("--param", e) for e in matrix]
    for where, table in tables:
        for key, value in table.items():
            if key in TOP_ONLY:
                top = "name" if key == "experiment" else key
                raise RunnerError(
                    f"{where}: {key} is set once, at the top of the spec ({top} = ...) or with "
                    f"--{key if key == 'seed' else 'experiment'}; drop it here"
                )
            if not NAME_RE.match(str(key)):
                raise RunnerError(
                    f"experiment {path.name}: parameter name {key!r} is not a snake_case "
                    "identifier (lower-case letters, digits and _); rename it"
                )
            _check_value(key, value, where)
    for workload_name, table in raw.get("workloads", {}).items():
        # a workload's own table holds only what it takes (every key is refused now, not when
        # a matrix entry first uses that workload)
        get_workload(workload_name).check_keys(
            (k for k in table if k not in ENGINE_PARAMS),
            f"experiment {path.name}, [workloads.{workload_name}]",
        )
    defaults = {**BASE_DEFAULTS, **raw.get("defaults", {})}
    workload_defaults: Mapping[str, Mapping[str, Any]] = raw.get("workloads", {})
    if "spark_mode" in defaults:
        _check_spark_mode(defaults["spark_mode"], f"experiment {path.name}, [defaults]")
    for workload_name, params in workload_defaults.items():
        if "spark_mode" in params:
            where = f"experiment {path.name}, [workloads.{workload_name}]"
            _check_spark_mode(params["spark_mode"], where)

    configs: list[dict[str, Any]] = []
    seen: set[str] = set()  # each configuration once (a set: 10,000 of them in milliseconds)
    planned = 0
    for i, entry in enumerate(matrix, 1):
        where = f"experiment {path.name}, [[matrix]] entry {i}"
        for key in ("engine", "workload"):
            if key not in entry:
                raise RunnerError(f'{where} has no {key}; add {key} = "..."')
        if "spark_mode" in entry:
            _check_spark_mode(entry["spark_mode"], where)
        for key, owner in ENGINE_PARAMS.items():
            others = sorted({str(e) for e in _levels("engine", entry["engine"])} - {owner})
            if key in entry and others:
                raise RunnerError(
                    f"{where}: {key} applies to engine {owner} only, not {', '.join(others)}; "
                    f"set it in an entry for engine {owner} alone"
                )
        for partial in _expand({"engine": entry["engine"], "workload": entry["workload"]}):
            engine_name, workload_name = str(partial["engine"]), str(partial["workload"])
            get_engine(engine_name)
            workload = get_workload(workload_name)
            merged = {
                **defaults,
                **workload.defaults,
                **workload_defaults.get(workload_name, {}),
                **{k: v for k, v in entry.items() if k not in ("engine", "workload")},
                "engine": engine_name,
                "workload": workload_name,
            }
            if workers is not None and ENGINES[engine_name].max_workers is None:
                merged["workers"] = list(workers)
            if data_dir:
                dirs = [data_dir] if isinstance(data_dir, str) else list(data_dir)
                merged["data_dir"] = [_data_dir(d) for d in dirs]
            if addresses and addresses.get(engine_name):
                # an existing cluster: part of the configuration, so part of its id
                merged["address"] = addresses[engine_name]
            if engine_name == "spark" and spark_mode is not None:
                merged["spark_mode"] = spark_mode
            for key, owner in ENGINE_PARAMS.items():
                if engine_name != owner:  # from [defaults] or [workloads.X]
                    merged.pop(key, None)
            planned += math.prod(len(_levels(k, v)) for k, v in merged.items())
            if planned > MAX_CONFIGS and not yes:
                raise RunnerError(
                    f"experiment {name} expands to more than {MAX_CONFIGS:,} configurations; "
                    "narrow its levels (or filter them with the options), or pass --yes to "
                    "run them all"
                )
            keys_checked = False
            for config in _expand(merged):
                if config.get("data_dir") is not None:
                    # where the data come from (file, s3, gs, ...): a factor of load_s
                    config["storage"] = data_source(config["data_dir"])
                _spark_mode(config, engine_name, where)
                _check_factor_types(config, where)
                check_dataset(str(config["dataset"]), config.get("data_dir"))
                check_supported(engine_name, workload_name, int(config["workers"]))
                check_memory(engine_name, config)
                config = workload.resolve(config)
                workload.check(config)
                if not keys_checked:
                    keys_checked = True
                    workload.check_keys(
                        config, _key_source(config, entry, workload_defaults, workload_name, where)
                    )
                config = {"experiment": name, "seed": seed, **config}
                Config.from_mapping(config)  # the worker's typed view: refused now, not there
                key = json.dumps(config, sort_keys=True, default=str)
                if key not in seen:
                    seen.add(key)
                    configs.append(config)
    filters: Mapping[str, Any] = (quick_table or {}).get("where", {}) if quick else {}
    for key in filters if configs else ():
        if not any(key in c for c in configs):
            raise RunnerError(
                f"experiment {name}: [quick] where.{key} names no key of any configuration"
            )
    if filters and configs:
        configs = [c for c in configs if _matches(c, filters)]
        if not configs:
            raise RunnerError(
                f"experiment {name}: [quick] where keeps no configuration; loosen its filters"
            )
    meta = {
        "name": name,
        "description": str(raw.get("description", "")),
        "n": n,
        "warmup": warmup,
        "seed": seed,
        "timeout": timeout,
        "expected_minutes": expected,
        "rounds": rounds,
    }
    return configs, meta


def _key_source(
    config: Mapping[str, Any],
    entry: Mapping[str, Any],
    workload_defaults: Mapping[str, Mapping[str, Any]],
    workload: str,
    where: str,
) -> str:
    """Where a configuration's first unknown key came from, for the error: ``--param KEY`` (a
    grid from the command line), its matrix entry, ``[workloads.X]`` or ``[defaults]``."""
    from runner.workloads import get_workload

    unknown = [k for k in config if not get_workload(workload).takes(k)]
    if not unknown:
        return where
    key = unknown[0]
    if where.startswith("experiment <command line>"):
        return f"--param {key}"
    if key in entry:
        return where
    if key in workload_defaults.get(workload, {}):
        return where.split(",")[0] + f", [workloads.{workload}]"
    return where.split(",")[0] + ", [defaults]"


def _data_dir(data_dir: str) -> str:
    """A local folder as an absolute path; a URL (``s3://…``, ``file://…``) as given."""
    if "\0" in data_dir:
        raise RunnerError(f"--data-dir {data_dir!r} holds a NUL character; give a folder or URL")
    if "::" in data_dir or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", data_dir):
        return data_dir
    return str(Path(data_dir).resolve())
