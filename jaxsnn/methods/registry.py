"""The method registry: every conversion method, its options and their defaults, in one place.

A method is a function ``(ann_model, ann_variables, calibration_batches, options) -> Converted``
registered with :func:`register` together with the :class:`Option`\\ s it reads. ``convert.py``,
the configs, the benchmarks and the README's option table all read names, options and defaults
from here (:func:`names`, :func:`get`, :func:`option_table`); adding a method means adding one
module that calls :func:`register`, plus its test.

:class:`Converted` is the one SNN representation every method returns: the SNN definition (one
spiking layer type, :class:`jaxsnn.neurons.SpikingActivation`), its params (per-layer threshold
and spike cap), the initial membrane, the start protocol (what runs before the counted steps:
nothing, SRP's masks or COS's offsets) and the method's own JSON-able fields.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flax import linen as nn

from jaxsnn.simulate import Direct, Protocol


@dataclasses.dataclass(frozen=True)
class Converted:
    """A converted SNN, ready to simulate, save and reload.

    Attributes:
      model: the SNN definition (``convert.make_snn_model``; spike counts tracked).
      params: its ``'params'`` (weights, ``threshold`` and ``max_spikes`` per spiking layer).
      membrane_init: ``'half'``, ``'zero'`` or ``{layer: u0}`` (threshold units) for
        :func:`jaxsnn.convert.init_membrane`.
      protocol: what runs before the ``T`` counted steps (:class:`jaxsnn.simulate.Direct`,
        ``SRP(presim)`` or ``COS(presim)``); the latency of counted step ``t`` is
        ``protocol.presim + t``.
      snn_kwargs: the keyword arguments of :func:`jaxsnn.convert.make_snn_model` that rebuild
        ``model`` from the ANN definition (``neuron``'s shift, ``per_channel``, ``masked``).
      fields: JSON-able results of the method (caps, ratios, budgets, timings, ...).
      compensation_layer: IC-SNN coding compensation: the spiking layer whose residual-corrected
        rate feeds an extra final-step readout (``None``: no compensation).
      iat: early-exit thresholds and metric (``{'thresholds': [T], 'metric': str}``) or ``None``.
    """

    model: nn.Module
    params: dict
    membrane_init: Any = "half"
    protocol: Protocol = Direct()
    snn_kwargs: Mapping = dataclasses.field(default_factory=dict)
    fields: Mapping = dataclasses.field(default_factory=dict)
    compensation_layer: str | None = None
    iat: Mapping | None = None


@dataclasses.dataclass(frozen=True)
class Option:
    """One option a method reads.

    Attributes:
      name: the key (``config.convert.<name>`` on the command line).
      default: the value used when the option is not given (``None`` is not a default: every
        option has a concrete one).
      doc: one line: what it means (the README's option table).
      choices: the allowed values, for string options.
      minimum: the smallest allowed value, for numeric options.
    """

    name: str
    default: Any
    doc: str
    choices: tuple | None = None
    minimum: float | None = None

    @property
    def kind(self) -> type:
        """The Python type of the option's values (from the default)."""
        return type(self.default)

    def check(self, value) -> Any:
        """Returns ``value`` validated (ints accepted for floats); raises a one-line ValueError."""
        kind, name = self.kind, self.name
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is tuple and isinstance(value, list):
            value = tuple(value)
        what = {int: "an integer", float: "a number", bool: "True or False", str: "a string"}
        expected = what.get(kind, f"a {kind.__name__}")
        if self.minimum is not None and kind in (int, float):
            expected += f" >= {self.minimum:g}"
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{name}: must be {expected}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name}: must be one of {list(self.choices)}, got {value!r}")
        if kind in (int, float) and not math.isfinite(value):
            raise ValueError(f"{name}: must be finite, got {value!r}")
        if self.minimum is not None and kind in (int, float) and value < self.minimum:
            raise ValueError(f"{name}: must be {expected}, got {value!r}")
        return value


ConvertFn = Callable[[nn.Module, Mapping, Sequence[Mapping], Mapping], Converted]


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered conversion method.

    Attributes:
      name: ``config.convert.method``.
      summary: one line for the README's method table.
      convert: ``(ann_model, ann_variables, calibration_batches, options) -> Converted``; a
        method that reads data also takes the keyword ``encoding`` (the SNN's input encoding,
        `jaxsnn.simulate.TimeBins`, given only when not direct).
      options: the options it reads, with their defaults for this method.
      needs_data: whether it reads calibration batches (training images).
      fitted_to_T: whether the conversion itself depends on ``T`` (thresholds, shifts or
        corrections fitted for T steps): its accuracies at t < T are then not those of a
        conversion for t, and reports mark them.
      paper: the paper it implements (for the docs).
    """

    name: str
    summary: str
    convert: ConvertFn
    options: tuple[Option, ...]
    needs_data: bool = False
    fitted_to_T: bool = False
    paper: str = ""

    def defaults(self) -> dict:
        """``{option: default}`` for this method."""
        return {o.name: o.default for o in self.options}


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Adds ``method`` to the registry (its name must be new)."""
    if method.name in _REGISTRY:
        raise ValueError(f"method {method.name!r} is already registered")
    names_seen = [o.name for o in method.options]
    if len(set(names_seen)) != len(names_seen):
        raise ValueError(f"method {method.name!r} lists an option twice: {names_seen}")
    _REGISTRY[method.name] = method
    return method


def names() -> tuple[str, ...]:
    """The registered method names, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> Method:
    """The method called ``name``; a one-line ValueError lists the others."""
    if name not in _REGISTRY:
        raise ValueError(f"config.convert.method: unknown method {name!r}; choose one of {names()}")
    return _REGISTRY[name]


def resolve_options(name: str, given: Mapping | None = None) -> dict:
    """The complete, validated options of method ``name``.

    Every option of the method gets its value from ``given`` when present and not ``None``, else
    its default. Keys of ``given`` that no method reads are ignored here (the command line keeps
    one flat namespace for all methods, and ml_collections rejects unknown fields there).
    """
    method, given = get(name), dict(given or {})
    out = {}
    for option in method.options:
        value = given.get(option.name)
        out[option.name] = option.default if value is None else option.check(value)
    return out


def all_options() -> dict[str, Option]:
    """Every option name any method reads, with its first definition (for config schemas)."""
    out: dict[str, Option] = {}
    for method in _REGISTRY.values():
        for option in method.options:
            out.setdefault(option.name, option)
    return out


def option_table() -> list[dict]:
    """One row per option: name, meaning, and for each method that reads it, its default.

    The README's option table is generated from these rows (and a test keeps them in sync).
    """
    rows: dict[str, dict] = {}
    for method in _REGISTRY.values():
        for option in method.options:
            row = rows.setdefault(
                option.name, {"name": option.name, "doc": option.doc, "defaults": {}}
            )
            if option.choices is not None:
                row["choices"] = list(option.choices)
            row["defaults"][method.name] = option.default
    return list(rows.values())


def option_table_markdown() -> str:
    """The option table as Markdown (README, ``convert.py --help_methods``)."""
    lines = [
        "| option | meaning | default (methods) |",
        "|---|---|---|",
    ]
    for row in option_table():
        by_value: dict[str, list[str]] = {}
        for method, default in row["defaults"].items():
            by_value.setdefault(_fmt(default), []).append(method)
        every = len(row["defaults"]) == len(_REGISTRY)
        defaults = "; ".join(
            f"`{v}` ({'all' if every and len(by_value) == 1 else ', '.join(ms)})"
            for v, ms in by_value.items()
        )
        doc = row["doc"] + (
            f" One of {', '.join(f'`{c}`' for c in row['choices'])}." if "choices" in row else ""
        )
        lines.append(f"| `{row['name']}` | {doc} | {defaults} |")
    return "\n".join(lines) + "\n"


def method_table_markdown() -> str:
    """The method table as Markdown: name, what it does, whether it reads training data."""
    lines = ["| method | what | reads training data | paper |", "|---|---|---|---|"]
    for m in _REGISTRY.values():
        data = "yes" if m.needs_data else "no"
        lines.append(f"| `{m.name}` | {m.summary} | {data} | {m.paper} |")
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)
