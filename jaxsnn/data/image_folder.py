"""ImageNet (ILSVRC-2012) from an ImageFolder tree, prepared without TensorFlow.

The layout is the one torchvision's ``ImageFolder`` reads, and the one most ImageNet
copies are kept in::

    local_dir/train/n01440764/n01440764_10026.JPEG
    local_dir/train/n01443537/...
    local_dir/val/n01440764/ILSVRC2012_val_00000293.JPEG
    ...

Class ``k`` is the ``k``-th training folder in sorted order (for ImageNet: the sorted
WordNet ids, the label order of torchvision and of TFDS ``imagenet2012``); the
validation folders must be a subset of the training folders. Files ending in .jpeg,
.jpg or .png (any case) are examples, sorted by path within a class.

`LocalImageFolder` (registered as ``local_image_folder``) writes ``train`` and
``validation`` splits as array_record files in the TFDS data_dir. Each image is stored
as its file's bytes, unchanged (no decode, no re-encode), in a
``tfds.features.Image(encoding_format='jpeg')`` feature, the feature of TFDS's own
``imagenet2012``: the input pipeline reads both the same way (raw bytes, decoded with
PIL in its workers). The prepared copy takes the disk space of the JPEGs (about 147 GB
for ILSVRC-2012). See `jaxsnn.data.local_builder`.
"""

import dataclasses
import os
import pathlib

import tensorflow_datasets as tfds

from jaxsnn.data import local_builder

EXTENSIONS = (".jpeg", ".jpg", ".png")
SPLITS = {"train": "train", "validation": "val"}
HOW_TO_GET = (
    "download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from https://image-net.org "
    "(free account), extract them as local_dir/train/<wnid>/*.JPEG and local_dir/val/<wnid>/"
    "*.JPEG (the validation images sorted into one folder per class, as torchvision's "
    "ImageFolder expects) and set config.local_dir to local_dir"
)


def _class_dirs(split_dir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_split_dirs(local_dir: os.PathLike | str | None) -> dict[str, pathlib.Path]:
    """Locates ``train/`` and ``val/`` (each with one folder per class) in ``local_dir``.

    Returns:
      ``{'train': path, 'validation': path}``.

    Raises:
      FileNotFoundError: one line naming what is missing and how to get ImageNet.
    """
    if not local_dir:
        raise FileNotFoundError(f"ImageNet: config.local_dir is not set; {HOW_TO_GET}")
    root = pathlib.Path(local_dir)
    found, missing = {}, []
    for split, name in SPLITS.items():
        path = root / name
        if path.is_dir() and _class_dirs(path):
            found[split] = path.resolve()
        else:
            missing.append(f"{name}/<class>/")
    if missing:
        problem = "does not exist" if not root.is_dir() else f"lacks {', '.join(missing)}"
        raise FileNotFoundError(f"ImageNet: {os.fspath(root)!r} {problem}; {HOW_TO_GET}")
    return found


def class_names(split_dirs: dict[str, pathlib.Path]) -> list[str]:
    """The sorted training class folders; checks the validation classes against them.

    Raises:
      ValueError: the validation split has a class that training does not have.
    """
    names = [p.name for p in _class_dirs(split_dirs["train"])]
    extra = sorted({p.name for p in _class_dirs(split_dirs["validation"])} - set(names))
    if extra:
        raise ValueError(
            f"{split_dirs['validation']}: class folders {extra[:3]} are not in "
            f"{split_dirs['train']}; both splits must use the training classes"
        )
    return names


def list_images(split_dir: pathlib.Path, names: list[str]) -> list[tuple[pathlib.Path, int]]:
    """``(path, label)`` of every image of a split, by class then by path."""
    examples = []
    for label, name in enumerate(names):
        folder = split_dir / name
        if folder.is_dir():
            files = sorted(
                p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file()
            )
            examples.extend((path, label) for path in files)
    return examples


@dataclasses.dataclass(eq=False)
class LocalImageFolderConfig(local_builder.LocalBuilderConfig):
    """BuilderConfig of one ImageFolder tree (``local_dir`` holds ``train/`` and ``val/``)."""


class LocalImageFolder(local_builder.LocalBuilder):
    """Prepares an ImageFolder tree (ImageNet layout) as array_record TFDS splits."""

    RELEASE_NOTES = {"1.0.0": "Image files stored unchanged, labels from sorted class folders."}

    def _info(self) -> tfds.core.DatasetInfo:
        names = class_names(find_split_dirs(self.builder_config.local_dir))
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"ImageFolder tree read from {self.builder_config.local_dir}.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(names=names),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the files are local.
        split_dirs = find_split_dirs(self.builder_config.local_dir)
        names = class_names(split_dirs)
        return {
            split: self._generate_examples(list_images(path, names))
            for split, path in split_dirs.items()
        }

    def _generate_examples(self, examples: list[tuple[pathlib.Path, int]]):
        for i, (path, label) in enumerate(examples):
            # A path makes TFDS store the file's bytes as they are.
            yield i, {"image": path, "label": label}


def make_config(local_dir: os.PathLike | str | None) -> LocalImageFolderConfig:
    """The BuilderConfig of an ImageFolder tree, named by a fingerprint of its folders.

    The fingerprint covers every class folder's name and modification time (which
    changes when files are added, removed or renamed in it), so nothing has to list the
    1.3 million files to find the prepared copy.

    Raises:
      FileNotFoundError: ``train/`` or ``val/`` is missing.
    """
    split_dirs = find_split_dirs(local_dir)
    parts = []
    for split, path in split_dirs.items():
        for folder in _class_dirs(path):
            parts.append(f"{split}/{folder.name}:{folder.stat().st_mtime_ns}")
    root = pathlib.Path(local_dir).resolve()
    return LocalImageFolderConfig(
        name=local_builder.config_name(root, parts),
        version=LocalImageFolder.VERSION,
        description=f"ImageFolder tree {root}",
        local_dir=os.fspath(root),
    )


def prepare_local_image_folder(
    local_dir: os.PathLike | str | None, *, data_dir: os.PathLike | str | None = None
) -> LocalImageFolder:
    """Prepares an ImageFolder tree once in ``data_dir`` and returns its builder.

    Raises:
      FileNotFoundError: the tree is missing a split.
      ValueError: the validation classes are not training classes.
    """
    return local_builder.prepare(LocalImageFolder, make_config(local_dir), data_dir)
