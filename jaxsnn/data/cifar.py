"""CIFAR-10 / CIFAR-100 from the python pickles their authors ship, prepared without TensorFlow.

The "python version" downloads of https://www.cs.toronto.edu/~kriz/cifar.html are
``cifar-10-python.tar.gz`` (folder ``cifar-10-batches-py/``: ``data_batch_1`` ..
``data_batch_5``, ``test_batch``, ``batches.meta``) and ``cifar-100-python.tar.gz``
(folder ``cifar-100-python/``: ``train``, ``test``, ``meta``); torchvision downloads the
same files. Each batch file is a pickled dict: ``data`` is uint8 [N, 3072] with the 1024
red, then green, then blue pixels of a 32x32 image in row-major order, and ``labels``
(CIFAR-10) or ``fine_labels`` / ``coarse_labels`` (CIFAR-100) hold the classes. The meta
file names the classes. ``config.local_dir`` may hold the tarball, the extracted folder,
or be the extracted folder itself; a tarball is read in place, never extracted.

The pickles come from the internet, so they are unpickled with an allow-list: only
dicts, lists, strings, numbers and numpy arrays can be built, never arbitrary objects.

`LocalCifar` (registered as ``local_cifar``) writes the ``train`` and ``test`` splits as
array_record files in the TFDS data_dir, images as raw uint8 [32, 32, 3] tensors
(decoding is a copy) and labels as ``ClassLabel`` with the class names of the meta file;
CIFAR-100 also keeps ``coarse_label``. See `jaxsnn.data.local_builder`.
"""

import dataclasses
import io
import os
import pathlib
import pickle
import tarfile

import numpy as np
import tensorflow_datasets as tfds

from jaxsnn.data import local_builder


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a CIFAR variant keeps its files and labels.

    Attributes:
      name: 'cifar10' or 'cifar100'.
      title: human name used in messages.
      tarball: file name of the python-pickle download.
      folder: folder the tarball extracts to.
      train: batch files of the training split.
      test: batch files of the test split.
      meta: file naming the classes.
      label_key: key of the labels in a batch dict.
      names_key: key of the class names in the meta dict.
      num_classes: number of classes.
      coarse: whether batches also hold the 20 superclasses ('coarse_labels').
    """

    name: str
    title: str
    tarball: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    names_key: str
    num_classes: int
    coarse: bool = False


LAYOUTS = {
    "cifar10": Layout(
        "cifar10",
        "CIFAR-10",
        "cifar-10-python.tar.gz",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "labels",
        "label_names",
        10,
    ),
    "cifar100": Layout(
        "cifar100",
        "CIFAR-100",
        "cifar-100-python.tar.gz",
        "cifar-100-python",
        ("train",),
        ("test",),
        "meta",
        "fine_labels",
        "fine_label_names",
        100,
        coarse=True,
    ),
}
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
SIDE = 32

# What the CIFAR pickles (written by Python 2 numpy, or by Python 3 in tests) may build.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers and numpy arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def how_to_get(layout: Layout) -> str:
    """One sentence saying what to download and where to put it."""
    return (
        f"download the python version of {layout.title} ({layout.tarball}) from {URL} and set "
        f"config.local_dir to the folder holding it or its extracted {layout.folder}/"
    )


@dataclasses.dataclass(frozen=True)
class Files:
    """The located files of one CIFAR variant: a folder or a tarball.

    Attributes:
      layout: the variant.
      folder: extracted folder holding the batch files, or None.
      tarball: the ``.tar.gz`` download, or None.
    """

    layout: Layout
    folder: pathlib.Path | None = None
    tarball: pathlib.Path | None = None

    def fingerprint(self) -> list[str]:
        """Strings that change when the files change (names and sizes)."""
        if self.tarball is not None:
            return [local_builder.file_fingerprint(self.tarball)]
        names = (*self.layout.train, *self.layout.test, self.layout.meta)
        return [
            local_builder.file_fingerprint(self.folder / name)
            for name in names
            if (self.folder / name).is_file()
        ]

    def read(self, names: tuple[str, ...]) -> dict[str, dict]:
        """Unpickles batch or meta files (one pass over a tarball); dict keys become ``str``."""
        layout = self.layout
        raw: dict[str, bytes] = {}
        if self.tarball is not None:
            wanted = {f"{layout.folder}/{name}": name for name in names}
            with tarfile.open(self.tarball) as tar:
                for member in tar:
                    if member.name in wanted and member.isfile():
                        raw[wanted[member.name]] = tar.extractfile(member).read()
            missing = [f"{layout.folder}/{name}" for name in names if name not in raw]
            if missing:
                raise FileNotFoundError(
                    f"{self.tarball} lacks {', '.join(missing)}; {how_to_get(layout)}"
                )
        else:
            raw = {name: (self.folder / name).read_bytes() for name in names}
        return {name: self._unpickle(data, name) for name, data in raw.items()}

    def _unpickle(self, data: bytes, name: str) -> dict:
        where = f"{self.tarball or self.folder}/{name}"
        try:
            loaded = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
        except Exception as e:  # Truncated, not a pickle, or an unexpected object.
            raise ValueError(
                f"{where}: not a {self.layout.title} python batch ({type(e).__name__}: {e}); "
                f"the file is corrupted: {how_to_get(self.layout)}"
            ) from e
        if not isinstance(loaded, dict):
            raise ValueError(f"{where}: expected a pickled dict, got {type(loaded).__name__}")
        return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in loaded.items()}


def find_files(local_dir: os.PathLike | str | None, variant: str) -> Files:
    """Locates a CIFAR variant in ``local_dir`` (extracted folder, the folder itself, tarball).

    Raises:
      FileNotFoundError: one line naming the folder and what to download.
    """
    layout = LAYOUTS[variant]
    if not local_dir:
        raise FileNotFoundError(f"config.local_dir is not set; {how_to_get(layout)}")
    root = pathlib.Path(local_dir)
    needed = (*layout.train, *layout.test)
    for folder in (root / layout.folder, root):
        if all((folder / name).is_file() for name in needed):
            return Files(layout, folder=folder.resolve())
    if (root / layout.tarball).is_file():
        return Files(layout, tarball=(root / layout.tarball).resolve())
    if root.is_file() and root.name.endswith((".tar.gz", ".tgz", ".tar")):
        return Files(layout, tarball=root.resolve())
    if not root.exists():
        problem = "does not exist"
    elif (root / layout.folder).is_dir():
        missing = [name for name in needed if not (root / layout.folder / name).is_file()]
        problem = f"has {layout.folder}/ without {', '.join(missing)}"
    else:
        problem = f"holds neither {layout.folder}/ nor {layout.tarball}"
    raise FileNotFoundError(f"{layout.title}: {os.fspath(root)!r} {problem}; {how_to_get(layout)}")


def _images(batch: dict, where: str) -> np.ndarray:
    data = np.asarray(batch.get("data"))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise ValueError(
            f"{where}: 'data' must be uint8 [N, 3072], got {data.dtype} {data.shape}; "
            "the file is corrupted or not a CIFAR python batch"
        )
    return data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)


def read_split(files: Files, split: str) -> dict[str, np.ndarray]:
    """Reads one split: 'image' uint8 [N, 32, 32, 3], 'label' int64 [N] (and 'coarse_label').

    Raises:
      ValueError: a batch file is corrupted or its labels are out of range.
    """
    layout = files.layout
    names = layout.train if split == "train" else layout.test
    keys = {
        "label": layout.label_key,
        **({"coarse_label": "coarse_labels"} if layout.coarse else {}),
    }
    parts = {key: [] for key in ("image", *keys)}
    for name, batch in files.read(names).items():
        parts["image"].append(_images(batch, name))
        for key, stored in keys.items():
            if stored not in batch:
                raise ValueError(f"{name}: no {stored!r} in the batch dict; corrupted file?")
            parts[key].append(np.asarray(batch[stored], np.int64))
            if len(parts[key][-1]) != len(parts["image"][-1]):
                raise ValueError(
                    f"{name}: {len(parts['image'][-1])} images but {len(parts[key][-1])} {stored}"
                )
    out = {key: np.concatenate(value) for key, value in parts.items()}
    for key, count in (("label", layout.num_classes), ("coarse_label", 20)):
        if key in out and out[key].size and not 0 <= out[key].min() <= out[key].max() < count:
            raise ValueError(
                f"{layout.title} {split}: {key}s outside [0, {count}); corrupted files?"
            )
    return out


def _class_names(files: Files) -> tuple[list[str] | None, list[str] | None]:
    """Class (and CIFAR-100 superclass) names from the meta file, when it is readable."""
    try:
        meta = files.read((files.layout.meta,))[files.layout.meta]
    except (OSError, ValueError):
        return None, None

    def names(key: str, count: int) -> list[str] | None:
        values = meta.get(key)
        if not isinstance(values, list) or len(values) != count:
            return None
        return [v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values]

    return names(files.layout.names_key, files.layout.num_classes), names("coarse_label_names", 20)


@dataclasses.dataclass(eq=False)
class LocalCifarConfig(local_builder.LocalBuilderConfig):
    """BuilderConfig of one CIFAR download (``local_dir`` is the folder or the tarball).

    Attributes:
      variant: 'cifar10' or 'cifar100'.
    """

    variant: str = "cifar10"


class LocalCifar(local_builder.LocalBuilder):
    """Prepares the CIFAR-10 / CIFAR-100 python pickles as array_record TFDS splits."""

    RELEASE_NOTES = {"1.0.0": "Raw uint8 images and class labels from the python pickles."}

    def _files(self) -> Files:
        return find_files(self.builder_config.local_dir, self.builder_config.variant)

    def _info(self) -> tfds.core.DatasetInfo:
        files = self._files()
        layout = files.layout
        names, coarse_names = _class_names(files)
        features = {
            "image": tfds.features.Tensor(
                shape=(SIDE, SIDE, 3), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
            ),
            "label": tfds.features.ClassLabel(
                names=names, num_classes=None if names else layout.num_classes
            ),
        }
        if layout.coarse:
            features["coarse_label"] = tfds.features.ClassLabel(
                names=coarse_names, num_classes=None if coarse_names else 20
            )
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{layout.title} read from {self.builder_config.local_dir}.",
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
            homepage=URL,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the files are local.
        files = self._files()
        return {split: self._generate_examples(files, split) for split in ("train", "test")}

    def _generate_examples(self, files: Files, split: str):
        arrays = read_split(files, split)
        for i in range(len(arrays["label"])):
            yield i, {key: value[i] for key, value in arrays.items()}


def make_config(local_dir: os.PathLike | str | None, variant: str) -> LocalCifarConfig:
    """The BuilderConfig of the CIFAR files in ``local_dir``, named by a fingerprint.

    Raises:
      FileNotFoundError: the files are not there (the message says what to download).
    """
    files = find_files(local_dir, variant)
    where = files.tarball if files.tarball is not None else files.folder
    return LocalCifarConfig(
        name=local_builder.config_name(where, [variant, *files.fingerprint()]),
        version=LocalCifar.VERSION,
        description=f"{files.layout.title} from {where}",
        local_dir=os.fspath(where),
        variant=variant,
    )


def prepare_local_cifar(
    local_dir: os.PathLike | str | None,
    variant: str,
    *,
    data_dir: os.PathLike | str | None = None,
) -> LocalCifar:
    """Prepares a CIFAR download once in ``data_dir`` and returns its builder.

    Args:
      local_dir: folder holding the tarball or the extracted folder (or being it).
      variant: 'cifar10' or 'cifar100'.
      data_dir: TFDS data_dir to write to; None means the TFDS default.

    Raises:
      FileNotFoundError: the files are not there.
      ValueError: a file is corrupted.
    """
    return local_builder.prepare(LocalCifar, make_config(local_dir, variant), data_dir)
