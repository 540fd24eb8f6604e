"""Deterministic input pipelines on grain: training, evaluation and calibration batches.

Every pipeline is a grain ``MapDataset`` over batch numbers whose stages are: the global
shuffle and this process's share (which records the rows of batch ``i`` are), a batched
random-access read from the TFDS data source, then decoding, augmentation and
normalisation. ``batch_size`` is always the *global* batch size. On a run of ``P`` JAX
processes, process ``p`` builds only rows ``[p·B/P, (p+1)·B/P)`` of every global batch
(evaluation: of the zero-padded global batch, with its 'mask'), and
`jaxsnn.train.sharding.shard_batch` assembles the global array from those local rows;
with one process the batch is whole.

Determinism and exact resume. The example order of epoch ``e`` is a permutation drawn
from ``np.random.default_rng([seed, 0, e])`` and the augmentation of step ``i`` of that
epoch uses ``np.random.default_rng([seed, 1, e, i])``: each batch op draws its numbers
for the whole global batch and a process keeps its rows' (`jaxsnn.data.augment.Rows`).
The ImageNet random-resized crop, whose number of draws depends on the image size, uses
one stream per row, ``[seed, 4, e, i, row]``. Nothing else influences a batch, so
``train_batches(config, epoch=e, start_step=k, ...)`` yields exactly batches ``k..`` of
``train_batches(config, epoch=e, ...)``, skipped batches are never read or decoded, and
a row has the same value whichever process, worker or worker count builds it. The
constant second word keeps the streams apart: numpy's SeedSequence pads short entropy
with zeros, so ``[seed, e]`` and ``[seed, e, 0]`` would be the same stream. Seeds must be
non-negative integers. Unlike tf.data shuffling, this is bit-reproducible across runs,
processes and worker counts (for fixed numpy and Pillow versions), which is what makes
resumed runs bit-identical without storing any iterator state in the checkpoint.

Throughput. Training batches are built by ``config.data_workers`` grain worker
processes (default 2; each builds whole batches, in order), each keeping up to
``config.data_prefetch`` finished batches ahead (default 2), so augmentation is not
capped by the GIL. Worker processes take a few seconds to start (they import JAX, which
grain needs), so the training stream outlives the per-epoch iterators: when epoch
``e + 1`` is asked for right after epoch ``e`` was served in full, the same workers go
on (they prefetch across the epoch boundary while the evaluation runs). Evaluation and
calibration batches need no augmentation, only reading, decoding, resizing and
normalising, which release the GIL, so ``config.data_workers`` threads of this process
build them and nothing has to start up. ``data_workers=0`` builds every batch
synchronously in the calling thread (useful for debugging and profiling).
`jaxsnn.data.loader` runs the datasets.
``bench/pipeline.py`` measures images/s per dataset and worker count (README, "Data").
"""

import dataclasses
import functools
import json
import math
from collections.abc import Iterator, Sequence

import grain
import jax
import ml_collections
import numpy as np

from jaxsnn.data import augment as augment_lib
from jaxsnn.data import datasets, loader

# Second seed word of each random stream (see the module docstring).
_PERMUTATION, _AUGMENT, _CALIBRATION_ORDER, _CALIBRATION_AUGMENT = 0, 1, 2, 3
_CROP, _CALIBRATION_CROP = 4, 5


def _check_non_negative(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
    return int(value)


def _check_batch_size(batch_size: int) -> None:
    if _check_non_negative("batch_size", batch_size) == 0:
        raise ValueError("batch_size: expected a positive int, got 0")


@functools.lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    """Returns the example order of one training epoch (read-only, cached)."""
    order = np.random.default_rng([seed, _PERMUTATION, epoch]).permutation(num_examples)
    order.setflags(write=False)
    return order


@functools.lru_cache(maxsize=2)
def _calibration_order(seed: int, num_examples: int) -> np.ndarray:
    """The order from which calibration batches take their examples (read-only, cached)."""
    order = np.random.default_rng([seed, _CALIBRATION_ORDER]).permutation(num_examples)
    order.setflags(write=False)
    return order


def augment_rng(seed: int, epoch: int, step: int) -> np.random.Generator:
    """Returns the generator that augments batch ``step`` of ``epoch``."""
    return np.random.default_rng([seed, _AUGMENT, epoch, step])


def process_layout() -> tuple[int, int]:
    """``(index, count)`` of this JAX process among the processes of the run."""
    return jax.process_index(), jax.process_count()


def local_rows(batch_size: int) -> augment_lib.Rows:
    """Where this process's rows sit in every global batch of ``batch_size``.

    Raises:
      ValueError: ``batch_size`` does not split evenly over the processes.
    """
    index, count = process_layout()
    if batch_size % count:
        raise ValueError(
            f"batch_size {batch_size}: must be divisible by the {count} processes of this run "
            "(each builds an equal share of every batch)"
        )
    return augment_lib.Rows(start=index * batch_size // count, total=batch_size)


def make_plan(config: ml_collections.ConfigDict, source, *, train: bool) -> augment_lib.Plan:
    """Builds the preprocessing plan of ``config`` for training or evaluation."""
    spec = datasets.get_spec(config)
    mean, std = (np.asarray(v, np.float32) for v in datasets.normalisation(config, source))
    mode = datasets.get_augment(config) if train else "none"
    size = int(config.get("image_size", None) or 224)
    if spec.imagenet:
        random = mode == "crop_flip"
        return augment_lib.Plan(
            mean, std, flip=random, resize="random" if random else "center", image_size=size
        )
    if mode == "none":
        return augment_lib.Plan(mean, std)
    return augment_lib.Plan(
        mean,
        std,
        crop_padding=spec.crop_padding,
        flip=spec.flip,
        autoaugment=mode == "autoaugment_cutout",
        cutout=int(config.get("cutout", None) or spec.cutout) if mode.endswith("cutout") else 0,
    )


def _read_examples(source, indices: Sequence[int]) -> list[dict]:
    """Reads examples by index with one batched random-access call."""
    indices = [int(i) for i in indices]
    if not indices:
        return []
    try:
        return list(source.__getitems__(indices))
    except (AttributeError, TypeError):  # A source without batched reads: one by one.
        return [source[i] for i in indices]


def _as_image(value, channels: int) -> np.ndarray:
    """A decoded uint8 [H, W, C] image from a source value (array, or encoded bytes)."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        value = value.item()
    if isinstance(value, bytes | np.bytes_):
        return augment_lib.decode_image(bytes(value), channels)
    return np.asarray(value)


# Pipeline stages. Each maps one work item (a dict) to the next; they are small frozen
# dataclasses so that grain can send them to its worker processes.


@dataclasses.dataclass(frozen=True)
class _TrainRows:
    """Global step -> this process's record indices of that step: global shuffle + shard."""

    seed: int
    num_examples: int
    steps_per_epoch: int
    rows: augment_lib.Rows
    local: int

    def __call__(self, global_step: int) -> dict:
        epoch, step = divmod(int(global_step), self.steps_per_epoch)
        order = epoch_permutation(self.seed, epoch, self.num_examples)
        first = step * self.rows.total + self.rows.start
        return {"ids": (epoch, step), "indices": order[first : first + self.local]}


@dataclasses.dataclass(frozen=True)
class _CalibrationRows:
    """Calibration batch number -> this process's record indices (a seeded subset)."""

    seed: int
    num_examples: int
    rows: augment_lib.Rows
    local: int

    def __call__(self, i: int) -> dict:
        order = _calibration_order(self.seed, self.num_examples)
        first = int(i) * self.rows.total + self.rows.start
        return {"ids": (int(i),), "indices": order[first : first + self.local]}


@dataclasses.dataclass(frozen=True)
class _EvalRows:
    """Evaluation batch number -> this process's record indices (in order; may be short)."""

    num_examples: int
    rows: augment_lib.Rows
    local: int

    def __call__(self, i: int) -> dict:
        first = int(i) * self.rows.total + self.rows.start
        stop = min(first + self.local, self.num_examples)
        return {"ids": (int(i),), "indices": np.arange(first, max(first, stop))}


@dataclasses.dataclass(frozen=True)
class _Read:
    """Reads the records of a work item with one batched random-access call."""

    source: object

    def __call__(self, work: dict) -> dict:
        return {**work, "examples": _read_examples(self.source, work["indices"])}


@dataclasses.dataclass(frozen=True)
class _Streams:
    """The random streams of one kind of batch: ``[seed, word, *ids]`` and per row."""

    seed: int
    batch_word: int
    row_word: int

    def batch(self, ids: tuple[int, ...]) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.batch_word, *ids])

    def row(self, ids: tuple[int, ...], row: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.row_word, *ids, row])


@dataclasses.dataclass(frozen=True)
class _Preprocess:
    """Decodes, augments and normalises the examples of a work item into a batch."""

    plan: augment_lib.Plan
    streams: _Streams | None
    rows: augment_lib.Rows
    image_shape: tuple[int, int, int]

    def __call__(self, work: dict) -> dict[str, np.ndarray]:
        examples = work["examples"]
        labels = np.asarray([ex["label"] for ex in examples], np.int32)
        if not examples:  # An evaluation share made only of padding.
            return {"image": np.zeros((0, *self.image_shape), np.float32), "label": labels}
        channels = self.image_shape[-1]
        images = [_as_image(ex["image"], channels) for ex in examples]
        rng = row_rngs = None
        if self.streams is not None:
            ids = work["ids"]
            rng = self.streams.batch(ids)
            if self.plan.resize == "random":
                first = self.rows.start
                row_rngs = [self.streams.row(ids, first + r) for r in range(len(images))]
        image = augment_lib.preprocess_batch(
            images, rng, self.plan, rows=self.rows, row_rngs=row_rngs
        )
        return {"image": image, "label": labels}


@dataclasses.dataclass(frozen=True)
class _Pad:
    """Pads an evaluation share with zeros to ``size`` rows and adds the 'mask'."""

    size: int

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _pad(batch, self.size)


def _pad(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Pads a batch with zeros to ``size`` rows and adds the 'mask' of real examples."""
    real = batch["label"].shape[0]
    padded = {
        key: np.concatenate([value, np.zeros((size - real, *value.shape[1:]), value.dtype)])
        for key, value in batch.items()
    }
    padded["mask"] = np.arange(size) < real
    return padded


def _workers(config: ml_collections.ConfigDict) -> tuple[int, int]:
    workers = _check_non_negative("config.data_workers", config.get("data_workers", 2))
    prefetch = _check_non_negative("config.data_prefetch", config.get("data_prefetch", 2))
    return workers, max(prefetch, 1)


def _num_train_steps(num_examples: int, batch_size: int) -> int:
    steps = num_examples // batch_size
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} exceeds the {num_examples} training examples")
    return steps


def steps_per_epoch(config: ml_collections.ConfigDict, batch_size: int) -> int:
    """Returns the number of training steps per epoch (the last partial batch is dropped)."""
    _check_batch_size(batch_size)
    return _num_train_steps(len(datasets.open_split(config, "train")), batch_size)


def _run_end(config: ml_collections.ConfigDict, steps: int, epoch_end: int) -> int:
    """The last global step (exclusive) the run will ask for, as far as the config says."""
    end = steps * int(config.get("num_epochs", 0) or 0)
    if config.get("max_steps", None) is not None:
        end = min(end, int(config.max_steps))
    return max(end, epoch_end)


def _image_shape(config: ml_collections.ConfigDict, source) -> tuple[int, int, int]:
    return tuple(int(d) for d in datasets.image_shape(config, source))


def train_batches(
    config: ml_collections.ConfigDict, *, epoch: int, start_step: int = 0, batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """Yields this process's rows of the training batches of one epoch, from ``start_step`` on.

    Args:
      config: reads ``dataset``, ``seed``, ``augment``, ``cutout``, ``image_size``,
        ``data_dir``, ``local_dir`` (or ``idx_dir``), ``data_workers``,
        ``data_prefetch``, and ``num_epochs`` / ``max_steps`` (how far ahead the
        worker processes may run).
      epoch: epoch number; with ``config.seed`` it fixes order and augmentation.
      start_step: first step to produce; earlier ones are skipped without reading.
      batch_size: global batch size.

    Returns:
      An iterator (with ``close()``) over ``steps_per_epoch - start_step`` dicts with
      'image' (float32 [B/P, H, W, C], normalised) and 'label' (int32 [B/P]), ``P``
      being the number of JAX processes.

    Raises:
      ValueError: for a bad config, batch size or ``start_step``.
      FileNotFoundError: if the dataset is not available.
    """
    _check_batch_size(batch_size)
    seed = _check_non_negative("config.seed", config.get("seed", 0))
    epoch = _check_non_negative("epoch", epoch)
    workers, prefetch = _workers(config)
    rows = local_rows(batch_size)
    source = datasets.open_split(config, "train")
    steps = _num_train_steps(len(source), batch_size)
    if not 0 <= start_step <= steps:
        raise ValueError(f"start_step {start_step} outside [0, {steps}] (steps per epoch)")
    plan = make_plan(config, source, train=True)
    local = batch_size // process_layout()[1]
    stages = (
        _TrainRows(seed, len(source), steps, rows, local),
        _Read(source),
        _Preprocess(plan, _Streams(seed, _AUGMENT, _CROP), rows, _image_shape(config, source)),
    )
    first, count = epoch * steps + start_step, steps - start_step
    if workers == 0:
        return loader.in_threads(loader.dataset(first, first + count, stages), workers, prefetch)
    key = json.dumps([config.to_dict(), batch_size, dataclasses.astuple(rows)], default=str)

    def make(first: int, stop: int) -> grain.DatasetIterator:
        return loader.in_processes(loader.dataset(first, stop, stages), workers, prefetch)

    end = _run_end(config, steps, (epoch + 1) * steps)
    return loader.serve("train", key, first, count, end, make)


def num_eval_batches(
    config: ml_collections.ConfigDict, batch_size: int, split: str = "test"
) -> int:
    """Returns the number of (padded) evaluation batches covering ``split``."""
    _check_batch_size(batch_size)
    return math.ceil(len(datasets.open_split(config, split)) / batch_size)


def eval_batches(
    config: ml_collections.ConfigDict, *, split: str = "test", batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """Yields every example of ``split`` exactly once, in order, without augmentation.

    Each global batch holds examples ``[i·B, (i+1)·B)`` of the split, the last one
    zero-padded to ``B``; this process yields its rows of each (see the module docstring).

    Args:
      config: the dataset config (see `train_batches`).
      split: 'test' (the evaluation split: 'validation' for ImageNet), 'train', or
        any other TFDS split name.
      batch_size: global batch size.

    Returns:
      An iterator over `num_eval_batches` dicts with 'image' (float32 [B/P, H, W, C]),
      'label' (int32 [B/P]) and 'mask' (bool [B/P], False on padding).
    """
    _check_batch_size(batch_size)
    workers, prefetch = _workers(config)
    rows = local_rows(batch_size)
    source = datasets.open_split(config, split)
    plan = make_plan(config, source, train=False)
    local = batch_size // process_layout()[1]
    stages = (
        _EvalRows(len(source), rows, local),
        _Read(source),
        _Preprocess(plan, None, rows, _image_shape(config, source)),
        _Pad(local),
    )
    ds = loader.dataset(0, math.ceil(len(source) / batch_size), stages)
    return loader.in_threads(ds, workers, prefetch)


def calibration_batches(
    config: ml_collections.ConfigDict,
    *,
    num_batches: int,
    batch_size: int,
    augment: bool = True,
    seed: int,
) -> list[dict[str, np.ndarray]]:
    """Returns a few training batches for calibration (threshold or bias statistics).

    The examples are a ``seed``-dependent random subset of the training split, drawn
    without replacement; with ``augment`` they are augmented like training batches
    (``config.augment``), otherwise preprocessed like evaluation batches. On a
    multi-process run each process gets its rows of every batch, as in `train_batches`.

    Args:
      config: the dataset config (see `train_batches`).
      num_batches: number of batches.
      batch_size: global examples per batch.
      augment: whether to apply the training augmentation.
      seed: non-negative seed of the subset and the augmentation.

    Returns:
      ``num_batches`` dicts with 'image' (float32 [B/P, H, W, C]) and 'label' (int32 [B/P]).
    """
    _check_batch_size(batch_size)
    seed = _check_non_negative("seed", seed)
    num_batches = _check_non_negative("num_batches", num_batches)
    workers, prefetch = _workers(config)
    rows = local_rows(batch_size)
    source = datasets.open_split(config, "train")
    if num_batches * batch_size > len(source):
        raise ValueError(
            f"{num_batches} calibration batches of {batch_size} exceed the "
            f"{len(source)} training examples"
        )
    plan = make_plan(config, source, train=augment)
    local = batch_size // process_layout()[1]
    streams = _Streams(seed, _CALIBRATION_AUGMENT, _CALIBRATION_CROP)
    stages = (
        _CalibrationRows(seed, len(source), rows, local),
        _Read(source),
        _Preprocess(plan, streams, rows, _image_shape(config, source)),
    )
    return list(loader.in_threads(loader.dataset(0, num_batches, stages), workers, prefetch))
