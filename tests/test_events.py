"""Event-camera datasets: real-format files decoded through tonic, binned, prepared and trained on.

The tests write N-MNIST ``.bin``, DVS Gesture ``.npy`` and CIFAR10-DVS ``.aedat4`` files in
tonic's extracted layout (`event_files`), then check decoded events, frames (every event counted
once, in the bin its timestamp says), labels, split sizes, the CIFAR10-DVS 9:1 split, the
normalisation, the one-line errors, and run the shipped configs through ``train.py`` and
``convert.py`` (direct and time-major input). Nothing is downloaded.
"""

import importlib.util
import json
import math

import numpy as np
import pytest
from event_files import (
    CIFAR10_DVS_CLASSES,
    random_events,
    write_cifar10_dvs,
    write_dvs_gesture,
    write_nmnist,
)
from run_helpers import local_config
from test_local_datasets import ROOT, _finish, _run

import jaxsnn.data
from jaxsnn.data import datasets, events

pytest.importorskip(
    "tonic", reason="the 'events' extra is not installed: pip install -e '.[events]'"
)
HAVE_DV = importlib.util.find_spec("dv_processing") is not None
NO_AEDAT4_WRITER = "dv-processing (the AEDAT4 writer) is not installed: pip install dv-processing"
NMNIST_FILES = {"train": 4, "test": 2}  # Per digit, digits 0-2.
GESTURE_USERS = {"train": [1, 2], "test": [24]}
CIFAR_PER_CLASS = 11  # Names ..._0, _1, _10, _2, ...: the split follows the sorted names.


def _frames_reference(ev: dict, bins: int, side: int) -> np.ndarray:
    """The frames by the documented rule, independent of tonic: ``[side, side, bins · 2]``."""
    t = ev["t"] - ev["t"].min()
    k = t * bins // (t.max() + 1)
    out = np.zeros((side, side, bins * 2), np.int64)
    np.add.at(out, (ev["y"], ev["x"], k * 2 + ev["p"]), 1)
    return out


@pytest.fixture(scope="module")
def nmnist(tmp_path_factory):
    root = tmp_path_factory.mktemp("nmnist")
    return root, write_nmnist(root, NMNIST_FILES)


@pytest.fixture(scope="module")
def gesture(tmp_path_factory):
    root = tmp_path_factory.mktemp("gesture")
    return root, write_dvs_gesture(root, GESTURE_USERS)


@pytest.fixture(scope="module")
def cifar_dvs(tmp_path_factory):
    if not HAVE_DV:
        pytest.skip(NO_AEDAT4_WRITER)
    pytest.importorskip("aedat", reason="reading AEDAT4 needs 'aedat': pip install -e '.[events]'")
    root = tmp_path_factory.mktemp("cifar10dvs")
    return root, write_cifar10_dvs(root, CIFAR_PER_CLASS)


# Decoding and binning --------------------------------------------------------------------------


def test_nmnist_bin_decodes_every_event_across_the_overflow_marker(nmnist):
    _, written = nmnist
    path, _, ev = written["train"][0]  # The first file of a class holds an overflow marker.
    assert path.stat().st_size == 5 * (len(ev["t"]) + 1)
    got = events.read_events(path, "nmnist")
    assert len(got) == len(ev["t"])  # The marker is not an event.
    for name in "xytp":
        np.testing.assert_array_equal(got[name], ev[name])
    assert got["t"].max() >= 2**13  # Later events carry the overflow marker's 2¹³ µs.


def test_dvs_gesture_npy_decodes_x_y_p_t(gesture):
    _, written = gesture
    path, label, ev = written["test"][3]
    got = events.read_events(path, "dvs_gesture")
    assert label == int(path.stem) and len(got) == len(ev["t"])
    for name in "xytp":
        np.testing.assert_array_equal(got[name], ev[name])


def test_cifar10_dvs_aedat4_decodes_through_tonic(cifar_dvs):
    _, written = cifar_dvs
    path, ev = written["bird"][5]
    got = events.read_events(path, "cifar10_dvs")
    assert len(got) == len(ev["t"])
    for name in "xytp":
        np.testing.assert_array_equal(got[name], ev[name])


def test_frames_count_every_event_in_its_time_bin():
    rng = np.random.default_rng(3)
    ev = random_events(rng, 500, 34, 12_345, t0=777)
    structured = events._structured(ev["x"], ev["y"], ev["t"], ev["p"])
    frames = events.to_frames(structured, (34, 34, 2), 9)  # [T, P, H, W]
    assert frames.sum() == 500 and frames[-1].sum() > 0
    stacked, clipped = events.stack_channels(frames)
    assert clipped == 0 and stacked.shape == (34, 34, 18)
    np.testing.assert_array_equal(stacked, _frames_reference(ev, 9, 34))
    # Our premise: tonic's own n_time_bins slicing drops the last event (its last bin ends at
    # t_first + bins·((t_last - t_first) // bins) <= t_last, exclusive), which to_frames undoes.
    import tonic

    plain = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), n_time_bins=9)(structured)
    assert plain.sum() < 500


def test_resize_keeps_counts_when_shrinking_and_values_when_growing():
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 5, (3, 2, 128, 128))
    small = events.resize_frames(frames, 48)
    assert small.shape == (3, 2, 48, 48)
    np.testing.assert_array_equal(small.sum(axis=(2, 3)), frames.sum(axis=(2, 3)))
    # Input pixel i goes to output floor(i · 48 / 128).
    assert small[0, 0, 0, 0] == frames[0, 0, :3, :3].sum()
    big = events.resize_frames(frames[..., :34, :34], 68)
    np.testing.assert_array_equal(big[..., ::2, ::2], frames[..., :34, :34])
    np.testing.assert_array_equal(big[..., 1::2, 1::2], frames[..., :34, :34])


# Prepared datasets ---------------------------------------------------------------------------


def test_nmnist_prepared_frames_labels_and_normalisation(nmnist, tmp_path):
    root, written = nmnist
    config = local_config("nmnist", root, tmp_path / "tfds")
    info = jaxsnn.data.get_dataset_info(config)
    assert (info.train_size, info.test_size, info.num_classes) == (12, 6, 10)
    assert info.image_shape == (34, 34, 18) and set(info.mean) == {0.0}
    for split in ("train", "test"):
        source = datasets.open_split(config, split)
        for i, (_, label, ev) in enumerate(written[split]):
            record = source[i]
            assert record["label"] == label and record["num_events"] == len(ev["t"])
            np.testing.assert_array_equal(record["image"], _frames_reference(ev, 9, 34))
    source = datasets.open_split(config, "train")
    images = np.stack([source[i]["image"] for i in range(len(source))]).astype(np.float64)
    rms = math.sqrt(np.mean(images**2))
    assert source.dataset_info.metadata["frame_rms"] == pytest.approx(rms)
    # Batches are the counts divided by the training RMS: an empty pixel stays 0.
    batch = next(jaxsnn.data.eval_batches(config, split="test", batch_size=4))
    expected = datasets.open_split(config, "test")[1]["image"] / rms
    np.testing.assert_allclose(batch["image"][1], expected, rtol=1e-5)
    assert (batch["image"][1] == 0).mean() > 0.5


def test_dvs_gesture_split_labels_bins_and_size(gesture, tmp_path):
    root, written = gesture
    config = local_config("dvs_gesture", root, tmp_path / "tfds", n_time_bins=4, image_size=32)
    info = jaxsnn.data.get_dataset_info(config)
    assert (info.train_size, info.test_size, info.num_classes) == (20, 10, 11)
    assert info.image_shape == (32, 32, 8)
    source = datasets.open_split(config, "test")
    assert source.dataset_info.features["label"].names[1] == "right_hand_wave"
    for i, (_, label, ev) in enumerate(written["test"]):  # Sorted by user, then label.
        record = source[i]
        assert record["label"] == label
        assert record["image"].sum() == len(ev["t"])  # Shrunk 128 → 32: no event lost.
        reference = _frames_reference(ev, 4, 128).reshape(32, 4, 32, 4, 8).sum(axis=(1, 3))
        np.testing.assert_array_equal(record["image"], reference)
    # Default augmentation: shifts without flips (a mirrored gesture changes its label).
    assert datasets.get_augment(config) == "crop_flip" and not datasets.get_spec(config).flip
    batch = next(jaxsnn.data.train_batches(config, epoch=0, batch_size=4))
    assert batch["image"].shape == (4, 32, 32, 8)


def test_cifar10_dvs_nine_to_one_split_by_file_name(cifar_dvs, tmp_path):
    root, written = cifar_dvs
    config = local_config("cifar10_dvs", root, tmp_path / "tfds", image_size=16, n_time_bins=3)
    info = jaxsnn.data.get_dataset_info(config)
    # 11 recordings per class: ceil(0.9 · 11) = 10 for training, 1 for testing.
    assert (info.train_size, info.test_size, info.num_classes) == (100, 10, 10)
    test = datasets.open_split(config, "test")
    train = datasets.open_split(config, "train")
    for label, name in enumerate(CIFAR10_DVS_CLASSES):
        files = written[name]  # Sorted by name: _0, _1, _10, _2, ..., _9.
        assert files[2][0].name == f"cifar10_{name}_10.aedat4"
        record = test[label]
        assert record["label"] == label and record["num_events"] == len(files[-1][1]["t"])
        assert files[-1][0].name == f"cifar10_{name}_9.aedat4"
        first = train[label * 10]
        assert first["label"] == label and first["num_events"] == len(files[0][1]["t"])
        assert first["image"].sum() == len(files[0][1]["t"])
    assert datasets.get_spec(config).flip  # Objects: flips keep the label.


def test_missing_event_data_names_archive_and_folder(tmp_path):
    for name, archive, folder in (
        ("nmnist", "train.zip", "NMNIST/Train/<digit>/*.bin"),
        ("dvs_gesture", "ibmGestureTrain.tar.gz", "DVSGesture/ibmGestureTrain/"),
        ("cifar10_dvs", "CIFAR10DVS.zip", "CIFAR10DVS/<class>/*.aedat4"),
    ):
        config = local_config(name, tmp_path / "empty", tmp_path / "tfds")
        with pytest.raises(FileNotFoundError) as error:
            jaxsnn.data.get_dataset_info(config)
        message = str(error.value)
        assert "\n" not in message and str(tmp_path / "empty") in message
        assert archive in message and folder in message and "config.local_dir" in message


def test_corrupted_or_misplaced_files_are_refused(tmp_path):
    root = tmp_path / "data"
    written = write_nmnist(root, {"train": 1, "test": 1})
    path = written["train"][1][0]
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"00000\.bin: .* not a whole number of 5-byte"):
        jaxsnn.data.get_dataset_info(local_config("nmnist", root, tmp_path / "tfds"))
    bad = tmp_path / "gesture" / "DVSGesture"
    write_dvs_gesture(tmp_path / "gesture", {"train": [1], "test": [2]})
    np.save(bad / "ibmGestureTrain" / "user01_led" / "3.npy", np.full((4, 4), 200.0))
    config = local_config("dvs_gesture", tmp_path / "gesture", tmp_path / "tfds")
    with pytest.raises(ValueError, match=r"3\.npy: 4 events outside the 128x128"):
        jaxsnn.data.get_dataset_info(config)
    with pytest.raises(ValueError, match="config.augment: unknown augmentation"):
        datasets.get_augment(local_config("nmnist", root, tmp_path, augment="autoaugment_cutout"))
    with pytest.raises(ValueError, match="config.n_time_bins: must be a positive integer"):
        jaxsnn.data.get_dataset_info(local_config("nmnist", root, tmp_path, n_time_bins=0))


# End to end through train.py and convert.py ---------------------------------------------------


@pytest.mark.slow
def test_train_and_convert_the_event_configs(nmnist, gesture, tmp_path):
    runs = {
        "nmnist": ("nmnist_cnn.py", nmnist[0], []),
        "gesture": ("dvsgesture_vgg.py", gesture[0], ["--config.model=_VGGTiny"]),
    }
    if HAVE_DV and importlib.util.find_spec("aedat") is not None:
        cifar = tmp_path / "cifar"
        write_cifar10_dvs(cifar, 10)
        runs["cifar"] = ("cifar10dvs_vgg16.py", cifar, ["--config.model=_VGGTiny"])
    common = {
        name: [
            f"--config={ROOT / 'configs' / file}:local_dir={local},size=16,bins=3",
            "--config.model=_CNNTiny" if name == "nmnist" else extra[0],
            "--config.batch_size=4",
            "--config.eval_batch_size=4",
            "--config.data_workers=0",
            f"--config.data_dir={tmp_path / 'tfds'}",
        ]
        for name, (file, local, extra) in runs.items()
    }
    workdir = {name: tmp_path / f"run_{name}" for name in runs}
    outputs = _finish(
        {
            name: _run(["train.py", *args, "--config.max_steps=2", f"--workdir={workdir[name]}"],
                       tmp_path)
            for name, args in common.items()
        }
    )  # fmt: skip
    assert all("steps=2" in out for out in outputs.values())
    encodings = {"nmnist": "time", "gesture": "direct", "cifar": "time"}
    _finish(
        {
            name: _run(["convert.py", *args, "--config.convert.T=3",
                        f"--config.convert.encoding={encodings[name]}",
                        f"--workdir={workdir[name]}"], tmp_path)
            for name, args in common.items()
        }
    )  # fmt: skip
    sizes = {"nmnist": 6, "gesture": 10, "cifar": 10}
    for name in runs:
        suffix = "-encoding=time" if encodings[name] == "time" else ""
        results = json.loads((workdir[name] / f"snn_qcfs-T3{suffix}" / "results.json").read_text())
        assert results["encoding"] == encodings[name] and len(results["snn_accuracy"]) == 3
        assert results["num_examples"] == sizes[name] and results["input_shape"] == [16, 16, 6]
