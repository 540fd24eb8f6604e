"""Exact, masked evaluation of an ANN and its SNN over a dataset split, with per-layer diagnostics.

One jitted function per batch returns *sums* (correct predictions per step, spikes, dead and
saturated neurons, |ANN activation − SNN rate|, input densities); the host adds them up and divides
once at the end, so results are over the full split (padded last batch masked out).
"""

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from tqdm import tqdm

from jaxsnn import metrics
from jaxsnn.calibrate.iat import iat_summary, iat_sums
from jaxsnn.convert import stages
from jaxsnn.convert import tree as tree_lib
from jaxsnn.metrics.energy import energy_report
from jaxsnn.simulate import simulate, srp_reset
from jaxsnn.simulate.core import EVAL_UNROLL, backend_compiler_options


class SNNSpec(NamedTuple):
    """What to simulate: the SNN definition (``track_counts=True``), params and the protocol."""

    model: nn.Module
    params: dict
    membrane_init: object = "half"  # any mode accepted by init_membrane
    num_steps: int = 32
    presim: int = 0  # SRP τ (0: plain run); the model must then be built with masked=True
    max_spikes: int = 1  # spikes a neuron can emit per step (default saturation level)
    iat_thresholds: object = None  # [T] exit thresholds: also report IAT early-exit results
    iat_metric: str = "entropy"
    unroll: int = EVAL_UNROLL  # lax.scan unroll factor (results do not depend on it)


def _masked_sum(x: jax.Array, mask: jax.Array) -> jax.Array:
    m = mask.reshape(mask.shape + (1,) * (x.ndim - 1)).astype(x.dtype)
    return jnp.sum(x * m)


def _layer_diagnostics(ann_acts, counts, thresholds, caps, mask, num_steps, max_spikes) -> dict:
    """Per spiking layer: neurons, dead, saturated and Σ|a_ANN − rate_SNN| (masked sums)."""
    out = {}
    for layer, count in counts.items():
        cap = caps.get(layer, max_spikes)
        theta = thresholds[layer]
        theta = theta.reshape((1,) * (count.ndim - theta.ndim) + theta.shape)
        rate = count * theta / num_steps
        ones = jnp.ones_like(count)
        entry = {
            "neurons": _masked_sum(ones, mask),
            "dead": _masked_sum((count == 0).astype(count.dtype), mask),
            "saturated": _masked_sum((count >= cap * num_steps).astype(count.dtype), mask),
        }
        if layer in ann_acts:
            entry["abs_error"] = _masked_sum(jnp.abs(ann_acts[layer] - rate), mask)
            entry["ann_mean"] = _masked_sum(ann_acts[layer], mask)
        out[layer] = entry
    return out


def make_batch_fn(ann_model: nn.Module, ann_variables: Mapping, spec: SNNSpec):
    """Builds the jitted per-batch function ``(snn_params, batch) -> sums``."""
    model, T = spec.model, spec.num_steps

    def run(snn_params, batch):
        images, labels, mask = batch["image"], batch["label"], batch["mask"]
        logits, acts = ann_model.apply(ann_variables, images, mutable=["activations"])
        ann_acts = {
            tree_lib.layer_of(p): v[0]
            for p, v in tree_lib.flatten(acts.get("activations", {})).items()
        }
        membrane = stages.init_membrane(model, images.shape, spec.membrane_init, images.dtype)
        if spec.presim > 0:
            pre = simulate(
                model, snn_params, membrane, images, num_steps=spec.presim, unroll=spec.unroll
            )
            membrane = srp_reset(pre.membrane)
        sim = simulate(
            model, snn_params, membrane, images, num_steps=T, stats=True, unroll=spec.unroll
        )
        flat = tree_lib.flatten(sim.membrane)
        counts = {tree_lib.layer_of(p): v for p, v in flat.items() if p.endswith("/count")}
        thresholds = stages.extract_thresholds(snn_params)
        caps = {
            tree_lib.layer_of(p): v
            for p, v in tree_lib.flatten(snn_params).items()
            if p.endswith("/max_spikes")
        }
        m = mask.astype(images.dtype)
        sums = {
            "nseen": jnp.sum(m),
            "ann_correct": metrics.correct(logits, labels, mask),
            "snn_correct": metrics.correct_per_step(sim.cumulative, labels, mask),
            "stats": {
                layer: {k: jnp.sum(v * m[None], axis=1) for k, v in s.items()}
                for layer, s in sim.stats.items()
            },
            "layers": _layer_diagnostics(
                ann_acts, counts, thresholds, caps, mask, T, spec.max_spikes
            ),
        }
        if spec.iat_thresholds is not None:
            sums["iat"] = iat_sums(
                sim.cumulative,
                jnp.asarray(spec.iat_thresholds),
                labels,
                mask,
                metric=spec.iat_metric,
            )
        if "mask" in str(flat.keys()):
            sums["srp_mask_ones"] = {
                tree_lib.layer_of(p): _masked_sum(v, mask)
                for p, v in flat.items()
                if p.endswith("/mask")
            }
        return sums

    return jax.jit(run, compiler_options=backend_compiler_options() or None)


def evaluate(
    ann_model: nn.Module,
    ann_variables: Mapping,
    spec: SNNSpec,
    batches: Iterable[dict],
    *,
    shard=lambda b: b,
    total: int | None = None,
    progress: bool = True,
) -> dict:
    """Runs ANN and SNN over ``batches`` and returns host totals (see :func:`summarise`)."""
    fn = make_batch_fn(ann_model, ann_variables, spec)
    totals = None
    for batch in tqdm(batches, total=total, desc="SNN eval", disable=not progress, leave=False):
        sums = fn(spec.params, shard(batch))
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    if totals is None:
        raise ValueError("evaluation got no batches (empty split?)")
    return jax.tree.map(np.asarray, jax.device_get(totals))


def summarise(totals: Mapping, spec: SNNSpec, macs: Mapping[str, int]) -> dict:
    """Turns host totals into accuracies, per-layer diagnostics and the energy report."""
    n = float(totals["nseen"])
    T = spec.num_steps
    layers = {}
    for layer, s in totals["stats"].items():
        if "spikes" not in s:
            continue
        spikes = float(np.sum(s["spikes"]))
        entry = {"spikes_per_image": spikes / n}
        d = totals["layers"].get(layer)
        if d is not None:
            neurons = float(d["neurons"])
            entry["firing_rate"] = spikes / (neurons * T)
            entry["dead_fraction"] = float(d["dead"]) / neurons
            entry["saturated_fraction"] = float(d["saturated"]) / neurons
            if "abs_error" in d:
                entry["mean_abs_activation_error"] = float(d["abs_error"]) / neurons
                entry["mean_ann_activation"] = float(d["ann_mean"]) / neurons
        layers[layer] = entry
    density = {
        layer: float(np.sum(s["input_density"])) / n
        for layer, s in totals["stats"].items()
        if "input_density" in s
    }
    analog = {next(iter(macs))} if macs else set()
    out = {
        "num_examples": int(n),
        "ann_accuracy": float(totals["ann_correct"]) / n,
        "snn_accuracy": [float(c) / n for c in totals["snn_correct"]],
        "layers": layers,
        "energy": energy_report(dict(macs), density, T, analog),
    }
    if "iat" in totals:
        out["iat"] = iat_summary(totals["iat"])
    if "srp_mask_ones" in totals:
        out["srp_mask_fraction"] = {
            k: float(v) / float(totals["layers"][k]["neurons"])
            for k, v in totals["srp_mask_ones"].items()
        }
    return out
