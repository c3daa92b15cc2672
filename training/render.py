"""Draw maze states as the agent sees them: uint8 (N, H, W, 3) frames, on any device.

Cells follow procgen's rasterisation of a world of ``world_dim`` cells onto ``size``
pixels: cell i spans pixels [round(i*size/W), round((i+1)*size/W)), so a 64-px, 5-cell
frame has cells of 13, 13, 12, 13 and 13 px. Every layer (wall tiles, object masks, the
mouse sprite) is precomputed once as a full-frame image "as if every cell held it", so a
frame is a few whole-tensor selects with no Python loop over envs or cells.
"""

from __future__ import annotations

import math
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


def check_view(background: str, world_dim: int, size: int) -> None:
    """Refuse a background that does not exist or a frame too small for the world."""
    if background not in BACKGROUND_KINDS:
        raise RenderError(f"unknown background {background!r}: use one of {', '.join(BACKGROUND_KINDS)}")
    if size < world_dim:
        raise RenderError(f"a frame of {size} px cannot show {world_dim} x {world_dim} cells: use a size of at least "
                          f"{world_dim} (64 is standard)")


@dataclass
class _View:
    """What a renderer draws: one world size, frame size, background and object set."""

    world_dim: int
    size: int
    background: str
    objects: tuple[ObjectSpec, ...]
    device: torch.device

    def __post_init__(self) -> None:
        check_view(self.background, self.world_dim, self.size)
        self._build()

    def render(self, wall, objects, agent, mirrored, background) -> torch.Tensor:
        """Static layers and agent together: uint8 (N, size, size, 3)."""
        return self.with_agent(self.static(wall, objects, background), agent, mirrored)


class Renderer(_View):
    """Renders batches of maze states for one world size, frame size and object set."""

    def _build(self) -> None:
        w, s, dev = self.world_dim, self.size, self.device
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
        self.obj_masks = self.obj_masks.reshape(len(masks), s * s).to(dev)  # (K, P)
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

    def object_masks(self, objects: torch.Tensor, wall: torch.Tensor | None = None) -> torch.Tensor:
        """bool (N, size, size, K): the pixels each object is drawn on; ``objects`` int64 (N, K) flat cells
        (``wall`` is not needed: cells do not overlap)."""
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


# ------------------------------------------------------------------ procgen's own drawing
RENDERS = ("procgen", "box")  # procgen's nearest-neighbour drawing, or the first zoo's area-averaged one
RENDER_EPS = np.float32(0.02)  # procgen grows each grid tile by this much of a cell on every side
_F = np.float32


class ProcgenGeometry:
    """procgen's world-to-screen transform (``prepare_for_drawing``, ``get_screen_rect``) for a
    whole-world view of ``width`` x ``height`` cells in a ``size``-px frame, in float32 as
    procgen computes it (float64 moves pixels)."""

    def __init__(self, width: int, height: int, size: int):
        raw_unit = _F(64) / _F(max(width, height))
        self.unit = _F(float(raw_unit) * (size / 64.0))
        self.view_dim = _F(64.0 / float(raw_unit))
        half = self.view_dim / _F(2)
        self.x_off = self.unit * (_F(width * 0.5) - half)
        self.y_off = self.unit * (_F(height * 0.5) - half)

    def rect(self, x, y_top, dx, dy, eps=_F(0)) -> tuple[float, float, float, float]:
        """(left, top, width, height) in pixels of the world box with top-left corner (x, y_top),
        world y pointing up."""
        x, y_top, dx, dy, eps = (_F(v) for v in (x, y_top, dx, dy, eps))
        u = self.unit
        return (float((x - eps) * u - self.x_off), float((self.view_dim - y_top - eps) * u + self.y_off),
                float((dx + _F(2) * eps) * u), float((dy + _F(2) * eps) * u))


def _qt_round(v: float) -> int:
    return math.floor(v + 0.5)


def scaled_axis(start: float, length: float, src: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis, the frame pixels a target span covers and the source index each reads,
    by Qt 5.9's nearest-neighbour scaled blit (no SmoothPixmapTransform): covered pixels are
    round(start) <= p < round(start + length), clipped to the frame; a 16.16 fixed-point step
    trunc(65536 / (length / src)) walks the source from the first pixel's centre."""
    lo, hi = max(_qt_round(start), 0), min(_qt_round(start + length), size)
    if lo >= hi or length <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    step = int(65536 / (length / src))
    first = math.ceil((lo + 0.5 - start) * step) - 1
    idx = (first + step * np.arange(hi - lo, dtype=np.int64)) >> 16
    if idx[-1] >= src:  # Qt drops a last pixel whose source index falls outside the image
        idx = idx[:-1]
    return np.arange(lo, lo + idx.size, dtype=np.int64), idx


def blit_map(rect: tuple[float, float, float, float], src_h: int, src_w: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat frame pixels covered by drawing a ``src_h`` x ``src_w`` image into ``rect`` and the
    flat source pixel each shows (both (n,), row-major)."""
    left, top, width, height = rect
    rows, src_rows = scaled_axis(top, height, src_h, size)
    cols, src_cols = scaled_axis(left, width, src_w, size)
    frame = (rows[:, None] * size + cols[None, :]).reshape(-1)
    source = (src_rows[:, None] * src_w + src_cols[None, :]).reshape(-1)
    return frame, source


def blend_over(src_premult: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
    """Qt's source-over of a premultiplied source: ``src + under * (255 - alpha) / 255`` per
    channel with Qt's rounding; int32 (..., 4) source, int32 (..., 3) destination."""
    t = under * (255 - src_premult[..., 3:])
    return src_premult[..., :3] + ((t + (t >> 8) + 128) >> 8)


class ProcgenRenderer(_View):
    """Draws like procgen's ``BasicAbstractGame`` (the standard maze and the original's fork),
    pixel for pixel: the frame filled black (or grey), the level's texture scaled into the
    world box, grid tiles grown by ``RENDER_EPS`` drawn x outer, y inner (later tiles over
    earlier ones), then the mouse as an entity box with no growth; every image sampled
    nearest-neighbour as Qt 5.9 does. Same interface as ``Renderer``.

    A pixel may lie in up to four grown tiles, so the static layers hold, per pixel, its
    covering cells in drawing order (``cand_cell`` (P, K)) and what each cell's state shows
    there; a frame is K whole-tensor selects. Goal objects are grid tiles too (procgen places
    them as grid values): each object's 13-px mask, upsampled to the 128-px asset size, is
    drawn into the grown tile like any asset.
    """

    def _build(self) -> None:
        w, s, dev = self.world_dim, self.size, self.device
        geom = ProcgenGeometry(w, w, s)
        p = s * s
        wall = assets.load_rgba(assets.WALL_TILE)
        th, tw = wall.shape[:2]
        colours = [spec.rgb if spec.rgb is not None else (0, 0, 0) for spec in self.objects]
        # per state (0 free, 1 wall, 2.. objects): opacity and colour of each tile source pixel
        src_opaque = np.zeros((2 + len(self.objects), th * tw), dtype=bool)
        src_colour = np.zeros((2 + len(self.objects), th * tw, 3), dtype=np.uint8)
        src_opaque[1], src_colour[1] = wall[..., 3].reshape(-1) > 0, wall[..., :3].reshape(-1, 3)
        for k, spec in enumerate(self.objects):
            src_opaque[2 + k] = spec.mask(th, tw).reshape(-1)
            src_colour[2 + k] = colours[k]
        if (wall[..., 3] != 255).any():
            raise RenderError("the wall tile must be opaque")

        # every (pixel, cell, source pixel) a grid tile covers, in drawing order
        pix, cell, src = [], [], []
        for gx in range(w):
            for gy in range(w):
                f, sp = blit_map(geom.rect(gx, gy + 1, 1, 1, RENDER_EPS), th, tw, s)
                pix.append(f)
                src.append(sp)
                cell.append(np.full(f.size, (w - 1 - gy) * w + gx))  # world y up, gmg rows down
        pix, cell, src = np.concatenate(pix), np.concatenate(cell), np.concatenate(src)
        order = np.argsort(pix, kind="stable")
        pix, cell, src = pix[order], cell[order], src[order]
        start = np.searchsorted(pix, np.arange(p))
        rank = np.arange(pix.size) - start[pix]
        k_max = int(rank.max()) + 1
        cand_cell = np.full((p, k_max), w * w, dtype=np.int64)  # cell w*w: a padding cell, always free
        cand_cell[pix, rank] = cell
        opaque = np.zeros((src_opaque.shape[0], p, k_max), dtype=bool)
        colour = np.zeros((src_opaque.shape[0], p, k_max, 3), dtype=np.uint8)
        opaque[:, pix, rank] = src_opaque[:, src]
        colour[:, pix, rank] = src_colour[:, src]
        self.cand_cell = torch.from_numpy(cand_cell).to(dev)
        self.cand_pos = torch.arange(p * k_max, device=dev).reshape(p, k_max)
        self.tab_opaque = torch.from_numpy(opaque.reshape(-1)).to(dev)
        self.tab_colour = torch.from_numpy(colour.reshape(-1, 3)).to(dev)
        self.fill = torch.full((p, 3), GREY if self.background == "grey" else 0, dtype=torch.uint8, device=dev)

        self.textures = None
        if self.background == "textured":
            main = geom.rect(0, w, w, w)
            layers = np.zeros((len(assets.BACKGROUNDS), p, 3), dtype=np.uint8)
            for i, name in enumerate(assets.BACKGROUNDS):
                tex = assets.load_rgba(f"topdown_backgrounds/{name}.png")
                # square textures in a square world: procgen's offset (bg_pct_x * (aspect
                # difference)) is 0 and the texture fills the world box
                if tex.shape[0] != tex.shape[1]:
                    raise RenderError(f"texture {name} is not square: its per-level offset is not drawn")
                f, sp = blit_map(main, tex.shape[0], tex.shape[1], s)
                layers[i, f] = tex[..., :3].reshape(-1, 3)[sp]
            self.textures = torch.from_numpy(layers).to(dev)

        # the mouse: an entity box (eps 0) per cell, sprite premultiplied, plain and mirrored
        mouse = assets.premultiply(assets.load_rgba(assets.AGENT_SPRITE))
        maps = []
        for r in range(w):
            for c in range(w):
                x, y, half = _F(c) + _F(0.5), _F(w - 1 - r) + _F(0.5), _F(0.5)
                maps.append(blit_map(geom.rect(x - half, y + half, _F(2) * half, _F(2) * half), *mouse.shape[:2], s))
        m_max = max(f.size for f, _ in maps)
        win = np.full((w * w, m_max), p, dtype=np.int64)  # padded with the scratch pixel P
        spr = np.zeros((2, w * w, m_max, 4), dtype=np.uint8)
        flat = np.stack([mouse, mouse[:, ::-1]]).reshape(2, -1, 4)
        for i, (f, sp) in enumerate(maps):
            win[i, : f.size] = f
            spr[:, i, : f.size] = flat[:, sp]
        self.window = torch.from_numpy(win).to(dev)
        self.window_sprite = torch.from_numpy(spr).to(dev)

    def background_frames(self, background: torch.Tensor, bg_offset: torch.Tensor) -> torch.Tensor | None:
        """uint8 (N, P, 3) texture of each level, or None for plain backgrounds."""
        return None if self.textures is None else self.textures[background]

    def _layers(self, wall: torch.Tensor, objects: torch.Tensor):
        """The K (state, opaque) layers of each pixel's covering tiles, in drawing order."""
        n = wall.shape[0]
        state = torch.cat([wall.to(torch.int64), torch.zeros(n, 1, dtype=torch.int64, device=wall.device)], 1)
        for k in range(objects.shape[1]):
            state = state.scatter(1, objects[:, k : k + 1], 2 + k)
        idx = state[:, self.cand_cell] * self.cand_pos.numel() + self.cand_pos  # (N, P, K)
        return idx, self.tab_opaque[idx], state[:, self.cand_cell]

    def static(self, wall: torch.Tensor, objects: torch.Tensor, background: torch.Tensor | None) -> torch.Tensor:
        """Everything but the agent: uint8 (N, P + 1, 3), the last pixel a scratch slot (as ``Renderer.static``)."""
        n, p = wall.shape[0], self.fill.shape[0]
        idx, opaque, _ = self._layers(wall, objects)
        frame = background if background is not None else self.fill.expand(n, p, 3)
        for j in range(idx.shape[2]):  # later tiles over earlier ones
            frame = torch.where(opaque[..., j, None], self.tab_colour[idx[..., j]], frame)
        out = torch.zeros(n, p + 1, 3, dtype=torch.uint8, device=self.device)
        out[:, :-1] = frame
        return out

    def object_masks(self, objects: torch.Tensor, wall: torch.Tensor | None = None) -> torch.Tensor:
        """bool (N, size, size, K): the pixels each object shows (tiles drawn later, walls among
        them if ``wall`` bool (N, W*W) is given, cover a grown tile's rim)."""
        n, k = objects.shape
        if wall is None:
            wall = torch.zeros(n, self.world_dim ** 2, dtype=torch.bool, device=objects.device)
        idx, opaque, state = self._layers(wall, objects)
        shown = torch.full(idx.shape[:2], -1, dtype=torch.int64, device=idx.device)
        for j in range(idx.shape[2]):
            shown = torch.where(opaque[..., j], state[..., j], shown)
        here = shown[..., None] == 2 + torch.arange(k, device=idx.device)
        return here.reshape(n, self.size, self.size, k)

    def with_agent(self, static: torch.Tensor, agent: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
        """Paste the mouse into copies of the static frames: uint8 (N, size, size, 3)."""
        n = static.shape[0]
        idx = self.window[agent][..., None].expand(-1, -1, 3)  # (N, M, 3)
        sprite = self.window_sprite[mirrored.long(), agent].to(torch.int32)  # (N, M, 4)
        blended = blend_over(sprite, static.gather(1, idx).to(torch.int32))
        frame = static.clone()
        frame.scatter_(1, idx, blended.to(torch.uint8))
        return frame[:, :-1].reshape(n, self.size, self.size, 3)


def make_renderer(render: str, world_dim: int, size: int, background: str, objects: tuple[ObjectSpec, ...],
                  device: torch.device | str) -> Renderer | ProcgenRenderer:
    """The renderer named ``render``: "procgen" (procgen's own drawing) or "box" (area-averaged,
    the first zoo's)."""
    if render not in RENDERS:
        raise RenderError(f"unknown render {render!r}: use {' or '.join(RENDERS)}")
    cls = ProcgenRenderer if render == "procgen" else Renderer
    return cls(world_dim, size, background, tuple(objects), torch.device(device))
