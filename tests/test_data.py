"""Tests for jaxsnn.data: IDX builder, deterministic grain pipelines, process shares, errors.

Everything runs offline: IDX files are generated in tmp_path, TFDS datasets are mocked
with `tfds.testing.mock_data`, and the real Fashion-MNIST test runs only when the
Debian package has installed it. Batches are built in the test process (data_workers=0)
except in the test that compares worker processes with it. CIFAR pickles and ImageNet
ImageFolder trees are tested in test_local_datasets.py.
"""

import gzip
import pathlib
from unittest import mock

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import jaxsnn.data
from jaxsnn.data import augment, autoaugment, datasets, idx, idx_builder, loader, pipeline

NUM_TRAIN, NUM_TEST, SIDE = 64, 40, 28
FASHION_DIR = pathlib.Path(datasets.DEFAULT_IDX_DIR)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _write_idx(path: pathlib.Path, array: np.ndarray, *, gz: bool) -> None:
    data = _idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def _make_idx_dir(directory: pathlib.Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Writes a tiny MNIST-like dataset (train files gzipped, test files plain)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (NUM_TRAIN, SIDE, SIDE), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, NUM_TRAIN, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (NUM_TEST, SIDE, SIDE), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, NUM_TEST, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        _write_idx(directory / idx.IDX_FILES[key], array, gz=key.startswith("train"))
    return arrays


@pytest.fixture(scope="module")
def idx_data(tmp_path_factory) -> tuple[ml_collections.ConfigDict, dict[str, np.ndarray]]:
    """A prepared local IDX dataset and the config that reads it (prepared once)."""
    root = tmp_path_factory.mktemp("idx")
    arrays = _make_idx_dir(root / "tiny-mnist")
    config = ml_collections.ConfigDict(
        {
            "dataset": "idx",
            "idx_dir": str(root / "tiny-mnist"),
            "data_dir": str(root / "tfds"),
            "seed": 3,
            "augment": "crop_flip_cutout",
            "data_workers": 0,
        }
    )
    return config, arrays


def _with(config: ml_collections.ConfigDict, **overrides) -> ml_collections.ConfigDict:
    new = ml_collections.ConfigDict(config.to_dict())
    for key, value in overrides.items():
        new[key] = value
    return new


def _normalised(images: np.ndarray, info: jaxsnn.data.DatasetInfo) -> np.ndarray:
    mean, std = np.float32(info.mean), np.float32(info.std)
    return augment.normalize(images[..., None], mean, std)


# IDX parsing and the TFDS builder ------------------------------------------------------


def test_parse_idx_plain_and_gzip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a", array, gz=False)
    _write_idx(tmp_path / "b", array, gz=True)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a"), array)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "b.gz"), array)
    assert idx.read_idx_image_shape(tmp_path / "b.gz") == (3, 4, 1)


def test_builder_reads_exact_pixels_and_labels(idx_data):
    config, arrays = idx_data
    builder = idx_builder.prepare_local_idx(config.idx_dir, data_dir=config.data_dir)
    for split, prefix in (("train", "train"), ("test", "test")):
        source = builder.as_data_source(split=split)
        examples = source.__getitems__(list(range(len(source))))
        images = np.stack([ex["image"] for ex in examples])
        labels = np.array([ex["label"] for ex in examples])
        np.testing.assert_array_equal(images, arrays[f"{prefix}_images"][..., None])
        np.testing.assert_array_equal(labels, arrays[f"{prefix}_labels"])
    mean = arrays["train_images"].mean() / 255
    assert builder.info.metadata["pixel_mean"] == pytest.approx(mean)


def test_builder_prepares_once(idx_data):
    config, _ = idx_data
    idx_builder.prepare_local_idx(config.idx_dir, data_dir=config.data_dir)
    with mock.patch.object(idx_builder.LocalIdx, "_split_generators", side_effect=AssertionError):
        builder = idx_builder.prepare_local_idx(config.idx_dir, data_dir=config.data_dir)
    assert builder.is_prepared()
    # The prepared dataset is an ordinary TFDS dataset, readable by name.
    sources = tfds.data_source(f"local_idx/{builder.builder_config.name}", data_dir=config.data_dir)
    assert len(sources["train"]) == NUM_TRAIN


def test_get_dataset_info_idx(idx_data):
    config, arrays = idx_data
    info = jaxsnn.data.get_dataset_info(config)
    assert info.image_shape == (SIDE, SIDE, 1)
    assert (info.num_classes, info.train_size, info.test_size) == (10, NUM_TRAIN, NUM_TEST)
    assert info.mean[0] == pytest.approx(arrays["train_images"].mean() / 255)
    assert info.std[0] == pytest.approx(arrays["train_images"].std() / 255)


# Evaluation batches ---------------------------------------------------------------------


def test_eval_batches_cover_split_once_with_mask(idx_data):
    config, arrays = idx_data
    info = jaxsnn.data.get_dataset_info(config)
    assert jaxsnn.data.num_eval_batches(config, 16) == 3
    batches = list(jaxsnn.data.eval_batches(config, batch_size=16))
    assert len(batches) == 3
    assert [int(b["mask"].sum()) for b in batches] == [16, 16, 8]
    for b in batches:
        assert b["image"].shape == (16, SIDE, SIDE, 1) and b["image"].dtype == np.float32
        assert b["label"].dtype == np.int32 and b["mask"].dtype == bool
    real = {k: np.concatenate([b[k][b["mask"]] for b in batches]) for k in ("image", "label")}
    np.testing.assert_allclose(real["image"], _normalised(arrays["test_images"], info), atol=1e-6)
    np.testing.assert_array_equal(real["label"], arrays["test_labels"])
    assert not batches[-1]["mask"][8:].any() and (batches[-1]["image"][8:] == 0).all()


def test_eval_batches_train_split(idx_data):
    config, arrays = idx_data
    labels = np.concatenate(
        [b["label"] for b in jaxsnn.data.eval_batches(config, split="train", batch_size=64)]
    )
    np.testing.assert_array_equal(labels, arrays["train_labels"])


# Training batches: determinism and exact resume -------------------------------------------


def _train(config, **kwargs) -> list[dict[str, np.ndarray]]:
    return list(jaxsnn.data.train_batches(config, **kwargs))


def _assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_train_batches_resume_exactly(idx_data):
    config, _ = idx_data
    assert jaxsnn.data.steps_per_epoch(config, 16) == 4
    full = _train(config, epoch=1, batch_size=16)
    assert len(full) == 4
    _assert_same(_train(config, epoch=1, start_step=2, batch_size=16), full[2:])
    assert _train(config, epoch=1, start_step=4, batch_size=16) == []


def test_train_batches_skip_without_reading(idx_data):
    config, _ = idx_data
    with mock.patch.object(pipeline, "_read_examples", wraps=pipeline._read_examples) as read:
        _train(config, epoch=0, start_step=3, batch_size=16)
    assert read.call_count == 1 and len(read.call_args.args[1]) == 16


def test_train_batches_deterministic_across_workers_and_seeds(idx_data):
    """Worker processes (grain) build the same batches as the test process, epoch after epoch."""
    config, _ = idx_data
    config = _with(config, num_epochs=3)
    reference = [_train(config, epoch=e, batch_size=16) for e in (1, 2)]
    for workers in (1, 2):
        threaded = _with(config, data_workers=workers, data_prefetch=1)
        batches = jaxsnn.data.train_batches(threaded, epoch=1, start_step=1, batch_size=16)
        _assert_same(list(batches), reference[0][1:])
        # The next epoch continues the same stream: its workers were kept, not restarted.
        assert loader._STREAMS["train"].position == 2 * 4
        _assert_same(_train(threaded, epoch=2, batch_size=16), reference[1])
        assert "train" not in loader._STREAMS  # The run's last epoch closes the stream.
    other_seed = _train(_with(config, seed=4), epoch=2, batch_size=16)
    assert not np.array_equal(other_seed[0]["image"], reference[1][0]["image"])


def test_abandoned_epoch_stops_the_workers(idx_data):
    config, _ = idx_data
    config = _with(config, data_workers=1, num_epochs=5)
    batches = jaxsnn.data.train_batches(config, epoch=0, batch_size=16)
    next(batches)
    batches.close()  # Stopped mid-epoch (e.g. max_steps): nothing is kept running.
    assert "train" not in loader._STREAMS


# Process shares: each JAX process builds its own rows of every global batch ----------------


def _as_process(monkeypatch, index: int, count: int) -> None:
    monkeypatch.setattr(pipeline, "process_layout", lambda: (index, count))


@pytest.mark.parametrize("count", [2, 4])
def test_process_shares_are_rows_of_the_global_batch(idx_data, monkeypatch, count):
    """Whatever the process count, the shares concatenate to the one-process batches."""
    config, _ = idx_data
    config = _with(config, augment="autoaugment_cutout")
    whole = {
        "train": _train(config, epoch=1, start_step=2, batch_size=16),
        "eval": list(jaxsnn.data.eval_batches(config, batch_size=16)),
        "calibration": jaxsnn.data.calibration_batches(
            config, num_batches=2, batch_size=16, seed=1
        ),
    }
    shares = {key: [] for key in whole}
    for index in range(count):
        _as_process(monkeypatch, index, count)
        shares["train"].append(_train(config, epoch=1, start_step=2, batch_size=16))
        shares["eval"].append(list(jaxsnn.data.eval_batches(config, batch_size=16)))
        shares["calibration"].append(
            jaxsnn.data.calibration_batches(config, num_batches=2, batch_size=16, seed=1)
        )
    for key, batches in whole.items():
        for i, batch in enumerate(batches):
            parts = [share[i] for share in shares[key]]
            assert {p["label"].shape[0] for p in parts} == {16 // count}
            for name in batch:
                np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), batch[name])
    # The last evaluation batch holds 8 real examples: later processes get only padding.
    last = [share[-1]["mask"].sum() for share in shares["eval"]]
    assert sum(last) == 8 and last[-1] == 0


def test_batch_size_must_split_over_processes(idx_data, monkeypatch):
    config, _ = idx_data
    _as_process(monkeypatch, 0, 3)
    with pytest.raises(ValueError, match="divisible by the 3 processes"):
        jaxsnn.data.train_batches(config, epoch=0, batch_size=16)


def test_train_batches_epoch_is_a_permutation(idx_data):
    config, arrays = idx_data
    config = _with(config, augment="none")
    orders = []
    for epoch in (0, 1):
        batches = _train(config, epoch=epoch, batch_size=16)
        images = np.concatenate([b["image"] for b in batches])
        info = jaxsnn.data.get_dataset_info(config)
        reference = _normalised(arrays["train_images"], info).reshape(NUM_TRAIN, -1)
        # Match every yielded image to its source example.
        distance = ((images.reshape(NUM_TRAIN, 1, -1) - reference[None]) ** 2).sum(-1)
        order = distance.argmin(1)
        assert np.allclose(distance.min(1), 0, atol=1e-6)
        np.testing.assert_array_equal(np.sort(order), np.arange(NUM_TRAIN))
        labels = np.concatenate([b["label"] for b in batches])
        np.testing.assert_array_equal(labels, arrays["train_labels"][order])
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])


def test_train_batches_drop_remainder(idx_data):
    config, _ = idx_data
    assert jaxsnn.data.steps_per_epoch(config, 24) == 2
    batches = _train(config, epoch=0, batch_size=24)
    assert [b["image"].shape for b in batches] == [(24, SIDE, SIDE, 1)] * 2


def test_calibration_batches(idx_data):
    config, arrays = idx_data
    batches = jaxsnn.data.calibration_batches(config, num_batches=3, batch_size=8, seed=5)
    assert len(batches) == 3 and batches[0]["image"].shape == (8, SIDE, SIDE, 1)
    again = jaxsnn.data.calibration_batches(config, num_batches=3, batch_size=8, seed=5)
    _assert_same(batches, again)
    other = jaxsnn.data.calibration_batches(config, num_batches=3, batch_size=8, seed=6)
    assert not np.array_equal(other[0]["label"], batches[0]["label"])
    plain = jaxsnn.data.calibration_batches(
        config, num_batches=1, batch_size=8, seed=5, augment=False
    )
    info = jaxsnn.data.get_dataset_info(config)
    reference = _normalised(arrays["train_images"], info)
    for image in plain[0]["image"]:
        assert np.abs(reference - image).reshape(NUM_TRAIN, -1).max(1).min() < 1e-6


# TFDS datasets through tfds.testing.mock_data -------------------------------------------


@pytest.fixture
def mock_tfds():
    with tfds.testing.mock_data(num_examples=48, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


@pytest.mark.parametrize("augment_mode", ["crop_flip_cutout", "autoaugment_cutout"])
def test_mock_cifar10_batches(mock_tfds, augment_mode):
    config = ml_collections.ConfigDict(
        {"dataset": "cifar10", "seed": 0, "augment": augment_mode, "data_workers": 0}
    )
    info = jaxsnn.data.get_dataset_info(config)
    assert info.image_shape == (32, 32, 3) and info.num_classes == 10
    assert info.mean == (0.4914, 0.4822, 0.4465) and info.train_size == 48
    batches = _train(config, epoch=0, batch_size=16)
    assert len(batches) == 3
    _assert_same(_train(config, epoch=0, start_step=1, batch_size=16), batches[1:])
    for b in batches:
        assert b["image"].shape == (16, 32, 32, 3) and b["image"].dtype == np.float32
        assert b["label"].shape == (16,) and b["label"].dtype == np.int32
        pixels = b["image"] * np.float32(info.std) + np.float32(info.mean)
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    # Evaluation images are exactly the normalised source images.
    source = datasets.open_split(config, "test")
    raw = np.stack([source[i]["image"] for i in range(16)])
    first = next(jaxsnn.data.eval_batches(config, batch_size=16))
    expected = (raw / 255 - np.array(info.mean)) / np.array(info.std)
    np.testing.assert_allclose(first["image"], expected, atol=1e-5)
    assert first["mask"].all()


def test_mock_mnist_without_idx_files(mock_tfds, tmp_path):
    config = ml_collections.ConfigDict(
        {"dataset": "mnist", "idx_dir": str(tmp_path / "none"), "augment": "crop_flip"}
    )
    info = jaxsnn.data.get_dataset_info(config)
    assert info.image_shape == (28, 28, 1) and info.mean == (0.1307,)
    batch = next(jaxsnn.data.train_batches(config, epoch=0, batch_size=8))
    assert batch["image"].shape == (8, 28, 28, 1)


# Augmentation ----------------------------------------------------------------------------


def test_normalize_formula():
    images = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    mean, std = np.float32([0.1, 0.2, 0.3]), np.float32([0.5, 0.25, 0.2])
    expected = (images / 255.0 - mean) / std
    np.testing.assert_allclose(augment.normalize(images, mean, std), expected, atol=1e-5)


def test_cutout_zeroes_one_clipped_square():
    size, side = 8, 20
    images = np.ones((200, side, side, 2), np.float32)
    out = augment.cutout(images, np.random.default_rng(0), size=size)
    interior = 0
    for image in out:
        zero = image[..., 0] == 0
        np.testing.assert_array_equal(zero, image[..., 1] == 0)
        rows, cols = np.nonzero(zero.any(1))[0], np.nonzero(zero.any(0))[0]
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert zero.sum() == height * width  # One filled rectangle.
        # Clipping at a border keeps at least the half of the square on the centre's side.
        assert size // 2 <= height <= size and size // 2 <= width <= size
        at_border = rows[0] == 0 or cols[0] == 0 or rows[-1] == side - 1 or cols[-1] == side - 1
        if not at_border:
            assert height == width == size
            interior += 1
    assert 0 < interior < len(out)


def test_crop_flip_is_a_shifted_possibly_mirrored_copy():
    padding, side = 2, 8
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (64, side, side, 1), dtype=np.uint8)
    out = augment.random_crop_flip(images, np.random.default_rng(1), padding=padding, flip=True)
    mirrored = 0
    for image, result in zip(images, out, strict=True):
        padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
        matches = [
            (dy, dx, mirror)
            for dy in range(2 * padding + 1)
            for dx in range(2 * padding + 1)
            for mirror in (False, True)
            if np.array_equal(
                result, (padded[dy : dy + side, dx : dx + side])[:, :: -1 if mirror else 1]
            )
        ]
        assert matches, "output is not a crop of the zero-padded image"
        mirrored += matches[0][2]
        # Pixels coming from the image keep their values; only padding adds zeros.
        assert (result > 0).sum() >= (side - padding) ** 2
    assert 0 < mirrored < len(images)


def test_crop_without_flip_never_mirrors():
    images = np.tile(np.arange(8, dtype=np.uint8)[None, None, :, None] + 1, (16, 8, 1, 1))
    out = augment.random_crop_flip(images, np.random.default_rng(0), padding=0, flip=False)
    np.testing.assert_array_equal(out, images)


def test_autoaugment_shape_dtype_and_determinism():
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    a = autoaugment.cifar10_policy(images, np.random.default_rng(7))
    b = autoaugment.cifar10_policy(images, np.random.default_rng(7))
    c = autoaugment.cifar10_policy(images, np.random.default_rng(8))
    assert a.shape == images.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, images)
    gray = autoaugment.cifar10_policy(images[..., :1], np.random.default_rng(7))
    assert gray.shape == (32, 32, 32, 1)


@pytest.mark.parametrize("op", ["posterize", "solarize", "autocontrast", "equalize", "invert"])
@pytest.mark.parametrize("channels", [1, 3])
def test_autoaugment_numpy_ops_match_pil(op, channels):
    rng = np.random.default_rng(channels)
    for trial in range(30):
        low = int(rng.integers(0, 250))
        high = low + int(rng.integers(1, 257 - low)) if trial % 3 else low + 2
        image = rng.integers(low, min(high, 256), (16, 16, channels), dtype=np.uint8)
        for level in (0, 4, 9):
            pil = Image.fromarray(image[..., 0] if channels == 1 else image)
            expected = np.asarray(autoaugment.apply_pil_op(pil, op, level, 1))
            got = autoaugment.apply_numpy_op(image, op, level)
            np.testing.assert_array_equal(got, expected.reshape(image.shape))


def test_imagenet_crops_have_requested_size():
    image = np.random.default_rng(0).integers(0, 256, (50, 90, 3), dtype=np.uint8)
    assert augment.random_resized_crop(image, np.random.default_rng(0), size=24).shape == (
        24,
        24,
        3,
    )
    assert augment.resize_center_crop(image, size=24).shape == (24, 24, 3)


# Errors ----------------------------------------------------------------------------------


def test_unknown_augment(idx_data):
    config, _ = idx_data
    with pytest.raises(ValueError, match=r"config\.augment"):
        jaxsnn.data.train_batches(_with(config, augment="mixup"), epoch=0, batch_size=8)


def test_bad_start_step(idx_data):
    config, _ = idx_data
    with pytest.raises(ValueError, match="start_step"):
        jaxsnn.data.train_batches(config, epoch=0, start_step=5, batch_size=16)


def test_missing_idx_dir_for_idx_dataset(tmp_path):
    missing = tmp_path / "nowhere"
    config = ml_collections.ConfigDict(
        {"dataset": "idx", "idx_dir": str(missing), "data_dir": str(tmp_path)}
    )
    with pytest.raises(FileNotFoundError) as error:
        jaxsnn.data.get_dataset_info(config)
    message = str(error.value)
    assert str(missing) in message and "dataset-fashion-mnist" in message
    assert "\n" not in message


def test_missing_fashion_mnist_names_idx_dir(tmp_path):
    missing = tmp_path / "fashion"
    config = ml_collections.ConfigDict(
        {"dataset": "fashion_mnist", "idx_dir": str(missing), "data_dir": str(tmp_path)}
    )
    with pytest.raises(FileNotFoundError) as error:
        jaxsnn.data.train_batches(config, epoch=0, batch_size=8)
    message = str(error.value)
    assert str(missing) in message and "dataset-fashion-mnist" in message
    assert "config.idx_dir" in message and "\n" not in message


def test_incomplete_idx_dir_lists_missing_files(tmp_path):
    _make_idx_dir(tmp_path / "d")
    (tmp_path / "d" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="lacks t10k-labels-idx1-ubyte"):
        idx.find_idx_files(tmp_path / "d")


def test_corrupted_idx_bad_magic(tmp_path):
    _make_idx_dir(tmp_path / "d")
    path = tmp_path / "d" / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x12\x34" + path.read_bytes()[2:])
    with pytest.raises(ValueError, match="bad magic number 1234"):
        idx.read_idx(path)
    config = ml_collections.ConfigDict(
        {"dataset": "idx", "idx_dir": str(tmp_path / "d"), "data_dir": str(tmp_path / "tfds")}
    )
    with pytest.raises(ValueError, match="not an IDX file"):
        jaxsnn.data.get_dataset_info(config)


def test_corrupted_idx_truncated(tmp_path):
    _make_idx_dir(tmp_path / "d")
    path = tmp_path / "d" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        idx.read_idx(path)
    (tmp_path / "e.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05")[:-4])
    with pytest.raises(ValueError, match="corrupted gzip"):
        idx.read_idx(tmp_path / "e.gz")


# Real Fashion-MNIST (Debian package dataset-fashion-mnist) -------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not idx.has_idx_files(FASHION_DIR), reason=f"no IDX files in {FASHION_DIR}")
def test_real_fashion_mnist_via_builder(tmp_path):
    config = ml_collections.ConfigDict(
        {"dataset": "fashion_mnist", "data_dir": str(tmp_path), "idx_dir": str(FASHION_DIR)}
    )
    info = jaxsnn.data.get_dataset_info(config)
    assert (info.train_size, info.test_size, info.num_classes) == (60000, 10000, 10)
    assert info.image_shape == (28, 28, 1)
    builder = idx_builder.prepare_local_idx(FASHION_DIR, data_dir=tmp_path)
    assert builder.info.metadata["pixel_mean"] == pytest.approx(0.2860, abs=1e-4)
    assert builder.info.metadata["pixel_std"] == pytest.approx(0.3530, abs=1e-4)
    batch = next(jaxsnn.data.eval_batches(config, batch_size=10000))
    assert batch["mask"].all() and set(np.unique(batch["label"])) == set(range(10))


def test_constant_idx_images_normalise_without_nan(tmp_path):
    """Zero pixel std (all images constant) must not divide by zero: std falls back to 1."""
    directory = tmp_path / "constant"
    directory.mkdir()
    rng = np.random.default_rng(0)
    for key, n in (("train", NUM_TRAIN), ("test", NUM_TEST)):
        _write_idx(
            directory / idx.IDX_FILES[f"{key}_images"], np.full((n, SIDE, SIDE), 7), gz=False
        )
        _write_idx(directory / idx.IDX_FILES[f"{key}_labels"], rng.integers(0, 10, n), gz=False)
    config = ml_collections.ConfigDict(
        {"dataset": "idx", "idx_dir": str(directory), "data_dir": str(tmp_path / "tfds"), "seed": 0}
    )
    info = jaxsnn.data.get_dataset_info(config)
    assert info.std == (1.0,)
    batch = next(iter(jaxsnn.data.eval_batches(config, split="test", batch_size=8)))
    assert np.all(np.isfinite(batch["image"]))
