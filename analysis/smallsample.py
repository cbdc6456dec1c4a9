"""Honest small samples: the note every comparison carries when a group has few trials.

Below :data:`MIN_TRIALS` trials per group a test has little power, its interval leans wholly on
the normality of a handful of values, and no check can see a violation; ``ttest``, ``anova``
(one-way, per level; two-way, per cell), ``power``, ``compare`` and ``summary`` say so in their
notes (shown by every output format).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Fewer trials than this in a group draws the small-sample note.
MIN_TRIALS = 5


def small_sample_note(sizes: Iterable[tuple[str, int]], *, what: str = "") -> str | None:
    """The note for the ``(label, n)`` pairs with ``n < MIN_TRIALS``, or None when every group
    has enough; ``what`` names the grouping (``"workers="``) in front of each label."""
    small = [(label, n) for label, n in sizes if n < MIN_TRIALS]
    if not small:
        return None
    listed = ", ".join(f"{what}{label} ({n})" for label, n in small)
    return (
        f"few trials: fewer than {MIN_TRIALS} in {listed}; with so few, intervals and tests rest "
        "on the normality of a handful of values, which no check can verify, and a test has "
        f"little power; run at least {MIN_TRIALS} trials per group"
    )
