"""The papers' claims and their two verdicts: on the paper's own numbers, and on our trials.

Claims are declared per paper in ``reports/papers/paperKEY.claims.toml``::

    [[claims]]
    id = "000-3"
    summary = "Dask runs KNN faster on 6 workers than on 2"     # our words, one line
    quote = "reduced the execution time ... from 3.78 seconds with two workers to 2.69 ..."
    kind = "less"          # see analysis.verdict.KINDS, or "text" (no statistic decides it)
    metric = "train_s"
    factor = "workers"
    a = 6                  # less/greater: metric at factor=a is lower/higher than at factor=b
    b = 2
    effect = 0.29          # the claimed size (relative), for the power of an inconclusive test
    where = { engine = "dask", workload = "knn" }     # both sides
    published = { table = "T3" }                      # paper side: its table (+ where, pair_by)
    measured = { where = { dataset = "digits" } }     # our side: extra conditions

``published.none = "why"`` says the paper published no numbers that decide the claim;
``measured.untestable = "why"`` says why our trials cannot test it. The paper side selects the
run imported by ``runner import published`` (source ``published:KEY``) and the table's rows; our
side selects ``experiment = paperKEY`` from measured runs. :func:`evaluate_claims` runs the
statistic of each claim through :mod:`analysis.verdict` and returns one :class:`ClaimVerdict`
per claim.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from analysis import AnalysisError, Filter, list_runs
from analysis import verdict as decide
from reports.errors import ReportError

PAPERS_DIR = Path(__file__).parent / "papers"
#: Verdicts on the paper's own published numbers.
PAPER_VERDICTS = (
    "follows",
    "does not follow",
    "one run per cell",
    "no numbers published",
    "not imported",
)
#: Verdicts on our trials.
OUR_VERDICTS = ("agrees", "disagrees", "inconclusive", "not testable here", "no trials")
KINDS = (*decide.KINDS, "text")
_CLAIM_KEYS = {
    "id",
    "summary",
    "quote",
    "kind",
    "metric",
    "factor",
    "a",
    "b",
    "effect",
    "expect",
    "levels",
    "best",
    "goal",
    "value",
    "tolerance",
    "compare",
    "x",
    "r2",
    "where",
    "published",
    "measured",
}
#: Keys of a claim a side may override (the same statistic, other column names or levels).
_OVERRIDABLE = {
    "metric",
    "factor",
    "a",
    "b",
    "effect",
    "levels",
    "best",
    "goal",
    "value",
    "x",
    "tolerance",
}
_SIDE_KEYS = {
    "published": {"table", "where", "pair_by", "none", "verdict", "detail", *_OVERRIDABLE},
    "measured": {"where", "untestable", *_OVERRIDABLE},
}


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim of a paper with its two verdicts and the numbers that decided them."""

    paper: str  # paper key, "000"
    id: str  # "000-1"
    summary: str  # what is claimed, one line in our words
    quote: str  # the paper's words (short)
    paper_verdict: str  # one of PAPER_VERDICTS
    paper_test: str  # the statistic on the published numbers
    paper_detail: str  # its numbers
    our_verdict: str  # one of OUR_VERDICTS
    our_test: str  # the test that decided ("Welch t-test", "Welch's one-way ANOVA", ...)
    our_detail: str  # the numbers that decided (n, means, ratio and CI, p, power)
    run_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def claims_path(key: str) -> Path:
    return PAPERS_DIR / f"paper{key}.claims.toml"


def load_claims(key: str) -> list[dict[str, Any]]:
    """The claims of paper ``key``, checked: known keys and kinds, ids unique."""
    path = claims_path(key)
    if not path.is_file():
        raise ReportError(f"no claims for paper {key!r} ({path.name} missing)")
    with path.open("rb") as fh:
        claims = tomllib.load(fh).get("claims", [])
    seen: set[str] = set()
    for claim in claims:
        cid = claim.get("id", "?")
        unknown = set(claim) - _CLAIM_KEYS
        if unknown:
            raise ReportError(f"{path.name}, claim {cid}: unknown keys {sorted(unknown)}")
        for side, allowed in _SIDE_KEYS.items():
            extra = set(claim.get(side, {})) - allowed
            if extra:
                raise ReportError(f"{path.name}, claim {cid}: unknown {side} keys {sorted(extra)}")
        if claim.get("kind") not in KINDS:
            raise ReportError(f"{path.name}, claim {cid}: kind must be one of {', '.join(KINDS)}")
        for field in ("id", "summary", "quote"):
            if not claim.get(field):
                raise ReportError(f"{path.name}, claim {cid}: {field} is missing")
        if cid in seen:
            raise ReportError(f"{path.name}: claim id {cid} appears twice")
        seen.add(cid)
    return claims


def _filters(*wheres: Mapping[str, Any]) -> list[Filter]:
    merged: dict[str, Any] = {}
    for where in wheres:
        merged.update(where)
    return [Filter(k, "=", _text(v)) for k, v in merged.items()]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _merged(claim: Mapping[str, Any], side: Mapping[str, Any]) -> dict[str, Any]:
    """The claim with the side's overrides of its statistic's parameters."""
    return {**claim, **{k: v for k, v in side.items() if k in _OVERRIDABLE}}


def _decide(
    db: Any,
    claim: Mapping[str, Any],
    where: list[Filter],
    *,
    pair_by: str | None = None,
    r2: float | None = None,
) -> decide.Verdict:
    kind = claim["kind"]
    metric = claim.get("metric", "train_s")
    factor = claim.get("factor", "")
    only = claim.get("levels")
    if kind in ("less", "greater") and pair_by:
        return decide.compare_pairs(
            db,
            metric=metric,
            factor=factor,
            a=claim["a"],
            b=claim["b"],
            expect=kind,
            pair_by=pair_by,
            where=where,
        )
    if kind in ("less", "greater"):
        return decide.compare_two(
            db,
            metric=metric,
            factor=factor,
            a=claim["a"],
            b=claim["b"],
            expect=kind,
            where=where,
            effect=claim.get("effect"),
        )
    if kind == "trend":
        return decide.trend(
            db, metric=metric, factor=factor, expect=claim["expect"], where=where, only=only
        )
    if kind in ("no_difference", "differs"):
        return decide.spread(
            db,
            metric=metric,
            factor=factor,
            where=where,
            expect="same" if kind == "no_difference" else "differs",
            tolerance=claim.get("tolerance", decide.NO_DIFFERENCE_TOLERANCE),
            only=only,
        )
    if kind == "best":
        return decide.best(
            db,
            metric=metric,
            factor=factor,
            expect=claim["best"],
            goal=claim["goal"],
            where=where,
            tolerance=claim.get("tolerance", 0.0),
        )
    if kind == "value":
        return decide.value(
            db,
            metric=metric,
            expect=claim["value"],
            where=where,
            tolerance=claim.get("tolerance", 0.0),
            compare=claim.get("compare", "near"),
        )
    if kind == "r_squared":
        return decide.r_squared(db, y=metric, x=claim["x"], where=where, expect=r2)
    raise ReportError(f"claim {claim['id']}: kind {kind!r} has no statistic")


Side = tuple[str, str, str]  # verdict, test, detail


def _paper_side(db: Any, claim: Mapping[str, Any], key: str, imported: bool) -> Side:
    side = claim.get("published", {})
    if "verdict" in side:  # decided by reading, as the detail explains (in-text numbers)
        if side["verdict"] not in PAPER_VERDICTS:
            raise ReportError(f"claim {claim['id']}: published.verdict {side['verdict']!r}")
        return side["verdict"], "read from the paper", side.get("detail", "")
    if "none" in side:
        return "no numbers published", "-", side["none"]
    if claim["kind"] == "text":
        return "no numbers published", "-", "a statement no published table decides"
    if not imported:
        return "not imported", "-", f"run `runner import published --paper {key}`"
    where = _filters(
        {"source": f"published:{key}"},
        {"table": side["table"]} if "table" in side else {},
        claim.get("where", {}),
        side.get("where", {}),
    )
    try:
        merged = _merged(claim, side)
        v = _decide(db, merged, where, pair_by=side.get("pair_by"), r2=claim.get("r2"))
    except AnalysisError as exc:
        return "does not follow", "-", f"cannot be computed from the table: {exc}"
    verdict = v.verdict
    if verdict in ("agrees", "disagrees", "inconclusive"):
        # Replicated published rows (several per cell): the test decides as for ours.
        verdict = {"agrees": "follows", "disagrees": "does not follow"}.get(verdict, verdict)
        if verdict == "inconclusive":
            verdict = "does not follow"
    return verdict, v.test, v.detail


def _our_side(db: Any, claim: Mapping[str, Any], key: str) -> Side:
    side = claim.get("measured", {})
    if "untestable" in side:
        return "not testable here", "-", side["untestable"]
    if claim["kind"] == "text":
        return "not testable here", "-", "no statistic decides this statement"
    where = _filters(
        {"experiment": f"paper{key}", "source": "measured"},
        claim.get("where", {}),
        side.get("where", {}),
    )
    if not decide.has_trials(db, where):
        return (
            "no trials",
            "-",
            (
                f"no measured trials of experiment paper{key} match; `runner trials --experiment "
                f"{key}` (without --quick) runs every configuration the claims need"
            ),
        )
    try:
        v = _decide(db, _merged(claim, side), where)
    except AnalysisError as exc:
        return "inconclusive", "-", str(exc)
    verdict = v.verdict
    if verdict in ("one run per cell", "does not follow", "follows"):
        # One trial per level of ours: no test; say so rather than claim agreement.
        verdict = "inconclusive"
        return verdict, "none (one trial per level)", v.detail
    return verdict, v.test, v.detail


def evaluate_claims(db: Any, key: str) -> tuple[ClaimVerdict, ...]:
    """Every claim of paper ``key`` with both verdicts, from the trials in ``db`` (a path or an
    open connection)."""
    from analysis.data import connect

    claims = load_claims(key)
    with connect(db) as con:
        runs = [r for r in list_runs(con) if f"paper{key}" in r.experiments]
        imported = any(r.source == f"published:{key}" for r in runs)
        run_ids = tuple(str(r.run_id) for r in runs)
        out = []
        for claim in claims:
            pv, pt, pd = _paper_side(con, claim, key, imported)
            ov, ot, od = _our_side(con, claim, key)
            out.append(
                ClaimVerdict(
                    paper=key,
                    id=claim["id"],
                    summary=claim["summary"],
                    quote=claim["quote"],
                    paper_verdict=pv,
                    paper_test=pt,
                    paper_detail=pd,
                    our_verdict=ov,
                    our_test=ot,
                    our_detail=od,
                    run_ids=run_ids,
                )
            )
    return tuple(out)
