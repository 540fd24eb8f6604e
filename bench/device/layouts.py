"""A pure-JAX IF network in two memory layouts, for timing layouts against each other on one device.

The networks are the BN-folded SNNs that ``jaxsnn.convert.convert`` builds (same params tree, same
neuron: ``u += x/θ``, ``s = 1[u ≥ 1]``, ``u -= s``, output ``s·θ``, ``u(0) = 1/2``), written as
plain functions of that tree so the layout is the only thing that changes:

* **step-wise** (:func:`simulate_stepwise`): one ``lax.scan`` over T whose body runs the whole net
  on ``[B, ...]`` (what ``jaxsnn.simulate.simulate`` does); memory O(neurons).
* **time-folded** (:func:`simulate_time_folded`): layer by layer, each conv/dense runs once on all
  T steps folded into the batch (``[T·B, ...]``), and only the IF dynamics scan over T; the first
  layer's input is the same image every step, so its current is computed once. Fewer, larger
  kernels, memory O(T · neurons).

Both return the cumulative readout ``[T, B, K]``. They are compared with ``jaxsnn.simulate`` for
agreement (max |Δ|, argmax), not for bit equality: a different batch shape may select a different
convolution algorithm.
"""

import functools

import jax
import jax.numpy as jnp

from bench.specs import SPECS


def _conv(x, p, stride=1):
    k = p["kernel"]
    pad = k.shape[0] // 2
    y = jax.lax.conv_general_dilated(
        x, k, (stride, stride), ((pad, pad), (pad, pad)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + p["bias"].reshape((1, 1, 1, -1))


def _pool2(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _layers(name: str, params) -> list:
    """The net as a list of ops: ``('conv', path, stride)``, ``('if', path)``, ``('pool',)``,
    ``('flatten',)``, ``('dense', path)``, ``('gap',)`` and ResNet ``('block', path, stride)``."""
    spec = SPECS[name]
    ops = []
    if spec["kind"] in ("cnn", "vgg"):
        stages = spec.get("stages", (1,) * len(spec["widths"]))
        for b, n in enumerate(stages):
            for j in range(n):
                lname = f"conv{b + 1}" if spec["kind"] == "cnn" else f"block{b + 1}_conv{j + 1}"
                ops += [("conv", lname, 1), ("if", lname + "_act")]
            ops.append(("pool",))
        ops.append(("flatten",))
        for fc in ("fc1",) if spec["kind"] == "cnn" else ("fc1", "fc2"):
            ops += [("dense", fc), ("if", fc + "_act")]
    else:
        ops += [("conv", "stem", 1), ("if", "stem_act")]
        for s, n in enumerate(spec["stages"]):
            for b in range(n):
                ops.append(("block", f"stage{s + 1}_block{b + 1}", 2 if (s > 0 and b == 0) else 1))
        ops.append(("gap",))
    ops.append(("dense", "head"))
    missing = [op[1] for op in ops if len(op) > 1 and op[1] not in params]
    if missing:
        raise ValueError(f"{name}: params lack {missing}")
    return ops


def _if_step(u, x, theta):
    theta = jnp.reshape(theta, (1,) * (x.ndim - jnp.ndim(theta)) + jnp.shape(theta))
    u = u + x / theta
    s = (u >= 1).astype(x.dtype)
    return u - s, s * theta


def simulate_stepwise(name: str, params, images, num_steps: int):
    """Cumulative readout ``[T, B, K]``: a scan over T of the whole network (step-wise layout)."""
    ops = _layers(name, params)

    def net(state, x):
        new, i = [], 0

        def fire(x, theta):
            nonlocal i
            u, s = _if_step(state[i], x, theta)
            new.append(u)
            i += 1
            return s

        for op in ops:
            x = _apply_op(op, params, x, fire)
        return new, x

    state0 = _initial_state(net, images)

    def body(carry, _):
        state, total = carry
        state, out = net(state, images)
        total = total + out
        return (state, total), total

    out_shape = jax.eval_shape(lambda: net(state0, images)[1])
    total0 = jnp.zeros(out_shape.shape, out_shape.dtype)
    _, cumulative = jax.lax.scan(body, (state0, total0), None, length=num_steps)
    return cumulative


def simulate_time_folded(name: str, params, images, num_steps: int):
    """Cumulative readout ``[T, B, K]``: each layer on ``[T·B, ...]``, IF scanned per layer."""
    ops = _layers(name, params)
    t, b = num_steps, images.shape[0]

    def fire(x, theta):  # x: [T·B, ...] input currents of all steps
        x = x.reshape((t, b) + x.shape[1:])
        u0 = jnp.full(x.shape[1:], 0.5, x.dtype)
        _, s = jax.lax.scan(lambda u, xt: _if_step(u, xt, theta), u0, x)
        return s.reshape((t * b,) + x.shape[2:])

    first, rest = ops[0], ops[1:]
    x = _apply_op(first, params, images, fire)  # the same input every step: computed once
    x = jnp.broadcast_to(x[None], (t,) + x.shape).reshape((t * b,) + x.shape[1:])
    for op in rest:
        x = _apply_op(op, params, x, fire)
    return jnp.cumsum(x.reshape((t, b) + x.shape[1:]), axis=0)


def _apply_op(op, params, x, fire):
    kind = op[0]
    if kind == "conv":
        return _conv(x, params[op[1]]["conv"], op[2])
    if kind == "if":
        return fire(x, params[op[1]]["threshold"])
    if kind == "pool":
        return _pool2(x)
    if kind == "flatten":
        return x.reshape(x.shape[0], -1)
    if kind == "gap":
        return x.mean(axis=(1, 2))
    if kind == "dense":
        p = params[op[1]]
        return x @ p["kernel"] + p["bias"].reshape(1, -1)
    p = params[op[1]]  # ResNet BasicBlock: conv-IF-conv, shortcut, add, IF
    y = fire(_conv(x, p["conv1"]["conv"], op[2]), p["act1"]["threshold"])
    y = _conv(y, p["conv2"]["conv"])
    short = _conv(x, p["shortcut"]["conv"], op[2]) if "shortcut" in p else x
    return fire(y + short, p["act2"]["threshold"])


def _initial_state(net, images):
    """Every IF layer's membrane at ``u = 1/2``, shaped by tracing one step abstractly."""

    class Recorder:  # a state whose every membrane is a _Zero: u + x has x's shape
        def __getitem__(self, i):
            return _Zero()

    shapes = jax.eval_shape(lambda x: net(Recorder(), x)[0], images)
    return [jnp.full(s.shape, 0.5, s.dtype) for s in shapes]


class _Zero:
    """Stands in for a membrane while shapes are traced: ``u + x`` is ``x``'s shape."""

    def __add__(self, other):
        return other

    __radd__ = __add__


@functools.partial(jax.jit, static_argnames=("name", "num_steps"))
def stepwise(name, params, images, *, num_steps):
    """Jitted :func:`simulate_stepwise`."""
    return simulate_stepwise(name, params, images, num_steps)


@functools.partial(jax.jit, static_argnames=("name", "num_steps"))
def time_folded(name, params, images, *, num_steps):
    """Jitted :func:`simulate_time_folded`."""
    return simulate_time_folded(name, params, images, num_steps)
