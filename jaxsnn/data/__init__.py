"""Host-side input pipelines: TFDS random-access sources to numpy batches, without TensorFlow.

Datasets (``config.dataset``): 'mnist', 'fashion_mnist', 'cifar10', 'cifar100',
'imagenet2012' (TFDS, prepared in array_record format) and 'idx' (a local directory of
MNIST-format IDX files, ``config.idx_dir``). 'mnist' and 'fashion_mnist' fall back to
``config.idx_dir`` (default ``/usr/share/datasets/fashion-mnist``, from the Debian
package ``dataset-fashion-mnist``; see ``scripts/get_fashion_mnist.sh``) when TFDS has
not prepared them; the IDX files are then converted once into an array_record TFDS
dataset by `jaxsnn.data.idx_builder`. Nothing is ever downloaded.

Training batches are deterministic in ``(config.seed, epoch, step)`` and resumable
at any step; evaluation batches cover a split exactly once with a padding 'mask'.
See `jaxsnn.data.pipeline` for determinism and for how throughput scales with
``config.data_workers`` and ``config.data_prefetch``.
"""

from jaxsnn.data.datasets import DatasetInfo, get_dataset_info
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
    "eval_batches",
    "get_dataset_info",
    "num_eval_batches",
    "steps_per_epoch",
    "train_batches",
]
