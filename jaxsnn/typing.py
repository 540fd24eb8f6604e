"""Shape-annotated aliases used across jaxsnn (jaxtyping)."""

from typing import Any

import jax
from jaxtyping import Array, Float, Int, PyTree

PRNGKey = jax.Array
Images = Float[Array, "B H W C"]
Logits = Float[Array, "B K"]
Labels = Int[Array, " B"]
LogitSeq = Float[Array, "T B K"]
SpikeSeq = Float[Array, "T B ..."]
Params = PyTree[Array]
Variables = dict[str, Any]

__all__ = [
    "PRNGKey",
    "Images",
    "Logits",
    "Labels",
    "LogitSeq",
    "SpikeSeq",
    "Params",
    "Variables",
]
