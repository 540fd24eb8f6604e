"""Layer layout of the benchmarked architectures, shared by the PyTorch and pure-JAX twins.

Each entry mirrors the jaxsnn model of the same name (``jaxsnn.models.get_model``): ``cnn`` is
conv blocks (conv, act, 2×2 average pool) then one hidden FC layer; ``vgg`` is VGG stages of 3×3
convs with a 2×2 average pool after each stage, then two hidden FC layers; ``resnet`` is the CIFAR
ResNet (3×3 stem, BasicBlocks, global average pool). Every net ends in an analog ``head``.
"""

SPECS = {
    "SmallCNN": {"kind": "cnn", "widths": (32, 64), "hidden": 256, "in": 1},
    "_CNNTiny": {"kind": "cnn", "widths": (4,), "hidden": 8, "in": 1},
    "ResNet20": {"kind": "resnet", "stages": (3, 3, 3), "widths": (16, 32, 64), "in": 3},
    "_ResNetTiny": {"kind": "resnet", "stages": (1, 1), "widths": (4, 8), "in": 3},
    "VGG16": {
        "kind": "vgg",
        "stages": (2, 2, 3, 3, 3),
        "widths": (64, 128, 256, 512, 512),
        "hidden": 4096,
        "in": 3,
    },
    "_VGGTiny": {"kind": "vgg", "stages": (1, 1), "widths": (4, 8), "hidden": 16, "in": 3},
}
