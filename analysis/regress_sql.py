"""The SQL of :mod:`analysis.regress`: the per-group moments, the centred values streamed into a
QR factorisation, and the residual sums given the coefficients (scaled units throughout)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analysis.data import VIEW, execute, quote

if TYPE_CHECKING:
    import duckdb
    import numpy as np

#: Vectors of 2,048 rows fetched at a time into the QR factorisation.
CHUNK_VECTORS = 64


def base_ctes(sel_where: str, by: Sequence[str], exprs: Sequence[str]) -> tuple[str, list[str]]:
    """CTEs ``b`` (group aliases, trial id, variables), ``s`` (shifted), ``c`` (centred values
    ``c<k>`` and centred average ranks ``r<k>``) and ``i`` (``gi``: the group's 1-based index in
    the order of :func:`moments`). Returns (sql, group aliases)."""
    gs = [f"g{i}" for i in range(len(by))]
    part = f"PARTITION BY {', '.join(gs)}" if gs else ""
    cols = [f"{quote(b)} AS {g}" for b, g in zip(by, gs, strict=True)]
    cols.append("trial_id AS _t")
    cols += [f"{e} AS v{k}" for k, e in enumerate(exprs)]
    k_all = range(len(exprs))
    shifted = ", ".join(f"v{k} - min(v{k}) OVER w AS d{k}, min(v{k}) OVER w AS s{k}" for k in k_all)
    centred = ", ".join(
        f"d{k} - avg(d{k}) OVER w AS c{k}, avg(d{k}) OVER w AS m{k}, "
        f"rank() OVER ({part} ORDER BY v{k}) "
        f"+ (count(*) OVER ({part}{', ' if gs else 'PARTITION BY '}v{k}) - 1) / 2.0 "
        f"- (count(*) OVER w + 1) / 2.0 AS r{k}"
        for k in k_all
    )
    gi = f"dense_rank() OVER (ORDER BY {', '.join(f'{g} NULLS LAST' for g in gs)})" if gs else "1"
    sql = (
        f"b AS (SELECT {', '.join(cols)} FROM {VIEW}{sel_where}), "
        f"s AS (SELECT *, {shifted} FROM b WINDOW w AS ({part})), "
        f"c AS (SELECT *, {centred} FROM s WINDOW w AS ({part})), "
        f"i AS (SELECT *, {gi} AS gi FROM c)"
    )
    return sql, gs


def moments(
    con: duckdb.DuckDBPyConnection, ctes: str, gs: Sequence[str], k: int, params: list[Any]
) -> list[tuple]:
    aggs = ["count(*)"]
    aggs += [f"any_value(s{i})" for i in range(k)]
    aggs += [f"any_value(m{i})" for i in range(k)]
    aggs += [f"max(abs(c{i}))" for i in range(k)]
    aggs += [f"fsum(r0 * r{j})" for j in range(k)]
    aggs += [f"fsum(r{j} * r{j})" for j in range(1, k)]
    group = f" GROUP BY {', '.join(gs)}" if gs else ""
    order = f" ORDER BY {', '.join(f'{g} NULLS LAST' for g in gs)}" if gs else ""
    sel_gs = "".join(f"{g}, " for g in gs)
    return execute(
        con, f"WITH {ctes} SELECT {sel_gs}{', '.join(aggs)} FROM c{group}{order}", params
    )


def qr_factors(
    con: duckdb.DuckDBPyConnection, ctes: str, exps: Sequence[Sequence[int]], params: list[Any]
) -> list[np.ndarray]:
    """Per group, R of the QR factorisation of ``[1, c_1/s_1 .. c_p/s_p, c_0/s_0]``, built a
    chunk at a time (stacking the R so far on the new rows), so memory stays bounded."""
    import numpy as np

    k = len(exps[0])
    powers = np.array(exps, dtype=int)
    factors: list[np.ndarray | None] = [None] * len(exps)
    cols = ", ".join(f"c{j}" for j in (*range(1, k), 0))
    cur = con.execute(f"WITH {ctes} SELECT gi, {cols} FROM i", params)
    while True:
        chunk = cur.fetch_df_chunk(CHUNK_VECTORS).to_numpy(dtype=float)
        if len(chunk) == 0:
            break
        gi = chunk[:, 0].astype(int) - 1
        order = np.argsort(gi, kind="stable")
        gi, chunk = gi[order], chunk[order]
        starts = np.flatnonzero(np.r_[True, gi[1:] != gi[:-1]])
        for a, b in zip(starts, [*starts[1:], len(gi)], strict=True):
            g = gi[a]
            # x's then y, each over 2^exp (exact)
            e = np.r_[powers[g, 1:], powers[g, 0]]
            block = np.column_stack([np.ones(b - a), np.ldexp(chunk[a:b, 1:], -e)])
            prev = factors[g]
            stacked = block if prev is None else np.vstack([prev, block])
            factors[g] = np.linalg.qr(stacked, mode="r")
    out = []
    for r in factors:
        if r is None:  # pragma: no cover - every group of the moments has rows
            raise RuntimeError("QR pass found a different set of groups")
        square = np.zeros((k + 1, k + 1))
        square[: r.shape[0]] = r
        out.append(square)
    return out


def residual_sums(
    con: duckdb.DuckDBPyConnection,
    ctes: str,
    p: int,
    betas: list[list[float]],
    scales: list[list[float]],
    params: list[Any],
) -> list[tuple]:
    """Per group (in the order of :func:`moments`), in scaled units (``scales``: 2^-exp of y,
    x_1..x_p): sum e^2, sum of centred e^2, e^3 and e^4, the Durbin-Watson numerator, sum of
    centred (e^2)^2 and sum(c_xj * centred e^2) per x. ``betas``: intercept, then slopes."""
    fitted = " + ".join(f"coef.B[gi][{j + 1}] * (c{j} * coef.S[gi][{j + 1}])"
                        for j in range(1, p + 1))  # fmt: skip
    xs = "".join(f", c{j} * coef.S[gi][{j + 1}] AS x{j}" for j in range(1, p + 1))
    sql = (
        f"WITH coef AS (SELECT ?::DOUBLE[][] AS B, ?::DOUBLE[][] AS S), {ctes}, "
        f"e AS (SELECT gi, _t{xs}, c0 * coef.S[gi][1] - coef.B[gi][1] - ({fitted}) AS e "
        "FROM i CROSS JOIN coef), "
        "f AS (SELECT *, e - avg(e) OVER (PARTITION BY gi) AS ec, "
        "e * e - avg(e * e) OVER (PARTITION BY gi) AS uc, "
        "e - lag(e) OVER (PARTITION BY gi ORDER BY _t) AS de FROM e) "
        "SELECT gi, fsum(e * e), fsum(ec * ec), fsum(ec * ec * ec), fsum(ec * ec * ec * ec), "
        "fsum(de * de), fsum(uc * uc)"
        + "".join(f", fsum(x{j} * uc)" for j in range(1, p + 1))
        + " FROM f GROUP BY gi ORDER BY gi"
    )
    return execute(con, sql, [betas, scales, *params])
