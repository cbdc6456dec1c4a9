"""The papers' claims and their two verdicts: on the paper's own numbers, and on our trials.

Claims are declared per paper in ``reports/papers/paperKEY.claims.toml``; each names the
statistic that decides it. :func:`evaluate_claims` runs those statistics through the analysis
package's public functions and returns one :class:`ClaimVerdict` per claim.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Verdicts on the paper's own published numbers.
PAPER_VERDICTS = ("follows", "does not follow", "one run per cell", "no numbers published")
#: Verdicts on our trials.
OUR_VERDICTS = ("agrees", "disagrees", "inconclusive", "not testable here", "no trials")


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim of a paper with its two verdicts and the numbers that decided them."""

    paper: str  # paper key, "000"
    id: str  # "000-1"
    summary: str  # what is claimed, one line in our words
    quote: str  # the paper's words (short)
    paper_verdict: str  # one of PAPER_VERDICTS
    paper_detail: str  # the statistic on the published numbers
    our_verdict: str  # one of OUR_VERDICTS
    our_test: str  # the test that decided ("Welch t-test", "one-way ANOVA", ...)
    our_detail: str  # the numbers that decided (n, means, ratio and CI, p, power)
    run_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_claims(db: Any, key: str) -> tuple[ClaimVerdict, ...]:
    """Every claim of paper ``key`` with both verdicts, from the trials in ``db`` (a path or an
    open connection). Placeholder until the claims land: no claims."""
    return ()
