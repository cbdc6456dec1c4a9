"""Workload ``preprocess`` (paper 003): image pre-processing throughput.

Each trial reads a set of images, decodes them (PNG), resizes them to ``resize`` x ``resize``
(bilinear), normalises them to float32 in [0, 1] and writes them back, and reports images per
second (``throughput_ips``). The input is generated once per configuration (in load) from the
dataset's training images into a working directory the runner creates and removes.

Parameters (``resolve`` fills the defaults, so the stored configuration says what ran):

- ``file_format`` = ``images`` (default: one PNG file per image) | ``records`` (the images packed
  as ``tf.train.Example`` records into ``shards`` TFRecord files, default 16 as in the course
  003 followed, never more than data_size).
- ``data_size`` (default 256): how many images are generated. Image i is training image
  i mod n_train of the dataset (rescaled to 0-255 uint8), so any data_size works.
- ``batch_size`` (default 32, the trial column): images per batch; a batch is the unit of work
  (one task on a distributed engine) and of output (one ``.npy`` file).
- ``batch_number``: batches per pass. Unset, it is ceil(data_size / batch_size) (the whole data
  set, the last batch possibly short); unset data_size with batch_number set gives data_size =
  batch_size x batch_number. A pass processes the first min(batch_size x batch_number,
  data_size) images, in order: 003's speed test took ``batch_number`` batches of ``batch_size``
  images from the data set and called batch_size x batch_number its data size. A batch_number
  that would leave a batch empty is refused.
- ``passes`` (default 1): how many times the data set is read and processed within one trial (003's
  "repetition": the same test repeated on the same data; ``repetition`` is the trials column that
  numbers trials, so it is refused as a parameter).
- ``cache`` (default false): keep the decoded images of the first pass in the workers' memory
  (Spark: ``persist`` of the parsed RDD; Dask: the decoded futures held on the workers; Ray: the
  decoded batches held as Ray objects; local: in the process), so later passes skip read and
  decode. Released at the end of each trial, so every trial starts from the files.
- ``resize`` (default 32): the output side in pixels (003 resized its images to a fixed size).
- ``work_dir`` (optional): the folder under which the working directory is made (default: the
  system temporary directory, ``TMPDIR``). Required on an existing cluster that is not on this
  machine: every node must see the files.

Outputs: one ``.npy`` per batch per pass (``out/p<pass>/b<batch>.npy``, float32, shape (n, resize,
resize)): a file per batch keeps the output side the same for both input formats (a file per
image would make both formats pay a file creation per image and hide the input-side difference
003 measured) and matches the unit of work.

Metrics of a trial: ``throughput_ips`` = images / train_s (train_s times the passes only),
``images`` (batch_size x batch_number, capped at data_size, times passes), ``decoded_images``
(images actually read and decoded: images without cache, one pass's worth with it), ``batches``
(per pass), ``bytes_read`` (input bytes read), ``bytes_written`` (output bytes), ``input_bytes``
(size of the generated input), ``workers_used`` (distinct processes that wrote outputs).

TFRecord data CRCs are written but not checked by the timed reader (record lengths are):
CRC-32C in pure Python costs more than decoding the PNG it guards, while TensorFlow checks it in
C for next to nothing; the PNG payload is still checked by zlib's Adler-32 when it is inflated.
"""

from __future__ import annotations

import importlib
import io
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from runner.config import Config
from runner.errors import RunnerError
from runner.registry import is_loopback

FILE_FORMATS = ("images", "records")
DEFAULTS: dict[str, Any] = {
    "file_format": "images",
    "batch_size": 32,
    "data_size": 256,
    "passes": 1,
    "cache": False,
    "resize": 32,
}
#: TFRecord shards by default (capped at data_size).
DEFAULT_SHARDS = 16
MAX_DATA_SIZE = 1_000_000
MAX_RESIZE = 1024
#: Parameters of other workloads: refused here rather than silently ignored.
_FOREIGN = ("k", "hidden", "activation", "solver", "impl", "output", "learning_rate")
WORK_PREFIX = "trialkit-preprocess-"


# --- parameters -------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration with the defaults filled in (see the module docstring); values of the
    wrong type are left alone for ``check`` to refuse."""
    out = dict(config)
    for key in ("file_format", "passes", "cache", "resize"):
        if out.get(key) is None:
            out[key] = DEFAULTS[key]
    if out.get("batch_size") is None:
        out["batch_size"] = DEFAULTS["batch_size"]
    size, number, batch = out.get("data_size"), out.get("batch_number"), out["batch_size"]
    if size is None:
        both = _is_int(number) and _is_int(batch)
        out["data_size"] = batch * number if both and number > 0 else DEFAULTS["data_size"]
        size = out["data_size"]
    if number is None and _is_int(size) and _is_int(batch) and size > 0 and batch > 0:
        out["batch_number"] = math.ceil(size / batch)
    if out["file_format"] == "records" and out.get("shards") is None and _is_int(size):
        out["shards"] = max(min(DEFAULT_SHARDS, size), 1)
    return out


def images_per_pass(config: Mapping[str, Any]) -> int:
    """Images one pass processes: batch_size x batch_number, at most data_size."""
    return min(int(config["batch_size"]) * int(config["batch_number"]), int(config["data_size"]))


def check(config: Mapping[str, Any]) -> None:
    """Refuse bad parameters (RunnerError: one line, what is wrong and how to fix it). Expects a
    resolved configuration."""
    if "repetition" in config:
        raise RunnerError(
            "preprocess: repetition is the trials column numbering repeated trials; to read the "
            "same data set several times within a trial (003's repetition) set passes = N"
        )
    if config.get("epochs") is not None:
        raise RunnerError(
            "preprocess: epochs does not apply; to process the data set several times within a "
            "trial set passes = N"
        )
    for key in _FOREIGN:
        if config.get(key) is not None:
            raise RunnerError(
                f"preprocess: {key} is a parameter of another workload; drop it from this "
                "configuration"
            )
    fmt = config.get("file_format")
    if fmt not in FILE_FORMATS:
        raise RunnerError(
            f"preprocess: file_format must be one of {', '.join(FILE_FORMATS)}, got {fmt!r}"
        )
    if not isinstance(config.get("cache"), bool):
        raise RunnerError(f"preprocess: cache must be true or false, got {config.get('cache')!r}")
    limits = {
        "batch_size": None,
        "batch_number": None,
        "data_size": MAX_DATA_SIZE,
        "passes": None,
        "resize": MAX_RESIZE,
        "shards": None,
    }
    for key, most in limits.items():
        value = config.get(key)
        if key == "shards" and value is None:
            continue
        if not _is_int(value) or value < 1 or (most is not None and value > most):
            bound = f" and <= {most}" if most is not None else ""
            raise RunnerError(f"preprocess: {key} must be an integer >= 1{bound}, got {value!r}")
    size, batch, number = config["data_size"], config["batch_size"], config["batch_number"]
    if (number - 1) * batch >= size:
        most = math.ceil(size / batch)
        raise RunnerError(
            f"preprocess: batch_number {number} x batch_size {batch} needs more than data_size "
            f"{size} images (batch {number} would be empty); use batch_number <= {most} or raise "
            "data_size"
        )
    shards = config.get("shards")
    if shards is not None and fmt != "records":
        raise RunnerError(
            "preprocess: shards applies to file_format records only; drop it or set "
            'file_format = "records"'
        )
    if shards is not None and shards > size:
        raise RunnerError(
            f"preprocess: shards {shards} is more than data_size {size}; use at most {size} shards"
        )
    _check_work_dir(config)


def _check_work_dir(config: Mapping[str, Any]) -> None:
    work_dir = config.get("work_dir")
    address = config.get("address")
    if work_dir is None:
        if address and not is_loopback(str(address)):
            raise RunnerError(
                f"preprocess on the cluster at {address}: its workers read and write the files, "
                "so set work_dir to a folder every node sees (a shared file system)"
            )
        parent = Path(tempfile.gettempdir())
    else:
        parent = Path(str(work_dir))
        if not parent.is_dir():
            raise RunnerError(
                f"preprocess: work_dir {parent} does not exist or is not a folder; create it or "
                "drop work_dir"
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunnerError(f"preprocess: work_dir {parent} is not writable; choose another")
    # inputs (a PNG of an 8x8 or 28x28 image is under 1 kB) plus every pass's float32 outputs
    need = int(config["data_size"]) * 1024 + images_per_pass(config) * int(config["passes"]) * (
        int(config["resize"]) ** 2 * 4 + 128
    )
    free = shutil.disk_usage(parent).free
    if need > 0.9 * free:
        raise RunnerError(
            f"preprocess: about {need / 2**30:.1f} GiB of files would not fit in {parent} "
            f"({free / 2**30:.1f} GiB free); lower data_size, passes or resize, or set work_dir"
        )


# --- the work: descriptors, decode, resize + normalise + write --------------------------------


class Batch(NamedTuple):
    """One unit of work: ``items`` are PNG paths (images) or (shard path, offset, size, count)
    spans of consecutive records (records)."""

    index: int
    kind: str
    items: tuple[Any, ...]


class Decoded(NamedTuple):
    index: int
    images: np.ndarray  # uint8 (n, rows, cols)
    labels: np.ndarray  # int64 (n,)
    bytes_read: int


class Done(NamedTuple):
    index: int
    images: int
    decoded: int  # images this call's batch had to read and decode (0 when cached)
    bytes_read: int
    bytes_written: int
    worker: str  # host:pid of the process that wrote the batch


def _decode_png(data: bytes | memoryview) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("L") if img.mode != "L" else img, dtype=np.uint8)


def read_decode(batch: Batch) -> Decoded:
    """Read a batch's input bytes and decode its PNGs."""
    from runner.preprocess.tfrecord import decode_example, parse_records

    images: list[np.ndarray] = []
    labels: list[int] = []
    read = 0
    if batch.kind == "images":
        for path in batch.items:
            with open(path, "rb") as fh:
                data = fh.read()
            read += len(data)
            images.append(_decode_png(data))
            labels.append(int(Path(path).stem.rsplit("-", 1)[1]))
    else:
        for shard, offset, size, count in batch.items:
            with open(shard, "rb") as fh:
                fh.seek(offset)
                data = fh.read(size)
            read += len(data)
            records = list(parse_records(data, verify_data=False, where=str(shard)))
            if len(records) != count:
                raise RunnerError(f"{shard}: expected {count} records, found {len(records)}")
            for record in records:
                example = decode_example(record)
                images.append(_decode_png(example["image"][0]))  # type: ignore[arg-type]
                labels.append(int(example["label"][0]))
    return Decoded(batch.index, np.stack(images), np.asarray(labels, dtype=np.int64), read)


def output_path(out_root: str | Path, pass_no: int, index: int) -> Path:
    return Path(out_root) / f"p{pass_no}" / f"b{index:05d}.npy"


def transform_write(
    decoded: Decoded, out_root: str, pass_no: int, resize: int, fresh: bool = True
) -> Done:
    """Resize (bilinear) and normalise a decoded batch to float32 in [0, 1] and write it as one
    ``.npy``. ``fresh``: the batch was read and decoded for this call (not taken from a cache)."""
    import socket

    from PIL import Image

    out = np.empty((len(decoded.images), resize, resize), dtype=np.float32)
    for i, pixels in enumerate(decoded.images):
        img = Image.fromarray(pixels)
        if img.size != (resize, resize):
            img = img.resize((resize, resize), Image.Resampling.BILINEAR)
        out[i] = np.asarray(img, dtype=np.float32)
    out *= np.float32(1 / 255)
    path = output_path(out_root, pass_no, decoded.index)
    with open(path, "wb") as fh:
        np.save(fh, out, allow_pickle=False)
        written = fh.tell()
    n = len(out)
    return Done(
        decoded.index,
        n,
        n if fresh else 0,
        decoded.bytes_read if fresh else 0,
        written,
        f"{socket.gethostname()}:{os.getpid()}",
    )


def process(batch: Batch, out_root: str, pass_no: int, resize: int) -> Done:
    """The whole step for one batch: read, decode, resize, normalise, write."""
    return transform_write(read_decode(batch), out_root, pass_no, resize)


def warm() -> str:
    """Import what the step needs in a worker process (run in load, never in a trial)."""
    from PIL import Image, PngImagePlugin  # noqa: F401

    import runner.preprocess.tfrecord  # noqa: F401

    buf = io.BytesIO()
    Image.fromarray(np.zeros((2, 2), dtype=np.uint8)).save(buf, format="PNG")
    _decode_png(buf.getvalue())
    return str(os.getpid())


# --- the input files --------------------------------------------------------------------------


class Inputs(NamedTuple):
    batches: list[Batch]  # one pass
    input_bytes: int


def source_images(split: Any) -> tuple[np.ndarray, np.ndarray]:
    """The split's training images as uint8 (n, rows, cols) in 0-255, and their labels."""
    rows, cols = split.image_shape
    pixels = np.rint(np.asarray(split.x_train, dtype=np.float64) * 255).clip(0, 255)
    return pixels.astype(np.uint8).reshape(len(pixels), rows, cols), np.asarray(split.y_train)


def encode_png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def generate(split: Any, config: Mapping[str, Any], root: Path) -> Inputs:
    """Write the configuration's input files under ``root/in`` and return one pass's batches."""
    from runner.preprocess.tfrecord import encode_example, write_records

    images, labels = source_images(split)
    size = int(config["data_size"])
    folder = root / "in"
    folder.mkdir(parents=True)
    pngs = [
        (encode_png(images[i % len(images)]), int(labels[i % len(images)])) for i in range(size)
    ]
    per_pass = images_per_pass(config)
    batch = int(config["batch_size"])
    bounds = [(s, min(s + batch, per_pass)) for s in range(0, per_pass, batch)]
    if config["file_format"] == "images":
        paths = []
        for i, (png, label) in enumerate(pngs):
            path = folder / f"{i:07d}-{label}.png"
            path.write_bytes(png)
            paths.append(str(path))
        total = sum(len(png) for png, _ in pngs)
        batches = [Batch(b, "images", tuple(paths[s:e])) for b, (s, e) in enumerate(bounds)]
        return Inputs(batches, total)
    shards = int(config["shards"])
    # where each image lives: (shard path, offset, framed size)
    where: list[tuple[str, int, int]] = []
    total = 0
    for s, part in enumerate(np.array_split(np.arange(size), shards)):
        path = folder / f"part-{s:05d}-of-{shards:05d}.tfrecord"
        spans = write_records(path, [encode_example(*pngs[i]) for i in part])
        where += [(str(path), offset, length) for offset, length in spans]
        total += sum(length for _, length in spans)
    batches = [Batch(b, "records", tuple(_spans(where[s:e]))) for b, (s, e) in enumerate(bounds)]
    return Inputs(batches, total)


def _spans(records: Sequence[tuple[str, int, int]]) -> Iterable[tuple[str, int, int, int]]:
    """Consecutive records of one shard as one (shard, offset, size, count) span."""
    current: list[Any] | None = None
    for shard, offset, size in records:
        if current is not None and current[0] == shard and current[1] + current[2] == offset:
            current[2] += size
            current[3] += 1
            continue
        if current is not None:
            yield tuple(current)  # type: ignore[misc]
        current = [shard, offset, size, 1]
    if current is not None:
        yield tuple(current)  # type: ignore[misc]


def sweep_stale(parent: Path) -> None:
    """Remove working directories left by configuration workers that were killed (a trial over
    --timeout): their names carry the owner's pid."""
    import psutil

    for entry in parent.glob(f"{WORK_PREFIX}*"):
        try:
            pid = int(entry.name[len(WORK_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if entry.is_dir() and not psutil.pid_exists(pid):
            shutil.rmtree(entry, ignore_errors=True)


# --- the session every engine shares ----------------------------------------------------------


class PreprocessSession:
    """Life cycle of the preprocess workload on an engine. ``start`` starts the engine (the
    engine package's own session: Spark JVM, Dask cluster, Ray runtime); ``load`` creates the
    working directory, writes the input files and warms the engine's workers; ``run_trial``
    clears the previous outputs (not timed), then times ``passes`` passes over the batches;
    ``close`` stops the engine and removes the working directory, also after a failure.

    Engines name their engine module (``ENGINE``) and implement ``_warm`` and ``_run_passes``."""

    #: The engine whose session this one runs on: ``runner.engines.<ENGINE>``.
    ENGINE = ""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.workers = config.workers
        self.threads = config.threads_per_worker
        # resolve filled these in (DEFAULTS), so the stored configuration says what ran
        self.passes = int(config["passes"])
        self.cache = bool(config["cache"])
        self.resize = int(config["resize"])
        self.engine: Any = None
        self.work: Path | None = None
        self.inputs: Inputs | None = None

    def _make_engine(self) -> Any:
        return importlib.import_module(f"runner.engines.{self.ENGINE}").Session(self.config)

    # engine hooks
    def _warm(self, split: Any) -> None:
        """Make the workers import and exercise the step once (load_s, not a trial)."""
        raise NotImplementedError

    def _run_passes(
        self, batches: list[Batch], out_root: str
    ) -> tuple[list[Done], dict[str, float]]:
        """Run every pass; return what each batch of each pass did, and the metrics the engine
        measured itself (they replace those summed from ``Done``)."""
        raise NotImplementedError

    def _after_trial(self) -> None:
        """Release what the trial cached (after the timed part, also when it failed)."""

    # life cycle
    def start(self) -> None:
        self.engine = self._make_engine()
        self.engine.start()

    def load(self, split: Any) -> None:
        # work_dir is optional: unset, the temporary folder of the machine the worker runs on
        # (not stored, so a configuration's id does not depend on the machine)
        work_dir = self.config.get("work_dir")
        parent = Path(str(work_dir) if work_dir else tempfile.gettempdir())
        sweep_stale(parent)
        self.work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=parent))
        self.inputs = generate(split, self.config, self.work)
        self._warm(split)

    @property
    def out_root(self) -> Path:
        assert self.work is not None
        return self.work / "out"

    def _clear_outputs(self) -> None:
        shutil.rmtree(self.out_root, ignore_errors=True)
        for p in range(self.passes):
            (self.out_root / f"p{p}").mkdir(parents=True)

    def run_trial(self, seed: int) -> dict[str, Any]:
        assert self.inputs is not None
        self._clear_outputs()
        t0 = time.perf_counter_ns()
        try:
            done, measured = self._run_passes(self.inputs.batches, str(self.out_root))
            train_s = (time.perf_counter_ns() - t0) / 1e9
        finally:
            self._after_trial()
        images = sum(d.images for d in done)
        expected = images_per_pass(self.config) * self.passes
        if images != expected:
            raise RuntimeError(f"preprocess: {images} images processed, expected {expected}")
        metrics = {
            "throughput_ips": images / train_s,
            "images": float(images),
            "decoded_images": float(sum(d.decoded for d in done)),
            "batches": float(len(self.inputs.batches)),
            "bytes_read": float(sum(d.bytes_read for d in done)),
            "bytes_written": float(sum(d.bytes_written for d in done)),
            "input_bytes": float(self.inputs.input_bytes),
            "workers_used": float(len({d.worker for d in done})),
            **measured,
        }
        return {"train_s": train_s, "infer_s": None, "metrics": metrics}

    def close(self) -> None:
        try:
            if self.engine is not None:
                self.engine.close()
        finally:
            if self.work is not None:
                shutil.rmtree(self.work, ignore_errors=True)
                self.work = None


def run_in_threads(func: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list[Any]:
    """``func`` over ``items`` in order, on ``threads`` threads (in this thread when 1)."""
    if threads <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(func, items))


__all__ = [
    "DEFAULTS",
    "FILE_FORMATS",
    "Batch",
    "Decoded",
    "Done",
    "PreprocessSession",
    "check",
    "generate",
    "process",
    "read_decode",
    "resolve",
    "transform_write",
]
