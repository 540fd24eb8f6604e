"""Frontier search == brute force (I-11), budgets, SSC order, and the sensitivity tables."""

import itertools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from jaxsnn import convert, models
from jaxsnn.methods.allocation import (
    allocate_caps,
    allocate_ratios,
    frontier_search,
    sensitivity_tables,
    symmetric_kl,
)
from jaxsnn.methods.common import simulate_from, snn_model, snn_params
from jaxsnn.methods.thresholds import determine_thresholds
from jaxsnn.models import ReLU, activation_layers, ann_activations
from jaxsnn.tree import layer_leaves


def _brute_force(costs, values, budget):
    """min Σ value over assignments with Σ cost ≤ budget (None if infeasible)."""
    best = None
    for choice in itertools.product(range(costs.shape[1]), repeat=costs.shape[0]):
        rows = np.arange(costs.shape[0])
        cost, value = costs[rows, choice].sum(), values[rows, choice].sum()
        if cost <= budget and (best is None or value < best):
            best = value
    return best


tables = st.integers(1, 4).flatmap(
    lambda n_layers: st.integers(1, 4).flatmap(
        lambda n_cand: st.tuples(
            *(
                st.lists(
                    st.lists(st.integers(0, 20), min_size=n_cand, max_size=n_cand),
                    min_size=n_layers,
                    max_size=n_layers,
                )
                for _ in range(2)
            )
        )
    )
)


def _check_against_brute_force(costs, values, budget, solve):
    best = _brute_force(costs, values, budget)
    if best is None:
        with pytest.raises(ValueError, match="budget"):
            solve()
        return None
    choice = solve()
    rows = np.arange(costs.shape[0])
    assert costs[rows, choice].sum() <= budget
    assert values[rows, choice].sum() == best
    return choice


@settings(max_examples=300, deadline=None)
@given(tables=tables, budget=st.integers(0, 60))
def test_frontier_equals_brute_force(tables, budget):
    costs, values = np.asarray(tables[0], np.float64), np.asarray(tables[1], np.float64)
    _check_against_brute_force(
        costs, values, budget, lambda: frontier_search(costs, values, budget)
    )


@settings(max_examples=150, deadline=None)
@given(tables=tables, ratio=st.sampled_from([0.5, 0.8, 1.0, 1.5]), data=st.data())
def test_both_roles_against_brute_force(tables, ratio, data):
    sens, energy = np.asarray(tables[0], np.float64), np.asarray(tables[1], np.float64)
    n_cand = sens.shape[1]
    # AdaFire caps: cost = energy, value = sensitivity; candidates start at min_spikes = 2.
    candidates = list(range(2, 2 + n_cand))
    desired = data.draw(st.sampled_from(candidates))
    budget = ratio * energy[:, candidates.index(desired)].sum()
    idx = _check_against_brute_force(
        energy,
        sens,
        budget,
        lambda: [
            candidates.index(c)
            for c in allocate_caps(sens, energy, candidates, desired=desired, ratio=ratio)[0]
        ],
    )
    if idx is not None:
        caps, used = allocate_caps(sens, energy, candidates, desired=desired, ratio=ratio)
        assert used == budget and all(c in candidates for c in caps)
    # SSC ratios: cost = sensitivity, value = energy; candidates contain 1.0.
    ratios = [1.0 + 0.5 * k for k in range(n_cand)]
    budget = ratio * sens[:, 0].sum()
    _check_against_brute_force(
        sens,
        energy,
        budget,
        lambda: [ratios.index(r) for r in allocate_ratios(sens, energy, ratios, ratio=ratio)[0]],
    )
    # SSC under a spike budget: cost = energy, value = sensitivity, budget ratio·Σ E[r = 1].
    budget = ratio * energy[:, 0].sum()
    _check_against_brute_force(
        energy,
        sens,
        budget,
        lambda: [
            ratios.index(r)
            for r in allocate_ratios(sens, energy, ratios, ratio=ratio, budget_kind="spikes")[0]
        ],
    )


def test_desired_cap_looked_up_by_value():
    """The allocation fix (docs/methods.md, burst allocation): with min_spikes = 3, M_d = 4 is
    candidate index 1 (not index 3)."""
    sens = np.asarray([[4.0, 2.0, 1.5, 0.0]] * 2)
    energy = np.asarray([[1.0, 2.0, 3.0, 4.0]] * 2)
    caps, budget = allocate_caps(sens, energy, [3, 4, 5, 6], desired=4, ratio=1.0)
    assert budget == 4.0 and caps == [4, 4]
    with pytest.raises(ValueError, match="desired"):
        allocate_caps(sens, energy, [3, 4, 5, 6], desired=2, ratio=1.0)


def test_empty_frontier_raises_and_ssc_order_flag():
    with pytest.raises(ValueError, match="budget"):
        frontier_search([[5.0, 6.0]], [[1.0, 0.0]], 4.0)
    ratios = [1.0, 2.0, 3.0]
    # Layer 0 can be compressed to 3.0 for free; layer 1 must stay at 1.0.
    sens = np.asarray([[0.0, 0.0, 0.0], [0.0, 9.0, 9.0]])
    energy = np.asarray([[9.0, 5.0, 1.0], [9.0, 5.0, 1.0]])
    fixed, _ = allocate_ratios(sens, energy, ratios, ratio=1.0)
    released, _ = allocate_ratios(sens, energy, ratios, ratio=1.0, released_order=True)
    assert fixed == [3.0, 1.0] and released == [1.0, 3.0]


def test_ssc_budget_kinds():
    """The released sensitivity budget is infeasible when no ratio lowers the error; a spike
    budget then still compresses the layer whose spikes are cheapest in sensitivity."""
    ratios = [1.0, 2.0, 4.0]
    base = 0.3  # every S[r = 1][i] is the unchanged network's error
    sens = np.asarray([[base, 0.4, 0.9], [base, 2.0, 5.0]])
    energy = np.asarray([[100.0, 60.0, 30.0], [100.0, 50.0, 25.0]])
    with pytest.raises(ValueError, match="budget"):
        allocate_ratios(sens, energy, ratios, ratio=0.95)
    chosen, budget = allocate_ratios(sens, energy, ratios, ratio=0.7, budget_kind="spikes")
    assert budget == pytest.approx(140.0)
    # [4, 1]: 30 + 100 = 130 ≤ 140 spikes at Σ S = 1.2; [2, 1] costs 160 > 140, [2, 2] Σ S 2.4.
    assert chosen == [4.0, 1.0]
    with pytest.raises(ValueError, match="ssc_budget"):
        allocate_ratios(sens, energy, ratios, ratio=0.7, budget_kind="energy")


def test_symmetric_kl():
    p = jax.random.normal(jax.random.key(0), (5, 7))
    q = jax.random.normal(jax.random.key(1), (5, 7))
    assert float(symmetric_kl(p, p)) == pytest.approx(0.0, abs=1e-7)
    assert float(symmetric_kl(p, q)) == pytest.approx(float(symmetric_kl(q, p)), rel=1e-6)
    pp, qq = np.asarray(jax.nn.softmax(p)), np.asarray(jax.nn.softmax(q))
    manual = 0.5 * (np.sum(pp * np.log(pp / qq)) + np.sum(qq * np.log(qq / pp))) / 5
    assert float(symmetric_kl(p, q)) == pytest.approx(manual, rel=1e-5)


def test_sensitivity_tables_consistent_with_baseline():
    """Candidate == base value reproduces the unchanged network in every layer's row."""
    ann = models.get_model("_CNNTiny", num_classes=5, act=ReLU)
    variables = models.init_variables(ann, jax.random.key(0), (6, 8, 8, 3))
    x = jax.random.normal(jax.random.key(1), (6, 8, 8, 3))
    T, m0 = 4, 3
    layers = activation_layers(ann, variables, x.shape)
    folded = convert.fold_batchnorm(variables["params"], variables["batch_stats"])
    thresholds = determine_thresholds(ann, variables, [x], num_steps=T, mode="max")
    model, _ = snn_model(ann, shift=1 / (2 * T), per_channel=True)
    params = snn_params(model, folded, thresholds, m0, x.shape)
    ann_logits, _ = ann_activations(ann, variables, x)
    membrane = convert.init_membrane(model, x.shape, "zero")
    sens, energy = sensitivity_tables(
        model,
        params,
        membrane,
        x,
        ann_logits,
        layers=layers,
        num_steps=T,
        kind="cap",
        candidates=[1, 2, 3],
        base_cap=m0,
        chunk=2,
    )
    out = simulate_from(model, params, {k: 0.0 for k in layers}, x, T)
    logits, final = out.cumulative[-1] / T, out.membrane
    base_kl = float(symmetric_kl(logits, ann_logits))
    np.testing.assert_allclose(sens[:, 2], base_kl, rtol=1e-5, atol=1e-7)
    counts = [float(jnp.sum(layer_leaves(final, "count")[k])) for k in layers]
    np.testing.assert_allclose(energy[:, 2], counts)
    assert sens.shape == energy.shape == (len(layers), 3)
    ratio_sens, _ = sensitivity_tables(
        model,
        params,
        membrane,
        x,
        ann_logits,
        layers=layers,
        num_steps=T,
        kind="ratio",
        candidates=[1.0, 2.0],
    )
    np.testing.assert_allclose(ratio_sens[:, 0], base_kl, rtol=1e-5, atol=1e-7)
