"""PNG plots for convert.py: accuracy vs timestep, per-layer rates and errors, sweeps.

Figures are built with ``matplotlib.figure.Figure`` directly (no ``pyplot``), so plotting needs
no display, selects no backend and leaves the caller's matplotlib state alone.
"""

import numpy as np
from matplotlib.figure import Figure


def _subplots(figsize):
    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_accuracy(path, latency_steps, snn_accuracy, ann_accuracy: float, label: str) -> None:
    """SNN accuracy vs (honest) latency with the ANN accuracy as a reference line."""
    fig, ax = _subplots(figsize=(6, 4))
    ax.plot(latency_steps, 100 * np.asarray(snn_accuracy), marker="o", ms=3, label=f"SNN ({label})")
    ax.axhline(100 * ann_accuracy, color="k", ls="--", lw=1, label=f"ANN {100 * ann_accuracy:.2f}%")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("timesteps (latency)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_layer_bars(path, layers: dict, key: str, ylabel: str) -> None:
    """One bar per spiking layer (forward order) for ``layers[layer][key]``."""
    names = [n for n in layers if key in layers[n]]
    fig, ax = _subplots(figsize=(max(6, 0.35 * len(names) + 2), 4))
    ax.bar(range(len(names)), [layers[n][key] for n in names])
    ax.set_xticks(range(len(names)), names, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def plot_sweep_heatmap(path, values, accuracy, xlabel: str) -> None:
    """Heatmap of accuracy [K, T] for K swept values (rows) over timesteps (columns)."""
    acc = 100 * np.asarray(accuracy)
    fig, ax = _subplots(figsize=(max(6, 0.25 * acc.shape[1] + 2), 0.4 * len(values) + 2))
    im = ax.imshow(acc, aspect="auto", cmap="viridis", origin="lower")
    ax.set_yticks(range(len(values)), [f"{v:g}" for v in values])
    ax.set_xticks(range(acc.shape[1]), [str(t + 1) for t in range(acc.shape[1])], fontsize=6)
    ax.set_xlabel("timestep t")
    ax.set_ylabel(xlabel)
    fig.colorbar(im, ax=ax, label="test accuracy (%)")
    _save(fig, path)
