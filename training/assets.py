"""procgen's image assets, read from the installed wheel without importing procgen.

procgen's runtime needs gym3 and a compiled library; only its PNGs are needed here, so
the package folder is located through its import spec (no code of procgen runs).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from gmg.training.errors import UserError

WALL_TILE = "kenney/Ground/Sand/sandCenter.png"
AGENT_SPRITE = "kenney/Enemies/mouse_move.png"
BACKGROUNDS = ("floortiles",) + tuple(f"backgrounddetailed{i}" for i in range(1, 9))


class AssetsNotFound(UserError, RuntimeError):
    """procgen (or procgen-mirror) is not installed, so its images cannot be read."""


def _spec_origin() -> str | None:
    spec = importlib.util.find_spec("procgen")
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    return str(Path(spec.origin).parent) if spec.origin else None


@lru_cache(maxsize=1)
def asset_dir() -> Path:
    """Path of procgen's ``data/assets`` folder."""
    root = _spec_origin()
    hint = (
        "install procgen's assets: pip install --no-deps procgen-mirror "
        "(Python 3.11-3.12) or procgen (older Pythons)"
    )
    if root is None:
        raise AssetsNotFound(f"procgen is not installed; {hint}")
    path = Path(root) / "data" / "assets"
    if not (path / WALL_TILE).is_file():
        raise AssetsNotFound(f"procgen at {root} has no assets folder; {hint}")
    return path


def load_rgba(name: str) -> np.ndarray:
    """An asset as a uint8 array of shape (h, w, 4)."""
    from PIL import Image

    with Image.open(asset_dir() / name) as im:
        return np.asarray(im.convert("RGBA")).copy()


def resize_rgba(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-resample an RGBA image (alpha premultiplied, so edges do not darken)."""
    from PIL import Image

    rgba = img.astype(np.float32) / 255.0
    premult = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], axis=-1)
    channels = [
        np.asarray(
            Image.fromarray(premult[..., c]).resize((width, height), Image.Resampling.BOX)
        )
        for c in range(4)
    ]
    out = np.stack(channels, axis=-1)
    alpha = out[..., 3:]
    rgb = np.where(alpha > 1e-6, out[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    res = np.concatenate([rgb, alpha], axis=-1)
    return np.clip(np.rint(res * 255.0), 0, 255).astype(np.uint8)


def qt_byte_mul(c: np.ndarray, a: np.ndarray | int) -> np.ndarray:
    """Qt's 8-bit multiply ``c * a / 255`` (its ``BYTE_MUL`` and PNG premultiplication), on int arrays."""
    t = np.asarray(c, dtype=np.int64) * a
    return (t + (t >> 8) + 128) >> 8


def premultiply(img: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 4) RGBA as Qt holds a sprite (ARGB32_Premultiplied): colours times alpha."""
    a = img[..., 3:].astype(np.int64)
    return np.concatenate([qt_byte_mul(img[..., :3], a), a], axis=-1).astype(np.uint8)
