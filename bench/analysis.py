"""Benchmark of `analyze` on a synthetic database of a million trials, side by side with the naive
way (every row of the observations view loaded into pandas, then pandas groupby + scipy /
statsmodels).

    python bench/analysis.py make-db PATH [--trials 1000000] [--seed 0] [--metrics accuracy]
    python bench/analysis.py run PATH [--repeat 3] [--only NAME] [--markdown FILE]
    python bench/analysis.py profile PATH ANALYZE-ARGS...   (e.g. profile PATH summary)
    python bench/analysis.py naive PATH CASE      (internal: one naive analysis, JSON on stdout)

`make-db` opens PATH with ``runner.store.open_store`` (the real schema, meta version and
observations view), starts one run (source ``import:bench``), appends two warm-up trials through
the public ``append_trials`` (they register the metric and param columns, so the view shows them
as it does for real runs), stores each configuration's params once in ``params`` and
bulk-inserts the other trials with their metric columns in one DuckDB INSERT over ``range(N)``,
with noise derived from ``hash(i, seed, k)`` (a metric's from ``hash(trial_id, seed + 1 + its
index, k)``): the same seed gives the same database.

`run` times each analysis as a child process of the real `analyze` console script (median wall
time of --repeat runs, peak RSS of the child from ``os.wait4``), then the same analysis done the
naive way in a child process of this script, and checks that the key numbers agree. Which cases
run depends on what `analyze <cmd> --help` lists (``ttest --test mwu``, ``anova --posthoc``, a
second ``anova --group``), so the script keeps working as options land. A case over 5 s or 1 GB
is then profiled (`profile`): imports, SQL and the rest of one in-process call, every SQL
statement of a warm second call timed, and the slowest ones run under DuckDB's profiler.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# -- synthetic database ---------------------------------------------------------------------------
#: engine: (serial fraction, per-extra-worker overhead s, constant s, sd of log noise, setup_s)
ENGINES: dict[str, tuple[float, float, float, float, float]] = {
    "local": (1.0, 0.0, 0.02, 0.08, 0.0),
    "dask": (0.15, 0.06, 0.30, 0.15, 0.6),
    "ray": (0.10, 0.10, 0.45, 0.20, 2.5),
    "spark": (0.25, 0.04, 1.10, 0.12, 4.0),
}
#: workload: (train_s of one worker on all the data, mean test accuracy, params)
WORKLOADS: dict[str, tuple[float, float, dict[str, Any]]] = {
    "knn": (2.0, 0.985, {"k": 5}),
    "mlp": (9.0, 0.965, {"impl": "sklearn"}),
}
WORKERS = (1, 2, 4, 8)
FRACTIONS = (0.25, 0.5, 1.0)
FAILED_RATE = 0.01
TIMEOUT_RATE = 0.005
WARMUP_RATE = 0.002
#: metric name -> SQL over the trial ``t``, its configuration ``g`` and normals ``z1``, ``z2``
METRIC_SQL: dict[str, str] = {
    "accuracy": "least(1.0, g.acc + 0.004 * z1)",
    "precision": "least(1.0, g.acc + 0.002 + 0.004 * z2)",
    "recall": "least(1.0, g.acc - 0.001 + 0.004 * z1)",
    "f1": "least(1.0, g.acc + 0.0005 + 0.003 * z2)",
    "train_accuracy": "least(1.0, g.acc + 0.012 + 0.002 * z1)",
    "peak_rss_mb": "(250 + 120 * t.workers) * exp(0.05 * z2)",
    "cpu_s": "t.train_s * t.workers * (0.9 + 0.02 * z1)",
}


def _uniform(key: str, k: int) -> str:
    """SQL for a uniform [0, 1) number from ``hash(key, seed, k)`` (53 bits)."""
    return f"((hash({key}, $seed::BIGINT, {k}) >> 11)::DOUBLE / 9007199254740992.0)"


def _normals(key: str, k: int) -> tuple[str, str]:
    """Two independent standard normals (Box-Muller) from uniforms k and k + 1."""
    radius = f"sqrt(-2 * ln(1 - {_uniform(key, k)}))"
    angle = f"2 * pi() * {_uniform(key, k + 1)}"
    return f"{radius} * cos({angle})", f"{radius} * sin({angle})"


def configurations(seed: int) -> list[dict[str, Any]]:
    """Every configuration: local on one worker, the distributed engines on 1, 2, 4, 8."""
    import hashlib

    out = []
    for engine, (serial, overhead, constant, noise, setup) in ENGINES.items():
        for workload, (base, acc, extra) in WORKLOADS.items():
            for workers in (1,) if engine == "local" else WORKERS:
                for fraction in FRACTIONS:
                    params = {
                        "engine": engine,
                        "workload": workload,
                        "dataset": "digits",
                        "workers": workers,
                        "threads_per_worker": 1,
                        "data_fraction": fraction,
                        "experiment": "bench",
                        "seed": seed,
                        **extra,
                    }
                    text = json.dumps(params, sort_keys=True)
                    out.append(
                        {
                            "c": len(out),
                            "config_id": hashlib.sha256(text.encode()).hexdigest()[:12],
                            "engine": engine,
                            "workload": workload,
                            "workers": workers,
                            "data_fraction": fraction,
                            "params": text,
                            "serial": serial,
                            "overhead": overhead,
                            "constant": constant,
                            "noise": noise,
                            "setup": setup,
                            "base": base,
                            "acc": acc,
                        }
                    )
    return out


#: Trials per INSERT (and transaction) of make-db: 10M take about 3 GB in one INSERT.
CHUNK = 10_000_000


def make_db(
    path: Path,
    *,
    trials: int,
    seed: int,
    metrics: Sequence[str],
    force: bool,
    chunk: int = CHUNK,
) -> None:
    """Create the synthetic database at ``path``; the bulk trials go in INSERTs of ``chunk``
    trials, each in its own transaction (the same database for the same seed, whatever the
    chunk)."""
    from runner.store import TrialRecord, open_store, params_key

    unknown = [m for m in metrics if m not in METRIC_SQL]
    if unknown or not metrics:
        raise SystemExit(f"--metrics: unknown {unknown}; choose from {', '.join(METRIC_SQL)}")
    if trials < 10:
        raise SystemExit("--trials must be at least 10")
    if chunk < 1:
        raise SystemExit("--chunk must be at least 1")
    if path.exists() and not force:
        raise SystemExit(f"{path} exists; pass --force to replace it")
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    started = time.perf_counter()
    cfgs = configurations(seed)
    store = open_store(tmp)
    try:
        con = store.con
        run_id = store.begin_run(
            source="import:bench",
            argv=sys.argv,
            spec={"trials": trials, "seed": seed, "metrics": list(metrics)},
            env={"generator": "bench/analysis.py make-db", "python": platform.python_version()},
        )

        # Two warm-up trials through the public API: they register the metrics and params
        # (k, impl) in observation_columns (a metric also becomes a column of trials), and the
        # store rebuilds the view to show them.
        def record(workload: str) -> TrialRecord:
            cfg = next(c for c in cfgs if c["workload"] == workload and c["engine"] == "local")
            values = {k: cfg[k] for k in ("config_id", "engine", "workload", "workers")}
            values |= {"data_fraction": cfg["data_fraction"], "params": json.loads(cfg["params"])}
            values |= {"experiment": "bench", "dataset": "digits", "threads_per_worker": 1}
            values |= {"warmup": True, "repetition": 0, "seed": seed, "train_s": cfg["base"]}
            return TrialRecord(run_id, "ok", values, {m: 0.5 for m in metrics})

        store.append_trials([record("knn"), record("mlp")])
        with store.transaction():
            con.execute(
                "CREATE TEMP TABLE bench_cfg (c INTEGER, config_id VARCHAR, engine VARCHAR, "
                "workload VARCHAR, workers INTEGER, data_fraction DOUBLE, params VARCHAR, "
                "serial DOUBLE, overhead DOUBLE, constant DOUBLE, noise DOUBLE, setup DOUBLE, "
                "base DOUBLE, acc DOUBLE, params_id VARCHAR)"
            )
            keys = [params_key(json.loads(c["params"])) for c in cfgs]
            con.executemany(
                "INSERT INTO bench_cfg VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[*c.values(), pid] for c, (pid, _) in zip(cfgs, keys, strict=True)],
            )
            # a configuration's params once (the warm-ups stored two of them already)
            con.execute(
                "INSERT INTO params SELECT DISTINCT params_id, params::JSON FROM bench_cfg "
                "ON CONFLICT DO NOTHING"
            )
        z1, z2 = _normals("i", 1)
        first = int(con.execute("SELECT max(trial_id) FROM trials").fetchone()[0])
        # Each metric's normals come from hash(trial_id, seed + 1 + its index, k); trial ids
        # are first + 1 + i (checked below), so the metrics go in the same INSERT.
        metric_sql = []
        for name in metrics:
            m_seed = f"{seed + 1 + list(METRIC_SQL).index(name)}::BIGINT"
            m1, m2 = (z.replace("$seed::BIGINT", m_seed) for z in _normals("t.tid", 100))
            value = METRIC_SQL[name].replace("g.acc", "t.acc")
            value = value.replace("z1", f"({m1})").replace("z2", f"({m2})")
            metric_sql.append(f"CASE WHEN t.status = 'ok' THEN {value} END")
        metric_cols = "".join(f", {name}" for name in metrics)
        metric_values = "".join(", " + m for m in metric_sql)
        # One INSERT per chunk of i, each in its own transaction: the rows depend on i only,
        # and ids are taken in order of i, so the chunks give the same trials as one INSERT.
        for lo in range(0, trials - 2, chunk):
            hi = min(lo + chunk, trials - 2)
            with store.transaction():
                con.execute(
                    f"""
                    INSERT INTO trials (trial_id, run_id, config_id, experiment, engine, workload,
                        dataset, workers, threads_per_worker, memory_gb, batch_size, epochs,
                        data_fraction, params_id, repetition, warmup, seed, status, error,
                        started_at, wall_s, setup_s, load_s, train_s, infer_s{metric_cols})
                    WITH r AS (
                        SELECT i, (hash(i, $seed::BIGINT, 0) % $ncfg)::INTEGER AS c,
                            {z1} AS z1, {z2} AS z2,
                            {_uniform("i", 3)} AS u_status, {_uniform("i", 4)} AS u_warm
                        FROM range($lo, $hi) t(i)
                    ), x AS (
                        SELECT r.*, g.*,
                            CASE WHEN u_status < {FAILED_RATE} THEN 'failed'
                                 WHEN u_status < {FAILED_RATE + TIMEOUT_RATE} THEN 'timeout'
                                 ELSE 'ok' END AS status,
                            u_warm < {WARMUP_RATE} AS warmup,
                            (g.constant + g.base * g.data_fraction
                                * (g.serial + (1 - g.serial) / g.workers)
                                + g.overhead * (g.workers - 1)) * exp(g.noise * z1)
                                * CASE WHEN u_warm < {WARMUP_RATE} THEN 1.4 ELSE 1.0 END AS t,
                            0.05 * g.data_fraction * exp(0.1 * z2) AS inf
                        FROM r JOIN bench_cfg g USING (c)
                    ), y AS (
                        SELECT i, ($first + 1 + i)::BIGINT AS tid, config_id, engine, workload,
                            workers, data_fraction, params_id, warmup, status, acc,
                            CASE status WHEN 'ok' THEN t + inf + 0.02 * data_fraction + 0.01
                                        WHEN 'failed' THEN 0.5 * t ELSE 600.0 END AS wall_s,
                            setup AS setup_s, 0.02 * data_fraction AS load_s,
                            CASE WHEN status = 'ok' THEN t END AS train_s,
                            CASE WHEN status = 'ok' THEN inf END AS infer_s
                        FROM x
                    )
                    SELECT nextval('trial_id_seq'), $run, config_id, 'bench', engine, workload,
                        'digits', workers, 1, 1.0,
                        CASE WHEN workload = 'mlp' THEN 32 END,
                        CASE WHEN workload = 'mlp' THEN 30 END,
                        data_fraction, params_id, (i // $ncfg)::INTEGER, warmup, $seed::BIGINT,
                        status,
                        CASE status WHEN 'failed' THEN 'RuntimeError: synthetic failure'
                                    WHEN 'timeout' THEN 'timeout: trial exceeded 600 s' END,
                        TIMESTAMP '2026-01-01' + to_seconds(i * 3.0),
                        wall_s, setup_s, load_s, train_s, infer_s{metric_values}
                    FROM y t ORDER BY i
                    """,
                    {
                        "seed": seed,
                        "ncfg": len(cfgs),
                        "lo": lo,
                        "hi": hi,
                        "run": run_id,
                        "first": first,
                    },
                )
        off = con.execute(
            "SELECT count(*) FROM trials WHERE trial_id > $first AND trial_id != $first + 1 "
            "+ (epoch(started_at) - epoch(TIMESTAMP '2026-01-01')) / 3",
            {"first": first},
        ).fetchone()[0]
        if off:
            raise SystemExit(f"make-db: {off} trial ids out of row order; metrics would differ")
        store.finish_run(run_id)
        con.execute("CHECKPOINT")
        view = store.view_columns()
        n, ok, acc = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'ok'), count(accuracy) "
            "FROM observations"
        ).fetchone()
    finally:
        store.close()
    tmp.replace(path)
    print(
        f"{path}: {n:,} trials ({ok:,} ok), {acc:,} with accuracy, {len(cfgs)} configurations; "
        f"view columns: {', '.join(view)}; {path.stat().st_size / 2**20:.0f} MiB; "
        f"made in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )


# -- the naive way (runs in a child process) -------------------------------------------------------
LOAD_SQL = (
    "SELECT trial_id, engine, workload, dataset, workers, threads_per_worker, data_fraction, "
    "config_id, status, warmup, train_s, wall_s, accuracy FROM observations"
)
DEFAULT_BY = ["engine", "workload", "dataset", "workers", "threads_per_worker"]


def level_text(value: Any) -> str:
    """A group level as `analyze` writes it (``2`` for 2.0)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item"):
        return level_text(value.item())
    return str(value)


def _ok(df: Any) -> Any:
    """Ok, non-warm-up trials (the default selection of every analysis)."""
    return df[(df["status"] == "ok") & ~df["warmup"].fillna(False).astype(bool)]


def _where(df: Any, **eq: Any) -> Any:
    for col, value in eq.items():
        df = df[df[col] == value]
    return df


def _where_not(df: Any, **ne: Any) -> Any:
    for col, value in ne.items():
        df = df[df[col] != value]
    return df


def naive_summary(df: Any) -> dict[str, Any]:
    import numpy as np
    from scipy import stats

    base = df[~df["warmup"].fillna(False).astype(bool)]
    ok = base[base["status"] == "ok"]
    counts = base.groupby(DEFAULT_BY)["status"].value_counts().unstack(fill_value=0)
    rows: dict[str, dict[str, float]] = {}
    for key, grp in ok.groupby(DEFAULT_BY):
        row: dict[str, float] = {"n": float(len(grp))}
        for m in ("train_s", "wall_s"):
            x = grp[m].dropna().to_numpy()
            mean, sd = float(np.mean(x)), float(np.std(x, ddof=1))
            q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])
            fence = 1.5 * (q3 - q1)
            low, high = stats.t.interval(0.95, len(x) - 1, loc=mean, scale=sd / math.sqrt(len(x)))
            row |= {
                f"{m}_mean": mean,
                f"{m}_sd": sd,
                f"{m}_median": float(med),
                f"{m}_q1": float(q1),
                f"{m}_q3": float(q3),
                f"{m}_mad": float(stats.median_abs_deviation(x)),
                f"{m}_min": float(x.min()),
                f"{m}_max": float(x.max()),
                f"{m}_ci_low": float(low),
                f"{m}_ci_high": float(high),
                f"{m}_outliers": float(np.sum((x < q1 - fence) | (x > q3 + fence))),
            }
        row["accuracy_mean"] = float(grp["accuracy"].mean())
        for status in ("failed", "timeout"):
            row[status] = float(counts.loc[key].get(status, 0))
        rows["|".join(level_text(k) for k in key)] = row
    return {"rows": rows}


def _two(df: Any, group: str, a: str, b: str, metric: str = "train_s") -> tuple[Any, Any]:
    x = _ok(_where(df, workload="knn"))
    return (
        x.loc[x[group] == a, metric].dropna().to_numpy(),
        x.loc[x[group] == b, metric].dropna().to_numpy(),
    )


def naive_ttest(df: Any) -> dict[str, Any]:
    import numpy as np
    from scipy import stats
    from scipy.special import gammaln

    a, b = _two(df, "engine", "dask", "ray")
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    na, nb = len(a), len(b)
    pooled = ((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2)
    diff = float(np.mean(a) - np.mean(b))
    df_pooled = na + nb - 2
    correction = math.exp(  # Hedges' exact small-sample correction J(df)
        gammaln(df_pooled / 2) - math.log(math.sqrt(df_pooled / 2)) - gammaln((df_pooled - 1) / 2)
    )
    return {
        "n_a": na,
        "n_b": nb,
        "mean_a": float(np.mean(a)),
        "mean_b": float(np.mean(b)),
        "sd_a": float(np.std(a, ddof=1)),
        "sd_b": float(np.std(b, ddof=1)),
        "statistic": float(res.statistic),
        "df": float(res.df),
        "p_value": float(res.pvalue),
        "mean_diff": diff,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "cohens_d": diff / math.sqrt(pooled),
        "hedges_g": correction * diff / math.sqrt(pooled),
    }


def naive_mwu(df: Any) -> dict[str, Any]:
    import numpy as np
    from scipy import stats

    a, b = _two(df, "engine", "dask", "ray")
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    u = float(res.statistic)  # U of a
    return {
        "u": u,
        "p": float(res.pvalue),
        "median_a": float(np.median(a)),
        "median_b": float(np.median(b)),
        "rank_biserial": 2 * u / (len(a) * len(b)) - 1,
        "cles": u / (len(a) * len(b)),
    }


def _anova_groups(df: Any) -> tuple[list[str], list[Any]]:
    x = _ok(_where(df, workload="knn")).dropna(subset=["train_s"])
    levels, arrays = [], []
    for level, grp in x.groupby("workers"):
        levels.append(level_text(level))
        arrays.append(grp["train_s"].to_numpy())
    return levels, arrays


def naive_anova(df: Any) -> dict[str, Any]:
    import numpy as np
    from scipy import stats

    levels, arrays = _anova_groups(df)
    res = stats.f_oneway(*arrays)
    k, n = len(arrays), sum(len(a) for a in arrays)
    grand = np.concatenate(arrays).mean()
    ss_between = sum(len(a) * (a.mean() - grand) ** 2 for a in arrays)
    ss_within = sum(((a - a.mean()) ** 2).sum() for a in arrays)
    out: dict[str, Any] = {
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "df_num": float(k - 1),
        "df_den": float(n - k),
        "eta_sq": float(ss_between / (ss_between + ss_within)),
        "n": n,
        "groups": {
            lv: {"n": len(a), "mean": float(a.mean()), "sd": float(a.std(ddof=1))}
            for lv, a in zip(levels, arrays, strict=True)
        },
    }
    kw = stats.kruskal(*arrays)
    out["kruskal"] = {"statistic": float(kw.statistic), "p_value": float(kw.pvalue)}
    try:
        welch = stats.f_oneway(*arrays, equal_var=False)  # scipy >= 1.15
        out["welch"] = {"statistic": float(welch.statistic), "p_value": float(welch.pvalue)}
    except TypeError:
        pass
    return out


def naive_tukey(df: Any) -> dict[str, Any]:
    from scipy import stats

    levels, arrays = _anova_groups(df)
    res = stats.tukey_hsd(*arrays)
    ci = res.confidence_interval(0.95)
    pairs = {}
    for i in range(len(levels)):
        for j in range(i + 1, len(levels)):
            pairs[f"{levels[i]}-{levels[j]}"] = {
                "diff": float(res.statistic[i, j]),
                "p": float(res.pvalue[i, j]),
                "ci_low": float(ci.low[i, j]),
                "ci_high": float(ci.high[i, j]),
            }
    return {"pairs": pairs}


def naive_twoway(df: Any) -> dict[str, Any]:
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    x = _where_not(_ok(_where(df, workload="knn")), engine="local").dropna(subset=["train_s"])
    model = ols("train_s ~ C(engine) * C(workers)", data=x).fit()
    table = sm.stats.anova_lm(model, typ=2)
    terms = {}
    for term, row in table.iterrows():
        if term == "Residual":
            continue
        terms[str(term)] = {
            "sum_sq": float(row["sum_sq"]),
            "df": float(row["df"]),
            "F": float(row["F"]),
            "p": float(row["PR(>F)"]),
        }
    return {"terms": terms, "n": int(model.nobs)}


def naive_regress(df: Any) -> dict[str, Any]:
    import statsmodels.api as sm
    from scipy import stats
    from statsmodels.stats.diagnostic import het_breuschpagan
    from statsmodels.stats.stattools import durbin_watson, jarque_bera

    x = _ok(_where(df, workload="knn", engine="dask"))
    x = x.dropna(subset=["train_s", "workers", "data_fraction"])
    x = x.sort_values("trial_id")
    y = x["train_s"].astype(float)
    design = sm.add_constant(x[["workers", "data_fraction"]].astype(float))
    fit = sm.OLS(y, design).fit()
    ci = fit.conf_int(0.05)
    jb, jb_p, skew, kurtosis = jarque_bera(fit.resid)
    bp, bp_p, _, _ = het_breuschpagan(fit.resid, design)
    corr = {}
    for col in ("workers", "data_fraction"):
        pr = stats.pearsonr(x[col], y)
        sr = stats.spearmanr(x[col], y)
        corr[col] = {
            "pearson_r": float(pr.statistic),
            "pearson_p": float(pr.pvalue),
            "spearman_rho": float(sr.statistic),
            "spearman_p": float(sr.pvalue),
        }
    return {
        "n": int(fit.nobs),
        "coefficients": {
            ("intercept" if term == "const" else term): {
                "estimate": float(fit.params[term]),
                "std_err": float(fit.bse[term]),
                "statistic": float(fit.tvalues[term]),
                "p_value": float(fit.pvalues[term]),
                "ci_low": float(ci.loc[term, 0]),
                "ci_high": float(ci.loc[term, 1]),
            }
            for term in fit.params.index
        },
        "fit": {
            "r_squared": float(fit.rsquared),
            "adj_r_squared": float(fit.rsquared_adj),
            "f_statistic": float(fit.fvalue),
            "f_p_value": float(fit.f_pvalue),
            "log_likelihood": float(fit.llf),
            "aic": float(fit.aic),
            "bic": float(fit.bic),
            "durbin_watson": float(durbin_watson(fit.resid)),
            "jarque_bera": float(jb),
            "jarque_bera_p": float(jb_p),
            "skew": float(skew),
            "kurtosis": float(kurtosis),
            "breusch_pagan": float(bp),
            "breusch_pagan_p": float(bp_p),
        },
        "correlations": corr,
    }


def naive_scaling(df: Any) -> dict[str, Any]:
    """Per (engine, workload): the per-level table, and Amdahl / USL / Ernest fitted by
    non-negative least squares on every trial (no bootstrap)."""
    import numpy as np
    from scipy.optimize import nnls

    x = _where_not(_where(_ok(df), data_fraction=1.0), engine="local")
    x = x.dropna(subset=["train_s", "workers"])
    groups = {}
    for key, grp in x.groupby(["engine", "workload"]):
        t = grp["train_s"].to_numpy(dtype=float)
        m = grp["workers"].to_numpy(dtype=float)
        size = grp["data_fraction"].fillna(1.0).to_numpy(dtype=float)
        lv = grp.groupby("workers")["train_s"].agg(["count", "median", "mean", "std"])
        m0, t0 = float(lv.index[0]), float(lv["median"].iloc[0])
        levels, prev = {}, None
        for workers, row in lv.iterrows():
            speedup, p = t0 / row["median"], float(workers) / m0
            levels[level_text(workers)] = {
                "n": float(row["count"]),
                "median": float(row["median"]),
                "mean": float(row["mean"]),
                "sd": float(row["std"]),
                "speedup": float(speedup),
                "efficiency": float(speedup / p),
                "change_pct": None if prev is None else 100 * (row["median"] - prev) / prev,
                "karp_flatt": None if p == 1 else float((1 / speedup - 1 / p) / (1 - 1 / p)),
            }
            prev = row["median"]
        tss = float(np.sum((t - t.mean()) ** 2))
        designs = {
            "amdahl": np.column_stack([np.ones_like(m), 1 / m]),
            "usl": np.column_stack([1 / m, (m - 1) / m, m - 1]),
            "ernest": np.column_stack([np.ones_like(m), size / m, np.log(m), m]),
        }
        fits = {}
        for name, design in designs.items():
            coef, _ = nnls(design, t)
            rss = float(np.sum((t - design @ coef) ** 2))
            if name == "amdahl":
                t1 = coef[0] + coef[1]
                params = {"t1": t1, "serial_fraction": coef[0] / t1}
            elif name == "usl":
                params = {"t1": coef[0], "sigma": coef[1] / coef[0], "kappa": coef[2] / coef[0]}
            else:
                params = {f"theta{i}": c for i, c in enumerate(coef)}
            n = len(t)
            fits[name] = {
                "params": {k: float(v) for k, v in params.items()},
                "r_squared": 1 - rss / tss,
                "aic": n * (math.log(2 * math.pi * rss / n) + 1) + 2 * design.shape[1],
            }
        groups["|".join(level_text(k) for k in key)] = {"levels": levels, "fits": fits}
    return {"groups": groups}


def naive_power(df: Any) -> dict[str, Any]:
    import numpy as np
    from scipy.optimize import brentq
    from statsmodels.stats.power import TTestIndPower

    a, b = _two(df, "engine", "dask", "ray")
    na, nb = len(a), len(b)
    sd = math.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    mean_b = float(np.mean(b))
    d = 0.1 * abs(mean_b) / sd
    analysis = TTestIndPower()
    # solve_power returns a 0-d or 1-element array depending on the unknown
    n_needed = np.ravel(analysis.solve_power(effect_size=d, alpha=0.05, power=0.8, ratio=1.0))[0]
    d_min = np.ravel(analysis.solve_power(nobs1=na, ratio=nb / na, alpha=0.05, power=0.8))[0]
    # solve_power stops early (power 0.79983 here, 2e-4 off in d): polish its root
    d_min = brentq(
        lambda e: np.ravel(analysis.power(e, nobs1=na, alpha=0.05, ratio=nb / na))[0] - 0.8,
        d_min / 2,
        d_min * 2,
        xtol=1e-15,
    )
    return {
        "n_a": na,
        "n_b": nb,
        "sd_pooled": sd,
        "cohens_d": d,
        "n_per_group": math.ceil(float(n_needed)),
        "achieved_power": float(
            np.ravel(analysis.power(d, nobs1=na, alpha=0.05, ratio=nb / na))[0]
        ),
        "mde": float(d_min) * sd,
        "mde_relative": float(d_min) * sd / abs(mean_b),
        "observed_relative": float((np.mean(a) - mean_b) / abs(mean_b)),
    }


def _pareto(points: list[tuple[float, float]]) -> list[bool]:
    return [
        not any(
            t2 <= t and c2 <= c and (t2 < t or c2 < c)
            for j, (t2, c2) in enumerate(points)
            if j != i
        )
        for i, (t, c) in enumerate(points)
    ]


def naive_cost(df: Any) -> dict[str, Any]:
    ok = _where(_ok(df), data_fraction=1.0).dropna(subset=["train_s"])
    med = ok.groupby(DEFAULT_BY)["train_s"].agg(["count", "median"]).reset_index()
    med["usd_per_hour"] = med["workers"] * med["threads_per_worker"] * 0.05
    med["cost"] = med["median"] * med["usd_per_hour"] / 3600
    med["pareto"] = _pareto(list(zip(med["median"], med["cost"], strict=True)))
    rows = {}
    for _, r in med.iterrows():
        key = "|".join(level_text(r[k]) for k in DEFAULT_BY)
        rows[key] = {
            "n": float(r["count"]),
            "median_s": float(r["median"]),
            "usd_per_hour": float(r["usd_per_hour"]),
            "median_cost_usd": float(r["cost"]),
            "pareto": bool(r["pareto"]),
        }
    # the cheapest configuration of each task (here: each workload), as trialkit holds it fixed
    cheapest = {}
    for workload, part in med.groupby("workload"):
        best = part.sort_values(["cost", "median"]).iloc[0]
        cheapest[str(workload)] = {
            k: level_text(best[k]) for k in ("engine", "workers", "threads_per_worker")
        }
    return {"rows": rows, "cheapest": cheapest}


def naive_cost_metric(df: Any) -> dict[str, Any]:
    keys = ["workload", "dataset", "engine", "config_id", "workers", "threads_per_worker"]
    ok = _where(_ok(df), data_fraction=1.0).dropna(subset=["train_s"])
    med = ok.groupby(keys)["train_s"].median().reset_index()
    med["cores"] = med["workers"] * med["threads_per_worker"]
    rows = {}
    for (workload, dataset), task in med.groupby(["workload", "dataset"]):
        single = task[task["cores"] == 1]
        baseline = single.loc[single["train_s"].idxmin()]
        for engine, mine in task.groupby("engine"):
            beating = mine[mine["train_s"] < baseline["train_s"]].sort_values(["cores", "train_s"])
            first = None if beating.empty else beating.iloc[0]
            rows[f"{workload}|{dataset}|{engine}"] = {
                "baseline_s": float(baseline["train_s"]),
                "cost_cores": None if first is None else int(first["cores"]),
                "median_s": None if first is None else float(first["train_s"]),
                "max_cores": int(mine["cores"].max()),
            }
    return {"rows": rows}


NAIVE: dict[str, Callable[[Any], dict[str, Any]]] = {
    "summary": naive_summary,
    "ttest": naive_ttest,
    "mwu": naive_mwu,
    "anova": naive_anova,
    "tukey": naive_tukey,
    "twoway": naive_twoway,
    "regress": naive_regress,
    "scaling": naive_scaling,
    "power": naive_power,
    "cost": naive_cost,
    "cost_metric": naive_cost_metric,
}


def naive_main(path: Path, name: str) -> None:
    """Load every row of the observations view into pandas, run one analysis, print JSON."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    df = con.execute(LOAD_SQL).df()
    con.close()
    print(json.dumps(NAIVE[name](df), default=float))


# -- comparing ------------------------------------------------------------------------------------
MISSING = object()


@dataclass
class Check:
    label: str
    trialkit: Any
    naive: Any
    ok: bool | None  # None: not in trialkit's output (nothing to compare)


def close(a: Any, b: Any, *, rel: float = 1e-6, abs_: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def get(obj: Any, path: str) -> Any:
    """``a.b.0.c`` into nested dicts and lists; MISSING when absent."""
    for part in path.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return MISSING
    return obj


def numbers(obj: Any) -> Iterator[float]:
    if isinstance(obj, bool):
        return
    if isinstance(obj, int | float):
        yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from numbers(v)


def subtrees(obj: Any, pattern: str) -> list[Any]:
    """Parts of ``obj`` about ``pattern``: values under matching keys, and dicts that hold a
    matching string value (``{"test": "kruskal", ...}``)."""
    rx = re.compile(pattern, re.IGNORECASE)
    found: list[Any] = []

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            if any(isinstance(v, str) and rx.search(v) for v in o.values()):
                found.append(o)
            for k, v in o.items():
                if rx.search(str(k)):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    return found


#: Checks trialkit runs on large selections only when asked (``regress --rank-checks``): a None
#: from trialkit there is "not run", not a mismatch.
OPT_IN_CHECKS = ("spearman", "durbin_watson")


class Checker:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def key(self, label: str, tk: Any, naive: Any, **tol: float) -> None:
        """Compare a value read from a known place of trialkit's JSON."""
        if tk is MISSING:
            self.checks.append(Check(label, None, naive, None))
        elif tk is None and any(word in label for word in OPT_IN_CHECKS):
            # above RANK_CHECKS_MAX trialkit runs these only with --rank-checks, and says so
            self.checks.append(Check(label, "not run (opt-in)", naive, None))
        else:
            self.checks.append(Check(label, tk, naive, close(tk, naive, **tol)))

    def search(self, label: str, pool: list[Any], naive: Any, *, sign: bool = True) -> None:
        """The naive value must appear somewhere in ``pool`` (parts of trialkit's JSON); when the
        pool is empty the feature is not in the output and nothing is compared."""
        if not pool:
            self.checks.append(Check(label, None, naive, None))
            return
        values = [v for part in pool for v in numbers(part)]
        want = float(naive) if sign else abs(float(naive))
        hit = next((v for v in values if close(v if sign else abs(v), want, rel=1e-5)), None)
        self.checks.append(
            Check(label, hit if hit is not None else "absent", naive, hit is not None)
        )


def _rows_by(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {"|".join(level_text(r.get(k)) for k in keys): r for r in rows}


def compare_summary(tk: dict[str, Any], nv: dict[str, Any], c: Checker) -> None:
    by = tk.get("by", DEFAULT_BY)
    rows = _rows_by(tk.get("rows", []), by)
    c.key("groups", len(rows), len(nv["rows"]))
    for key, want in nv["rows"].items():
        got = rows.get(key, {})
        for stat, value in want.items():
            c.key(f"{key} {stat}", got.get(stat, MISSING), value)


def compare_fields(tk: dict[str, Any], nv: dict[str, Any], c: Checker) -> None:
    for name, value in nv.items():
        c.key(name, get(tk, name), value)


def compare_mwu(tk: dict[str, Any], nv: dict[str, Any], c: Checker) -> None:
    if tk.get("test") == "mwu":  # the layout of `analyze ttest --test mwu` today
        c.key("U", get(tk, "statistic"), nv["u"])
        c.key("p_value", get(tk, "p_value"), nv["p"])
        for name in ("median_a", "median_b", "rank_biserial", "cles"):
            c.key(name, get(tk, name), nv[name])
        return
    pool = [tk]
    c.search("U (a vs b; or its mirror n_a n_b - U)", pool, nv["u"])
    if c.checks[-1].ok is False:
        c.checks.pop()
        mirror = get(tk, "n_a") * get(tk, "n_b") - nv["u"] if "n_a" in tk else nv["u"]
        c.search("U (mirror n_a n_b - U)", pool, mirror)
    c.search("p (Mann-Whitney)", subtrees(tk, r"p_value|p$|^p_"), nv["p"])


def compare_anova(tk: dict[str, Any], nv: dict[str, Any], c: Checker) -> None:
    for name in ("statistic", "p_value", "df_num", "df_den", "eta_sq", "n"):
        value = get(tk, name)
        if value is MISSING:  # a newer layout may nest the classic F test
            pool = subtrees(tk, r"^(classic|fisher|f_test|oneway)$")
            value = get(pool[0], name) if pool else MISSING
        c.key(name, value, nv[name])
    groups = {g.get("level"): g for g in tk.get("groups", []) if isinstance(g, dict)}
    for level, want in nv["groups"].items():
        for stat, value in want.items():
            c.key(f"workers={level} {stat}", get(groups.get(level, {}), stat), value)
    for test in ("kruskal", "welch"):
        if test not in nv:
            continue
        for stat, value in nv[test].items():
            flat = get(tk, f"{test}_{stat}")  # the layout of `analyze anova` today
            if flat is not MISSING:
                c.key(f"{test} {stat}", flat, value)
            elif stat == "statistic":
                c.search(f"{test} {stat}", subtrees(tk, test), value)


def compare_tukey(tk: dict[str, Any], nv: dict[str, Any], c: Checker) -> None:
    pairs = get(tk, "posthoc.pairs")
    if isinstance(pairs, list) and pairs and isinstance(pairs[0], dict) and "a" in pairs[0]:
        by_pair = {f"{p['a']}-{p['b']}": p for p in pairs}
        for pair, want in nv["pairs"].items():
            got = by_pair.get(pair, {})
            c.key(f"{pair} mean_diff", got.get("mean_diff", MISSING), want["diff"])
            c.key(f"{pair} ci_low", got.get("ci_low", MISSING), want["ci_low"], rel=1e-4)
            c.key(f"{pair} ci_high", got.get("ci_high", MISSING), want["ci_high"], rel=1e-4)
            # p-values of the studentized range are accurate to about 1e-11 in both
            c.key(f"{pair} p_value", got.get("p_value", MISSING), want["p"], abs_=1e-9, rel=1e-4)
        return
    pool = subtrees(tk, r"posthoc|tukey|pairwise|comparisons|pairs")
    if not pool:
        c.checks.append(Check("post-hoc pairs", None, len(nv["pairs"]), None))
        return
    for pair, want in nv["pairs"].items():
        c.search(f"{pair} mean diff", pool, want["diff"], sign=False)
        c.search(f"{pair} CI end", pool, want["ci_high"], sign=False)


def _term_key(term: str) -> str:
    """``C(engine):C(workers)`` (statsmodels) -> ``engine:workers``."""
    return re.sub(r"C\(([^)]*)\)", r"\1", term)


def compare_twoway(tk: dict[str, Any], nv: dict[str, Any], c: Checker) -> None:
    terms = get(tk, "terms")
    if isinstance(terms, list) and terms and isinstance(terms[0], dict) and "term" in terms[0]:
        by_term = {t["term"]: t for t in terms}
        c.key("n", get(tk, "n"), nv["n"])
        for term, want in nv["terms"].items():
            got = by_term.get(_term_key(term), {})
            c.key(f"{_term_key(term)} sum_sq", got.get("sum_sq", MISSING), want["sum_sq"])
            c.key(f"{_term_key(term)} df", got.get("df", MISSING), want["df"])
            c.key(f"{_term_key(term)} F", got.get("statistic", MISSING), want["F"])
            c.key(f"{_term_key(term)} p", got.get("p_value", MISSING), want["p"], rel=1e-4)
        return
    for term, want in nv["terms"].items():
        c.search(f"{term} F", [tk], want["F"])
        c.search(f"{term} sum_sq", [tk], want["sum_sq"])


def compare_regress(tk: dict[str, Any], nv: dict[str, Any], c: Checker) -> None:
    fit = get(tk, "fits.0")
    if fit is MISSING:
        c.checks.append(Check("fits", None, 1, False))
        return
    c.key("n", fit.get("n", MISSING), nv["n"])
    coefs = {co["term"]: co for co in fit.get("coefficients", [])}
    for term, want in nv["coefficients"].items():
        for stat, value in want.items():
            c.key(f"{term} {stat}", coefs.get(term, {}).get(stat, MISSING), value)
    for stat, value in nv["fit"].items():
        c.key(stat, fit.get(stat, MISSING), value, rel=1e-5)
    corrs = {co["x"]: co for co in fit.get("correlations", [])}
    for x, want in nv["correlations"].items():
        for stat, value in want.items():
            c.key(f"{x} {stat}", corrs.get(x, {}).get(stat, MISSING), value)


def compare_scaling(tk: dict[str, Any], nv: dict[str, Any], c: Checker) -> None:
    by = tk.get("by", ["engine", "workload"])
    groups = {"|".join(level_text(g["level"].get(b)) for b in by): g for g in tk.get("groups", [])}
    c.key("groups", len(groups), len(nv["groups"]))
    for key, want in nv["groups"].items():
        got = groups.get(key, {})
        levels = {level_text(lv.get("x")): lv for lv in got.get("levels", [])}
        for x, stats_ in want["levels"].items():
            for stat, value in stats_.items():
                c.key(f"{key} x={x} {stat}", levels.get(x, {}).get(stat, MISSING), value)
        fits = {f["model"]: f for f in got.get("fits", [])}
        for model, fw in want["fits"].items():
            f = fits.get(model)
            if f is None:
                c.key(f"{key} {model}", MISSING, "fitted")
                continue
            params = {p["name"]: p["estimate"] for p in f.get("params", [])}
            for name, value in fw["params"].items():
                c.key(f"{key} {model} {name}", params.get(name, MISSING), value, rel=1e-4)
            c.key(f"{key} {model} r_squared", f.get("r_squared", MISSING), fw["r_squared"])
            c.key(f"{key} {model} aic", f.get("aic", MISSING), fw["aic"], rel=1e-5)


def compare_cost(tk: dict[str, Any], nv: dict[str, Any], c: Checker) -> None:
    by = tk.get("by", DEFAULT_BY)
    rows = {"|".join(str(r["level"].get(k)) for k in by): r for r in tk.get("rows", [])}
    c.key("groups", len(rows), len(nv["rows"]))
    for key, want in nv["rows"].items():
        for stat, value in want.items():
            c.key(f"{key} {stat}", rows.get(key, {}).get(stat, MISSING), value)
    per_task = {}
    for entry in tk.get("cheapest_per_stratum") or []:
        label = dict(p.split("=", 1) for p in str(entry.get("cheapest") or "").split(", ") if p)
        per_task[str(entry.get("stratum", "")).removeprefix("workload=")] = label
    for workload, want in nv["cheapest"].items():
        got = per_task.get(workload, {})
        for k, v in want.items():
            c.key(f"cheapest {workload} {k}", got.get(k, MISSING), v)


def compare_cost_metric(tk: dict[str, Any], nv: dict[str, Any], c: Checker) -> None:
    rows = {f"{r['workload']}|{r['dataset']}|{r['engine']}": r for r in tk.get("rows", [])}
    c.key("rows", len(rows), len(nv["rows"]))
    for key, want in nv["rows"].items():
        for stat, value in want.items():
            c.key(f"{key} {stat}", rows.get(key, {}).get(stat, MISSING), value)


COMPARE: dict[str, Callable[[dict[str, Any], dict[str, Any], Checker], None]] = {
    "summary": compare_summary,
    "ttest": compare_fields,
    "mwu": compare_mwu,
    "anova": compare_anova,
    "tukey": compare_tukey,
    "twoway": compare_twoway,
    "regress": compare_regress,
    "scaling": compare_scaling,
    "power": compare_fields,
    "cost": compare_cost,
    "cost_metric": compare_cost_metric,
}


# -- the CLI's options, from --help ----------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    name: str
    type: str  # as --help shows it: "str", "list[str]", "tukey|games-howell|pairwise", ...

    @property
    def choices(self) -> list[str]:
        return self.type.split("|") if "|" in self.type and "[" not in self.type else []

    @property
    def repeatable(self) -> bool:
        return self.type.startswith("list[")


_OPTION_RE = re.compile(r"^[\s│|*]*((?:--[a-z][a-z0-9-]*)(?:,\s*--[a-z][a-z0-9-]*)*)\s*(.*)$")


def parse_help(text: str) -> dict[str, Option]:
    """Options listed by a typer/click ``--help`` (rich boxes or plain)."""
    out: dict[str, Option] = {}
    for line in text.splitlines():
        match = _OPTION_RE.match(line)
        if not match:
            continue
        names, rest = match.groups()
        kind = re.match(r"<([^>]*)>|\[([^\]]*)\]|([A-Z][A-Z_]*)\b", rest.strip())
        typ = next((g for g in kind.groups() if g), "") if kind else ""
        for name in re.split(r",\s*", names):
            out[name] = Option(name, typ)
    return out


def help_text(analyze: str, *args: str) -> str:
    env = os.environ | {"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run([analyze, *args, "--help"], capture_output=True, text=True, env=env)
    return proc.stdout + proc.stderr


# -- measuring ------------------------------------------------------------------------------------
@dataclass
class Measure:
    wall_s: float
    cpu_s: float  # user + system of the child
    peak_rss_mb: float
    exit_code: int
    stdout: str
    stderr: str


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None) -> Measure:
    """Run ``argv`` (``env`` added to this environment); its wall time, and the child's CPU time
    and peak RSS (``ru_maxrss``) from ``wait4``.

    The child is started by GNU time when there is one, which reports the child's own CPU and
    peak RSS: Linux counts in a child's ``ru_maxrss`` the resident size of the process it was
    forked from (at exec the old image's high-water mark is kept), so a child forked from this
    process, which holds the database open (1.1 GB at 100M trials), reported at least that."""
    shim = shutil.which("time", path="/usr/bin")
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as got,
    ):
        cmd = [shim, "-f", "%U %S %M", "-o", got.name, *argv] if shim else list(argv)
        start = time.perf_counter_ns()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=os.environ | env if env else None)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = (time.perf_counter_ns() - start) / 1e9
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux
        fields = got.read().split()[-3:] if shim else []
        if len(fields) == 3:  # GNU time: user s, system s, max RSS KiB of the child alone
            cpu, rss = float(fields[0]) + float(fields[1]), int(fields[2]) / 1024
        out.seek(0)
        err.seek(0)
        return Measure(
            wall_s=wall,
            cpu_s=cpu,
            peak_rss_mb=rss,
            exit_code=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


@dataclass
class Case:
    name: str  # the table's row label
    argv: tuple[str, ...]  # analyze's arguments (without --db / --format)
    naive: str | None  # key of NAIVE and COMPARE
    floor: str | None = None  # key of bench/floor.py's FLOOR_SQL (default: naive)

    @property
    def floor_key(self) -> str | None:
        return self.floor or self.naive


@dataclass
class Result:
    case: Case
    tk: list[Measure] = field(default_factory=list)
    nv: list[Measure] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after
    floor_cpu_s: float = math.nan  # bench/floor.py: the one GROUP BY, in-process CPU s
    stratified: int = 0  # strata of trialkit's answer when it split what pandas pooled

    @staticmethod
    def median(ms: list[Measure]) -> float:
        return statistics.median(m.wall_s for m in ms) if ms else math.nan

    @staticmethod
    def cpu(ms: list[Measure]) -> float:
        return statistics.median(m.cpu_s for m in ms) if ms else math.nan

    @staticmethod
    def peak(ms: list[Measure]) -> float:
        return max((m.peak_rss_mb for m in ms), default=math.nan)

    @property
    def tk_failed(self) -> Measure | None:
        return next((m for m in self.tk if m.exit_code != 0), None)

    @property
    def nv_failed(self) -> Measure | None:
        return next((m for m in self.nv if m.exit_code != 0), None)


def build_cases(analyze: str) -> tuple[list[Case], list[str]]:
    """The cases the installed CLI supports, and notes on those it does not (yet)."""
    top = help_text(analyze)
    commands = set(re.findall(r"^[\s│]*([a-z][a-z-]+)\s{2,}", top, re.MULTILINE))
    helps = {cmd: parse_help(help_text(analyze, cmd)) for cmd in commands}
    cases: list[Case] = []
    notes: list[str] = []

    def has(cmd: str, *options: str) -> bool:
        return cmd in helps and all(o in helps[cmd] for o in options)

    def add(
        name: str,
        argv: list[str],
        naive: str | None,
        *,
        requires: Sequence[str] = (),
        floor: str | None = None,
    ) -> None:
        cmd = argv[0]
        if cmd not in helps:
            notes.append(f"`analyze {cmd}` is not a command of the installed CLI: {name} skipped")
        elif not has(cmd, *requires):
            missing = [o for o in requires if o not in helps[cmd]]
            notes.append(
                f"`analyze {cmd} --help` does not list {', '.join(missing)}: {name} skipped"
            )
        else:
            cases.append(Case(name, tuple(argv), naive, floor))

    knn = ["--where", "workload=knn"]
    # scaling and cost hold the task (data_fraction among it) fixed: one fraction, so the
    # pandas version (per engine and workload) answers the same question
    whole = ["--where", "data_fraction=1"]
    pair = ["--group", "engine", "--a", "dask", "--b", "ray", *knn]
    add("summary", ["summary"], "summary")
    add("ttest (Welch)", ["ttest", *pair], "ttest")
    if "mwu" in (helps.get("ttest", {}).get("--test") or Option("", "")).choices:
        add("ttest --test mwu", ["ttest", *pair, "--test", "mwu"], "mwu")
    else:
        notes.append("`analyze ttest --help` lists no `--test mwu`: the Mann-Whitney case skipped")
    add("anova --group workers", ["anova", "--group", "workers", *knn], "anova")
    posthoc = helps.get("anova", {}).get("--posthoc")
    if posthoc and "tukey" in posthoc.choices:
        add(
            "anova --posthoc tukey",
            ["anova", "--group", "workers", "--posthoc", "tukey", *knn],
            "tukey",
        )
    else:
        notes.append("`analyze anova --help` lists no `--posthoc tukey`: that case skipped")
    group = helps.get("anova", {}).get("--group")
    if group and (group.repeatable or "twice" in help_text(analyze, "anova")):
        add(
            "anova --group engine --group workers",
            ["anova", "--group", "engine", "--group", "workers", *knn, "--where", "engine!=local"],
            "twoway",
        )
    else:
        notes.append("`analyze anova --group` is not repeatable: the two-way case skipped")
    add(
        "regress --x workers --x data_fraction",
        ["regress", "--x", "workers", "--x", "data_fraction", *knn, "--where", "engine=dask"],
        "regress",
    )
    add(
        "scaling --by engine,workload",
        ["scaling", "--by", "engine,workload", "--where", "engine!=local", *whole],
        "scaling",
        requires=["--by"],
    )
    add("power", ["power", *pair], "power")
    add(
        "cost --usd-per-core-hour 0.05",
        ["cost", "--usd-per-core-hour", "0.05", *whole],
        "cost",
        requires=["--usd-per-core-hour"],
    )
    add("cost-metric", ["cost-metric", *whole], "cost_metric")
    add(
        "compare",
        ["compare", "--base", "engine=dask", "--new", "engine=ray", *knn],
        None,
        floor="compare",
    )
    return cases, notes


def run_case(
    case: Case,
    *,
    db: Path,
    analyze: str,
    repeat: int,
    log: Callable[[str], None],
    env: dict[str, str] | None = None,
    naive: bool = True,
    floor: bool = True,
) -> Result:
    res = Result(case, load=(os.getloadavg()[0], 0.0))
    tk_argv = [analyze, *case.argv, "--db", str(db), "--format", "json"]
    for _ in range(repeat):
        res.tk.append(measure(tk_argv, env=env))
        if res.tk[-1].exit_code != 0:
            break
    if floor and case.floor_key is not None and not res.tk_failed:
        script = str(Path(__file__).resolve().parent / "floor.py")
        got = measure([sys.executable, script, str(db), case.floor_key, "--repeat", str(repeat)])
        if got.exit_code == 0:
            res.floor_cpu_s = float(json.loads(got.stdout)["cpu_s"])
    if naive and case.naive is not None:
        nv_argv = [sys.executable, str(Path(__file__).resolve()), "naive", str(db), case.naive]
        for _ in range(repeat):
            res.nv.append(measure(nv_argv, env=env))
            if res.nv[-1].exit_code != 0:
                break
    res.load = (res.load[0], os.getloadavg()[0])
    if res.nv and not res.tk_failed and not res.nv_failed:
        checker = Checker()
        try:
            tk = json.loads(res.tk[-1].stdout)
            nv = json.loads(res.nv[-1].stdout)
            strata = tk.get("strata") if isinstance(tk, dict) and "split" in tk else None
            if strata is not None and len(strata) == 1:
                tk = strata[0]["result"]  # one stratum: nothing else varies
            if strata is not None and len(strata) > 1:
                res.stratified = len(strata)  # pandas did one pooled analysis: timing only
            else:
                COMPARE[case.naive](tk, nv, checker)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            checker.checks.append(Check(f"comparison raised {exc!r}", None, None, False))
        res.checks = checker.checks
    log(
        f"{case.name}: trialkit {Result.median(res.tk):.2f} s {Result.peak(res.tk):.0f} MB; "
        f"naive {Result.median(res.nv):.2f} s {Result.peak(res.nv):.0f} MB"
    )
    return res


SLOW_S = 5.0
BIG_MB = 1024.0


def agree_text(res: Result) -> str:
    if res.tk_failed:
        return "-"
    if res.case.naive is None:
        return "n/a"
    if res.stratified:
        return f"timing only ({res.stratified} strata held fixed; pandas pooled them)"
    if res.nv_failed:
        return "naive failed"
    done = [c for c in res.checks if c.ok is not None]
    bad = [c for c in done if not c.ok]
    absent = len(res.checks) - len(done)
    text = f"**NO** ({len(bad)} of {len(done)} differ)" if bad else f"yes ({len(done)}/{len(done)})"
    if not done:
        text = "nothing to compare"
    return text + (f", {absent} not in output" if absent else "")


def markdown(results: list[Result], *, header: list[str], notes: list[str]) -> str:
    lines = [*header, ""]
    lines.append(
        "| subcommand | trialkit median s | trialkit peak RSS MB | pandas+scipy median s | "
        "pandas+scipy peak RSS MB | ratio | agree? | CPU s (trialkit / pandas) | "
        "CPU ratio (pandas / trialkit) | floor CPU s | trialkit CPU / floor | load 1-min |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    flags: list[str] = []
    for r in results:
        tk_s, tk_mb = Result.median(r.tk), Result.peak(r.tk)
        nv_s, nv_mb = Result.median(r.nv), Result.peak(r.nv)
        if r.tk_failed:
            err = (r.tk_failed.stderr.strip().splitlines() or ["(no stderr)"])[-1][:160]
            tk_cell = f"FAILED (exit {r.tk_failed.exit_code})"
            flags.append(f"`analyze {' '.join(r.case.argv)}` failed: {err}")
            ratio = "-"
        else:
            tk_cell = f"{tk_s:.2f}"
            ratio = f"{nv_s / tk_s:.1f}x" if r.nv and not r.nv_failed else "-"
            if tk_s > SLOW_S:
                flags.append(f"{r.case.name}: {tk_s:.1f} s is over {SLOW_S:g} s")
            if tk_mb > BIG_MB:
                flags.append(f"{r.case.name}: peak RSS {tk_mb:.0f} MB is over {BIG_MB:g} MB")
        if r.nv_failed:
            err = (r.nv_failed.stderr.strip().splitlines() or ["(no stderr)"])[-1][:160]
            nv_cell, nv_mb_cell = f"FAILED (exit {r.nv_failed.exit_code})", "-"
            flags.append(f"naive {r.case.name} failed: {err}")
        else:
            nv_cell = f"{nv_s:.2f}" if r.nv else "-"
            nv_mb_cell = f"{nv_mb:.0f}" if r.nv else "-"
        tk_cpu, nv_cpu = Result.cpu(r.tk), Result.cpu(r.nv)
        cpu_ratio = f"{nv_cpu / tk_cpu:.1f}x" if r.nv and not r.nv_failed else "-"
        floor_cells = (
            f"{r.floor_cpu_s:.2f} | {tk_cpu / r.floor_cpu_s:.1f}x"
            if math.isfinite(r.floor_cpu_s) and r.floor_cpu_s > 0
            else "- | -"
        )
        lines.append(
            f"| `{' '.join(r.case.argv)}` | {tk_cell} | "
            f"{'-' if r.tk_failed else f'{tk_mb:.0f}'} | {nv_cell} | {nv_mb_cell} | {ratio} | "
            f"{agree_text(r)} | {tk_cpu:.2f} / {nv_cpu:.2f} | {cpu_ratio} | {floor_cells} | "
            f"{r.load[0]:.2f}–{r.load[1]:.2f} |"
        )
    lines.append("")
    lines.append(
        "ratio = pandas+scipy median / trialkit median (above 1: trialkit is faster). Wall time "
        "includes interpreter start-up and imports; peak RSS is the child's ru_maxrss; CPU s is "
        "the child's user + system time (less sensitive than wall time to the other processes of "
        "a shared machine; above the wall time when DuckDB uses both cores). The floor is one "
        "plain DuckDB GROUP BY computing the same sufficient statistics (bench/floor.py), its "
        "CPU s timed inside one process, so interpreter start-up and imports are not in it."
    )
    if flags:
        lines += ["", "Flagged:", *(f"- {f}" for f in flags)]
    if notes:
        lines += ["", "Not run:", *(f"- {n}" for n in notes)]
    mismatches = [(r, c) for r in results for c in r.checks if c.ok is False]
    if mismatches:
        lines += ["", "MISMATCHES (trialkit vs pandas+scipy):"]
        lines += [
            f"- {r.case.name}: {c.label}: {c.trialkit!r} vs {c.naive!r}" for r, c in mismatches
        ]
    return "\n".join(lines)


def run_main(args: argparse.Namespace) -> int:
    db: Path = args.db.resolve()
    if not db.exists():
        raise SystemExit(f"{db} does not exist; make it with: python {__file__} make-db {db}")
    analyze = args.analyze or str(Path(sys.executable).parent / "analyze")

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    with db.open("rb") as fh:  # warm the page cache so the first timed run is not a cold read
        while fh.read(1 << 24):
            pass
    cases, notes = build_cases(analyze)
    if args.only:
        cases = [c for c in cases if any(o in c.name for o in args.only)]
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        trials, ok = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM trials"
        ).fetchone()
        names = [
            r[0]
            for r in con.execute(
                "SELECT name FROM observation_columns WHERE kind = 'metric'"
            ).fetchall()
        ]
        counts = ", ".join(f'count("{n}")' for n in names) or "0"
        metric_rows = sum(con.execute(f"SELECT {counts} FROM trials").fetchone())
    commit = subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    dirty = subprocess.run(
        [
            "git",
            "-C",
            str(Path(__file__).resolve().parents[1]),
            "status",
            "--porcelain",
            "analysis/",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()[1::2]
    env = dict(item.split("=", 1) for item in args.env or [])
    start_load = os.getloadavg()
    startup = [measure([analyze, "--help"], env=env) for _ in range(args.repeat)]
    results = [
        run_case(
            c,
            db=db,
            analyze=analyze,
            repeat=args.repeat,
            log=log,
            env=env,
            naive=not args.no_naive,
            floor=not args.no_floor,
        )
        for c in cases
    ]
    end_load = os.getloadavg()
    profiles = []
    for r in results:
        slow = Result.median(r.tk) > SLOW_S or Result.peak(r.tk) > BIG_MB
        if slow and not r.tk_failed and not args.no_profile:
            log(f"profiling {r.case.name}")
            prof = measure(
                [sys.executable, str(Path(__file__).resolve()), "profile", str(db), *r.case.argv],
                env=env,
            )
            profiles.append(prof.stdout.strip() or prof.stderr.strip()[-2000:])
    header = [
        f"# analyze on {trials:,} trials ({ok:,} ok, {metric_rows:,} metric values)",
        "",
        f"- database: `{db.name}`, {db.stat().st_size / 2**20:.0f} MiB; duckdb "
        f"{duckdb.__version__}; python {platform.python_version()}",
        f"- code: {commit or '?'}"
        f"{' + uncommitted changes to ' + ', '.join(dirty) if dirty else ''}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        f"- machine: {os.cpu_count()} logical CPUs; load average (1, 5, 15 min) "
        f"{' '.join(f'{x:.2f}' for x in start_load)} at start, "
        f"{' '.join(f'{x:.2f}' for x in end_load)} at end",
        f"- `analyze --help` alone (interpreter + CLI start-up): median "
        f"{Result.median(startup):.2f} s, {Result.peak(startup):.0f} MB",
        f"- each time the median of {args.repeat} runs; peak RSS the largest of them",
    ]
    if env:
        header.append(f"- children run with {' '.join(f'{k}={v}' for k, v in env.items())}")
    text = markdown(results, header=header, notes=notes)
    if profiles:
        text += "\n\n## Where the time goes (flagged cases)\n\n" + "\n\n".join(
            f"```\n{p}\n```" for p in profiles
        )
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    for r in results:
        bad = [c for c in r.checks if c.ok is False]
        for c in bad:
            print(
                f"MISMATCH {r.case.name}: {c.label}: trialkit {c.trialkit!r} vs naive {c.naive!r}",
                file=sys.stderr,
            )
    failed = any(r.tk_failed or any(c.ok is False for c in r.checks) for r in results)
    return 1 if failed else 0


# -- where the time goes (runs in a child process) -------------------------------------------------
def _operators(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("children", []):
        yield from _operators(child)


def explain_analyze(db: Path, sql: str, params: Sequence[Any], top: int = 4) -> list[str]:
    """Run ``sql`` once with DuckDB's JSON profiler on; its slowest operators, one line each."""
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.json"
        con = duckdb.connect(str(db), read_only=True)
        try:
            con.execute("PRAGMA enable_profiling = 'json'")
            con.execute(f"PRAGMA profiling_output = '{out}'")
            con.execute(sql, list(params)).fetchall()
            con.execute("PRAGMA disable_profiling")
        finally:
            con.close()
        prof = json.loads(out.read_text())
    ops = [
        op
        for root in prof.get("operator", prof.get("children", []))
        for op in _operators(root)
        if op.get("type") or op.get("operator_type")
    ]
    ops.sort(key=lambda op: -float(op.get("timing", op.get("operator_timing", 0.0)) or 0.0))
    query = prof.get("query", {})
    system = prof.get("system", {})
    lines = [
        f"query {float(query.get('total_time', math.nan)):.3f} s wall, "
        f"{float(query.get('cpu_time', math.nan)):.3f} s CPU, peak buffer memory "
        f"{float(system.get('peak_buffer_memory', math.nan)) / 2**20:.0f} MiB"
    ]
    for op in ops[:top]:
        info = op.get("extra_info", {})
        brief = "; ".join(
            f"{k}: {v if isinstance(v, str) else ', '.join(map(str, v))}"
            for k, v in info.items()
            if k in ("Aggregates", "Groups", "Partitions", "Orders", "Projections", "Function")
        )
        lines.append(
            f"{op.get('type', op.get('operator_type'))} "
            f"{float(op.get('timing', op.get('operator_timing', 0.0))):.3f} s, "
            f"{op.get('intermediate_rows', op.get('operator_cardinality', '?'))} rows out"
            + (f" ({brief[:300]})" if brief else "")
        )
    return lines


def _import_times(argv: Sequence[str]) -> list[tuple[float, str]]:
    """Top-level imports of a cold ``python -X importtime -m analysis.cli ARGV``: (s, module)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "analysis.cli", *argv],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),  # not bench/, where this file would shadow the package
    )
    out = []
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if match and not match.group(2).startswith(" "):
            out.append((int(match.group(1)) / 1e6, match.group(2)))
    return sorted(out, reverse=True)


def profile_main(db: Path, argv: list[str], *, top: int = 8) -> None:
    """Where one `analyze` call spends its time, in-process: imports, DuckDB, other Python;
    then a warm second call with every SQL statement timed, and the slowest EXPLAINed."""
    import contextlib
    import cProfile
    import io
    import pstats

    args = [*argv, "--db", str(db), "--format", "json"]
    lines = [f"profile of `analyze {' '.join(argv)}`"]
    start = time.perf_counter()
    import analysis.cli as cli

    cli_import = time.perf_counter() - start
    prof = cProfile.Profile()
    sys.argv = ["analyze", *args]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        prof.enable()
        with contextlib.suppress(SystemExit):
            cli.main()
        prof.disable()
    cold = time.perf_counter() - start
    entries = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    imports = sum(v[3] for k, v in entries.items() if k[2] == "_find_and_load")
    # cProfile does not see DuckDB's (pybind11) methods: their time is the cumulative time of
    # the Python function that calls them, analysis.data.execute
    duck = sum(
        v[3]
        for k, v in entries.items()
        if k[2] == "execute" and k[0].endswith(os.path.join("analysis", "data.py"))
    )
    lines.append(
        f"cold, in-process: import analysis.cli {cli_import:.2f} s, then the command {cold:.2f} s "
        f"= imports inside it {imports:.2f} s + SQL through analysis.data.execute {duck:.2f} s "
        f"+ the rest {cold - imports - duck:.2f} s"
    )
    own = sorted(
        (
            (v[2], f"{Path(k[0]).name}:{k[1]}({k[2]})")
            for k, v in entries.items()
            if "importlib" not in k[0] and k[2] != "_find_and_load"
        ),
        reverse=True,
    )
    lines.append("top own time: " + "; ".join(f"{name} {t:.2f} s" for t, name in own[:top]))
    heavy = _import_times(args)[:5]
    lines.append(
        "cold top-level imports (-X importtime, cumulative): "
        + "; ".join(f"{name} {t:.2f} s" for t, name in heavy)
    )

    # warm: every statement through analysis.data.execute, timed, with its caller
    import analysis.data as data

    original = data.execute
    queries: list[tuple[float, str, str, list[Any]]] = []

    def timed(con: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        caller = sys._getframe(1)
        where = f"{Path(caller.f_code.co_filename).name}:{caller.f_code.co_name}"
        t0 = time.perf_counter()
        try:
            return original(con, sql, params)
        finally:
            queries.append((time.perf_counter() - t0, where, sql, list(params)))

    for name, module in list(sys.modules.items()):
        if name.startswith("analysis") and getattr(module, "execute", None) is original:
            module.execute = timed  # type: ignore[attr-defined]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        cli.main()
    warm = time.perf_counter() - start
    total_sql = sum(q[0] for q in queries)
    lines.append(
        f"warm second call: {warm:.2f} s, {len(queries)} statements via analysis.data.execute "
        f"taking {total_sql:.2f} s"
    )
    for elapsed, where, sql, params in sorted(queries, key=lambda q: q[0], reverse=True)[:2]:
        flat = " ".join(sql.split())
        lines.append(
            f"- {elapsed:.2f} s from {where}: {flat[:400]}{'...' if len(flat) > 400 else ''}"
        )
        lines += [f"    {line}" for line in explain_analyze(db, sql, params)]
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    # `python bench/analysis.py` puts bench/ first on sys.path, where this file would shadow the
    # analysis package
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make-db", help="Create the synthetic database.")
    mk.add_argument("db", type=Path)
    mk.add_argument("--trials", type=int, default=1_000_000)
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument(
        "--metrics",
        default="accuracy",
        help=f"Comma-separated metrics per ok trial (of {','.join(METRIC_SQL)}).",
    )
    mk.add_argument("--force", action="store_true", help="Replace an existing file.")
    mk.add_argument(
        "--chunk",
        type=int,
        default=CHUNK,
        help="Trials per INSERT, each in its own transaction (bounds memory; same data).",
    )
    run = sub.add_parser("run", help="Time every analysis, trialkit and pandas+scipy.")
    run.add_argument("db", type=Path)
    run.add_argument("--repeat", type=int, default=3)
    run.add_argument("--only", action="append", help="Run the cases whose name contains this.")
    run.add_argument("--analyze", help="The analyze console script (default: beside python).")
    run.add_argument("--markdown", type=Path, help="Also write the table to this file.")
    run.add_argument("--no-naive", action="store_true", help="Skip pandas+scipy.")
    run.add_argument("--no-floor", action="store_true", help="Skip the floor queries.")
    run.add_argument(
        "--env",
        action="append",
        metavar="KEY=VALUE",
        help="Add to the children's environment, e.g. OPENBLAS_NUM_THREADS=1; repeatable.",
    )
    run.add_argument(
        "--no-profile", action="store_true", help="Do not profile the cases over the limits."
    )
    nv = sub.add_parser("naive", help="(internal) One analysis the naive way; JSON on stdout.")
    nv.add_argument("db", type=Path)
    nv.add_argument("case", choices=sorted(NAIVE))
    pr = sub.add_parser("profile", help="Where one analyze call spends its time.")
    pr.add_argument("db", type=Path)
    pr.add_argument("args", nargs=argparse.REMAINDER, help="analyze's arguments, e.g. summary")
    args = parser.parse_args(argv)
    if args.command == "profile":
        profile_main(args.db.resolve(), [a for a in args.args if a != "--"])
        return 0
    if args.command == "make-db":
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        make_db(
            args.db,
            trials=args.trials,
            seed=args.seed,
            metrics=metrics,
            force=args.force,
            chunk=args.chunk,
        )
        return 0
    if args.command == "naive":
        naive_main(args.db, args.case)
        return 0
    return run_main(args)


if __name__ == "__main__":
    sys.exit(main())
