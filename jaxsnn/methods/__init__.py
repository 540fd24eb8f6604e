"""Conversion methods: one registry, one module per method family.

============================  ==============================================================
module                        methods
============================  ==============================================================
:mod:`.plain`                 ``qcfs`` (θ = λ, v(0) = θ/2), ``zero`` (v(0) = 0)
:mod:`.srp`                   ``srp`` (residual-potential masks)
:mod:`.cos`                   ``cos`` (offset-spike calibration of v(0))
:mod:`.calibration`           ``calib_max``, ``calib_mse``, ``calib_light``, ``calib_advanced``
:mod:`.burst`                 ``burst`` (AdaFire caps), ``ssc`` (+ threshold ratios)
:mod:`.icsnn`                 ``icsnn`` (data-driven v(0), coding compensation)
============================  ==============================================================

Use :func:`convert` (``(method name, ANN, variables, calibration batches, options) ->``
:class:`Converted`); :func:`names`, :func:`get` and :func:`option_table` describe what is
registered. Support modules: :mod:`.thresholds`, :mod:`.correction`, :mod:`.allocation` (the
calibration passes) and :mod:`.iat` (early exit, available to every method).

Each method's equations, defaults, tested invariants and deviations from the authors' released
code are explained in docs/methods.md.
"""

import dataclasses
import importlib
import time
from collections.abc import Mapping, Sequence

from flax import linen as nn

from jaxsnn.convert import extract_thresholds
from jaxsnn.methods import common, iat
from jaxsnn.methods.registry import (
    Converted,
    Method,
    Option,
    all_options,
    get,
    method_table_markdown,
    names,
    option_table,
    option_table_markdown,
    register,
    resolve_options,
)
from jaxsnn.simulate import TimeBins

# Each family module registers its methods on import; this order is the registry's (and the
# README's) order.
FAMILIES = ("plain", "srp", "cos", "calibration", "burst", "icsnn")
for _family in FAMILIES:
    importlib.import_module(f"jaxsnn.methods.{_family}")


def needs_data(name: str, options: Mapping | None = None) -> bool:
    """Whether method ``name`` with ``options`` reads calibration batches (its own or IAT's)."""
    return get(name).needs_data or bool(resolve_options(name, options)["iat"])


def result_options(name: str, options: Mapping | None = None) -> dict:
    """The resolved options that can change the result of method ``name``.

    The calibration-data options count only when the method (or IAT) reads data, and the IAT
    options only with ``iat`` on; everything else always counts. Run folders are named from these.
    """
    opts = resolve_options(name, options)
    unused = set()
    if not needs_data(name, opts):
        unused |= {o.name for o in common.DATA}
    if not opts["iat"]:
        unused |= {o.name for o in common.IAT if o.name != "iat"}
    return {k: v for k, v in opts.items() if k not in unused}


def convert(
    name: str,
    ann_model: nn.Module,
    variables: Mapping,
    batches: Sequence[Mapping] = (),
    options: Mapping | None = None,
    *,
    encoding: TimeBins | None = None,
) -> Converted:
    """Converts a trained ANN with method ``name``.

    Args:
      name: a registered method (:func:`names`).
      ann_model, variables: the ANN definition and its ``params`` + ``batch_stats``.
      batches: calibration batches, dicts with ``'image'`` (and ``'label'`` for IAT); read only
        by methods that need data (:func:`needs_data`).
      options: the method's options (missing or ``None`` ones take the method's default);
        ``T`` is the number of counted steps.
      encoding: how the SNN will receive its input (None: direct, the image at every step;
        `jaxsnn.simulate.TimeBins`: stacked event frames consumed one time window per step).
        The data-driven methods calibrate, and IAT fits its exits, on SNN runs with this
        encoding (the ANN always sees the images themselves).

    Returns:
      The :class:`Converted` SNN; its ``fields`` hold the method's results plus ``method`` and
      ``conversion_seconds``.
    """
    method = get(name)
    opts = resolve_options(name, options)
    batches = list(batches)
    if needs_data(name, opts) and not batches:
        raise ValueError(f"method {name!r} needs calibration batches (training images)")
    start = time.time()
    # Only the data-driven methods read the encoding (their convert functions take it).
    kw = {"encoding": encoding} if encoding is not None and method.needs_data else {}
    conv = method.convert(ann_model, variables, batches, opts, **kw)
    extract_thresholds(conv.params)  # Every θ finite and > 0 before anything runs.
    if opts["iat"]:
        num_steps = opts["T"]

        def run(images):
            return common.run_converted(conv, images, num_steps, encoding).cumulative

        tau = iat.fit_on_batches(
            run, batches, num_steps=num_steps, dataset_kind=opts["iat_dataset_kind"]
        )
        conv = dataclasses.replace(
            conv,
            iat={
                "thresholds": tau.tolist(),
                "metric": opts["iat_metric"],
                "dataset_kind": opts["iat_dataset_kind"],
            },
        )
    fields = {**conv.fields, "method": name, "conversion_seconds": time.time() - start}
    return dataclasses.replace(conv, fields=fields)


__all__ = [
    "Converted",
    "Method",
    "Option",
    "all_options",
    "convert",
    "get",
    "method_table_markdown",
    "names",
    "needs_data",
    "option_table",
    "option_table_markdown",
    "register",
    "resolve_options",
    "result_options",
]
