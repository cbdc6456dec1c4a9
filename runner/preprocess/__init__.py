"""Workload ``preprocess`` (paper 003): image pre-processing throughput. In progress."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.errors import RunnerError


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    return dict(config)


def check(config: Mapping[str, Any]) -> None:
    raise RunnerError("preprocess: not available yet")
