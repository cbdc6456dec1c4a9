"""Datasets on real files: scikit-learn's digits, Debian's Fashion-MNIST, IDX files written here."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import duckdb
import numpy as np
import pytest

from runner.datasets import (
    DATASETS,
    Split,
    check_dataset,
    idx_files,
    image_shape,
    load_split,
    read_idx,
)
from runner.errors import RunnerError
from tests.conftest import assert_user_error, run_cli

FASHION = Path("/usr/share/datasets/fashion-mnist")
STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def write_idx(path: Path, arr: np.ndarray, *, magic: int | None = None) -> Path:
    """Write ``arr`` (uint8) as an IDX file, gzipped when ``path`` ends in .gz."""
    if magic is None:
        magic = 0x0800 | arr.ndim
    data = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data += np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def tiny(seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny non-square (5x7) dataset, 4 classes, 8 train / 4 test images."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (8, 5, 7), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([0, 1, 2, 3, 0, 1, 2, 3], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 5, 7), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([3, 2, 1, 0], dtype=np.uint8),
    }


def write_dataset(folder: Path, arrays: dict[str, np.ndarray], *, prefix: str = "") -> Path:
    """Write the four files, the image files gzipped and the label files plain."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in arrays.items():
        suffix = ".gz" if "images" in stem else ""
        write_idx(folder / f"{prefix}{stem}{suffix}", arr)
    return folder


def raises(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(RunnerError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    for word in match.split("|"):
        assert word in msg, (word, msg)
    return msg


# --- digits ---------------------------------------------------------------------------------


def test_digits_split_is_stratified_and_seeded() -> None:
    s = load_split("digits", seed=0)
    assert s.x_train.shape == (1437, 64) and s.x_test.shape == (360, 64)
    assert s.image_shape == (8, 8) and s.n_classes == 10
    assert s.x_train.dtype == np.float32 and s.x_train.min() >= 0 and s.x_train.max() <= 1
    train, test = np.bincount(s.y_train), np.bincount(s.y_test)
    np.testing.assert_allclose(test / 360, (train + test) / 1797, atol=1.5 / 360)
    assert np.array_equal(load_split("digits", seed=0).y_test, s.y_test)
    assert not np.array_equal(load_split("digits", seed=1).y_test, s.y_test)
    half = load_split("digits", seed=0, data_fraction=0.5)
    assert len(half.y_train) in (718, 719) and len(half.y_test) == 360


# --- Fashion-MNIST from Debian's package ------------------------------------------------------


@pytest.fixture(scope="module")
def fashion() -> Split:
    return load_split("fashion-mnist", seed=0)


def test_fashion_mnist_from_debian(fashion: Split) -> None:
    s = fashion
    assert s.x_train.shape == (60000, 784) and s.x_test.shape == (10000, 784)
    assert s.image_shape == (28, 28) and s.x_train.dtype == np.float32
    assert set(np.unique(s.y_train)) == set(range(10)) == set(np.unique(s.y_test))
    for x in (s.x_train, s.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    # the package's own split, untouched: 6000 / 1000 of each class
    assert np.bincount(s.y_train).tolist() == [6000] * 10
    assert np.bincount(s.y_test).tolist() == [1000] * 10


def test_fashion_mnist_fraction_keeps_class_proportions(fashion: Split) -> None:
    s = load_split("fashion-mnist", seed=3, data_fraction=0.25)
    assert s.x_train.shape == (15000, 784) and s.x_test.shape == (10000, 784)
    exact = np.bincount(fashion.y_train) * 0.25
    assert np.abs(np.bincount(s.y_train, minlength=10) - exact).max() <= 1
    assert np.array_equal(s.y_test, fashion.y_test)


def test_fashion_mnist_data_dir_overrides_default(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "fm", tiny())
    s = load_split("fashion-mnist", seed=0, data_dir=str(folder))
    assert s.x_train.shape == (8, 35) and s.image_shape == (5, 7)


# --- IDX files written here ---------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    arrays = tiny()
    suffix = ".gz" if gz else ""
    images = write_idx(tmp_path / f"i{suffix}", arrays["train-images-idx3-ubyte"])
    labels = write_idx(tmp_path / f"l{suffix}", arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(read_idx(images, images=True), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(read_idx(labels, images=False), arrays["train-labels-idx1-ubyte"])


def test_mnist_from_data_dir_exact(tmp_path: Path) -> None:
    arrays = tiny()
    folder = write_dataset(tmp_path / "mnist", arrays)
    s = load_split("mnist", seed=0, data_dir=str(folder))
    assert s.image_shape == (5, 7)
    want = arrays["train-images-idx3-ubyte"].reshape(8, 35).astype(np.float32) / 255
    np.testing.assert_array_equal(s.x_train, want)
    np.testing.assert_array_equal(s.y_train, arrays["train-labels-idx1-ubyte"])
    want = arrays["t10k-images-idx3-ubyte"].reshape(4, 35).astype(np.float32) / 255
    np.testing.assert_array_equal(s.x_test, want)
    np.testing.assert_array_equal(s.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert s.x_train.dtype == np.float32 and s.y_train.dtype == np.int64


def test_file_url_reads_as_the_plain_path(tmp_path: Path) -> None:
    arrays = tiny()
    folder = write_dataset(tmp_path / "mnist", arrays)
    plain = load_split("mnist", seed=0, data_dir=str(folder))
    url = load_split("mnist", seed=0, data_dir=folder.as_uri())
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(url, field).tobytes() == getattr(plain, field).tobytes()
    assert idx_files("mnist", folder.as_uri())["test_labels"] == folder / "t10k-labels-idx1-ubyte"
    assert image_shape("mnist", folder.as_uri()) == (5, 7)
    emnist = write_dataset(tmp_path / "emnist", arrays, prefix="emnist-letters-")
    assert image_shape("emnist", str(emnist)) == (7, 5)  # stored transposed
    assert image_shape("digits") == (8, 8) and image_shape("no-such") is None
    raises("does not exist", check_dataset,
           "mnist", (tmp_path / "nope").as_uri())  # fmt: skip


def test_changed_file_is_reread(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "mnist", tiny(0))
    load_split("mnist", seed=0, data_dir=str(folder))
    other = tiny(1)
    path = write_idx(folder / "t10k-images-idx3-ubyte.gz", other["t10k-images-idx3-ubyte"])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    s = load_split("mnist", seed=0, data_dir=str(folder))
    want = other["t10k-images-idx3-ubyte"].reshape(4, 35).astype(np.float32) / 255
    np.testing.assert_array_equal(s.x_test, want)


@pytest.mark.parametrize("prefix", ["", "emnist-balanced-"])
def test_emnist_is_transposed(tmp_path: Path, prefix: str) -> None:
    arrays = tiny()
    folder = write_dataset(tmp_path / "emnist", arrays, prefix=prefix)
    s = load_split("emnist", seed=0, data_dir=str(folder))
    assert s.image_shape == (7, 5)
    want = arrays["train-images-idx3-ubyte"].transpose(0, 2, 1).reshape(8, 35) / 255
    np.testing.assert_array_equal(s.x_train, want.astype(np.float32))
    assert s.x_train[0].reshape(7, 5)[6, 0] * 255 == arrays["train-images-idx3-ubyte"][0, 0, 6]
    want = arrays["t10k-images-idx3-ubyte"].transpose(0, 2, 1).reshape(4, 35) / 255
    np.testing.assert_array_equal(s.x_test, want.astype(np.float32))
    np.testing.assert_array_equal(s.y_test, arrays["t10k-labels-idx1-ubyte"])


def test_emnist_several_splits_is_an_error(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "e", tiny(), prefix="emnist-digits-")
    write_dataset(folder, tiny(), prefix="emnist-letters-")
    raises("digits|letters|--data-dir", check_dataset, "emnist", str(folder))


# --- errors ---------------------------------------------------------------------------------


def test_unknown_dataset_lists_available() -> None:
    msg = raises("unknown dataset 'cifar'", check_dataset, "cifar")
    for name in DATASETS:
        assert name in msg


@pytest.mark.parametrize("name", ["mnist", "emnist"])
def test_mnist_emnist_need_data_dir(name: str) -> None:
    raises(f"{name}|--data-dir|train-images-idx3-ubyte", check_dataset, name)


def test_missing_data_dir_and_missing_files(tmp_path: Path) -> None:
    raises("does not exist|--data-dir", check_dataset, "mnist", str(tmp_path / "nope"))
    folder = write_dataset(tmp_path / "m", tiny())
    (folder / "t10k-labels-idx1-ubyte").unlink()
    (folder / "train-images-idx3-ubyte.gz").unlink()
    msg = raises("train-images-idx3-ubyte|t10k-labels-idx1-ubyte", check_dataset, "mnist", folder)
    assert "t10k-images" not in msg and "train-labels" not in msg


def test_corrupt_magic_names_the_file(tmp_path: Path) -> None:
    arrays = tiny()
    folder = write_dataset(tmp_path / "m", arrays)
    bad = write_idx(folder / "train-labels-idx1-ubyte", arrays["train-labels-idx1-ubyte"], magic=7)
    check_dataset("mnist", str(folder))  # cheap: existence only
    raises(f"{bad}|magic|0x00000007", load_split, "mnist", seed=0, data_dir=str(folder))


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "m", tiny())
    path = folder / "t10k-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    path.unlink()
    (folder / "t10k-images-idx3-ubyte").write_bytes(data[:-5])  # a plain, truncated copy
    raises(f"{folder / 't10k-images-idx3-ubyte'}|truncated", load_split, "mnist", seed=0,
           data_dir=str(folder))  # fmt: skip
    (folder / "t10k-images-idx3-ubyte").write_bytes(data[:10])  # not even a header
    raises("truncated", load_split, "mnist", seed=0, data_dir=str(folder))
    gz = folder / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:30])  # a cut-off gzip stream
    raises(f"{gz}", load_split, "mnist", seed=0, data_dir=str(folder))


def test_count_mismatch_names_both_files(tmp_path: Path) -> None:
    arrays = tiny()
    folder = write_dataset(tmp_path / "m", arrays)
    write_idx(folder / "train-labels-idx1-ubyte", arrays["train-labels-idx1-ubyte"][:7])
    raises("8 images|7 labels|train-labels-idx1-ubyte", load_split, "mnist", seed=0,
           data_dir=str(folder))  # fmt: skip


def test_bad_data_fraction(tmp_path: Path) -> None:
    raises("data_fraction", load_split, "digits", seed=0, data_fraction=0)
    folder = write_dataset(tmp_path / "m", tiny())
    raises("data_fraction|larger", load_split, "mnist", seed=0, data_fraction=0.1,
           data_dir=str(folder))  # fmt: skip


# --- through the CLI ------------------------------------------------------------------------


def test_cli_emnist_without_data_dir(tmp_path: Path) -> None:
    proc = run_cli(
        "runner", "trials", "--dataset", "emnist", "--n", "1", "--db", "tmp/r.duckdb", "-q",
        cwd=tmp_path,
    )  # fmt: skip
    line = assert_user_error(proc)
    assert "--data-dir" in line and "emnist" in line
    assert not (tmp_path / "tmp").exists() and not list(tmp_path.rglob("*.duckdb"))


def test_cli_knn_on_fashion_mnist(tmp_path: Path) -> None:
    # no experiment: the grid comes from the options, over KNN's defaults (k = 5)
    db = tmp_path / "r.duckdb"
    proc = run_cli(
        "runner", "trials", "--engine", "local", "--workload", "knn", "--data-fraction", "0.05",
        "--dataset", "fashion-mnist", "--n", "1", "--warmup", "0", "--db", db, "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT dataset, data_fraction, status, accuracy FROM observations"
    ).fetchall()
    assert len(rows) == 1
    dataset, fraction, status, accuracy = rows[0]
    assert (dataset, fraction, status) == ("fashion-mnist", 0.05, "ok")
    assert accuracy >= 0.7
