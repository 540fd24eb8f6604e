"""Host-side (numpy / PIL) image preprocessing and augmentation.

Batch ops take uint8 or float32 arrays [B, H, W, C] and a `numpy.random.Generator`,
draw all their random numbers for the batch in one call each, and are deterministic
given the generator state. A process of a multi-process run builds only some rows of
each global batch: given ``rows`` (`Rows`), an op draws the numbers of the whole global
batch and keeps those of its rows, so a row's augmentation does not depend on which
process builds it (drawing parameters is cheap; only the pixels are per-row work).
Where a per-image slice copy is faster than a fancy-index gather (crop, Cutout), they
loop over the batch for the copy only. Per-image ops (ImageNet crops, parts of
AutoAugment in `jaxsnn.data.autoaugment`) use PIL. The ImageNet random-resized crop
makes a data-dependent number of draws per image (rejection sampling on the image
size), so it takes one generator per row instead.
`preprocess_batch` composes them in the order of the standard CIFAR recipe
(torchvision ``RandomCrop(padding) -> RandomHorizontalFlip -> [AutoAugment] ->
ToTensor -> Normalize -> Cutout``): zero padding happens in pixel space (black), and
the Cutout hole is zeroed after normalisation.
"""

import dataclasses
import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jaxsnn.data import autoaugment


@dataclasses.dataclass(frozen=True)
class Plan:
    """How to turn decoded uint8 images into a float32 model batch.

    Attributes:
      mean: per-channel mean in [0, 1] units, shape (C,).
      std: per-channel standard deviation in [0, 1] units, shape (C,).
      crop_padding: zero padding of the random crop; 0 disables the crop.
      flip: random horizontal flip with probability 1/2.
      autoaugment: apply the AutoAugment CIFAR10 policy.
      cutout: side of the Cutout hole; 0 disables it.
      resize: ImageNet resizing: 'random' (random-resized crop), 'center' (resize and
        central crop) or None (images already have a fixed size).
      image_size: output side for ImageNet resizing.
    """

    mean: np.ndarray
    std: np.ndarray
    crop_padding: int = 0
    flip: bool = False
    autoaugment: bool = False
    cutout: int = 0
    resize: str | None = None
    image_size: int = 224


@dataclasses.dataclass(frozen=True)
class Rows:
    """Where a local chunk sits in its global batch: rows ``[start, start + n)`` of ``total``.

    Attributes:
      start: index of the chunk's first row in the global batch.
      total: global batch size (the number of random draws per batch op).
    """

    start: int
    total: int


def _local(draws: np.ndarray, n: int, rows: Rows | None) -> np.ndarray:
    """The draws of the ``n`` local rows out of draws made for the whole global batch."""
    return draws if rows is None else draws[rows.start : rows.start + n]


def _size(n: int, rows: Rows | None) -> int:
    """How many rows to draw for: the global batch size."""
    return n if rows is None else rows.total


def decode_image(data: bytes, channels: int) -> np.ndarray:
    """Decodes an encoded image (JPEG, PNG, ...) to uint8 [H, W, channels] with PIL.

    CMYK and grayscale files (a few dozen in ImageNet) are converted, so every image has
    ``channels`` channels.
    """
    with Image.open(io.BytesIO(data)) as pil:
        pil = pil.convert("L" if channels == 1 else "RGB")
        return np.asarray(pil).reshape(pil.size[1], pil.size[0], channels)


def normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Converts uint8 images [B, H, W, C] to float32 ``(x / 255 - mean) / std``."""
    batch, height, width, channels = images.shape
    std = np.asarray(std, np.float32)
    # Per-channel constants tiled over W, so numpy's inner loop runs over W * C values
    # instead of broadcasting a length-C vector (which is ~10x slower for C = 3).
    scale = np.tile(1.0 / (255.0 * std), width).astype(np.float32)
    shift = np.tile(-np.asarray(mean, np.float32) / std, width).astype(np.float32)
    out = images.reshape(batch, height, width * channels).astype(np.float32)
    out *= scale
    out += shift
    return out.reshape(images.shape)


def random_crop_flip(
    images: np.ndarray,
    rng: np.random.Generator,
    *,
    padding: int,
    flip: bool,
    rows: Rows | None = None,
) -> np.ndarray:
    """Random crop of a zero-padded batch plus an optional random horizontal flip.

    Each image is padded with ``padding`` zero pixels on every side and cropped back to
    its size at an offset drawn uniformly from ``[0, 2 * padding]`` per axis (as
    torchvision ``RandomCrop(size, padding)``); with ``flip``, half of the images are
    mirrored left-right. All random numbers are drawn for the batch at once; the
    copies are per-image slices, which is ~3x faster than one fancy-index gather.

    Args:
      images: [B, H, W, C] batch.
      rng: source of randomness.
      padding: zero padding in pixels (0: no crop).
      flip: whether to flip.
      rows: where ``images`` sit in their global batch (None: they are the whole batch).

    Returns:
      The augmented batch, same shape and dtype.
    """
    batch, height, width, _ = images.shape
    size = _size(batch, rows)
    offset_y = _local(rng.integers(0, 2 * padding + 1, size=size), batch, rows)
    offset_x = _local(rng.integers(0, 2 * padding + 1, size=size), batch, rows)
    flips = _local(rng.random(size) < 0.5, batch, rows) if flip else np.zeros(batch, bool)
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    out = np.empty_like(images)
    for i, (y, x, mirror) in enumerate(zip(offset_y, offset_x, flips, strict=True)):
        window = padded[i, y : y + height, x : x + width]
        out[i] = window[:, ::-1] if mirror else window
    return out


def random_flip(
    images: np.ndarray, rng: np.random.Generator, *, rows: Rows | None = None
) -> np.ndarray:
    """Mirrors each image left-right with probability 1/2 (``rows`` as in `random_crop_flip`)."""
    batch = images.shape[0]
    flips = _local(rng.random(_size(batch, rows)) < 0.5, batch, rows)
    return np.where(flips[:, None, None, None], images[:, :, ::-1], images)


def cutout(
    images: np.ndarray, rng: np.random.Generator, *, size: int, rows: Rows | None = None
) -> np.ndarray:
    """Zeroes one ``size`` x ``size`` square per image (DeVries & Taylor 2017, Cutout).

    The square's centre is uniform over all pixels, and the square is clipped at the
    image border, so a hole near an edge is smaller (as in the reference code; unlike
    it, an odd ``size`` also gives a full size x size hole).

    Args:
      images: [B, H, W, C] batch, usually already normalised.
      rng: source of randomness.
      size: side of the hole in pixels.
      rows: where ``images`` sit in their global batch (None: they are the whole batch).

    Returns:
      A copy of the batch with the holes set to 0.
    """
    batch, height, width, _ = images.shape
    centre_y = _local(rng.integers(0, height, size=_size(batch, rows)), batch, rows)
    centre_x = _local(rng.integers(0, width, size=_size(batch, rows)), batch, rows)
    y0, x0 = np.maximum(centre_y - size // 2, 0), np.maximum(centre_x - size // 2, 0)
    y1 = np.minimum(centre_y + size - size // 2, height)
    x1 = np.minimum(centre_x + size - size // 2, width)
    out = images.copy()
    for i in range(batch):
        out[i, y0[i] : y1[i], x0[i] : x1[i]] = 0
    return out


def random_resized_crop_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """Samples an Inception-style crop box (top, left, h, w) as torchvision does.

    Tries ten times to find a box covering a uniform fraction ``scale`` of the area with
    a log-uniform aspect ``ratio``; otherwise falls back to a central crop.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, *, size: int) -> np.ndarray:
    """Crops a random box (see `random_resized_crop_box`) and resizes it to size x size."""
    top, left, h, w = random_resized_crop_box(image.shape[0], image.shape[1], rng)
    pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
    out = pil.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    return np.asarray(out).reshape(size, size, image.shape[-1])


def resize_center_crop(image: np.ndarray, *, size: int) -> np.ndarray:
    """Resizes the shorter side to ``size * 256 / 224`` and takes the central size x size."""
    height, width = image.shape[:2]
    short = round(size * 256 / 224)
    scale = short / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
    pil = pil.resize((new_w, new_h), Image.Resampling.BILINEAR)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    out = pil.crop((left, top, left + size, top + size))
    return np.asarray(out).reshape(size, size, image.shape[-1])


def _stack(images: Sequence[np.ndarray], row_rngs, plan: Plan):
    """Stacks decoded images, resizing variable-size (ImageNet) ones first."""
    if plan.resize == "random":
        return np.stack(
            [
                random_resized_crop(im, rng, size=plan.image_size)
                for im, rng in zip(images, row_rngs, strict=True)
            ]
        )
    if plan.resize == "center":
        return np.stack([resize_center_crop(im, size=plan.image_size) for im in images])
    return np.stack(images)


def preprocess_batch(
    images: Sequence[np.ndarray],
    rng: np.random.Generator | None,
    plan: Plan,
    *,
    rows: Rows | None = None,
    row_rngs: Sequence[np.random.Generator] | None = None,
) -> np.ndarray:
    """Turns decoded uint8 images into one normalised float32 batch [B, H, W, C].

    Args:
      images: B uint8 arrays [H, W, C] (variable H, W only with ``plan.resize``).
      rng: generator for the batch ops; may be None when the plan has none.
      plan: what to do, see `Plan`.
      rows: where the B images sit in their global batch (None: they are the whole
        batch); the batch ops draw for the global batch and keep these rows' draws.
      row_rngs: one generator per image for the random-resized crop
        (``plan.resize == 'random'`` only).

    Returns:
      float32 [B, H, W, C].
    """
    batch = _stack(images, row_rngs, plan)
    if plan.crop_padding or (plan.flip and not plan.resize):
        batch = random_crop_flip(batch, rng, padding=plan.crop_padding, flip=plan.flip, rows=rows)
    elif plan.flip:
        batch = random_flip(batch, rng, rows=rows)
    if plan.autoaugment:
        batch = autoaugment.cifar10_policy(batch, rng, rows=rows)
    batch = normalize(batch, plan.mean, plan.std)
    if plan.cutout:
        batch = cutout(batch, rng, size=plan.cutout, rows=rows)
    return batch
