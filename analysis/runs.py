"""The runs of a results database: one per runner invocation or import."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analysis.data import Database, connect


@dataclass(frozen=True)
class RunInfo:
    """One runner invocation or import, with its trial count and experiment names."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    source: str
    argv: list[str]
    env: dict
    n_trials: int
    experiments: tuple[str, ...]
    #: how the run ended: ``finished``, ``killed``, ``interrupted``, ``failed`` or ``running``
    status: str | None = None


def trial_rows(con: Any) -> int:
    """Rows of the store's ``trials`` table from DuckDB's catalogue (no scan); 0 when unknown.
    Analyses whose aggregates hold every value (medians, quartiles) batch above a size."""
    try:
        got = con.execute(
            "SELECT sum(estimated_size) FROM duckdb_tables() WHERE table_name = 'trials'"
        ).fetchone()
    except Exception:  # noqa: BLE001 - not a store: the caller keeps its one-scan path
        return 0
    return int(got[0] or 0) if got else 0


def _json_value(text: Any, default: Any) -> Any:
    if text is None:
        return default
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return default
    return text


def list_runs(db: Database) -> tuple[RunInfo, ...]:
    """All runs in the database, oldest first (the trials counted per run first, then joined
    to the small runs table: its JSON argv and env are never grouped over the trials)."""
    with connect(db) as con:
        raw = con.execute(
            """
            WITH t AS (
                SELECT run_id, count(trial_id) AS n,
                       list(DISTINCT experiment ORDER BY experiment)
                           FILTER (WHERE experiment IS NOT NULL) AS experiments
                FROM trials GROUP BY run_id
            )
            SELECT r.run_id, r.started_at, r.finished_at, r.source, r.argv, r.env,
                   coalesce(t.n, 0), t.experiments, r.status
            FROM runs r LEFT JOIN t USING (run_id)
            ORDER BY r.started_at, r.run_id
            """
        ).fetchall()
    return tuple(
        RunInfo(
            run_id=run_id,
            started_at=started,
            finished_at=finished,
            source=source,
            argv=list(_json_value(argv, [])),
            env=dict(_json_value(env, {})),
            n_trials=int(n),
            experiments=tuple(exps or ()),
            status=status,
        )
        for run_id, started, finished, source, argv, env, n, exps, status in raw
    )
