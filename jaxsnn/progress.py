"""Progress of long loops, on a terminal or not.

On a terminal :func:`track` draws a tqdm bar on stderr. Without one (a batch job, ``nohup``, CI)
it prints a line to stdout at most every 10 % of the work or every 30 s, whichever comes first,
with the rate and the time left, so a log shows a long run advancing without thousands of bar
redraws. Only JAX process 0 reports; :func:`set_enabled` turns it off (``config.progress``).
"""

import math
import sys
import time
from collections.abc import Iterable, Iterator

_state = {"enabled": True}
LINE_EVERY_FRACTION = 0.1
LINE_EVERY_SECONDS = 30.0


def set_enabled(enabled: bool) -> None:
    """Turns progress reporting on or off for this process."""
    _state["enabled"] = bool(enabled)


def _is_first_process() -> bool:
    if "jax" not in sys.modules:
        return True
    import jax

    return jax.process_index() == 0


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class LineReporter:
    """Prints ``desc: done/total (pct) rate/s, elapsed, ~left`` lines at a bounded rate."""

    def __init__(self, desc: str, total: int | None, unit: str = "it", stream=None, clock=None):
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = stream or sys.stdout
        self.clock = clock or time.monotonic
        self.start = self.clock()
        self.done = 0
        self._last_time = self.start
        self._last_fraction = 0.0

    def update(self, n: int = 1) -> None:
        """Counts ``n`` more items; prints a line when 10 % or 30 s have passed since the last."""
        self.done += n
        now = self.clock()
        fraction = self.done / self.total if self.total else 0.0
        due = now - self._last_time >= LINE_EVERY_SECONDS or (
            self.total and fraction - self._last_fraction >= LINE_EVERY_FRACTION - 1e-12
        )
        if due or (self.total and self.done == self.total):
            self._emit(now, fraction)

    def _emit(self, now: float, fraction: float) -> None:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("nan")
            where = f"{self.done}/{self.total} ({100 * fraction:.0f}%)"
            tail = f", ~{_format_seconds(left)} left"
        else:
            where, tail = f"{self.done}", ""
        spent = _format_seconds(elapsed)
        print(
            f"{self.desc}: {where} {rate:.3g} {self.unit}/s, {spent} elapsed{tail}",
            file=self.stream,
            flush=True,
        )
        self._last_time, self._last_fraction = now, fraction


def _active(enabled: bool) -> bool:
    return enabled and _state["enabled"] and _is_first_process()


def track(
    iterable: Iterable,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
) -> Iterator:
    """Yields from ``iterable`` while reporting progress (see the module docstring)."""
    if not _active(enabled):
        yield from iterable
        return
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if sys.stderr.isatty():
        import tqdm

        yield from tqdm.tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)
        return
    reporter = LineReporter(desc, total, unit)
    for item in iterable:
        yield item
        reporter.update()


class Bar:
    """A manually advanced progress display (the training loop's per-epoch bar)."""

    def __init__(
        self,
        *,
        total: int,
        initial: int = 0,
        desc: str = "",
        unit: str = "step",
        enabled: bool = True,
    ):
        self._tqdm = self._lines = None
        if not _active(enabled):
            return
        if sys.stderr.isatty():
            import tqdm

            self._tqdm = tqdm.tqdm(
                total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True
            )
        else:
            self._lines = LineReporter(desc, total - initial, unit)

    def update(self, n: int = 1) -> None:
        """Advances by ``n``."""
        if self._tqdm is not None:
            self._tqdm.update(n)
        elif self._lines is not None:
            self._lines.update(n)

    def close(self) -> None:
        """Removes the bar (terminal); nothing to do for line reports."""
        if self._tqdm is not None:
            self._tqdm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
