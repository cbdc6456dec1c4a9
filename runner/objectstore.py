"""Datasets as IDX files in a folder or an object store, so ``--data-dir URL`` can read them.

``export_dataset("digits", "s3://bucket/digits")`` writes scikit-learn's digits (which is not a
file) as two IDX files (DIGITS_FILES: all 1797 8x8 images with scikit-learn's 0-16 pixels, and
their labels, in scikit-learn's order); ``load_split("digits", data_dir=URL)`` splits them as it
splits the bundled copy, so a run reading them gets the same arrays for every seed. An IDX dataset
(Fashion-MNIST, MNIST, EMNIST) is copied file by file, byte for byte (``.gz`` stays ``.gz``).

The destination is a plain path or ``file://`` URL (the folder is created) or any fsspec URL
(``s3://bucket/prefix``: the bucket must exist; credentials and endpoint as for ``--data-dir``, see
runner.datasets). Existing files of the same names are replaced.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from typing import Any

from runner.datasets import (
    DATASETS,
    DEFAULT_DIRS,
    DIGITS_FILES,
    check_dataset,
    data_source,
    digits_arrays,
    idx_files,
    is_remote,
    local_path,
    read_bytes,
    read_idx,
    remote_fs,
    store_error,
)
from runner.errors import RunnerError


@dataclass(frozen=True)
class ExportResult:
    """What ``export_dataset`` wrote: the files (URLs or paths, as given), their total bytes and
    the number of images."""

    dataset: str
    dest: str
    storage: str
    files: tuple[str, ...]
    bytes_written: int
    images: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files"] = list(self.files)
        return out

    def __str__(self) -> str:
        return (
            f"{self.dataset}: {self.images} images in {len(self.files)} files "
            f"({self.bytes_written} bytes) written to {self.dest}; read them with "
            f"--dataset {self.dataset} --data-dir {self.dest}"
        )


def encode_idx(array: Any, *, images: bool) -> bytes:
    """IDX bytes of a uint8 array: (n, rows, cols) images (magic 0x803) or (n,) labels (0x801)."""
    import numpy as np

    arr = np.ascontiguousarray(array)
    ndim = 3 if images else 1
    if arr.ndim != ndim or arr.size and (arr.min() < 0 or arr.max() > 255):
        raise RunnerError(
            f"IDX {'images' if images else 'labels'} need a {ndim}-d array of 0-255 values, got "
            f"shape {arr.shape}"
        )
    header = struct.pack(">I", 0x0800 | ndim) + struct.pack(f">{ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def export_dataset(name: str, dest_url: str, data_dir: str | None = None) -> ExportResult:
    """Write dataset ``name`` as IDX files to ``dest_url`` (a folder or an fsspec URL), read from
    ``data_dir`` (as for load_split; None: the bundled copy or Debian's folder), and check that the
    destination then reads back. RunnerError for an unknown dataset, missing source files or a
    destination that cannot be written."""
    if name not in DATASETS:
        raise RunnerError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    dest = str(dest_url).rstrip("/") or str(dest_url)
    if data_dir is not None and _same_place(dest, str(data_dir)):
        raise RunnerError(f"--to {dest} is the folder the data is read from: export elsewhere")
    payload: dict[str, bytes] = {}
    if name == "digits":
        images, labels = digits_arrays(data_dir)
        payload[DIGITS_FILES["images"]] = encode_idx(images, images=True)
        payload[DIGITS_FILES["labels"]] = encode_idx(labels, images=False)
        n_images = len(images)
    else:
        if name not in DEFAULT_DIRS:  # pragma: no cover - every non-digits dataset is IDX
            raise RunnerError(f"dataset {name} has no files to export")
        n_images = 0
        for role, source in idx_files(name, data_dir).items():
            text = str(source)
            payload[text.rstrip("/").rsplit("/", 1)[-1]] = read_bytes(text)
            if role.endswith("_images"):
                n_images += len(read_idx(source, images=True))
    written = _write_all(dest, payload)
    check_dataset(name, dest)
    return ExportResult(
        dataset=name,
        dest=dest,
        storage=data_source(dest),
        files=written,
        bytes_written=sum(len(b) for b in payload.values()),
        images=n_images,
    )


def _same_place(a: str, b: str) -> bool:
    if is_remote(a) or is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    return local_path(a).resolve() == local_path(b).resolve()


def _write_all(dest: str, payload: dict[str, bytes]) -> tuple[str, ...]:
    if not is_remote(dest):
        folder = local_path(dest)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for file, data in payload.items():
                (folder / file).write_bytes(data)
        except OSError as exc:
            raise RunnerError(
                f"cannot write to {folder} ({exc.strerror or exc}): choose a folder you can write"
            ) from None
        return tuple(f"{dest}/{file}" for file in payload)
    fs, inner = remote_fs(dest)
    inner = inner.rstrip("/")
    try:
        for file, data in payload.items():
            fs.pipe_file(f"{inner}/{file}", data)
        fs.invalidate_cache(inner)
    except Exception as exc:
        if isinstance(exc, FileNotFoundError):
            raise RunnerError(
                f"cannot write to {dest}: the bucket does not exist ({' '.join(str(exc).split())})"
                ": create it first (e.g. `aws s3 mb s3://BUCKET`, or `mc mb` for MinIO)"
            ) from None
        raise store_error(dest, exc) from None
    return tuple(f"{dest}/{file}" for file in payload)


@dataclass(frozen=True)
class ProbeResult:
    """A dataset read once from where a run would read it: its files, sizes and load time."""

    dataset: str
    data_dir: str | None
    storage: str
    files: tuple[str, ...]
    n_train: int
    n_test: int
    image_shape: tuple[int, int]
    load_s: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files"] = list(self.files)
        out["image_shape"] = list(self.image_shape)
        return out

    def __str__(self) -> str:
        where = self.data_dir or "its bundled copy"
        rows, cols = self.image_shape
        return (
            f"{self.dataset} from {where} ({self.storage}): {self.n_train} train / {self.n_test} "
            f"test images of {rows}x{cols}, read in {self.load_s:.3f} s"
        )


def probe_dataset(name: str, data_dir: str | None = None, *, seed: int = 0) -> ProbeResult:
    """Read ``name`` from ``data_dir`` as a trial's setup would (load_split), timed; RunnerError
    naming what is missing or unreachable."""
    import time

    from runner.datasets import load_split

    check_dataset(name, data_dir)
    files = (
        tuple(str(f) for f in idx_files(name, data_dir).values())
        if name != "digits" or data_dir is not None
        else ()
    )
    t0 = time.perf_counter_ns()
    split = load_split(name, seed=seed, data_dir=data_dir)
    load_s = (time.perf_counter_ns() - t0) / 1e9
    return ProbeResult(
        dataset=name,
        data_dir=data_dir,
        storage=data_source(data_dir),
        files=files,
        n_train=len(split.y_train),
        n_test=len(split.y_test),
        image_shape=split.image_shape,
        load_s=load_s,
    )
