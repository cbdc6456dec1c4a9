"""Did this change make it faster? Two sets of trials (two runs, or two ``--where`` selections)
compared configuration by configuration, as Go's benchstat, pyperf's ``compare_to`` and critcmp
answer it.

Configurations are matched by their factor columns (every factor of :mod:`analysis.strata`
except those the two sides are defined by), or by ``config_id``. Per configuration present on both
sides:

- both medians (DuckDB's);
- ``test="mwu"`` (default, as benchstat): the Mann–Whitney U test, from mid-ranks computed in
  DuckDB (exact p for small samples without ties, as scipy), and the ratio ``new / base`` as
  ``exp`` of the Hodges–Lehmann shift of the log values with its distribution-free interval from
  the same U distribution — so the interval excludes 1 exactly when the test rejects (up to the
  normal approximation for large samples). A configuration of more than :data:`HL_MAX_PAIRS`
  pairs gets the log-scale Welch interval instead (said in ``ci_method``);
- ``test="welch"``: Welch's t-test on the log values (moments from DuckDB), the ratio of geometric
  means and its t interval.

The verdict is ``~`` (no significant change, p >= alpha), ``within noise`` (significant but
``|ratio - 1| < threshold``), or faster/slower (better/worse for metrics that are not times or
throughputs). A geometric-mean row summarises the matched configurations (benchstat's
``geomean``); configurations of one side only are listed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from analysis.data import (
    VIEW,
    Database,
    Filter,
    Selection,
    as_filters,
    check_column,
    connect,
    execute,
    finite_check,
    fmt,
    fmt_p,
    format_level,
    latex_table,
    quote,
    render_table,
    select,
)
from analysis.errors import AnalysisError
from analysis.smallsample import MIN_TRIALS, small_sample_note
from analysis.strata import ENV_FIELDS, _env_text, _pooled, factor_columns, parse_pool

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd

TESTS = ("mwu", "welch")
#: Above this many (base, new) pairs the ratio's interval is the log-scale Welch one.
HL_MAX_PAIRS = 4_000_000
#: A side's values leave DuckDB (for the exact test and Hodges-Lehmann) up to this many.
LIST_MAX = 200_000
#: Metrics where higher is better (a ratio above 1 is an improvement).
HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "train_accuracy"})
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

    def to_latex(self) -> str:
        return latex_table(list(COLUMNS), self._table_rows())

    def to_markdown(self) -> str:
        head = ["configuration", "base", "new", "ratio", f"{self._pct} CI", "p", "verdict"]
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
        return (
            f"{self.metric}: new ({' '.join(self.new)}) vs base ({' '.join(self.base)}); "
            f"ratio = new / base ({self.better} is better), {test}, alpha {self.alpha:g}"
            + (f", changes under {self.threshold:.3g} within noise" if self.threshold else "")
        )

    def _display_rows(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            ci = f"[{fmt(r.ratio_ci_low, 4)}, {fmt(r.ratio_ci_high, 4)}]"
            verdict = r.verdict + (f" ({r.note})" if r.note else "")
            out.append([r.label, f"{fmt(r.median_base, 4)} (n={r.n_base})",
                        f"{fmt(r.median_new, 4)} (n={r.n_new})", fmt(r.ratio, 4), ci,
                        fmt_p(r.p_value), verdict])  # fmt: skip
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
        lines += [f"note: {n}" for n in self.notes]
        return lines

    def __str__(self) -> str:
        head = ["configuration", "base median", "new median", "ratio", f"{self._pct} CI", "p",
                "verdict"]  # fmt: skip
        return "\n".join([self._title, render_table(head, self._display_rows()), *self._tail()])


# -- the statistics, from per-side summaries ---------------------------------------------------
def u_null_cdf(m: int, n: int) -> list[float]:
    """``P(U <= u)`` for u = 0..mn under the null (no ties), from the generating function
    ``prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i)`` in exact integers."""
    size = m * n + 1
    counts = [0] * size
    counts[0] = 1
    for i in range(1, m + 1):
        for u in range(size - 1, n + i - 1, -1):  # times (1 - q^(n+i))
            counts[u] -= counts[u - n - i]
        for u in range(i, size):  # divided by (1 - q^i)
            counts[u] += counts[u - i]
    total = math.comb(m + n, m)
    out, run = [], 0
    for c in counts:
        run += c
        out.append(run / total)
    return out


def hodges_lehmann(
    log_base: np.ndarray, log_new: np.ndarray, *, exact: bool, confidence_level: float
) -> tuple[float, float, float]:
    """``(shift, low, high)`` of ``log_new - log_base``: the median of the pairwise differences
    and the interval between the k-th smallest and largest of them, k from the U distribution
    (exact, or its normal approximation). ``-inf``/``inf`` when the samples are too small."""
    import numpy as np
    from scipy import special

    m, n = len(log_base), len(log_new)
    diffs = np.sort(np.subtract.outer(log_new, log_base).ravel())
    shift = float(np.median(diffs))
    tail = (1 - confidence_level) / 2
    if exact:
        cdf = u_null_cdf(min(m, n), max(m, n))
        k = 0
        while k < len(cdf) and cdf[k] <= tail:
            k += 1  # P(U <= k - 1) <= tail
    else:
        z = float(-special.ndtri(tail))
        k = math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12))
    if k < 1:
        return shift, -math.inf, math.inf
    return shift, float(diffs[k - 1]), float(diffs[m * n - k])


def _words(metric: str) -> tuple[str, str]:
    timing = metric.endswith("_s") or "throughput" in metric or metric.endswith("_ips")
    return ("faster", "slower") if timing else ("better", "worse")


def _better(metric: str, better: str | None) -> str:
    if better is None:
        higher = metric in HIGHER_IS_BETTER or "throughput" in metric or metric.endswith("_ips")
        return "higher" if higher else "lower"
    if better not in ("lower", "higher"):
        raise AnalysisError(f"--better {better!r}: give lower or higher")
    return better


def verdict(
    ratio: float, p_value: float, *, alpha: float, threshold: float, better: str, metric: str
) -> str:
    if not p_value < alpha:
        return "~"
    if abs(ratio - 1) < threshold:
        return "within noise"
    good, bad = _words(metric)
    improved = ratio < 1 if better == "lower" else ratio > 1
    return good if improved else bad


# -- DuckDB -----------------------------------------------------------------------------------
def _side_sql(sel: Selection, *, keys: Sequence[str], metric: str) -> tuple[str, list[Any]]:
    """``SELECT key text, key values…, x, run_id`` of one side's trials."""
    m = quote(metric)
    parts = [f"coalesce(CAST({quote(k)} AS VARCHAR), '\u2205')" for k in keys]
    ktext = f"concat_ws('\u241f', {', '.join(parts)})" if parts else "''"
    cols = "".join(f"{quote(k)} AS k{i}, " for i, k in enumerate(keys))
    sql = (
        f"SELECT {ktext} AS __k, {cols}CAST({m} AS DOUBLE) AS x, run_id AS __run "
        f"FROM {VIEW}{sel.where_and(f'{m} IS NOT NULL')}"
    )
    return sql, list(sel.params)


def _summaries(
    con: duckdb.DuckDBPyConnection,
    base: Selection,
    new: Selection,
    *,
    keys: Sequence[str],
    metric: str,
) -> list[tuple]:
    """Per (configuration, side): key values, n, median, mean and variance of ln x, the rank sum
    in the configuration's pooled sample, its tie term, the values (when few enough) and runs."""
    b_sql, b_params = _side_sql(base, keys=keys, metric=metric)
    n_sql, n_params = _side_sql(new, keys=keys, metric=metric)
    kcols = "".join(f"any_value(k{i}), " for i in range(len(keys)))
    sql = f"""
        WITH s AS (SELECT 0 AS side, * FROM ({b_sql}) UNION ALL SELECT 1, * FROM ({n_sql})),
        t AS (SELECT __k, x, count(*) AS t FROM s GROUP BY __k, x),
        r AS (SELECT __k, x, t,
                     sum(t) OVER (PARTITION BY __k ORDER BY x) - t + (t + 1) / 2.0 AS rk
              FROM t),
        ties AS (SELECT __k, CAST(sum(CAST(t AS HUGEINT) * t * t - t) AS DOUBLE) AS tie
                 FROM t GROUP BY __k)
        SELECT s.__k, side, {kcols}count(*), median(s.x), min(s.x),
               avg(ln(s.x)) FILTER (WHERE s.x > 0), var_samp(ln(s.x)) FILTER (WHERE s.x > 0),
               sum(r.rk), any_value(ties.tie),
               count(*) FILTER (WHERE NOT isfinite(s.x)),
               list(DISTINCT s.__run),
               CASE WHEN count(*) <= {LIST_MAX} THEN list(s.x ORDER BY s.x) END
        FROM s JOIN r ON s.__k = r.__k AND s.x = r.x JOIN ties ON s.__k = ties.__k
        GROUP BY s.__k, side ORDER BY s.__k, side
    """
    return execute(con, sql, [*b_params, *n_params])


def _run_env(con: duckdb.DuckDBPyConnection, runs: Sequence[str]) -> dict[str, dict[str, Any]]:
    from analysis.strata import _env_fields

    if not runs:
        return {}
    rows = con.execute("SELECT run_id, env FROM runs WHERE list_contains(?, run_id)",
                       [list(runs)]).fetchall()  # fmt: skip
    return {str(r): _env_fields(e) for r, e in rows}


def _side_filters(side: str | Sequence[str | Filter], name: str) -> list[Filter]:
    if isinstance(side, str) and not any(op in side for op in "=<>!"):
        if not side.strip():
            raise AnalysisError(f"{name}: give a run id or --{name} COLUMN=VALUE")
        return [Filter("run_id", "=", side.strip())]
    filters = as_filters(side)
    if not filters:
        raise AnalysisError(f"{name}: give a run id or --{name} COLUMN=VALUE")
    return filters


# -- the analysis -----------------------------------------------------------------------------
def compare(
    db: Database,
    *,
    base: str | Sequence[str | Filter],
    new: str | Sequence[str | Filter],
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    test: str = "mwu",
    threshold: float = 0.0,
    alpha: float = 0.05,
    confidence_level: float = 0.95,
    better: str | None = None,
    match: str = "factors",
    pool: Sequence[str] | str | bool | None = None,
    include_warmup: bool = False,
) -> CompareResult:
    """Compare ``metric`` of the ``new`` trials with the ``base`` trials, configuration by
    configuration. ``base``/``new``: a run id, or ``--where`` items selecting each side.
    ``threshold``: a significant change of ``|ratio - 1|`` below it is "within noise" (0.02:
    2%). ``better``: ``lower`` (times; default) or ``higher`` (throughput, accuracy: default
    for those names). ``match``: ``factors`` or ``config_id``. ``pool``: environment fields
    (``hostname``, ``cpu_model``, ``packages``, ``env``) allowed to differ within a side."""
    from scipy import stats

    from analysis.ttest import _mwu_uses_exact, mwu_asymptotic

    test = str(test).lower()
    if test not in TESTS:
        raise AnalysisError(f"--test {test!r}: give mwu (Mann-Whitney U) or welch")
    if not 0 < alpha < 1 or not 0 < confidence_level < 1:
        raise AnalysisError("--alpha and --confidence must be between 0 and 1")
    if not (math.isfinite(threshold) and 0 <= threshold < 1):
        raise AnalysisError(f"--threshold {threshold:g} must be a fraction in [0, 1), e.g. 2%")
    if match not in ("factors", "config_id"):
        raise AnalysisError(f"--match {match!r}: give factors or config_id")
    better = _better(metric, better)
    base_f, new_f = _side_filters(base, "base"), _side_filters(new, "new")
    common = as_filters(where)
    pooled = parse_pool(pool)
    with connect(db) as con:
        sel_b = select(con, metric=metric, where=[*common, *base_f], include_warmup=include_warmup)
        sel_n = select(con, metric=metric, where=[*common, *new_f], include_warmup=include_warmup)
        both = select(con, metric=metric, where=[*common, *base_f, *new_f],
                      include_warmup=include_warmup)  # fmt: skip
        finite_check(con, sel_b, [metric])
        finite_check(con, sel_n, [metric])
        overlap = execute(con, f"SELECT count(*) FROM {VIEW}{both.where_sql}", both.params)[0][0]
        if overlap:
            raise AnalysisError(
                f"{overlap} trials are both base and new; give selections that do not overlap"
            )
        defining = {f.column for f in (*base_f, *new_f)} | {"run_id"}
        if match == "config_id":
            check_column(sel_b.columns, "config_id", "--match")
            keys = ["config_id"]
        else:
            keys = [f for f in factor_columns(con, sel_b.columns) if f not in defining]
        rows = _summaries(con, sel_b, sel_n, keys=keys, metric=metric)
        runs = sorted({r for row in rows for r in row[-2]})
        env = _run_env(con, runs)
    g = len(keys)
    sides: dict[str, dict[int, tuple]] = {}
    values_of: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        sides.setdefault(row[0], {})[int(row[1])] = row
        values_of[row[0]] = tuple(row[2 : 2 + g])
    if not rows:
        raise AnalysisError(
            f"no trials with {metric} on either side ({' '.join(map(str, base_f))} / "
            f"{' '.join(map(str, new_f))}); check the run ids or --base/--new"
        )

    # labels: the key columns that vary between configurations, less those the earlier ones
    # determine (k goes with workload)
    varying: list[int] = []
    for i in range(g):
        if len({v[i] for v in values_of.values()}) < 2:
            continue
        seen: dict[tuple[Any, ...], Any] = {}
        if varying and all(
            seen.setdefault(tuple(v[j] for j in varying), v[i]) == v[i] for v in values_of.values()
        ):
            continue
        varying.append(i)
    first = next(iter(values_of.values()))
    same = tuple(
        f"{keys[i]}={format_level(first[i])}"
        for i in range(g)
        if first[i] is not None and len({v[i] for v in values_of.values()}) == 1
    )

    def config(k: str) -> dict[str, str]:
        return {keys[i]: format_level(values_of[k][i]) for i in varying}

    notes = _env_notes(rows, env, pooled)
    out, only_base, only_new = [], [], []
    small: list[tuple[str, int]] = []
    for k in sorted(sides, key=lambda k: tuple(str(v) for v in values_of[k])):
        pair = sides[k]
        label = ", ".join(f"{a}={b}" for a, b in config(k).items()) or "all"
        if 0 not in pair or 1 not in pair:
            (only_new if 0 not in pair else only_base).append(label)
            continue
        b, n = pair[0], pair[1]
        nb, med_b, min_b, mlb, vlb, _, tie, bad_b, _, vals_b = b[2 + g :]
        nn, med_n, min_n, mln, vln, rank_n, _, bad_n, _, vals_n = n[2 + g :]
        assert not (bad_b or bad_n), "finite_check let a non-finite value through"
        if min(min_b, min_n) <= 0:
            raise AnalysisError(
                f"{metric} is zero or negative in {label}, so a ratio on the log scale is "
                f"undefined; compare a positive metric or exclude them with --where '{metric}>0'"
            )
        note = ""
        if test == "mwu":
            import numpy as np

            u_new = float(rank_n) - nn * (nn + 1) / 2.0
            _, p = mwu_asymptotic(u_new, nn, nb, float(tie))
            listed = vals_b is not None and vals_n is not None
            exact = listed and _mwu_uses_exact(nn, nb, u_new, float(tie))
            method = "asymptotic"
            if exact:
                xb, xn = np.asarray(vals_b, dtype=float), np.asarray(vals_n, dtype=float)
                p = float(stats.mannwhitneyu(xn, xb, method="exact").pvalue)
                method = "exact"
            if listed and nb * nn <= HL_MAX_PAIRS:
                xb, xn = np.asarray(vals_b, dtype=float), np.asarray(vals_n, dtype=float)
                shift, lo, hi = hodges_lehmann(np.log(xb), np.log(xn), exact=exact,
                                               confidence_level=confidence_level)  # fmt: skip
                ci_method = "hodges-lehmann"
            else:
                shift, lo, hi = _log_welch(mlb, vlb, nb, mln, vln, nn, confidence_level)[:3]
                ci_method = "log-welch"
            if method == "exact" and 2 / math.comb(nb + nn, nb) > alpha:
                need = next(s for s in range(2, 50) if 2 / math.comb(2 * s, s) <= alpha)
                note = f"need >= {need} trials per side to detect a change at alpha {alpha:g}"
        else:
            shift, lo, hi, p = _log_welch(mlb, vlb, nb, mln, vln, nn, confidence_level)
            method, ci_method = "t", "log-welch"
            if nb < 2 or nn < 2:
                note = "needs 2 trials per side"
        if min(nb, nn) < MIN_TRIALS:
            few = f"few trials: base {int(nb)}, new {int(nn)} (< {MIN_TRIALS} per side)"
            note = f"{note}; {few}" if note else few
            small += [(f"{label} base", int(nb)), (f"{label} new", int(nn))]
        ratio = math.exp(shift)
        out.append(
            CompareRow(
                config=config(k),
                n_base=int(nb),
                n_new=int(nn),
                median_base=float(med_b),
                median_new=float(med_n),
                ratio=ratio,
                ratio_ci_low=math.exp(lo),
                ratio_ci_high=math.exp(hi),
                p_value=float(p),
                method=method,
                ci_method=ci_method,
                verdict=verdict(
                    ratio, p, alpha=alpha, threshold=threshold, better=better, metric=metric
                ),
                note=note,
            )  # fmt: skip
        )
    if not out:
        raise AnalysisError(
            "no configuration is measured on both sides; only in base: "
            f"{'; '.join(only_base) or '-'}; only in new: {'; '.join(only_new) or '-'}"
        )
    few_note = small_sample_note(small)
    if few_note:
        notes.append(few_note)
    gb = math.exp(math.fsum(math.log(r.median_base) for r in out) / len(out))
    gn = math.exp(math.fsum(math.log(r.median_new) for r in out) / len(out))
    gr = math.exp(math.fsum(math.log(r.ratio) for r in out) / len(out))
    return CompareResult(
        metric=metric, test=test, base=tuple(map(str, base_f)), new=tuple(map(str, new_f)),
        better=better, alpha=alpha, threshold=threshold, confidence_level=confidence_level,
        rows=tuple(out), geomean_base=gb, geomean_new=gn, geomean_ratio=gr,
        only_base=tuple(only_base), only_new=tuple(only_new), same=same,
        where=tuple(map(str, common)), notes=tuple(notes),
    )  # fmt: skip


def _log_welch(
    mean_b: float | None,
    var_b: float | None,
    n_b: int,
    mean_n: float | None,
    var_n: float | None,
    n_n: int,
    confidence_level: float,
) -> tuple[float, float, float, float]:
    """``(shift, low, high, p)`` of Welch's t on the log values (NaN with < 2 trials a side)."""
    from scipy import stats

    from analysis.ttest import welch_df

    if n_b < 2 or n_n < 2 or mean_b is None or mean_n is None:
        shift = (mean_n or math.nan) - (mean_b or math.nan)
        return shift, -math.inf, math.inf, math.nan
    vb, vn = float(var_b or 0.0), float(var_n or 0.0)
    shift = float(mean_n) - float(mean_b)
    se = math.sqrt(vb / n_b + vn / n_n)
    if se == 0:
        return shift, shift, shift, 0.0 if shift else 1.0
    df = welch_df(vn, n_n, vb, n_b)
    q = float(stats.t.ppf((1 + confidence_level) / 2, df))
    p = float(2 * stats.t.sf(abs(shift / se), df))
    return shift, shift - q * se, shift + q * se, p


def _env_notes(
    rows: Sequence[tuple], env: dict[str, dict[str, Any]], pooled: frozenset[str]
) -> list[str]:
    """Refuse a side whose trials come from different environments (unless pooled); name the
    differences between the sides."""
    side_runs: dict[int, set[str]] = {0: set(), 1: set()}
    for row in rows:
        side_runs[int(row[1])].update(row[-2])
    notes = []
    for name in ENV_FIELDS:
        per_side = [{env.get(r, {}).get(name) for r in side_runs[s]} - {None} for s in (0, 1)]
        for s, values in zip(("base", "new"), per_side, strict=True):
            if len(values) > 1 and not _pooled(name, pooled):
                raise AnalysisError(
                    f"the {s} trials come from different environments: "
                    f"{_env_text(name, values)}; narrow --{s} to one, or pool them on purpose "
                    f"with --pool {name}"
                )
        union = per_side[0] | per_side[1]
        if len(union) > 1 and per_side[0] != per_side[1]:
            notes.append(f"base and new differ in {_env_text(name, union)}")
    return notes
