"""``analyze``: the command line over :mod:`analysis`. Only this module prints or exits."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from analysis.defaults import DEFAULT_BY, DEFAULT_METRICS
from analysis.errors import AnalysisError

app = typer.Typer(
    help=(
        "Statistics over a trialkit results database (ANOVA, t-tests, summaries, regression, "
        "scaling)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    latex = "latex"


DbOpt = Annotated[Path, typer.Option("--db", help="Results database file.")]
MetricOpt = Annotated[str, typer.Option("--metric", help="Numeric column to analyse.")]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        help="Keep trials where COLUMN OP VALUE (OP: = != < > <= >=); repeatable.",
    ),
]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]
WarmupOpt = Annotated[bool, typer.Option("--include-warmup", help="Also use warm-up trials.")]
PairGroupOpt = Annotated[str, typer.Option("--group", help="Factor column holding the two levels.")]
BootstrapOpt = Annotated[
    int, typer.Option("--bootstrap", help="Bootstrap resamples for the intervals (0: none).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")]
ConfidenceOpt = Annotated[
    float, typer.Option("--confidence", help="Confidence level of the intervals.")
]
PoolOpt = Annotated[
    str | None,
    typer.Option(
        "--pool",
        help=(
            "Pool these varying factors on purpose instead of holding them fixed (comma-"
            "separated; hostname, cpu_model, packages, 'env' or 'all' too)."
        ),
    ),
]
DEFAULT_DB = Path("results.duckdb")


@app.callback()
def callback() -> None:
    """Statistics over a trialkit results database."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _emit(result: Any, fmt: Format) -> None:
    if fmt is Format.json:
        text = json.dumps(_jsonable(result.to_dict()), indent=2, default=str, allow_nan=False)
        typer.echo(text)
    elif fmt is Format.csv:
        # with --posthoc the comparisons are the table one wants as CSV
        if getattr(result, "posthoc", None):
            frame = result.posthoc.to_frame()
        elif hasattr(result, "table_frame"):
            frame = result.table_frame()
        else:
            frame = result.to_frame()
        typer.echo(frame.to_csv(index=False), nl=False)
    elif fmt is Format.latex:
        if hasattr(result, "to_latex"):
            typer.echo(result.to_latex())
        else:
            from analysis.data import frame_to_latex

            typer.echo(frame_to_latex(result.to_frame()))
    else:
        typer.echo(str(result))


def _fail(exc: AnalysisError) -> NoReturn:
    message = " ".join(str(exc).split())
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _columns(value: str | None) -> list[str]:
    """``a,b`` -> ``["a", "b"]`` (blanks dropped)."""
    return [c.strip() for c in (value or "").split(",") if c.strip()]


def _run(func: Callable[..., Any], db: Path, *, where: list[str] | None, **kwargs: Any) -> Any:
    """``func(db, where=..., **kwargs)`` with the CLI's optional --where list; an
    :class:`AnalysisError` becomes a one-line ``error: ...`` on stderr and exit code 2."""
    try:
        return func(db, where=where or (), **kwargs)
    except AnalysisError as exc:
        _fail(exc)
    except OverflowError:  # a safety net: the analyses refuse what they know overflows
        _fail(
            AnalysisError(
                "a sum of squares overflows a double (values near 1e154 or beyond); rescale "
                "the metric or exclude the extreme trials with --where"
            )
        )


class Posthoc(StrEnum):
    tukey = "tukey"
    games_howell = "games-howell"
    pairwise = "pairwise"


@app.command()
def anova(
    group: Annotated[
        list[str],
        typer.Option(
            "--group", help="Factor column whose levels to compare; twice for a two-way ANOVA."
        ),
    ],
    metric: MetricOpt = "train_s",
    posthoc: Annotated[
        Posthoc | None,
        typer.Option(
            "--posthoc",
            help="Pairwise comparisons: Tukey HSD, Games-Howell, or Welch t-tests with Holm.",
        ),
    ] = None,
    ss_type: Annotated[
        int | None,
        typer.Option(
            "--ss-type", help="Two-way only: type I, II or III sums of squares.", show_default="2"
        ),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            "--alpha",
            help="One-way: level of the assumption checks and post-hoc decisions.",
            show_default="0.05",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="One-way: seed of the Shapiro-Wilk sample (above 5000 trials).",
            show_default="0",
        ),
    ] = None,
    test: Annotated[
        str | None,
        typer.Option(
            "--test",
            help="One-way: the test to recommend: auto (Welch unless a level is clearly "
            "heavy-tailed), anova (classic F), welch or kruskal.",
            show_default="auto",
        ),
    ] = None,
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """One-way ANOVA with checks, Welch, Kruskal-Wallis, post-hoc; two-way for --group twice.

    One --group: the F test with eta² and omega², Welch's ANOVA and Kruskal-Wallis, Brown-Forsythe
    and Shapiro-Wilk on the residuals with the test they support, and --posthoc comparisons. Two:
    a two-way ANOVA with interaction (--ss-type 1, 2 or 3). One result per combination of the
    other factors that vary (--pool to pool them).
    """
    groups = [c for item in group for c in _columns(item)]
    if len(groups) > 2:
        _fail(AnalysisError(f"--group given {len(groups)} times; give one or two factors"))
    if len(groups) == 2:
        if posthoc is not None:
            _fail(
                AnalysisError(
                    "--posthoc works with one --group; for a two-way design compare the levels "
                    "of one factor within a level of the other, e.g. --where"
                )
            )
        for option, value in (("--alpha", alpha), ("--seed", seed), ("--test", test)):
            if value is not None:
                _fail(AnalysisError(f"{option} applies to a one-way ANOVA; give --group once"))
        from analysis.held import twoway

        result = _run(
            twoway,
            db,
            pool=pool,
            groups=(groups[0], groups[1]),
            metric=metric,
            **({} if ss_type is None else {"ss_type": ss_type}),
            where=where,
            include_warmup=include_warmup,
        )
        _emit(result, format)
        return
    if ss_type is not None:
        _fail(AnalysisError("--ss-type applies to a two-way ANOVA; give --group twice"))
    from analysis.held import anova as run

    result = _run(
        run,
        db,
        pool=pool,
        group=groups[0] if groups else "",
        metric=metric,
        posthoc=None if posthoc is None else posthoc.value,
        **{k: v for k, v in (("alpha", alpha), ("seed", seed), ("test", test)) if v is not None},
        where=where,
        include_warmup=include_warmup,
    )
    _emit(result, format)


class TestKind(StrEnum):
    welch = "welch"
    student = "student"
    mwu = "mwu"


@app.command()
def ttest(
    group: PairGroupOpt,
    a: Annotated[str, typer.Option("--a", help="First level (mean_diff = a - b).")],
    b: Annotated[str, typer.Option("--b", help="Second level.")],
    metric: MetricOpt = "train_s",
    test: Annotated[
        TestKind,
        typer.Option("--test", help="Welch t, Student t (equal variances) or Mann-Whitney U."),
    ] = TestKind.welch,
    student: Annotated[bool, typer.Option("--student", help="Same as --test student.")] = False,
    bootstrap: BootstrapOpt = 2000,
    seed: SeedOpt = 0,
    confidence: ConfidenceOpt = 0.95,
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """Compare --metric between --group=A and --group=B: Welch (default), Student or
    Mann-Whitney; mean difference with CI, Cohen's d, Hedges' g, ratio of means (bootstrap CI).
    One result per combination of the other factors that vary (--pool to pool them)."""
    from analysis.held import ttest as run

    result = _run(
        run,
        db,
        pool=pool,
        group=group,
        a=a,
        b=b,
        metric=metric,
        test=test.value,
        student=student,
        n_boot=bootstrap,
        seed=seed,
        confidence_level=confidence,
        where=where,
        include_warmup=include_warmup,
    )
    _emit(result, format)


@app.command()
def summary(
    by: Annotated[
        str | None,
        typer.Option(
            "--by", help="Comma-separated columns to group by.", show_default=",".join(DEFAULT_BY)
        ),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="Numeric column to describe; repeatable."),
    ] = None,
    bootstrap: BootstrapOpt = 2000,
    seed: SeedOpt = 0,
    where: WhereOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """n, mean, median with 95% CIs (t; bootstrap), spread, outliers, failures per configuration."""
    from analysis.summary import summarize

    result = _run(
        summarize,
        db,
        by=DEFAULT_BY if by is None else _columns(by),
        metrics=metric or DEFAULT_METRICS,
        n_boot=bootstrap,
        seed=seed,
        where=where,
        include_warmup=include_warmup,
    )
    _emit(result, format)


@app.command()
def regress(
    x: Annotated[
        list[str],
        typer.Option("--x", help="Numeric explanatory column; repeatable (or a,b)."),
    ],
    y: Annotated[
        str, typer.Option("--y", "--metric", help="Numeric column to explain.")
    ] = "train_s",
    log_x: Annotated[bool, typer.Option("--log-x", help="Natural log of every x first.")] = False,
    log_y: Annotated[bool, typer.Option("--log-y", help="Natural log of y first.")] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Comma-separated columns: one fit per level.")
    ] = None,
    confidence: Annotated[
        float, typer.Option("--confidence", help="Confidence level of the coefficient CIs.")
    ] = 0.95,
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """OLS of --y on --x (SEs, CIs, p, R^2, residual checks) with Pearson/Spearman r per --by.
    A factor that varies outside the model is refused unless given to --x, --by, --where or
    --pool."""
    from analysis.held import regress as run

    result = _run(
        run,
        db,
        pool=pool,
        y=y,
        x=[c for item in x for c in _columns(item)],
        by=_columns(by),
        log_x=log_x,
        log_y=log_y,
        where=where,
        include_warmup=include_warmup,
        confidence_level=confidence,
    )
    _emit(result, format)


def _numbers(value: str | None, option: str) -> list[float]:
    """``4,8,16`` -> ``[4.0, 8.0, 16.0]``; anything else is a one-line error."""
    try:
        return [float(v) for v in _columns(value)]
    except ValueError:
        _fail(AnalysisError(f"{option} {value!r} is not a comma-separated list of numbers"))


def _fraction(value: str, option: str) -> float:
    """``5%`` -> 0.05; ``0.05`` -> 0.05."""
    text = value.strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        _fail(AnalysisError(f"{option} {value!r} is not a fraction; write e.g. 5% or 0.05"))


@app.command()
def scaling(
    x: Annotated[str, typer.Option("--x", help="Numeric column of worker counts.")] = "workers",
    metric: MetricOpt = "train_s",
    by: Annotated[
        str, typer.Option("--by", help="Comma-separated columns: one analysis per level.")
    ] = "engine,workload",
    predict: Annotated[
        str | None,
        typer.Option("--predict", help="Worker counts to predict, e.g. 4,8,16 (any x value)."),
    ] = None,
    min_gain: Annotated[
        str, typer.Option("--min-gain", help="Smallest worthwhile improvement per step.")
    ] = "5%",
    size: Annotated[
        str | None,
        typer.Option(
            "--size", help="Input-size column for Ernest's model.", show_default="data_fraction"
        ),
    ] = None,
    bootstrap: BootstrapOpt = 1000,
    seed: SeedOpt = 0,
    confidence: ConfidenceOpt = 0.95,
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """Speed-up, efficiency, Karp-Flatt per --x level; Amdahl/USL/Ernest fits and predictions.
    Other factors that vary join --by (--pool to pool them)."""
    from analysis.held import scaling as run

    result = _run(
        run,
        db,
        pool=pool,
        x=x,
        metric=metric,
        by=_columns(by),
        size=size,
        predict=_numbers(predict, "--predict"),
        min_gain=_fraction(min_gain, "--min-gain"),
        n_boot=bootstrap,
        seed=seed,
        confidence_level=confidence,
        where=where,
        include_warmup=include_warmup,
    )
    _emit(result, format)


@app.command()
def power(
    group: PairGroupOpt,
    a: Annotated[str, typer.Option("--a", help="Level to compare.")],
    b: Annotated[str, typer.Option("--b", help="Baseline level (the effect is relative to it).")],
    effect: Annotated[
        str, typer.Option("--effect", help="Relative difference to detect, e.g. 10% or 0.1.")
    ] = "10%",
    power: Annotated[float, typer.Option("--power", help="Target power.")] = 0.8,
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided significance level.")] = 0.05,
    metric: MetricOpt = "train_s",
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """Trials per group needed to detect --effect between --a and --b; the effect detectable now.
    One result per combination of the other factors that vary (--pool to pool them)."""
    from analysis.held import power as run

    result = _run(
        run,
        db,
        pool=pool,
        group=group,
        a=a,
        b=b,
        effect=_fraction(effect, "--effect"),
        metric=metric,
        alpha=alpha,
        target_power=power,
        where=where,
        include_warmup=include_warmup,
    )
    _emit(result, format)


def _prices_file(path: Path | None) -> list[Any]:
    """The rows of a prices CSV (read as `runner import prices` reads it)."""
    if path is None:
        return []
    from analysis.cost import Price
    from runner.errors import RunnerError
    from runner.importer import parse_prices

    try:
        rows = parse_prices(path)
    except RunnerError as exc:
        _fail(AnalysisError(f"--prices: {exc}"))
    return [Price(n, v, m, usd, f"file:{path.name}") for n, v, m, usd in rows]


@app.command()
def cost(
    machine: Annotated[
        str | None,
        typer.Option("--machine", help="Column naming machine types (priced from prices)."),
    ] = None,
    nodes: Annotated[
        str | None, typer.Option("--nodes", help="Column with the node count (x price).")
    ] = None,
    usd_per_core_hour: Annotated[
        float | None,
        typer.Option("--usd-per-core-hour", help="Price trials by workers x threads x this."),
    ] = None,
    prices: Annotated[
        Path | None, typer.Option("--prices", help="Prices CSV (name, usd_per_hour, ...).")
    ] = None,
    deadline: Annotated[
        float | None, typer.Option("--deadline", help="Seconds: cheapest meeting it.")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Comma-separated columns.")] = None,
    cost_metric: Annotated[
        bool, typer.Option("--cost-metric", help="McSherry's COST instead (see cost-metric).")
    ] = False,
    metric: MetricOpt = "train_s",
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """Median cost per configuration, the cost/time Pareto front, the cheapest under --deadline,
    per task (workload, dataset, data_fraction, epochs and source held fixed)."""
    if cost_metric:
        cost_metric_cmd(metric, where, pool, db, format, include_warmup)
        return
    from analysis.held import cost as run

    result = _run(
        run,
        db,
        pool=pool,
        metric=metric,
        by=_columns(by) or None,
        machine=machine,
        nodes=nodes,
        usd_per_core_hour=usd_per_core_hour,
        deadline_s=deadline,
        prices=_prices_file(prices),
        where=where,
        include_warmup=include_warmup,
    )
    _emit(result, format)


@app.command("cost-metric")
def cost_metric_cmd(
    metric: MetricOpt = "train_s",
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """McSherry's COST: the fewest cores of each engine that beat the best single core, per
    task."""
    from analysis.held import cost_metric as run

    result = _run(run, db, metric=metric, where=where, pool=pool, include_warmup=include_warmup)
    _emit(result, format)


class CompareFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    latex = "latex"
    markdown = "markdown"


@app.command()
def compare(
    base_run: Annotated[
        str | None, typer.Argument(metavar="[BASE]", help="Run id of the base trials.")
    ] = None,
    new_run: Annotated[
        str | None, typer.Argument(metavar="[NEW]", help="Run id of the new trials.")
    ] = None,
    base: Annotated[
        list[str] | None,
        typer.Option("--base", help="Select the base trials: COLUMN OP VALUE; repeatable."),
    ] = None,
    new: Annotated[
        list[str] | None,
        typer.Option("--new", help="Select the new trials: COLUMN OP VALUE; repeatable."),
    ] = None,
    metric: MetricOpt = "train_s",
    test: Annotated[
        str, typer.Option("--test", help="mwu (Mann-Whitney U) or welch (t on log values).")
    ] = "mwu",
    threshold: Annotated[
        str, typer.Option("--threshold", help="Significant changes smaller than this are noise.")
    ] = "0%",
    fail_on_regression: Annotated[
        str | None,
        typer.Option(
            "--fail-on-regression",
            help="Exit 1 when a configuration got significantly worse by at least this, e.g. 5%.",
        ),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    confidence: ConfidenceOpt = 0.95,
    better: Annotated[
        str | None,
        typer.Option(
            "--better", help="lower or higher (default: higher for throughput and accuracy)."
        ),
    ] = None,
    match: Annotated[
        str, typer.Option("--match", help="Match configurations by factors or config_id.")
    ] = "factors",
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: Annotated[
        CompareFormat, typer.Option("--format", help="Output format.")
    ] = CompareFormat.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """Did NEW make it faster than BASE? Per configuration: medians, ratio new/base with its CI,
    p, verdict; a geometric-mean row; configurations of one side listed."""
    from analysis.compare import compare as run

    sides = []
    for name, run_id, items in (("base", base_run, base), ("new", new_run, new)):
        if (run_id is None) == (not items):
            _fail(
                AnalysisError(
                    f"give the {name} trials once: a run id ({name.upper()}) or --{name} "
                    "COLUMN=VALUE"
                )
            )
        sides.append(run_id if run_id is not None else list(items or []))
    limit = None if fail_on_regression is None else _fraction(fail_on_regression, "--fail-on")
    result = _run(
        run,
        db,
        base=sides[0],
        new=sides[1],
        metric=metric,
        test=test,
        threshold=_fraction(threshold, "--threshold"),
        alpha=alpha,
        confidence_level=confidence,
        better=better,
        match=match,
        pool=pool,
        where=where,
        include_warmup=include_warmup,
    )
    if format is CompareFormat.markdown:
        typer.echo(result.to_markdown())
    else:
        _emit(result, Format(format.value))
    if limit is not None:
        worse = result.regressions(limit)
        if worse:
            labels = "; ".join(r.label for r in worse)
            typer.echo(
                f"regression of {100 * limit:g}% or more in {len(worse)} configuration(s): "
                f"{labels}",
                err=True,
            )
            raise typer.Exit(1)


def main() -> None:
    """Console-script entry point (``analyze``)."""
    from runner.climain import run_app

    run_app(app)


if __name__ == "__main__":
    main()
