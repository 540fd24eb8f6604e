"""``convert_and_evaluate(config, workdir)``: the engine behind ``convert.py``.

Loads the ANN (this project's Orbax checkpoint in ``workdir``, or a PyTorch ``.pth`` of the QCFS/SRP
reference code), converts it with ``config.convert.method``, evaluates ANN and SNN on the whole
test split (data-parallel on the training mesh) and writes, atomically, to
``workdir/<config.convert.output_dir or 'snn_<method>'>/``:

- ``results.json`` (schema in README: accuracies per timestep, latency, thresholds, per-layer
  diagnostics, spikes, energy and its constants, method fields);
- ``snn_checkpoint/`` (Orbax: SNN params) and ``snn_metadata.json`` (method, L, T, θ, source);
- ``accuracy.png``, ``firing_rate.png``, ``activation_error.png`` (+ ``sweep.png`` for sweeps).

Everything is validated before anything is written; outputs are staged in a temporary directory
and moved into place at the end, so a failure leaves no half-written result.
"""

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from jaxsnn import data, metrics
from jaxsnn.convert import stages
from jaxsnn.convert.evaluate import SNNSpec, evaluate, summarise
from jaxsnn.metrics import plots
from jaxsnn.metrics.energy import layer_macs
from jaxsnn.neurons import IF
from jaxsnn.simulate import sweep_initial_potentials, sweep_threshold_scales
from jaxsnn.train import checkpoint as ckpt_lib
from jaxsnn.train import sharding
from jaxsnn.train import state as state_lib
from jaxsnn.train.loop import build_model

PLAIN_METHODS = ("qcfs", "zero", "srp")
RESULTS_SCHEMA_VERSION = 1


def _positive_int(value, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"config.convert.{field}: must be a positive integer, got {value!r}")
    return value


def validate_convert_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Checks ``config.convert`` and returns it; one-line ``ValueError`` naming the field."""
    if "convert" not in config:
        raise ValueError("config.convert: missing (T, method, presim); see configs/common.py")
    cc = config.convert
    _positive_int(cc.get("T"), "T")
    method = cc.get("method")
    if method not in PLAIN_METHODS + _calibration_methods():
        raise ValueError(
            f"config.convert.method: unknown method {method!r}; choose one of "
            f"{list(PLAIN_METHODS + _calibration_methods())}"
        )
    presim = cc.get("presim", 0)
    if not isinstance(presim, int) or isinstance(presim, bool) or presim < 0:
        raise ValueError(f"config.convert.presim: tau must be an integer >= 0, got {presim!r}")
    sweep = cc.get("sweep")
    if sweep and sweep.get("kind") and sweep.get("kind") not in ("threshold", "potential"):
        raise ValueError(
            f"config.convert.sweep.kind: must be 'threshold' or 'potential', "
            f"got {sweep.get('kind')!r}"
        )
    _checkpoint_request(cc)
    if cc.get("torch_checkpoint"):
        from jaxsnn.convert.torch_import import ARCHITECTURES

        if cc.get("torch_architecture") not in ARCHITECTURES:
            raise ValueError(
                f"config.convert.torch_architecture: must be one of {sorted(ARCHITECTURES)} "
                f"with config.convert.torch_checkpoint, got {cc.get('torch_architecture')!r}"
            )
    levels = config.get("levels")
    if not isinstance(levels, int) or isinstance(levels, bool) or levels <= 0:
        raise ValueError(f"config.levels: L must be a positive integer, got {levels!r}")
    return cc


def _checkpoint_request(cc) -> str | int:
    """``config.convert.checkpoint`` as ``'best'``, ``'latest'`` or a step number."""
    which = cc.get("checkpoint", "best")
    if isinstance(which, str) and which.isdigit():
        return int(which)
    if which in ("best", "latest") or (
        isinstance(which, int) and not isinstance(which, bool) and which >= 0
    ):
        return which
    raise ValueError(
        f"config.convert.checkpoint: must be 'best', 'latest' or a step number, got {which!r}"
    )


def _calibration_methods() -> tuple[str, ...]:
    try:
        from jaxsnn.calibrate import pipeline as calib
    except ImportError:
        return ()
    return tuple(getattr(calib, "METHODS", ()))


# --------------------------------------------------------------------------- loading the ANN


def load_ann(config: ml_collections.ConfigDict, workdir, input_shape):
    """Returns ``(ann_model, variables, source)`` from a ``.pth`` or ``workdir``'s checkpoint.

    ``config.convert.checkpoint`` picks the step (``'best'``, ``'latest'`` or a number); a
    corrupted best/latest one falls back to the newest readable step (see
    :func:`_restore_ann_state`; ``source['skipped_unreadable']`` lists the skipped steps).
    """
    cc = config.convert
    info = data.get_dataset_info(config)
    if cc.get("torch_checkpoint"):
        from jaxsnn.convert.torch_import import import_torch_checkpoint

        try:
            model, variables = import_torch_checkpoint(
                cc.torch_checkpoint,
                cc.torch_architecture,
                num_classes=info.num_classes,
                levels=config.levels,
                input_size=tuple(input_shape[1:3]),
            )
        except (FileNotFoundError, ValueError) as err:
            raise type(err)(f"config.convert.torch_checkpoint: {err}") from None
        return model, variables, {"kind": "pytorch", "path": str(cc.torch_checkpoint)}
    model = build_model(config, info.num_classes)
    ckpt_dir = epath.Path(workdir) / "checkpoints"
    if not ckpt_dir.exists():
        raise FileNotFoundError(
            f"no ANN checkpoint in {ckpt_dir}: run train.py with the same "
            "--workdir first (or set config.convert.torch_checkpoint)"
        )
    mngr = ckpt_lib.make_manager(
        workdir, keep=max(config.get("keep_checkpoints", 3), 1), enable_async=False
    )
    steps = sorted(mngr.all_steps(), reverse=True)
    if not steps:
        raise FileNotFoundError(f"no ANN checkpoint in {ckpt_dir}: run train.py first")
    which = _checkpoint_request(cc)
    if which == "best":
        step = mngr.best_step()
    elif which == "latest":
        step = mngr.latest_step()
    elif which not in steps:
        raise FileNotFoundError(
            f"config.convert.checkpoint={which}: no such step in {ckpt_dir} (steps: "
            f"{sorted(steps)})"
        )
    else:
        step = which
    step = steps[0] if step is None else step
    tx = state_lib.create_optimizer(config, 1)
    init_fn = state_lib.make_init_fn(model, tx, input_shape, key=jax.random.key(0))
    state, used, unreadable = _restore_ann_state(
        config, mngr, step, jax.eval_shape(init_fn), fallback=which in ("best", "latest")
    )
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    source = {"kind": "jaxsnn", "path": str(ckpt_dir / str(used)), "step": int(used)}
    if unreadable:
        source["skipped_unreadable"] = unreadable
    return model, variables, source


def _restore_ann_state(config, mngr, step: int, target, *, fallback: bool):
    """Restores checkpoint ``step``, or (``fallback``) the newest readable one if it is corrupted.

    Like training's resume (:func:`jaxsnn.train.checkpoint.restore_or_init`), a checkpoint that
    fails to restore while its stored shapes fit the model is treated as corrupted: with
    ``fallback`` (``'best'``/``'latest'``) the next newest readable one is used with a warning;
    nothing is moved (``train.py`` quarantines it on its next resume). Shapes that do not fit the
    model (another architecture or dataset) are an error naming the config fields.

    Returns:
      ``(state, step_used, unreadable_steps)``.
    """
    directory = epath.Path(mngr.directory)
    others = [s for s in sorted(mngr.all_steps(), reverse=True) if s != step]

    def refuse(candidate, mismatch):
        return ValueError(
            f"checkpoint {directory / str(candidate)} does not fit config.model="
            f"{config.model!r} on config.dataset={config.dataset!r}: {mismatch}"
        )

    state, used, failed = ckpt_lib.restore_first_readable(
        mngr, [step] + (others if fallback else []), target, refuse, config
    )
    if state is not None:
        if failed:
            logging.warning(
                "checkpoint %s is unreadable (%s); converting step %d instead",
                directory / str(step), ckpt_lib.first_line(failed[0][1]), used,
            )  # fmt: skip
        return state, used, [s for s, _ in failed]
    hint = (
        "no other checkpoint there is readable either"
        if fallback
        else f"choose another with config.convert.checkpoint (steps: {sorted(mngr.all_steps())})"
    )
    raise ValueError(
        f"checkpoint {directory / str(step)} is unreadable (corrupted?): "
        f"{ckpt_lib.first_line(failed[0][1])}; {hint}"
    )


# --------------------------------------------------------------------------- building the SNN


def build_snn(config, ann_model, variables, input_shape) -> tuple[SNNSpec, dict]:
    """Converts with ``config.convert.method``; returns the spec and method-specific fields."""
    cc = config.convert
    method, T = cc.method, cc.T
    if method in PLAIN_METHODS:
        stages.validate_variables(ann_model, variables, input_shape)
        snn, params = stages.convert(
            ann_model, variables, masked=(method == "srp"), track_counts=True, neuron=IF()
        )
        init = "zero" if method == "zero" else "half"
        presim = cc.get("presim", 0) if method == "srp" else 0
        return SNNSpec(snn, params, init, T, presim), {"presim": presim} if method == "srp" else {}
    from jaxsnn.calibrate import pipeline as calib

    batches = data.calibration_batches(
        config,
        num_batches=cc.get("calib_batches", 7),
        batch_size=cc.get("calib_batch_size", 128),
        seed=config.seed,
    )
    result = calib.calibrate(cc, ann_model, variables, batches, num_steps=T)
    stages.extract_thresholds(result.params)  # Every calibrated θ finite and > 0, before any run.
    fields = dict(result.fields)
    spec = SNNSpec(
        result.model,
        result.params,
        result.membrane_init,
        T,
        0,
        int(fields.get("max_spikes_overall", 1)),
        iat_thresholds=fields.get("iat_thresholds"),
        iat_metric=cc.get("iat_metric", "entropy"),
    )
    return spec, fields


# --------------------------------------------------------------------------- outputs


def _run_sweep(config, spec: SNNSpec, batches, mesh, total) -> dict:
    sweep = config.convert.sweep
    values = jnp.asarray(list(sweep["values"]), jnp.float32)
    correct, n = None, 0.0
    for batch in batches:
        b = sharding.shard_batch(batch, mesh)
        if sweep["kind"] == "threshold":
            membrane = stages.init_membrane(spec.model, b["image"].shape, spec.membrane_init)
            cum = sweep_threshold_scales(
                spec.model, spec.params, membrane, b["image"], values, num_steps=spec.num_steps
            )
        else:
            cum = sweep_initial_potentials(
                spec.model, spec.params, b["image"], values, num_steps=spec.num_steps
            )
        c = jax.vmap(lambda x: metrics.correct_per_step(x, b["label"], b["mask"]))(cum)
        correct = c if correct is None else correct + c
        n += float(np.sum(batch["mask"]))
    acc = np.asarray(correct) / n
    return {"kind": sweep["kind"], "values": [float(v) for v in values], "accuracy": acc.tolist()}


def _save_snn(out_dir: epath.Path, spec: SNNSpec, metadata: dict) -> None:
    ckptr = ocp.StandardCheckpointer()
    ckptr.save((out_dir / "snn_checkpoint").absolute(), spec.params)
    ckptr.wait_until_finished()
    if isinstance(spec.membrane_init, Mapping):
        np.savez(
            out_dir / "membrane_init.npz",
            **{k: np.asarray(v) for k, v in spec.membrane_init.items()},
        )
    (out_dir / "snn_metadata.json").write_text(json.dumps(metadata, indent=1))


def load_snn(out_dir, config: ml_collections.ConfigDict):
    """Reloads a converted SNN written by :func:`convert_and_evaluate` (no re-conversion).

    Returns ``(snn_model, params, metadata)`` for the plain methods (qcfs, zero, srp); simulate
    it with ``membrane_init`` ``'zero'`` for ``zero`` and ``'half'`` otherwise (SRP: use
    :func:`jaxsnn.simulate.simulate_srp` with ``metadata['presim']``).
    """
    out_dir = epath.Path(out_dir)
    meta_path = out_dir / "snn_metadata.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"no converted SNN in {out_dir} (missing snn_metadata.json)")
    metadata = json.loads(meta_path.read_text())
    if metadata["method"] not in PLAIN_METHODS:
        raise ValueError(
            f"load_snn supports {PLAIN_METHODS}; {metadata['method']!r} SNNs are "
            "rebuilt by re-running convert.py"
        )
    ann = build_model(config, data.get_dataset_info(config).num_classes)
    snn = stages.make_snn_model(ann, masked=metadata["method"] == "srp", track_counts=True)
    params = ocp.StandardCheckpointer().restore((out_dir / "snn_checkpoint").absolute())
    return snn, params, metadata


def _print_table(results: dict) -> None:
    print(
        f"\nmethod={results['method']}  T={results['T']}  L={results['levels']}  "
        f"ANN accuracy: {100 * results['ann_accuracy']:.2f}%"
    )
    print(f"{'t':>5} {'latency':>8} {'SNN acc %':>10} {'gap':>7}")
    for t, (lat, acc) in enumerate(zip(results["latency_steps"], results["snn_accuracy"]), 1):
        if t in (1, 2, 3, 4) or t & (t - 1) == 0 or t == results["T"] or t % 8 == 0:
            gap = 100 * (acc - results["ann_accuracy"])
            print(f"{t:>5} {lat:>8} {100 * acc:>10.2f} {gap:>+7.2f}")
    e = results["energy"]
    print(
        f"spikes/image: {results['spikes_per_image']:.0f}   energy/image: ANN "
        f"{e['ann_energy_mj']:.4f} mJ, SNN {e['snn_energy_mj']:.4f} mJ (T={results['T']})"
    )


def convert_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
    """Converts the ANN in ``workdir`` and evaluates it; returns the results dict (also written)."""
    cc = validate_convert_config(config)
    mesh = sharding.make_mesh()
    sharding.check_batch_size(config.eval_batch_size, mesh, "config.eval_batch_size")
    info = data.get_dataset_info(config)
    input_shape = (1, *info.image_shape)
    ann_model, variables, source = load_ann(config, workdir, input_shape)
    try:
        stages.validate_variables(ann_model, variables, input_shape)
    except ValueError as err:
        raise ValueError(
            f"config.dataset={config.dataset!r}: its images {info.image_shape} do not fit the "
            f"ANN from {source['path']}: {err}"
        ) from None
    start = time.time()
    spec, fields = build_snn(config, ann_model, variables, input_shape)

    def batches():
        return data.eval_batches(config, split="test", batch_size=config.eval_batch_size)

    total = data.num_eval_batches(config, config.eval_batch_size, "test")
    totals = evaluate(
        ann_model,
        variables,
        spec,
        batches(),
        total=total,
        shard=lambda b: sharding.shard_batch(b, mesh),
        progress=cc.get("progress", True) and sys.stderr.isatty(),
    )
    summary = summarise(totals, spec, layer_macs(ann_model, variables, input_shape))
    thresholds = {
        k: np.asarray(v).tolist() for k, v in stages.extract_thresholds(spec.params).items()
    }
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "method": cc.method,
        "T": spec.num_steps,
        "presim": spec.presim,
        "levels": config.get("levels"),
        "dataset": config.dataset,
        "model": config.model,
        "source_checkpoint": source,
        "ann_accuracy": summary["ann_accuracy"],
        "snn_accuracy": summary["snn_accuracy"],
        "latency_steps": [spec.presim + t for t in range(1, spec.num_steps + 1)],
        "num_examples": summary["num_examples"],
        "thresholds": thresholds,
        "spikes_per_image": sum(v["spikes_per_image"] for v in summary["layers"].values()),
        "layers": summary["layers"],
        "energy": summary["energy"],
        "method_fields": fields,
        "seconds": None,
    }
    for key in ("iat", "srp_mask_fraction"):
        if key in summary:
            results[key] = summary[key]
    if cc.get("sweep") and cc.sweep.get("kind"):
        results["sweep"] = _run_sweep(config, spec, batches(), mesh, total)
    results["seconds"] = time.time() - start
    _write_outputs(config, workdir, spec, results)
    _print_table(results)
    return results


def _write_outputs(config, workdir, spec: SNNSpec, results: dict) -> None:
    cc = config.convert
    final = epath.Path(workdir) / (cc.get("output_dir") or f"snn_{cc.method}")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = epath.Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        metadata = {
            k: results[k]
            for k in (
                "method",
                "T",
                "presim",
                "levels",
                "thresholds",
                "source_checkpoint",
                "dataset",
                "model",
            )
        }
        _save_snn(tmp, spec, metadata)
        (tmp / "results.json").write_text(json.dumps(results, indent=1))
        label = f"{cc.method}, T={spec.num_steps}"
        plots.plot_accuracy(
            tmp / "accuracy.png",
            results["latency_steps"],
            results["snn_accuracy"],
            results["ann_accuracy"],
            label,
        )
        plots.plot_layer_bars(
            tmp / "firing_rate.png",
            results["layers"],
            "firing_rate",
            "firing rate (spikes / neuron / step)",
        )
        plots.plot_layer_bars(
            tmp / "activation_error.png",
            results["layers"],
            "mean_abs_activation_error",
            "mean |ANN act - SNN rate|",
        )
        if "sweep" in results:
            s = results["sweep"]
            plots.plot_sweep_heatmap(
                tmp / "sweep.png",
                s["values"],
                s["accuracy"],
                "threshold scale" if s["kind"] == "threshold" else "v(0)/θ",
            )
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
