"""Time-stepped SNN simulation: one ``jax.lax.scan`` over steps, readout accumulated in the carry.

Inputs use direct (analog) encoding by default: the same image is the input current source at
every step. With ``time_major=True`` the input is a sequence ``[T, B, ...]``, one frame per step
(e.g. event-camera frames, `jaxsnn.simulate.encoding`), scanned alongside the membrane.
The network's last layer is analog, so each step yields logits ``o_t``; the carry holds the
running sum ``c_t = c_{t-1} + o_t`` in step order (the order of the reference implementations),
and the scan returns ``c_t`` for every ``t ≤ T``: accuracy at every timestep from one pass.

:func:`simulate` runs, by default, with the fastest settings that keep results bit-identical to
a plain ``unroll=1`` scan (measured in ``bench/``, README "Benchmarks"): ``unroll=2`` and, on
the CPU backend, XLA's region-based copy insertion. :func:`fast_jit` applies the same compile
options to any function that simulates (sweeps, evaluation, calibration).
"""

import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxsnn import tree as tree_lib
from jaxsnn.metrics.energy import sow_input_density
from jaxsnn.typing import Frames, Images, LogitSeq, Membrane, StepValues


class SimOutput(NamedTuple):
    """What one simulation returns (time-major).

    Attributes:
      cumulative: ``[T, B, K]`` running sum of the readout, ``cumulative[t-1] = Σ_{k≤t} o_k``.
      outputs: ``[T, B, K]`` the readout ``o_t`` of every step.
      stats: ``{layer_path: {'spikes': [T, B], ('fires': [T, B])}}`` per-sample spike counts per
        step (empty unless ``stats=True``).
      membrane: the final ``'membrane'`` collection.
    """

    cumulative: LogitSeq
    outputs: LogitSeq
    stats: dict[str, dict[str, StepValues]]
    membrane: Membrane


def _check_steps(num_steps: int, what: str = "num_steps (T)") -> None:
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps <= 0:
        raise ValueError(f"{what} must be a positive integer, got {num_steps!r}")


def _check_frames(images, num_steps: int) -> None:
    """Raises a one-line ``ValueError`` unless ``images`` is ``[num_steps, B, ...]``."""
    shape = tuple(jnp.shape(images))
    if not shape or shape[0] != num_steps:
        raise ValueError(
            f"images: time-major input must be [T, B, H, W, C] with T = num_steps = {num_steps} "
            f"frames, got shape {shape}"
        )


def _check_images(model: nn.Module, params: Mapping, membrane: Mapping, images) -> None:
    """Raises a one-line ``ValueError`` naming ``images`` if their shape does not fit the SNN.

    Shapes only, at trace time (no cost in the compiled program): the batch size and rank must
    match the ``membrane``, and the variables the model would create for these images must have
    the shapes of the given ``params`` kernels and ``membrane``.
    """
    got = tuple(images.shape)
    have = {f"membrane '{p}'": jnp.shape(v) for p, v in tree_lib.flatten(membrane).items()}
    have |= {
        f"params '{p}'": jnp.shape(v)
        for p, v in tree_lib.flatten(params).items()
        if p.rsplit("/", 1)[-1] == "kernel"  # Thresholds may legally be scalar or per channel.
    }
    state = [(k, s) for k, s in have.items() if k.startswith("membrane") and s]
    if state:
        name, shape = max(state, key=lambda item: len(item[1]))
        if len(got) < len(shape):
            raise ValueError(
                f"images: expected rank {len(shape)} ([B, H, W, C], like {name} {shape}), "
                f"got shape {got}"
            )
        if got[0] != shape[0]:
            raise ValueError(
                f"images: expected batch size {shape[0]} (like {name} {shape}), got shape "
                f"{got}; build the membrane with init_membrane(model, images.shape)"
            )
    try:
        # float32 zeros: only shapes matter, and bf16 images with float32 init params would trip
        # strict dtype promotion here although the simulation itself is consistent.
        created = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(got)))
    except Exception as err:  # Flax/lax shape errors are long: keep their first line.
        first = (str(err).splitlines() or [""])[0][:200]
        raise ValueError(f"images: shape {got} cannot be fed to this SNN: {first}") from None
    want = {
        f"membrane '{p}'": s.shape for p, s in tree_lib.flatten(created.get("membrane", {})).items()
    }
    want |= {
        f"params '{p}'": s.shape for p, s in tree_lib.flatten(created.get("params", {})).items()
    }
    for name in sorted(set(want) & set(have)):  # 'membrane …' first: it shows the image size.
        w, h = want[name], have[name]
        if w == h:
            continue
        if len(got) == len(h) == 4 and name.startswith("params") and w[:2] + w[3:] == h[:2] + h[3:]:
            raise ValueError(f"images: expected {h[2]} channel(s) ({name} is {h}), got shape {got}")
        raise ValueError(
            f"images: shape {got} does not fit this SNN (another image size?): {name} is {h}, "
            f"these images would make it {w}"
        )


def collect_stats(sown: Mapping) -> dict:
    """Turns the sown ``'stats'`` collection into ``{layer_path: {name: value}}``."""
    out: dict = {}
    for path, value in tree_lib.flatten(sown).items():
        # sow stores a tuple per name; flatten gives '.../spikes' -> (value,)
        layer, name = tree_lib.layer_of(path), path.rsplit("/", 1)[-1]
        out.setdefault(layer, {})[name] = value[0] if isinstance(value, tuple) else value
    return out


# Simulation defaults (measured in bench/: P1, 2026-11-23). On XLA:CPU the plain scan body copies
# every membrane buffer at the start of each step; region-based copy insertion removes the copies
# and ``unroll=2`` lets XLA keep the membrane chain across 2 steps: ResNet-20 (B=32) 0.84x the
# plain time at T = 8 and 32, VGG-16 (B=8) 1.00x, bit-identical results. ``unroll=4`` was faster
# on ResNet-20 but 1.09-1.14x plain on VGG-16 (wide convs: the larger body spills). Other
# backends get no option.
EVAL_UNROLL = 2


def backend_compiler_options(backend: str | None = None) -> dict:
    """XLA compile options for simulation programs on ``backend`` (default: JAX's default)."""
    backend = backend or jax.default_backend()
    return {"xla_cpu_copy_insertion_use_region_analysis": True} if backend == "cpu" else {}


def _inside_trace(args) -> bool:
    """Whether we are being traced by an enclosing ``jit``/``vmap``/``scan``."""
    try:  # JAX has no public query; fall back to looking for tracers among the arguments.
        from jax._src import core as jax_core

        return not jax_core.trace_state_clean()
    except (ImportError, AttributeError):
        return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(args))


def fast_jit(fn=None, *, static_argnames=(), **jit_kwargs):
    """``jax.jit`` with the simulation compile options of the backend in use (a decorator).

    The options are looked up when the function is first called on a backend (not at import), so
    importing jaxsnn never initialises a backend. Called inside another transformation the
    function is traced without options (XLA takes compile options only at the top level): the
    outer program's options apply.
    """

    def wrap(fn):
        @functools.cache
        def for_backend(backend: str | None):
            options = (backend_compiler_options(backend) or None) if backend else None
            return jax.jit(
                fn, static_argnames=static_argnames, compiler_options=options, **jit_kwargs
            )

        @functools.wraps(fn)
        def call(*args, **kwargs):
            backend = None if _inside_trace((args, kwargs)) else jax.default_backend()
            return for_backend(backend)(*args, **kwargs)

        call._cache_size = lambda: for_backend(jax.default_backend())._cache_size()
        # Ahead-of-time lowering without options: ``.lower(...).compile(compiler_options=...)``
        # chooses them explicitly (the benchmarks compare compile settings this way).
        call.lower = lambda *args, **kwargs: for_backend(None).lower(*args, **kwargs)
        return call

    return wrap if fn is None else wrap(fn)


@functools.partial(
    fast_jit, static_argnames=("model", "num_steps", "stats", "unroll", "time_major")
)
def simulate(
    model: nn.Module,
    params: Mapping,
    membrane: Mapping,
    images: Images | Frames,
    *,
    num_steps: int,
    stats: bool = False,
    unroll: int = EVAL_UNROLL,
    time_major: bool = False,
) -> SimOutput:
    """Runs the SNN ``model`` for ``num_steps`` steps on direct-encoded or time-major input.

    Args:
      model: an SNN module (see :func:`jaxsnn.convert.make_snn_model`).
      params: its ``'params'`` collection (thresholds and spike caps included).
      membrane: initial ``'membrane'`` collection (:func:`jaxsnn.convert.init_membrane`).
      images: ``[B, H, W, C]``, fed unchanged at every step; with ``time_major``, ``[T, B, H, W,
        C]``, frame ``t`` fed at step ``t + 1``.
      num_steps: T > 0 (with ``time_major``, the number of frames).
      stats: also return per-layer, per-step, per-sample spike counts and, for every conv/dense,
        the fraction of non-zero input entries (``'input_density'``, for the energy estimate).
      unroll: ``lax.scan`` unroll factor (results do not depend on it; the default is the
        fastest measured, see :data:`EVAL_UNROLL`).
      time_major: ``images`` is a sequence of frames, one per step (scanned as ``xs``).

    Returns:
      A :class:`SimOutput` with time-major ``[T, B, K]`` arrays.
    """
    _check_steps(num_steps)
    if time_major:
        _check_frames(images, num_steps)
    first = images[0] if time_major else images
    _check_images(model, params, membrane, first)
    mutable = ["membrane", "stats"] if stats else ["membrane"]

    def apply(state, x):
        return model.apply({"params": params, "membrane": state}, x, mutable=mutable)

    def step(carry, frame):
        state, total = carry
        x = frame if time_major else images
        if stats:
            with nn.intercept_methods(sow_input_density):
                out, new_vars = apply(state, x)
        else:
            out, new_vars = apply(state, x)
        total = total + out
        sown = collect_stats(new_vars["stats"]) if stats else {}
        return (new_vars["membrane"], total), (total, out, sown)

    out_shape = jax.eval_shape(
        lambda: model.apply({"params": params, "membrane": membrane}, first, mutable=["membrane"])
    )[0]
    total0 = jnp.zeros(out_shape.shape, out_shape.dtype)
    (final, _), (cumulative, outputs, sown) = jax.lax.scan(
        step, (membrane, total0), images if time_major else None, length=num_steps, unroll=unroll
    )
    return SimOutput(cumulative, outputs, sown, final)
