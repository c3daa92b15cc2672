"""Pictures of levels as the agent sees them: agent's view, R/G/B channel split, level grids.

Images are uint8 numpy arrays (H, W, 3); upscaling is nearest-neighbour so every agent
pixel stays one solid block. ``render_pictures`` writes the PNGs behind ``gmg render``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from gmg.training.env import OBS_SIZE, WORLD_DIM

CHANNELS = ("r", "g", "b")
CHANNEL_MODES = ("grey", "tint")


def level_frames(
    level_ids: Sequence[int] | torch.Tensor,
    objects: Sequence[str] = ("yellow_line",),
    background: str = "black",
    world_dim: int = WORLD_DIM,
    size: int = OBS_SIZE,
    device: torch.device | str = "cpu",
    render: str = "procgen",
) -> np.ndarray:
    """First frame of each level, exactly as the agent sees it: uint8 (N, size, size, 3)
    (``render``: procgen's drawing or the first zoo's "box")."""
    from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv

    ids = torch.as_tensor(list(level_ids) if not isinstance(level_ids, torch.Tensor) else level_ids)
    config = EnvConfig(objects=tuple(objects), world_dim=world_dim, size=size, background=background, render=render)
    env = MazeEnv(len(ids), config, EvaluationLevels(ids), device)
    return env.observe().cpu().numpy()


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of (..., H, W, C) by an integer factor."""
    return image.repeat(factor, axis=-3).repeat(factor, axis=-2)


def channel_images(frame: np.ndarray, mode: str = "grey") -> np.ndarray:
    """The three input channels of one frame (H, W, 3) as images: uint8 (3, H, W, 3).

    ``grey``: channel c's values in all three colours; ``tint``: channel c alone, the
    other two zero (so the three tinted images sum to the frame).
    """
    if mode not in CHANNEL_MODES:
        from gmg.training.errors import UserError

        raise UserError(f"unknown channel mode {mode!r}: use one of {', '.join(CHANNEL_MODES)}")
    out = np.zeros((3,) + frame.shape, dtype=np.uint8)
    for c in range(3):
        if mode == "grey":
            out[c] = frame[..., c : c + 1]
        else:
            out[c, ..., c] = frame[..., c]
    return out


def tile(images: np.ndarray | Sequence[np.ndarray], cols: int, gap: int = 2, fill: int = 255) -> np.ndarray:
    """Lay equal-sized images (N, H, W, 3) out in rows of ``cols`` with ``gap``-px borders."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows = -(-n // cols)
    out = np.full((rows * h + (rows + 1) * gap, cols * w + (cols + 1) * gap, c), fill, dtype=np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, cols)
        y, x = gap + r * (h + gap), gap + k * (w + gap)
        out[y : y + h, x : x + w] = im
    return out


def channel_split(frames: np.ndarray, mode: str = "grey", scale: int = 4, gap: int = 4) -> np.ndarray:
    """One row per frame: the RGB view, then its R, G and B channels. frames: (N, H, W, 3)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    panels = [np.concatenate([f[None], channel_images(f, mode)]) for f in frames]
    return tile(upscale(np.concatenate(panels), scale), cols=4, gap=gap)


def setting_name(objects: Sequence[str], background: str) -> str:
    return "-vs-".join(objects) + f"-{background}"


def render_pictures(
    out_dir: Path | str = "runs/render",
    objects: Sequence[str] = ("yellow_line",),
    background: str = "black",
    level_ids: Sequence[int] | None = None,
    n_levels: int = 16,
    first_level: int = 0,
    world_dim: int = WORLD_DIM,
    size: int = OBS_SIZE,
    scale: int = 4,
    channels: str = "grey",
    device: torch.device | str = "cpu",
    render: str = "procgen",
) -> dict[str, Path]:
    """Write ``<setting>-view.png`` (first level, upscaled), ``<setting>-channels.png`` (RGB
    and R/G/B of the first four levels) and ``<setting>-grid.png`` (all levels) into
    ``out_dir``; returns {"view"|"channels"|"grid": path}.
    """
    from PIL import Image

    from gmg.training.errors import UserError

    if scale < 1:
        raise UserError(f"scale must be a whole number of at least 1, got {scale}")
    if level_ids is None:
        level_ids = range(first_level, first_level + n_levels)
    ids = list(level_ids)
    if not ids:
        raise UserError("no levels to render: give at least one level id")
    frames = level_frames(ids, objects, background, world_dim, size, device, render)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = setting_name(objects, background)
    cols = int(np.ceil(np.sqrt(len(ids))))
    images = {
        "view": upscale(frames[0], scale),
        "channels": channel_split(frames[:4], channels, scale),
        "grid": tile(upscale(frames, max(1, scale // 2)), cols=cols),
    }
    paths = {}
    for kind, image in images.items():
        paths[kind] = out / f"{name}-{kind}.png"
        Image.fromarray(image).save(paths[kind])
    return paths
