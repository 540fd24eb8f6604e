"""Masked accuracy sums and accuracy-vs-timestep curves."""

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

# The shapes of jaxsnn.typing, restated: metrics and typing are independent bottom-layer units.
LogitSeq = Float[Array, "T B K"]
Logits = Float[Array, "B K"]
Labels = Int[Array, " B"]
Mask = Bool[Array, " B"]
CountPerStep = Int[Array, " T"]
Count = Int[Array, ""]


def correct_per_step(
    cumulative: LogitSeq, labels: Labels, mask: Mask | None = None
) -> CountPerStep:
    """Number of correct argmax predictions at every step: ``[T, B, K]`` → ``[T]`` (int32)."""
    hits = jnp.argmax(cumulative, axis=-1) == labels[None, :]
    if mask is not None:
        hits = hits & mask[None, :]
    return jnp.sum(hits, axis=1, dtype=jnp.int32)


def correct(logits: Logits, labels: Labels, mask: Mask | None = None) -> Count:
    """Number of correct argmax predictions in ``[B, K]`` logits (int32)."""
    hits = jnp.argmax(logits, axis=-1) == labels
    if mask is not None:
        hits = hits & mask
    return jnp.sum(hits, dtype=jnp.int32)


__all__ = ["correct", "correct_per_step"]
