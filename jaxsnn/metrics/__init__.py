"""Masked accuracy sums and accuracy-vs-timestep curves."""

import jax
import jax.numpy as jnp


def correct_per_step(cumulative: jax.Array, labels: jax.Array, mask: jax.Array | None = None):
    """Number of correct argmax predictions at every step: ``[T, B, K]`` → ``[T]`` (int32)."""
    hits = jnp.argmax(cumulative, axis=-1) == labels[None, :]
    if mask is not None:
        hits = hits & mask[None, :]
    return jnp.sum(hits, axis=1, dtype=jnp.int32)


def correct(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None):
    """Number of correct argmax predictions in ``[B, K]`` logits (int32)."""
    hits = jnp.argmax(logits, axis=-1) == labels
    if mask is not None:
        hits = hits & mask
    return jnp.sum(hits, dtype=jnp.int32)


__all__ = ["correct", "correct_per_step"]
