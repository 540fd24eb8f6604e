"""What the device check runs: the sections, their share of the time budget and their grids.

``GPU`` is the real check on a lent GPU (batch sizes a GPU user runs); ``QUICK`` runs every code
path on the tiny test networks so that a CPU dry run (CI) proves the script before a GPU is lent.
A section's share is relative: the driver gives each section its share of whatever time is left,
so time a section does not use goes to the ones after it.
"""

# (section, share of the time budget, minimum seconds). Order = priority: a section starts only
# when at least its minimum is left.
SECTIONS = (
    ("env", 3, 30),
    ("smoke", 20, 30),
    ("p1p2", 30, 20),
    ("precision", 9, 15),
    ("layouts", 9, 15),
    ("memory", 8, 15),
    ("train", 10, 15),
    ("sweep", 7, 15),
    ("torch_compile", 9, 20),
)

GPU = {
    "budget_s": 450.0,
    # pytest arguments of the smoke subset (x64 exactness lives in test_reference.py).
    "smoke": [
        "tests/test_reference.py",
        "tests/test_simulate.py",
        "tests/test_convert.py",
        "-k",
        "not ResNet18 and not ResNet34",  # compile-heavy BN-folding cases, exactness elsewhere
    ],
    "p1p2": {
        "networks": {"SmallCNN": (128, 512), "ResNet20": (128, 512), "VGG16": (128, 256)},
        # Order = priority: every network at T = 8 first, then 32, 4, 16.
        "steps": (8, 32, 4, 16),
        "unroll1_at": (8,),  # unroll=1 timed next to the default at these T
        "cuda_graphs": True,
        "min_reps": 5,
        "max_reps": 30,
        "min_time_s": 1.0,
    },
    "precision": {"networks": {"SmallCNN": 256, "ResNet20": 256, "VGG16": 128}, "T": 32},
    "layouts": {"networks": {"SmallCNN": 256, "ResNet20": 256, "VGG16": 128}, "steps": (8, 32)},
    "memory": {"network": "VGG16", "batch": 128, "steps": (8, 64)},
    "train": {"networks": {"SmallCNN": 256, "ResNet20": 256}, "steps": 30, "torch": ("ResNet20",)},
    "sweep": {"networks": {"ResNet20": 128, "VGG16": 64}, "ks": (4, 16), "T": 8, "reps": 5},
    "torch_compile": {"networks": {"ResNet20": 128, "SmallCNN": 128, "VGG16": 128}, "T": 8},
    "fast_compile": False,
}

QUICK = {
    "budget_s": 300.0,  # generous: the dry run checks code paths, and CI machines are shared
    "smoke": ["tests/test_simulate.py", "-k", "scan_equals_python_loop"],
    "p1p2": {
        "networks": {"_CNNTiny": (2,), "_ResNetTiny": (2,)},
        "steps": (2,),
        "unroll1_at": (2,),
        "cuda_graphs": True,
        "min_reps": 2,
        "max_reps": 2,
        "min_time_s": 0.0,
    },
    "precision": {"networks": {"_CNNTiny": 2}, "T": 2},
    "layouts": {"networks": {"_ResNetTiny": 2}, "steps": (2,)},
    "memory": {"network": "_VGGTiny", "batch": 2, "steps": (2, 4)},
    "train": {"networks": {"_ResNetTiny": 4}, "steps": 2, "torch": ("_ResNetTiny",)},
    "sweep": {"networks": {"_CNNTiny": 2}, "ks": (3,), "T": 2, "reps": 1},
    "torch_compile": {"networks": {}, "T": 2},
    # XLA optimisation passes off: the dry run checks code paths, and compiles dominate on 2 cores.
    "fast_compile": True,
}

# Image shape used for training throughput: synthetic CIFAR-sized data for every network.
TRAIN_IMAGE = {"SmallCNN": (32, 32, 3), "ResNet20": (32, 32, 3)}


def get(quick: bool) -> dict:
    """The plan for a quick (tiny networks, CPU dry run) or a full (GPU) check."""
    return QUICK if quick else GPU
