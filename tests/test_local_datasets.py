"""CIFAR-10/100 python pickles and ImageNet ImageFolder trees, prepared and read without TensorFlow.

The tests write small files in the real formats (pickled dicts of ``data`` / ``labels`` or
``fine_labels``, with the byte-string keys and protocol 2 of the original Python 2 files, as a
folder or as the ``.tar.gz`` download; a ``train/<wnid>/*.JPEG`` + ``val/<wnid>/*.JPEG`` tree)
and check labels, shapes, pixel values and split sizes, in process and end to end through
``train.py`` and ``convert.py`` with the shipped configs. ``import tensorflow`` is made to fail
throughout, so nothing here can lean on TensorFlow even where it is installed.
"""

import importlib.util
import io
import json
import os
import pathlib
import pickle
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image
from run_helpers import local_config

import jaxsnn.data
from jaxsnn.data import augment, datasets

ROOT = pathlib.Path(__file__).resolve().parents[1]
PER_BATCH, CIFAR_TEST = 4, 8  # CIFAR-10: 5 training batch files of 4, a test file of 8.
CLASSES = ("n01440764", "n01443537", "n01484850")  # Sorted, as ImageNet's WordNet ids.


BLOCK_TENSORFLOW = """
import sys


class HideTensorFlow:
    \"\"\"Wraps an import finder so that it finds no 'tensorflow' (as if not installed).\"\"\"

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)


sys.meta_path[:] = [HideTensorFlow(finder) for finder in sys.meta_path]
"""


@pytest.fixture(autouse=True)
def no_tensorflow(monkeypatch):
    """``import tensorflow`` fails in this process, as when TensorFlow is not installed."""
    if any(name == "tensorflow" or name.startswith("tensorflow.") for name in sys.modules):
        pytest.fail("TensorFlow was imported before these tests")
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # Restored after the test.
    exec(BLOCK_TENSORFLOW, {})
    assert importlib.util.find_spec("tensorflow") is None


def _cifar_batch(rng, n: int, label_key: bytes, classes: int) -> tuple[dict, np.ndarray]:
    """A batch dict as the CIFAR pickles hold it, and its images as uint8 [n, 32, 32, 3]."""
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    batch = {
        b"batch_label": b"generated",
        label_key: [int(v) for v in rng.integers(0, classes, n)],
        # Rows are the 1024 red, then green, then blue values of the image, row-major.
        b"data": images.transpose(0, 3, 1, 2).reshape(n, 3072),
        b"filenames": [b"x.png"] * n,
    }
    return batch, images


def write_cifar10(root: pathlib.Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Writes ``root/cifar-10-batches-py/``; returns the images and labels of both splits."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {"train_images": [], "train_labels": []}
    for i in range(1, 6):
        batch, images = _cifar_batch(rng, PER_BATCH, b"labels", 10)
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
        out["train_images"].append(images)
        out["train_labels"].append(batch[b"labels"])
    batch, images = _cifar_batch(rng, CIFAR_TEST, b"labels", 10)
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return {
        "train_images": np.concatenate(out["train_images"]),
        "train_labels": np.concatenate(out["train_labels"]),
        "test_images": images,
        "test_labels": np.asarray(batch[b"labels"]),
    }


def write_cifar100_tarball(root: pathlib.Path, seed: int = 1) -> dict[str, np.ndarray]:
    """Writes ``root/cifar-100-python.tar.gz`` (train 12, test 6); returns the test split."""
    rng = np.random.default_rng(seed)
    files, out = {}, {}
    for name, n in (("train", 12), ("test", 6)):
        batch, images = _cifar_batch(rng, n, b"fine_labels", 100)
        batch[b"coarse_labels"] = [v // 5 for v in batch[b"fine_labels"]]
        files[name] = pickle.dumps(batch, protocol=2)
        out[f"{name}_images"], out[f"{name}_labels"] = images, np.asarray(batch[b"fine_labels"])
    files["meta"] = pickle.dumps({b"fine_label_names": [b"f%d" % i for i in range(100)]})
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "cifar-100-python.tar.gz", "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def write_image_folder(root: pathlib.Path, seed: int = 2) -> dict[str, list]:
    """Writes a 3-class ImageNet-layout tree; returns ``{split: [(path, label), ...]}``.

    Training has 4 images per class, validation 2 (the last class only 1, and as PNG), of
    varied sizes; one training image is grayscale, as a few ImageNet JPEGs are.
    """
    rng = np.random.default_rng(seed)
    examples = {"train": [], "validation": []}
    for split, folder, count in (("train", "train", 4), ("validation", "val", 2)):
        for label, wnid in enumerate(CLASSES):
            (root / folder / wnid).mkdir(parents=True)
            n = 1 if (split == "validation" and label == 2) else count
            for i in range(n):
                height, width = (int(v) for v in rng.integers(20, 70, 2))
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                image = Image.fromarray(pixels)
                if split == "train" and label == 1 and i == 0:
                    image = image.convert("L")
                png = split == "validation" and label == 2
                path = root / folder / wnid / f"{wnid}_{i}.{'png' if png else 'JPEG'}"
                image.save(path, **({} if png else {"quality": 90}))
                examples[split].append((path, label))
    return examples


def _eval_split(config, split: str, batch_size: int) -> dict[str, np.ndarray]:
    batches = list(jaxsnn.data.eval_batches(config, split=split, batch_size=batch_size))
    return {k: np.concatenate([b[k][b["mask"]] for b in batches]) for k in ("image", "label")}


def _normalised(images: np.ndarray, info: jaxsnn.data.DatasetInfo) -> np.ndarray:
    return augment.normalize(images, np.float32(info.mean), np.float32(info.std))


# CIFAR ---------------------------------------------------------------------------------------


def test_cifar10_pickle_folder(tmp_path):
    arrays = write_cifar10(tmp_path / "downloads")
    config = local_config("cifar10", tmp_path / "downloads", tmp_path / "tfds", augment="none")
    info = jaxsnn.data.get_dataset_info(config)
    assert (info.train_size, info.test_size, info.num_classes) == (5 * PER_BATCH, CIFAR_TEST, 10)
    assert info.image_shape == (32, 32, 3) and info.mean == (0.4914, 0.4822, 0.4465)
    for split in ("train", "test"):
        got = _eval_split(config, split, batch_size=6)
        np.testing.assert_array_equal(got["label"], arrays[f"{split}_labels"])
        expected = _normalised(arrays[f"{split}_images"], info)
        np.testing.assert_allclose(got["image"], expected, atol=1e-6)
    source = datasets.open_split(config, "train")
    assert source.dataset_info.features["label"].names[3] == "class3"
    # The default CIFAR augmentation (crop, flip, Cutout) runs on the prepared data.
    default = local_config("cifar10", tmp_path / "downloads", tmp_path / "tfds")
    batch = next(jaxsnn.data.train_batches(default, epoch=0, batch_size=4))
    assert batch["image"].shape == (4, 32, 32, 3) and batch["label"].dtype == np.int32


def test_cifar100_tarball_uses_fine_labels(tmp_path):
    arrays = write_cifar100_tarball(tmp_path / "dl")
    config = local_config("cifar100", tmp_path / "dl", tmp_path / "tfds", augment="none")
    info = jaxsnn.data.get_dataset_info(config)
    assert (info.train_size, info.test_size, info.num_classes) == (12, 6, 100)
    got = _eval_split(config, "test", batch_size=4)
    np.testing.assert_array_equal(got["label"], arrays["test_labels"])
    np.testing.assert_allclose(got["image"], _normalised(arrays["test_images"], info), atol=1e-6)
    record = datasets.open_split(config, "test")[0]
    assert record["coarse_label"] == arrays["test_labels"][0] // 5
    # The tarball is read in place: nothing was extracted next to it.
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["cifar-100-python.tar.gz"]


def test_cifar_missing_files_say_what_to_download(tmp_path):
    config = local_config("cifar10", tmp_path / "empty", tmp_path / "tfds")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        jaxsnn.data.get_dataset_info(config)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "empty") in message
    for part in ("cifar-10-python.tar.gz", "cs.toronto.edu/~kriz/cifar.html", "config.local_dir"):
        assert part in message
    write_cifar10(tmp_path / "partial")
    (tmp_path / "partial" / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="without data_batch_3"):
        jaxsnn.data.get_dataset_info(local_config("cifar10", tmp_path / "partial", tmp_path / "t2"))


def test_cifar_corrupted_or_hostile_pickles_are_refused(tmp_path):
    write_cifar10(tmp_path / "a")
    batch = tmp_path / "a" / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(ValueError, match="test_batch: not a CIFAR-10 python batch"):
        jaxsnn.data.get_dataset_info(local_config("cifar10", tmp_path / "a", tmp_path / "t"))

    class Hostile:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    batch.write_bytes(pickle.dumps({b"data": Hostile(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="unexpected object"):
        jaxsnn.data.get_dataset_info(local_config("cifar10", tmp_path / "a", tmp_path / "t"))


# ImageNet ImageFolder ------------------------------------------------------------------------


def test_image_folder_labels_pixels_and_sizes(tmp_path):
    examples = write_image_folder(tmp_path / "imagenet")
    config = local_config("imagenet2012", tmp_path / "imagenet", tmp_path / "tfds", image_size=16)
    info = jaxsnn.data.get_dataset_info(config)
    assert (info.train_size, info.test_size, info.num_classes) == (12, 5, 3)
    assert info.image_shape == (16, 16, 3)
    source = datasets.open_split(config, "test")
    assert source.dataset_info.features["label"].names == list(CLASSES)
    for i, (path, _) in enumerate(examples["validation"]):  # Stored as the files' own bytes.
        assert source[i]["image"] == path.read_bytes()
    # Evaluation: resize to 16·256/224, centre crop 16, normalise; grayscale/PNG become RGB.
    got = _eval_split(config, "test", batch_size=4)
    np.testing.assert_array_equal(got["label"], [label for _, label in examples["validation"]])
    for image, (path, _) in zip(got["image"], examples["validation"], strict=True):
        decoded = np.asarray(Image.open(path).convert("RGB"))
        expected = _normalised(augment.resize_center_crop(decoded, size=16)[None], info)[0]
        np.testing.assert_allclose(image, expected, atol=1e-6)
    train = _eval_split(config, "train", batch_size=5)
    assert train["image"].shape == (12, 16, 16, 3)
    np.testing.assert_array_equal(train["label"], [label for _, label in examples["train"]])
    # Training: random-resized crops and flips, deterministic in (seed, epoch, step).
    first = list(jaxsnn.data.train_batches(config, epoch=0, batch_size=4))
    again = list(jaxsnn.data.train_batches(config, epoch=0, batch_size=4))
    other = list(jaxsnn.data.train_batches(config, epoch=1, batch_size=4))
    assert len(first) == 3 and first[0]["image"].shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(first[1]["image"], again[1]["image"])
    assert not np.array_equal(first[1]["image"], other[1]["image"])


def test_image_folder_missing_split_says_what_to_download(tmp_path):
    write_image_folder(tmp_path / "imagenet")
    (tmp_path / "imagenet" / "val").rename(tmp_path / "imagenet" / "validation_elsewhere")
    config = local_config("imagenet2012", tmp_path / "imagenet", tmp_path / "tfds")
    with pytest.raises(FileNotFoundError) as error:
        jaxsnn.data.get_dataset_info(config)
    message = str(error.value)
    assert "lacks val/<class>/" in message and "image-net.org" in message
    assert "ILSVRC2012_img_val.tar" in message and "\n" not in message


def test_image_folder_unknown_validation_class(tmp_path):
    write_image_folder(tmp_path / "imagenet")
    (tmp_path / "imagenet" / "val" / "n99999999").mkdir()
    config = local_config("imagenet2012", tmp_path / "imagenet", tmp_path / "tfds")
    with pytest.raises(ValueError, match=r"class folders \['n99999999'\] are not in"):
        jaxsnn.data.get_dataset_info(config)


def test_local_dir_and_its_old_name(tmp_path):
    write_cifar10(tmp_path / "a")
    old = local_config("cifar10", "", tmp_path / "tfds", idx_dir=str(tmp_path / "a"))
    assert jaxsnn.data.get_dataset_info(old).train_size == 5 * PER_BATCH
    both = local_config("cifar10", tmp_path / "a", tmp_path / "tfds", idx_dir=str(tmp_path / "b"))
    with pytest.raises(ValueError, match="config.idx_dir=.* name different folders"):
        jaxsnn.data.get_dataset_info(both)
    missing = local_config("cifar10", "", tmp_path / "t2", idx_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="set config.idx_dir to the folder"):
        jaxsnn.data.get_dataset_info(missing)


# End to end through train.py and convert.py -----------------------------------------------


def _run(args: list[str], tmp_path: pathlib.Path) -> subprocess.Popen:
    """Starts one of the scripts with TensorFlow made unimportable (a ``sitecustomize``)."""
    site = tmp_path / "no_tensorflow"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCK_TENSORFLOW)
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAX_DISABLE_MOST_OPTIMIZATIONS="1",
        PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
    )
    env.pop("XLA_FLAGS", None)
    return subprocess.Popen(
        [sys.executable, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _finish(procs: dict[str, subprocess.Popen]) -> dict[str, str]:
    outputs = {}
    for name, proc in procs.items():
        out = proc.communicate(timeout=300)[0].decode(errors="replace")
        assert proc.returncode == 0, f"{name}:\n{out[-3000:]}"
        outputs[name] = out
    return outputs


@pytest.mark.slow
def test_train_and_convert_with_the_shipped_configs(tmp_path):
    write_cifar10(tmp_path / "cifar")
    write_image_folder(tmp_path / "imagenet")
    small = ["--config.batch_size=4", "--config.eval_batch_size=4"]
    runs = {
        # The shipped configs with their data fields; tiny models keep CPU compile times short.
        "cifar10": [
            f"--config={ROOT / 'configs/cifar10_vgg16_qcfs.py'}:local_dir={tmp_path / 'cifar'}",
            "--config.model=_VGGTiny",
            "--config.data_workers=0",
        ],
        "imagenet": [
            f"--config={ROOT / 'configs/imagenet_resnet34_qcfs.py'}",
            f"--config.local_dir={tmp_path / 'imagenet'}",
            "--config.model=_ResNetTiny",
            "--config.image_size=16",
            "--config.data_workers=0",
        ],
    }
    common = {name: [*args, *small, f"--config.data_dir={tmp_path / 'tfds'}"]
              for name, args in runs.items()}  # fmt: skip
    workdir = {name: tmp_path / f"run_{name}" for name in runs}
    outputs = _finish(
        {
            name: _run(["train.py", *args, "--config.max_steps=3", f"--workdir={workdir[name]}"],
                       tmp_path)
            for name, args in common.items()
        }
    )  # fmt: skip
    assert "steps=3" in outputs["cifar10"] and "epochs=0.6 " in outputs["cifar10"]  # 3 of 5.
    assert "steps=3" in outputs["imagenet"] and "epochs=1 " in outputs["imagenet"]  # 12 / 4.
    for name in runs:
        saved = json.loads((workdir[name] / "config.json").read_text())
        assert saved["local_dir"] and saved["max_steps"] == 3
    _finish(
        {
            name: _run(["convert.py", *args, "--config.convert.T=2",
                        "--config.convert.calib_batch_size=4", f"--workdir={workdir[name]}"],
                       tmp_path)
            for name, args in common.items()
        }
    )  # fmt: skip
    for name, (dataset, test_size) in {
        "cifar10": ("cifar10", 8),
        "imagenet": ("imagenet2012", 5),
    }.items():
        results = json.loads((workdir[name] / "snn_qcfs-T2" / "results.json").read_text())
        assert results["dataset"]["name"] == dataset and results["num_examples"] == test_size
        assert results["dataset"]["num_examples"] == test_size
        assert len(results["snn_accuracy"]) == 2
