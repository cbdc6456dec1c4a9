"""The one place for the analysis options every command shares: their defaults and their bounds.

Seed, bootstrap resamples, confidence level and alpha are checked here and nowhere else, so
``analyze ttest --bootstrap 50`` and ``analyze scaling --bootstrap 50`` refuse with the same
sentence. Light imports only: ``analyze --help`` shows these defaults.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from analysis.errors import AnalysisError

#: Seed of every resampling (bootstrap, Shapiro-Wilk subsample) unless ``--seed`` says otherwise.
DEFAULT_SEED = 0
#: Bootstrap resamples of a percentile interval (``--bootstrap``); 0 means no interval.
N_BOOT = 2000
#: Fewest and most resamples accepted for a percentile interval.
MIN_BOOT, MAX_BOOT = 100, 10_000_000
#: Level of two-sided intervals (``--confidence``).
CONFIDENCE = 0.95
#: Level of tests and decisions (``--alpha``).
ALPHA = 0.05


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_seed(seed: Any) -> int:
    """A seed is a whole number >= 0."""
    if not _is_int(seed) or seed < 0:
        raise AnalysisError(f"--seed {seed!r} is not a seed; give a whole number >= 0, e.g. 0")
    return int(seed)


def check_bootstrap(n_boot: Any) -> int:
    """0 (no interval) or ``MIN_BOOT``..``MAX_BOOT`` resamples."""
    if not _is_int(n_boot) or n_boot < 0:
        raise AnalysisError(
            f"--bootstrap {n_boot!r} is not a number of resamples; give 0 (no interval) or "
            f"{MIN_BOOT}..{MAX_BOOT:,}"
        )
    if 0 < n_boot < MIN_BOOT or n_boot > MAX_BOOT:
        raise AnalysisError(
            f"--bootstrap {n_boot} is outside {MIN_BOOT}..{MAX_BOOT:,} resamples; use {N_BOOT} "
            "(the default), or 0 for no interval"
        )
    return int(n_boot)


def check_confidence(level: Any) -> float:
    """A confidence level strictly between 0 and 1."""
    if not _is_real(level) or not math.isfinite(level) or not 0 < level < 1:
        raise AnalysisError(f"--confidence {level!r} is not between 0 and 1; give e.g. 0.95")
    return float(level)


def check_alpha(alpha: Any) -> float:
    """A test level strictly between 0 and 1."""
    if not _is_real(alpha) or not math.isfinite(alpha) or not 0 < alpha < 1:
        raise AnalysisError(f"--alpha {alpha!r} is not between 0 and 1; give e.g. 0.05")
    return float(alpha)


def check_fraction(value: Any, option: str, *, example: str = "5%") -> float:
    """A fraction in (0, 1), e.g. ``--min-gain``."""
    if not _is_real(value) or not math.isfinite(value) or not 0 < value < 1:
        raise AnalysisError(f"{option} {value!r} must be between 0 and 1, e.g. {example}")
    return float(value)
