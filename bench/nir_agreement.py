"""jaxsnn vs SpikingJelly on exported NIR files over a whole test split (README "Export").

For every run folder written by ``convert.py ... --config.convert.export=nir`` (``snn.nir`` beside
``results.json``): reload the SNN, simulate it with jaxsnn and run the exported file in
SpikingJelly (:func:`jaxsnn.export.run_spikingjelly`) on every test image, and report per step t
both accuracies, the fraction of images whose class agrees, per-layer spike totals and the
fraction of (image, step) spike counts that are identical. Per-channel thresholds are re-exported
with ``thresholds='unit'`` (SpikingJelly takes one threshold per node); the file as written is
used otherwise. Writes ``bench/nir_agreement.json`` and ``bench/nir_agreement.md``::

    python train.py --config configs/fashion_mnist_cnn.py:L=4 --workdir /tmp/fm_demo
    python convert.py --config configs/fashion_mnist_cnn.py:L=4 --workdir /tmp/fm_demo \\
        --config.convert.method=qcfs --config.convert.export=nir
    python bench/nir_agreement.py /tmp/fm_demo/snn_qcfs-T32 [more run folders]

Needs the ``nir`` extra. Images come from the same pipeline ``convert.py`` evaluates on.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import jax
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxsnn import convert, data, export  # noqa: E402
from jaxsnn.cli import outputs  # noqa: E402
from jaxsnn.simulate import simulate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = (1, 2, 4, 8, 16, 32)


def _graph_path(run: str, conv, input_shape, num_steps: int, tmp: str) -> tuple[str, str]:
    """The file to run in SpikingJelly and how it was obtained."""
    path = os.path.join(run, "snn.nir")
    nir = export.nir_export.import_nir()
    graph = nir.read(path)
    uniform = all(
        np.all(node.v_threshold == node.v_threshold.ravel()[0])
        for node in graph.nodes.values()
        if isinstance(node, nir.IF)
    )
    if uniform:
        return path, "snn.nir as written"
    path = os.path.join(tmp, os.path.basename(run) + "-unit.nir")
    export.write(
        path, export.converted_to_nir(conv, input_shape, num_steps=num_steps, thresholds="unit")
    )
    return path, "re-exported with thresholds='unit' (per-channel θ)"


def measure(run: str, batch_size: int, limit: int | None) -> dict:
    """Agreement of jaxsnn and SpikingJelly on the test split for one run folder."""
    results = json.loads(open(os.path.join(run, "results.json")).read())
    config = ml_collections.ConfigDict(results["config"])
    conv, metadata = outputs.load_snn(run)
    T = int(metadata["T"])
    input_shape = (1, *results["input_shape"])
    steps = [t for t in STEPS if t <= T]
    ours_correct = np.zeros(T)
    theirs_correct = np.zeros(T)
    agree = np.zeros(T)
    spikes_ours: dict[str, float] = {}
    spikes_theirs: dict[str, float] = {}
    equal_counts: dict[str, float] = {}
    max_diff, seen, start = 0.0, 0, time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path, source = _graph_path(run, conv, input_shape, T, tmp)
        for batch in data.eval_batches(config, split="test", batch_size=batch_size):
            mask = np.asarray(batch["mask"], bool)
            images, labels = np.asarray(batch["image"])[mask], np.asarray(batch["label"])[mask]
            membrane = convert.init_membrane(conv.model, images.shape, conv.membrane_init)
            out = simulate(conv.model, conv.params, membrane, images, num_steps=T, stats=True)
            ours = np.asarray(out.cumulative)
            theirs, their_spikes = export.run_spikingjelly(path, images, T)
            ours_cls, theirs_cls = ours.argmax(-1), theirs.argmax(-1)
            ours_correct += (ours_cls == labels).sum(-1)
            theirs_correct += (theirs_cls == labels).sum(-1)
            agree += (ours_cls == theirs_cls).sum(-1)
            max_diff = max(max_diff, float(np.abs(ours[-1] - theirs[-1]).max()))
            for layer, v in out.stats.items():
                if "spikes" not in v:
                    continue
                name, mine = layer.replace("/", "_"), np.asarray(v["spikes"])
                spikes_ours[name] = spikes_ours.get(name, 0.0) + float(mine.sum())
                spikes_theirs[name] = spikes_theirs.get(name, 0.0) + float(their_spikes[name].sum())
                same = float((mine == their_spikes[name]).sum())
                equal_counts[name] = equal_counts.get(name, 0.0) + same
            seen += len(labels)
            if limit and seen >= limit:
                break
    return {
        "run": run,
        "method": results["method"],
        "T": T,
        "file": source,
        "num_examples": seen,
        "steps": steps,
        "jaxsnn_accuracy": {t: ours_correct[t - 1] / seen for t in steps},
        "spikingjelly_accuracy": {t: theirs_correct[t - 1] / seen for t in steps},
        "class_agreement": {t: agree[t - 1] / seen for t in steps},
        "recorded_accuracy": {t: results["snn_accuracy"][t - 1] for t in steps},
        "spikes": {k: [spikes_ours[k], spikes_theirs[k]] for k in spikes_ours},
        "identical_spike_counts": {k: equal_counts[k] / (seen * T) for k in equal_counts},
        "max_abs_output_difference_at_T": max_diff,
        "seconds": time.time() - start,
    }


def markdown(records: list[dict], info: dict) -> str:
    lines = [
        "# jaxsnn vs SpikingJelly on exported NIR files",
        "",
        f"{info['date']}, {info['machine']}; jax {info['jax']}, spikingjelly {info['spikingjelly']}"
        f", torch {info['torch']}. Command: `{info['command']}`.",
        "",
    ]
    for r in records:
        lines += [
            f"## `{r['method']}` (T = {r['T']}, {r['num_examples']} test images, {r['file']})",
            "",
            "| t | " + " | ".join(str(t) for t in r["steps"]) + " |",
            "|---|" + "---|" * len(r["steps"]),
        ]
        for key, label in (
            ("jaxsnn_accuracy", "jaxsnn accuracy %"),
            ("spikingjelly_accuracy", "SpikingJelly accuracy %"),
            ("class_agreement", "class agreement %"),
        ):
            row = " | ".join(f"{100 * r[key][t]:.2f}" for t in r["steps"])
            lines.append(f"| {label} | {row} |")
        lines += [
            "",
            "| layer | spikes jaxsnn | spikes SpikingJelly | identical counts |",
            "|---|---|---|---|",
        ]
        for layer, (a, b) in r["spikes"].items():
            same = 100 * r["identical_spike_counts"][layer]
            lines.append(f"| {layer} | {a:.0f} | {b:.0f} | {same:.3f} % |")
        lines += [
            "",
            f"Largest |output difference| at T: {r['max_abs_output_difference_at_T']:.3g}; "
            f"{r['seconds']:.0f} s.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders written with export=nir")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--limit", type=int, default=0, help="stop after this many images")
    parser.add_argument("--out", default=os.path.join(HERE, "nir_agreement"))
    args = parser.parse_args()
    import spikingjelly
    import torch

    try:
        from importlib.metadata import version

        sj_version = version("spikingjelly")
    except Exception:
        sj_version = getattr(spikingjelly, "__version__", "?")
    info = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, JAX {jax.default_backend()}",
        "jax": jax.__version__,
        "spikingjelly": sj_version,
        "torch": torch.__version__,
        "command": " ".join(["python", *sys.argv]),
    }
    records = [measure(run, args.batch, args.limit or None) for run in args.runs]
    with open(args.out + ".json", "w") as f:
        json.dump({"info": info, "records": records}, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(markdown(records, info))
    print(markdown(records, info))


if __name__ == "__main__":
    main()
