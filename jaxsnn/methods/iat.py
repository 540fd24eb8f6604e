r"""IAT — input-aware adaptive timesteps (early exit; Adaptive Calibration, AAAI 2025, after SEENN).

With :math:`P_t = \mathrm{softmax}(\sum_{k\le t}\ell(k))` from the cumulative readout ``[T, B, K]``:

- score ``'entropy'``: :math:`1 - H(P_t)/\ln K`; ``'confidence'``: :math:`\max P_t`;
- thresholds (:func:`fit_iat_thresholds`, on training batches): :math:`\bar e_t` = mean normalised
  entropy :math:`H/\ln K` of the samples classified correctly at step t (the reference collects
  the entropy itself, not 1 − entropy, in both modes; kept), :math:`e_{min} = \min_t \bar e_t`,
  CIFAR :math:`\tau_t = 0.6 + 0.4\,e^{e_{min} - \bar e_t}`, ImageNet
  :math:`\tau_t = 0.995 + 0.005\,e^{e_{min} - \bar e_t}`, and :math:`\tau_t = 1` where no sample is
  correct at t;
- inference (:func:`iat_predict`): a sample exits at the first t with score :math:`> \tau_t`
  (strict), else at T; its prediction is the argmax of the cumulative logits at its exit step.

The per-step readout comes from :func:`jaxsnn.simulate.simulate` (the released ``SpikeModel``
never returns it, so its IAT path cannot run as released). All reductions are masked sums, so
padded evaluation batches can be accumulated with :func:`iat_sums` and divided once
(:func:`iat_summary`).
"""

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from jaxsnn.typing import Images, Labels, LogitSeq, Mask, StepValues

PerStepLike = Float[ArrayLike, " T"]  # One value per step, host or device array.
ExitThresholds = PerStepLike  # τ_t.
FloatPerStep = Float[Array, " T"]
CountPerStep = Int[Array, " T"]
HostPerStep = Float[np.ndarray, " T"]
ExitSteps = Int[Array, " B"]  # Each sample's exit step, 1..T.
Count = Int[Array, ""]

THRESHOLD_FORMS = {"cifar": (0.6, 0.4), "imagenet": (0.995, 0.005)}


def normalised_entropy(cumulative: LogitSeq) -> StepValues:
    """:math:`H(P_t)/\\ln K` of the softmax of ``[T, B, K]`` cumulative logits → ``[T, B]``."""
    logp = jax.nn.log_softmax(cumulative, axis=-1)
    h = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    return h / jnp.log(jnp.asarray(cumulative.shape[-1], h.dtype))


def iat_scores(cumulative: LogitSeq, *, metric: str = "entropy") -> StepValues:
    """Exit scores ``[T, B]`` (``'entropy'`` or ``'confidence'``); higher means more certain."""
    if metric == "entropy":
        return 1 - normalised_entropy(cumulative)
    if metric == "confidence":
        return jnp.max(jax.nn.softmax(cumulative, axis=-1), axis=-1)
    raise ValueError(f"IAT metric must be 'entropy' or 'confidence', got {metric!r}")


def iat_statistics(
    cumulative: LogitSeq, labels: Labels, mask: Mask | None = None
) -> tuple[FloatPerStep, CountPerStep]:
    """Per step: (Σ normalised entropy of correct samples ``[T]``, number correct ``[T]``)."""
    hits = jnp.argmax(cumulative, axis=-1) == labels[None, :]
    if mask is not None:
        hits = hits & mask[None, :].astype(bool)
    e = normalised_entropy(cumulative)
    return jnp.sum(jnp.where(hits, e, jnp.zeros_like(e)), axis=1), jnp.sum(hits, axis=1)


def iat_thresholds_from_statistics(
    entropy_sum: PerStepLike,
    num_correct: PerStepLike,
    *,
    dataset_kind: str = "cifar",
) -> HostPerStep:
    """Exit thresholds ``τ [T]`` from summed statistics (see :func:`iat_statistics`)."""
    if dataset_kind not in THRESHOLD_FORMS:
        raise ValueError(
            f"dataset_kind must be one of {sorted(THRESHOLD_FORMS)}, got {dataset_kind!r}"
        )
    base, scale = THRESHOLD_FORMS[dataset_kind]
    entropy_sum = np.asarray(entropy_sum, np.float64)
    num_correct = np.asarray(num_correct, np.float64)
    some = num_correct > 0
    mean_e = np.where(some, entropy_sum / np.maximum(num_correct, 1), 1.0)
    tau = base + scale * np.exp(np.min(mean_e) - mean_e)
    return np.where(some, np.minimum(tau, 1.0), 1.0).astype(np.float32)


def fit_iat_thresholds(
    cumulative: LogitSeq,
    labels: Labels,
    mask: Mask | None = None,
    *,
    dataset_kind: str = "cifar",
) -> HostPerStep:
    """Exit thresholds ``τ [T]`` from one ``[T, B, K]`` cumulative readout and its labels."""
    s, n = iat_statistics(cumulative, labels, mask)
    return iat_thresholds_from_statistics(s, n, dataset_kind=dataset_kind)


def iat_predict(
    cumulative: LogitSeq, thresholds: ExitThresholds, *, metric: str = "entropy"
) -> tuple[ExitSteps, Labels]:
    """Early exit: ``(exit_step [B] in 1..T, prediction [B])``."""
    scores = iat_scores(cumulative, metric=metric)
    num_steps = cumulative.shape[0]
    tau = jnp.asarray(thresholds, scores.dtype).reshape((num_steps, 1))
    passed = (scores > tau).at[-1].set(True)
    exit_index = jnp.argmax(passed, axis=0)  # first True
    preds = jnp.argmax(cumulative, axis=-1)  # [T, B]
    prediction = jnp.take_along_axis(preds, exit_index[None, :], axis=0)[0]
    return exit_index + 1, prediction


class IATSums(NamedTuple):
    """Masked sums over samples; add them across batches, then call :func:`iat_summary`."""

    correct: Count
    nseen: Count
    step_sum: Count
    exits: CountPerStep  # Samples exiting at each step.


def iat_sums(
    cumulative: LogitSeq,
    thresholds: ExitThresholds,
    labels: Labels,
    mask: Mask | None = None,
    *,
    metric: str = "entropy",
) -> IATSums:
    """Accuracy, exit-step and exit-histogram sums of one (possibly padded) batch."""
    exit_step, prediction = iat_predict(cumulative, thresholds, metric=metric)
    m = jnp.ones(labels.shape, jnp.int32) if mask is None else mask.astype(jnp.int32)
    one_hot = jax.nn.one_hot(exit_step - 1, cumulative.shape[0], dtype=jnp.int32)
    return IATSums(
        correct=jnp.sum((prediction == labels).astype(jnp.int32) * m),
        nseen=jnp.sum(m),
        step_sum=jnp.sum(exit_step * m),
        exits=jnp.sum(one_hot * m[:, None], axis=0),
    )


def iat_summary(sums: IATSums) -> dict:
    """``{'accuracy', 'mean_timesteps', 'exit_fraction' [T]}`` from accumulated sums."""
    n = max(int(sums.nseen), 1)
    return {
        "accuracy": int(sums.correct) / n,
        "mean_timesteps": int(sums.step_sum) / n,
        "exit_fraction": [int(e) / n for e in np.asarray(sums.exits)],
    }


def fit_on_batches(
    run: Callable[[Images], LogitSeq],
    batches: Iterable[Mapping],
    *,
    num_steps: int,
    dataset_kind: str,
) -> HostPerStep:
    """Exit thresholds ``τ [T]`` from calibration batches (dicts with ``'image'``, ``'label'``).

    Args:
      run: ``images -> cumulative readout [T, B, K]`` of the converted SNN.
      batches: the calibration batches.
      num_steps: T.
      dataset_kind: ``'cifar'`` or ``'imagenet'`` (the threshold form).
    """
    s_sum, n_sum = np.zeros(num_steps), np.zeros(num_steps)
    for batch in batches:
        if "label" not in batch:
            raise ValueError("iat: the calibration batches need labels ({'image', 'label'})")
        cumulative = run(jnp.asarray(batch["image"]))
        mask = batch.get("mask")
        s, n = iat_statistics(
            cumulative, jnp.asarray(batch["label"]), None if mask is None else jnp.asarray(mask)
        )
        s_sum, n_sum = s_sum + np.asarray(s), n_sum + np.asarray(n)
    return iat_thresholds_from_statistics(s_sum, n_sum, dataset_kind=dataset_kind)
