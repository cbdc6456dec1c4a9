"""``analyze``: the command line over :mod:`analysis`. Only the ``analysis/cli*.py`` modules
print or exit; the app, its shared options and output live in :mod:`analysis.cli_common`, the
scaling and cost commands in :mod:`analysis.cli_cost`, ``compare`` in
:mod:`analysis.cli_compare`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from analysis.cli_common import (
    DEFAULT_DB,
    BootstrapOpt,
    ConfidenceOpt,
    DbOpt,
    Format,
    FormatOpt,
    MetricOpt,
    PairGroupOpt,
    PoolOpt,
    SeedOpt,
    TableOpt,
    WarmupOpt,
    WhereOpt,
    WideOpt,
    app,
)
from analysis.cli_common import columns as _columns
from analysis.cli_common import emit as _emit
from analysis.cli_common import fail as _fail
from analysis.cli_common import fraction as _fraction
from analysis.cli_common import run as _run
from analysis.defaults import DEFAULT_BY, DEFAULT_METRICS
from analysis.errors import AnalysisError
from analysis.options import ALPHA, CONFIDENCE, DEFAULT_SEED, N_BOOT

__all__ = ["app", "main"]


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
            show_default=str(ALPHA),
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="One-way: seed of the Shapiro-Wilk sample (above 5000 trials).",
            show_default=str(DEFAULT_SEED),
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
    checks: Annotated[
        str | None,
        typer.Option(
            "--checks",
            help="One-way: auto (Kruskal-Wallis and Shapiro-Wilk, which rank or sort every "
            "value, only for strata small enough or heavy-tailed; the output names any left "
            "out) or all.",
            show_default="auto",
        ),
    ] = None,
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    table: TableOpt = None,
    wide: WideOpt = False,
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
        one_way = (("--alpha", alpha), ("--seed", seed), ("--test", test), ("--checks", checks))
        for option, value in one_way:
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
        _emit(result, format, table=table, wide=wide)
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
        **{
            k: v
            for k, v in (("alpha", alpha), ("seed", seed), ("test", test), ("checks", checks))
            if v is not None
        },
        where=where,
        include_warmup=include_warmup,
    )
    _emit(result, format, table=table, wide=wide)


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
    bootstrap: BootstrapOpt = N_BOOT,
    seed: SeedOpt = DEFAULT_SEED,
    confidence: ConfidenceOpt = CONFIDENCE,
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    table: TableOpt = None,
    wide: WideOpt = False,
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
    _emit(result, format, table=table, wide=wide)


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
    bootstrap: BootstrapOpt = N_BOOT,
    seed: SeedOpt = DEFAULT_SEED,
    where: WhereOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    table: TableOpt = None,
    wide: WideOpt = False,
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
    _emit(result, format, table=table, wide=wide)


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
    ] = CONFIDENCE,
    rank_checks: Annotated[
        bool | None,
        typer.Option(
            "--rank-checks/--no-rank-checks",
            help="Spearman's rho and Durbin-Watson, which sort every value (default: only for "
            "selections small enough; the output says when they did not run).",
            show_default=False,
        ),
    ] = None,
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    table: TableOpt = None,
    wide: WideOpt = False,
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
        rank_checks=rank_checks,
    )
    _emit(result, format, table=table, wide=wide)


@app.command()
def power(
    group: PairGroupOpt,
    a: Annotated[str, typer.Option("--a", help="Level to compare.")],
    b: Annotated[str, typer.Option("--b", help="Baseline level (the effect is relative to it).")],
    effect: Annotated[
        str, typer.Option("--effect", help="Relative difference to detect, e.g. 10% or 0.1.")
    ] = "10%",
    power: Annotated[float, typer.Option("--power", help="Target power.")] = 0.8,
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided significance level.")] = ALPHA,
    metric: MetricOpt = "train_s",
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    table: TableOpt = None,
    wide: WideOpt = False,
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
    _emit(result, format, table=table, wide=wide)


# registered after the commands above, so `analyze --help` lists them in this order
from analysis import cli_compare, cli_cost  # noqa: E402, F401


def main() -> None:
    """Console-script entry point (``analyze``)."""
    from runner.climain import run_app

    run_app(app)


if __name__ == "__main__":
    main()
