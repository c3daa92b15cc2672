"""Controls that say how much of a probe's accuracy is the network's doing.

- shuffled labels: the same probe fit on permuted labels; its accuracy is what the probe
  can memorise, and ``selectivity = accuracy - control`` (Hewitt & Liang, 2019);
- random network: the same probe on a randomly initialised network of the same
  architecture, the accuracy owed to architecture alone (convolutions keep position);
- single RGB channel: the probe on the raw pixels of one input channel, the baseline of
  what a network that saw only that channel could at best decode linearly.
"""

from __future__ import annotations

import numpy as np
import torch

from gmg.probes.datasets import ProbeError
from gmg.training.model import ImpalaAgent

CHANNELS = {"r": 0, "g": 1, "b": 2}


def shuffled_labels(y, seed: int = 0) -> np.ndarray:
    """A seeded permutation of y (n_samples,)."""
    y = np.asarray(y)
    return y[np.random.default_rng(seed).permutation(len(y))]


def random_network_like(model: ImpalaAgent, seed: int = 0) -> ImpalaAgent:
    """A freshly initialised network with ``model``'s architecture (eval mode, same device)."""
    device = next(model.parameters()).device
    # torch.manual_seed seeds every CUDA device too: fork them all, not only the CPU's
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(seed)
        fresh = ImpalaAgent(model.config)
    return fresh.to(device).eval()


def channel_index(channel: str | int) -> int:
    """``"r"``, ``"g"``, ``"b"`` or 0-2 -> 0-2; anything else is a ProbeError."""
    if isinstance(channel, str) and channel.lower() in CHANNELS:
        return CHANNELS[channel.lower()]
    if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) and 0 <= int(channel) <= 2:
        return int(channel)
    raise ProbeError(f"unknown channel {channel!r}: use 'r', 'g', 'b' (or 0, 1, 2)")


def pixel_channel(obs: torch.Tensor | np.ndarray, channel: str | int, pool: int | None = None) -> np.ndarray:
    """Raw pixels of one RGB channel, float32 (N, H*W) in [0, 1] (average-pooled to pool x pool)."""
    c = channel_index(channel)
    x = torch.as_tensor(obs)[..., c].float().div(255.0)  # (N, H, W)
    if pool is not None and (x.shape[-1] > pool or x.shape[-2] > pool):
        x = torch.nn.functional.adaptive_avg_pool2d(x[:, None], (pool, pool))[:, 0]
    return x.reshape(x.shape[0], -1).numpy()


def selectivity(accuracy: float, control: float) -> float:
    """Accuracy above a control's accuracy."""
    return float(accuracy) - float(control)


def chance_level(y) -> float:
    """Accuracy of always guessing the most frequent label."""
    _, counts = np.unique(np.asarray(y), return_counts=True)
    if counts.size == 0:
        raise ProbeError("cannot compute chance on empty labels")
    return float(counts.max() / counts.sum())
