"""The summary's result object: its columns, text and tables (the statistics are in
:mod:`analysis.summary`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.data import fmt, format_level, frame_to_latex, render_table
from analysis.latex import latex_escape
from analysis.lines import note_lines, notes_table, wrap
from analysis.options import DEFAULT_SEED, N_BOOT
from analysis.smallsample import MIN_TRIALS
from analysis.tables import Table

if TYPE_CHECKING:
    import pandas as pd

STAT_SUFFIXES = (
    "mean",
    "sd",
    "median",
    "ci_low",
    "ci_high",
    "median_ci_low",
    "median_ci_high",
    "mad",
    "min",
    "max",
    "cv",
    "q1",
    "q3",
    "outliers",
)
#: The geometric mean and its interval (rows hold them; ``table_frame`` adds them).
GEOMETRIC_SUFFIXES = ("gmean", "gmean_ci_low", "gmean_ci_high")
#: What ``<metric>_ci_note`` says of a row whose values are all > 0 but whose t interval of the
#: mean reaches below 0.
BELOW_ZERO = "t interval of the mean below 0 though every value > 0: read the geometric interval"


@dataclass(frozen=True)
class SummaryResult:
    """One row per configuration (combination of ``by`` values); see :meth:`columns`."""

    by: tuple[str, ...]
    metrics: tuple[str, ...]
    rows: tuple[dict, ...]
    where: tuple[str, ...]
    n_boot: int = N_BOOT
    seed: int = DEFAULT_SEED
    notes: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        """The by columns, ``n``, per metric ``<metric>_`` mean, sd, median, ci_low, ci_high
        (95% t interval of the mean), median_ci_low, median_ci_high (95% percentile-bootstrap
        interval of the median: ``n_boot`` draws, ``seed``; NaN for fewer than 2 trials or
        ``n_boot == 0``), mad (median absolute deviation, unscaled), min, max, cv (sd / mean),
        q1, q3 (linear interpolation) and outliers (count beyond Tukey's fences), then
        ``accuracy_mean``, ``failed``, ``timeout`` and ``failure_rate`` ((failed + timeout) /
        all trials)."""
        cols = [*self.by, "n"]
        for m in self.metrics:
            cols += [f"{m}_{s}" for s in STAT_SUFFIXES]
        return [*cols, "accuracy_mean", "failed", "timeout", "failure_rate"]

    def to_dict(self) -> dict:
        return {
            "by": list(self.by),
            "metrics": list(self.metrics),
            "where": list(self.where),
            "n_boot": self.n_boot,
            "seed": self.seed,
            "rows": [dict(r) for r in self.rows],
            "notes": list(self.notes),
        }

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([dict(r) for r in self.rows], columns=self.columns)

    def table_frame(self) -> pd.DataFrame:
        """What ``--format csv`` prints: :meth:`to_frame`, then per metric ``<metric>_gmean``,
        ``<metric>_gmean_ci_low`` and ``<metric>_gmean_ci_high`` (geometric mean and the t
        interval of ``ln x`` taken back by ``exp``; NaN unless every value is > 0) and
        ``<metric>_ci_note`` (:data:`BELOW_ZERO` when the row's values are all > 0 but the t
        interval of its mean, ``<metric>_ci_low``, reaches below 0; else empty), then
        ``sample_note`` (the small-sample warning of a row with fewer than ``MIN_TRIALS`` ok
        trials, else empty)."""
        frame = self.to_frame()
        for m in self.metrics:
            for suffix in GEOMETRIC_SUFFIXES:
                frame[f"{m}_{suffix}"] = [r.get(f"{m}_{suffix}", math.nan) for r in self.rows]
            frame[f"{m}_ci_note"] = [BELOW_ZERO if below_zero(r, m) else "" for r in self.rows]
        frame["sample_note"] = [_few_text(r["n"]) for r in self.rows]
        return frame

    def to_latex(self) -> str:
        """:meth:`table_frame` as a tabular, then the notes."""
        body = frame_to_latex(self.table_frame())
        return "\n\n".join([body, *(latex_escape(n) for n in self.notes)])

    def tables(self) -> list[Table]:
        """``summary``: :meth:`table_frame` (every statistic of the text: mean, geometric mean
        and both intervals, sd, median and its interval, cv, outliers, accuracy, failures);
        then ``notes`` when there are any (how each interval is computed is in the caption)."""
        caption = f"Summary by {', '.join(self.by) or '(all trials)'}; {self._methods()}"
        out = [Table("summary", self.table_frame(), caption)]
        if self.notes:
            out.append(notes_table(self.notes))
        return out

    def _methods(self) -> str:
        """How the intervals were computed (the text's last line)."""
        logs = [m for m in self.metrics if self.positive(m)]
        plain = [m for m in self.metrics if not self.positive(m)]
        parts = []
        if logs:
            parts.append(
                f"CI of the geometric mean of {', '.join(logs)}: t on ln x, taken back by exp "
                "(all values > 0; never below 0; the mean's t interval is in --format csv/json)"
            )
        if plain:
            parts.append(f"mean CI of {', '.join(plain)}: t")
        if self.n_boot:
            parts.append(f"median CI: percentile bootstrap, {self.n_boot} draws, seed {self.seed}")
        else:
            parts.append("median CI: none (n_boot 0)")
        return "; ".join(parts)

    def positive(self, metric: str) -> bool:
        """True when every value of ``metric`` is > 0 (a time, a throughput): its interval is
        then the geometric one, which cannot reach below 0."""
        has = [r for r in self.rows if not math.isnan(r[f"{metric}_mean"])]
        return bool(has) and all(not math.isnan(r.get(f"{metric}_gmean", math.nan)) for r in has)

    def __str__(self) -> str:
        where = f" (where {' '.join(self.where)})" if self.where else ""
        headers = [*self.by, "n"]
        positive = {m: self.positive(m) for m in self.metrics}
        for m in self.metrics:
            headers += [f"{m} mean", *(["geomean"] if positive[m] else []), "95% CI"]
            headers += ["sd", "median", "95% CI", "cv", "outliers"]
        headers += ["accuracy", "failed", "timeout"]
        body = []
        for r in self.rows:
            row: list[Any] = [format_level(r[b]) for b in self.by] + [r["n"]]
            for m in self.metrics:
                row.append(r[f"{m}_mean"])
                if positive[m]:
                    row += [r[f"{m}_gmean"], _interval(r[f"{m}_gmean_ci_low"],
                                                       r[f"{m}_gmean_ci_high"])]  # fmt: skip
                else:
                    row.append(_interval(r[f"{m}_ci_low"], r[f"{m}_ci_high"]))
                row += [r[f"{m}_sd"], r[f"{m}_median"]]
                row += [_interval(r[f"{m}_median_ci_low"], r[f"{m}_median_ci_high"])]
                row += [r[f"{m}_cv"], r[f"{m}_outliers"]]
            row += [r["accuracy_mean"], r["failed"], r["timeout"]]
            body.append(row)
        return "\n".join(
            [
                f"Summary by {', '.join(self.by) or '(all trials)'}{where}",
                render_table(headers, body),
                wrap(self._methods()),
                *note_lines(self.notes),
            ]
        )


def _few_text(n: int) -> str:
    return f"few trials ({n} < {MIN_TRIALS})" if n < MIN_TRIALS else ""


def _interval(low: float, high: float) -> str:
    return "-" if math.isnan(low) or math.isnan(high) else f"[{fmt(low, 4)}, {fmt(high, 4)}]"


def below_zero(row: dict[str, Any], metric: str) -> bool:
    """The row's values of ``metric`` are all > 0 (its geometric mean exists) but the t interval
    of its mean reaches below 0."""
    return not math.isnan(row.get(f"{metric}_gmean", math.nan)) and row[f"{metric}_ci_low"] < 0


def below_zero_note(
    rows: Sequence[dict[str, Any]], metrics: Sequence[str], labels: Sequence[str]
) -> str | None:
    """The note for rows whose t interval of a positive metric's mean reaches below 0."""
    parts = []
    for m in metrics:
        hit = [
            f"{label} [{fmt(r[f'{m}_ci_low'], 4)}, {fmt(r[f'{m}_ci_high'], 4)}]"
            for label, r in zip(labels, rows, strict=True)
            if below_zero(r, m)
        ]
        if hit:
            parts.append(f"{m} in {'; '.join(hit)}")
    if not parts:
        return None
    return (
        f"the t interval of the mean reaches below 0 for {', '.join(parts)} although every "
        "value is > 0: with few or skewed values the mean is far from normal, so that interval "
        "(<metric>_ci_low/high in csv/json) is not to be read; the geometric mean's interval "
        "(shown; <metric>_gmean_ci_low/high) cannot go below 0"
    )
