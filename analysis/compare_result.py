"""``analyze compare``'s result: one row per configuration, its text, markdown, LaTeX and tables
(the statistics are in :mod:`analysis.compare` and :mod:`analysis.compare_stats`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from analysis.data import fmt, fmt_p, latex_table, render_table
from analysis.lines import note_lines, notes_table, wrap
from analysis.tables import Table

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("config", "n_base", "n_new", "median_base", "median_new", "ratio", "ratio_ci_low",
           "ratio_ci_high", "p_value", "method", "verdict", "note")  # fmt: skip


@dataclass(frozen=True)
class CompareRow:
    """One configuration: base and new, the ratio ``new / base`` with its interval, p and the
    verdict. ``method`` says where p comes from (``exact``, ``asymptotic``, ``t``); ``ci_method``
    where the interval does (``hodges-lehmann``, ``log-welch``)."""

    config: dict[str, str]
    n_base: int
    n_new: int
    median_base: float
    median_new: float
    ratio: float
    ratio_ci_low: float
    ratio_ci_high: float
    p_value: float
    method: str
    ci_method: str
    verdict: str
    note: str = ""

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.items()) or "all"


@dataclass(frozen=True)
class CompareResult:
    """``new`` against ``base`` per configuration; see the module docstring."""

    metric: str
    test: str
    base: tuple[str, ...]
    new: tuple[str, ...]
    better: str  # "lower" or "higher"
    alpha: float
    threshold: float
    confidence_level: float
    rows: tuple[CompareRow, ...]
    geomean_base: float
    geomean_new: float
    geomean_ratio: float
    only_base: tuple[str, ...] = ()
    only_new: tuple[str, ...] = ()
    same: tuple[str, ...] = ()  # factor=value shared by every configuration
    where: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def regressions(self, at_least: float = 0.0) -> list[CompareRow]:
        """Significant changes for the worse of at least ``at_least`` (0.05: 5%)."""
        worse = ("slower", "worse")
        return [
            r
            for r in self.rows
            if r.verdict in worse
            and (r.ratio - 1 if self.better == "lower" else 1 - r.ratio) >= at_least
        ]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["geomean"] = {"median_base": self.geomean_base, "median_new": self.geomean_new,
                          "ratio": self.geomean_ratio}  # fmt: skip
        return out

    def _table_rows(self) -> list[list[Any]]:
        out = [
            [
                r.label,
                r.n_base,
                r.n_new,
                r.median_base,
                r.median_new,
                r.ratio,
                r.ratio_ci_low,
                r.ratio_ci_high,
                r.p_value,
                r.method,
                r.verdict,
                r.note,
            ]  # fmt: skip
            for r in self.rows
        ]
        if self.rows:
            out.append(["geomean", None, None, self.geomean_base, self.geomean_new,
                        self.geomean_ratio, None, None, None, "", "", ""])  # fmt: skip
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per matched configuration (``config`` is its label), then ``geomean``;
        columns :data:`COLUMNS`."""
        import pandas as pd

        return pd.DataFrame(self._table_rows(), columns=list(COLUMNS))

    def tables(self) -> list[Table]:
        """``configurations``: :meth:`to_frame` plus ``ci_method`` (``hodges-lehmann`` or
        ``log-welch``; empty on the geomean row); ``one_side``: the configurations measured on
        one side only (``side``, ``config``); ``settings``: one row with what the title and the
        lines under the table say (metric, test, better, alpha, threshold, confidence_level,
        base, new, where, same); ``notes`` when there are any."""
        import pandas as pd

        main = self.to_frame()
        main["ci_method"] = [r.ci_method for r in self.rows] + ([""] if self.rows else [])
        one_side = pd.DataFrame(
            [("base", c) for c in self.only_base] + [("new", c) for c in self.only_new],
            columns=["side", "config"],
        )
        settings = pd.DataFrame(
            [
                {
                    "metric": self.metric,
                    "test": self.test,
                    "better": self.better,
                    "alpha": self.alpha,
                    "threshold": self.threshold,
                    "confidence_level": self.confidence_level,
                    "base": " ".join(self.base),
                    "new": " ".join(self.new),
                    "where": " ".join(self.where),
                    "same": "; ".join(self.same),
                }
            ]
        )
        out = [
            Table("configurations", main, self._title),
            Table("one_side", one_side, "configurations measured on one side only"),
            Table("settings", settings, "what was compared, and how"),
        ]
        if self.notes:
            out.append(notes_table(self.notes))
        return out

    def to_latex(self) -> str:
        return latex_table(list(COLUMNS), self._table_rows())

    def to_markdown(self) -> str:
        head = ["configuration", "base", "new", "ratio", "verdict", f"{self._pct} CI", "p"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for cells in self._display_rows():
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join([self._title, "", *lines, "", *self._tail()])

    @property
    def _pct(self) -> str:
        return f"{fmt(100 * self.confidence_level)}%"

    @property
    def _title(self) -> str:
        test = "Mann-Whitney U" if self.test == "mwu" else "Welch t on log values"
        # the ratio is the test's own estimate, not the ratio of the medians shown beside it
        ratio = (
            "Hodges-Lehmann shift of log values"
            if self.test == "mwu"
            else "ratio of geometric means"
        )
        return (
            f"{self.metric}: new ({' '.join(self.new)}) vs base ({' '.join(self.base)}); "
            f"ratio = new / base as the {ratio} ({self.better} is better), {test}, "
            f"alpha {self.alpha:g}"
            + (f", changes under {self.threshold:.3g} within noise" if self.threshold else "")
        )

    def _display_rows(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            ci = f"[{fmt(r.ratio_ci_low, 4)}, {fmt(r.ratio_ci_high, 4)}]"
            # few trials are named once, in the notes under the table, not on every row
            own = "; ".join(p for p in (r.note or "").split("; ") if p and not p.startswith("few "))
            verdict = r.verdict + (f" ({own})" if own else "")
            # the verdict before the interval and p: a narrow terminal keeps it
            out.append([r.label, f"{fmt(r.median_base, 4)} (n={r.n_base})",
                        f"{fmt(r.median_new, 4)} (n={r.n_new})", fmt(r.ratio, 4), verdict, ci,
                        fmt_p(r.p_value)])  # fmt: skip
        if self.rows:
            out.append(["geomean", fmt(self.geomean_base, 4), fmt(self.geomean_new, 4),
                        fmt(self.geomean_ratio, 4), "", "", ""])  # fmt: skip
        return out

    def _tail(self) -> list[str]:
        lines = []
        if self.same:
            lines.append("same in every configuration: " + ", ".join(self.same))
        if self.only_base:
            lines.append("only in base: " + "; ".join(self.only_base))
        if self.only_new:
            lines.append("only in new: " + "; ".join(self.only_new))
        if self.where:
            lines.append("where " + " ".join(self.where))
        lines = [wrap(line) for line in lines]
        return [*lines, *note_lines(self.notes)]

    def __str__(self) -> str:
        head = ["configuration", "base median", "new median", "ratio", "verdict",
                f"{self._pct} CI", "p"]  # fmt: skip
        return "\n".join(
            [wrap(self._title), render_table(head, self._display_rows()), *self._tail()]
        )
