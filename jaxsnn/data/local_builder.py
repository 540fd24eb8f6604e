"""The mechanism shared by the TFDS builders that prepare local files without TensorFlow.

Users often already hold a dataset in the layout its authors ship (MNIST IDX files, the
CIFAR python pickles, an ImageNet ImageFolder tree). A `LocalBuilder` turns such a folder
into an ordinary TFDS dataset in array_record format, read afterwards with random access
through ``builder.as_data_source()``. Preparation needs no TensorFlow:

* The array_record writer and TFDS's example serializer are pure Python/C++ and protobuf;
  only the tf.data reading path needs TensorFlow, so preparation always uses
  ``file_format='array_record'``.
* Features are stored as raw uint8 tensors (``Encoding.BYTES``) or as the image files'
  own bytes; encoding a numpy array into ``tfds.features.Image`` would call
  ``tf.image.encode_png``.
* ``_info`` builds ``tfds.core.DatasetInfo`` directly instead of
  ``dataset_info_from_configs``, which would look for metadata files (README,
  citations) next to the builder's module.

Each source folder gets its own BuilderConfig, named after the folder plus a fingerprint
of its absolute path and of what the builder lists (file names, sizes, folder times), so
two folders, or a changed download, never share a prepared copy. Preparation happens once
per TFDS ``data_dir``: later calls find the prepared files and return at once. Processes
that start together (the processes of a multi-process run on one host) serialise on a
lock file beside the prepared data, so one prepares and the others then read its result.
Examples keep the order of the source files (``disable_shuffling=True``), so record ``i``
of a split is example ``i`` of the source.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import logging
import os
import pathlib
import re
from collections.abc import Iterable

import tensorflow_datasets as tfds


@dataclasses.dataclass(eq=False)
class LocalBuilderConfig(tfds.core.BuilderConfig):
    """BuilderConfig of one local folder.

    Attributes:
      local_dir: absolute path of the folder holding the source files.
    """

    local_dir: str = ""


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the builders that prepare a local folder as array_record TFDS splits."""

    VERSION = tfds.core.Version("1.0.0")
    # TFDS derives `code_path` (only used to find a checksums file, which these builders
    # do not have) from the top-level package with importlib.resources, which fails
    # when `jaxsnn` resolves as a namespace package (e.g. a stale editable install).
    code_path = pathlib.Path(__file__)

    def __init__(self, *, file_format: str = "array_record", **kwargs):
        """Creates the builder; see `tfds.core.DatasetBuilder` for the other kwargs.

        Args:
          file_format: TFDS storage format; array_record keeps preparation and random
            access free of TensorFlow.
          **kwargs: forwarded to `tfds.core.GeneratorBasedBuilder`, e.g. ``config`` and
            ``data_dir``.
        """
        super().__init__(file_format=file_format, **kwargs)


def config_name(local_dir: os.PathLike | str, parts: Iterable[str]) -> str:
    """Names the BuilderConfig of ``local_dir``: its folder name plus a fingerprint.

    Args:
      local_dir: the source folder.
      parts: strings that change whenever the source changes (file names and sizes).

    Returns:
      ``'<folder name>_<10 hex digits>'``, a valid TFDS config name.
    """
    directory = pathlib.Path(local_dir).resolve()
    digest = hashlib.sha256(str(directory).encode())
    for part in parts:
        digest.update(part.encode() + b";")
    stem = re.sub(r"[^a-z0-9]+", "_", directory.name.lower()).strip("_") or "data"
    return f"{stem}_{digest.hexdigest()[:10]}"


def file_fingerprint(path: pathlib.Path) -> str:
    """``'name:size'`` of a file (enough to tell a re-download or a truncated copy)."""
    return f"{path.name}:{path.stat().st_size}"


@contextlib.contextmanager
def _prepare_lock(builder: tfds.core.DatasetBuilder):
    """Holds an exclusive lock file beside ``builder``'s prepared data."""
    config_dir = pathlib.Path(os.fspath(builder.data_dir)).parent
    config_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = config_dir.parent / f".{config_dir.name}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(
    builder_cls: type[LocalBuilder],
    config: LocalBuilderConfig,
    data_dir: os.PathLike | str | None,
) -> LocalBuilder:
    """Prepares ``config``'s folder once in ``data_dir`` and returns the ready builder.

    Args:
      builder_cls: the `LocalBuilder` subclass that reads this kind of folder.
      config: its config (see `config_name` for the naming).
      data_dir: TFDS data_dir to write to; None means the TFDS default
        (``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``).

    Returns:
      The prepared builder; call ``.as_data_source(split=...)`` on it.
    """
    data_dir = os.fspath(data_dir) if data_dir is not None else None
    probe = builder_cls(config=config, data_dir=data_dir)
    if probe.is_prepared():
        return probe
    with _prepare_lock(probe):
        # Built again under the lock: another process may have prepared it meanwhile,
        # and a builder only reads the split sizes from disk when it is constructed.
        builder = builder_cls(config=config, data_dir=data_dir)
        if not builder.is_prepared():
            # TFDS prints "Downloading and preparing dataset …" to stdout (nothing is downloaded
            # here): it goes to the log instead of the console.
            with contextlib.redirect_stdout(_LogLines()):
                builder.download_and_prepare(file_format="array_record")
    return builder


class _LogLines(io.TextIOBase):
    """A text stream whose non-empty lines become INFO log records."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                logging.getLogger(__name__).info("%s", line.strip())
        return len(text)
