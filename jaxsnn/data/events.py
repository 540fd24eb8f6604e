"""Event-camera datasets (N-MNIST, DVS Gesture, CIFAR10-DVS) as stacked event frames, via tonic.

The recordings are read from the **extracted** folders in the layout of the ``tonic`` package
(``<local_dir>/<tonic class name>/...``; the downloaded archives need not be there, although
tonic's own dataset classes insist on them, so this module lists the files itself and calls
tonic's decoders and its ``ToFrame`` transform on them):

==============  ==================================================  =======================
dataset         files under ``config.local_dir``                    decoder
==============  ==================================================  =======================
``nmnist``      ``NMNIST/{Train,Test}/<digit>/*.bin``                ``tonic.io.read_mnist_file``
``dvs_gesture`` ``DVSGesture/ibmGesture{Train,Test}/user*/<k>.npy``  ``numpy.load`` (x, y, p, t)
``cifar10_dvs`` ``CIFAR10DVS/<class name>/*.aedat4``                 ``tonic.io.read_aedat4``
==============  ==================================================  =======================

Each recording becomes ``n_time_bins`` frames with tonic's ``ToFrame(n_time_bins=...)``: the
events of each polarity counted per pixel in equal time bins. tonic sizes its bins as
``(t_last - t_first) // n_time_bins`` and counts ``start <= t < end``, so the last event (and the
rounding remainder) would fall after the last bin and be dropped; :func:`to_frames` hands it
timestamps scaled by ``n_time_bins`` plus one sentinel event one tick after the recording,
which makes the bins exactly ``floor((t - t_first) · n / (t_last - t_first + 1))``: every event
counts, in whole ticks of the file's clock (µs for N-MNIST and CIFAR10-DVS, ms for DVS Gesture).

The frames are stacked channels-last, channel ``k·P + p`` for time bin ``k`` and polarity ``p``
(9 bins × 2 polarities = 18 channels), resized to ``config.image_size`` (see
:func:`resize_frames`) and stored once, as uint8 counts (clipped at 255; the prepared copy's
metadata counts clipped values), by a TFDS builder without TensorFlow
(`jaxsnn.data.local_builder`); training epochs then read frames, never events. The metadata
also holds the root mean square of the training frames, by which batches are normalised (no
mean is subtracted, so an empty pixel stays 0).

CIFAR10-DVS has no official split: per class, the recordings sorted by file name are split 9:1,
the first ``ceil(0.9 n)`` for training (the split SpikingJelly's
``split_to_train_test_set(0.9, ..., random_split=False)`` makes, which the Adaptive Calibration
code uses). See README, "Neuromorphic datasets".
"""

import dataclasses
import math
import os
import pathlib
from collections.abc import Callable

import numpy as np
import tensorflow_datasets as tfds

from jaxsnn.data import local_builder

DEFAULT_TIME_BINS = 9
CIFAR10_DVS_TRAIN_FRACTION = 0.9
_INSTALL = "pip install 'jax-ann2snn[events]'"


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where an event dataset keeps its files and how they are named.

    Attributes:
      name: the value of ``config.dataset``.
      title: human name used in messages.
      folder: the folder under ``config.local_dir`` (the name of tonic's dataset class).
      expected: the file pattern below ``folder``, for messages.
      archives: the downloads whose extracted contents ``folder`` holds.
      url: where to download them.
      sensor: tonic's sensor size ``(width, height, polarities)``.
      classes: class names, label order.
    """

    name: str
    title: str
    folder: str
    expected: str
    archives: tuple[str, ...]
    url: str
    sensor: tuple[int, int, int]
    classes: tuple[str, ...]


LAYOUTS = {
    "nmnist": Layout(
        "nmnist",
        "N-MNIST",
        "NMNIST",
        "Train/<digit>/*.bin and Test/<digit>/*.bin",
        ("train.zip", "test.zip"),
        "https://www.garrickorchard.com/datasets/n-mnist",
        (34, 34, 2),
        tuple(str(d) for d in range(10)),
    ),
    "dvs_gesture": Layout(
        "dvs_gesture",
        "DVS Gesture",
        "DVSGesture",
        "ibmGestureTrain/user<NN>_<lighting>/<label>.npy and ibmGestureTest/...",
        ("ibmGestureTrain.tar.gz", "ibmGestureTest.tar.gz"),
        "tonic's preprocessed copy, https://figshare.com/ndownloader/files/38022171 and "
        "https://figshare.com/ndownloader/files/38020584",
        (128, 128, 2),
        (
            "hand_clapping",
            "right_hand_wave",
            "left_hand_wave",
            "right_arm_cw",
            "right_arm_ccw",
            "left_arm_cw",
            "left_arm_ccw",
            "arm_roll",
            "air_drums",
            "air_guitar",
            "other_gestures",
        ),
    ),  # fmt: skip
    "cifar10_dvs": Layout(
        "cifar10_dvs",
        "CIFAR10-DVS",
        "CIFAR10DVS",
        "<class>/*.aedat4 for the 10 classes airplane ... truck",
        ("CIFAR10DVS.zip (and the class archives airplane.zip ... truck.zip inside it)",),
        "https://figshare.com/ndownloader/files/38023437",
        (128, 128, 2),
        (
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
    ),  # fmt: skip
}

Example = tuple[pathlib.Path, int]  # (file, label)


def how_to_get(layout: Layout, root: str = "<local_dir>") -> str:
    """One sentence: what to download, and where tonic's layout puts the extracted files."""
    return (
        f"download {' and '.join(layout.archives)} ({layout.url}), extract them as "
        f"{root}/{layout.folder}/{layout.expected} (tonic's layout <root>/{layout.folder}/...) "
        f"and set config.local_dir to {root}"
    )


def _dataset_dir(local_dir, layout: Layout) -> pathlib.Path:
    """``local_dir/<folder>``, or ``local_dir`` itself when it already is that folder."""
    if not local_dir:
        raise FileNotFoundError(
            f"{layout.title}: config.local_dir is not set; {how_to_get(layout)}"
        )
    root = pathlib.Path(local_dir)
    if root.name == layout.folder and not (root / layout.folder).is_dir():
        return root
    return root / layout.folder


def _missing(layout: Layout, local_dir, problem: str) -> FileNotFoundError:
    where = os.fspath(local_dir)
    return FileNotFoundError(f"{layout.title}: {where!r} {problem}; {how_to_get(layout, where)}")


def _sorted_dirs(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: pathlib.Path, suffix: str) -> list[pathlib.Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix))


def _list_nmnist(base: pathlib.Path, layout: Layout, local_dir) -> dict[str, list[Example]]:
    out = {}
    for split, name in (("train", "Train"), ("test", "Test")):
        folder = base / name
        if not folder.is_dir():
            raise _missing(layout, local_dir, f"has no {layout.folder}/{name}/")
        examples = []
        for digit in _sorted_dirs(folder):
            if digit.name not in layout.classes:
                raise ValueError(
                    f"{digit}: N-MNIST class folders are named 0 ... 9, got {digit.name!r}"
                )
            examples += [(f, int(digit.name)) for f in _files(digit, ".bin")]
        if not examples:
            raise _missing(layout, local_dir, f"has no {layout.folder}/{name}/<digit>/*.bin")
        out[split] = examples
    return out


def _list_dvs_gesture(base: pathlib.Path, layout: Layout, local_dir) -> dict[str, list[Example]]:
    out = {}
    for split, name in (("train", "ibmGestureTrain"), ("test", "ibmGestureTest")):
        folder = base / name
        if not folder.is_dir():
            raise _missing(layout, local_dir, f"has no {layout.folder}/{name}/")
        examples = []
        for user in _sorted_dirs(folder):
            files = _files(user, ".npy")
            try:
                labelled = sorted((int(f.name[:-4]), f) for f in files)
            except ValueError:
                raise ValueError(
                    f"{user}: DVS Gesture recordings are named <label>.npy, got "
                    f"{sorted(f.name for f in files)[:3]}"
                ) from None
            for label, path in labelled:
                if not 0 <= label < len(layout.classes):
                    raise ValueError(f"{path}: label {label} outside [0, {len(layout.classes)})")
                examples.append((path, label))
        if not examples:
            raise _missing(layout, local_dir, f"has no {layout.folder}/{name}/user*/<label>.npy")
        out[split] = examples
    return out


def _list_cifar10_dvs(base: pathlib.Path, layout: Layout, local_dir) -> dict[str, list[Example]]:
    if not base.is_dir():
        raise _missing(layout, local_dir, f"has no {layout.folder}/")
    missing = [c for c in layout.classes if not (base / c).is_dir()]
    if missing:
        raise _missing(layout, local_dir, f"has {layout.folder}/ without {', '.join(missing)}/")
    out: dict[str, list[Example]] = {"train": [], "test": []}
    for label, name in enumerate(layout.classes):
        files = _files(base / name, ".aedat4")
        if not files:
            raise _missing(layout, local_dir, f"has no {layout.folder}/{name}/*.aedat4")
        cut = math.ceil(len(files) * CIFAR10_DVS_TRAIN_FRACTION)
        if cut == len(files):
            raise ValueError(
                f"{base / name}: {len(files)} recordings; the 9:1 split needs at least 10 per "
                "class to leave one for testing (the full dataset has 1000)"
            )
        out["train"] += [(f, label) for f in files[:cut]]
        out["test"] += [(f, label) for f in files[cut:]]
    return out


_LISTERS: dict[str, Callable] = {
    "nmnist": _list_nmnist,
    "dvs_gesture": _list_dvs_gesture,
    "cifar10_dvs": _list_cifar10_dvs,
}


def find_files(local_dir, name: str) -> tuple[pathlib.Path, dict[str, list[Example]]]:
    """Lists the recordings of dataset ``name`` in ``local_dir`` (tonic's extracted layout).

    Returns:
      ``(folder, {'train': [(file, label), ...], 'test': [...]})``, files in a fixed order
      (sorted folders and names).

    Raises:
      FileNotFoundError: one line naming the folder, the archive and the layout expected.
      ValueError: a folder or file is misnamed.
    """
    layout = LAYOUTS[name]
    base = _dataset_dir(local_dir, layout)
    if not base.exists():
        raise _missing(layout, local_dir, f"has no {layout.folder}/")
    return base.resolve(), _LISTERS[name](base, layout, local_dir)


# --------------------------------------------------------------------------- decoding


def _tonic():
    """tonic, imported on first use (it imports torch when installed: seconds)."""
    try:
        import tonic
    except ImportError as e:
        raise ImportError(f"event datasets need the 'tonic' package: {_INSTALL} ({e})") from e
    return tonic


EVENT_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])


def _structured(x, y, t, p) -> np.ndarray:
    events = np.empty(len(t), EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


def _read_nmnist(path: pathlib.Path) -> np.ndarray:
    size = path.stat().st_size
    if size % 5:
        raise ValueError(
            f"{path}: {size} bytes is not a whole number of 5-byte N-MNIST events; the file is "
            "truncated or corrupted"
        )
    tonic = _tonic()
    events = tonic.io.read_mnist_file(os.fspath(path), dtype=tonic.datasets.NMNIST.dtype)
    return _structured(events["x"], events["y"], events["t"], events["p"])


def _read_dvs_gesture(path: pathlib.Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a DVS Gesture .npy recording ({e})") from e
    if array.ndim != 2 or array.shape[1] != 4 or not np.all(np.isfinite(array)):
        raise ValueError(
            f"{path}: expected a finite [N, 4] array of (x, y, p, t) events, got {array.dtype} "
            f"{array.shape}"
        )
    x, y, p, t = (array[:, i] for i in range(4))
    return _structured(x, y, np.floor(t), p)


def _read_cifar10_dvs(path: pathlib.Path) -> np.ndarray:
    tonic = _tonic()
    try:
        events = tonic.io.read_aedat4(os.fspath(path))
    except ImportError as e:
        raise ImportError(f"CIFAR10-DVS needs the 'aedat' package: {_INSTALL} ({e})") from e
    except Exception as e:  # The AEDAT4 decoder reports bad files with its own exception types.
        raise ValueError(f"{path}: not a readable AEDAT4 event file ({e})") from e
    t, x, y, p = (events[name] for name in events.dtype.names)  # tonic's (t, x, y, p) order.
    return _structured(x, y, t, p)


READERS: dict[str, Callable[[pathlib.Path], np.ndarray]] = {
    "nmnist": _read_nmnist,
    "dvs_gesture": _read_dvs_gesture,
    "cifar10_dvs": _read_cifar10_dvs,
}


def read_events(path: os.PathLike | str, name: str) -> np.ndarray:
    """Decodes one recording of dataset ``name`` into a structured array (x, y, t, p; int64).

    Raises:
      ValueError: the file is corrupted or its events lie outside the sensor.
    """
    layout, path = LAYOUTS[name], pathlib.Path(path)
    events = READERS[name](path)
    width, height, polarities = layout.sensor
    bad = (
        (events["x"] < 0)
        | (events["x"] >= width)
        | (events["y"] < 0)
        | (events["y"] >= height)
        | (events["p"] < 0)
        | (events["p"] >= polarities)
    )
    if np.any(bad):
        raise ValueError(
            f"{path}: {int(np.sum(bad))} events outside the {width}x{height} {layout.title} sensor "
            f"(or a polarity outside [0, {polarities})); corrupted file or another dataset?"
        )
    return events


# --------------------------------------------------------------------------- frames


def to_frames(events: np.ndarray, sensor: tuple[int, int, int], n_time_bins: int) -> np.ndarray:
    """Counts events per time bin, polarity and pixel with tonic's ``ToFrame``: ``[T, P, H, W]``.

    Every event counts: bin ``k = floor((t - t_first) · n / (t_last - t_first + 1))`` (equal
    bins over the recording's ticks, the last tick included); see the module docstring.
    """
    width, height, polarities = sensor
    frames = np.zeros((n_time_bins, polarities, height, width), np.int64)
    if len(events) == 0:
        return frames
    events = events[np.argsort(events["t"], kind="stable")]
    t = events["t"] - events["t"][0]
    span = int(t[-1]) + 1
    # Timestamps × n, then one sentinel at span × n: tonic's bin width becomes exactly `span`
    # and the sentinel sits on the end of the last bin, which tonic excludes.
    scaled = _structured(
        np.append(events["x"], 0),
        np.append(events["y"], 0),
        np.append(t * n_time_bins, span * n_time_bins),
        np.append(events["p"], 0),
    )
    to_frame = _tonic().transforms.ToFrame(sensor_size=sensor, n_time_bins=n_time_bins)
    frames += to_frame(scaled)
    return frames


def _axis_map(size_in: int, size_out: int) -> np.ndarray:
    """0/1 matrix ``[out, in]``: each input pixel's output pixel (shrinking) or the reverse."""
    if size_out <= size_in:  # Each input pixel to output floor(i · out / in): sums are kept.
        target = np.arange(size_in) * size_out // size_in
        return (np.arange(size_out)[:, None] == target[None, :]).astype(np.int64)
    source = np.arange(size_out) * size_in // size_out  # Nearest neighbour: values are kept.
    return (source[:, None] == np.arange(size_in)[None, :]).astype(np.int64)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resizes ``[..., H, W]`` counts to ``[..., size, size]`` with integer arithmetic.

    Shrinking adds the counts of the input pixels that map to each output pixel (input pixel
    ``i`` goes to ``floor(i · size / H)``), so no event is lost; growing repeats pixels (nearest
    neighbour, as the Adaptive Calibration code's ``F.interpolate`` does).
    """
    height, width = frames.shape[-2:]
    if (height, width) == (size, size):
        return frames
    rows, cols = _axis_map(height, size), _axis_map(width, size)
    return rows @ frames @ cols.T


def stack_channels(frames: np.ndarray) -> tuple[np.ndarray, int]:
    """``[T, P, H, W]`` counts → uint8 ``[H, W, T·P]`` (channel ``k·P + p``) and the number of
    values clipped at 255."""
    bins, polarities, height, width = frames.shape
    stacked = frames.transpose(2, 3, 0, 1).reshape(height, width, bins * polarities)
    clipped = int(np.sum(stacked > 255))
    return np.minimum(stacked, 255).astype(np.uint8), clipped


def frames_of(path, name: str, n_time_bins: int, size: int) -> tuple[np.ndarray, int, int]:
    """One recording as the stored example: ``(uint8 [size, size, C], events, clipped values)``."""
    events = read_events(path, name)
    frames = to_frames(events, LAYOUTS[name].sensor, n_time_bins)
    stacked, clipped = stack_channels(resize_frames(frames, size))
    return stacked, len(events), clipped


# --------------------------------------------------------------------------- the TFDS builder


@dataclasses.dataclass(eq=False)
class LocalEventsConfig(local_builder.LocalBuilderConfig):
    """BuilderConfig of one event dataset folder, binning and size.

    Attributes:
      dataset: 'nmnist', 'dvs_gesture' or 'cifar10_dvs'.
      n_time_bins: time bins per recording.
      size: side of the stored frames.
    """

    dataset: str = "nmnist"
    n_time_bins: int = DEFAULT_TIME_BINS
    size: int = 0


class LocalEvents(local_builder.LocalBuilder):
    """Prepares event recordings as stacked uint8 frames in array_record TFDS splits."""

    RELEASE_NOTES = {"1.0.0": "Stacked event-count frames (time bins × polarities) via tonic."}

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        layout = LAYOUTS[cfg.dataset]
        channels = cfg.n_time_bins * layout.sensor[2]
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                f"{layout.title} read from {cfg.local_dir}: {cfg.n_time_bins} time bins x "
                f"{layout.sensor[2]} polarities, {cfg.size}x{cfg.size} frames."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(
                        shape=(cfg.size, cfg.size, channels),
                        dtype=np.uint8,
                        encoding=tfds.features.Encoding.BYTES,
                    ),
                    "label": tfds.features.ClassLabel(names=list(layout.classes)),
                    "num_events": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
            homepage=next(w.strip(",") for w in layout.url.split() if w.startswith("https://")),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the files are local.
        _, splits = find_files(self.builder_config.local_dir, self.builder_config.dataset)
        return {split: self._generate_examples(split, files) for split, files in splits.items()}

    def _generate_examples(self, split: str, files: list[Example]):
        cfg = self.builder_config
        square_sum, values, clipped = 0.0, 0, 0
        for i, (path, label) in enumerate(files):
            image, num_events, n_clipped = frames_of(path, cfg.dataset, cfg.n_time_bins, cfg.size)
            clipped += n_clipped
            if split == "train":
                square_sum += float(np.sum(np.square(image, dtype=np.float64)))
                values += image.size
            yield i, {"image": image, "label": label, "num_events": num_events}
        self.info.metadata[f"{split}_clipped_values"] = clipped
        if split == "train":
            # Normalisation scale (see `normalisation` in jaxsnn.data.datasets).
            self.info.metadata["frame_rms"] = math.sqrt(square_sum / max(values, 1))


def make_config(local_dir, name: str, n_time_bins: int, size: int | None) -> LocalEventsConfig:
    """The BuilderConfig of dataset ``name`` in ``local_dir``, named by a content fingerprint.

    Raises:
      FileNotFoundError / ValueError: as :func:`find_files`; ``n_time_bins`` or ``size`` < 1.
    """
    layout = LAYOUTS[name]
    if isinstance(n_time_bins, bool) or not isinstance(n_time_bins, int) or n_time_bins < 1:
        raise ValueError(f"config.n_time_bins: must be a positive integer, got {n_time_bins!r}")
    size = layout.sensor[1] if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"config.image_size: must be a positive integer, got {size!r}")
    base, splits = find_files(local_dir, name)
    parts = [name, f"bins:{n_time_bins}", f"size:{size}"]
    for split, files in splits.items():
        parts += [f"{split}:{f.relative_to(base)}:{f.stat().st_size}:{y}" for f, y in files]
    return LocalEventsConfig(
        name=local_builder.config_name(base, parts),
        version=LocalEvents.VERSION,
        description=f"{layout.title} from {base}",
        local_dir=os.fspath(base),
        dataset=name,
        n_time_bins=n_time_bins,
        size=size,
    )


def prepare_local_events(
    local_dir,
    name: str,
    *,
    n_time_bins: int = DEFAULT_TIME_BINS,
    size: int | None = None,
    data_dir=None,
) -> LocalEvents:
    """Prepares (once) an event dataset as stacked frames in ``data_dir``; returns its builder.

    Args:
      local_dir: the folder holding ``<tonic class name>/...`` (or that folder itself).
      name: 'nmnist', 'dvs_gesture' or 'cifar10_dvs'.
      n_time_bins: time bins per recording (channels = bins × 2 polarities).
      size: side of the stored frames (None: the sensor's).
      data_dir: TFDS data_dir to write to; None means the TFDS default.

    Raises:
      FileNotFoundError: the files are not there (the message says what to download).
      ValueError: a file is corrupted or misnamed.
    """
    config = make_config(local_dir, name, n_time_bins, size)
    return local_builder.prepare(LocalEvents, config, data_dir)
