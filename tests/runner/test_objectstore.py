"""Data from object stores: a real S3-speaking server (moto's server mode) on 127.0.0.1, started
here, reached by s3fs through AWS_ENDPOINT_URL as a user would point it at MinIO."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest

from runner.datasets import (
    DIGITS_FILES,
    check_dataset,
    data_source,
    idx_files,
    image_shape,
    load_split,
    read_idx,
)
from runner.errors import RunnerError
from runner.objectstore import export_dataset
from tests.conftest import assert_user_error

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The environment a user sets for an S3-compatible server, and an s3fs handle to it."""
    import fsspec
    import s3fs

    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # nothing leaves the loopback
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = fsspec.filesystem("s3")
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()


def make_bucket(fs: object, bucket: str) -> None:
    if not fs.exists(bucket):  # type: ignore[attr-defined]
        fs.mkdir(bucket)  # type: ignore[attr-defined]


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX written here by hand (struct), independent of runner.objectstore.encode_idx."""
    head = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def assert_same_split(a: object, b: object) -> None:
    for field in ("x_train", "y_train", "x_test", "y_test"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, field
        assert x.tobytes() == y.tobytes(), field  # bit-identical


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(RunnerError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and msg
    return msg


# --- data_source ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_dir", "expected"),
    [
        (None, "bundled"),
        ("/data/mnist", "file"),
        ("relative/dir", "file"),
        (Path("/x"), "file"),
        ("file:///data/mnist", "file"),
        ("s3://bucket/prefix", "s3"),
        ("S3://bucket", "s3"),
        ("gs://bucket/p", "gs"),
        ("gcs://bucket/p", "gs"),
        ("simplecache::s3://bucket/p", "s3"),
        ("az://container/p", "az"),
    ],
)
def test_data_source(data_dir: object, expected: str) -> None:
    assert data_source(data_dir) == expected  # type: ignore[arg-type]


# --- digits as files ------------------------------------------------------------------------


def test_digits_export_local_reads_back_bit_identical(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    result = export_dataset("digits", str(tmp_path / "digits"))
    assert result.images == 1797 and result.storage == "file" and len(result.files) == 2
    raw = (tmp_path / "digits" / DIGITS_FILES["images"]).read_bytes()
    # the IDX header and pixels checked against scikit-learn directly
    assert struct.unpack(">4I", raw[:16]) == (0x803, 1797, 8, 8)
    digits = load_digits()
    assert np.array_equal(np.frombuffer(raw[16:], np.uint8).reshape(1797, 8, 8), digits.images)
    for seed in (0, 7):
        for where in (str(tmp_path / "digits"), (tmp_path / "digits").as_uri()):
            assert_same_split(
                load_split("digits", seed=seed, data_dir=where), load_split("digits", seed=seed)
            )
    half = load_split("digits", seed=3, data_fraction=0.5, data_dir=str(tmp_path / "digits"))
    assert_same_split(half, load_split("digits", seed=3, data_fraction=0.5))
    assert image_shape("digits", str(tmp_path / "digits")) == (8, 8)


def test_digits_data_dir_without_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    msg = one_line_error(check_dataset, "digits", str(tmp_path / "empty"))
    assert DIGITS_FILES["images"] in msg and "export" in msg
    # 28x28 images are not digits
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / DIGITS_FILES["images"]).write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    (folder / DIGITS_FILES["labels"]).write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    msg = one_line_error(load_split, "digits", seed=0, data_dir=str(folder))
    assert "8x8" in msg and "runner data export" in msg


def test_digits_export_to_s3_reads_back_bit_identical(s3: object, tmp_path: Path) -> None:
    make_bucket(s3, "bucket")
    result = export_dataset("digits", "s3://bucket/digits")
    assert result.storage == "s3" and result.files[0].startswith("s3://bucket/digits/")
    local = export_dataset("digits", str(tmp_path / "d"))
    stored = s3.cat_file(f"bucket/digits/{DIGITS_FILES['images']}")  # type: ignore[attr-defined]
    assert stored == (tmp_path / "d" / DIGITS_FILES["images"]).read_bytes()
    for seed in (0, 5):
        bundled = load_split("digits", seed=seed)
        assert_same_split(load_split("digits", seed=seed, data_dir="s3://bucket/digits"), bundled)
        assert_same_split(load_split("digits", seed=seed, data_dir=str(tmp_path / "d")), bundled)
    assert local.bytes_written == result.bytes_written == 16 + 1797 * 64 + 8 + 1797


def test_remote_cache_follows_the_object(s3: object) -> None:
    """A replaced object (new ETag) is read again, not served from the cache."""
    make_bucket(s3, "bucket")
    url = "s3://bucket/cache/t10k-labels-idx1-ubyte"
    s3.pipe_file(url, idx_bytes(np.array([1, 2, 3], np.uint8)))  # type: ignore[attr-defined]
    assert read_idx(url, images=False).tolist() == [1, 2, 3]
    s3.pipe_file(url, idx_bytes(np.array([4, 5], np.uint8)))  # type: ignore[attr-defined]
    assert read_idx(url, images=False).tolist() == [4, 5]


# --- IDX data sets in S3 --------------------------------------------------------------------


def test_fashion_like_idx_from_s3(s3: object) -> None:
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(12, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([9, 0, 3, 3, 1], np.uint8),
    }
    make_bucket(s3, "fmnist")
    for stem, arr in arrays.items():
        data = idx_bytes(arr)
        name = f"fmnist/v1/{stem}.gz" if "images" in stem else f"fmnist/v1/{stem}"
        s3.pipe_file(name, gzip.compress(data) if name.endswith(".gz") else data)  # type: ignore[attr-defined]
    files = idx_files("fashion-mnist", "s3://fmnist/v1/")
    assert files["train_images"] == "s3://fmnist/v1/train-images-idx3-ubyte.gz"
    assert image_shape("fashion-mnist", "s3://fmnist/v1") == (28, 28)
    split = load_split("fashion-mnist", seed=0, data_dir="s3://fmnist/v1")
    expected = arrays["train-images-idx3-ubyte"].reshape(12, -1).astype(np.float64) / 255.0
    np.testing.assert_allclose(split.x_train, expected, rtol=0, atol=1e-7)
    assert split.y_test.tolist() == [9, 0, 3, 3, 1] and split.image_shape == (28, 28)
    # and copied on to another prefix, byte for byte, reads the same
    out = export_dataset("fashion-mnist", "s3://fmnist/copy", data_dir="s3://fmnist/v1")
    assert out.images == 17 and len(out.files) == 4
    again = load_split("fashion-mnist", seed=0, data_dir="s3://fmnist/copy")
    assert_same_split(again, split)
    # the spec's checks read the image shape from the store too (a CNN needs square images)
    from runner.spec import load_experiment

    grid = {"engine": ["tensorflow"], "workload": ["cnn"], "dataset": ["fashion-mnist"]}
    exp = load_experiment(grid=grid, data_dir="s3://fmnist/v1")
    assert [(c["storage"], c["data_dir"]) for c in exp.configs] == [("s3", "s3://fmnist/v1")]


def test_missing_bucket_prefix_and_file_are_one_line(s3: object) -> None:
    t0 = time.perf_counter()
    msg = one_line_error(check_dataset, "fashion-mnist", "s3://no-such-bucket/fm")
    assert "s3://no-such-bucket/fm" in msg and "not found" in msg
    make_bucket(s3, "bucket")
    msg = one_line_error(load_split, "mnist", seed=0, data_dir="s3://bucket/nothing-here")
    assert "s3://bucket/nothing-here" in msg
    s3.pipe_file("bucket/half/train-images-idx3-ubyte", b"x")  # type: ignore[attr-defined]
    msg = one_line_error(check_dataset, "mnist", "s3://bucket/half")
    assert "lacks" in msg and "t10k-labels-idx1-ubyte" in msg
    msg = one_line_error(export_dataset, "digits", "s3://no-such-bucket/d")
    assert "bucket does not exist" in msg and "create it" in msg
    assert time.perf_counter() - t0 < 10


def test_unreachable_endpoint_fails_within_seconds(s3: object, monkeypatch) -> None:
    import s3fs

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    s3fs.S3FileSystem.clear_instance_cache()
    t0 = time.perf_counter()
    msg = one_line_error(check_dataset, "digits", "s3://bucket/digits")
    assert time.perf_counter() - t0 < 5
    assert "cannot reach s3://bucket/digits" in msg and "AWS_ENDPOINT_URL" in msg


def test_unknown_protocol_is_one_line() -> None:
    msg = one_line_error(check_dataset, "mnist", "nosuchproto://x/y")
    assert "nosuchproto://x/y" in msg


# --- the command line -----------------------------------------------------------------------


def data_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`runner data ...` as runner/cli.py registers it (run here through its own app)."""
    code = (
        "from runner.climain import run_app; from runner.cli_data import data_app; "
        "run_app(data_app)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )


def test_cli_export_and_check(s3: object) -> None:
    make_bucket(s3, "clibucket")
    proc = data_cli("export", "--dataset", "digits", "--to", "s3://clibucket/digits", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["images"] == 1797 and out["storage"] == "s3"
    proc = data_cli("check", "--dataset", "digits", "--data-dir", "s3://clibucket/digits")
    assert proc.returncode == 0, proc.stderr
    assert "1437 train / 360 test" in proc.stdout and "(s3)" in proc.stdout
    proc = data_cli("export", "--dataset", "digits", "--to", "s3://missing-bucket/d")
    line = assert_user_error(proc)
    assert "missing-bucket" in line and "create it" in line


# --- paper 000's local vs S3 comparison through the runner ---------------------------------

SPEC = """name = "knn-storage"
n = 2
warmup = 0
seed = 0
timeout = 120

[defaults]
dataset = "digits"

[[matrix]]
engine = "local"
workload = "knn"
workers = 1
k = 5
"""


def test_knn_on_local_files_and_on_s3(s3: object, tmp_path: Path) -> None:
    from runner.trials import TrialOptions, run_experiment

    make_bucket(s3, "paper000")
    export_dataset("digits", "s3://paper000/digits")
    export_dataset("digits", str(tmp_path / "digits"))
    spec = tmp_path / "knn.toml"
    spec.write_text(SPEC)
    db = tmp_path / "results.duckdb"
    sources = {str(tmp_path / "digits"): "file", "s3://paper000/digits": "s3"}
    for data_dir in sources:
        result = run_experiment(
            TrialOptions(experiment=str(spec), data_dir=data_dir), db=db, progress=False
        )
        assert result.n_ok == 2 and result.n_bad == 0
    # the data really come from data_dir: a prefix without the files is refused before any trial
    with pytest.raises(RunnerError, match="s3://paper000/nothing"):
        run_experiment(
            TrialOptions(experiment=str(spec), data_dir="s3://paper000/nothing"),
            db=db,
            progress=False,
        )
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT json_extract_string(s.params, '$.data_dir'), "
        "json_extract_string(s.params, '$.storage'), count(DISTINCT t.trial_id), "
        "min(s.load_s), min(t.accuracy), max(t.accuracy) FROM setups s JOIN observations t "
        "USING (run_id, config_id) WHERE t.status = 'ok' AND t.accuracy IS NOT NULL "
        "GROUP BY 1, 2 ORDER BY 1"
    ).fetchall()
    con.close()
    # a URL is stored as given, with its storage factor
    assert {r[0]: r[1] for r in rows} == sources and len(rows) == 2
    for _, _, trials, load_s, low, high in rows:
        assert trials == 2 and load_s > 0
        assert low == high == rows[0][4]  # same data, same seed: the same KNN accuracy
