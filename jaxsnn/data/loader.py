"""Running grain datasets of batches: inline, in threads, or in worker processes kept across epochs.

`jaxsnn.data.pipeline` describes each kind of batch as a grain ``MapDataset`` over batch numbers;
this module iterates one in order. With worker processes, the iterator of a training run can
outlive the per-epoch requests (`serve`): starting grain's workers costs seconds (each imports
JAX, which grain needs), so when the next request continues exactly where the last one ended,
the same workers go on, and they keep building batches across the epoch boundary while the
evaluation runs.
"""

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import grain
from absl import flags


def dataset(first: int, stop: int, stages: Sequence[Callable]) -> grain.MapDataset:
    """``range(first, stop)`` mapped through ``stages`` in order, as a grain ``MapDataset``."""
    ds = grain.MapDataset.range(first, stop)
    for stage in stages:
        ds = ds.map(stage)
    return ds


def in_threads(ds: grain.MapDataset, workers: int, prefetch: int) -> grain.DatasetIterator:
    """Iterates ``ds`` in order, with ``workers`` threads running ``workers + prefetch`` ahead."""
    if workers == 0:
        options = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
    else:
        options = grain.ReadOptions(num_threads=workers, prefetch_buffer_size=workers + prefetch)
    return iter(ds.to_iter_dataset(options))


def in_processes(ds: grain.MapDataset, workers: int, prefetch: int) -> grain.DatasetIterator:
    """Iterates ``ds`` in order, built by ``workers`` grain worker processes.

    Each worker builds every ``workers``-th element and keeps up to ``prefetch`` finished ones.
    """
    # grain reads its absl flags when it starts workers; outside an absl app (tests,
    # notebooks) they are unparsed, and reading an unparsed flag raises.
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    local = ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    options = grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=prefetch)
    return iter(local.mp_prefetch(options))


@dataclasses.dataclass
class _Stream:
    """A grain iterator over dataset elements ``[position, stop)``, kept open between calls."""

    key: str
    iterator: grain.DatasetIterator
    position: int
    stop: int


_STREAMS: dict[str, _Stream] = {}


def serve(slot: str, key: str, first: int, count: int, stop: int, make) -> Iterator:
    """Yields ``count`` elements from ``first`` on, reusing the open stream of ``slot``.

    Args:
      slot: name of the stream (one per kind of batch).
      key: everything besides the position that the elements depend on; a stream opened with
        another key is closed and replaced.
      first: index of the first element wanted.
      count: number of elements wanted.
      stop: how far a new stream may run ahead (exclusive), at least ``first + count``.
      make: ``make(first, stop)`` opens a new iterator over elements ``[first, stop)``.

    Returns:
      A generator; closing it before its ``count`` elements are consumed closes the stream
      (its worker processes stop), consuming them all keeps the stream open for the next call.
    """
    stream = _STREAMS.pop(slot, None)
    if stream is not None and (stream.key != key or stream.position != first):
        stream.iterator.close()
        stream = None
    if stream is None:
        stream = _Stream(key, make(first, stop), first, stop)
    return _take(slot, stream, count)


def _take(slot: str, stream: _Stream, count: int) -> Iterator:
    served = 0
    try:
        while served < count:
            batch = next(stream.iterator)
            served += 1
            yield batch
    finally:
        stream.position += served
        if served == count and stream.position < stream.stop:
            _STREAMS[slot] = stream
        else:
            stream.iterator.close()


def close_streams() -> None:
    """Stops the worker processes kept for a next epoch (they also stop at exit)."""
    while _STREAMS:
        _STREAMS.popitem()[1].iterator.close()
