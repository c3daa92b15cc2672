"""Collect activations at hook points, in batches, optionally pooled, as float16 arrays.

Collection is a function kept apart from the probes (scikit-learn style): it returns or
writes arrays of shape (n_samples, ...) that a probe flattens to (n_samples, n_features).

Conv maps (B, C, H, W) can be average-pooled to at most ``pool`` x ``pool`` positions as
they are collected (``pool=None`` keeps them whole). On the 5x5 maze a pool of 8 keeps
about 1.6 positions per cell, enough to read out a cell, and cuts the first conv map of a
width-8 network from 8x64x64 = 32,768 to 512 features.

:func:`write_activations` streams to ``.npy`` files (one per layer, float16, opened as
memory maps), so memory is bounded by one batch of the layers in one pass, whatever the
number of scenes; ``layers_per_pass`` bounds it further for wide networks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gmg.interp.hooks import hook_points, run_with_cache
from gmg.probes.datasets import ProbeError

# a useful default subset: the input, every block's conv, pool and residual outputs, fc, hidden
MAIN_LAYER_PATTERN = re.compile(r"^(hook_obs|blocks\.\d+\.(hook_conv|hook_pool|res\d+\.hook_out)|hook_fc|hook_hidden)$")


def layer_names(model: torch.nn.Module, layers: str | Sequence[str] | None = "main") -> list[str]:
    """Resolve a layer selection to hook names in forward order.

    ``"all"`` or None: every hook point; ``"main"``: input, conv, pool and residual
    outputs of each block, fc and hidden; or an explicit list (each checked).
    """
    points = list(hook_points(model))
    if layers is None or (isinstance(layers, str) and layers == "all"):
        return points
    if isinstance(layers, str) and layers == "main":
        return [n for n in points if MAIN_LAYER_PATTERN.match(n)]
    wanted = [layers] if isinstance(layers, str) else list(layers)
    if not wanted:
        raise ProbeError("no layers selected: give hook names, 'main' or 'all'")
    unknown = [n for n in wanted if n not in points]
    if unknown:
        raise ProbeError(f"unknown layer {unknown[0]!r}: use 'main', 'all' or hook names such as {', '.join(points[:4])}, ...")
    keep = set(wanted)
    return [n for n in points if n in keep]


def pool_activation(act: torch.Tensor, pool: int | None) -> torch.Tensor:
    """Adaptive-average-pool a (B, C, H, W) map to at most (pool, pool); others pass through."""
    if pool is None or act.dim() != 4 or (act.shape[-2] <= pool and act.shape[-1] <= pool):
        return act
    return F.adaptive_avg_pool2d(act, (min(pool, act.shape[-2]), min(pool, act.shape[-1])))


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


@torch.no_grad()
def _iter_cached(model, obs, names, batch_size, pool, device):
    for sl in _batches(obs.shape[0], batch_size):
        _, cache = run_with_cache(model, obs[sl].to(device), names=names)
        yield sl, {n: pool_activation(cache[n], pool).to("cpu", torch.float16) for n in names}


def collect_activations(
    model: torch.nn.Module,
    obs: torch.Tensor,
    layers: str | Sequence[str] | None = "main",
    *,
    batch_size: int = 256,
    pool: int | None = 8,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Activations in memory: layer name -> float16 array (N, ...) (pooled conv maps).

    obs: uint8 (N, H, W, 3). Use :func:`write_activations` for large N.
    """
    if obs.shape[0] == 0:
        raise ProbeError("no observations to collect activations from (empty dataset)")
    names = layer_names(model, layers)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for _, acts in _iter_cached(model, obs, names, batch_size, pool, device):
        for n in names:
            parts[n].append(acts[n].numpy())
    return {n: np.concatenate(v) for n, v in parts.items()}


def layer_file(directory: str | Path, layer: str) -> Path:
    return Path(directory) / f"{layer}.npy"


def write_activations(
    model: torch.nn.Module,
    obs: torch.Tensor,
    directory: str | Path,
    layers: str | Sequence[str] | None = "main",
    *,
    batch_size: int = 256,
    pool: int | None = 8,
    layers_per_pass: int | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Path]:
    """Stream activations to ``directory/<layer>.npy`` (float16), batch by batch.

    Returns layer name -> file; read one back with ``np.load(path, mmap_mode="r")``.
    """
    if obs.shape[0] == 0:
        raise ProbeError("no observations to collect activations from (empty dataset)")
    names = layer_names(model, layers)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    step = layers_per_pass or len(names)
    out: dict[str, Path] = {}
    n = obs.shape[0]
    for g in range(0, len(names), step):
        group = names[g : g + step]
        maps: dict[str, np.memmap] = {}
        for sl, acts in _iter_cached(model, obs, group, batch_size, pool, device):
            for name in group:
                if name not in maps:
                    shape = (n, *acts[name].shape[1:])
                    tmp = directory / f"{name}.npy.tmp"
                    maps[name] = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
                maps[name][sl] = acts[name].numpy()
        for arr in maps.values():
            arr.flush()
        done = list(maps)
        maps.clear()  # close the memory maps before renaming
        for name in done:
            final = layer_file(directory, name)
            (directory / f"{name}.npy.tmp").replace(final)
            out[name] = final
    return out


def read_activations(directory: str | Path, layer: str) -> np.ndarray:
    """One layer's stored activations as a read-only float16 memory map (N, ...)."""
    path = layer_file(directory, layer)
    if not path.is_file():
        raise ProbeError(f"no stored activations for layer {layer!r} in {directory}")
    return np.load(path, mmap_mode="r")


def flatten(acts: np.ndarray) -> np.ndarray:
    """(N, ...) activations -> float32 (N, n_features)."""
    return np.asarray(acts, dtype=np.float32).reshape(acts.shape[0], -1)


def cell_window(acts: np.ndarray | torch.Tensor, cells, world_dim: int, size: int, side: int = 3) -> np.ndarray:
    """The activations over one maze cell per sample, float32 (N, C * s * s).

    ``acts`` (N, C, H, W) maps of frames ``size`` pixels wide; ``cells`` (N,) the flat cell
    (row * world_dim + col) to read in each. The map positions covering the cell's pixels are
    average-pooled to s x s, s = ``side`` or less where a cell covers fewer positions (the same s
    for every cell, so every sample has the same features): what the layer holds at that cell,
    its layout kept (a cell-mean alone would keep little more than the object's pixel count).
    Vectors (N, F) pass through, flattened.
    """
    from gmg.training.render import cell_bounds

    x = torch.as_tensor(np.asarray(acts, dtype=np.float32) if isinstance(acts, np.ndarray) else acts).float()
    if x.dim() != 4:
        return x.reshape(x.shape[0], -1).numpy()
    cells = np.asarray(cells, dtype=np.int64)
    if cells.shape != (x.shape[0],):
        raise ProbeError(f"one cell per sample needed: {x.shape[0]} samples, cells of shape {cells.shape}")
    if cells.min() < 0 or cells.max() >= world_dim * world_dim:
        raise ProbeError(f"cells must lie in 0..{world_dim * world_dim - 1} (a {world_dim}x{world_dim} maze)")
    h, w = x.shape[-2:]
    px = cell_bounds(world_dim, size)
    lo_r, lo_c = np.floor(px[:-1] * h / size).astype(int), np.floor(px[:-1] * w / size).astype(int)
    hi_r = np.maximum(np.ceil(px[1:] * h / size).astype(int), lo_r + 1)  # at least one position per cell
    hi_c = np.maximum(np.ceil(px[1:] * w / size).astype(int), lo_c + 1)
    s = max(1, min(side, int((hi_r - lo_r).min()), int((hi_c - lo_c).min())))
    out = torch.empty(x.shape[0], x.shape[1] * s * s)
    for cell in np.unique(cells):
        rows = torch.from_numpy(np.flatnonzero(cells == cell))
        r, c = divmod(int(cell), world_dim)
        crop = x[rows][:, :, lo_r[r]:hi_r[r], lo_c[c]:hi_c[c]]
        out[rows] = F.adaptive_avg_pool2d(crop, (s, s)).reshape(len(rows), -1)
    return out.numpy()
