"""The SQL of :mod:`analysis.regress` beyond the moments (:func:`analysis.query.moments`): the
centred values streamed into a QR factorisation, the rank sums for Spearman's rho, and the residual
sums given the coefficients (scaled units throughout)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from analysis.data import VIEW, execute, lean_sql, quote

if TYPE_CHECKING:
    import duckdb
    import numpy as np

#: Vectors of 2,048 rows fetched at a time into the QR factorisation (above
#: :data:`FETCH_VALUES`), and rows factorised at a time.
CHUNK_VECTORS = 64
CHUNK_ROWS = CHUNK_VECTORS * 2048

#: Values (rows x columns) fetched in one ``fetchnumpy`` (no pandas, about 1 s of imports) into
#: the QR factorisation: 16M values are 128 MB. Above it, a DataFrame chunk at a time.
FETCH_VALUES = 16_000_000


def base_ctes(
    sel_where: str, by: Sequence[str], exprs: Sequence[str], groups: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """CTEs ``b`` (group aliases, trial id, variables), ``p`` (per group, in the order of
    ``groups``: its levels, ``gi`` its 1-based index, the shifts ``s<k>`` and mean deviations
    ``m<k>`` of :func:`analysis.query.moments`) and ``i`` (``gi``, trial id, variables and the
    centred values ``c<k> = (v<k> - s<k>) - m<k>``): a join to a small table, no window.

    ``groups``: per group ``(levels, shifts, mean_devs)``. Returns (sql, the parameters of
    ``p``, which come after the selection's)."""
    gs = [f"g{i}" for i in range(len(by))]
    k_all = range(len(exprs))
    cols = [f"{quote(b)} AS {g}" for b, g in zip(by, gs, strict=True)]
    cols.append("trial_id AS _t")
    cols += [f"{e} AS v{k}" for k, e in enumerate(exprs)]
    names = [*gs, "gi", *(f"s{k}" for k in k_all), *(f"m{k}" for k in k_all)]
    rows, args = [], []
    for gi, (levels, shifts, mean_devs) in enumerate(groups, start=1):
        args += list(levels)
        consts = [str(gi), *(_literal(v) for v in (*shifts, *mean_devs))]
        rows.append("(" + ", ".join([*(["?"] * len(gs)), *consts]) + ")")
    on = " AND ".join(f"b.{g} IS NOT DISTINCT FROM p.{g}" for g in gs)
    centred = ", ".join(f"(v{k} - s{k}) - m{k} AS c{k}" for k in k_all)
    sql = (
        f"b AS (SELECT {', '.join(cols)} FROM {VIEW}{sel_where}), "
        f"p AS (SELECT * FROM (VALUES {', '.join(rows)}) AS t({', '.join(names)})), "
        f"i AS (SELECT gi, _t, {', '.join(f'v{k}' for k in k_all)}, {centred} "
        f"FROM b {'JOIN' if gs else 'CROSS JOIN'} p{' ON ' + on if gs else ''})"
    )
    return sql, args


def _literal(value: float) -> str:
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def rank_sums(con: duckdb.DuckDBPyConnection, ctes: str, k: int, params: list[Any]) -> list[tuple]:
    """Per group (by ``gi``): the cross-products of centred average ranks (ties get the mean of
    their ranks, as in scipy) for Spearman's rho: ``r0 r0, r0 r1 .. r0 rp, r1 r1 .. rp rp``.
    Window functions sort every value: the caller runs this only when asked or for few trials."""
    ranks = ", ".join(
        f"rank() OVER (PARTITION BY gi ORDER BY v{j}) "
        f"+ (count(*) OVER (PARTITION BY gi, v{j}) - 1) / 2.0 "
        f"- (count(*) OVER (PARTITION BY gi) + 1) / 2.0 AS r{j}"
        for j in range(k)
    )
    aggs = [f"fsum(r0 * r{j})" for j in range(k)]
    aggs += [f"fsum(r{j} * r{j})" for j in range(1, k)]
    sql = (
        f"WITH {ctes}, r AS (SELECT gi, {ranks} FROM i) "
        f"SELECT gi, {', '.join(aggs)} FROM r GROUP BY gi ORDER BY gi"
    )
    return execute(con, sql, params)


def qr_factors(
    con: duckdb.DuckDBPyConnection,
    ctes: str,
    exps: Sequence[Sequence[int]],
    params: list[Any],
    *,
    rows: int | None = None,
) -> list[np.ndarray]:
    """Per group, R of the QR factorisation of ``[1, c_1/s_1 .. c_p/s_p, c_0/s_0]``, built
    :data:`CHUNK_ROWS` rows at a time (stacking the R so far on the new rows). ``rows``: the
    rows the query returns when the caller knows it; up to :data:`FETCH_VALUES` values they are
    fetched at once as NumPy arrays, else (or unknown) a DataFrame chunk at a time, so memory
    stays bounded."""
    import numpy as np

    k = len(exps[0])
    powers = np.array(exps, dtype=int)
    factors: list[np.ndarray | None] = [None] * len(exps)
    cols = ", ".join(f"c{j}" for j in (*range(1, k), 0))
    cur = con.execute(lean_sql(con, f"WITH {ctes} SELECT gi, {cols} FROM i"), params)
    for chunk in _chunks(cur, rows * (k + 1) if rows is not None else None):
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


def _chunks(cur: Any, values: int | None) -> Iterator[np.ndarray]:
    """The rows of ``cur`` as float arrays (columns side by side) of at most :data:`CHUNK_ROWS`
    rows: from one ``fetchnumpy`` when ``values`` (rows x columns) is at most
    :data:`FETCH_VALUES`, else from ``fetch_df_chunk`` (pandas) a chunk at a time."""
    import numpy as np

    if values is not None and values <= FETCH_VALUES:
        arrays = cur.fetchnumpy()
        whole = np.column_stack([np.asarray(a, dtype=float) for a in arrays.values()])
        for a in range(0, len(whole), CHUNK_ROWS):
            yield whole[a : a + CHUNK_ROWS]
        return
    while True:
        chunk = cur.fetch_df_chunk(CHUNK_VECTORS).to_numpy(dtype=float)
        if len(chunk) == 0:
            return
        yield chunk


def residual_sums(
    con: duckdb.DuckDBPyConnection,
    ctes: str,
    p: int,
    betas: list[list[float]],
    scales: list[list[float]],
    params: list[Any],
    *,
    durbin_watson: bool = True,
) -> list[tuple]:
    """Per group (by ``gi``), in scaled units (``scales``: 2^-exp of y,
    x_1..x_p): sum e^2, sum of centred e^2, e^3 and e^4, the Durbin-Watson numerator, sum of
    centred (e^2)^2 and sum(c_xj * centred e^2) per x. ``betas``: intercept, then slopes.

    Two passes of plain GROUP BY (no window function): the per-group means of e and e^2, then
    the centred sums joined to that small table. Without ``durbin_watson`` (its lag sorts every
    residual by trial) its numerator is NULL."""
    fitted = " + ".join(f"coef.B[gi][{j + 1}] * (c{j} * coef.S[gi][{j + 1}])"
                        for j in range(1, p + 1))  # fmt: skip
    xs = "".join(f", c{j} * coef.S[gi][{j + 1}] AS x{j}" for j in range(1, p + 1))
    head = (
        f"WITH coef AS (SELECT ?::DOUBLE[][] AS B, ?::DOUBLE[][] AS S), {ctes}, "
        f"e AS (SELECT gi, _t{xs}, c0 * coef.S[gi][1] - coef.B[gi][1] - ({fitted}) AS e "
        "FROM i CROSS JOIN coef)"
    )
    args = [betas, scales, *params]
    means = execute(con, f"{head} SELECT gi, fsum(e) / count(*), fsum(e * e) / count(*) "
                    "FROM e GROUP BY gi ORDER BY gi", args)  # fmt: skip
    if not means:
        return []
    table = ", ".join(f"({int(g)}, {_literal(m1)}, {_literal(m2)})" for g, m1, m2 in means)
    lag = "e - lag(e) OVER (PARTITION BY gi ORDER BY _t)" if durbin_watson else "NULL::DOUBLE"
    sql = (
        f"{head}, f AS (SELECT e.*, e - me AS ec, e * e - me2 AS uc, {lag} AS de "
        f"FROM e JOIN (VALUES {table}) AS m(mg, me, me2) ON e.gi = m.mg) "
        "SELECT gi, fsum(e * e), fsum(ec * ec), fsum(ec * ec * ec), fsum(ec * ec * ec * ec), "
        "fsum(de * de), fsum(uc * uc)"
        + "".join(f", fsum(x{j} * uc)" for j in range(1, p + 1))
        + " FROM f GROUP BY gi ORDER BY gi"
    )
    return execute(con, sql, args)
