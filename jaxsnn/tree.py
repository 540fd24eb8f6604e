"""Path-based helpers over nested-dict variable trees (``'stage1_block1/act2/threshold'``).

Flax variable collections are nested dicts keyed by module name; conversion and calibration
address leaves by their slash-joined path. Every helper here builds a new tree and never edits
its input.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

SEP = "/"


def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """Flattens a nested mapping into ``{'a/b/c': leaf}``."""
    out = {}
    for k, v in tree.items():
        path = f"{prefix}{SEP}{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, path))
        else:
            out[path] = v
    return out


def unflatten(flat: Mapping[str, Any]) -> dict:
    """Inverse of :func:`flatten`."""
    tree: dict = {}
    for path, v in flat.items():
        node = tree
        *parents, leaf = path.split(SEP)
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return tree


def map_with_path(fn: Callable[[str, Any], Any], tree: Mapping) -> dict:
    """Builds a new tree with ``fn(path, leaf)`` at every leaf."""
    return unflatten({p: fn(p, v) for p, v in flatten(tree).items()})


def layer_of(path: str) -> str:
    """The module path of a variable path: ``'a/b/threshold'`` -> ``'a/b'``."""
    return path.rsplit(SEP, 1)[0] if SEP in path else ""


def leaf_name(path: str) -> str:
    """The variable name of a path: ``'a/b/threshold'`` -> ``'threshold'``."""
    return path.rsplit(SEP, 1)[-1]


def layer_leaves(tree: Mapping, name: str) -> dict[str, Any]:
    """``{layer_path: leaf}`` for every leaf called ``name`` (``threshold``, ``v``, ``count``)."""
    return {layer_of(p): v for p, v in flatten(tree).items() if leaf_name(p) == name}


def replace_leaves(tree: Mapping, new: Mapping[str, Any]) -> dict:
    """A new tree with the leaves at the full paths in ``new`` replaced (shape-checked)."""
    flat = flatten(tree)
    for path, value in new.items():
        if path not in flat:
            raise KeyError(f"no leaf '{path}' in the tree")
        if jnp.shape(value) != jnp.shape(flat[path]):
            raise ValueError(f"'{path}': shape {jnp.shape(value)} != {jnp.shape(flat[path])}")
    return unflatten({**flat, **new})


def broadcast_channels(value, ndim: int) -> jax.Array:
    """Reshapes a scalar or ``[C]`` value so that it broadcasts against a rank-``ndim`` array."""
    value = jnp.asarray(value)
    return value.reshape((1,) * (ndim - value.ndim) + value.shape)


def assert_same_structure(expected: Mapping, actual: Mapping, what: str) -> None:
    """Raises ``ValueError`` naming the first missing, unexpected or mis-shaped variable."""
    exp = {p: jnp.shape(v) for p, v in flatten(expected).items()}
    act = {p: jnp.shape(v) for p, v in flatten(actual).items()}
    missing = sorted(set(exp) - set(act))
    unexpected = sorted(set(act) - set(exp))
    if missing or unexpected:
        raise ValueError(
            f"{what} do not match the architecture: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    for p in exp:
        if exp[p] != act[p]:
            raise ValueError(f"{what}: '{p}' has shape {act[p]}, the architecture expects {exp[p]}")
