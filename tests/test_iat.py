"""IAT early exit (I-12): thresholds in (0.6, 1], exits within [1, T], hand-made exits, masking."""

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from jaxsnn.methods.iat import (
    IATSums,
    fit_iat_thresholds,
    iat_predict,
    iat_scores,
    iat_statistics,
    iat_summary,
    iat_sums,
    iat_thresholds_from_statistics,
)


def test_hand_made_exits():
    """Sample 0 is confident from t=1, sample 1 from t=2, sample 2 never (exits at T)."""
    big, none = 20.0, 0.0
    cumulative = jnp.asarray(
        [
            [[big, 0.0], [none, 0.0], [0.0, 0.0]],
            [[big, 0.0], [0.0, big], [0.0, 0.0]],
            [[big, 0.0], [0.0, big], [0.1, 0.0]],
        ]
    )  # [T=3, B=3, K=2]
    tau = jnp.asarray([0.9, 0.9, 0.9])
    for metric in ("entropy", "confidence"):
        exit_step, prediction = iat_predict(cumulative, tau, metric=metric)
        np.testing.assert_array_equal(exit_step, [1, 2, 3])
        np.testing.assert_array_equal(prediction, [0, 1, 0])
    sums = iat_sums(cumulative, tau, jnp.asarray([0, 0, 0]), jnp.asarray([True, True, False]))
    summary = iat_summary(sums)
    assert summary == {"accuracy": 0.5, "mean_timesteps": 1.5, "exit_fraction": [0.5, 0.5, 0.0]}


def test_scores_and_strict_exit():
    cumulative = jnp.zeros((2, 1, 4))  # uniform softmax: entropy score 0, confidence 1/4
    np.testing.assert_allclose(iat_scores(cumulative, metric="entropy"), 0.0, atol=1e-6)
    np.testing.assert_allclose(iat_scores(cumulative, metric="confidence"), 0.25)
    exit_step, _ = iat_predict(cumulative, jnp.asarray([0.25, 0.25]), metric="confidence")
    assert int(exit_step[0]) == 2  # score == τ does not exit (strict >); the last step always does
    with pytest.raises(ValueError, match="metric"):
        iat_scores(cumulative, metric="kl")


def test_fit_thresholds_form():
    """τ_t = 0.6 + 0.4·exp(e_min − ē_t); τ = 1 where no sample is correct at t."""
    cumulative = jnp.asarray(
        [
            [[0.0, 0.0], [0.0, 0.0]],  # t=1: ties → argmax 0; sample 1 (label 1) wrong
            [[3.0, 0.0], [0.0, 1.0]],  # t=2: both correct
            [[0.0, 5.0], [5.0, 0.0]],  # t=3: both wrong
        ]
    )
    labels = jnp.asarray([0, 1])
    tau = fit_iat_thresholds(cumulative, labels)
    p = jax.nn.softmax(cumulative, axis=-1)
    e = np.asarray(-jnp.sum(p * jnp.log(p), axis=-1) / jnp.log(2.0))
    e1, e2 = e[0, 0], (e[1, 0] + e[1, 1]) / 2
    e_min = min(e1, e2)
    np.testing.assert_allclose(
        tau, [0.6 + 0.4 * np.exp(e_min - e1), 0.6 + 0.4 * np.exp(e_min - e2), 1.0], rtol=1e-6
    )
    tau_in = fit_iat_thresholds(cumulative, labels, dataset_kind="imagenet")
    assert np.all((tau_in > 0.995) & (tau_in <= 1.0))


T, B, K = 5, 8, 4


@functools.partial(jax.jit, static_argnames="metric")
def _run(cumulative, labels, mask, tau, *, metric):
    return iat_predict(cumulative, tau, metric=metric), iat_sums(
        cumulative, tau, labels, mask, metric=metric
    )


_statistics = jax.jit(iat_statistics)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    valid=st.integers(1, B),
    scale=st.sampled_from([0.1, 1.0, 10.0]),
    metric=st.sampled_from(["entropy", "confidence"]),
)
def test_iat_invariants(seed, valid, scale, metric):
    key = jax.random.key(seed)
    cumulative = jnp.cumsum(scale * jax.random.normal(key, (T, B, K)), axis=0)
    labels = jax.random.randint(jax.random.fold_in(key, 1), (B,), 0, K)
    mask = jnp.arange(B) < valid
    tau = iat_thresholds_from_statistics(*_statistics(cumulative, labels, mask))
    assert tau.shape == (T,) and np.all((tau > 0.6) & (tau <= 1.0))
    (exit_step, _), sums = _run(cumulative, labels, mask, jnp.asarray(tau), metric=metric)
    assert np.all((exit_step >= 1) & (exit_step <= T))
    summary = iat_summary(sums)
    assert 1.0 <= summary["mean_timesteps"] <= T
    assert sum(summary["exit_fraction"]) == pytest.approx(1.0)
    assert int(sums.nseen) == valid
    # Adding batch sums (here: the same batch twice) and dividing once gives the same rates.
    twice = IATSums(*jax.tree.map(lambda a: a + a, tuple(sums)))
    assert iat_summary(twice)["accuracy"] == pytest.approx(summary["accuracy"])
