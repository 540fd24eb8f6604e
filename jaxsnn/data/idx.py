"""Reads MNIST-format IDX files (plain or gzip) with numpy.

The IDX format (http://yann.lecun.com/exdb/mnist/) is a 4-byte magic number
``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the
row-major data in big-endian byte order. MNIST, Fashion-MNIST, KMNIST and EMNIST all
ship as four such files per dataset (train/test images and labels).
"""

import gzip
import os
import pathlib
import zlib

import numpy as np

# IDX dtype codes, from the format description.
_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

# Canonical stems of the four files; `.gz` or the `.idx3-ubyte` spelling also match.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
HOW_TO_GET = (
    "for Fashion-MNIST run scripts/get_fashion_mnist.sh or apt-get install "
    "dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist); otherwise put the "
    "four IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) in a folder and set "
    "config.local_dir to it"
)


def _candidates(stem: str) -> list[str]:
    """Lists the file names under which one IDX file may be stored."""
    dotted = stem.replace("-idx", ".idx")
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def find_idx_file(idx_dir: os.PathLike | str, stem: str) -> pathlib.Path | None:
    """Returns the path of one IDX file in `idx_dir`, or None if it is absent."""
    directory = pathlib.Path(idx_dir)
    for name in _candidates(stem):
        if (directory / name).is_file():
            return directory / name
    return None


def has_idx_files(idx_dir: os.PathLike | str | None) -> bool:
    """Returns whether `idx_dir` holds all four IDX files."""
    if not idx_dir:
        return False
    return all(find_idx_file(idx_dir, stem) for stem in IDX_FILES.values())


def find_idx_files(idx_dir: os.PathLike | str) -> dict[str, pathlib.Path]:
    """Locates the four IDX files of a dataset directory.

    Args:
      idx_dir: directory holding ``train-images-idx3-ubyte(.gz)`` and the three others.

    Returns:
      Paths keyed by ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.

    Raises:
      FileNotFoundError: one-line message naming the directory and how to get the data.
    """
    found = {key: find_idx_file(idx_dir, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[key] + "[.gz]" for key, path in found.items() if path is None]
    if missing:
        where = (
            "does not exist"
            if not pathlib.Path(idx_dir).is_dir()
            else "lacks " + ", ".join(missing)
        )
        raise FileNotFoundError(f"IDX directory {os.fspath(idx_dir)!r} {where}; {HOW_TO_GET}")
    return found


def _read_bytes(path: pathlib.Path) -> bytes:
    """Reads a file, transparently gunzipping it when it starts with the gzip magic."""
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: corrupted gzip stream ({e})") from e


def parse_idx(data: bytes, *, name: str = "<bytes>") -> np.ndarray:
    """Parses the bytes of one IDX file.

    Args:
      data: the decompressed file content.
      name: how to refer to the data in error messages (usually the path).

    Returns:
      The array with the shape and dtype given by the header, in native byte order.

    Raises:
      ValueError: if the magic number is wrong or the size disagrees with the header.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(
            f"{name}: not an IDX file (bad magic number {data[:4].hex() or 'empty'}); "
            "the file is corrupted or not in MNIST IDX format"
        )
    dtype, ndim = _DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header; the file is corrupted")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{name}: IDX header declares shape {shape} ({expected} bytes) but the file "
            f"holds {len(data) - header} bytes; the file is truncated or corrupted"
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: os.PathLike | str) -> np.ndarray:
    """Reads one IDX file (plain or gzip) into a numpy array."""
    path = pathlib.Path(path)
    return parse_idx(_read_bytes(path), name=os.fspath(path))


def read_idx_image_shape(path: os.PathLike | str) -> tuple[int, int, int]:
    """Reads only the header of an images file and returns its (H, W, 1) image shape."""
    path = pathlib.Path(path)
    with path.open("rb") as f:
        is_gzip = f.read(2) == _GZIP_MAGIC
    opener = gzip.open if is_gzip else open
    try:
        with opener(path, "rb") as f:
            head = f.read(16)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: corrupted gzip stream ({e})") from e
    if len(head) < 4 or head[:3] != b"\x00\x00\x08" or head[3] != 3:
        raise ValueError(
            f"{path}: not an IDX uint8 image file (magic {head[:4].hex() or 'empty'}); "
            "the file is corrupted or not in MNIST IDX format"
        )
    if len(head) < 16:
        raise ValueError(f"{path}: truncated IDX header; the file is corrupted")
    _, height, width = (int(d) for d in np.frombuffer(head, ">u4", count=3, offset=4))
    return height, width, 1


def read_idx_split(
    images_path: os.PathLike | str, labels_path: os.PathLike | str
) -> tuple[np.ndarray, np.ndarray]:
    """Reads one split: uint8 images [N, H, W, 1] and uint8 labels [N].

    Raises:
      ValueError: if the files are not uint8 images/labels or their counts differ.
    """
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"{images_path}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected uint8 labels [N], got {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return images[..., None], labels
