"""PyTorch twins of SmallCNN, ResNet20 and VGG16 for the P2/P3 comparisons (NCHW layout).

``build_torch(name, act, params=None, bn=False)`` builds the network with activation ``act``
(``'if'``: integrate-and-fire with reset by subtraction, ``'qcfs'``: the QCFS ANN activation with a
straight-through floor, ``'relu'``); with ``params`` (a BN-folded jaxsnn params tree) the weights
are copied over (HWIO → OIHW, dense [in, out] → [out, in]). Flatten happens in NHWC order so the
first FC layer's weights match jaxsnn's.
"""

import numpy as np
import torch
from torch import nn

from bench.specs import SPECS


class IFNeuron(nn.Module):
    """IF with reset by subtraction in threshold units: u += x/θ, s = 1[u ≥ 1], u -= s."""

    def __init__(self, threshold: float = 1.0):
        super().__init__()
        self.threshold = nn.Parameter(torch.tensor(threshold), requires_grad=False)
        self.u = None

    def reset(self):
        self.u = None

    def forward(self, x):
        if self.u is None:
            self.u = torch.full_like(x, 0.5)
        self.u = self.u + x / self.threshold
        s = (self.u >= 1).to(x.dtype)
        self.u = self.u - s
        return s * self.threshold


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, g):
        return g


class QCFS(nn.Module):
    """λ · clamp(floor(L x/λ + 1/2)/L, 0, 1) with trainable λ (the reference activation)."""

    def __init__(self, levels: int = 8, threshold: float = 8.0):
        super().__init__()
        self.levels = levels
        self.threshold = nn.Parameter(torch.tensor(threshold))

    def forward(self, x):
        q = _FloorSTE.apply(x / self.threshold * self.levels + 0.5) / self.levels
        return torch.clamp(q, 0, 1) * self.threshold


def _act(kind: str):
    return {"if": IFNeuron, "qcfs": QCFS, "relu": nn.ReLU}[kind]()


def _conv(cin, cout, k, stride, bias, bn):
    conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=bias or not bn)
    return nn.Sequential(conv, nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)) if bn else conv


class Block(nn.Module):
    """ResNet BasicBlock: conv-act-conv, shortcut, add, act."""

    def __init__(self, cin, cout, stride, act, bn):
        super().__init__()
        self.conv1, self.act1 = _conv(cin, cout, 3, stride, False, bn), _act(act)
        self.conv2, self.act2 = _conv(cout, cout, 3, 1, False, bn), _act(act)
        proj = stride != 1 or cin != cout
        self.shortcut = _conv(cin, cout, 1, stride, False, bn) if proj else nn.Identity()

    def forward(self, x):
        y = self.conv2(self.act1(self.conv1(x)))
        return self.act2(y + self.shortcut(x))


class Net(nn.Module):
    """The three architecture families, named to mirror the jaxsnn variable paths."""

    def __init__(self, name: str, act: str, bn: bool, num_classes: int = 10):
        super().__init__()
        spec = SPECS[name]
        self.kind, self.layers = spec["kind"], nn.ModuleDict()
        cin = spec["in"]
        if self.kind in ("cnn", "vgg"):
            stages = spec.get("stages", (1,) * len(spec["widths"]))
            for b, (n, w) in enumerate(zip(stages, spec["widths"], strict=True)):
                for j in range(n):
                    lname = f"conv{b + 1}" if self.kind == "cnn" else f"block{b + 1}_conv{j + 1}"
                    self.layers[lname] = _conv(cin, w, 3, 1, self.kind == "vgg", bn)
                    self.layers[lname + "_act"] = _act(act)
                    cin = w
                self.layers[f"pool{b}"] = nn.AvgPool2d(2)
            flat = cin * (28 // 4) ** 2 if self.kind == "cnn" else cin * (32 >> len(stages)) ** 2
            fcs = ("fc1",) if self.kind == "cnn" else ("fc1", "fc2")
            for fc in fcs:
                self.layers[fc], self.layers[fc + "_act"] = (
                    nn.Linear(flat, spec["hidden"]),
                    _act(act),
                )
                flat = spec["hidden"]
            self.fcs = fcs
        else:
            w0 = spec["widths"][0]
            self.layers["stem"], self.layers["stem_act"] = (
                _conv(cin, w0, 3, 1, False, bn),
                _act(act),
            )
            cin = w0
            for s, (n, w) in enumerate(zip(spec["stages"], spec["widths"], strict=True)):
                for b in range(n):
                    stride = 2 if (s > 0 and b == 0) else 1
                    self.layers[f"stage{s + 1}_block{b + 1}"] = Block(cin, w, stride, act, bn)
                    cin = w
            flat = cin
        self.head = nn.Linear(flat, num_classes)

    def forward(self, x):
        for lname, layer in self.layers.items():
            if self.kind != "resnet" and lname == "fc1":
                x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC flatten order, like jaxsnn
            x = layer(x)
        if self.kind == "resnet":
            x = x.mean(dim=(2, 3))
        return self.head(x)

    def reset(self):
        for m in self.modules():
            if isinstance(m, IFNeuron):
                m.reset()


def _tensor(a):
    return torch.from_numpy(np.array(a, dtype=np.float32))


def load_folded(net: Net, params: dict) -> Net:
    """Copies a BN-folded jaxsnn params tree into ``net`` (built with ``bn=False``)."""

    def conv(module: nn.Conv2d, p):
        module.weight.data = _tensor(p["kernel"]).permute(3, 2, 0, 1).contiguous()
        module.bias.data = _tensor(p["bias"])

    def dense(module: nn.Linear, p):
        module.weight.data = _tensor(p["kernel"]).T.contiguous()
        module.bias.data = _tensor(p["bias"])

    for lname, layer in net.layers.items():
        p = params.get(lname)
        if isinstance(layer, nn.Conv2d):
            conv(layer, p["conv"])
        elif isinstance(layer, nn.Linear):
            dense(layer, p)
        elif isinstance(layer, Block):
            for sub in ("conv1", "conv2", "shortcut"):
                if sub in p:
                    conv(getattr(layer, sub), p[sub]["conv"])
            for sub in ("act1", "act2"):
                getattr(layer, sub).threshold.data = _tensor(p[sub]["threshold"])
        elif isinstance(layer, (IFNeuron, QCFS)):
            layer.threshold.data = _tensor(p["threshold"])
    dense(net.head, params["head"])
    return net


def simulate_if(net: Net, images: torch.Tensor, num_steps: int) -> torch.Tensor:
    """The reference SNN loop: for each t, run the whole net, accumulate the readout."""
    net.reset()
    total = None
    with torch.no_grad():
        for _ in range(num_steps):
            out = net(images)
            total = out if total is None else total + out
    return total
