"""Draw maze states as the agent sees them: uint8 (N, H, W, 3) frames, on any device.

Cells follow procgen's rasterisation of a world of ``world_dim`` cells onto ``size``
pixels: cell i spans pixels [round(i*size/W), round((i+1)*size/W)), so a 64-px, 5-cell
frame has cells of 13, 13, 12, 13 and 13 px. Every layer (wall tiles, object masks, the
mouse sprite) is precomputed once as a full-frame image "as if every cell held it", so a
frame is a few whole-tensor selects with no Python loop over envs or cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gmg.training import assets
from gmg.training.errors import UserError
from gmg.training.objects import ObjectSpec

BACKGROUND_KINDS = ("black", "grey", "textured")
GREY = 127


class RenderError(UserError, ValueError):
    """A rendering option that does not exist."""


def cell_bounds(world_dim: int, size: int) -> np.ndarray:
    """(world_dim + 1,) pixel boundaries of the cells along one axis."""
    return np.floor(np.arange(world_dim + 1) * size / world_dim + 0.5).astype(np.int64)


def pixel_cells(world_dim: int, size: int) -> np.ndarray:
    """(size,) cell index of each pixel along one axis."""
    b = cell_bounds(world_dim, size)
    return np.searchsorted(b, np.arange(size), side="right") - 1


def _per_cell_image(world_dim: int, size: int, make) -> np.ndarray:
    """Full-frame (size, size, C) image with ``make(h, w)`` drawn in every cell."""
    b = cell_bounds(world_dim, size)
    out = None
    for r in range(world_dim):
        for c in range(world_dim):
            h, w = b[r + 1] - b[r], b[c + 1] - b[c]
            tile = make(int(h), int(w))
            if out is None:
                out = np.zeros((size, size) + tile.shape[2:], dtype=tile.dtype)
            out[b[r] : b[r + 1], b[c] : b[c + 1]] = tile
    return out


@dataclass
class Renderer:
    """Renders batches of maze states for one world size, frame size and object set."""

    world_dim: int
    size: int
    background: str
    objects: tuple[ObjectSpec, ...]
    device: torch.device

    def __post_init__(self) -> None:
        if self.background not in BACKGROUND_KINDS:
            raise RenderError(
                f"unknown background {self.background!r}: use one of {', '.join(BACKGROUND_KINDS)}"
            )
        w, s, dev = self.world_dim, self.size, self.device
        if s < w:
            raise RenderError(f"a frame of {s} px cannot show {w} x {w} cells: use a size of at least {w} (64 is standard)")
        cells = pixel_cells(w, s)
        self.cellmap = torch.from_numpy(cells[:, None] * w + cells[None, :]).reshape(-1).to(dev)

        tile = assets.load_rgba(assets.WALL_TILE)
        wall = _per_cell_image(w, s, lambda h, ww: assets.resize_rgba(tile, h, ww)[..., :3])
        self.wall = torch.from_numpy(wall).reshape(-1, 3).to(dev)  # (P, 3)

        masks, colours = [], []
        for spec in self.objects:
            masks.append(_per_cell_image(w, s, lambda h, ww, sp=spec: sp.mask(h, ww)[..., None])[..., 0])
            colours.append(spec.rgb if spec.rgb is not None else (0, 0, 0))
        self.obj_masks = torch.from_numpy(np.stack(masks) if masks else np.zeros((0, s, s), bool))
        self.obj_masks = self.obj_masks.reshape(len(masks), -1).to(dev)  # (K, P)
        self.obj_colours = torch.tensor(colours, dtype=torch.uint8, device=dev).reshape(-1, 3)

        mouse = assets.load_rgba(assets.AGENT_SPRITE)
        sprite = _per_cell_image(w, s, lambda h, ww: assets.resize_rgba(mouse, h, ww))
        sprite_m = _per_cell_image(w, s, lambda h, ww: assets.resize_rgba(mouse[:, ::-1], h, ww))
        # (2, P, 4): plain and mirrored (procgen mirrors the mouse while it moves right)
        self.agent = torch.from_numpy(np.stack([sprite, sprite_m])).reshape(2, -1, 4).to(dev)

        self.textures = None
        if self.background == "textured":
            texs = [assets.load_rgba(f"topdown_backgrounds/{n}.png") for n in assets.BACKGROUNDS]
            widths = [max(s, int(round(t.shape[1] * s / t.shape[0]))) for t in texs]
            tw = max(widths)
            out = np.zeros((len(texs), s, tw, 3), dtype=np.uint8)
            for i, (t, tw_i) in enumerate(zip(texs, widths)):
                out[i, :, :tw_i] = assets.resize_rgba(t, s, tw_i)[..., :3]
            self.textures = torch.from_numpy(out).to(dev)
            self.texture_widths = torch.tensor(widths, device=dev)

        # per-state full-frame images: state 0 free, 1 wall, 2.. objects
        n_states = 2 + len(self.objects)
        lut = np.zeros((n_states, s * s, 3), dtype=np.uint8)
        opaque = np.zeros((n_states, s * s), dtype=bool)
        if self.background == "grey":
            lut[0] = GREY
        lut[1], opaque[1] = wall.reshape(-1, 3), True
        for k, (m, c) in enumerate(zip(self.obj_masks.cpu().numpy(), colours)):
            lut[2 + k] = np.where(m[:, None], np.array(c, np.uint8), lut[0])
            opaque[2 + k] = m
        self.lut = torch.from_numpy(lut.reshape(-1, 3)).to(dev)
        self.lut_opaque = torch.from_numpy(opaque.reshape(-1)).to(dev)
        self.pixel = torch.arange(s * s, device=dev)

        # the agent's window: each cell's pixels, padded with a scratch pixel (index P)
        bounds = cell_bounds(w, s)
        m_max = int(np.diff(bounds).max()) ** 2
        win = np.full((w * w, m_max), s * s, dtype=np.int64)
        spr = np.zeros((2, w * w, m_max, 4), dtype=np.uint8)
        full = self.agent.cpu().numpy()
        for r in range(w):
            for c in range(w):
                ys, xs = np.mgrid[bounds[r] : bounds[r + 1], bounds[c] : bounds[c + 1]]
                flat = (ys * s + xs).reshape(-1)
                win[r * w + c, : flat.size] = flat
                spr[:, r * w + c, : flat.size] = full[:, flat]
        self.window = torch.from_numpy(win).to(dev)
        self.window_sprite = torch.from_numpy(spr).to(dev)

    def background_frames(self, background: torch.Tensor, bg_offset: torch.Tensor) -> torch.Tensor | None:
        """uint8 (N, P, 3) texture of each level, or None for plain backgrounds."""
        if self.background != "textured":
            return None
        n, s = background.shape[0], self.size
        extra = (self.texture_widths[background] - s).to(torch.float64)
        off = (bg_offset * extra).floor().to(torch.int64)  # (N,)
        cols = off[:, None] + torch.arange(s, device=self.device)[None, :]  # (N, s)
        tex = self.textures[background]  # (N, s, TW, 3)
        idx = cols[:, None, :, None].expand(n, s, s, 3)
        return tex.gather(2, idx).reshape(n, s * s, 3)

    def static(self, wall: torch.Tensor, objects: torch.Tensor, background: torch.Tensor | None) -> torch.Tensor:
        """Everything but the agent: uint8 (N, P + 1, 3), the last pixel a scratch slot.

        wall: bool (N, W*W); objects: int64 (N, K) flat cells;
        background: uint8 (N, P, 3) from ``background_frames`` or None.
        """
        n, cells = wall.shape
        state = wall.to(torch.int64)
        for k in range(objects.shape[1]):
            state = state.scatter(1, objects[:, k : k + 1], 2 + k)
        idx = state[:, self.cellmap] * self.pixel.shape[0] + self.pixel  # (N, P)
        out = torch.empty(n, self.pixel.shape[0] + 1, 3, dtype=torch.uint8, device=self.device)
        frame = self.lut[idx]
        if background is not None:
            frame = torch.where(self.lut_opaque[idx][..., None], frame, background)
        out[:, :-1] = frame
        out[:, -1] = 0
        return out

    def object_masks(self, objects: torch.Tensor) -> torch.Tensor:
        """bool (N, size, size, K): the pixels each object is drawn on; ``objects`` int64 (N, K) flat cells."""
        n, k = objects.shape
        here = self.cellmap[None, :, None] == objects[:, None, :]  # (N, P, K)
        return (here & self.obj_masks.T[None]).reshape(n, self.size, self.size, k)

    def with_agent(self, static: torch.Tensor, agent: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
        """Paste the mouse into copies of the static frames: uint8 (N, size, size, 3).

        agent: int64 (N,) flat cell; mirrored: bool (N,).
        """
        n = static.shape[0]
        idx = self.window[agent]  # (N, M)
        sprite = self.window_sprite[mirrored.long(), agent]  # (N, M, 4)
        under = static.gather(1, idx[..., None].expand(-1, -1, 3)).to(torch.int32)
        alpha = sprite[..., 3:].to(torch.int32)
        blended = (sprite[..., :3].to(torch.int32) * alpha + under * (255 - alpha) + 127) // 255
        frame = static.clone()
        frame.scatter_(1, idx[..., None].expand(-1, -1, 3), blended.to(torch.uint8))
        return frame[:, :-1].reshape(n, self.size, self.size, 3)

    def render(self, wall, objects, agent, mirrored, background) -> torch.Tensor:
        """Static layers and agent together: uint8 (N, size, size, 3)."""
        return self.with_agent(self.static(wall, objects, background), agent, mirrored)
