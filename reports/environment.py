"""The provenance appendix: the runs, and what of their environment differs between them.

Every run records its environment (python, package versions, CPU, memory, OS, hostname, git
commit). Printing all of it for every run buries the one line that matters, so the appendix shows
one table of the keys that are the same for every run that recorded an environment (the packages
in one row) and one table of the keys that differ, a column per run.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from reports import format as fmt
from reports.blocks import Column, Paragraph, Section, SectionBuilder, Table

#: Runs shown as columns of the differences table at most (newest last); more are summarised.
MAX_RUN_COLUMNS = 6


def _timestamp(value: Any) -> str:
    if value is None:
        return fmt.MISSING
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds") + (" UTC" if value.tzinfo else "")
    return str(value)


def flatten(env: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"packages": {"numpy": "2.1"}}`` -> ``{"packages.numpy": "2.1"}``."""
    items: dict[str, str] = {}
    for key, value in env.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple):
            items[name] = "; ".join(_item(v) for v in value)
        else:
            items[name] = fmt.MISSING if value is None else str(value)
    return items


def _item(value: Any) -> str:
    """One item of a list in the environment; a loaded BLAS/OpenMP library (threadpoolctl's
    record: ``internal_api``, ``version``, ``filepath``, ...) as ``openblas 0.3.30
    (libscipy_openblas.so, SkylakeX, 2 threads)``."""
    if isinstance(value, Mapping) and "internal_api" in value:
        path = str(value.get("filepath") or "")
        facts = [path.rsplit("/", 1)[-1]] if path else []
        if value.get("architecture"):
            facts.append(str(value["architecture"]))
        if value.get("num_threads") is not None:
            facts.append(f"{value['num_threads']} threads")
        version = f" {value['version']}" if value.get("version") else ""
        return f"{value['internal_api']}{version}" + (f" ({', '.join(facts)})" if facts else "")
    return str(value)


def _status(run: Any) -> str:
    """A run's status (``finished``, ``killed``, ``interrupted``, ``failed`` or ``running``),
    or the missing mark when the run object does not carry one."""
    status = getattr(run, "status", None)
    return fmt.MISSING if status is None else str(status)


def runs_table(runs: Sequence[Any]) -> Table:
    """The runs, oldest first: id, source, how the run ended (when the run objects carry a
    ``status``), start, trials, experiments and command line."""
    with_status = any(getattr(r, "status", None) is not None for r in runs)
    rows = tuple(
        (
            str(r.run_id),
            str(r.source),
            *((_status(r),) if with_status else ()),
            _timestamp(r.started_at),
            fmt.count(r.n_trials),
            ", ".join(r.experiments) or fmt.MISSING,
            shlex.join(str(a) for a in r.argv) if r.argv else fmt.MISSING,
        )
        for r in runs
    )
    return Table(
        id="runs",
        caption="Runs in the database (oldest first)",
        columns=(
            Column("Run"),
            Column("Source", wrap=True),
            *((Column("Status"),) if with_status else ()),
            Column("Started"),
            Column("Trials", num=True),
            Column("Experiments", wrap=True),
            Column("Command", wrap=True),
        ),
        rows=rows,
    )


def environment_section(runs: Sequence[Any], *, section_id: str = "appendix") -> Section:
    """Appendix: runs, then the environment keys every run shares and those that differ."""
    sec = SectionBuilder(section_id, "Appendix: runs and environment", appendix=True)
    sec.add(runs_table(runs))
    recorded = [(str(r.run_id), flatten(r.env or {})) for r in runs if r.env]
    without = [str(r.run_id) for r in runs if not r.env]
    if without:
        sec.para(
            f"No environment recorded for {len(without)} run(s) (imports of published or "
            f"external data): {', '.join(without)}.",
            "note",
        )
    if not recorded:
        return sec.build()
    keys = list(dict.fromkeys(k for _, env in recorded for k in env))
    same = [k for k in keys if len({env.get(k) for _, env in recorded}) == 1]
    differ = [k for k in keys if k not in same]
    shared_packages = [k for k in same if k.startswith("packages.")]
    rows = [(k, recorded[0][1][k]) for k in same if not k.startswith("packages.")]
    if shared_packages:  # one row: name and version of each
        first = recorded[0][1]
        rows.append(
            ("packages", ", ".join(f"{k[len('packages.') :]} {first[k]}" for k in shared_packages))
        )
    caption = (
        f"Environment of run {recorded[0][0]}"
        if len(recorded) == 1
        else f"Environment shared by all {len(recorded)} runs that recorded one"
    )
    sec.add(
        Table(
            id="env-same",
            caption=caption,
            columns=(Column("Key"), Column("Value", wrap=True)),
            rows=tuple(rows),
        )
    )
    if not differ:
        if len(recorded) > 1:
            sec.para("Nothing in the recorded environments differs between runs.")
        return sec.build()
    shown = recorded[-MAX_RUN_COLUMNS:]
    if len(recorded) > len(shown):
        sec.para(f"Differences: the {len(shown)} newest of {len(recorded)} runs are shown.", "note")
    sec.add(
        Table(
            id="env-differ",
            caption="What differs between runs (missing: the run did not record it)",
            columns=(Column("Key"), *(Column(run, wrap=True) for run, _ in shown)),
            rows=tuple((k, *(env.get(k, fmt.MISSING) for _, env in shown)) for k in differ),
        )
    )
    return sec.build()


__all__ = ["Paragraph", "environment_section", "flatten", "runs_table"]
