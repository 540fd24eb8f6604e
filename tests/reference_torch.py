"""A PyTorch functional port of the reference networks (README "Semantics"), straight from a
reference-layout ``state_dict``: the QCFS ANN, the integrate-and-fire SNN, and random calibrated
checkpoints of any reference architecture.

The ports follow tests/fixtures/reference/README.md ("State-dict layout", "Semantics"), not
jaxsnn: BatchNorm runs unfolded in eval mode, the QCFS level is ``floor(x/up·L + 0.5)``, and the
neuron keeps ``u = v/θ`` and charges ``u ← u + x/θ`` (a true division), fires on ``u ≥ 1`` and
subtracts. Every tensor is NCHW in the run's dtype.
"""

import contextlib

import numpy as np
import torch
from torch.nn import functional as F

BN_EPS = 1e-5
VGG_STAGES = (2, 2, 3, 3, 3)
VGG_WIDTHS = (64, 128, 256, 512, 512)
RESNET_SPECS = {  # (blocks per stage, widths, stem width)
    "resnet18": ((2, 2, 2, 2), (64, 128, 256, 512), 64),
    "resnet20": ((3, 3, 3), (16, 32, 64), 16),
    "resnet34": ((3, 4, 6, 3), (64, 128, 256, 512), 64),
}
# CIFAR-10 channel statistics, to normalise uniform pixels as the fixtures' inputs are.
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465])
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616])


@contextlib.contextmanager
def single_thread():
    """One intra-op thread, as the fixtures were made (``environment.threads``): the summation
    order of a float32 convolution can depend on the thread count, and on a shared machine idle
    OpenMP workers spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Weights:
    """Layer callbacks that read a ``state_dict`` ({key: torch tensor}) of one dtype."""

    def __init__(self, state_dict: dict):
        self.p = state_dict

    def conv(self, y, key, cout, kernel, stride, bias):
        b = self.p[f"{key}.bias"] if bias else None
        return F.conv2d(y, self.p[f"{key}.weight"], b, stride=stride, padding=kernel // 2)

    def bn(self, y, key):
        p = self.p
        return F.batch_norm(
            y,
            p[f"{key}.running_mean"],
            p[f"{key}.running_var"],
            p[f"{key}.weight"],
            p[f"{key}.bias"],
            training=False,
            eps=BN_EPS,
        )

    def linear(self, y, key, out):
        return F.linear(y, self.p[f"{key}.weight"], self.p[f"{key}.bias"])

    def up(self, key):
        return self.p[f"{key}.up"]


def forward(ops, architecture: str, y, act, num_classes: int):
    """One pass of a reference architecture; ``act(y, key, up)`` is the activation at ``key``."""

    def activation(y, key):
        return act(y, key, ops.up(key))

    if architecture == "vgg16":
        for b, (n, width) in enumerate(zip(VGG_STAGES, VGG_WIDTHS, strict=True), start=1):
            for j in range(n):
                y = ops.conv(y, f"layer{b}.{4 * j}", width, 3, 1, bias=True)
                y = activation(ops.bn(y, f"layer{b}.{4 * j + 1}"), f"layer{b}.{4 * j + 2}")
            y = F.avg_pool2d(y, 2, 2)
        y = y.flatten(1)  # PyTorch's (C, H, W) order
        y = activation(ops.linear(y, "classifier.1", 4096), "classifier.2")
        y = activation(ops.linear(y, "classifier.4", 4096), "classifier.5")
        return ops.linear(y, "classifier.7", num_classes)
    blocks, widths, stem = RESNET_SPECS[architecture]
    y = activation(ops.bn(ops.conv(y, "conv1.0", stem, 3, 1, False), "conv1.1"), "conv1.2")
    cin = stem
    for s, (n, width) in enumerate(zip(blocks, widths, strict=True)):
        for j in range(n):
            k, stride = f"conv{s + 2}_x.{j}", (2 if s > 0 and j == 0 else 1)
            r = ops.bn(ops.conv(y, f"{k}.residual_function.0", width, 3, stride, False),
                       f"{k}.residual_function.1")  # fmt: skip
            r = activation(r, f"{k}.residual_function.2")
            r = ops.bn(ops.conv(r, f"{k}.residual_function.3", width, 3, 1, False),
                       f"{k}.residual_function.4")  # fmt: skip
            if stride != 1 or cin != width:
                y = ops.bn(ops.conv(y, f"{k}.shortcut.0", width, 1, stride, False),
                           f"{k}.shortcut.1")  # fmt: skip
            y = activation(r + y, f"{k}.relu")
            cin = width
    return ops.linear(y.mean(dim=(2, 3)), "fc", num_classes)


def _tensors(state_dict: dict, dtype) -> dict:
    return {k: torch.from_numpy(np.asarray(v)).to(dtype) for k, v in state_dict.items()}


def ann_forward(state_dict: dict, architecture: str, images, *, levels: int, num_classes: int,
                dtype=torch.float64):  # fmt: skip
    """The QCFS ANN: ``(logits, {activation key: floor argument x/up·L + ½})`` as numpy arrays.

    The level of an entry is ``clip(floor(argument), 0, L)``.
    """
    found = {}

    def qcfs(y, key, up):
        argument = y / up * levels + 0.5
        found[key] = argument.numpy()
        return torch.clamp(torch.floor(argument) / levels, 0, 1) * up

    x = torch.from_numpy(np.asarray(images)).to(dtype)
    with torch.no_grad(), single_thread():
        logits = forward(Weights(_tensors(state_dict, dtype)), architecture, x, qcfs, num_classes)
    return logits.numpy(), found


def snn_run(state_dict: dict, architecture: str, images, *, num_steps: int, num_classes: int,
            presim: int = 0, dtype=torch.float64) -> dict:  # fmt: skip
    """The IF SNN (QCFS, or SRP with ``presim`` = τ > 0 calls first) on constant input.

    Returns numpy arrays, layers in forward order: ``spikes`` and ``fires`` ``[τ+T, n_act, B]``
    (emitted spikes and threshold crossings per call, layer and sample), ``masks`` ``[n_act, B]``
    (SRP mask ones per layer and sample), ``membrane`` (the final ``u = v/θ`` of every layer,
    ``[B, ...]``), ``outputs`` ``[τ+T, B, K]``, ``cumulative`` ``[T, B, K]`` (the running sum of
    the T counted calls in step order, in ``dtype``) and ``names`` (the activation keys).
    """
    membrane, mask, names = {}, {}, []
    fires, spikes = [], []

    def integrate_and_fire(y, key, up):
        if key not in membrane:
            names.append(key)
            membrane[key] = torch.full_like(y, 0.5)
        u = membrane[key] + y / up
        s = (u >= 1).to(y.dtype)
        membrane[key] = u - s
        emitted = s * mask[key] if key in mask else s
        fires[-1].append(s.flatten(1).sum(1))
        spikes[-1].append(emitted.flatten(1).sum(1))
        return emitted * up

    weights = Weights(_tensors(state_dict, dtype))
    x = torch.from_numpy(np.asarray(images)).to(dtype)
    outputs, cumulative, total = [], [], None
    with torch.no_grad(), single_thread():
        for call in range(presim + num_steps):
            fires.append([])
            spikes.append([])
            out = forward(weights, architecture, x, integrate_and_fire, num_classes)
            outputs.append(out.numpy())
            if call == presim - 1:  # SRP: masks after τ calls (strict), then u restarts at ½
                for key, u in membrane.items():
                    mask[key] = (u > 0.001).to(u.dtype)
                    membrane[key] = torch.full_like(u, 0.5)
            if call >= presim:
                total = out if total is None else total + out
                cumulative.append(total.numpy())

    def stack(rows):
        return np.stack([np.stack([v.numpy() for v in row]) for row in rows])

    return {
        "spikes": stack(spikes),
        "fires": stack(fires),
        "masks": np.stack([mask[k].flatten(1).sum(1).numpy() for k in names]) if mask else None,
        "membrane": [membrane[k].numpy() for k in names],
        "outputs": np.stack(outputs),
        "cumulative": np.stack(cumulative),
        "names": names,
    }


class _Calibrate(Weights):
    """Layer callbacks that *create* the reference keys while running a float64 calibration pass.

    The generation of the fixtures (README "How parameters were set"), scaled down: He-normal
    conv/linear weights, random biases, every ``up`` uniform in [0.5, 4), BatchNorm statistics
    from the calibration batch (so the BN output is γ·N(0, 1) + β) with γ, β drawn relative to the
    layer's ``up``, and hidden Linear layers rescaled by a power of two to unit output scale.
    Every layer then has silent, intermediate and saturated outputs.
    """

    def __init__(self, rng: np.random.Generator):
        super().__init__({})
        self.rng = rng
        self.pending_up = None

    def _put(self, key, value):
        self.p[key] = torch.from_numpy(np.asarray(value, np.float32)).to(torch.float64)

    def conv(self, y, key, cout, kernel, stride, bias):
        cin = y.shape[1]
        std = np.sqrt(2.0 / (cin * kernel * kernel))
        self._put(f"{key}.weight", self.rng.normal(0, std, (cout, cin, kernel, kernel)))
        if bias:
            self._put(f"{key}.bias", self.rng.normal(0, 0.1, cout))
        return super().conv(y, key, cout, kernel, stride, bias)

    def bn(self, y, key):
        c = y.shape[1]
        up = self.rng.uniform(0.5, 4.0)
        self.pending_up = up  # the activation after this BN (or after the residual add)
        self._put(f"{key}.running_mean", y.mean(dim=(0, 2, 3)).numpy())
        self._put(f"{key}.running_var", y.var(dim=(0, 2, 3)).numpy())
        self._put(f"{key}.weight", up * self.rng.uniform(0.4, 0.9, c))
        self._put(f"{key}.bias", up * self.rng.normal(0.1, 0.2, c))
        self.p[f"{key}.num_batches_tracked"] = torch.tensor(0)
        return super().bn(y, key)

    def linear(self, y, key, out):
        fan_in = y.shape[1]
        weight = self.rng.normal(0, np.sqrt(1.0 / fan_in), (out, fan_in))
        bias = self.rng.normal(0, 0.1, out)
        self._put(f"{key}.weight", weight)
        self._put(f"{key}.bias", bias)
        z = F.linear(y, self.p[f"{key}.weight"], self.p[f"{key}.bias"])
        if key != "fc" and key != "classifier.7":  # hidden: scale to unit spread by 2^k
            gain = 2.0 ** -np.round(np.log2(float(z.std())))
            self._put(f"{key}.weight", weight * gain)
            self._put(f"{key}.bias", bias * gain)
        self.pending_up = None
        return super().linear(y, key, out)

    def up(self, key):
        up = self.pending_up if self.pending_up is not None else self.rng.uniform(0.5, 4.0)
        self.pending_up = None
        self._put(f"{key}.up", [up])
        return self.p[f"{key}.up"]


def random_state_dict(architecture: str, *, num_classes: int, levels: int, seed: int,
                      calibration_size: int = 8, input_size=(32, 32)) -> dict:  # fmt: skip
    """A float32 reference-layout ``state_dict`` (numpy) whose every layer is active (see above)."""
    rng = np.random.default_rng(seed)
    calib = random_images(calibration_size, input_size, rng)
    ops = _Calibrate(rng)

    def qcfs(y, key, up):
        return torch.clamp(torch.floor(y / up * levels + 0.5) / levels, 0, 1) * up

    with torch.no_grad(), single_thread():
        forward(ops, architecture, torch.from_numpy(calib).to(torch.float64), qcfs, num_classes)
    out = {}
    for key, value in ops.p.items():
        arr = value.numpy()
        out[key] = arr if key.endswith("num_batches_tracked") else arr.astype(np.float32)
    return out


def random_images(batch: int, input_size, rng: np.random.Generator) -> np.ndarray:
    """Uniform [0, 1) pixels normalised with CIFAR-10's mean and std, NCHW float32."""
    pixels = rng.uniform(0.0, 1.0, (batch, *input_size, 3))
    return ((pixels - CIFAR_MEAN) / CIFAR_STD).transpose(0, 3, 1, 2).astype(np.float32)
