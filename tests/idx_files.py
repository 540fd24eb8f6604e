"""Shared test helper: tiny MNIST-format IDX datasets whose class is readable from brightness."""

import pathlib
import struct

import numpy as np


def write_idx(path: pathlib.Path, array: np.ndarray) -> None:
    """Writes a uint8 array in IDX format (magic 0x00 0x00 0x08 ndim, big-endian sizes)."""
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, array.ndim]))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def make_idx_dir(directory: pathlib.Path, n_train: int, n_test: int, seed: int) -> pathlib.Path:
    """Writes train/t10k 8×8 images and labels (pixel ~ 20·label + noise) to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 40, (n, 8, 8)) + 20 * labels[:, None, None]
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels)
    return directory
