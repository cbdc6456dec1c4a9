"""Results per stratum: what :func:`run_strata` returns, with its text, LaTeX and tables (the
plan it runs is :mod:`analysis.strata`'s)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from analysis.data import Filter, format_level, frame_to_latex
from analysis.errors import AnalysisError
from analysis.latex import latex_escape
from analysis.lines import note_lines, notes_table, wrap
from analysis.tables import Table

if TYPE_CHECKING:
    import pandas as pd

    from analysis.strata import Plan, Stratum

R = TypeVar("R")


@dataclass(frozen=True)
class StratumResult(Generic[R]):
    """One stratum: the factors held fixed (formatted), its trials, and the result or why
    there is none."""

    fixed: tuple[tuple[str, str], ...]
    n: int
    result: R | None
    reason: str = ""

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.fixed) or "all selected trials"


@dataclass(frozen=True)
class StratifiedResult(Generic[R]):
    """One result per stratum: the analysis run with every split factor held fixed.

    ``split`` are the factors held fixed (one stratum per combination of their values),
    ``along`` the factors that change together with the compared columns, ``pooled`` the
    factors pooled on purpose; ``strata`` hold each stratum's result, or the reason it has none.
    """

    title: str
    compared: tuple[str, ...]
    split: tuple[str, ...]
    strata: tuple[StratumResult[R], ...]
    where: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def results(self) -> list[R]:
        return [s.result for s in self.strata if s.result is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "compared": list(self.compared),
            "split": list(self.split),
            "where": list(self.where),
            "notes": list(self.notes),
            "strata": [
                {
                    "stratum": dict(s.fixed),
                    "n": s.n,
                    "result": None if s.result is None else s.result.to_dict(),  # type: ignore[attr-defined]
                    "reason": s.reason,
                }
                for s in self.strata
            ],
        }

    def to_frame(self) -> pd.DataFrame:
        """Each stratum's table (its post-hoc comparisons when it has them, else its
        ``to_frame()``) with the split factors as leading columns."""
        import pandas as pd

        frames = []
        for s in self.strata:
            if s.result is None:
                continue
            frame = _frame_of(s.result).copy()
            for i, (k, v) in enumerate(s.fixed):
                if k not in frame.columns:
                    frame.insert(i, k, v)
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=list(self.split))
        return pd.concat(frames, ignore_index=True)

    def tables(self) -> list[Table]:
        """Each stratum's tables concatenated by name, main table first, every row led by the
        split factors (the stratum's label columns; a column the table has already is not
        added again); then ``not_compared`` (the split factors, ``n`` and ``reason``) when a
        stratum has no result, and ``notes`` (what changes along, what was pooled)."""
        import pandas as pd

        frames: dict[str, list[pd.DataFrame]] = {}
        captions: dict[str, str] = {}
        for s in self.strata:
            if s.result is None:
                continue
            for table in _tables_of(s.result):
                frame = table.frame.copy()
                for i, (k, v) in enumerate(s.fixed):
                    if k not in frame.columns:
                        frame.insert(i, k, v)
                frames.setdefault(table.name, []).append(frame)
                captions.setdefault(table.name, table.caption)
        out = [
            Table(name, pd.concat(parts, ignore_index=True), _caption(self, captions[name]))
            for name, parts in frames.items()
        ]
        skipped = [s for s in self.strata if s.result is None]
        if skipped:
            rows = [{**dict(s.fixed), "n": s.n, "reason": s.reason} for s in skipped]
            frame = pd.DataFrame(rows, columns=[*self.split, "n", "reason"])
            out.append(Table("not_compared", frame, "strata not compared, and why"))
        if self.notes:
            out.append(notes_table(self.notes))
        return out

    def to_latex(self) -> str:
        """Each stratum's tables under a ``\\paragraph`` naming it (just the tables when nothing
        is split), then the notes."""
        if not self.split and len(self.results) == 1:
            only = self.results[0]
            body = (
                only.to_latex()  # type: ignore[attr-defined]
                if hasattr(only, "to_latex")
                else frame_to_latex(only.to_frame())  # type: ignore[attr-defined]
            )
            return "\n\n".join([body, *(latex_escape(n) for n in self.notes)])
        parts = []
        for s in self.strata:
            if s.result is None:
                parts.append(latex_escape(f"{s.label}: {s.reason}"))
                continue
            body = (
                s.result.to_latex()  # type: ignore[attr-defined]
                if hasattr(s.result, "to_latex")
                else frame_to_latex(s.result.to_frame())  # type: ignore[attr-defined]
            )
            parts.append(f"\\paragraph{{{latex_escape(s.label)}}}\n{body}")
        parts += [latex_escape(n) for n in self.notes]
        return "\n\n".join(parts)

    def __str__(self) -> str:
        done = [s for s in self.strata if s.result is not None]
        if self.split:
            head = (
                f"{self.title}: one result per {' x '.join(self.split)} (held fixed); "
                f"{len(done)} of {len(self.strata)} compared"
            )
        elif self.notes:
            head = self.title
        else:
            head = f"{self.title}: nothing else varies"
        blocks = [wrap(head), *note_lines(self.notes)]
        for s in done:
            blocks.append(f"\n== {s.label} ==\n{s.result}" if self.split else f"\n{s.result}")
        skipped = [s for s in self.strata if s.result is None]
        if skipped:
            blocks.append("\nnot compared:")
            blocks += [wrap(f"  {s.label}: {s.reason}", indent="    ") for s in skipped]
        return "\n".join(blocks)


def _caption(result: StratifiedResult[Any], caption: str) -> str:
    if not result.split:
        return caption
    held = f"one per {' x '.join(result.split)} (held fixed)"
    return f"{caption}; {held}" if caption else held


def _tables_of(result: Any) -> list[Table]:
    """A stratum's result's tables; a result without ``tables()`` gives its main frame."""
    if hasattr(result, "tables"):
        return list(result.tables())
    return [Table("main", _frame_of(result))]


def _frame_of(result: Any) -> pd.DataFrame:
    posthoc = getattr(result, "posthoc", None)
    if posthoc is not None:
        return posthoc.to_frame()
    return result.table_frame() if hasattr(result, "table_frame") else result.to_frame()


def run_strata(
    plan: Plan,
    analyse: Callable[[tuple[Filter, ...]], R],
    *,
    title: str,
    where: Sequence[str],
    min_levels: int = 2,
    missing: Callable[[Stratum], str] | None = None,
) -> StratifiedResult[R]:
    """``analyse(stratum filters)`` for each stratum with at least ``min_levels`` compared
    levels; a stratum with fewer, or whose analysis raises :class:`AnalysisError`, keeps the
    reason. When no stratum gives a result the (first) reason is raised."""
    out: list[StratumResult[R]] = []
    failed: list[str] = []
    if plan.compared and len({lv for s in plan.strata for lv in s.levels}) < min_levels:
        # too few levels even pooled: the analysis itself says what is wrong
        only = analyse(())
        return StratifiedResult(title, plan.compared, (), (StratumResult((), 0, only),),
                                tuple(where), plan.notes())  # fmt: skip
    for s in plan.strata:
        fixed = tuple((k, format_level(v)) for k, v in s.fixed)
        if s.fixed and plan.compared and len(s.levels) < min_levels:
            reason = missing(s) if missing else _only(plan.compared, s)
            out.append(StratumResult(fixed, s.n, None, reason))
            continue
        try:
            out.append(StratumResult(fixed, s.n, analyse(s.filters())))
        except AnalysisError as exc:
            failed.append(str(exc))
            out.append(StratumResult(fixed, s.n, None, str(exc)))
    if not any(s.result is not None for s in out):
        errors = list(dict.fromkeys(failed))
        if len(errors) == 1 and (len(out) == 1 or len(failed) > 1 or len(out) == len(failed)):
            raise AnalysisError(errors[0])  # the same complaint everywhere: a bad option
        shown = "; ".join(f"{s.label}: {s.reason}" for s in out[:3])
        more = f" (and {len(out) - 3} more)" if len(out) > 3 else ""
        raise AnalysisError(
            f"no stratum of the selected trials can be compared with "
            f"{' x '.join(plan.split)} held fixed: {shown}{more}; pick levels measured in the "
            "same stratum, or pool a factor on purpose with --pool"
        )
    return StratifiedResult(
        title=title,
        compared=plan.compared,
        split=plan.split,
        strata=tuple(out),
        where=tuple(where),
        notes=plan.notes(),
    )


def _only(compared: Sequence[str], s: Stratum) -> str:
    present = ", ".join("/".join(format_level(v) for v in lv) for lv in s.levels)
    return f"only {'/'.join(compared)}={present or 'none'} measured here"
