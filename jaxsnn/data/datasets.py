"""Dataset registry: names, normalisation constants, defaults and random-access sources.

Every dataset is read through a TFDS random-access data source (array_record), so an
example is fetched by index and skipping examples costs nothing. TFDS data sources
need neither TensorFlow nor tf.data. A dataset comes from one of two places:

* a TFDS dataset already prepared in array_record format in ``config.data_dir`` (e.g.
  ``tfds build cifar10 --file_format=array_record`` run where TensorFlow is installed);
* otherwise, the files users already have, in the layout their authors ship, in
  ``config.local_dir`` (old name ``config.idx_dir``, still accepted): MNIST-format IDX
  files (`jaxsnn.data.idx_builder`), the CIFAR-10/100 python pickles
  (`jaxsnn.data.cifar`), an ImageNet ImageFolder tree (`jaxsnn.data.image_folder`), the
  extracted event-camera recordings of N-MNIST, DVS Gesture and CIFAR10-DVS in tonic's
  layout (`jaxsnn.data.events`, binned into stacked frames). They are prepared once,
  without TensorFlow, into an array_record TFDS dataset in ``config.data_dir`` (see
  `jaxsnn.data.local_builder`). ``fashion_mnist`` looks in
  ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``) when
  ``config.local_dir`` is not set.

Nothing is ever downloaded: when neither is there, a one-line error says what to
download and where to put it.
"""

import dataclasses
import os

import ml_collections
import tensorflow_datasets as tfds
from absl import logging

from jaxsnn.data import cifar, events, idx, idx_builder, image_folder

DEFAULT_IDX_DIR = "/usr/share/datasets/fashion-mnist"
LOCAL_FIELD, ALIAS_FIELD = "config.local_dir", "config.idx_dir"
AUGMENTS = ("none", "crop_flip", "crop_flip_cutout", "autoaugment_cutout")
# AutoAugment's colour and contrast operations mean nothing on event counts.
EVENT_AUGMENTS = ("none", "crop_flip", "crop_flip_cutout")
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
      local: format of the local files that may stand in for unprepared TFDS data:
        'idx', 'cifar10', 'cifar100', 'image_folder', 'events' or None.
      default_local_dir: where to look when ``config.local_dir`` is not set.
      imagenet: whether images have variable size and need resized crops (they are
        then read as encoded bytes and decoded by the input pipeline).
      events: whether examples are stacked event frames (`jaxsnn.data.events`): binned with
        ``config.n_time_bins``, sized by ``config.image_size``, normalised by their RMS.
    """

    tfds_name: str | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    default_augment: str
    crop_padding: int
    flip: bool
    cutout: int
    test_split: str = "test"
    local: str | None = None
    default_local_dir: str | None = None
    imagenet: bool = False
    events: bool = False


def _event_spec(augment: str, flip: bool) -> DatasetSpec:
    """An event dataset: only local files (TFDS has none of them), prepared as frames."""
    return DatasetSpec(None, None, None, augment, 4, flip=flip, cutout=8, local="events",
                       events=True)  # fmt: skip


SPECS = {
    "mnist": DatasetSpec(
        "mnist", (0.1307,), (0.3081,), "none", 2, flip=False, cutout=8, local="idx"
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist",
        (0.2860,),
        (0.3530,),
        "none",
        2,
        flip=True,
        cutout=8,
        local="idx",
        default_local_dir=DEFAULT_IDX_DIR,
    ),
    "idx": DatasetSpec(
        None,
        None,
        None,
        "none",
        2,
        flip=False,
        cutout=8,
        local="idx",
        default_local_dir=DEFAULT_IDX_DIR,
    ),  # fmt: skip
    "cifar10": DatasetSpec(
        "cifar10",
        (0.4914, 0.4822, 0.4465),
        (0.2023, 0.1994, 0.2010),
        "crop_flip_cutout",
        4,
        flip=True,
        cutout=16,
        local="cifar10",
    ),
    "cifar100": DatasetSpec(
        "cifar100",
        tuple(v / 255 for v in (129.3, 124.1, 112.4)),
        tuple(v / 255 for v in (68.2, 65.4, 70.4)),
        "crop_flip_cutout",
        4,
        flip=True,
        cutout=8,
        local="cifar100",
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
        local="image_folder",
        imagenet=True,
    ),
    # Event datasets (README, "Neuromorphic datasets"). Training augmentation: N-MNIST none (as
    # MNIST); DVS Gesture random 4-pixel shifts but no flip (a mirrored left-hand wave is a
    # right-hand wave, clockwise turns anticlockwise); CIFAR10-DVS shifts and flips (objects).
    "nmnist": _event_spec("none", flip=False),
    "dvs_gesture": _event_spec("crop_flip", flip=False),
    "cifar10_dvs": _event_spec("crop_flip", flip=True),
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
    allowed = (
        ("none", "crop_flip") if spec.imagenet else EVENT_AUGMENTS if spec.events else AUGMENTS
    )
    if augment not in allowed:
        raise ValueError(
            f"config.augment: unknown augmentation {augment!r} for {config.dataset}; "
            f"choose one of {', '.join(allowed)}"
        )
    return augment


def local_dir(config: ml_collections.ConfigDict) -> tuple[str | None, str]:
    """Returns the folder of local files for ``config.dataset`` and the field that named it.

    ``config.local_dir`` wins; ``config.idx_dir`` is its old name. Without either, the
    dataset's default folder (Fashion-MNIST: the Debian package's) is used, if any.

    Raises:
      ValueError: both fields are set to different folders.
    """
    new, old = config.get("local_dir", None) or None, config.get("idx_dir", None) or None
    if new and old and os.path.abspath(os.fspath(new)) != os.path.abspath(os.fspath(old)):
        raise ValueError(
            f"{LOCAL_FIELD}={os.fspath(new)!r} and {ALIAS_FIELD}={os.fspath(old)!r} (its old "
            f"name) name different folders; set only {LOCAL_FIELD}"
        )
    if new or old:
        return os.fspath(new or old), LOCAL_FIELD if new else ALIAS_FIELD
    return get_spec(config).default_local_dir, LOCAL_FIELD


def _name_field(message: str, field: str) -> str:
    """Names the field the user actually set (the old name ``idx_dir`` or ``local_dir``)."""
    return message.replace(LOCAL_FIELD, field) if field != LOCAL_FIELD else message


def _prepare_local(config: ml_collections.ConfigDict, where: str | None, data_dir):
    """Prepares (once) and returns the builder of the local files of ``config.dataset``."""
    spec = get_spec(config)
    if spec.local == "idx":
        if where is None:
            raise FileNotFoundError(f"{LOCAL_FIELD} is not set; to get the data {idx.HOW_TO_GET}")
        num_classes = config.get("num_classes", None) or 10
        return idx_builder.prepare_local_idx(where, data_dir=data_dir, num_classes=num_classes)
    if spec.local in cifar.LAYOUTS:
        return cifar.prepare_local_cifar(where, spec.local, data_dir=data_dir)
    if spec.events:
        return events.prepare_local_events(
            where,
            config.dataset,
            n_time_bins=event_time_bins(config),
            size=config.get("image_size", None) or None,
            data_dir=data_dir,
        )
    return image_folder.prepare_local_image_folder(where, data_dir=data_dir)


def event_time_bins(config: ml_collections.ConfigDict) -> int:
    """``config.n_time_bins`` of an event dataset (default 9: 18 channels with 2 polarities)."""
    bins = config.get("n_time_bins", None)
    return events.DEFAULT_TIME_BINS if bins is None else bins


def _open_builder(config: ml_collections.ConfigDict):
    """The TFDS builder that serves ``config.dataset``, preparing local files if used.

    Returns:
      ``(builder, local_error)``: when TFDS has not prepared the dataset and the local files
      are missing, the TFDS builder comes back with the FileNotFoundError that the local
      files gave (reading the builder may still work, e.g. under ``tfds.testing.mock_data``).
    """
    spec = get_spec(config)
    data_dir = config.get("data_dir", None) or None  # "" (an unset flag) means the default.
    where, field = local_dir(config)
    try:
        if spec.tfds_name is None:
            return _prepare_local(config, where, data_dir), None
        builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
        if _has_random_access(builder):
            return builder, None
        try:
            return _prepare_local(config, where, data_dir), None
        except FileNotFoundError as e:
            return builder, e
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(_name_field(str(e), field)) from e


def _has_random_access(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether the builder is prepared in a format TFDS data sources can read."""
    if not builder.is_prepared():
        return False
    formats = builder.info.available_file_formats()
    return bool(formats & tfds.core.FileFormat.with_random_access())


def _not_prepared_error(
    config: ml_collections.ConfigDict,
    builder: tfds.core.DatasetBuilder,
    where: str | None,
    field: str,
    local_error: Exception | None = None,
) -> FileNotFoundError:
    """Builds the one-line error for a dataset that is neither prepared nor available locally."""
    name = builder.name
    if builder.is_prepared():
        problem = f"{name} in {builder.data_dir} is not in array_record format"
    else:
        problem = f"{name} is not prepared in {builder.data_dir}"
    local = str(local_error) if local_error else f"{field}={where!r} has no files for it"
    return FileNotFoundError(
        f"config.dataset={config.dataset!r}: {problem} and {field}={where!r} cannot stand in "
        f"({local}); or prepare it with `tfds build {name} --file_format=array_record "
        "--data_dir=DIR` and set config.data_dir"
    )


def tfds_split(config: ml_collections.ConfigDict, split: str) -> str:
    """Maps the generic split name 'test' to the dataset's evaluation split."""
    return get_spec(config).test_split if split == "test" else split


def open_split(config: ml_collections.ConfigDict, split: str):
    """Opens one split of ``config.dataset`` as a random-access TFDS data source.

    Args:
      config: reads ``dataset``, ``data_dir``, ``local_dir`` (or ``idx_dir``) and
        ``num_classes``.
      split: 'train', 'test' (the evaluation split) or any TFDS split name.

    Returns:
      A sequence-like source: ``len(source)``, ``source[i]`` and
      ``source.__getitems__(indices)`` give dicts with 'image' and 'label'. ImageNet
      images come as encoded bytes (`jaxsnn.data.augment.decode_image` decodes them).

    Raises:
      ValueError: for an unknown dataset or a corrupted local file.
      FileNotFoundError: if the data is neither prepared nor available as local files.
    """
    builder, local_error = _open_builder(config)
    decoders = {"image": tfds.decode.SkipDecoding()} if get_spec(config).imagenet else None
    try:
        return builder.as_data_source(split=tfds_split(config, split), decoders=decoders)
    except (NotImplementedError, FileNotFoundError, AssertionError) as e:
        where, field = local_dir(config)
        error = _not_prepared_error(config, builder, where, field, local_error)
        raise FileNotFoundError(_name_field(str(error), field)) from e


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
    if spec.events:
        # Counts divided by the training frames' root mean square, not centred: an empty pixel
        # stays 0, so inputs keep the events' sparsity. (A mocked source has no statistics.)
        channels = int(image_shape(config, source)[-1])
        rms = float(metadata.get("frame_rms", 1.0)) or 1.0
        return (0.0,) * channels, (rms / 255.0,) * channels
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
