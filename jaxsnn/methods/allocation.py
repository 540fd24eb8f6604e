r"""Sensitivity analysis and frontier search: per-layer spike caps (AdaFire) and SSC ratios.

**Sensitivity** (docs/methods.md, "Burst (AdaFire)" and "SSC"). For every spiking layer i and
candidate c, change layer i only (its cap ``M = c``, or its threshold ``θ·r``), simulate T steps
on one batch and record

- the symmetric KL :math:`S = \tfrac12(\mathrm{KL}(P\|Q) + \mathrm{KL}(Q\|P))` between
  :math:`P = \mathrm{softmax}` (mean SNN logits) and :math:`Q = \mathrm{softmax}` (ANN logits),
  each KL summed over batch and classes and divided by the batch size;
- the energy :math:`E` = total spike count of layer i over the T steps.

Caps and thresholds are traced parameters (:class:`jaxsnn.neurons.SpikingActivation`), so all
``layers × candidates`` runs are one compiled program driven by ``lax.map`` (``chunk`` runs are
vmapped together).

**Frontier search** (multiple-choice knapsack by Pareto pruning): expand every frontier node with
every candidate of the next layer, sort children by cost (stable), keep a child iff its cost is
within the budget and its value is strictly below the last kept one. With non-negative costs this
equals brute-force ``argmin Σ value s.t. Σ cost ≤ budget`` (docs/methods.md, "Frontier
search"; invariant I-11).

- AdaFire caps: cost = E, value = S, budget ``ratio · Σ_i E[M_d][i]``. Deviation from the released
  code: the desired cap ``M_d`` is looked up **by value** in the candidate list (the released
  code indexes ``M_d − 1``, wrong when ``minspike ≠ 1``).
- SSC ratios, released budget: roles swapped (cost = S, value = E), budget
  ``ratio · Σ_i S[r = 1][i]``; or (our default, ``budget_kind='spikes'``) a spike budget:
  cost = E, value = S, budget ``ratio · Σ_i E[r = 1][i]``. Deviation from the released
  code, which does not reverse the backtracked choice list: we reverse it into layer order
  (docs/methods.md, "SSC layer order"); ``released_order=True`` reproduces the released
  (unreversed) assignment.
- An empty frontier (no assignment within the budget) raises a ``ValueError`` (the released
  code crashes with an index error). Only the symmetric-KL metric is ported (the released
  code's 'accuracy' metric allows negative costs, for which the pruning is not exact).
"""

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxsnn.neurons import CAP, THRESHOLD
from jaxsnn.simulate import simulate, snn_input
from jaxsnn.tree import broadcast_channels, layer_leaves, replace_leaves

SSC_RATIOS = tuple(1.0 + 0.5 * i for i in range(19))  # 1.0, 1.5, ..., 10.0


def symmetric_kl(p_logits: jax.Array, q_logits: jax.Array) -> jax.Array:
    """½(KL(P‖Q) + KL(Q‖P)) of the softmaxes, summed over batch and classes / batch size."""
    lp = jax.nn.log_softmax(p_logits, axis=-1)
    lq = jax.nn.log_softmax(q_logits, axis=-1)
    kl_pq = jnp.sum(jnp.exp(lp) * (lp - lq))
    kl_qp = jnp.sum(jnp.exp(lq) * (lq - lp))
    return 0.5 * (kl_pq + kl_qp) / p_logits.shape[0]


@functools.partial(jax.jit, static_argnames=("model", "layers", "num_steps", "chunk", "encoding"))
def _sweep(
    model, params, membrane, images, ann_logits, caps, scales, *, layers, num_steps, chunk, encoding
):
    """For each row p of ``caps``/``scales`` ``[P, L]``: (sym. KL, spikes per layer ``[L]``)."""
    flat_caps = layer_leaves(params, CAP)
    flat_theta = layer_leaves(params, THRESHOLD)
    inputs, time_major = snn_input(images, num_steps, encoding)

    def one(row):
        cap_row, scale_row = row
        new = {}
        for i, layer in enumerate(layers):
            new[f"{layer}/{CAP}"] = cap_row[i].astype(flat_caps[layer].dtype)
            theta = flat_theta[layer]
            new[f"{layer}/{THRESHOLD}"] = theta * scale_row[i].astype(theta.dtype)
        out = simulate(
            model,
            replace_leaves(params, new),
            membrane,
            inputs,
            num_steps=num_steps,
            time_major=time_major,
        )
        counts = layer_leaves(out.membrane, "count")
        spikes = jnp.stack([jnp.sum(counts[layer]) for layer in layers])
        return symmetric_kl(out.cumulative[-1] / num_steps, ann_logits), spikes

    return jax.lax.map(one, (caps, scales), batch_size=chunk)


def sensitivity_tables(
    model: nn.Module,
    params: Mapping,
    membrane: Mapping,
    images: jax.Array,
    ann_logits: jax.Array,
    *,
    layers: Sequence[str],
    num_steps: int,
    kind: str,
    candidates: Sequence[float],
    base_cap: float | None = None,
    chunk: int = 4,
    encoding=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sensitivity and energy tables ``[L, C]`` for one-layer-at-a-time changes.

    Args:
      model, params, membrane, images: the SNN, its params, initial membrane and the batch.
      ann_logits: the ANN's logits on the batch (the reference Q).
      layers: spiking layers, forward order.
      num_steps: T.
      kind: ``'cap'`` (layer i gets cap c; all others ``base_cap``) or ``'ratio'`` (layer i gets
        θ·c; all others unchanged).
      candidates: the C candidate values.
      base_cap: M₀ for ``kind='cap'``.
      chunk: how many runs are vmapped together.
      encoding: the SNN's input encoding (None: direct; `jaxsnn.simulate.TimeBins`).
    """
    n_layers, n_cand = len(layers), len(candidates)
    current = layer_leaves(params, CAP)
    base = np.asarray([float(current[layer]) for layer in layers], np.float32)
    if kind == "cap":
        base = np.full(n_layers, base_cap, np.float32)
    caps = np.tile(base, (n_layers * n_cand, 1))
    scales = np.ones((n_layers * n_cand, n_layers), np.float32)
    rows = np.arange(n_layers * n_cand)
    cols = rows // n_cand
    values = np.tile(np.asarray(candidates, np.float32), n_layers)
    if kind == "cap":
        caps[rows, cols] = values
    elif kind == "ratio":
        scales[rows, cols] = values
    else:
        raise ValueError(f"kind must be 'cap' or 'ratio', got {kind!r}")
    kl, spikes = _sweep(
        model,
        params,
        membrane,
        images,
        ann_logits,
        jnp.asarray(caps),
        jnp.asarray(scales),
        layers=tuple(layers),
        num_steps=num_steps,
        chunk=max(1, min(chunk, len(rows))),
        encoding=encoding,
    )
    kl = np.asarray(kl, np.float64).reshape(n_layers, n_cand)
    energy = np.asarray(spikes, np.float64)[rows, cols].reshape(n_layers, n_cand)
    return kl, energy


def frontier_search(costs, values, budget: float) -> list[int]:
    """Min Σ value s.t. Σ cost ≤ budget, one candidate per layer; returns the indices per layer.

    Args:
      costs, values: ``[L][C]`` tables (costs must be ≥ 0 for exactness).
      budget: the cost budget.

    Raises:
      ValueError: if no assignment fits the budget.
    """
    costs, values = np.asarray(costs, np.float64), np.asarray(values, np.float64)
    frontier = [(0.0, 0.0, None)]  # (cost, value, (parent node, choice))
    for i in range(costs.shape[0]):
        children = [
            (node[0] + costs[i, k], node[1] + values[i, k], (node, k))
            for node in frontier
            for k in range(costs.shape[1])
        ]
        children.sort(key=lambda node: node[0])
        kept: list = []
        for child in children:
            if child[0] <= budget and (not kept or child[1] < kept[-1][1]):
                kept.append(child)
        if not kept:
            raise ValueError(
                f"frontier search: no assignment of layers 0..{i} fits the budget "
                f"{budget:g} (the cheapest needs {min(ch[0] for ch in children):g}); "
                "raise the budget ratio"
            )
        frontier = kept
    best = min(frontier, key=lambda node: node[1])
    choice = []
    while best[2] is not None:
        best, k = best[2]
        choice.append(k)
    return choice[::-1]


def allocate_caps(
    sensitivity, energy, candidates: Sequence[int], *, desired: int, ratio: float
) -> tuple[list[int], float]:
    """Per-layer caps minimising Σ S with Σ E ≤ ratio·Σ_i E[M_d][i]; returns (caps, budget)."""
    candidates = list(candidates)
    if desired not in candidates:
        raise ValueError(f"desired_spikes={desired} is not among the candidates {candidates}")
    budget = float(ratio * np.sum(np.asarray(energy)[:, candidates.index(desired)]))
    choice = frontier_search(energy, sensitivity, budget)
    return [int(candidates[k]) for k in choice], budget


def allocate_ratios(
    sensitivity,
    energy,
    ratios: Sequence[float],
    *,
    ratio: float,
    released_order: bool = False,
    budget_kind: str = "sensitivity",
) -> tuple[list[float], float]:
    """SSC: per-layer θ ratios under a budget; returns (ratios per layer, budget).

    - ``budget_kind='sensitivity'`` (released code): minimise Σ E with Σ S ≤ ratio·Σ_i S[1][i].
      Every ``S[r = 1][i]`` is the unchanged network's error, so this budget is feasible only if
      raising some layer's threshold *lowers* the error (or ``ratio ≥ 1``).
    - ``budget_kind='spikes'`` (a spike budget, e.g. "0.7× the spikes"): minimise Σ S with
      Σ E ≤ ratio·Σ_i E[1][i], the additive per-layer spike model of the sensitivity tables.

    ``released_order=True`` applies the backtracked list unreversed, as the released code does
    (layer i gets the choice of layer L−1−i).
    """
    ratios = list(ratios)
    if 1.0 not in ratios:
        raise ValueError(f"the SSC ratios must contain 1.0, got {ratios}")
    one = ratios.index(1.0)
    if budget_kind == "sensitivity":
        budget = float(ratio * np.sum(np.asarray(sensitivity)[:, one]))
        choice = frontier_search(sensitivity, energy, budget)
    elif budget_kind == "spikes":
        budget = float(ratio * np.sum(np.asarray(energy)[:, one]))
        choice = frontier_search(energy, sensitivity, budget)
    else:
        raise ValueError(f"ssc_budget must be 'spikes' or 'sensitivity', got {budget_kind!r}")
    if released_order:
        choice = choice[::-1]
    return [float(ratios[k]) for k in choice], budget


def apply_ratios(params: Mapping, layers: Sequence[str], ratios: Sequence[float]) -> dict:
    """θ_l ← r_l·θ_l for each layer."""
    theta = layer_leaves(params, THRESHOLD)
    return replace_leaves(
        params,
        {
            f"{layer}/{THRESHOLD}": theta[layer]
            * broadcast_channels(jnp.asarray(r, theta[layer].dtype), theta[layer].ndim)
            for layer, r in zip(layers, ratios, strict=True)
        },
    )
