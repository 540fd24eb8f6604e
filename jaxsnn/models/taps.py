"""Reading a model's structure and activations: activation order, ANN activations, producers.

Every activation module of :mod:`jaxsnn.models.activations` sows its output into the
``'activations'`` collection, and every spiking layer is a
:class:`~jaxsnn.neurons.SpikingActivation` at the same module path; these helpers read that
structure without running the network (shapes only) or run the ANN once to read its activations.
"""

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn import tree


def call_order(model: nn.Module, variables: Mapping, x, keep: Callable[[nn.Module], bool], **kw):
    """Paths of the submodules for which ``keep(module)`` holds, in call (forward) order.

    Shapes only (``jax.eval_shape``). The order is recorded while tracing: variable dicts come
    back key-sorted, which would put ``stem_act`` after ``stage*``.
    """
    called: list[str] = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and keep(context.module):
            called.append("/".join(context.module.path))
        return next_fun(*args, **kwargs)

    def run():
        with nn.intercept_methods(record):
            return model.apply(variables, x, **kw)

    jax.eval_shape(run)
    return list(dict.fromkeys(called))


def activation_layers(ann_model: nn.Module, variables: Mapping, input_shape) -> list[str]:
    """Paths of the ANN's activation layers (those that sow ``'activations'``), forward order."""
    x = jnp.zeros(input_shape, jnp.float32)
    _, sown = jax.eval_shape(lambda: ann_model.apply(variables, x, mutable=["activations"]))
    acts = set(tree.layer_leaves(sown.get("activations", {}), "out"))
    order = [
        p for p in call_order(ann_model, variables, x, lambda m: True, mutable=["activations"])
        if p in acts
    ]  # fmt: skip
    if not order:
        raise ValueError("the ANN sows no 'activations' (use the QCFS/ClipReLU/ReLU activations)")
    return order


@functools.partial(jax.jit, static_argnames=("ann_model",))
def ann_activations(ann_model: nn.Module, variables: Mapping, images: jax.Array):
    """Returns ``(logits [B, K], {layer_path: post-activation output})`` of the ANN (eval mode)."""
    logits, sown = ann_model.apply(variables, images, mutable=["activations"])
    acts = {
        layer: v[0] if isinstance(v, tuple) else v
        for layer, v in tree.layer_leaves(sown.get("activations", {}), "out").items()
    }
    return logits, acts


def producer_of(act_path: str, params: Mapping) -> str:
    """Path of the conv/dense whose output (plus a residual, if any) feeds activation ``act_path``.

    The naming rules of the project's architectures: ``<prefix>/act<k>`` ← ``<prefix>/conv<k>``
    (ResNet blocks: ``act2`` is fed by ``conv2`` plus the shortcut), ``<prefix>/<base>_act`` ←
    ``<prefix>/<base>`` (``stem_act``, VGG ``block1_conv1_act``, ``fc1_act``, CNN ``conv1_act``);
    a ``ConvBN`` producer resolves to its ``conv`` child. Raises ``ValueError`` if the resolved
    layer has no ``kernel``/``bias`` in ``params``.
    """
    prefix, _, name = act_path.rpartition("/")
    if name.endswith("_act"):
        base = name[: -len("_act")]
    elif name.startswith("act") and name[3:].isdigit():
        base = f"conv{name[3:]}"
    else:
        raise ValueError(f"cannot infer the layer feeding activation '{act_path}'")
    path = f"{prefix}/{base}" if prefix else base
    flat = tree.flatten(params)
    if f"{path}/conv/kernel" in flat:
        path = f"{path}/conv"
    if f"{path}/kernel" not in flat or f"{path}/bias" not in flat:
        raise ValueError(
            f"activation '{act_path}': producer '{path}' has no kernel and bias in "
            "the (BN-folded) params"
        )
    return path
