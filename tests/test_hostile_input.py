"""Hostile and malformed input (issue 15), tried as a hostile but fair user would.

Bad values of every ``runner trials``, ``analyze`` and ``report build`` option (NaN, infinities,
negative, huge, empty, not a number, unicode, control characters); SQL injection through every
option that reaches SQL (``--group``, ``--x``, ``--y``, ``--by``, ``--metric``, ``--where``,
``--pool``, ``--base``/``--new``, level names, experiment names, params keys from specs and CSV
headers); malformed specs (types, unknown keys, huge grids) and CSV files; LaTeX and HTML payloads
in experiment names, params, level names, error texts, CSV values and the command line, which
must come out of ``report build`` (and ``analyze --format latex``) literally.

Each case asserts what applies: exit code 2 for refused input (0 where the hostile text is plain
data), one line on stderr without a traceback, no hang, and the database unchanged (sha256 before
and after). Most cases run in-process through the console scripts' own entry point
(:func:`runner.climain.run_app`, as ``runner``/``analyze``/``report`` run it) to stay fast; a few
run as real subprocesses. :data:`N_CASES` counts them (a test checks the count).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

# ---------------------------------------------------------------------------------------------
# payloads

SQL = [
    "x'); DROP TABLE trials; --",
    '"; DROP TABLE trials; --',
    "engine; DROP TABLE trials",
    "engine) OR 1=1 --",
    "1=1 OR engine",
    "engine='x' OR '1'='1",
    "train_s/0",
    "read_csv('/etc/passwd')",
    "workers=1; DROP TABLE trials",
    "engine=x' OR '1'='1",
    "engine=NULL",
    "train_s>=1e999",
]


def some(values: Sequence[str], i: int, k: int = 6) -> list[str]:
    """``k`` of ``values``, starting at the ``i``-th: options tried with a few each, all of
    them over the options (keeps the file within its time)."""
    return [values[(i + j) % len(values)] for j in range(min(k, len(values)))]


#: Bad values for an option that takes a number.
NUMBERS = [
    "nan",
    "inf",
    "-inf",
    "-1",
    "1e308",
    "99999999999999999999",
    "",
    "abc",
    "ünï",
    "1\x1b[2J",
]
LATEX = [
    r"\input{/etc/passwd}",
    r"\write18{touch pwned}",
    r"\openin5=/etc/passwd",
    "^^5cinput{/etc/passwd}",
    "{unbalanced",
]
HTML = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    '<a href="javascript:alert(3)">x</a>',
]
#: What a payload must never look like in a report: (format, regular expression).
RAW_FORBIDDEN = [
    ("tex", r"\\input\{/etc/passwd"),
    ("tex", r"\\write18"),
    ("tex", r"\\openin"),
    ("tex", r"\^\^5c"),
    ("tex", r"(?<!\\)\{unbalanced"),  # a brace of the data not escaped
    ("html", "<script>alert"),
    ("html", "<img src=x"),
    ("html", 'onerror="alert'),
    ("html", 'href="javascript:'),
]

# ---------------------------------------------------------------------------------------------
# running the console scripts in-process


def invoke(tool: str, args: Sequence[Any]) -> tuple[int, str, str]:
    """``tool`` (runner / analyze / report) on ``args`` in this process, the way its console
    script runs it: (exit code, stdout, stderr). Any exception but SystemExit propagates (a
    traceback is a failure)."""
    from typer.testing import CliRunner

    from runner.climain import run_app

    if tool == "runner":
        from runner.cli import app
    elif tool == "analyze":
        from analysis.cli import app
    else:
        from reports.cli import app
    with CliRunner().isolation() as (out, err, _):
        try:
            run_app(app, [str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        return code, out.getvalue().decode(errors="replace"), err.getvalue().decode("utf-8")


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def refused(code: int, err: str, out: str = "") -> str:
    """Exit 2, exactly one line on stderr, no traceback; the line."""
    assert code == 2, (code, out[-500:], err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("error: "), err
    return lines[0]


def data_or_refused(code: int, err: str, out: str = "") -> None:
    """Hostile text that may be plain data: exit 0 (it was data), or a one-line refusal."""
    assert code in (0, 2), (code, out[-500:], err[-2000:])
    assert "Traceback" not in err
    if code == 2:
        refused(code, err)


# ---------------------------------------------------------------------------------------------
# the hostile database: a real run whose spec carries payloads, then a CSV import of more


def _spec_text(name: str) -> str:
    labels = ", ".join(_toml_str(" ".join(p)) for p in (LATEX, HTML))  # two levels
    return (
        f"name = {_toml_str(name)}\nn = 3\nwarmup = 0\nrounds = 1\n"
        f'[[matrix]]\nengine = "local"\nworkload = "noop"\nlabel = [{labels}]\n'
        f"note = {_toml_str(LATEX[0] + HTML[0])}\n"
    )


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _hostile_csv(path: Path) -> None:
    rows: list[list[Any]] = [
        ["engine", "workload", "workers", "train_s", "note", "status", "error"]
    ]
    levels = ["local", *(f"e{i}{p}" for i, p in enumerate([*LATEX, *HTML, SQL[0]]))]
    for rep in range(4):
        for i, level in enumerate(levels):
            note = (LATEX + HTML)[(rep + i) % (len(LATEX) + len(HTML))]
            train = 1.0 + i / 10 + rep / 100 + (rep % 2) * 0.03
            rows.append([level, "knn", 1 + rep % 2, train, note, "ok", ""])
    for payload in [*LATEX, *HTML]:
        rows.append(["local", "knn", 1, "", "x", "failed", "boom " + payload])
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


EXPERIMENT = "exp" + HTML[0] + LATEX[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile_input")


@pytest.fixture(scope="module")
def hostile_db(folder: Path) -> Path:
    """Trials of a real noop run (a subprocess) and of an imported CSV, full of payloads."""
    spec_dir = folder / "spec{x}<b>"  # the command line (the spec's path) reaches the report
    spec_dir.mkdir()
    spec = spec_dir / "h.toml"
    spec.write_text(_spec_text("run" + HTML[1] + LATEX[1]), encoding="utf-8")
    db = folder / "h.duckdb"
    proc = run_cli("runner", "trials", "-e", spec, "--db", db, "--quiet", "--no-sample",
                   timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = folder / "h.csv"
    _hostile_csv(data)
    code, out, err = invoke("runner", ["import", "csv", data, "--experiment", EXPERIMENT,
                                       "--db", db])  # fmt: skip
    assert code == 0, (out, err)
    return db


@pytest.fixture
def writable_db(hostile_db: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the hostile database for commands that would write (they must not)."""
    db = tmp_path / "w.duckdb"
    shutil.copy(hostile_db, db)
    before = digest(db)
    yield db
    assert digest(db) == before, "the database changed"


@pytest.fixture
def read_db(hostile_db: Path) -> Iterator[Path]:
    """The hostile database itself, for reading commands; checked unchanged after each."""
    before = digest(hostile_db)
    yield hostile_db
    assert digest(hostile_db) == before, "the database changed"


# ---------------------------------------------------------------------------------------------
# runner trials: bad values of every option

RUN_BASE = ["--engine", "local", "--workload", "noop", "--n", "1", "--warmup", "0", "--quiet",
            "--no-sample"]  # fmt: skip
_RUN_NUMBERS = {
    "--n": [*some(NUMBERS, 0), "0", "1000000000"],
    "--warmup": [*some(NUMBERS, 1), "10000000"],
    "--seed": [*some(NUMBERS, 2), "4294967296"],
    "--timeout": [*some(NUMBERS, 3), "0"],
    "--rounds": [*some(NUMBERS, 4), "0"],
    "--workers": [*some(NUMBERS, 5), "0", "100000"],
    "--threads": [*some(NUMBERS, 6), "0", "5000"],
    "--batch-size": [*some(NUMBERS, 7), "0"],
    "--epochs": [*some(NUMBERS, 8), "0"],
    "--data-fraction": [*some(NUMBERS, 9), "0", "1.5"],
    "--until-ci": ["nan", "inf", "-1", "", "abc", "200%", "0%"],
}
_RUN_NAMES = {
    "--engine": ["", "local,", "ünï", "\x1b]0;x\x07", SQL[0], "local;rm -rf /"],
    "--workload": ["", ",", "ünï", "\x00", SQL[1]],
    "--dataset": ["", "ünï", "../../etc/passwd", SQL[0]],
    "--experiment": [
        "",
        "ünï",
        SQL[0],
        "/dev/null",
        "/etc/passwd",
        "../../etc/shadow.toml",
        "\x1b[2J",
    ],  # fmt: skip
    "--param": [
        "foo=2",
        "=1",
        "k=",
        "k",
        "Bad-Name=1",
        "k=nan",
        "k=inf",
        "k=1e400",
        "k=-1",
        "k=99999999999999999999",
        "ключ=1",
        "k; DROP TABLE trials=1",
        "spin=nan",
        "metrics=100000",
        "seed=1",
        "experiment=x",
        "status=ok",
        "k=1,k=2",
    ],  # fmt: skip
    "--spark-mode": ["", "remote", SQL[0]],
    "--max-n": ["nan", "-1", "0", "10000000", "abc"],
}
RUN_CASES = [
    [opt, value] for opt, values in {**_RUN_NUMBERS, **_RUN_NAMES}.items() for value in values
]
_GRID = {"--workers", "--threads", "--batch-size", "--epochs", "--data-fraction", "--engine",
         "--workload", "--dataset", "--spark-mode"}  # fmt: skip


def _run_args(opt: str, value: str) -> list[str]:
    base = list(RUN_BASE)
    if opt in ("--engine", "--workload", "--n", "--warmup"):
        i = base.index(opt)
        del base[i : i + 2]
    if opt in ("--workers", "--threads", "--spark-mode"):  # options of distributed engines
        base[1] = "dask" if opt != "--spark-mode" else "spark"
        base[3] = "knn"
    if opt == "--experiment":
        base = base[4:]
    extra = ["--until-ci", "5%"] if opt == "--max-n" else []
    return [*base, *extra, opt, value]


@pytest.mark.parametrize(("opt", "value"), RUN_CASES, ids=[f"{o}={v!r}" for o, v in RUN_CASES])
def test_runner_trials_refuses_bad_values(writable_db: Path, opt: str, value: str) -> None:
    code, out, err = invoke("runner", ["trials", *_run_args(opt, value), "--db", writable_db])
    refused(code, err, out)


# ---------------------------------------------------------------------------------------------
# malformed specs

_KNN = '[[matrix]]\nengine = "local"\nworkload = "knn"\n'
_MLP = '[[matrix]]\nengine = "local"\nworkload = "mlp"\n'
SPECS = {
    "not toml": "[[[",
    "binary": "\x00\x01\x02",
    "empty": "",
    "no matrix": 'name = "t"\n',
    "unknown top key": 'name = "t"\nfoo = 1\n' + _KNN,
    "unknown quick key": "[quick]\nfoo = 1\n" + _KNN,
    "unknown expected key": "expected_minutes = {full = 1, slow = 2}\n" + _KNN,
    "unknown knn param": _KNN + "foo = 2\n",
    "unknown mlp param": _MLP + "kk = 2\n",
    "unknown default param": "[defaults]\nfoo = 2\n" + _KNN,
    "unknown workload table": "[workloads.foo]\nk = 1\n" + _KNN,
    "unknown workload": '[[matrix]]\nengine = "local"\nworkload = "sql"\n',
    "unknown engine": '[[matrix]]\nengine = "hadoop"\nworkload = "knn"\n',
    "name int": "name = 3\n" + _KNN,
    "name table": "name = {a = 1}\n" + _KNN,
    "name empty": 'name = ""\n' + _KNN,
    "name huge": 'name = "' + "x" * 100_000 + '"\n' + _KNN,
    "description int": "description = 3\n" + _KNN,
    "seed string": 'seed = "abc"\n' + _KNN,
    "seed negative": "seed = -1\n" + _KNN,
    "seed float": "seed = 1.5\n" + _KNN,
    "seed huge": "seed = 9223372036854775807\n" + _KNN,
    "n nan": "n = nan\n" + _KNN,
    "n string": 'n = "ten"\n' + _KNN,
    "n huge": "n = 1000000000\n" + _KNN,
    "warmup negative": "warmup = -1\n" + _KNN,
    "timeout nan": "timeout = nan\n" + _KNN,
    "timeout inf": "timeout = inf\n" + _KNN,
    "timeout 1e308": "timeout = 1e308\n" + _KNN,
    "timeout string": 'timeout = "1h"\n' + _KNN,
    "rounds zero": "rounds = 0\n" + _KNN,
    "expected nan": "expected_minutes = {full = nan}\n" + _KNN,
    "matrix int": "matrix = 3\n",
    "matrix of ints": "matrix = [1, 2]\n",
    "matrix entry without engine": '[[matrix]]\nworkload = "knn"\n',
    "defaults int": "defaults = 3\n" + _KNN,
    "workloads int": "workloads = 3\n" + _KNN,
    "workload table int": "workloads = {knn = 3}\n" + _KNN,
    "quick int": "quick = 3\n" + _KNN,
    "quick matrix of ints": "[quick]\nmatrix = [3]\n" + _KNN,
    "k string": _KNN + 'k = "five"\n',
    "k table": _KNN + "k = {a = 1}\n",
    "k date": _KNN + "k = 1979-05-27\n",
    "k nan": _KNN + "k = nan\n",
    "k beyond bigint": _KNN + "k = 10000000000000000000\n",
    "k huge": _KNN + "k = 9223372036854775807\n",
    "k empty levels": _KNN + "k = []\n",
    "workers nan": _KNN.replace("local", "dask") + "workers = nan\n",
    "workers huge": _KNN.replace("local", "dask") + "workers = 100000\n",
    "memory inf": _KNN + "memory_gb = inf\n",
    "fraction 2": _KNN + "data_fraction = 2\n",
    "hidden string": _MLP + 'hidden = "big"\n',
    "hidden nested": _MLP + "hidden = [[[1]]]\n",
    "hidden huge": _MLP + "hidden = [1000000000000]\n",
    "learning rate inf": _MLP + "learning_rate = inf\n",
    "param name unicode": _KNN + '"ключ" = 1\n',
    "param name control": _KNN + '"a\\u0007" = 1\n',
    "param name sql": _KNN + '"k; DROP TABLE trials" = 1\n',
    "param name quote": _KNN + '"k\\"); DROP TABLE trials; --" = 1\n',
    "param status": _KNN + 'status = "ok"\n',
    "param run_id": _KNN + 'run_id = "x"\n',
    "experiment in matrix": _KNN + 'experiment = "x"\n',
    "seed in matrix": _KNN + "seed = 5\n",
    "label nan": _KNN + "table = nan\n",
    "noop metrics huge": '[[matrix]]\nengine = "local"\nworkload = "noop"\nmetrics = 100000\n',
    "huge grid": _KNN + "k = [" + ",".join(map(str, range(1, 10_002))) + "]\n",
    "huge cross": _KNN.replace("local", "dask")
    + "k = ["
    + ",".join(map(str, range(1, 201)))
    + "]\nworkers = ["
    + ",".join(map(str, range(1, 101)))
    + "]\n",
}


@pytest.mark.parametrize("text", list(SPECS.values()), ids=list(SPECS))
def test_malformed_specs_are_refused_before_anything_is_written(
    writable_db: Path, tmp_path: Path, text: str
) -> None:
    spec = tmp_path / "t.toml"
    spec.write_text(text, encoding="utf-8")
    code, out, err = invoke("runner", ["trials", "-e", spec, "--db", writable_db, "--quiet"])
    line = refused(code, err, out)
    assert len(line) < 2000


def test_a_fresh_database_is_not_created_by_a_refused_spec(tmp_path: Path) -> None:
    spec = tmp_path / "t.toml"
    spec.write_text(_KNN + "foo = 2\n")
    code, out, err = invoke("runner", ["trials", "-e", spec, "--db", tmp_path / "new.duckdb"])
    assert "knn takes no parameter foo; its parameters: k" in refused(code, err, out)
    assert not (tmp_path / "new.duckdb").exists()


# ---------------------------------------------------------------------------------------------
# runner import csv: headers and values

CSVS = {
    # (text, refused?)
    "sql header": (
        'engine,workload,"a""; DROP TABLE trials; --",train_s\nlocal,knn,1,1.0\n',
        False,
    ),
    "sql value": ("engine,workload,train_s\nx'); DROP TABLE trials; --,knn,1.0\n", False),
    "latex value": ("engine,workload,train_s\n" + _toml_str(LATEX[0]) + ",knn,1.0\n", False),
    "control header": ("engine,workload,a\x1b[2J,train_s\nlocal,knn,1,1.0\n", False),
    "empty header": ("engine,workload,,train_s\nlocal,knn,1,1.0\n", True),
    "duplicate header": ("engine,workload,train_s,train_s\nlocal,knn,1,1.0\n", True),
    "unicode header": ("engine,workload,ключ,train_s\nlocal,knn,1,1.0\n", True),
    "reserved header": ("engine,workload,params_id,train_s\nlocal,knn,1,1.0\n", True),
    "nan value": ("engine,workload,train_s\nlocal,knn,nan\n", True),
    "inf value": ("engine,workload,train_s\nlocal,knn,inf\n", True),
    "huge workers": ("engine,workload,workers,train_s\nlocal,knn,99999999999999999999,1\n", True),
    "nan workers": ("engine,workload,workers,train_s\nlocal,knn,nan,1.0\n", True),
    "empty": ("", True),
    "header only": ("engine,workload,train_s\n", True),
    "ragged": ("engine,workload,train_s\nlocal,knn\n", True),
    "unterminated quote": ('engine,workload,train_s\n"local,knn,1.0\n', True),
    "binary": ("\x00\x01\x02", True),
}


@pytest.mark.parametrize(("text", "is_refused"), list(CSVS.values()), ids=list(CSVS))
def test_import_csv_takes_hostile_text_as_data_or_refuses_it(
    hostile_db: Path, tmp_path: Path, text: str, is_refused: bool
) -> None:
    db = tmp_path / "i.duckdb"
    shutil.copy(hostile_db, db)
    before = digest(db)
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    code, out, err = invoke("runner", ["import", "csv", path, "--db", db])
    if is_refused:
        refused(code, err, out)
        assert digest(db) == before
        return
    assert code == 0 and err == "", (out, err)
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:  # every table still there
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert {"trials", "runs", "params"} <= tables
        engines = {r[0] for r in con.execute("SELECT engine FROM observations").fetchall()}
    if text.startswith("engine,workload,train_s\n"):  # the hostile value is stored as it was
        first = next(csv.reader([text.splitlines()[1]]))[0]
        assert first in engines


@pytest.mark.parametrize("kind", ["directory", "missing", "latin-1"])
def test_import_csv_refuses_what_is_not_a_csv_file(writable_db: Path, tmp_path: Path, kind):
    path = {"directory": tmp_path, "missing": tmp_path / "nope.csv"}.get(kind, tmp_path / "l.csv")
    if kind == "latin-1":
        path.write_bytes("engine,workload,train_s\nlocal\xe9,knn,1.0\n".encode("latin-1"))
    code, out, err = invoke("runner", ["import", "csv", path, "--db", writable_db])
    refused(code, err, out)


def test_import_csv_refuses_a_fifo(tmp_path: Path) -> None:
    """A FIFO as the CSV file is refused before it is opened (it blocked for good)."""
    fifo = tmp_path / "f.csv"
    os.mkfifo(fifo)
    proc = run_cli("runner", "import", "csv", fifo, "--db", tmp_path / "r.duckdb", timeout=5)
    refused(proc.returncode, proc.stderr, proc.stdout)


# ---------------------------------------------------------------------------------------------
# analyze: bad values of every option, injection through every option that reaches SQL

_TT = ["ttest", "--group", "engine", "--a", "local", "--b", "e5" + HTML[0]]
_PW = ["power", "--group", "engine", "--a", "local", "--b", "e5" + HTML[0]]
_CMP = ["compare", "--base", "engine=local", "--new", "workers=2"]
#: option -> the command it is tried on (bad numbers for each)
AN_NUMBERS: dict[str, list[str]] = {
    "summary --bootstrap": ["summary"],
    "summary --seed": ["summary"],
    "ttest --bootstrap": _TT,
    "ttest --confidence": _TT,
    "anova --alpha": ["anova", "--group", "engine"],
    "anova --seed": ["anova", "--group", "engine"],
    "anova --ss-type": ["anova", "--group", "engine", "--group", "workers"],
    "regress --confidence": ["regress", "--x", "workers"],
    "power --effect": _PW,
    "power --power": _PW,
    "power --alpha": _PW,
    "scaling --predict": ["scaling"],
    "scaling --min-gain": ["scaling"],
    "scaling --bootstrap": ["scaling"],
    "scaling --confidence": ["scaling"],
    "cost --usd-per-core-hour": ["cost"],
    "cost --deadline": ["cost"],
    "compare --threshold": _CMP,
    "compare --alpha": _CMP,
    "compare --confidence": _CMP,
    "compare --fail-on-regression": _CMP,
}
#: values that are fine for an option (the rest of NUMBERS must be refused)
_VALID = {
    "--seed": {"99999999999999999999"},  # any whole number >= 0 seeds numpy
    "--predict": {""},  # no predictions
    "--deadline": {"1e308", "inf"},
    "--usd-per-core-hour": set(),
}
AN_NUMBER_CASES = [
    (key, value)
    for i, key in enumerate(AN_NUMBERS)
    for value in some([*NUMBERS, "0", "1e12"], i, 7)
    if value not in _VALID.get(key.split()[1], set())
]


@pytest.mark.parametrize(("key", "value"), AN_NUMBER_CASES, ids=[f"{k}={v!r}" for k, v in
                                                                 AN_NUMBER_CASES])  # fmt: skip
def test_analyze_bad_numbers(read_db: Path, key: str, value: str) -> None:
    args = [*AN_NUMBERS[key], key.split()[1], value, "--db", read_db]
    code, out, err = invoke("analyze", args)
    if code == 0:  # only where the value is meaningful: a number the option may take
        number = float(value)
        assert math.isfinite(number) or key.endswith("--deadline"), (args, out)
        return
    refused(code, err, out)


RESAMPLES = [
    (["summary", "--bootstrap", "10000001"], "outside 100..10,000,000"),
    ([*_TT, "--bootstrap", "1000000000000"], "outside 100..10,000,000"),
    (["scaling", "--bootstrap", "200001"], "at most 200,000 resamples"),
]


@pytest.mark.parametrize(("args", "needle"), RESAMPLES, ids=[a[0] for a, _ in RESAMPLES])
def test_analyze_bootstrap_is_bounded(read_db: Path, args: list[str], needle: str) -> None:
    """Too many resamples are refused before any is drawn (1e12 was an ArrayMemoryError)."""
    code, out, err = invoke("analyze", [*args, "--db", read_db])
    assert needle in refused(code, err, out)


#: every option that reaches SQL, with the command it is tried on ({} is the payload)
SQL_OPTIONS: dict[str, list[str]] = {
    "summary --where": ["summary", "--where", "{}"],
    "summary --by": ["summary", "--by", "{}"],
    "summary --metric": ["summary", "--metric", "{}"],
    "anova --group": ["anova", "--group", "{}"],
    "anova --pool": ["anova", "--group", "engine", "--pool", "{}"],
    "ttest --a": ["ttest", "--group", "engine", "--a", "{}", "--b", "local"],
    "ttest --group": ["ttest", "--group", "{}", "--a", "1", "--b", "2"],
    "regress --x": ["regress", "--x", "{}"],
    "regress --y": ["regress", "--x", "workers", "--y", "{}"],
    "regress --by": ["regress", "--x", "workers", "--by", "{}"],
    "scaling --x": ["scaling", "--x", "{}"],
    "scaling --by": ["scaling", "--by", "{}"],
    "scaling --size": ["scaling", "--size", "{}"],
    "cost --machine": ["cost", "--machine", "{}"],
    "cost --nodes": ["cost", "--nodes", "{}"],
    "cost --metric": ["cost", "--metric", "{}"],
    "compare --base": ["compare", "--base", "{}", "--new", "engine=local"],
    "compare --match": [
        "compare",
        "--base",
        "engine=local",
        "--new",
        "workers=2",
        "--match",
        "{}",
    ],  # fmt: skip
    "power --group": ["power", "--group", "{}", "--a", "1", "--b", "2"],
}
SQL_CASES = [(key, payload) for i, key in enumerate(SQL_OPTIONS) for payload in some(SQL, i)]


@pytest.mark.parametrize(("key", "payload"), SQL_CASES, ids=[f"{k}={p}" for k, p in SQL_CASES])
def test_analyze_sql_injection_is_data_or_refused(read_db: Path, key: str, payload: str) -> None:
    args = [a.replace("{}", payload) for a in SQL_OPTIONS[key]]
    code, out, err = invoke("analyze", [*args, "--db", read_db])
    data_or_refused(code, err, out)


@pytest.fixture(scope="module")
def analyze_latex(hostile_db: Path) -> str:
    code, out, err = invoke("analyze", ["summary", "--by", "engine,note", "--metric", "train_s",
                                        "--format", "latex", "--db", hostile_db])  # fmt: skip
    assert code == 0, err
    return out


@pytest.mark.parametrize("payload", [*LATEX, *HTML])
def test_analyze_latex_output_escapes_level_names(analyze_latex: str, payload: str) -> None:
    out = analyze_latex
    for fmt, raw in RAW_FORBIDDEN:
        if fmt == "tex":
            assert not re.search(raw, out), raw
    assert _SHOWN_TEX[payload] in out


def test_summary_of_a_csv_without_wall_s(tmp_path: Path) -> None:
    """A default metric with no value (wall_s of a CSV without it) was int(None) in the summary
    tails for a while (65e65d3; fixed in 83fcfe9)."""
    data = tmp_path / "in.csv"
    data.write_text("engine,workload,train_s\n" + "local,knn,1.5\n" * 3 + "local,knn,1.7\n")
    db = tmp_path / "r.duckdb"
    assert invoke("runner", ["import", "csv", data, "--db", db])[0] == 0
    code, out, err = invoke("analyze", ["summary", "--db", db])
    assert code == 0 and "1.5" in out, err


# ---------------------------------------------------------------------------------------------
# report build: payloads come out literally; bad options are one line


@pytest.fixture(scope="module")
def reports(hostile_db: Path, folder: Path) -> dict[str, str]:
    before = digest(hostile_db)
    out: dict[str, str] = {}
    for fmt in ("html", "tex"):
        path = folder / f"report.{fmt}"
        code, stdout, err = invoke("report", ["build", "--format", fmt, "--db", hostile_db,
                                              "--out", path, "--quiet"])  # fmt: skip
        assert code == 0, (stdout, err)
        out[fmt] = path.read_text(encoding="utf-8")
    assert digest(hostile_db) == before
    return out


@pytest.mark.parametrize(("fmt", "raw"), RAW_FORBIDDEN, ids=[f"{f}:{r}" for f, r in RAW_FORBIDDEN])
def test_report_never_contains_a_raw_payload(reports: dict[str, str], fmt: str, raw: str) -> None:
    assert not re.search(raw, reports[fmt])


#: How LaTeX shows each payload (every special character escaped one at a time).
_SHOWN_TEX = {
    LATEX[0]: r"\textbackslash{}input\{/etc/passwd\}",
    LATEX[1]: r"\textbackslash{}write18\{touch pwned\}",
    LATEX[2]: r"\textbackslash{}openin5=/etc/passwd",
    LATEX[3]: r"\textasciicircum{}\textasciicircum{}5cinput\{/etc/passwd\}",
    LATEX[4]: r"\{unbalanced",
    HTML[0]: r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{}",
    HTML[1]: r"\textless{}img src=x onerror=",
    HTML[2]: r"\textless{}a href=",
}
_SHOWN = [
    ("html", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("html", "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;"),
    ("html", "&lt;a href=&#34;javascript:alert(3)&#34;&gt;"),
    ("html", r"\input{/etc/passwd}"),
    ("html", r"\write18{touch pwned}"),
    ("html", "spec{x}&lt;b&gt;"),  # the command line
    *(("tex", shown) for shown in _SHOWN_TEX.values()),
]


@pytest.mark.parametrize(("fmt", "shown"), _SHOWN, ids=[f"{f}:{s}" for f, s in _SHOWN])
def test_report_shows_payloads_literally(reports: dict[str, str], fmt: str, shown: str) -> None:
    assert shown in reports[fmt]


def test_report_latex_is_balanced(reports: dict[str, str]) -> None:
    """Every brace of the data is escaped: the document's own braces balance."""
    text = reports["tex"].replace("\\{", "").replace("\\}", "")
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0


REPORT_BAD = [
    ["--format", "docx"],
    ["--format", ""],
    ["--paper", "999"],
    ["--paper", SQL[0]],
    ["--paper", ""],
    ["--compare", "engine=" + HTML[0]],
    ["--compare", SQL[0]],
    ["--compare", "nosuchcolumn=1"],
    ["--compare", ""],
    ["--compare", "engine="],
]


@pytest.mark.parametrize("args", REPORT_BAD, ids=[" ".join(a) for a in REPORT_BAD])
def test_report_bad_options(read_db: Path, tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "r.html"
    code, stdout, err = invoke("report", ["build", "--format", "html", *args, "--db", read_db,
                                          "--out", out, "--quiet"])  # fmt: skip
    refused(code, err, stdout)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# --db of every command: what is not a results database

DB_TOOLS = {
    "analyze": ["summary"],
    "report": ["build", "--format", "html", "--quiet"],
    "runner": ["import", "csv", "{csv}"],
}
BAD_DBS = ["", "/dev/null", "/etc/passwd", "/nonexistent/x.duckdb", "{dir}", "{text}"]
DB_CASES = [(tool, db) for tool in DB_TOOLS for db in BAD_DBS]


def _db_args(tool: str, db: str, tmp_path: Path) -> list[str]:
    text = tmp_path / "text.duckdb"
    text.write_text("hello")
    data = tmp_path / "in.csv"
    data.write_text("engine,workload,train_s\nlocal,knn,1.0\n")
    names = {"{dir}": str(tmp_path), "{text}": str(text), "{csv}": str(data)}
    args = [names.get(a, a) for a in DB_TOOLS[tool]]
    out = ["--out", str(tmp_path / "r.html")] if tool == "report" else []
    return [*args, *out, "--db", names.get(db, db)]


@pytest.mark.parametrize(("tool", "db"), DB_CASES, ids=[f"{t} {d!r}" for t, d in DB_CASES])
def test_a_db_that_is_not_a_results_file(tmp_path: Path, tool: str, db: str) -> None:
    before = digest(Path("/etc/passwd"))
    code, out, err = invoke(tool, _db_args(tool, db, tmp_path))
    refused(code, err, out)
    assert (tmp_path / "text.duckdb").read_text() == "hello"
    assert digest(Path("/etc/passwd")) == before and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("tool", list(DB_TOOLS))
def test_a_db_that_cannot_be_read(tmp_path: Path, tool: str) -> None:
    code, out, err = invoke(tool, _db_args(tool, "/proc/self/mem", tmp_path))
    refused(code, err, out)


PRICES = {
    "empty path": None,
    "device": "/dev/null",
    "not a prices file": "/etc/passwd",
    "directory": "{dir}",
    "missing": "/nonexistent.csv",
    "fifo": "{fifo}",
    "unreadable": "/proc/self/mem",
    "nan price": "name,usd_per_hour\nm1,nan\n",
    "negative price": "name,usd_per_hour\nm1,-1\n",
    "inf price": "name,usd_per_hour\nm1,1e400\n",
    "sql name": 'name,usd_per_hour\n"x\'); DROP TABLE trials; --",1\n',
    "latex name": "name,usd_per_hour\n\\input{/etc/passwd},1\n",
}


@pytest.mark.parametrize("prices", list(PRICES.values()), ids=list(PRICES))
def test_cost_prices_file(read_db: Path, tmp_path: Path, prices: str | None) -> None:
    """``analyze cost --prices``: what is not a prices CSV, or holds bad prices, is one line."""
    os.mkfifo(tmp_path / "fifo")
    path = {None: "", "{dir}": str(tmp_path), "{fifo}": str(tmp_path / "fifo")}.get(prices)
    if path is None and prices is not None and "\n" in prices:
        (tmp_path / "p.csv").write_text(prices, encoding="utf-8")
        path = str(tmp_path / "p.csv")
    args = ["cost", "--machine", "engine", "--prices", path or prices or "", "--db", read_db]
    code, out, err = invoke("analyze", args)
    refused(code, err, out)


# ---------------------------------------------------------------------------------------------
# a few as real processes: exit code, one line, no hang, database unchanged

SUBPROCESS = [
    ["runner", "trials", "--timeout", "nan"],
    ["runner", "trials", "--seed", "-1"],
    ["runner", "trials", "--engine", "local", "--workload", "knn", "--param", "foo=2"],
    ["analyze", "summary", "--bootstrap", "1e12"],
    ["analyze", "summary", "--bootstrap", "1000000000000"],
    ["analyze", "summary", "--where", SQL[0]],
    ["analyze", "regress", "--x", "workers", "--y", SQL[1]],
    ["report", "build", "--format", "html", "--compare", SQL[0]],
]


@pytest.mark.parametrize("args", SUBPROCESS, ids=[" ".join(a[:3]) for a in SUBPROCESS])
def test_real_processes_refuse_in_one_line(writable_db: Path, tmp_path: Path, args: list[str]):
    extra = ["--out", tmp_path / "r.html"] if args[0] == "report" else []
    proc = run_cli(*args, "--db", writable_db, *extra, timeout=120)
    refused(proc.returncode, proc.stderr, proc.stdout)


N_CASES = (
    len(RUN_CASES)
    + len(SPECS)
    + 1
    + len(CSVS)
    + 3
    + 1
    + len(AN_NUMBER_CASES)
    + len(SQL_CASES)
    + len(RESAMPLES)
    + 1  # a summary of a CSV without wall_s
    + len(LATEX)
    + len(HTML)
    + len(RAW_FORBIDDEN)
    + len(_SHOWN)
    + 1
    + len(REPORT_BAD)
    + len(SUBPROCESS)
    + len(DB_CASES)
    + len(PRICES)
    + len(DB_TOOLS)  # unreadable --db
    + 3  # the empty number, the overflowing CSV number, the very wide CSV
)


def test_at_least_the_issues_133_cases() -> None:
    assert N_CASES >= 133, N_CASES


def test_an_empty_number_in_a_list_is_refused(tmp_path: Path) -> None:
    args = ["trials", "--engine", "dask", "--workload", "knn", "--workers", "1,,2", "--dry-run"]
    code, out, err = invoke("runner", [*args, "--db", tmp_path / "r.duckdb"])
    refused(code, err, out)


def test_import_csv_refuses_a_number_that_overflows(tmp_path: Path) -> None:
    """``1e400`` is no more a number than ``inf`` (it was read as a float that overflowed)."""
    path = tmp_path / "o.csv"
    path.write_text("engine,workload,train_s\nlocal,knn,1e400\nlocal,knn,1\n")
    code, out, err = invoke("runner", ["import", "csv", path, "--db", tmp_path / "r.duckdb"])
    refused(code, err, out)
    assert not (tmp_path / "r.duckdb").exists()


def test_import_csv_of_a_very_wide_file_ends(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    names = [f"c{i}" for i in range(3000)]
    path.write_text(f"engine,workload,{','.join(names)}\nlocal,knn,{','.join('1' * 3000)}\n")
    proc = run_cli("runner", "import", "csv", path, "--db", tmp_path / "r.duckdb", timeout=20)
    refused(proc.returncode, proc.stderr, proc.stdout)
    assert "at most 1,000" in proc.stderr and not (tmp_path / "r.duckdb").exists()
