r"""ImageNet, ResNet-34 with QCFS activations (reference 3×3 stride-1 stem, no max-pool).

Run::

    python train.py --config configs/imagenet_resnet34_qcfs.py --workdir /tmp/imagenet_resnet34_qcfs
    python train.py --config configs/imagenet_resnet34_qcfs.py:runlocal --workdir /tmp/smoke

Recipe (QCFS, putshua/SNN_conversion_QCFS): SGD m0.9, lr 0.1, wd 5e-4, cosine per epoch, L=16
(the QCFS ImageNet checkpoints), RandomResizedCrop 224 + flip (ColorJitter not implemented). Epochs
(120) and batch (256) are our assumptions (the released ImageNet training script does not run as
published). The reference stem costs ~16x torchvision's FLOPs; ``:stem=imagenet`` selects the
7×7/2 stem instead. Needs ImageNet prepared as TFDS array_record (config.data_dir).

Expected: not yet measured here (no GPU run yet). Paper: ANN 74.32%.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config; ``arg`` keys as in :func:`configs.common.qcfs_config`."""
    return common.qcfs_config(
        arg,
        dataset="imagenet2012",
        model="ResNet34",
        levels=16,
        epochs=120,
        batch=256,
        lr=0.1,
        augment="crop_flip",
        eval_batch=256,
        stem="cifar",
    )
