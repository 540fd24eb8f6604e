"""``convert_and_evaluate(config, workdir)``: the engine behind ``convert.py``.

Loads the ANN (this project's checkpoint in ``workdir``, or a PyTorch ``.pth`` of the QCFS/SRP
reference code), converts it with the registered method ``config.convert.method`` (its options
are the fields of ``config.convert`` with the method's names; unset ones take the method's
defaults), evaluates ANN and SNN on the whole test split, data-parallel over every device and
process, and writes the run folder described in :mod:`jaxsnn.cli.outputs`. Everything is
validated before anything is written.

Folders: ``<workdir>/<run name>/`` where the run name holds the method and every option that
changes the result (``snn_calib_max-T64-percentile=99.9-threshold_mode=percentile``), or
``config.convert.output_dir``. Re-running a conversion whose folder exists replaces it when the
folder records the same configuration (the same computation); a folder that records another
configuration is never replaced unless ``config.convert.overwrite`` is true.
"""

import json
import time
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from etils import epath

from jaxsnn import data, export, methods, metrics, provenance
from jaxsnn.cli import outputs
from jaxsnn.cli.evaluate import evaluate, input_encoding, summarise
from jaxsnn.cli.restore import checkpoint_request, load_ann
from jaxsnn.convert import extract_thresholds, init_membrane, validate_variables
from jaxsnn.metrics.energy import layer_macs
from jaxsnn.simulate import Direct, sweep_initial_potentials, sweep_threshold_scales
from jaxsnn.train import sharding
from jaxsnn.version import __version__

RESULTS_SCHEMA_VERSION = 2


def method_options(cc: ml_collections.ConfigDict) -> dict:
    """The complete, validated options of ``cc.method`` read from ``config.convert``."""
    method = methods.get(cc.get("method"))
    given = {o.name: cc.get(o.name) for o in method.options}
    return methods.resolve_options(method.name, given)


def validate_convert_config(config: ml_collections.ConfigDict) -> dict:
    """Checks ``config.convert``; returns the method's options (one-line ``ValueError``)."""
    if "convert" not in config:
        raise ValueError("config.convert: missing (method, T, ...); see configs/common.py")
    cc = config.convert
    if cc.get("export", "") not in ("", "nir"):
        raise ValueError(f"config.convert.export: must be '' or 'nir', got {cc.get('export')!r}")
    if cc.get("export") == "nir":
        export.import_nir("config.convert.export")
    try:
        opts = method_options(cc)
    except ValueError as err:
        text = str(err)
        raise ValueError(text if text.startswith("config.") else f"config.convert.{text}") from None
    sweep = cc.get("sweep")
    if sweep and sweep.get("kind") and sweep.get("kind") not in ("threshold", "potential"):
        raise ValueError(
            f"config.convert.sweep.kind: must be 'threshold' or 'potential', "
            f"got {sweep.get('kind')!r}"
        )
    checkpoint_request(cc)
    input_encoding(config)
    if cc.get("torch_checkpoint"):
        from jaxsnn.convert.torch_import import ARCHITECTURES

        if cc.get("torch_architecture") not in ARCHITECTURES:
            raise ValueError(
                f"config.convert.torch_architecture: must be one of {sorted(ARCHITECTURES)} "
                f"with config.convert.torch_checkpoint, got {cc.get('torch_architecture')!r}"
            )
    if config.get("activation", "qcfs") == "qcfs" or cc.get("torch_checkpoint"):
        levels = config.get("levels")
        if not isinstance(levels, int) or isinstance(levels, bool) or levels <= 0:
            raise ValueError(f"config.levels: L must be a positive integer, got {levels!r}")
    return opts


def _identity(results: Mapping) -> dict:
    """What makes two conversions the same computation: configuration, method options, data
    and the source checkpoint's content (JSON-normalised)."""
    keys = ("config", "method_options", "dataset")
    out = {k: json.loads(json.dumps(results.get(k))) for k in keys}
    (out["config"] or {}).get("convert", {}).pop("export", None)  # What is written, not computed.
    out["source_sha256"] = results.get("source_checkpoint", {}).get("sha256")
    return out


def _check_folder(folder: epath.Path, planned: Mapping, overwrite: bool) -> None:
    """Refuses to replace a folder that records another conversion (before any work is done)."""
    path = folder / "results.json"
    if not folder.exists() or overwrite:
        return
    try:
        same = _identity(json.loads(path.read_text())) == _identity(planned)
    except (OSError, ValueError):
        same = False
    if not same:
        raise FileExistsError(
            f"{folder} holds another conversion (other configuration, model or data); choose "
            "config.convert.output_dir or set config.convert.overwrite=True to replace it"
        )


def _output_folder(config, workdir, method: str, opts: Mapping) -> epath.Path:
    cc = config.convert
    name = cc.get("output_dir") or outputs.run_name(method, opts, checkpoint_request(cc))
    if not cc.get("output_dir") and input_encoding(config) is not None:
        name += "-encoding=time"
    return epath.Path(workdir) / name


# --------------------------------------------------------------------------- runs


def _check_sweep(config, conv) -> None:
    """Refuses a sweep the converted SNN cannot run (before the evaluation is spent)."""
    if not isinstance(conv.protocol, Direct):
        raise ValueError(
            "config.convert.sweep: sweeps run methods without a pre-simulation (not srp/cos)"
        )
    if input_encoding(config) is not None:
        raise ValueError("config.convert.sweep: sweeps run on direct input (encoding='direct')")


def _sweep(config, conv, batches, shard, num_steps: int) -> dict:
    sweep = config.convert.sweep
    values = jnp.asarray(list(sweep["values"]), jnp.float32)
    correct, n = None, 0.0
    for batch in batches:
        b = shard(batch)
        if sweep["kind"] == "threshold":
            membrane = init_membrane(conv.model, b["image"].shape, conv.membrane_init)
            cum = sweep_threshold_scales(
                conv.model, conv.params, membrane, b["image"], values, num_steps=num_steps
            )
        else:
            cum = sweep_initial_potentials(
                conv.model, conv.params, b["image"], values, num_steps=num_steps
            )
        c = jax.vmap(lambda x, b=b: metrics.correct_per_step(x, b["label"], b["mask"]))(cum)
        correct = c if correct is None else correct + c
        n += float(np.sum(jax.device_get(b["mask"])))
    acc = np.asarray(jax.device_get(correct)) / n
    return {"kind": sweep["kind"], "values": [float(v) for v in values], "accuracy": acc.tolist()}


def calibration_batches(config, opts, shard) -> list:
    """The method's calibration batches (``calib_batches`` × ``calib_batch_size``), sharded."""
    batches = data.calibration_batches(
        config,
        num_batches=opts["calib_batches"],
        batch_size=opts["calib_batch_size"],
        seed=config.seed,
    )
    return [shard(b) for b in batches]


class Run(NamedTuple):
    """A validated conversion request with its ANN, data description and device mesh."""

    config: ml_collections.ConfigDict
    opts: dict
    mesh: object
    info: object
    input_shape: tuple
    ann_model: object
    variables: dict
    source: dict

    def shard(self, batch):
        return sharding.shard_batch(batch, self.mesh)

    def place(self, tree):
        return sharding.replicate(tree, self.mesh)


def prepare(config: ml_collections.ConfigDict, workdir) -> Run:
    """Validates the request and loads the ANN (replicated over the devices).

    With :func:`calibration_batches`, :func:`jaxsnn.methods.convert` and :func:`evaluate_run`,
    the pieces of :func:`convert_and_evaluate` (benchmarks reuse them for many conversions of
    one ANN).
    """
    opts = validate_convert_config(config)
    mesh = sharding.make_mesh()
    sharding.check_batch_size(config.eval_batch_size, mesh, "config.eval_batch_size")
    if methods.needs_data(config.convert.method, opts):
        sharding.check_batch_size(opts["calib_batch_size"], mesh, "config.convert.calib_batch_size")
    info = data.get_dataset_info(config)
    input_shape = (1, *info.image_shape)
    ann_model, variables, source = load_ann(config, workdir, input_shape)
    try:
        validate_variables(ann_model, variables, input_shape)
    except ValueError as err:
        raise ValueError(
            f"config.dataset={config.dataset!r}: its images {info.image_shape} do not fit the "
            f"ANN from {source['path']}: {err}"
        ) from None
    variables = sharding.replicate(variables, mesh)
    return Run(config, opts, mesh, info, input_shape, ann_model, variables, source)


def evaluate_run(run: Run, conv, num_steps: int, desc: str) -> dict:
    """ANN and SNN over the whole test split: accuracies, diagnostics, energy."""
    config = run.config
    totals = evaluate(
        run.ann_model,
        run.variables,
        conv,
        data.eval_batches(config, split="test", batch_size=config.eval_batch_size),
        num_steps=num_steps,
        shard=run.shard,
        place=run.place,
        total=data.num_eval_batches(config, config.eval_batch_size, "test"),
        desc=desc,
        encoding=input_encoding(config),
    )
    macs = layer_macs(run.ann_model, run.variables, run.input_shape)
    return summarise(totals, num_steps, macs)


def convert_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
    """Converts the ANN in ``workdir`` and evaluates it; returns the results dict (also written)."""
    config = ml_collections.ConfigDict(config.to_dict())  # Private copy.
    cc = config.convert
    run = prepare(config, workdir)
    method, opts, info = cc.method, run.opts, run.info
    T = opts["T"]
    final = _output_folder(config, workdir, method, opts)
    dataset = {"name": config.dataset, "split": "test", "num_examples": info.test_size}
    planned = {
        "config": config.to_dict(),
        "method_options": opts,
        "dataset": dataset,
        "source_checkpoint": run.source,
    }
    _check_folder(final, planned, bool(cc.get("overwrite", False)))
    start = time.time()
    needs_data = methods.needs_data(method, opts)
    batches = calibration_batches(config, opts, run.shard) if needs_data else []
    logging.info("converting with %s (%d calibration batches)", method, len(batches))
    encoding = input_encoding(config)
    conv = methods.convert(method, run.ann_model, run.variables, batches, opts, encoding=encoding)
    sweeping = bool(cc.get("sweep") and cc.sweep.get("kind"))
    if sweeping:
        _check_sweep(config, conv)
    nir_graph = None  # Built before evaluating, so a method NIR cannot express fails early.
    if cc.get("export") == "nir":
        meta = {"method": method, "jaxsnn_version": __version__}
        nir_graph = export.converted_to_nir(conv, run.input_shape, num_steps=T, metadata=meta)
    thresholds = {  # Every θ finite and > 0 (with the layer's name) before anything runs.
        k: np.asarray(jax.device_get(v)).tolist()
        for k, v in extract_thresholds(conv.params).items()
    }
    converted = time.time()
    summary = evaluate_run(run, conv, T, f"{method} T={T}: evaluating")
    is_qcfs = config.get("activation", "qcfs") == "qcfs" or bool(cc.get("torch_checkpoint"))
    presim = conv.protocol.presim
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "method": method,
        "method_options": opts,
        "T": T,
        "presim": presim,
        "encoding": "direct" if encoding is None else "time",
        "fitted_to_T": methods.get(method).fitted_to_T,
        "activation": "qcfs" if is_qcfs else config.get("activation"),
        "levels": config.get("levels") if is_qcfs else None,
        "dataset": dataset,
        "model": config.get("model") if not cc.get("torch_checkpoint") else cc.torch_architecture,
        "input_shape": list(run.input_shape[1:]),
        "workdir": str(epath.Path(workdir).absolute()),
        "source_checkpoint": run.source,
        "config": config.to_dict(),
        "provenance": provenance.record(),
        "ann_accuracy": summary["ann_accuracy"],
        "snn_accuracy": summary["snn_accuracy"],
        "latency_steps": [presim + t for t in range(1, T + 1)],
        "num_examples": summary["num_examples"],
        "thresholds": thresholds,
        "spikes_per_image": sum(v["spikes_per_image"] for v in summary["layers"].values()),
        "layers": summary["layers"],
        "energy": summary["energy"],
        "method_fields": dict(conv.fields),
        "seconds": {"conversion": converted - start},
    }
    for key in ("iat", "srp_mask_fraction", "compensated_accuracy"):
        if key in summary:
            results[key] = summary[key]
    if sweeping:
        eval_batches = data.eval_batches(config, split="test", batch_size=config.eval_batch_size)
        results["sweep"] = _sweep(config, conv, eval_batches, run.shard, T)
    results["seconds"]["evaluation"] = time.time() - converted
    if jax.process_index() == 0:
        spec = outputs.model_spec(config, info.num_classes, run.source)
        with outputs.staged(final, overwrite=True) as tmp:
            outputs.save_snn(tmp, conv, outputs.snn_metadata(conv, results, spec))
            (tmp / "results.json").write_text(json.dumps(results, indent=1))
            if nir_graph is not None:
                export.write(tmp / "snn.nir", nir_graph)
            outputs.write_plots(tmp, results)
    results["output_dir"] = str(final)
    if jax.process_index() == 0:
        print_summary(results)
    return results


def evaluate_saved(out_dir) -> dict:
    """Reloads the SNN in a run folder (any method) and evaluates it again on the test split.

    The ANN checkpoint and data come from the folder's ``results.json``; returns the summary
    (``snn_accuracy`` per step, layers, energy, IAT/compensation) of the reloaded SNN.
    """
    out_dir = epath.Path(out_dir)
    recorded = json.loads((out_dir / "results.json").read_text())
    config = ml_collections.ConfigDict(recorded["config"])
    if recorded["source_checkpoint"].get("kind") == "jaxsnn":
        config.convert.checkpoint = str(recorded["source_checkpoint"]["step"])
    run = prepare(config, recorded["workdir"])
    conv, metadata = outputs.load_snn(out_dir)
    return evaluate_run(run, conv, metadata["T"], f"{metadata['method']}: re-evaluating")


def rerun(results_path, output_dir: str | None = None) -> dict:
    """Repeats the conversion recorded in a ``results.json``, from that file alone.

    The configuration, the ANN run folder and the checkpoint step come from the file; the
    checkpoint's content hash must still match. Writes to ``output_dir`` (a folder name inside
    the same run folder; default ``<original>-rerun``) and returns the new results.
    """
    path = epath.Path(results_path)
    if not path.exists():
        raise FileNotFoundError(f"--rerun: no such file {path}")
    old = json.loads(path.read_text())
    if old.get("schema_version") != RESULTS_SCHEMA_VERSION or "config" not in old:
        raise ValueError(f"--rerun: {path} does not record a configuration (older jaxsnn?)")
    config = ml_collections.ConfigDict(old["config"])
    source = old["source_checkpoint"]
    if source.get("kind") == "jaxsnn":
        config.convert.checkpoint = str(source["step"])
    config.convert.output_dir = output_dir or f"{path.parent.name}-rerun"
    config.convert.overwrite = True
    new = convert_and_evaluate(config, old["workdir"])
    if new["source_checkpoint"].get("sha256") != source.get("sha256"):
        raise ValueError(
            f"--rerun: the checkpoint {source.get('path')} changed since {path} was written"
        )
    return new


def print_summary(results: Mapping) -> None:
    """The console table: accuracy per step (powers of two, multiples of 8, T), spikes, energy."""
    L = results["levels"]
    net = f"L={L}" if L is not None else f"{results['activation']} ANN (no L)"
    print(
        f"\nmethod={results['method']}  T={results['T']}  {net}  "
        f"ANN accuracy: {100 * results['ann_accuracy']:.2f}%  -> {results.get('output_dir', '')}"
    )
    fitted = results.get("fitted_to_T", False)
    print(f"{'t':>5} {'latency':>8} {'SNN acc %':>10} {'gap':>7}")
    for t, (lat, acc) in enumerate(zip(results["latency_steps"], results["snn_accuracy"]), 1):
        if t in (1, 2, 3, 4) or t & (t - 1) == 0 or t == results["T"] or t % 8 == 0:
            gap = 100 * (acc - results["ann_accuracy"])
            mark = "*" if fitted and t < results["T"] else ""
            print(f"{t:>5} {lat:>8} {100 * acc:>10.2f} {gap:>+7.2f}{mark}")
    if fitted:
        print(
            f"  * this conversion is fitted to T={results['T']}; its accuracy at t < T is not "
            "what a conversion for t would give (convert with that T instead)"
        )
    if "compensated_accuracy" in results:
        print(f"coding-compensated readout at t=T: {100 * results['compensated_accuracy']:.2f}%")
    if "iat" in results:
        iat = results["iat"]
        print(
            f"IAT early exit: {100 * iat['accuracy']:.2f}% with {iat['mean_timesteps']:.2f} "
            "steps on average"
        )
    e = results["energy"]
    print(
        f"spikes/image: {results['spikes_per_image']:.0f}   energy/image: ANN "
        f"{e['ann_energy_mj']:.4f} mJ, SNN {e['snn_energy_mj']:.4f} mJ (T={results['T']})"
    )
