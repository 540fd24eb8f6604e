"""Writers of small event-camera recordings in the real file formats, in tonic's folder layout.

- N-MNIST ``.bin``: 5 bytes per event, x, y, then the polarity bit and a 23-bit timestamp (µs) in
  big-endian order; a record with y = 240 is a timestamp-overflow marker (adds 2¹³ µs to every
  later event), as in the original files.
- DVS Gesture ``.npy``: an ``[N, 4]`` array of (x, y, p, t), t in ms (tonic's preprocessed copy).
- CIFAR10-DVS ``.aedat4``: written with ``dv-processing`` (iniVation's AEDAT4 writer).

Each writer returns, per file, the events it wrote (x, y, t, p) with the label, so tests compare
decoded events and frames against what went in.
"""

import pathlib

import numpy as np

NMNIST_OVERFLOW = 2**13


def random_events(rng, n: int, side: int, duration: int, t0: int = 0) -> dict[str, np.ndarray]:
    """``n`` events on a ``side``×``side`` sensor, sorted timestamps in ``[t0, t0 + duration]``."""
    t = np.sort(rng.integers(t0, t0 + duration + 1, n))
    t[0], t[-1] = t0, t0 + duration  # The recording spans exactly [t0, t0 + duration].
    return {
        "x": rng.integers(0, side, n),
        "y": rng.integers(0, side, n),
        "t": t,
        "p": rng.integers(0, 2, n),
    }


def nmnist_bytes(events: dict[str, np.ndarray], overflow_after: int | None = None) -> bytes:
    """Encodes events as an N-MNIST ``.bin``; with ``overflow_after=i`` an overflow marker follows
    event ``i`` and the later events' stored timestamps are 2¹³ µs smaller."""
    rows = []
    for i, (x, y, t, p) in enumerate(zip(*(events[k] for k in "xytp"), strict=True)):
        late = overflow_after is not None and i > overflow_after
        stored = int(t) - (NMNIST_OVERFLOW if late else 0)
        assert 0 <= stored < 2**23
        rows.append([x, y, (int(p) << 7) | (stored >> 16), (stored >> 8) & 255, stored & 255])
        if i == overflow_after:
            rows.append([0, 240, 0, 0, 0])
    return np.asarray(rows, np.uint8).tobytes()


def write_nmnist(root: pathlib.Path, per_class: dict[str, int], seed: int = 0) -> dict:
    """Writes ``root/NMNIST/{Train,Test}/<digit>/<id>.bin`` (``per_class[split]`` files per digit,
    digits 0–2 only); returns ``{split: [(path, label, events), ...]}`` in sorted order."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, folder in (("train", "Train"), ("test", "Test")):
        out[split] = []
        for digit in range(3):
            directory = root / "NMNIST" / folder / str(digit)
            directory.mkdir(parents=True)
            for i in range(per_class[split]):
                n = int(rng.integers(30, 80))
                events = random_events(rng, n, 34, int(rng.integers(9000, 20000)))
                path = directory / f"{i:05d}.bin"
                # The first file of each class holds an overflow marker after the last event
                # before 2¹³ µs (the recordings last longer, so later events exist).
                last_early = int(np.searchsorted(events["t"], NMNIST_OVERFLOW)) - 1
                marker = last_early if i == 0 else None
                path.write_bytes(nmnist_bytes(events, overflow_after=marker))
                out[split].append((path, digit, events))
    return out


def write_dvs_gesture(root: pathlib.Path, users: dict[str, list[int]], seed: int = 1) -> dict:
    """Writes ``root/DVSGesture/ibmGesture{Train,Test}/user<NN>_led/<label>.npy`` for
    ``users[split]``; every user records the labels 0, 1, ..., 10 except 7."""
    rng = np.random.default_rng(seed)
    labels = [k for k in range(11) if k != 7]
    out = {}
    for split, folder in (("train", "ibmGestureTrain"), ("test", "ibmGestureTest")):
        out[split] = []
        for user in users[split]:
            directory = root / "DVSGesture" / folder / f"user{user:02d}_led"
            directory.mkdir(parents=True)
            for label in labels:
                n = int(rng.integers(100, 300))
                events = random_events(rng, n, 128, int(rng.integers(3000, 6000)), t0=17)
                array = np.stack([events[k] for k in "xypt"], axis=1).astype(np.float64)
                path = directory / f"{label}.npy"
                np.save(path, array)
                out[split].append((path, label, events))
    return out


CIFAR10_DVS_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def write_cifar10_dvs(root: pathlib.Path, per_class: int, seed: int = 2) -> dict:
    """Writes ``root/CIFAR10DVS/<class>/cifar10_<class>_<i>.aedat4`` with dv-processing; returns
    ``{class: [(path, events), ...]}`` in file-name order."""
    import dv_processing as dv

    rng = np.random.default_rng(seed)
    out = {}
    for name in CIFAR10_DVS_CLASSES:
        directory = root / "CIFAR10DVS" / name
        directory.mkdir(parents=True)
        files = []
        for i in range(per_class):
            events = random_events(rng, int(rng.integers(50, 120)), 128, 100_000, t0=1_000_000)
            path = directory / f"cifar10_{name}_{i}.aedat4"
            config = dv.io.MonoCameraWriter.EventOnlyConfig("DVS128_test", (128, 128))
            writer = dv.io.MonoCameraWriter(str(path), config)
            store = dv.EventStore()
            for x, y, t, p in zip(*(events[k] for k in "xytp"), strict=True):
                store.push_back(int(t), int(x), int(y), bool(p))
            writer.writeEvents(store)
            del writer  # Closing the writer finishes the file.
            files.append((path, events))
        out[name] = sorted(files, key=lambda item: item[0].name)
    return out
