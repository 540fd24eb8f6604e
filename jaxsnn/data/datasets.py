"""Dataset registry: names, normalisation constants, defaults and random-access sources.

Every dataset is read through a TFDS random-access data source (array_record), so an
example is fetched by index and skipping examples costs nothing. TFDS data sources
need neither TensorFlow nor tf.data. A dataset must therefore be prepared in
array_record format, e.g. on a machine with TensorFlow:
``tfds build cifar10 --file_format=array_record --data_dir=DIR``. Preparing the
official image datasets here would need TensorFlow (their ``tfds.features.Image``
encodes numpy arrays with ``tf.image.encode_png``), so this module never downloads
or prepares them; it only reads. The exception is MNIST-format data:
``mnist``/``fashion_mnist`` fall back to local IDX files (``config.idx_dir``) that
`jaxsnn.data.idx_builder` prepares once into the data_dir without TensorFlow, and
``idx`` always reads such a directory.
"""

import dataclasses
import os

import ml_collections
import tensorflow_datasets as tfds
from absl import logging

from jaxsnn.data import idx, idx_builder

DEFAULT_IDX_DIR = "/usr/share/datasets/fashion-mnist"
AUGMENTS = ("none", "crop_flip", "crop_flip_cutout", "autoaugment_cutout")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model and a training loop need to know about a dataset.

    Attributes:
      name: the value of ``config.dataset``.
      image_shape: (H, W, C) of the batches this package yields.
      num_classes: number of label classes.
      mean: per-channel mean subtracted after scaling pixels to [0, 1], shape (C,).
      std: per-channel standard deviation divided by, shape (C,).
      train_size: number of training examples.
      test_size: number of examples in the evaluation split (``validation`` for ImageNet).
    """

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_size: int
    test_size: int


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static per-dataset settings.

    Attributes:
      tfds_name: TFDS dataset name, or None for a local IDX directory.
      mean: per-channel mean in [0, 1] units (None: read from the prepared IDX data).
      std: per-channel standard deviation in [0, 1] units.
      default_augment: augmentation used when ``config.augment`` is not set.
      crop_padding: zero padding (pixels) of the random crop.
      flip: whether random horizontal flips are label-preserving.
      cutout: default Cutout hole size.
      test_split: TFDS split that ``split='test'`` refers to.
      idx_fallback: whether local IDX files may stand in for unprepared TFDS data.
      imagenet: whether images have variable size and need resized crops.
    """

    tfds_name: str | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    default_augment: str
    crop_padding: int
    flip: bool
    cutout: int
    test_split: str = "test"
    idx_fallback: bool = False
    imagenet: bool = False


SPECS = {
    "mnist": DatasetSpec(
        "mnist", (0.1307,), (0.3081,), "none", 2, flip=False, cutout=8, idx_fallback=True
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", (0.2860,), (0.3530,), "none", 2, flip=True, cutout=8, idx_fallback=True
    ),
    "idx": DatasetSpec(None, None, None, "none", 2, flip=False, cutout=8),
    "cifar10": DatasetSpec(
        "cifar10",
        (0.4914, 0.4822, 0.4465),
        (0.2023, 0.1994, 0.2010),
        "crop_flip_cutout",
        4,
        flip=True,
        cutout=16,
    ),
    "cifar100": DatasetSpec(
        "cifar100",
        tuple(v / 255 for v in (129.3, 124.1, 112.4)),
        tuple(v / 255 for v in (68.2, 65.4, 70.4)),
        "crop_flip_cutout",
        4,
        flip=True,
        cutout=8,
    ),
    "imagenet2012": DatasetSpec(
        "imagenet2012",
        _IMAGENET_MEAN,
        _IMAGENET_STD,
        "crop_flip",
        0,
        flip=True,
        cutout=0,
        test_split="validation",
        imagenet=True,
    ),
}


def get_spec(config: ml_collections.ConfigDict) -> DatasetSpec:
    """Returns the spec of ``config.dataset``.

    Raises:
      ValueError: for an unknown dataset name.
    """
    name = config.get("dataset", None)
    if name not in SPECS:
        raise ValueError(
            f"config.dataset: unknown dataset {name!r}; choose one of {', '.join(SPECS)}"
        )
    return SPECS[name]


def get_augment(config: ml_collections.ConfigDict) -> str:
    """Returns ``config.augment`` or the dataset default, validated."""
    spec = get_spec(config)
    augment = config.get("augment", None) or spec.default_augment
    allowed = ("none", "crop_flip") if spec.imagenet else AUGMENTS
    if augment not in allowed:
        raise ValueError(
            f"config.augment: unknown augmentation {augment!r} for {config.dataset}; "
            f"choose one of {', '.join(allowed)}"
        )
    return augment


def _idx_dir(config: ml_collections.ConfigDict) -> str:
    return os.fspath(config.get("idx_dir", None) or DEFAULT_IDX_DIR)


def _open_builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
    """Returns the TFDS builder that serves ``config.dataset``, preparing IDX data if used."""
    spec = get_spec(config)
    data_dir = config.get("data_dir", None) or None  # "" (an unset flag) means the default.
    num_classes = config.get("num_classes", None) or 10
    if spec.tfds_name is None:
        return idx_builder.prepare_local_idx(
            _idx_dir(config), data_dir=data_dir, num_classes=num_classes
        )
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if (
        spec.idx_fallback
        and not _has_random_access(builder)
        and idx.has_idx_files(_idx_dir(config))
    ):
        return idx_builder.prepare_local_idx(_idx_dir(config), data_dir=data_dir)
    return builder


def _has_random_access(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether the builder is prepared in a format TFDS data sources can read."""
    if not builder.is_prepared():
        return False
    formats = builder.info.available_file_formats()
    return bool(formats & tfds.core.FileFormat.with_random_access())


def _not_prepared_error(
    config: ml_collections.ConfigDict, builder: tfds.core.DatasetBuilder
) -> FileNotFoundError:
    """Builds the one-line error for a dataset that cannot be read as array_record."""
    name = builder.name
    if builder.is_prepared():
        problem = f"{name} in {builder.data_dir} is not in array_record format"
    else:
        problem = f"{name} is not prepared in {builder.data_dir}"
    fix = (
        f"prepare it with `tfds build {name} --file_format=array_record "
        "--data_dir=DIR` and set config.data_dir"
    )
    if get_spec(config).idx_fallback:
        fix += (
            f", or provide IDX files: searched config.idx_dir={_idx_dir(config)!r}; "
            f"{idx.HOW_TO_GET}"
        )
    return FileNotFoundError(f"config.dataset={config.dataset!r}: {problem}; {fix}")


def tfds_split(config: ml_collections.ConfigDict, split: str) -> str:
    """Maps the generic split name 'test' to the dataset's evaluation split."""
    return get_spec(config).test_split if split == "test" else split


def open_split(config: ml_collections.ConfigDict, split: str):
    """Opens one split of ``config.dataset`` as a random-access TFDS data source.

    Args:
      config: reads ``dataset``, ``data_dir``, ``idx_dir`` and ``num_classes``.
      split: 'train', 'test' (the evaluation split) or any TFDS split name.

    Returns:
      A sequence-like source: ``len(source)``, ``source[i]`` and
      ``source.__getitems__(indices)`` give dicts with 'image' and 'label'.

    Raises:
      ValueError: for an unknown dataset or a corrupted IDX file.
      FileNotFoundError: if the data is neither prepared nor available as IDX files.
    """
    builder = _open_builder(config)
    try:
        return builder.as_data_source(split=tfds_split(config, split))
    except (NotImplementedError, FileNotFoundError, AssertionError) as e:
        raise _not_prepared_error(config, builder) from e


def image_shape(config: ml_collections.ConfigDict, source) -> tuple[int, int, int]:
    """Returns the (H, W, C) of the batches produced for ``config``."""
    shape = tuple(source.dataset_info.features["image"].shape)
    if get_spec(config).imagenet:
        size = int(config.get("image_size", None) or 224)
        return size, size, shape[-1]
    return shape


def normalisation(
    config: ml_collections.ConfigDict, source
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Returns the per-channel (mean, std), in [0, 1] pixel units, of ``config.dataset``."""
    spec = get_spec(config)
    if spec.mean is not None:
        return spec.mean, spec.std
    metadata = source.dataset_info.metadata or {}
    # A mocked or foreign IDX source may lack the statistics: fall back to [-1, 1].
    mean, std = float(metadata.get("pixel_mean", 0.5)), float(metadata.get("pixel_std", 0.5))
    if not std > 0:  # Constant training images: dividing by 0 would feed inf/NaN to the net.
        logging.warning(
            "%s: training pixel std is %s (constant images?); normalising with std = 1",
            config.dataset,
            std,
        )
        std = 1.0
    return (mean,), (std,)


def get_dataset_info(config: ml_collections.ConfigDict) -> DatasetInfo:
    """Describes ``config.dataset`` (shapes, classes, normalisation, split sizes).

    Opening the splits is cheap (no example is decoded), but it prepares local IDX data
    on the first call.
    """
    train, test = open_split(config, "train"), open_split(config, "test")
    mean, std = normalisation(config, train)
    return DatasetInfo(
        name=config.dataset,
        image_shape=image_shape(config, train),
        num_classes=int(train.dataset_info.features["label"].num_classes),
        mean=mean,
        std=std,
        train_size=len(train),
        test_size=len(test),
    )
