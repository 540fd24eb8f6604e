r"""Input encodings: the same image at every step (direct) or one frame per step (time-major).

Direct encoding feeds the normalised image, unchanged, at every step: the first layer receives a
constant current (every conversion paper's protocol, and the Adaptive Calibration code's for its
stacked event frames). Time-major input is a sequence ``[T, B, H, W, C]``: frame ``t`` is fed at
step ``t + 1`` (``simulate(..., time_major=True)``).

:class:`TimeBins` turns stacked event frames into such a sequence. An event dataset's example
holds ``n`` time bins × ``P`` polarities as channels (channel ``k·P + p``,
`jaxsnn.data.events`). Step ``t`` of ``T`` covers the time window :math:`I_t = [t/T, (t+1)/T)`
of the recording, bin ``k`` the window :math:`J_k = [k/n, (k+1)/n)`; the frame of step ``t``
keeps each bin's channels weighted by

.. math::  c_{tk} = T n\,|I_t \cap J_k| = \max(0, \min((t+1)n, (k+1)T) - \max(tn, kT)),

and zeroes the others. So for ``T = n`` step ``t`` sees bin ``t`` alone, for ``T = m·n`` each bin
is repeated over ``m`` steps, and otherwise a step straddling two bins sees both, in proportion
(events are taken as spread evenly within a bin). The weights make every bin's mean over the
``T`` steps exactly 1, :math:`\frac1T\sum_t c_{tk} = 1`: the first layer's input, averaged over the
counted steps, is the stacked image the ANN was trained on, as under direct encoding. What
differs is *when* the input arrives: the SNN consumes the recording in its temporal order, one
window per step, like an event-driven network fed by the sensor.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from jaxsnn.typing import Frames, Images


def take_frames(frames: Frames, first: int, count: int) -> Frames:
    """Frames ``first, first + 1, ..., first + count - 1`` of ``frames``, indices modulo ``T``.

    A protocol that runs more steps than there are frames (SRP's pre-simulation plus its counted
    steps) replays the sequence from its start, as the reference code replays its input.
    """
    total = frames.shape[0]
    if first == 0 and count == total:
        return frames
    return jnp.take(frames, (first + np.arange(count)) % total, axis=0)


def time_bin_weights(num_bins: int, num_steps: int) -> np.ndarray:
    """The integer weights ``c [T, n]`` of bin ``k`` at step ``t`` (module docstring)."""
    t = np.arange(num_steps)[:, None]
    k = np.arange(num_bins)[None, :]
    overlap = np.minimum((t + 1) * num_bins, (k + 1) * num_steps) - np.maximum(
        t * num_bins, k * num_steps
    )
    return np.maximum(overlap, 0)


@dataclasses.dataclass(frozen=True)
class TimeBins:
    """Stacked event frames (``num_bins`` time bins × polarities) consumed in time.

    Hashable, so jitted functions can take it as a static argument.

    Attributes:
      num_bins: time bins in the input's channels (``config.n_time_bins``).
    """

    num_bins: int

    def __post_init__(self):
        if isinstance(self.num_bins, bool) or not isinstance(self.num_bins, int):
            raise ValueError(f"num_bins: must be a positive integer, got {self.num_bins!r}")
        if self.num_bins < 1:
            raise ValueError(f"num_bins: must be a positive integer, got {self.num_bins!r}")

    def check(self, channels: int) -> None:
        """Raises a one-line ``ValueError`` unless ``channels`` holds whole time bins."""
        if channels % self.num_bins:
            raise ValueError(
                f"images: {channels} channels do not hold {self.num_bins} time bins (channels "
                "must be time bins x polarities); set config.n_time_bins to the data's"
            )

    def __call__(self, images: Images, num_steps: int) -> Frames:
        """``[B, H, W, C]`` stacked frames → ``[num_steps, B, H, W, C]`` time-major frames."""
        channels = images.shape[-1]
        self.check(channels)
        weights = time_bin_weights(self.num_bins, num_steps)
        per_channel = np.repeat(weights, channels // self.num_bins, axis=1)  # [T, C]
        shape = (num_steps,) + (1,) * (images.ndim - 1) + (channels,)
        scale = jnp.asarray(per_channel.reshape(shape), images.dtype)
        return images[None] * scale  # Same rank: [1, B, H, W, C] × [T, 1, 1, 1, C].


def snn_input(images: Images, num_steps: int, encoding: TimeBins | None = None):
    """``(input, time_major)`` for ``simulate`` of ``images`` under ``encoding`` (None: direct)."""
    if encoding is None:
        return images, False
    return encoding(images, num_steps), True
