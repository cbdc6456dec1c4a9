"""How a :class:`~analysis.scaling.ScalingResult` is shown: text for the terminal (lines within
120 columns), frames, the ``tables()`` of ``--format csv/latex``, JSON-ready dicts and LaTeX.
Nothing here computes a statistic."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from analysis.data import fmt, format_level, frame_to_latex, level_label, render_table
from analysis.scaling_results import LEVEL_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from analysis.scaling_results import ModelParam, ScalingGroup, ScalingLevel, ScalingResult
    from analysis.tables import Table

#: Terminal width the text keeps to.
WIDTH = 120
FIT_COLUMNS = ("model", "param", "estimate", "ci_low", "ci_high", "r_squared", "aic", "rss",
               "n_points", "n_trials", "peak_x", "best")  # fmt: skip
GROUP_COLUMNS = ("best_model", "knee", "knee_model", "min_gain", "confidence_level", "n_boot",
                 "no_intervals", "not_fitted")  # fmt: skip


def _num(value: float) -> float | int:
    """A whole-number level as an int (``4``, not ``4.0``) for frames and JSON."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _level_dict(lv: ScalingLevel) -> dict[str, Any]:
    return {c: getattr(lv, c) for c in LEVEL_COLUMNS}


def _by(res: ScalingResult, g: ScalingGroup) -> dict[str, Any]:
    return dict(zip(res.by, g.level, strict=True))


def to_dict(res: ScalingResult) -> dict[str, Any]:
    return {
        "metric": res.metric,
        "x": res.x,
        "by": list(res.by),
        "size": res.size,
        "min_gain": res.min_gain,
        "n_boot": res.n_boot,
        "seed": res.seed,
        "confidence_level": res.confidence_level,
        "where": list(res.where),
        "notes": list(res.notes),
        "groups": [
            {
                "level": _by(res, g),
                "levels": [{"x": _num(lv.x), **_level_dict(lv)} for lv in g.levels],
                "fits": [
                    {
                        "model": f.model,
                        "params": [vars(p) for p in f.params],
                        "r_squared": f.r_squared,
                        "aic": f.aic,
                        "rss": f.rss,
                        "n_points": f.n_points,
                        "n_trials": f.n_trials,
                        "peak_x": f.peak_x,
                    }
                    for f in g.fits
                ],
                "skipped": list(g.skipped),
                "predictions": [{**vars(p), "x": _num(p.x)} for p in g.predictions],
                "best_model": g.best_model,
                "knee": g.knee,
                "knee_model": g.knee_model,
                "no_intervals": g.no_intervals,
            }
            for g in res.groups
        ],
    }


def level_frame(res: ScalingResult) -> pd.DataFrame:
    import pandas as pd

    rows = [
        {**_by(res, g), res.x: _num(lv.x), **_level_dict(lv)} for g in res.groups for lv in g.levels
    ]
    return pd.DataFrame(rows, columns=[*res.by, res.x, *LEVEL_COLUMNS])


def fit_frame(res: ScalingResult) -> pd.DataFrame:
    import pandas as pd

    rows = [
        {
            **_by(res, g),
            "model": f.model,
            "param": p.name,
            "estimate": p.estimate,
            "ci_low": p.ci_low,
            "ci_high": p.ci_high,
            "r_squared": f.r_squared,
            "aic": f.aic,
            "rss": f.rss,
            "n_points": f.n_points,
            "n_trials": f.n_trials,
            "peak_x": f.peak_x,
            "best": f.model == g.best_model,
        }
        for g in res.groups
        for f in g.fits
        for p in f.params
    ]
    return pd.DataFrame(rows, columns=[*res.by, *FIT_COLUMNS])


def prediction_frame(res: ScalingResult) -> pd.DataFrame:
    import pandas as pd

    rows = [
        {
            **_by(res, g),
            "model": p.model,
            res.x: _num(p.x),
            "time": p.time,
            "ci_low": p.ci_low,
            "ci_high": p.ci_high,
            "measured": p.measured,
        }
        for g in res.groups
        for p in g.predictions
    ]
    cols = [*res.by, "model", res.x, "time", "ci_low", "ci_high", "measured"]
    return pd.DataFrame(rows, columns=cols)


def group_frame(res: ScalingResult) -> pd.DataFrame:
    """One row per group: the best model, the knees and what was not fitted or bootstrapped."""
    import pandas as pd

    rows = [
        {
            **_by(res, g),
            "best_model": g.best_model,
            "knee": g.knee,
            "knee_model": g.knee_model,
            "min_gain": res.min_gain,
            "confidence_level": res.confidence_level,
            "n_boot": 0 if g.no_intervals else res.n_boot,
            "no_intervals": g.no_intervals,
            "not_fitted": "; ".join(g.skipped),
        }
        for g in res.groups
    ]
    return pd.DataFrame(rows, columns=[*res.by, *GROUP_COLUMNS])


def tables(res: ScalingResult) -> list[Table]:
    from analysis.tables import Table

    what = f"{res.metric} over {res.x}"
    out = [
        Table(
            "levels",
            level_frame(res),
            f"Median {what} per level: speed-up, efficiency, "
            "percent change and Karp-Flatt serial fraction",
        ),  # fmt: skip
        Table(
            "fits",
            fit_frame(res),
            f"Amdahl, USL and Ernest fits of {what} with "
            f"{res.confidence_level * 100:g}% bootstrap intervals",
        ),  # fmt: skip
    ]
    if any(g.predictions for g in res.groups):
        out.append(Table("predictions", prediction_frame(res), f"Predicted {res.metric}"))
    out.append(Table("groups", group_frame(res), "Best model (lowest AIC) and knees per group"))
    return out


def to_latex(res: ScalingResult) -> str:
    """The per-level table, the fits and the predictions as ``tabular``s."""
    parts = [frame_to_latex(level_frame(res)), frame_to_latex(fit_frame(res))]
    if any(g.predictions for g in res.groups):
        parts.append(frame_to_latex(prediction_frame(res)))
    return "\n\n".join(parts)


def _param_text(p: ModelParam) -> str:
    if p.ci_low is None:
        return f"{p.name} = {fmt(p.estimate, 4)}"
    return f"{p.name} = {fmt(p.estimate, 4)} [{fmt(p.ci_low, 4)}, {fmt(p.ci_high, 4)}]"


def wrap(line: str) -> str:
    """``line`` within :data:`WIDTH` columns (continuations indented by two); a table (several
    lines: :func:`render_table` keeps it within the width) is left as it is."""
    if len(line) <= WIDTH or "\n" in line:
        return line
    return textwrap.fill(line, WIDTH, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False)  # fmt: skip


def _group_lines(res: ScalingResult, g: ScalingGroup) -> list[str]:
    pct = f"{res.confidence_level * 100:g}%"
    head = level_label(res.by, g.level)
    lines = [f"\n{wrap(head)}" if head else ""]
    lines.append(
        render_table(
            [res.x, "n", "median", "speedup", "efficiency", "change %", "karp_flatt"],
            [
                (
                    format_level(lv.x),
                    lv.n,
                    lv.median,
                    lv.speedup,
                    lv.efficiency,
                    "-" if lv.change_pct is None else fmt(lv.change_pct, 4),
                    "-" if lv.karp_flatt is None else fmt(lv.karp_flatt, 4),
                )
                for lv in g.levels
            ],
        )
    )
    for f in g.fits:
        params = ", ".join(_param_text(p) for p in f.params)
        peak = "" if f.peak_x is None else f", peak throughput at {fmt(f.peak_x, 4)}"
        best = " (best AIC)" if f.model == g.best_model else ""
        lines.append(
            f"{f.model}{best}: {params}{peak}; R^2 = {fmt(f.r_squared, 4)}, AIC = {fmt(f.aic)}"
        )
    lines += [f"not fitted: {s}" for s in g.skipped]
    if g.no_intervals:
        lines.append(f"no intervals: {g.no_intervals}")
    if g.predictions:
        lines.append(
            render_table(
                ["model", res.x, "predicted", f"{pct} interval"],
                [
                    (
                        p.model,
                        format_level(p.x),
                        p.time,
                        "-" if p.ci_low is None else f"[{fmt(p.ci_low)}, {fmt(p.ci_high)}]",
                    )
                    for p in g.predictions
                ],
            )
        )
    gain = f"{res.min_gain * 100:g}%"
    knee = "none in range" if g.knee is None else format_level(g.knee)
    lines.append(f"next level buys < {gain} from {res.x} = {knee}")
    if g.knee_model is not None:
        lines.append(
            f"one more worker buys < {gain} ({g.best_model}) from {res.x} = "
            f"{format_level(g.knee_model)}"
        )
    return lines


def text(res: ScalingResult) -> str:
    where = f"; where {' '.join(res.where)}" if res.where else ""
    blocks = [wrap(f"Scaling of {res.metric} over {res.x}{where}")]
    for g in res.groups:
        blocks.append("\n".join(wrap(line) for line in _group_lines(res, g) if line))
    blocks += [wrap(f"note: {n}") for n in res.notes]
    return "\n".join(blocks)
