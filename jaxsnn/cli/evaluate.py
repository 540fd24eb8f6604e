"""Exact, masked evaluation of an ANN and its converted SNN over a split, with diagnostics.

One jitted function per batch returns *sums* (correct predictions per step, spikes, dead and
saturated neurons, |ANN activation − SNN rate|, input densities, IAT and compensated-readout
counts); the host adds them up and divides once at the end, so results are over the full split
(padded rows masked out). Batches are split over every device of the data mesh and the SNN and
ANN variables are replicated, so the same code runs on one device, several, and several hosts.

The SNN's input follows ``config.convert.encoding`` (:func:`input_encoding`): ``'direct'``, the
normalised image at every step, or ``'time'``, an event dataset's stacked frames consumed one
time window per step (`jaxsnn.simulate.TimeBins`; README, "Neuromorphic datasets").
"""

from collections.abc import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxsnn import metrics, progress, tree
from jaxsnn.convert import init_membrane
from jaxsnn.data import datasets
from jaxsnn.methods import Converted
from jaxsnn.methods.iat import iat_summary, iat_sums
from jaxsnn.metrics.energy import energy_report
from jaxsnn.neurons import CAP, THRESHOLD
from jaxsnn.simulate import TimeBins, compensated_logits, fast_jit, simulate, snn_input

ENCODINGS = ("direct", "time")


def input_encoding(config) -> TimeBins | None:
    """The SNN input encoding that ``config.convert.encoding`` selects (None: direct).

    Raises:
      ValueError: an unknown encoding, or ``'time'`` for a dataset that is not an event dataset.
    """
    convert = config.get("convert", None) or {}
    kind = convert.get("encoding", None) or "direct"
    if kind not in ENCODINGS:
        raise ValueError(f"config.convert.encoding: must be one of {list(ENCODINGS)}, got {kind!r}")
    if kind == "direct":
        return None
    if not datasets.get_spec(config).events:
        events = [name for name, spec in datasets.SPECS.items() if spec.events]
        raise ValueError(
            f"config.convert.encoding='time' needs an event dataset ({', '.join(events)}), whose "
            f"channels stack time bins; config.dataset={config.get('dataset')!r} has none"
        )
    return TimeBins(datasets.event_time_bins(config))


def _masked_sum(x: jax.Array, mask: jax.Array) -> jax.Array:
    m = mask.reshape(mask.shape + (1,) * (x.ndim - 1)).astype(x.dtype)
    return jnp.sum(x * m)


def _layer_diagnostics(ann_acts, counts, thresholds, caps, mask, num_steps) -> dict:
    """Per spiking layer: neurons, dead, saturated and Σ|a_ANN − rate_SNN| (masked sums)."""
    out = {}
    for layer, count in counts.items():
        theta = tree.broadcast_channels(thresholds[layer], count.ndim)
        rate = count * theta / num_steps
        ones = jnp.ones_like(count)
        entry = {
            "neurons": _masked_sum(ones, mask),
            "dead": _masked_sum((count == 0).astype(count.dtype), mask),
            "saturated": _masked_sum((count >= caps[layer] * num_steps).astype(count.dtype), mask),
        }
        if layer in ann_acts:
            entry["abs_error"] = _masked_sum(jnp.abs(ann_acts[layer] - rate), mask)
            entry["ann_mean"] = _masked_sum(ann_acts[layer], mask)
        out[layer] = entry
    return out


def make_batch_fn(
    ann_model: nn.Module, conv: Converted, num_steps: int, encoding: TimeBins | None = None
):
    """Builds the jitted ``(ann_variables, snn_params, batch) -> sums`` of one batch.

    With ``encoding`` the SNN runs on the batch's time-major frames (the start protocol's
    pre-simulation included); the ANN sees the images.
    """
    model, T = conv.model, num_steps

    def run(ann_variables, snn_params, batch):
        images, labels, mask = batch["image"], batch["label"], batch["mask"]
        logits, acts = ann_model.apply(ann_variables, images, mutable=["activations"])
        ann_acts = {k: v[0] for k, v in tree.layer_leaves(acts["activations"], "out").items()}
        start = init_membrane(model, images.shape, conv.membrane_init, images.dtype)
        inputs, time_major = snn_input(images, T, encoding)
        start = conv.protocol.start(model, snn_params, start, inputs, time_major=time_major)
        if time_major:
            inputs = conv.protocol.counted_frames(inputs, T)
        sim = simulate(
            model, snn_params, start, inputs, num_steps=T, stats=True, time_major=time_major
        )
        counts = tree.layer_leaves(sim.membrane, "count")
        thresholds = tree.layer_leaves(snn_params, THRESHOLD)
        caps = tree.layer_leaves(snn_params, CAP)
        m = mask.astype(images.dtype)
        sums = {
            "nseen": jnp.sum(m),
            "ann_correct": metrics.correct(logits, labels, mask),
            "snn_correct": metrics.correct_per_step(sim.cumulative, labels, mask),
            "stats": {
                layer: {k: jnp.sum(v * m[None], axis=1) for k, v in s.items()}
                for layer, s in sim.stats.items()
            },
            "layers": _layer_diagnostics(ann_acts, counts, thresholds, caps, mask, T),
        }
        if conv.iat is not None:
            sums["iat"] = iat_sums(
                sim.cumulative,
                jnp.asarray(conv.iat["thresholds"]),
                labels,
                mask,
                metric=conv.iat["metric"],
            )
        if conv.compensation_layer is not None:
            comp = compensated_logits(
                model,
                snn_params,
                start,
                sim.membrane,
                images,
                num_steps=T,
                layer=conv.compensation_layer,
            )
            sums["compensated_correct"] = metrics.correct(comp, labels, mask)
        masks = tree.layer_leaves(sim.membrane, "mask")
        if masks:
            sums["srp_mask_ones"] = {k: _masked_sum(v, mask) for k, v in masks.items()}
        return sums

    return fast_jit(run)


def evaluate(
    ann_model: nn.Module,
    ann_variables: Mapping,
    conv: Converted,
    batches: Iterable[dict],
    *,
    num_steps: int,
    shard=lambda b: b,
    place=lambda tree_: tree_,
    total: int | None = None,
    desc: str = "SNN eval",
    encoding: TimeBins | None = None,
) -> dict:
    """Runs ANN and SNN over ``batches`` and returns host totals (see :func:`summarise`).

    Args:
      ann_model, ann_variables: the ANN.
      conv: the converted SNN.
      batches: process-local batches with ``'image'``, ``'label'``, ``'mask'``.
      num_steps: T.
      shard: turns a process-local batch into global arrays split over the devices.
      place: places the (ANN and SNN) variables on the devices (replicated).
      total: number of batches (for the progress display).
      desc: progress label.
      encoding: the SNN's input encoding (None: direct; see :func:`input_encoding`).
    """
    fn = make_batch_fn(ann_model, conv, num_steps, encoding)
    ann_variables, snn_params = place(ann_variables), place(conv.params)
    totals = None
    for batch in progress.track(batches, total=total, desc=desc, unit="batch"):
        sums = fn(ann_variables, snn_params, shard(batch))
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    if totals is None:
        raise ValueError("evaluation got no batches (empty split?)")
    return jax.tree.map(np.asarray, jax.device_get(totals))


def summarise(totals: Mapping, num_steps: int, macs: Mapping[str, int]) -> dict:
    """Turns host totals into accuracies, per-layer diagnostics and the energy report."""
    n = float(totals["nseen"])
    T = num_steps
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
    if "compensated_correct" in totals:
        out["compensated_accuracy"] = float(totals["compensated_correct"]) / n
    if "srp_mask_ones" in totals:
        out["srp_mask_fraction"] = {
            k: float(v) / float(totals["layers"][k]["neurons"])
            for k, v in totals["srp_mask_ones"].items()
        }
    return out
