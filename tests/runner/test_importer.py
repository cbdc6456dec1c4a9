"""runner.importer: CSV files into a real DuckDB store, through the library and the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from runner.errors import RunnerError
from runner.importer import ImportResult, import_csv, import_prices, sniff_delimiter

RUNNER = shutil.which("runner", path=str(Path(sys.executable).parent)) or "runner"

GOOD_CSV = (
    "Engine,Workers,Train_s,Accuracy (%),impl\n"
    "spark,2,1.5,93.25,mllib\n"
    "dask,4,0.75,91.5,sklearn\n"
    "spark,2,1.25,94,mllib\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- library --------------------------------------------------------------------------------


def test_import_writes_run_trials_metrics_and_view(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "bench.csv", GOOD_CSV)
    db = tmp_path / "r.duckdb"

    result = import_csv(csv_path, db=db, argv=["runner", "import", "csv", "bench.csv"])

    assert isinstance(result, ImportResult)
    assert result.n_trials == 3
    assert result.experiment == "bench"
    assert result.trial_columns == ("engine", "workers", "train_s")
    assert result.metric_columns == ("accuracy",)
    assert result.param_columns == ("impl",)
    assert ("Accuracy (%)", "accuracy") in result.renamed
    assert ("impl", "impl") not in result.renamed
    assert str(result).startswith(f"imported 3 trials from bench.csv as run {result.run_id} ")
    assert "metrics accuracy; params impl" in str(result)
    assert "\n" not in str(result)
    assert json.loads(json.dumps(result.to_dict()))["metric_columns"] == ["accuracy"]

    runs = query(db, "SELECT run_id, source, argv, spec, env, finished_at, status FROM runs")
    assert len(runs) == 1
    run_id, source, argv, spec, env, finished_at, status = runs[0]
    assert run_id == result.run_id
    assert source == "import:bench.csv"
    assert json.loads(argv) == ["runner", "import", "csv", "bench.csv"]
    assert json.loads(spec)["import"] == "bench.csv"
    assert json.loads(spec)["experiment"] == "bench"
    assert "python" in json.loads(env)
    assert finished_at is not None and status == "finished"

    trials = query(
        db,
        "SELECT engine, workers, train_s, experiment, status, warmup, params, repetition "
        "FROM observations ORDER BY trial_id",
    )
    assert [t[:6] for t in trials] == [
        ("spark", 2, 1.5, "bench", "ok", False),
        ("dask", 4, 0.75, "bench", "ok", False),
        ("spark", 2, 1.25, "bench", "ok", False),
    ]
    assert [json.loads(t[6]) for t in trials] == [
        {"impl": "mllib"},
        {"impl": "sklearn"},
        {"impl": "mllib"},
    ]
    # Rows 1 and 3 are the same configuration: repetitions 1 and 2 of it.
    assert [t[7] for t in trials] == [1, 1, 2]

    metrics = query(db, "SELECT accuracy FROM observations ORDER BY trial_id")
    assert metrics == [(93.25,), (91.5,), (94.0,)]

    obs = query(
        db, "SELECT engine, workers, accuracy, impl, source FROM observations ORDER BY 1, 3"
    )
    assert obs == [
        ("dask", 4, 91.5, "sklearn", "import:bench.csv"),
        ("spark", 2, 93.25, "mllib", "import:bench.csv"),
        ("spark", 2, 94.0, "mllib", "import:bench.csv"),
    ]


def test_semicolon_file_empty_cells_and_mixed_column(tmp_path: Path) -> None:
    csv_path = write(
        tmp_path / "semi.csv",
        "engine;workers;Train Time (s);f1;note;status\n"
        "spark;2;1.5;0.9;first;ok\n"
        "dask;;2.5;;3;failed\n"
        "ray;1;;0.7;;\n",
    )
    db = tmp_path / "r.duckdb"

    result = import_csv(csv_path, db=db, experiment="exp1")

    assert result.trial_columns == ("engine", "workers", "status")
    assert result.metric_columns == ("train_time_s", "f1")
    assert result.param_columns == ("note",)
    assert result.experiment == "exp1"
    trials = query(
        db,
        "SELECT engine, workers, status, experiment, params FROM observations ORDER BY trial_id",
    )
    assert [t[:4] for t in trials] == [
        ("spark", 2, "ok", "exp1"),
        ("dask", None, "failed", "exp1"),
        ("ray", 1, "ok", "exp1"),
    ]
    # A column mixing text and numbers is a param; its numbers stay numbers in the JSON.
    assert [json.loads(t[4]) for t in trials] == [{"note": "first"}, {"note": 3}, {}]
    metrics = query(db, "SELECT f1, train_time_s FROM observations ORDER BY trial_id")
    assert metrics == [(0.9, 1.5), (None, 2.5), (0.7, None)]
    obs = query(db, "SELECT engine, train_time_s, f1, note FROM observations ORDER BY trial_id")
    assert obs == [("spark", 1.5, 0.9, "first"), ("dask", 2.5, None, "3"), ("ray", None, 0.7, None)]


def test_semicolon_file_with_decimal_commas(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "eu.csv", "engine;train_s;acc;note\nspark;1,5;0,93;a,b\n")
    result = import_csv(csv_path, db=tmp_path / "r.duckdb")
    assert str(result).startswith("imported 1 trial from eu.csv")
    assert result.metric_columns == ("acc",)
    assert query(tmp_path / "r.duckdb", "SELECT train_s, acc, note FROM observations") == [
        (1.5, 0.93, "a,b")
    ]


def test_tab_delimited_with_bom_and_trailing_delimiter(tmp_path: Path) -> None:
    csv_path = tmp_path / "tabs.tsv"
    csv_path.write_bytes("\ufeffengine\tepochs\tloss\t\nlocal\t10\t0.5\t\n".encode())
    result = import_csv(csv_path, db=tmp_path / "r.duckdb")
    assert result.trial_columns == ("engine", "epochs")
    assert result.metric_columns == ("loss",)
    assert query(tmp_path / "r.duckdb", "SELECT engine, epochs FROM trials") == [("local", 10)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b\n1,2\n", ","),
        ("a;b\n1;2\n", ";"),
        ("a\tb\n1\t2\n", "\t"),
        ("a;b\n0,5;1,5\n", ";"),  # decimal commas do not fool it
        ("a\tnote\n1\tx, y, z\n", "\t"),
        ("single\n1\n", ","),
    ],
)
def test_sniff_delimiter(text: str, expected: str) -> None:
    assert sniff_delimiter(text) == expected


def test_two_imports_append_two_runs(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    first = import_csv(write(tmp_path / "a.csv", GOOD_CSV), db=db)
    second = import_csv(write(tmp_path / "b.csv", GOOD_CSV), db=db)
    assert first.run_id != second.run_id
    assert query(db, "SELECT count(*) FROM trials") == [(6,)]
    assert sorted(query(db, "SELECT source FROM runs")) == [("import:a.csv",), ("import:b.csv",)]


def test_store_conflict_rolls_back_everything(tmp_path: Path) -> None:
    """A column that is a param in the database cannot come back as a metric: nothing is written,
    not even the run row."""
    db = tmp_path / "r.duckdb"
    import_csv(write(tmp_path / "a.csv", "engine,impl\nlocal,sk\n"), db=db)
    before = query(db, "SELECT count(*) FROM runs"), query(db, "SELECT count(*) FROM trials")
    with pytest.raises(RunnerError, match="impl"):
        import_csv(write(tmp_path / "b.csv", "engine,impl\nlocal,3\n"), db=db)
    after = query(db, "SELECT count(*) FROM runs"), query(db, "SELECT count(*) FROM trials")
    assert after == before


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("engine,workers\nlocal,two\n", r"line 2, column workers: 'two' is not a whole number"),
        ("engine,workers\nlocal,2.5\n", r"column workers: '2.5'"),
        ("engine,train_s\nlocal,fast\n", r"column train_s: 'fast' is not a number"),
        ("engine,status\nlocal,crashed\n", r"column status: 'crashed'"),
        ("engine,warmup\nlocal,maybe\n", r"column warmup: 'maybe'"),
        ("Train s,train_s\n1,2\n", r"'Train s' and 'train_s' both become 'train_s'"),
        ("engine,(%)\nlocal,1\n", r"header '\(%\)' of column 2"),
        ("engine,,x\nlocal,1,2\n", r"header '' of column 2"),
        ("engine,run_id\nlocal,abc\n", r"set by the import"),
        ("engine,x\nlocal,1,2\n", r"line 2: 3 fields but the header has 2"),
        ('engine,x\n"local,1\n', r"not valid CSV"),
    ],
)
def test_bad_file_raises_and_creates_nothing(tmp_path: Path, text: str, match: str) -> None:
    db = tmp_path / "r.duckdb"
    with pytest.raises(RunnerError, match=match) as info:
        import_csv(write(tmp_path / "bad.csv", text), db=db)
    assert "\n" not in str(info.value)
    assert not db.exists()


# -- CLI ------------------------------------------------------------------------------------


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNNER, "import", "csv", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_import(tmp_path: Path) -> None:
    write(tmp_path / "bench.csv", GOOD_CSV)
    proc = run_cli("bench.csv", "--db", "out.duckdb", "--experiment", "paper", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("imported 3 trials from bench.csv as run ")
    assert "(experiment paper)" in line
    assert "trial columns engine, workers, train_s; metrics accuracy; params impl" in line
    run_id = line.split(" as run ")[1].split()[0]
    assert query(tmp_path / "out.duckdb", "SELECT run_id, source FROM runs") == [
        (run_id, "import:bench.csv")
    ]


def _bad_input(kind: str, tmp_path: Path) -> Path:
    target = tmp_path / "input.csv"
    if kind == "missing":
        return tmp_path / "nope.csv"
    if kind == "empty":
        target.write_bytes(b"")
    elif kind == "blank":
        target.write_text("\n \n")
    elif kind == "header_only":
        target.write_text("engine,workers\n")
    elif kind == "directory":
        target.mkdir()
    elif kind == "binary":
        target.write_bytes(bytes(range(256)) * 4)
    elif kind == "latin1":
        target.write_bytes("engine,note\nlocal,caf\xe9\n".encode("latin-1"))
    elif kind == "duplicate":
        target.write_text("Workers,workers\n1,2\n")
    elif kind == "bad_workers":
        target.write_text("engine,workers\nlocal,2\nlocal,many\n")
    return target


BAD_KINDS = [
    "missing",
    "empty",
    "blank",
    "header_only",
    "directory",
    "binary",
    "latin1",
    "duplicate",
    "bad_workers",
]


def assert_one_error_line(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert proc.stdout == ""


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_cli_bad_input_new_db(tmp_path: Path, kind: str) -> None:
    bad = _bad_input(kind, tmp_path)
    db = tmp_path / "new.duckdb"
    proc = run_cli(bad, "--db", db, cwd=tmp_path)
    assert_one_error_line(proc)
    assert not db.exists()
    assert not (tmp_path / "new.duckdb.wal").exists()


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_cli_bad_input_existing_db_unchanged(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "old.duckdb"
    import_csv(write(tmp_path / "good.csv", GOOD_CSV), db=db)
    digest = sha256(db)
    bad = _bad_input(kind, tmp_path)
    proc = run_cli(bad, "--db", db, cwd=tmp_path)
    assert_one_error_line(proc)
    assert sha256(db) == digest


def test_cli_db_is_directory(tmp_path: Path) -> None:
    write(tmp_path / "bench.csv", GOOD_CSV)
    (tmp_path / "dbdir").mkdir()
    proc = run_cli("bench.csv", "--db", "dbdir", cwd=tmp_path)
    assert_one_error_line(proc)
    assert "directory" in proc.stderr
    assert list((tmp_path / "dbdir").iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"not a database, just text\n", b"\x00" * 4096])
def test_cli_db_not_duckdb(tmp_path: Path, content: bytes) -> None:
    write(tmp_path / "bench.csv", GOOD_CSV)
    db = tmp_path / "notes.duckdb"
    db.write_bytes(content)
    proc = run_cli("bench.csv", "--db", db, cwd=tmp_path)
    assert_one_error_line(proc)
    assert db.read_bytes() == content


def test_cli_db_folder_missing(tmp_path: Path) -> None:
    write(tmp_path / "bench.csv", GOOD_CSV)
    proc = run_cli("bench.csv", "--db", tmp_path / "no" / "r.duckdb", cwd=tmp_path)
    assert_one_error_line(proc)
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", ["csv", "prices"])
def test_cli_refuses_a_fifo_before_opening_it(tmp_path: Path, command: str) -> None:
    # opening a FIFO with no writer blocks for good: the path must be refused unopened
    fifo = tmp_path / "f.csv"
    os.mkfifo(fifo)
    proc = subprocess.run(
        [RUNNER, "import", command, "f.csv", "--db", "r.duckdb"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_error_line(proc)
    assert "not a regular file" in proc.stderr
    assert not (tmp_path / "r.duckdb").exists()


@pytest.mark.parametrize("func", [import_csv, import_prices])
def test_a_device_is_not_a_csv_file(tmp_path: Path, func: Any) -> None:
    with pytest.raises(RunnerError, match=r"^/dev/null is not a regular file \(a FIFO"):
        func("/dev/null", db=tmp_path / "r.duckdb")
    assert not (tmp_path / "r.duckdb").exists()


# -- prices -------------------------------------------------------------------------------------


def test_cli_import_prices(tmp_path: Path) -> None:
    # 004's Appendix C layout: a "Type" column, "$" signs, GiB with a decimal
    write(
        tmp_path / "ec2.csv",
        "Instance,vCPU,Mem (GiB),Cost ($/hr)\nm3.xlarge,4,15,$0.27\nc3.xlarge,4,7.5,$0.21\n",
    )
    proc = subprocess.run(
        [RUNNER, "import", "prices", "ec2.csv", "--db", "p.duckdb"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "imported 2 prices from ec2.csv: m3.xlarge, c3.xlarge"
    assert query(tmp_path / "p.duckdb", "SELECT * FROM prices ORDER BY name") == [
        ("c3.xlarge", 4, 7.5, 0.21, "import:ec2.csv"),
        ("m3.xlarge", 4, 15.0, 0.27, "import:ec2.csv"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,usd_per_hour\nm4,-1\n", "usd_per_hour '-1' is negative"),
        ("name,usd_per_hour\nm4,1e400\n", "usd_per_hour '1e400' is not a finite number"),
        ("name,usd_per_hour,vcpu\nm4,1,2.5\n", "vcpu '2.5' is not a whole number"),
        ("name,usd_per_hour\nm4,1\nm4,2\n", "'m4' appears twice"),
        ("name,usd_per_hour\n", "has a header but no prices"),
        ("machine,vcpu\nm4,2\n", "no usd_per_hour column"),
    ],
)
def test_cli_import_prices_bad_file(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "p.csv", text)
    proc = subprocess.run(
        [RUNNER, "import", "prices", "p.csv", "--db", "p.duckdb"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "p.duckdb").exists()
