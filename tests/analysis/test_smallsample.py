"""Honest small samples: below 5 trials per group ttest, anova, compare and summary warn, and
every output format (text, json, csv, latex) carries the warning."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from analysis.anova import anova
from analysis.cli import app
from analysis.compare import compare
from analysis.smallsample import MIN_TRIALS, small_sample_note
from analysis.summary import summarize
from analysis.ttest import ttest
from runner.store import TrialRecord, open_store

runner = CliRunner()
FEW = "few trials"


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def small_db(make_db: Callable[..., Path], trials_for: Callable[..., list]) -> Path:
    """workers=1: 3 trials, workers=2: 6 trials, workers=4: 5 trials (only 1 is small)."""
    rng = np.random.default_rng(7)
    groups = {1: rng.normal(4, 1, 3), 2: rng.normal(3, 1, 6), 4: rng.normal(2, 0.5, 5)}
    return make_db(trials_for(groups))


def test_note_names_only_the_small_groups() -> None:
    assert small_sample_note([("a", MIN_TRIALS), ("b", 9)]) is None
    note = small_sample_note([("a", 3), ("b", 9), ("c", 4)], what="workers=")
    assert note is not None and note.startswith(FEW)
    assert "workers=a (3)" in note and "workers=c (4)" in note and "workers=b" not in note


def test_library_results_carry_the_note(small_db: Path) -> None:
    res = ttest(small_db, group="workers", a="1", b="2", n_boot=0)
    assert any(FEW in n and "workers=1 (3)" in n for n in res.notes)
    assert not ttest(small_db, group="workers", a="2", b="4", n_boot=0).notes
    a = anova(small_db, group="workers")
    assert any(FEW in n and "workers=1 (3)" in n and "workers=4" not in n for n in a.notes)
    s = summarize(small_db, by=["workers"], metrics=["train_s"])
    assert len(s.notes) == 1 and "workers=1 (3)" in s.notes[0] and "workers=2" not in s.notes[0]


@pytest.mark.parametrize(
    "args",
    [
        ["ttest", "--group", "workers", "--a", "1", "--b", "2", "--bootstrap", "0"],
        ["anova", "--group", "workers"],
        ["summary", "--by", "workers", "--metric", "train_s", "--bootstrap", "0"],
    ],
)
@pytest.mark.parametrize("fmt", ["table", "json", "csv", "latex"])
def test_every_format_shows_the_note(small_db: Path, args: list[str], fmt: str) -> None:
    out = invoke(*args, "--db", small_db, "--format", fmt)
    assert out.exit_code == 0, out.output
    assert FEW in out.stdout
    if fmt == "json":
        assert FEW in json.dumps(json.loads(out.stdout))


def _add_run(path: Path, values: list[float]) -> str:
    store = open_store(path)
    try:
        run = store.begin_run(source="measured", argv=["t"], env={"hostname": "a"})
        rows = [
            {"engine": "dask", "workload": "knn", "dataset": "digits", "workers": 1,
             "threads_per_worker": 1, "warmup": False, "repetition": i, "train_s": v}
            for i, v in enumerate(values)
        ]  # fmt: skip
        store.append_trials([TrialRecord(run_id=run, status="ok", values=r) for r in rows])
        store.finish_run(run)
    finally:
        store.close()
    return run


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "latex", "markdown"])
def test_compare_notes_few_trials_in_every_format(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "c.duckdb"
    base = _add_run(path, [1.0, 1.1, 0.9])
    new = _add_run(path, [0.8, 0.85, 0.82, 0.79, 0.81, 0.8])
    res = compare(path, base=base, new=new)
    assert "few trials: base 3, new 6" in res.rows[0].note
    assert any(FEW in n for n in res.notes)
    out = invoke("compare", base, new, "--db", path, "--format", fmt)
    assert out.exit_code == 0, out.output
    assert FEW in out.stdout
