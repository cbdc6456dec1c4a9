"""One resolved configuration: what a configuration worker, its engine session and its workload
read, typed and frozen.

``runner.spec`` expands an experiment into plain dicts (that is what the store keeps, as
``params``); the configuration worker turns the dict it receives into a :class:`Config` once, with
:meth:`Config.from_mapping`, and everything downstream reads typed fields (``config.workers``,
``config.threads_per_worker``, ``config.seed``, ``config.data_fraction``) instead of filling in
defaults again. The factor fields are typed attributes; every other key (workload parameters such
as ``k`` or ``hidden``, engine parameters such as ``spark_mode``, ``estimator``, ``data_dir``,
``storage``, ``address``, ...) stays in a read-only mapping, :attr:`Config.params`.

A ``Config`` is also a read-only ``Mapping`` of the whole configuration, so ``config["k"]``,
``config.get("hidden")`` and ``dict(config)`` work, and ``dict(Config.from_mapping(c)) == c`` for
every configuration the spec stores. It is frozen (setting an attribute raises) and hashable.

This module is at the bottom of the runner's imports: it imports nothing of the runner but
``runner.errors``.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from runner.errors import RunnerError

#: What a metric or param name must look like to become a column of the results database (it is
#: checked again by the store; the spec checks it before anything runs).
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
#: Defaults of the factor fields a configuration may leave out. The spec starts every
#: configuration from these (``runner.spec.BASE_DEFAULTS``, which a test keeps equal to this), so
#: what is stored is what runs.
FACTOR_DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "workers": 1,
    "threads_per_worker": 1,
    "data_fraction": 1.0,
}
#: Fields every configuration names itself: the spec always stores them.
REQUIRED = ("engine", "workload", "experiment", "seed")
_TEXT = ("engine", "workload", "dataset", "experiment")
_COUNTS = ("workers", "threads_per_worker")
_OPTIONAL_COUNTS = ("batch_size", "epochs")
#: The most a configuration may ask for of each count: beyond it a value is a typo (or an attack
#: on the machine: each worker is a process), not a plan.
MAX_COUNTS = {"workers": 1024, "threads_per_worker": 1024, "batch_size": 10**7, "epochs": 10**6}
#: The most trials (``n``, ``warmup``, ``--max-n``) a run may plan per configuration.
MAX_TRIALS = 1_000_000
#: The most configurations an experiment may expand to without ``--yes`` (a typo in a level list
#: can otherwise plan days of trials, or take minutes to expand).
MAX_CONFIGS = 10_000
#: The longest ``timeout`` of a trial, in seconds (a week).
MAX_TIMEOUT_S = 7 * 24 * 3600.0
#: The most columns a CSV to import may have: each metric or param becomes a column of the
#: results database (3,000 new columns took minutes to stage; a wider file is a mistake or an
#: attack, not a results table).
MAX_CSV_COLUMNS = 1_000
#: The largest base seed: a trial's seed is the base seed plus the trials started before it, and
#: the libraries take seeds below 2**32 (scikit-learn's ``random_state``, NumPy's legacy seed).
MAX_SEED = 2**31 - 1


def _fail(key: str, what: str, value: Any) -> RunnerError:
    return RunnerError(f"configuration: {key} must be {what}, got {value!r}")


def _count(key: str, value: Any) -> int:
    top = MAX_COUNTS.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(key, "an integer >= 1", value)
    if top is not None and value > top:
        raise _fail(key, f"an integer from 1 to {top:,}", value)
    return value


def _number(key: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _fail(key, "a finite number > 0", value)
    return float(value)


def check_timeout(value: Any, where: str) -> float:
    """A trial timeout in seconds: a finite number > 0 and at most :data:`MAX_TIMEOUT_S`
    (NaN, inf and 1e308 would never fire); ``where`` names the option or spec key."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_TIMEOUT_S
    ):
        raise RunnerError(
            f"{where} must be a number of seconds > 0 and at most {MAX_TIMEOUT_S:,.0f} "
            f"(a week), got {value!r}"
        )
    return float(value)


def check_seed(value: Any, where: str) -> int:
    """A base seed: an integer from 0 to :data:`MAX_SEED` (-1 or 2**40 made every trial fail
    in the library that took it)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RunnerError(f"{where} must be an integer >= 0, got {value!r}")
    if value > MAX_SEED:
        raise RunnerError(f"{where} must be an integer >= 0 and at most {MAX_SEED:,}, got {value}")
    return value


def check_trials(value: Any, where: str, *, minimum: int = 1) -> int:
    """A number of trials per configuration: an integer from ``minimum`` to
    :data:`MAX_TRIALS`."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_TRIALS:
        raise RunnerError(
            f"{where} must be an integer from {minimum} to {MAX_TRIALS:,}, got {value!r}"
        )
    return value


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a JSON-like value (equal values give equal stand-ins)."""
    if isinstance(value, Mapping):
        return frozenset((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True, eq=False)
class Config(Mapping[str, Any]):
    """A configuration with its factors typed: build it with :meth:`from_mapping`."""

    engine: str
    workload: str
    dataset: str
    workers: int
    threads_per_worker: int
    data_fraction: float
    seed: int
    experiment: str
    #: optional factors: None when the configuration does not set them
    memory_gb: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    #: every other key of the configuration (workload and engine parameters, ...), read-only
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Config:
        """Check the factors' types once and fill in :data:`FACTOR_DEFAULTS` for the ones left
        out; RunnerError (one line naming the key) for a missing or ill-typed factor."""
        if isinstance(mapping, Config):
            return mapping
        if not isinstance(mapping, Mapping):
            raise RunnerError(f"configuration must be a mapping of keys to values, got {mapping!r}")
        data = {**FACTOR_DEFAULTS, **copy.deepcopy(dict(mapping))}
        for key in REQUIRED:
            if data.get(key) is None:
                raise RunnerError(f"configuration has no {key}; every configuration names it")
        for key in _TEXT:
            if not isinstance(data[key], str) or not data[key]:
                raise _fail(key, "a non-empty string", data[key])
        for key in _COUNTS:
            _count(key, data[key])
        check_seed(data["seed"], "configuration: seed")
        data["data_fraction"] = _number("data_fraction", data["data_fraction"])
        if data["data_fraction"] > 1:
            raise _fail("data_fraction", "a fraction in (0, 1]", mapping.get("data_fraction"))
        if data.get("memory_gb") is not None:
            data["memory_gb"] = _number("memory_gb", data["memory_gb"])
        for key in _OPTIONAL_COUNTS:
            if data.get(key) is not None:
                _count(key, data[key])
        typed = {f.name for f in fields(cls)} - {"params"}
        return cls(
            **{k: data.get(k) for k in typed},
            params={k: v for k, v in data.items() if k not in typed},
        )

    def __post_init__(self) -> None:
        # keep the caller's dict out: a read-only copy of its own
        object.__setattr__(self, "params", _ReadOnly(dict(self.params)))

    # -- the mapping of the whole configuration ---------------------------------------------

    def _typed(self) -> dict[str, Any]:
        """The typed fields that are set, in field order."""
        out = {}
        for f in fields(self):
            if f.name != "params":
                value = getattr(self, f.name)
                if value is not None or f.name not in ("memory_gb", "batch_size", "epochs"):
                    out[f.name] = value
        return out

    def __getitem__(self, key: str) -> Any:
        if key in _TYPED_NAMES:
            value = getattr(self, key)
            if value is None:
                raise KeyError(key)
            return value
        return self.params[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._typed()
        yield from self.params

    def __len__(self) -> int:
        return len(self._typed()) + len(self.params)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    def __hash__(self) -> int:
        return hash(_freeze(self.to_dict()))

    def __repr__(self) -> str:
        return f"Config({self.to_dict()!r})"

    def to_dict(self) -> dict[str, Any]:
        """The whole configuration as a plain dict (a copy: changing it changes nothing here)."""
        return copy.deepcopy({**self._typed(), **self.params})

    def replace(self, **changes: Any) -> Config:
        """A new configuration with these keys changed (checked as :meth:`from_mapping` does)."""
        return Config.from_mapping({**self.to_dict(), **changes})


class _ReadOnly(Mapping[str, Any]):
    """A read-only view of a dict whose list and dict values come out as copies, so nothing
    reached through a Config changes it."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return copy.deepcopy(value) if isinstance(value, list | dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_ReadOnly, (self._data,))


_TYPED_NAMES = frozenset(f.name for f in fields(Config)) - {"params"}
#: The keys a configuration holds as typed fields: the factors, ``experiment`` and ``seed``.
TYPED_KEYS = _TYPED_NAMES
