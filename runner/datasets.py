"""Datasets: scikit-learn's digits, and MNIST-format IDX files (Fashion-MNIST from Debian's
``dataset-fashion-mnist``, or any directory given with ``--data-dir``). Nothing is downloaded."""

from __future__ import annotations

import functools
import gzip
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.errors import RunnerError

DATASETS = {
    "digits": "scikit-learn's 1797 8x8 handwritten digits (ships with scikit-learn)",
    "fashion-mnist": "Zalando's 70000 28x28 clothing images, 60000 train / 10000 test "
    "(Debian's dataset-fashion-mnist, or --data-dir)",
    "mnist": "LeCun's 70000 28x28 handwritten digits, 60000 train / 10000 test "
    "(IDX files in --data-dir)",
    "emnist": "NIST's extended MNIST, one split's IDX files in --data-dir "
    "(emnist-<split>-train-images-idx3-ubyte[.gz] or plain names)",
}

#: Where an IDX dataset lives when no --data-dir is given (None: --data-dir is required).
DEFAULT_DIRS: dict[str, str | None] = {
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": None,
    "emnist": None,
}

#: The four IDX files of a dataset, by role, without the optional ``.gz``.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801
_EMNIST_NAME = re.compile(
    r"^emnist-(?P<split>[A-Za-z0-9]+)-(?:train|t10k)-(?:images-idx3|labels-idx1)-ubyte(?:\.gz)?$"
)


@dataclass(frozen=True)
class Split:
    """A train/test split. Pixels are float32 in [0, 1]; images are ``image_shape``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


def check_dataset(name: str, data_dir: str | None = None) -> None:
    """Refuse an unknown dataset or missing files (existence only, nothing is decoded)."""
    if name not in DATASETS:
        raise RunnerError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    if name in DEFAULT_DIRS:
        idx_files(name, data_dir)


def load_split(
    name: str, *, seed: int, data_fraction: float = 1.0, data_dir: str | None = None
) -> Split:
    """Load ``name``. Digits is split 80:20, stratified, with ``seed`` (1437 / 360, as in paper
    000); IDX datasets keep their own train/test split. ``data_fraction`` < 1 keeps a stratified
    fraction of the training set; the test set stays whole."""
    check_dataset(name, data_dir)
    if not 0 < data_fraction <= 1:
        raise RunnerError(f"data_fraction must be in (0, 1], got {data_fraction}")
    from sklearn.model_selection import train_test_split

    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.data / 16.0).astype(np.float32)
        y = digits.target.astype(np.int64)
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=0.2, stratify=y, random_state=seed
        )
        shape = (8, 8)
    else:
        x_tr, y_tr, x_te, y_te, shape = _load_idx_dataset(name, data_dir)
    if data_fraction < 1:
        try:
            x_tr, _, y_tr, _ = train_test_split(
                x_tr, y_tr, train_size=data_fraction, stratify=y_tr, random_state=seed
            )
        except ValueError as exc:
            raise RunnerError(
                f"data_fraction {data_fraction} of {name}'s {len(y_tr)} training rows cannot be "
                f"stratified ({exc}): use a larger data_fraction"
            ) from None
    return Split(name, x_tr, y_tr, x_te, y_te, shape)


# --- locating the files ---------------------------------------------------------------------


def idx_files(name: str, data_dir: str | None) -> dict[str, Path]:
    """The four IDX files of ``name`` by role; RunnerError naming what is missing."""
    if data_dir is None:
        default = DEFAULT_DIRS[name]
        if default is None:
            raise RunnerError(
                f"dataset {name} has no default location: pass --data-dir DIR, a folder holding "
                f"its four IDX files ({', '.join(IDX_FILES.values())}, plain or .gz)"
            )
        folder = Path(default)
        if _find_all(folder, "")[1]:
            raise RunnerError(
                f"Fashion-MNIST not found in {default}: install Debian's dataset-fashion-mnist "
                "(apt-get install dataset-fashion-mnist) or pass --data-dir"
            )
    else:
        folder = Path(data_dir)
        if not folder.is_dir():
            raise RunnerError(
                f"data dir {folder} does not exist or is not a folder: pass --data-dir a folder "
                f"holding the {name} IDX files"
            )
    prefix = _emnist_prefix(folder) if name == "emnist" else ""
    found, missing = _find_all(folder, prefix)
    if missing:
        raise RunnerError(
            f"{name}: {folder} lacks {', '.join(missing)} (plain or .gz): put all four IDX files "
            "there or pass --data-dir a folder that has them"
        )
    return found


def _find_all(folder: Path, prefix: str) -> tuple[dict[str, Path], list[str]]:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, stem in IDX_FILES.items():
        for candidate in (folder / f"{prefix}{stem}", folder / f"{prefix}{stem}.gz"):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(prefix + stem)
    return found, missing


def _emnist_prefix(folder: Path) -> str:
    """``""`` for plain names, else ``"emnist-<split>-"`` when the folder holds one split."""
    if not _find_all(folder, "")[1]:
        return ""
    splits = sorted({m["split"] for p in folder.iterdir() if (m := _EMNIST_NAME.match(p.name))})
    if len(splits) > 1:
        raise RunnerError(
            f"emnist: {folder} holds several EMNIST splits ({', '.join(splits)}): pass --data-dir "
            "a folder holding just one split's four IDX files"
        )
    return f"emnist-{splits[0]}-" if splits else ""


# --- reading IDX ----------------------------------------------------------------------------


def read_idx(path: str | Path, *, images: bool) -> np.ndarray:
    """Decode one IDX file (plain or gzip) into a read-only uint8 array: (n, rows, cols) for
    images, (n,) for labels. Cached per (path, mtime, size). RunnerError naming a bad file."""
    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError as exc:
        raise RunnerError(f"cannot read {path}: {exc.strerror}: check the file") from None
    return _read_idx_cached(str(path), st.st_mtime_ns, st.st_size, images)


@functools.lru_cache(maxsize=16)
def _read_idx_cached(path: str, mtime_ns: int, size: int, images: bool) -> np.ndarray:
    kind = "images" if images else "labels"
    fix = f"replace it with an intact MNIST-format IDX {kind} file"
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = Path(path).read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise RunnerError(f"cannot read {path} ({exc}): {fix}") from None
    ndim = 3 if images else 1
    expected = _IMAGES_MAGIC if images else _LABELS_MAGIC
    header = 4 + 4 * ndim
    if len(data) < header:
        raise RunnerError(f"{path} is truncated ({len(data)} bytes, no IDX header): {fix}")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected:
        raise RunnerError(
            f"{path} is not an IDX {kind} file (magic 0x{magic:08x}, expected "
            f"0x{expected:08x}): {fix}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if images and (dims[1] == 0 or dims[2] == 0):
        raise RunnerError(f"{path} has empty images ({dims[1]}x{dims[2]}): {fix}")
    need = int(np.prod(dims, dtype=np.int64))
    have = len(data) - header
    if have != need:
        what = "truncated" if have < need else "longer than its header says"
        raise RunnerError(
            f"{path} is {what} ({have} data bytes for dims {'x'.join(map(str, dims))}, "
            f"expected {need}): {fix}"
        )
    arr = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    arr.flags.writeable = False
    return arr


def _load_idx_dataset(
    name: str, data_dir: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    files = idx_files(name, data_dir)
    out: list[np.ndarray] = []
    shape: tuple[int, int] | None = None
    for part in ("train", "test"):
        img_path, lbl_path = files[f"{part}_images"], files[f"{part}_labels"]
        images = read_idx(img_path, images=True)
        labels = read_idx(lbl_path, images=False)
        if len(images) == 0:
            raise RunnerError(f"{img_path} holds no images: use a non-empty IDX file")
        if len(images) != len(labels):
            raise RunnerError(
                f"{img_path} holds {len(images)} images but {lbl_path} holds {len(labels)} "
                "labels: use matching IDX files"
            )
        if name == "emnist":  # EMNIST stores each image transposed (column-major)
            images = images.transpose(0, 2, 1)
        if shape is None:
            shape = (int(images.shape[1]), int(images.shape[2]))
        elif images.shape[1:] != shape:
            raise RunnerError(
                f"{img_path} holds {images.shape[1]}x{images.shape[2]} images but the training "
                f"images are {shape[0]}x{shape[1]}: use matching IDX files"
            )
        x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
        out += [x, labels.astype(np.int64)]
    assert shape is not None
    return out[0], out[1], out[2], out[3], shape
