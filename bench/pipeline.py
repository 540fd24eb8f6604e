r"""Input-pipeline throughput: the old thread pool against grain, with 0, 1 and 2 workers.

    python -m bench.pipeline            # ~10 min on 2 cores: bench/pipeline.{json,md}
    python -m bench.pipeline --quick    # ~3 min: one round of shorter measurements

Workloads (training batches, each the work of `jaxsnn.data.train_batches`: read the records, decode,
augment, normalise):

* ``fashion_mnist``: the real Fashion-MNIST IDX files (Debian package ``dataset-fashion-mnist``) if
  installed, otherwise generated ones of the same size; no augmentation (the demo's setting).
* ``cifar_crop_flip_cutout`` / ``cifar_autoaugment``: CIFAR-10-shaped python pickles (random
  pixels, 10 000 images), prepared by `jaxsnn.data.cifar`; crop + flip + Cutout, and crop + flip +
  AutoAugment + Cutout.
* ``imagenet_jpeg``: an ImageFolder tree of 480 JPEGs of 300-600 px sides and ImageNet-like file
  sizes (smooth random images, quality 90), prepared by `jaxsnn.data.image_folder`; JPEG decode +
  RandomResizedCrop 224 + flip.

``old`` is the pipeline this project had before grain: a pool of ``workers`` threads, up to
``workers + 2`` batches in flight, each thread building whole batches with the same read /
decode / augment code (``workers = 0``: inline). ``grain`` is `jaxsnn.data.train_batches`: grain
worker processes (``workers = 0``: inline). Each configuration is measured in steady state (the
batches after the first), in ``rounds`` rounds that alternate old and grain, reporting the
median: images/s of wall time, and CPU milliseconds per image summed over the main process and its
worker processes. Wall-time rates depend on how many cores are free (on a shared 2-core machine:
few); CPU time per image does not, and it is what sizes a host: cores = (images/s the accelerator
consumes) × (CPU seconds per image). ``startup_s`` is the time to the first batch (grain starts its
worker processes then, once per run). The Markdown file works out the cores per accelerator.
"""

import argparse
import collections
import concurrent.futures
import itertools
import json
import os
import pathlib
import pickle
import tempfile
import time

import ml_collections
import numpy as np
import psutil
from PIL import Image

from bench.common import machine_info
from jaxsnn.data import datasets, idx, loader, pipeline

OUT = pathlib.Path(__file__).resolve().parent / "pipeline"
WORKERS = (0, 1, 2)
PREFETCH = 2

# Accelerator training rates for the cores arithmetic. None is measured here (no GPU was lent to
# this project); they are the published ResNet-50 figure scaled by multiply-adds, stated as such.
RESNET50_A100_AMP = 2470  # img/s, 1x A100 80GB, mixed precision: NVIDIA DeepLearningExamples,
# PyTorch ResNet-50 v1.5 README, "Training performance: NVIDIA DGX A100 (8x A100 80GB)".
GMACS = {"resnet50": 3.8, "resnet34": 3.6, "vgg16_cifar": 0.313}  # He et al. 2016 Table 1; VGG-16
# on 32x32 inputs, summed over its 13 conv layers.


def _smooth_image(rng: np.random.Generator, height: int, width: int) -> Image.Image:
    """A photo-like test image: upsampled coarse noise plus fine grain (JPEG ~ ImageNet sizes)."""
    coarse = rng.integers(0, 256, (height // 24 + 2, width // 24 + 2, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    grain = rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8))


def make_cifar(root: pathlib.Path, rng: np.random.Generator) -> pathlib.Path:
    folder = root / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, n in [*((f"data_batch_{i}", 2000) for i in range(1, 6)), ("test_batch", 1000)]:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder.parent


def make_imagenet(root: pathlib.Path, rng: np.random.Generator) -> tuple[pathlib.Path, float]:
    """Writes the JPEG tree; returns it and the mean file size in kB."""
    sizes = []
    for split, per_class in (("train", 48), ("val", 2)):
        for c in range(10):
            folder = root / "imagenet" / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                height, width = (int(v) for v in rng.integers(300, 600, 2))
                path = folder / f"{i}.JPEG"
                _smooth_image(rng, height, width).save(path, quality=90)
                sizes.append(path.stat().st_size)
    return root / "imagenet", float(np.mean(sizes) / 1e3)


def make_idx(root: pathlib.Path, rng: np.random.Generator) -> pathlib.Path:
    folder = root / "fashion"
    folder.mkdir()
    for prefix, n in (("train", 60000), ("t10k", 1000)):
        for kind, array in (
            ("images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
            ("labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8)),
        ):
            header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
            (folder / f"{prefix}-{kind}").write_bytes(header + array.tobytes())
    return folder


def _config(dataset: str, local_dir, data_dir, augment: str | None) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(dataset=dataset, local_dir=str(local_dir), data_dir=str(data_dir), augment=augment,
             seed=0, data_prefetch=PREFETCH, num_epochs=1000, image_size=224)
    )  # fmt: skip


def old_batches(config, batch_size: int, workers: int):
    """The thread pool this project used before grain, over the same batch-building code."""
    source = datasets.open_split(config, "train")
    steps = len(source) // batch_size
    rows = pipeline.local_rows(batch_size)
    plan = pipeline.make_plan(config, source, train=True)
    shape = tuple(datasets.image_shape(config, source))
    select = pipeline._TrainRows(0, len(source), steps, rows, batch_size)
    read = pipeline._Read(source)
    build = pipeline._Preprocess(plan, pipeline._Streams(0, 1, 4), rows, shape)

    def make(step):
        return build(read(select(step)))

    items = itertools.count()
    if workers == 0:
        yield from map(make, items)
        return
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending = collections.deque(
            pool.submit(make, i) for i in itertools.islice(items, workers + PREFETCH)
        )
        while True:
            batch = pending.popleft().result()
            pending.append(pool.submit(make, next(items)))
            yield batch


def grain_batches(config, batch_size: int, workers: int):
    """`jaxsnn.data.train_batches`, epoch after epoch (the same worker processes throughout)."""
    config = ml_collections.ConfigDict({**config.to_dict(), "data_workers": workers})
    for epoch in itertools.count():
        yield from pipeline.train_batches(config, epoch=epoch, batch_size=batch_size)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its live children (grain's workers)."""
    total = 0.0
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(batches, batch_size: int, workers: int, seconds: float, min_batches: int) -> dict:
    """Startup (to the first batch), steady images/s and CPU ms per image of a batch iterator.

    After the first batch, the other workers may still be starting (importing JAX), so the
    measurement waits a second and then drains every batch that could have been built ahead
    meanwhile before it starts the clocks.
    """
    load = os.getloadavg()[0]
    start = time.perf_counter()
    next(batches)
    startup = time.perf_counter() - start
    time.sleep(1.0)
    for _ in range((workers + 1) * (PREFETCH + 1) + 2):
        next(batches)
    count, cpu, start = 0, cpu_seconds(), time.perf_counter()
    while count < min_batches or time.perf_counter() - start < seconds:
        next(batches)
        count += 1
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    batches.close()
    loader.close_streams()
    return {
        "images_per_s": count * batch_size / elapsed,
        "cpu_ms_per_image": 1e3 * cpu / (count * batch_size),
        "startup_s": startup,
        "batches": count,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def median_of(rounds: list[dict]) -> dict:
    """The per-field median over rounds (kept: every round)."""
    keys = ("images_per_s", "cpu_ms_per_image", "startup_s")
    out = {k: float(np.median([r[k] for r in rounds])) for k in keys}
    out["rounds"] = rounds
    return out


def _cores_table(results: dict) -> list[str]:
    """Markdown: cores needed per accelerator, with the arithmetic."""
    r50 = RESNET50_A100_AMP
    rows = [
        (
            "ResNet-34 / ImageNet, torchvision stem (`:stem=imagenet`)",
            r50 * GMACS["resnet50"] / GMACS["resnet34"],
            f"{r50} × {GMACS['resnet50']}/{GMACS['resnet34']}",
            "imagenet_jpeg",
        ),
        (
            "ResNet-34 / ImageNet, reference 3×3 stem (config default, ~16× the MACs)",
            r50 * GMACS["resnet50"] / GMACS["resnet34"] / 16,
            f"{r50} × {GMACS['resnet50']}/{GMACS['resnet34']} / 16",
            "imagenet_jpeg",
        ),
        (
            "VGG-16 / CIFAR-10 (crop, flip, AutoAugment, Cutout)",
            r50 * GMACS["resnet50"] / GMACS["vgg16_cifar"],
            f"{r50} × {GMACS['resnet50']}/{GMACS['vgg16_cifar']}",
            "cifar_autoaugment",
        ),
    ]
    lines = [
        "| model / data | accelerator img/s (estimate) | CPU ms per image (measured: grain, "
        "1 worker, main process included) | cores = img/s × CPU s per image |",
        "|---|---|---|---|",
    ]
    for label, rate, formula, workload in rows:
        cpu_ms = results[workload]["grain"]["1"]["cpu_ms_per_image"]
        lines.append(
            f"| {label} | {formula} ≈ {rate:,.0f} | {cpu_ms:.3f} (`{workload}`) | "
            f"{rate:,.0f} × {cpu_ms / 1e3:.6f} ≈ **{rate * cpu_ms / 1e3:.1f}** |"
        )
    return lines


def write_markdown(record: dict, path: pathlib.Path) -> None:
    results = record["results"]
    lines = [
        "# Input pipeline throughput: old thread pool vs grain",
        "",
        f"Measured {record['date']} with `python -m bench.pipeline{record['flags']}` on "
        f"{record['machine']['nproc']} × {record['machine']['cpu_model']} (load average "
        f"{record['load_start']:.1f} at the start, {record['load_end']:.1f} at the end; other "
        "jobs were running). Images/s in steady state, batch sizes "
        + ", ".join(f"`{n}` {r['batch_size']}" for n, r in results.items())
        + f"; ImageNet-shaped JPEGs average {record['jpeg_kb']:.0f} kB.",
        "",
        "| workload | workers | old (threads) img/s | grain (processes) img/s | grain ÷ old "
        "| old CPU ms/img | grain CPU ms/img | grain startup s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rec in results.items():
        for w in WORKERS:
            old, new = rec["old"][str(w)], rec["grain"][str(w)]
            lines.append(
                f"| `{name}` | {w} | {old['images_per_s']:,.0f} | {new['images_per_s']:,.0f} | "
                f"{new['images_per_s'] / old['images_per_s']:.2f} | "
                f"{old['cpu_ms_per_image']:.3f} | {new['cpu_ms_per_image']:.3f} | "
                f"{new['startup_s']:.1f} |"
            )
    lines += [
        "",
        "## Cores per accelerator",
        "",
        "cores = (images/s the accelerator trains) ÷ (images/s one core prepares). The accelerator "
        "rates are estimates, not measurements: NVIDIA's published 1× A100 80GB mixed-precision "
        f"ResNet-50 training rate ({RESNET50_A100_AMP} img/s, DeepLearningExamples) scaled by "
        "multiply-adds per image (He et al. 2016, Table 1: ResNet-50 3.8 G, ResNet-34 3.6 G; "
        "VGG-16 on 32×32 inputs 0.313 G). Small CIFAR images use a GPU less efficiently, so the "
        "VGG-16 figure is an upper bound. On your machine, use the `images_per_s` that `train.py` "
        "prints. The CPU time is that of this machine's cores (see above); it includes grain's "
        "cost of handing batches from the workers to the training process. Cores of a typical "
        "GPU host are faster per clock and run without other jobs, so the counts are upper "
        "bounds for the same work.",
        "",
        *_cores_table(results),
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    parser.add_argument("--out", default=str(OUT), help="output path without extension")
    args = parser.parse_args()
    seconds, min_batches, rounds = (2.0, 3, 1) if args.quick else (4.0, 5, 2)
    rng = np.random.default_rng(0)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        fashion = pathlib.Path(datasets.DEFAULT_IDX_DIR)
        if not idx.has_idx_files(fashion):
            fashion = make_idx(root, rng)
        imagenet, jpeg_kb = make_imagenet(root, rng)
        cifar = make_cifar(root, rng)
        tfds_dir = root / "tfds"
        workloads = {
            "fashion_mnist": (_config("fashion_mnist", fashion, tfds_dir, "none"), 128),
            "cifar_crop_flip_cutout": (
                _config("cifar10", cifar, tfds_dir, "crop_flip_cutout"),
                128,
            ),
            "cifar_autoaugment": (_config("cifar10", cifar, tfds_dir, "autoaugment_cutout"), 128),
            "imagenet_jpeg": (_config("imagenet2012", imagenet, tfds_dir, "crop_flip"), 32),
        }
        results = {}
        for name, (config, batch_size) in workloads.items():
            datasets.get_dataset_info(config)  # Prepares the data outside the measurements.
            results[name] = {"batch_size": batch_size, "old": {}, "grain": {}}
            for workers in WORKERS:
                runs = {"old": [], "grain": []}
                for r in range(rounds):  # Alternate which goes first, against drifting load.
                    kinds = ("old", "grain") if r % 2 == 0 else ("grain", "old")
                    for kind in kinds:
                        make = old_batches if kind == "old" else grain_batches
                        runs[kind].append(
                            measure(make(config, batch_size, workers), batch_size, workers,
                                    seconds, min_batches)
                        )  # fmt: skip
                for kind, got in runs.items():
                    got = results[name][kind][str(workers)] = median_of(got)
                    print(f"{name:24s} {kind:5s} workers={workers}: {got['images_per_s']:8.0f} "
                          f"img/s, {got['cpu_ms_per_image']:.3f} CPU ms/img "
                          f"(startup {got['startup_s']:.1f} s)", flush=True)  # fmt: skip
    record = {
        "benchmark": "pipeline",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "flags": " --quick" if args.quick else "",
        "machine": machine_info(),
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "jpeg_kb": jpeg_kb,
        "results": results,
    }
    out = pathlib.Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    write_markdown(record, out.with_suffix(".md"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
