"""A TFDS builder that turns a local MNIST-format IDX directory into a TFDS dataset.

`LocalIdx` (registered as ``local_idx``) reads the four IDX files of a directory such
as ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``)
and writes ``train`` and ``test`` splits as array_record files into a TFDS
``data_dir`` (see `jaxsnn.data.local_builder` for how this works without TensorFlow
and how the prepared copy is named and shared). From then on the data is an ordinary
prepared TFDS dataset: it is read with random access through
``builder.as_data_source()``, or after importing this module with
``tfds.data_source('local_idx/<config name>', data_dir=...)``. Images are stored as raw
uint8 tensors: about 3x faster to write and to decode than PNG (measured on
Fashion-MNIST) and the same disk space.
"""

import dataclasses
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from jaxsnn.data import idx, local_builder

_SPLITS = {"train": ("train_images", "train_labels"), "test": ("test_images", "test_labels")}


@dataclasses.dataclass(eq=False)
class LocalIdxConfig(local_builder.LocalBuilderConfig):
    """BuilderConfig for one IDX directory (``local_dir``).

    Attributes:
      num_classes: number of classes of the labels (labels must lie in [0, num_classes)).
    """

    num_classes: int = 10


class LocalIdx(local_builder.LocalBuilder):
    """Prepares a local IDX (MNIST-format) directory as array_record TFDS splits."""

    RELEASE_NOTES = {"1.0.0": "Raw uint8 images and int64 labels from local IDX files."}

    def _info(self) -> tfds.core.DatasetInfo:
        files = idx.find_idx_files(self.builder_config.local_dir)
        shape = idx.read_idx_image_shape(files["train_images"])
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"Local IDX dataset read from {self.builder_config.local_dir}.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(
                        shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
                    ),
                    "label": tfds.features.ClassLabel(num_classes=self.builder_config.num_classes),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the files are local.
        files = idx.find_idx_files(self.builder_config.local_dir)
        train_images = idx.read_idx(files["train_images"])
        # Stored so that a generic IDX dataset can be normalised without another pass.
        self.info.metadata["pixel_mean"] = float(train_images.mean() / 255.0)
        self.info.metadata["pixel_std"] = float(train_images.std() / 255.0)
        return {
            split: self._generate_examples(files[images], files[labels])
            for split, (images, labels) in _SPLITS.items()
        }

    def _generate_examples(self, images_path: pathlib.Path, labels_path: pathlib.Path):
        images, labels = idx.read_idx_split(images_path, labels_path)
        num_classes = self.builder_config.num_classes
        if labels.size and int(labels.max()) >= num_classes:
            raise ValueError(
                f"{labels_path}: label {int(labels.max())} out of range for "
                f"num_classes={num_classes}; set config.num_classes"
            )
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield i, {"image": image, "label": int(label)}


def make_config(idx_dir: os.PathLike | str, *, num_classes: int = 10) -> LocalIdxConfig:
    """Builds the BuilderConfig of an IDX directory, named by a content fingerprint.

    Raises:
      FileNotFoundError: if the directory lacks one of the IDX files.
    """
    directory = pathlib.Path(idx_dir).resolve()
    files = idx.find_idx_files(directory)
    parts = [f"{key}:{local_builder.file_fingerprint(files[key])}" for key in sorted(files)]
    return LocalIdxConfig(
        name=local_builder.config_name(directory, [*parts, f"classes:{num_classes}"]),
        version=LocalIdx.VERSION,
        description=f"IDX files from {directory}",
        local_dir=str(directory),
        num_classes=num_classes,
    )


def prepare_local_idx(
    idx_dir: os.PathLike | str,
    *,
    data_dir: os.PathLike | str | None = None,
    num_classes: int = 10,
) -> LocalIdx:
    """Prepares an IDX directory as a TFDS dataset once and returns its builder.

    Args:
      idx_dir: directory with ``train-images-idx3-ubyte(.gz)`` and the three others.
      data_dir: TFDS data_dir to write to; None means the TFDS default
        (``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``).
      num_classes: number of label classes.

    Returns:
      The prepared builder; call ``.as_data_source(split=...)`` on it.

    Raises:
      FileNotFoundError: if an IDX file is missing (the message says how to get them).
      ValueError: if an IDX file is corrupted.
    """
    config = make_config(idx_dir, num_classes=num_classes)
    return local_builder.prepare(LocalIdx, config, data_dir)
