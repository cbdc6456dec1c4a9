"""Paper 000 compared data read from S3 with local files: its experiment, from the command line,
on a local folder and on a real S3-speaking server on loopback (moto's server mode)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_cli
from tests.runner.test_objectstore import make_bucket, s3, s3_endpoint  # noqa: F401

pytest.importorskip("s3fs")


def test_paper000_local_files_versus_s3(s3: object, s3_endpoint: str, tmp_path: Path) -> None:  # noqa: F811
    make_bucket(s3, "paper000")
    env = {**os.environ}  # the fixture set AWS_ENDPOINT_URL and test credentials here
    local = tmp_path / "digits"
    for dest in (str(local), "s3://paper000/digits"):
        proc = run_cli("runner", "data", "export", "--dataset", "digits", "--to", dest, env=env)
        assert proc.returncode == 0, proc.stderr
    db = tmp_path / "r.duckdb"
    proc = run_cli(
        "runner", "trials", "-e", "000", "--quick", "--engine", "local", "--param", "k=5",
        "--data-dir", f"{local},s3://paper000/digits", "--n", "2", "--db", db, "-q", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT storage, data_dir, count(*), count(DISTINCT config_id), min(load_s), "
        "min(accuracy), max(accuracy) FROM observations WHERE NOT warmup AND status = 'ok' "
        "GROUP BY ALL ORDER BY storage"
    ).fetchall()
    setups = con.execute(
        "SELECT params->>'$.storage', count(*), bool_and(load_s > 0) FROM setups GROUP BY ALL "
        "ORDER BY 1"
    ).fetchall()
    con.close()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("file", str(local), 2, 1),
        ("s3", "s3://paper000/digits", 2, 1),
    ]
    # the same digits from either place: the same KNN accuracy; load time recorded per source
    assert rows[0][5] == rows[0][6] == rows[1][5] == rows[1][6]
    # one engine start (and data load) per storage: 000's quick variant is one round
    assert setups == [("file", 1, True), ("s3", 1, True)]
