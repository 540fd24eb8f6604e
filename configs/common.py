"""Shared config pieces: the ``path.py:key=value,...`` argument parser and common blocks.

Every config's ``get_config(arg=None)`` starts with :func:`parse_arg`, so one command line picks
options without editing files (big_vision style)::

    python train.py --config configs/fashion_mnist_cnn.py:L=8,epochs=3 --workdir /tmp/fm
"""

import ml_collections


def _cast(key: str, text: str, default):
    """Converts ``text`` to the type of ``default`` (bool, int, float or str)."""
    if isinstance(default, bool):
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on", ""):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"config arg {key}: expected a boolean, got {text!r}")
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return kind(text)
            except ValueError:
                raise ValueError(
                    f"config arg {key}: expected {kind.__name__}, got {text!r}"
                ) from None
    return text


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses ``"L=8,epochs=3,runlocal"`` against typed ``defaults``.

    ``key=value`` is cast to the type of the default; a bare ``key`` means ``True``. Keys that are
    not in ``defaults`` raise, so a typo never silently trains the wrong model.

    Args:
      arg: the text after ``:`` in ``--config path.py:...`` (``None`` or empty: all defaults).
      **defaults: allowed keys and their default values (their types fix the parsing).

    Returns:
      A ConfigDict with one field per key of ``defaults``.

    Raises:
      ValueError: unknown key or a value of the wrong type (one line naming the key).
    """
    values = dict(defaults)
    for item in filter(None, (part.strip() for part in (arg or "").split(","))):
        key, sep, text = item.partition("=")
        key = key.strip()
        if key not in defaults:
            raise ValueError(f"config arg {key!r}: unknown; allowed keys are {sorted(defaults)}")
        default = defaults[key]
        if not sep:
            values[key] = True
        elif default is None:
            values[key] = text
        else:
            values[key] = _cast(key, text.strip(), default)
    return ml_collections.ConfigDict(values)


def sgd_block(config: ml_collections.ConfigDict, *, lr: float, wd: float = 5e-4) -> None:
    """QCFS/SRP optimiser (their released recipe): SGD momentum 0.9, wd on all params, cosine."""
    config.optimizer = "sgd"
    config.learning_rate = lr
    config.momentum = 0.9
    config.weight_decay = wd
    config.schedule = "cosine"
    config.warmup_epochs = 0


def model_block(config: ml_collections.ConfigDict, *, model: str, levels: int) -> None:
    """ANN architecture with a QCFS activation of ``levels`` steps and λ initialised to 8."""
    config.model = model
    config.model_kwargs = ml_collections.ConfigDict()  # Extra constructor args (e.g. stem).
    config.num_classes = None  # None: taken from the dataset.
    config.activation = "qcfs"  # 'qcfs' | 'relu' | 'clip_relu'
    config.levels = levels
    config.init_threshold = 8.0
    config.threshold_min = 1e-3  # λ is projected to >= this after every update.


def loop_block(config: ml_collections.ConfigDict, *, epochs: int, batch: int, eval_batch: int):
    """Epochs, batch sizes, seed, checkpoint/log cadence and the progress bar."""
    config.num_epochs = epochs
    config.batch_size = batch
    config.eval_batch_size = eval_batch
    config.seed = 42
    # None: train all epochs; an int stops (and checkpoints) there. A typed placeholder, so that
    # `--config.max_steps=50` works on the command line (a plain None cannot be overridden).
    config.max_steps = ml_collections.config_dict.placeholder(int)
    config.checkpoint_every_steps = 1000
    config.keep_checkpoints = 3
    config.log_every_steps = 100
    config.progress = True
    config.distributed = False  # True: call jax.distributed.initialize() (multi-host).


def convert_block(config: ml_collections.ConfigDict, *, T: int = 32, method: str = "qcfs"):
    """Fields read by ``convert.py`` (all overridable: ``--config.convert.method=srp``).

    ``method`` and its options come from the method registry (:mod:`jaxsnn.methods`; list them
    with ``python convert.py --help_methods``): every option is a field here whose unset value
    (``None``) means "the method's default". Besides: ``T`` (counted steps), ``checkpoint``
    ('best' | 'latest' | a step), ``output_dir`` (run folder name; default from the method and
    its non-default options), ``overwrite`` (replace a folder holding another conversion),
    ``torch_checkpoint`` / ``torch_architecture`` (convert a PyTorch .pth of the QCFS/SRP code),
    ``sweep.kind`` ('' off | 'threshold' | 'potential') over ``sweep.values``, ``progress``,
    ``encoding`` (how the SNN receives its input: 'direct', the image at every step, or 'time',
    an event dataset's stacked frames consumed one time window per step; README, "Neuromorphic
    datasets").
    """
    from jaxsnn.methods import all_options

    cc = dict(
        T=T,
        method=method,
        checkpoint="best",
        output_dir="",
        overwrite=False,
        torch_checkpoint="",
        torch_architecture="",
        progress=True,
        export="",  # '' (none) or 'nir': also write snn.nir (README "Export").
        sweep=ml_collections.ConfigDict(dict(kind="", values=(0.6, 0.8, 1.0, 1.2, 1.4))),
        encoding="direct",
    )
    for name, option in all_options().items():
        if name not in cc:
            cc[name] = ml_collections.config_dict.placeholder(option.kind)
    config.convert = ml_collections.ConfigDict(cc)


def data_block(config: ml_collections.ConfigDict, *, dataset: str, augment: str | None = None):
    """Dataset fields read by :mod:`jaxsnn.data` (``augment=None``: the dataset default).

    ``local_dir`` is the folder of the files users already have (IDX files, the CIFAR python
    pickles or their tarball, an ImageNet ``train/`` + ``val/`` ImageFolder tree), prepared once
    into ``data_dir`` when TFDS has not prepared the dataset there; ``idx_dir`` is its old name,
    still accepted.
    """
    placeholder = ml_collections.config_dict.placeholder
    config.dataset = dataset
    config.data_dir = placeholder(str)  # TFDS data_dir (None: TFDS default).
    config.local_dir = placeholder(str)  # Local files (None: Fashion-MNIST's Debian folder).
    config.idx_dir = placeholder(str)  # Old name of local_dir.
    # 'none' | 'crop_flip' | 'crop_flip_cutout' | 'autoaugment_cutout'
    config.augment = augment or placeholder(str)
    config.cutout = placeholder(int)  # Cutout hole size (None: the dataset default).
    config.image_size = placeholder(int)  # ImageNet crop size (None: 224).
    config.data_workers = 2  # Worker processes (training) / threads (evaluation); 0: inline.
    config.data_prefetch = 2  # Batches each worker keeps ready.


def qcfs_config(
    arg: str | None,
    *,
    dataset: str,
    model: str,
    levels: int,
    epochs: int,
    batch: int,
    lr: float,
    augment: str,
    cutout: int | None = None,
    eval_batch: int = 512,
    wd: float = 5e-4,
    stem: str = "",
) -> ml_collections.ConfigDict:
    """A QCFS/SRP-style ANN training config with command-line overrides.

    Recipes: docs/methods.md, "Architectures and training recipes".

    ``arg`` keys: ``L``, ``epochs``, ``batch``, ``lr``, ``wd``, ``seed``, ``T`` (for conversion),
    ``data_dir``, ``local_dir``, ``stem`` (ResNets: 'cifar' = reference 3×3 stem, 'imagenet' =
    7×7/2 stem), and ``runlocal`` (a 1-epoch, 10-step smoke run).
    """
    arg = parse_arg(
        arg, L=levels, epochs=epochs, batch=batch, lr=lr, wd=wd, seed=42, T=32, data_dir="",
        local_dir="", stem=stem, runlocal=False,
    )  # fmt: skip
    config = ml_collections.ConfigDict()
    data_block(config, dataset=dataset, augment=augment)
    config.cutout = cutout
    config.data_dir = arg.data_dir or None
    config.local_dir = arg.local_dir or None
    model_block(config, model=model, levels=arg.L)
    if arg.stem:
        config.model_kwargs.stem = arg.stem
    sgd_block(config, lr=arg.lr, wd=arg.wd)
    loop_block(config, epochs=arg.epochs, batch=arg.batch, eval_batch=eval_batch)
    config.seed = arg.seed
    if arg.runlocal:
        config.num_epochs, config.max_steps, config.log_every_steps = 1, 10, 1
    convert_block(config, T=arg.T)
    return config


def adamw_block(
    config: ml_collections.ConfigDict,
    *,
    lr: float = 1e-3,
    wd: float = 0.06,
    epochs: int,
    warmup: int = 0,
    smoothing: float = 0.1,
    mixup: float = 0.5,
) -> None:
    """The Adaptive Calibration code's event-data recipe (its timm optimiser and scheduler).

    AdamW (lr 1e-3, decoupled weight decay 0.06 on kernels only), per-epoch cosine to 1e-5,
    linear warm-up from 1e-5 over ``warmup`` epochs (the released default is 0), label smoothing
    0.1, mixup α 0.5 with probability 0.5, switched off for the last quarter of the epochs.
    """
    config.optimizer = "adamw"
    config.learning_rate = lr
    config.momentum = 0.9  # Unused by AdamW (β₁ = 0.9).
    config.weight_decay = wd
    config.schedule = "cosine"
    config.min_learning_rate = 1e-5
    config.warmup_epochs = warmup
    config.warmup_learning_rate = 1e-5
    config.label_smoothing = smoothing
    config.mixup_alpha = mixup
    config.mixup_prob = 0.5
    config.mixup_off_epoch = int(0.75 * epochs) if mixup > 0 else 0


def events_config(
    arg: str | None,
    *,
    dataset: str,
    model: str,
    levels: int,
    epochs: int,
    batch: int,
    size: int,
    eval_batch: int = 64,
    mixup: float = 0.5,
    T: int = 16,
) -> ml_collections.ConfigDict:
    """An event-camera config: stacked event frames, the event-data recipe (:func:`adamw_block`).

    ``arg`` keys: ``L``, ``act`` ('qcfs' | 'relu' | 'clip_relu'), ``epochs``, ``batch``, ``lr``,
    ``wd``, ``warmup`` (epochs), ``mixup`` (α; 0 off), ``smoothing``, ``bins`` (time bins; 2
    polarities each make the channels), ``size`` (frame side), ``T`` (for conversion),
    ``encoding`` ('direct' | 'time'), ``seed``, ``data_dir``, ``local_dir``, ``runlocal``.
    """
    arg = parse_arg(
        arg, L=levels, act="qcfs", epochs=epochs, batch=batch, lr=1e-3, wd=0.06, warmup=0,
        mixup=mixup, smoothing=0.1, bins=9, size=size, T=T, encoding="direct", seed=42,
        data_dir="", local_dir="", runlocal=False,
    )  # fmt: skip
    config = ml_collections.ConfigDict()
    data_block(config, dataset=dataset)
    config.data_dir = arg.data_dir or None
    config.local_dir = arg.local_dir or None
    config.n_time_bins = arg.bins
    config.image_size = arg.size
    model_block(config, model=model, levels=arg.L)
    config.activation = arg.act
    adamw_block(
        config, lr=arg.lr, wd=arg.wd, epochs=arg.epochs, warmup=arg.warmup,
        smoothing=arg.smoothing, mixup=arg.mixup,
    )  # fmt: skip
    loop_block(config, epochs=arg.epochs, batch=arg.batch, eval_batch=eval_batch)
    config.seed = arg.seed
    if arg.runlocal:
        config.num_epochs, config.max_steps, config.log_every_steps = 1, 10, 1
    convert_block(config, T=arg.T)
    config.convert.encoding = arg.encoding
    return config
