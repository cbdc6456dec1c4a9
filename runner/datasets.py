"""Datasets: scikit-learn's digits, and MNIST-format IDX files (Fashion-MNIST from Debian's
``dataset-fashion-mnist``, or any folder given with ``--data-dir``). Nothing is downloaded.

``--data-dir`` is a plain path or an fsspec URL: ``file://...``, ``s3://bucket/prefix`` (s3fs),
``gs://bucket/prefix`` (gcsfs), or any other protocol fsspec has a package for. Plain paths and
``file://`` URLs are read as local files; other URLs through fsspec, with credentials and endpoint
from where their libraries look (for S3: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_PROFILE`` / ``~/.aws``, ``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3`` for MinIO and other
S3-compatible servers, and fsspec's own configuration, e.g. ``FSSPEC_S3_ENDPOINT_URL``).
Connections to an object store time out after a few seconds and are retried once, unless fsspec's
configuration says otherwise, so an unreachable store is a one-line error, not a hang.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runner.errors import RunnerError

DATASETS = {
    "digits": "scikit-learn's 1797 8x8 handwritten digits (ships with scikit-learn; or the IDX "
    "files `runner data export` writes, read from --data-dir)",
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

#: The two IDX files `runner data export` writes for digits: all 1797 images (pixels 0-16, as
#: scikit-learn has them) and labels in scikit-learn's order; load_split splits them as it splits
#: the bundled copy, so both give the same arrays for every seed.
DIGITS_FILES = {
    "images": "digits-images-idx3-ubyte",
    "labels": "digits-labels-idx1-ubyte",
}

#: Connection settings for S3 (botocore's Config), used where fsspec's configuration sets none:
#: an unreachable endpoint fails within seconds instead of retrying for a minute.
S3_CONFIG = {
    "connect_timeout": 3,
    "read_timeout": 30,
    "retries": {"max_attempts": 2, "mode": "standard"},
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
    """Refuse an unknown dataset or missing files (existence only, nothing is decoded). Digits
    needs files only when ``data_dir`` is given (then it reads the two files of DIGITS_FILES)."""
    if name not in DATASETS:
        raise RunnerError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    if name in DEFAULT_DIRS or data_dir is not None:
        idx_files(name, data_dir)


def load_split(
    name: str, *, seed: int, data_fraction: float = 1.0, data_dir: str | None = None
) -> Split:
    """Load ``name``. Digits is split 80:20, stratified, with ``seed`` (1437 / 360, as in paper
    000), the same way whether it comes from scikit-learn or from exported files in
    ``data_dir``; IDX datasets keep their own train/test split. ``data_fraction`` < 1 keeps a
    stratified fraction of the training set; the test set stays whole."""
    check_dataset(name, data_dir)
    if not 0 < data_fraction <= 1:
        raise RunnerError(f"data_fraction must be in (0, 1], got {data_fraction}")
    from sklearn.model_selection import train_test_split

    if name == "digits":
        raw, target = digits_arrays(data_dir)
        x = (raw.reshape(len(raw), -1) / 16.0).astype(np.float32)
        y = target.astype(np.int64)
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


def digits_arrays(data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as scikit-learn orders them: images (1797, 8, 8) with pixels 0-16 and
    labels (1797,), from scikit-learn (``data_dir`` None) or from the files of DIGITS_FILES."""
    if data_dir is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    files = idx_files("digits", data_dir)
    images = read_idx(files["images"], images=True)
    labels = read_idx(files["labels"], images=False)
    fix = f"write them with `runner data export --dataset digits --to {data_dir}`"
    if images.shape[1:] != (8, 8) or len(images) != len(labels) or len(images) == 0:
        raise RunnerError(
            f"{files['images']} holds {len(images)} {images.shape[1]}x{images.shape[2]} images "
            f"and {files['labels']} {len(labels)} labels, not digits' 8x8 images with one label "
            f"each: {fix}"
        )
    if images.max() > 16 or labels.max() > 9:
        raise RunnerError(
            f"{files['images']} has pixels above 16 or labels above 9, not scikit-learn's digits "
            f"(pixels 0-16, labels 0-9): {fix}"
        )
    return images, labels


def image_shape(name: str, data_dir: str | None = None) -> tuple[int, int] | None:
    """The (rows, cols) of a dataset's images from the training images' IDX header alone (EMNIST's
    are stored transposed); digits is 8x8; None for a dataset that is not built in."""
    if name == "digits":
        return (8, 8)
    if name not in DEFAULT_DIRS:
        return None
    path = idx_files(name, data_dir)["train_images"]
    try:
        if is_remote(str(path)):
            fs, inner = remote_fs(str(path))
            with fs.open(
                inner, "rb", compression="gzip" if str(path).endswith(".gz") else None
            ) as fh:
                header = fh.read(16)
        else:
            opener: Any = gzip.open if str(path).endswith(".gz") else open
            with opener(path, "rb") as fh:
                header = fh.read(16)
        magic, _, rows, cols = struct.unpack(">4I", header)
    except Exception:  # anything wrong: read_idx below names it
        magic = rows = cols = 0
    if magic != _IMAGES_MAGIC or rows == 0 or cols == 0:
        read_idx(path, images=True)  # raises the RunnerError that names what is wrong
    return (cols, rows) if name == "emnist" else (rows, cols)


# --- where the data is ----------------------------------------------------------------------


def data_source(data_dir: str | os.PathLike[str] | None) -> str:
    """Where a configuration's data comes from, as a short factor level: ``bundled`` (no
    --data-dir: scikit-learn's digits, Debian's Fashion-MNIST), ``file`` (a plain path or a
    ``file://`` URL), else the URL's protocol (``s3``, ``gs``, ``az``, ``http``, ...). For a
    chained URL (``simplecache::s3://...``) the store that holds the data (``s3``)."""
    if data_dir is None:
        return "bundled"
    last = str(data_dir).rsplit("::", 1)[-1]
    if "://" not in last:
        return "file"
    protocol = last.split("://", 1)[0].lower()
    return {"local": "file", "gcs": "gs", "s3a": "s3", "abfs": "az", "https": "http"}.get(
        protocol, protocol
    )


def is_remote(data_dir: str | os.PathLike[str] | None) -> bool:
    """True when ``data_dir`` is read through fsspec (a URL of a store other than local files)."""
    return data_source(data_dir) not in ("bundled", "file")


def local_path(data_dir: str | os.PathLike[str]) -> Path:
    """A plain path or a ``file://`` / ``local://`` URL as a local Path."""
    text = str(data_dir)
    for scheme in ("file://", "local://"):
        if text.lower().startswith(scheme):
            return Path(text[len(scheme) :] or "/")
    return Path(text)


def storage_options(url: str) -> dict[str, Any]:
    """The keyword arguments the runner adds for ``url``'s file system: for S3, short connect
    timeouts and one retry (S3_CONFIG), each only where fsspec's configuration sets none.
    Credentials and endpoints are never set here: they come from the environment."""
    if "::" in url or data_source(url) != "s3":
        return {}
    from fsspec.config import conf

    user = conf.get("s3", {}).get("config_kwargs")
    user = dict(user) if isinstance(user, dict) else {}
    return {"config_kwargs": {**S3_CONFIG, **user}}


def remote_fs(url: str) -> tuple[Any, str]:
    """(file system, path inside it) for a remote URL; RunnerError when fsspec cannot serve it."""
    try:
        import fsspec
    except ImportError:
        raise RunnerError(
            f"--data-dir {url} is a URL but fsspec is not installed: pip install fsspec s3fs"
        ) from None
    try:
        return fsspec.core.url_to_fs(url, **storage_options(url))
    except ImportError as exc:
        extra = (
            " (trialkit's s3 extra has it: pip install 'trialkit[s3]')"
            if "s3fs" in str(exc)
            else ""
        )
        raise RunnerError(f"cannot open {url}: {' '.join(str(exc).split())}{extra}") from None
    except ValueError as exc:
        raise RunnerError(
            f"cannot open {url} ({exc}): give --data-dir a folder or an fsspec URL such as "
            "s3://bucket/prefix"
        ) from None


def store_error(url: str, exc: BaseException) -> RunnerError:
    """One line for a failure to reach or read ``url`` in an object store: what and the fix."""
    source = data_source(url)
    text = " ".join(str(exc).split()) or type(exc).__name__
    name = type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return RunnerError(
            f"{url} not found ({text}): check the bucket and prefix, or write the data there "
            "with `runner data export`"
        )
    if isinstance(exc, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return RunnerError(
            f"access to {url} denied ({text}): check the credentials (AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY / AWS_PROFILE for s3) and the bucket's policy"
        )
    if "Credentials" in name or "credentials" in text.lower():
        return RunnerError(
            f"no credentials for {url} ({text}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "or AWS_PROFILE (or ~/.aws/credentials)"
        )
    if "Connect" in name or "Timeout" in name or isinstance(exc, (ConnectionError, TimeoutError)):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        where = f" (endpoint {endpoint})" if source == "s3" and endpoint else ""
        hint = (
            "check that the server runs and AWS_ENDPOINT_URL points at it"
            if source == "s3"
            else "check the network and the store's address"
        )
        return RunnerError(f"cannot reach {url}{where}: {text}: {hint}")
    return RunnerError(f"cannot read {url} ({name}: {text}): check the URL and the credentials")


# --- locating the files ---------------------------------------------------------------------


def idx_files(name: str, data_dir: str | None) -> dict[str, Path | str]:
    """The IDX files of ``name`` by role (IDX_FILES' roles; DIGITS_FILES' for digits): local
    Paths, or URLs (str) for a remote ``data_dir``. RunnerError naming what is missing."""
    stems = DIGITS_FILES if name == "digits" else IDX_FILES
    if data_dir is not None and is_remote(data_dir):
        return _remote_idx_files(name, str(data_dir), stems)
    if data_dir is None:
        default = DEFAULT_DIRS.get(name)
        if default is None:
            raise RunnerError(
                f"dataset {name} has no default location: pass --data-dir DIR, a folder holding "
                f"its {len(stems)} IDX files ({', '.join(stems.values())}, plain or .gz)"
            )
        folder = Path(default)
        if _find_all(_local_has(folder), "", stems)[1]:
            raise RunnerError(
                f"Fashion-MNIST not found in {default}: install Debian's dataset-fashion-mnist "
                "(apt-get install dataset-fashion-mnist) or pass --data-dir"
            )
    else:
        folder = local_path(data_dir)
        if not folder.is_dir():
            raise RunnerError(
                f"data dir {folder} does not exist or is not a folder: pass --data-dir a folder "
                f"holding the {name} IDX files"
            )
    names = (
        [p.name for p in folder.iterdir()]
        if name == "emnist" and _find_all(_local_has(folder), "", stems)[1]
        else []
    )
    prefix = _emnist_prefix(names, str(folder)) if name == "emnist" else ""
    found, missing = _find_all(_local_has(folder), prefix, stems)
    if missing and name == "digits":
        raise RunnerError(
            f"digits: {folder} lacks {', '.join(missing)}: write them with `runner data export "
            f"--dataset digits --to {data_dir}`, or drop --data-dir to use scikit-learn's copy"
        )
    if missing:
        raise RunnerError(
            f"{name}: {folder} lacks {', '.join(missing)} (plain or .gz): put all four IDX "
            "files there or pass --data-dir a folder that has them"
        )
    return {role: folder / file for role, file in found.items()}


def _remote_idx_files(name: str, url: str, stems: dict[str, str]) -> dict[str, Path | str]:
    fs, inner = remote_fs(url)
    try:
        entries = fs.ls(inner, detail=True, refresh=True)
    except Exception as exc:
        raise store_error(url, exc) from None
    files = {
        str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
        for e in entries
        if isinstance(e, dict) and e.get("type") == "file"
    }
    if not entries:
        raise RunnerError(
            f"{url} holds nothing: check the URL, or write the {name} files there with "
            "`runner data export`"
        )
    prefix = _emnist_prefix(sorted(files), url) if name == "emnist" else ""
    found, missing = _find_all(files.__contains__, prefix, stems)
    if missing:
        raise RunnerError(
            f"{name}: {url} lacks {', '.join(missing)} (plain or .gz): put all {len(stems)} IDX "
            f"files there (`runner data export --dataset {name} --to {url}`)"
        )
    base = url.rstrip("/")
    return {role: f"{base}/{file}" for role, file in found.items()}


def _local_has(folder: Path) -> Callable[[str], bool]:
    return lambda file: (folder / file).is_file()


def _find_all(
    has: Callable[[str], bool], prefix: str, stems: dict[str, str] = IDX_FILES
) -> tuple[dict[str, str], list[str]]:
    """File names by role (plain preferred to .gz) and the stems that are missing."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for role, stem in stems.items():
        for candidate in (f"{prefix}{stem}", f"{prefix}{stem}.gz"):
            if has(candidate):
                found[role] = candidate
                break
        else:
            missing.append(prefix + stem)
    return found, missing


def _emnist_prefix(names: list[str], where: str) -> str:
    """``""`` for plain names, else ``"emnist-<split>-"`` when the folder holds one split."""
    if not _find_all(set(names).__contains__, "")[1]:
        return ""
    splits = sorted({m["split"] for n in names if (m := _EMNIST_NAME.match(n))})
    if len(splits) > 1:
        raise RunnerError(
            f"emnist: {where} holds several EMNIST splits ({', '.join(splits)}): pass --data-dir "
            "a folder holding just one split's four IDX files"
        )
    return f"emnist-{splits[0]}-" if splits else ""


# --- reading IDX ----------------------------------------------------------------------------


def read_idx(path: str | Path, *, images: bool) -> np.ndarray:
    """Decode one IDX file (plain or gzip; a local path or an fsspec URL) into a read-only uint8
    array: (n, rows, cols) for images, (n,) for labels. Cached per (path, version, size): mtime
    for a local file, the ETag (or generation, or modification time) fsspec reports for a remote
    object. RunnerError naming a bad or unreachable file."""
    if is_remote(str(path)):
        url = str(path)
        fs, inner = remote_fs(url)
        try:
            fs.invalidate_cache(inner)
            info = fs.info(inner)
        except Exception as exc:
            raise store_error(url, exc) from None
        version = next(
            (
                str(info[key])
                for key in ("ETag", "etag", "generation", "LastModified", "mtime", "updated")
                if info.get(key) is not None
            ),
            "",
        )
        return _read_idx_cached(url, version, int(info.get("size") or 0), images)
    path = local_path(path).resolve()
    try:
        st = path.stat()
    except OSError as exc:
        raise RunnerError(f"cannot read {path}: {exc.strerror}: check the file") from None
    return _read_idx_cached(str(path), st.st_mtime_ns, st.st_size, images)


def read_bytes(path: str) -> bytes:
    """The bytes of a local file or a remote object (RunnerError when the store fails)."""
    if not is_remote(path):
        return Path(path).read_bytes()
    fs, inner = remote_fs(path)
    try:
        return bytes(fs.cat_file(inner))
    except Exception as exc:
        raise store_error(path, exc) from None


@functools.lru_cache(maxsize=16)
def _read_idx_cached(path: str, version: int | str, size: int, images: bool) -> np.ndarray:
    kind = "images" if images else "labels"
    fix = f"replace it with an intact MNIST-format IDX {kind} file"
    try:
        data = read_bytes(path)
        if path.endswith(".gz"):
            data = gzip.decompress(data)
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
