"""Host-side input pipelines: grain over TFDS random-access sources, without TensorFlow.

Datasets (``config.dataset``): 'mnist', 'fashion_mnist', 'cifar10', 'cifar100',
'imagenet2012', 'idx' (any folder of MNIST-format IDX files) and the event-camera datasets
'nmnist', 'dvs_gesture', 'cifar10_dvs' (stacked event frames, `jaxsnn.data.events`). Each
is read from a TFDS dataset prepared in array_record format in ``config.data_dir`` or, when
there is none, from the files users already have in ``config.local_dir`` (old name
``config.idx_dir``): IDX files, the CIFAR python pickles (tarball or folder), an ImageNet
ImageFolder tree, event recordings in tonic's extracted layout.
Those are prepared once into ``config.data_dir`` without TensorFlow (see
`jaxsnn.data.datasets`). Fashion-MNIST is looked for in
``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``; see
``scripts/get_fashion_mnist.sh``) by default. Nothing is ever downloaded.

``batch_size`` arguments are global; on a run of several JAX processes each process
yields its own contiguous rows of every batch. Training batches are deterministic in
``(config.seed, epoch, step)`` and resumable at any step; evaluation batches cover a
split exactly once with a padding 'mask'. See `jaxsnn.data.pipeline` for determinism,
sharding and throughput (``config.data_workers``, ``config.data_prefetch``).
"""

from jaxsnn.data.datasets import DatasetInfo, get_dataset_info
from jaxsnn.data.loader import close_streams
from jaxsnn.data.pipeline import (
    calibration_batches,
    eval_batches,
    num_eval_batches,
    steps_per_epoch,
    train_batches,
)

__all__ = [
    "DatasetInfo",
    "calibration_batches",
    "close_streams",
    "eval_batches",
    "get_dataset_info",
    "num_eval_batches",
    "steps_per_epoch",
    "train_batches",
]
