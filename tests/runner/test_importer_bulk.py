"""runner.importer_bulk: the bulk path gives the row-by-row rules' results and messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest

from runner.errors import RunnerError
from runner.importer import import_csv, parse_csv
from runner.spec import config_id


def rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_bad_values_counted_with_their_lines(tmp_path: Path) -> None:
    csv_path = tmp_path / "bad.csv"
    # line 3 is blank and skipped; bad workers on lines 4, 6 and 7, a bad train_s on line 5
    csv_path.write_text(
        "engine,workers,train_s\nlocal,1,0.5\n\nlocal,two,0.5\nlocal,2,slow\nlocal,x,1\n"
        "local,two,1\n"
    )
    db = tmp_path / "r.duckdb"
    with pytest.raises(RunnerError) as info:
        import_csv(csv_path, db=db)
    message = str(info.value)
    assert message.startswith("bad.csv, line 4, column workers: 'two' is not a whole number")
    assert "[4 bad values in all; workers: 3 (lines 4, 6, 7); train_s: 1 (lines 5)]" in message
    assert "\n" not in message
    assert not db.exists()


def test_config_id_matches_the_spec_hash(tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(
        "engine,workers,data_fraction,k,impl,acc\n"
        "dask,4,0.5,5,sk,0.9\n"
        "dask,4.0,0.50,5,sk,0.8\n"
        "ray,,1,x,,0.7\n"
    )
    db = tmp_path / "r.duckdb"
    import_csv(csv_path, db=db, experiment="e")
    got = rows(db, "SELECT config_id, repetition, params FROM observations ORDER BY trial_id")
    none = dict.fromkeys(("workload", "dataset", "threads_per_worker", "memory_gb"))
    none |= dict.fromkeys(("batch_size", "epochs"))
    first = config_id(
        {
            "experiment": "e",
            "engine": "dask",
            "workers": 4,
            "data_fraction": 0.5,
            **none,
            "params": {"k": 5, "impl": "sk"},
        }
    )
    third = config_id(
        {
            "experiment": "e",
            "engine": "ray",
            "workers": None,
            "data_fraction": 1.0,
            **none,
            "params": {"k": "x"},
        }
    )
    # "4" and "4.0", "0.5" and "0.50" are one configuration: repetitions 1 and 2
    assert [(c, r) for c, r, _ in got] == [(first, 1), (first, 2), (third, 1)]
    assert [json.loads(p) for _, _, p in got] == [{"impl": "sk", "k": 5}] * 2 + [{"k": "x"}]


TRICKY = (
    "Engine;Workers;Train time;acc;note;Status;repetition\n"
    " spark ; 2 ;1,5; 0,93 ;a,b;OK;\n"
    "dask;4.0;2;1e-3;3;failed;7\n"
    ";;;;;;\n"
    "ray;+1;.5;\u00a00,5\u00a0;;TIMEOUT;\n"
    "ray;1;1_0;1;x y;ok;\n"
)


@pytest.mark.parametrize(("literals", "inline"), [(True, True), (True, False), (False, False)])
def test_bulk_import_equals_the_row_by_row_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, literals: bool, inline: bool
) -> None:
    """Whitespace, decimal commas, underscores, case, blank rows, given repetitions: the
    database holds what parse_csv (the row-by-row reader published tables use) reads; also
    when rare values are too many to be found in the view by position (a join, the value's
    index in the narrow frame) and when configurations and rare values are too many for list
    literals (a sorted table)."""
    if not inline:
        monkeypatch.setattr("runner.importer_bulk._INLINE_VALUES", 0)
    if not literals:
        monkeypatch.setattr("runner.importer_bulk._LITERAL_CONFIGS", 0)
    csv_path = tmp_path / "t.csv"
    csv_path.write_text(TRICKY, encoding="utf-8")
    parsed = parse_csv(csv_path, experiment="t")
    db = tmp_path / "r.duckdb"
    result = import_csv(csv_path, db=db)
    assert result.trial_columns == parsed.trial_columns
    assert result.metric_columns == parsed.metric_columns == ("acc",)
    assert result.param_columns == parsed.param_columns == ("train_time", "note")
    got = rows(
        db,
        "SELECT engine, workers, status, repetition, config_id, params, acc "
        "FROM observations ORDER BY trial_id",
    )
    want = [
        (
            r["engine"],
            r.get("workers"),
            r["status"],
            r["repetition"],
            r["config_id"],
            r["params"],
            m.get("acc"),
        )
        for r, m in zip(parsed.records, parsed.metrics, strict=True)
    ]
    assert [(*g[:5], json.loads(g[5]), g[6]) for g in got] == want
    # literal values, as read by hand: 1,5 -> 1.5 (a param here: 1_0 is text), 0,93 -> 0.93
    assert [g[6] for g in got] == [0.93, 0.001, 0.5, 1.0]
    assert json.loads(got[0][5]) == {"note": "a,b", "train_time": 1.5}
    assert [g[3] for g in got] == [1, 7, 1, 1]
    assert json.loads(got[3][5]) == {"note": "x y", "train_time": "1_0"}


@pytest.mark.parametrize("with_repetition", [True, False])
def test_rows_keep_file_order_over_many_row_groups(tmp_path: Path, with_repetition: bool) -> None:
    # 260,000 rows: several of DuckDB's row groups, read by parallel threads; every trial must
    # still follow the file's order, and repetitions count each configuration's rows in order
    n = 260_000
    engines = ["local", "dask", "ray"]
    lines = ["engine,workers,impl,status,acc" + (",repetition" if with_repetition else "")]
    expected = []
    seen: dict[tuple, int] = {}
    for i in range(n):
        engine, workers = engines[(i * 7919) % 3], 1 + (i * 104729) % 5
        impl = "torch" if (i // 11) % 3 == 0 else "sk"
        status = "failed" if i % 53 == 0 else "ok"
        acc = "" if status == "failed" else f"{(i * 2654435761) % 1000003 / 1e6:.6f}"
        rep = "" if i % 4 else str(1000 + i)
        if with_repetition and rep:
            repetition = int(rep)
        else:
            key = (engine, workers, impl)
            seen[key] = seen.get(key, 0) + 1
            repetition = seen[key]
        row = f"{engine},{workers},{impl},{status},{acc}" + (f",{rep}" if with_repetition else "")
        lines.append(row)
        expected.append((engine, workers, impl, status, float(acc) if acc else None, repetition))
    csv_path = tmp_path / "big.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    db = tmp_path / "r.duckdb"
    import_csv(csv_path, db=db)
    got = rows(
        db,
        "SELECT engine, workers, impl, status, acc, repetition FROM observations ORDER BY trial_id",
    )
    assert len(got) == n
    assert got == expected


# 10**400 and 10**999 are beyond the largest double (about 1.8 * 10**308): float() of them is inf
OVERFLOWS = ("1e400", "-1E+999", "1" + "0" * 400)


def test_numbers_that_overflow_a_double_are_refused_with_their_lines(tmp_path: Path) -> None:
    assert sys.float_info.max < 10**400
    csv_path = tmp_path / "o.csv"
    body = "\n".join(f"local,{v}" for v in (OVERFLOWS[0], "1", *OVERFLOWS[1:], "1.5e308"))
    csv_path.write_text(f"engine,train_s\n{body}\n")
    db = tmp_path / "r.duckdb"
    with pytest.raises(RunnerError) as info:
        import_csv(csv_path, db=db)
    message = str(info.value)
    assert message.startswith("o.csv, line 2, column train_s: '1e400' is not a finite number;")
    assert message.endswith("[3 bad values in all; train_s: 3 (lines 2, 4, 5)]")
    assert not db.exists()
    with pytest.raises(RunnerError, match=r"^o.csv, line 2, column train_s: '1e400' is not a fin"):
        parse_csv(csv_path, experiment="o")
    declared = tmp_path / "m.csv"
    declared.write_text("engine,acc\nlocal,0.5\nlocal,1e400\n")
    with pytest.raises(RunnerError, match=r"line 3, metric acc: '1e400' is not a finite number"):
        parse_csv(declared, experiment="m", metrics=["acc"])


def test_an_overflowing_cell_is_text_as_inf_is(tmp_path: Path) -> None:
    # a column with a cell that is not a finite number is params, not a metric: 1e400 as 'inf'
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("engine,acc,k\nlocal,1e400,5\nlocal,0.5,inf\n")
    db = tmp_path / "r.duckdb"
    result = import_csv(csv_path, db=db)
    parsed = parse_csv(csv_path, experiment="p")
    assert result.metric_columns == parsed.metric_columns == ()
    assert result.param_columns == parsed.param_columns == ("acc", "k")
    got = [json.loads(p) for (p,) in rows(db, "SELECT params FROM observations ORDER BY trial_id")]
    assert got == [r["params"] for r in parsed.records]
    assert got == [{"acc": "1e400", "k": 5}, {"acc": 0.5, "k": "inf"}]


@pytest.mark.parametrize("digits", [21, 5000])
def test_an_integer_of_many_digits_is_out_of_range(tmp_path: Path, digits: int) -> None:
    # 5,000 digits is over Python's int() limit for text (4,300): a message, not a ValueError
    csv_path = tmp_path / "w.csv"
    csv_path.write_text(f"engine,workers\nlocal,1\nlocal,{'9' * digits}\n")
    match = r"^w.csv, line 3, column workers: '9999.*' is not a whole number in range;"
    with pytest.raises(RunnerError, match=match):
        import_csv(csv_path, db=tmp_path / "r.duckdb")
    with pytest.raises(RunnerError, match=match):
        parse_csv(csv_path, experiment="w")
