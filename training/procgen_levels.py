"""The original's levels by id: procgen's level generation, draw for draw.

Level id *i* is the level that the original study's procgen fork (procgenAISC, games
``maze_pure_yellowline`` and ``maze_colorsobjects_duel``) builds for level seed *i*:
procgen's ``RandGen`` (a ``std::mt19937`` seeded with the id) draws, in order, the
background offset and index, randomised Kruskal on the whole world, the fork's
"no dead ends" pass, and the objects. ``maze_level`` builds the standard ``maze`` game's
level the same way (maze size draw, margin, no dead-end pass, the cheese), which is what
the tests check against procgen's own runtime.

Coordinates here are procgen's (x right, y up, grid row y = 0 at the bottom) until
``generate_procgen`` turns them into gmg's ``Levels`` (row 0 at the top).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from gmg.training.levels import WORLD_DIM, LevelError, Levels, check_world_dim, path_lengths

WALL, SPACE = 51, 100  # procgen's WALL_OBJ and SPACE
FIRST_OBJECT = 2  # grid value of obj1 (the maze's cheese, the fork's GOAL / GOAL1); obj2 is 3
N_BACKGROUNDS = 9  # procgen's topdown_backgrounds
TRAIN_LEVELS = 100_000  # the original trained on level ids 0..99,999
EVAL_START = 100_000  # ... and tested on 100,000..100,999
EVAL_LEVELS = 1_000
_RAW_BATCH = 64  # mt19937 outputs fetched per numpy call; a 5x5 level takes about 25


class RandGen:
    """procgen's ``RandGen``: a ``std::mt19937`` seeded with an int, drawing as procgen does."""

    _bits = np.random.MT19937(0)  # one shared numpy generator (making one costs ~75 us), reseeded on use

    def __init__(self, seed: int):
        self.seed = int(seed) & 0xFFFFFFFF
        self._buf: list[int] = []
        self._pos = 0
        self.draws = 0  # how many 32-bit outputs were used

    def next32(self) -> int:
        if self._pos == len(self._buf):
            # numpy's legacy seeding is mt19937's init_genrand, as std::mt19937::seed(int) is;
            # skipping what was used keeps instances independent of each other
            self._bits._legacy_seeding(self.seed)
            if self.draws:
                self._bits.random_raw(self.draws)
            self._buf, self._pos = self._bits.random_raw(_RAW_BATCH).tolist(), 0
        self._pos += 1
        self.draws += 1
        return self._buf[self._pos - 1]

    def randn(self, n: int) -> int:
        """An int in [0, n): next32 mod n (no rejection, as procgen)."""
        return self.next32() % n

    def randint(self, low: int, high: int) -> int:
        return low + self.next32() % (high - low)

    def rand01(self) -> float:
        """next32 / 2^32 in double, rounded to float32, as procgen's ``rand01``."""
        return float(np.float32(self.next32() / 4294967296.0))


@lru_cache(maxsize=32)
def _layout(m: int) -> tuple[tuple, tuple, tuple]:
    """procgen's wall list for an m x m maze, each maze cell's padded index, and each interior
    padded cell's interior neighbours.

    Walls are (room1, room2, middle) as maze cells (m*y + x), first the horizontal pairs with
    x outer, then the vertical ones. Padded indices are a*y + x with a = m + 2 and the maze at
    offset 1. Neighbours come in procgen's order (-1,0), (0,-1), (0,+1), (+1,0); border cells
    never count.
    """
    walls = [(m * j + i - 1, m * j + i + 1, m * j + i) for i in range(1, m - 1, 2) for j in range(0, m, 2)]
    walls += [(m * (j - 1) + i, m * (j + 1) + i, m * j + i) for i in range(0, m, 2) for j in range(1, m - 1, 2)]
    a = m + 2
    pad = tuple((c // m + 1) * a + c % m + 1 for c in range(m * m))

    def interior(k: int) -> bool:
        return 1 <= k % a <= a - 2 and 1 <= k // a <= a - 2

    nbrs = tuple((i, tuple(k for k in (i - 1, i - a, i + a, i + 1) if interior(k)))
                 for i in range(a * a) if interior(i))
    return tuple(walls), pad, nbrs


class MazeGen:
    """procgen's ``MazeGen`` on an m x m maze: a padded (m+2)^2 grid, maze cell (0, 0) at padded (1, 1)."""

    def __init__(self, rng: RandGen, m: int):
        self.rng, self.m, self.a = rng, m, m + 2
        self.grid = [WALL] * (self.a * self.a)
        self.grid[self.a + 1] = 0  # procgen marks the start cell 0 until Kruskal frees it
        self.free_cells: list[int] = []  # maze cells in the order Kruskal freed them
        self._walls, self._padded, self._nbrs = _layout(m)

    def _pad(self, cell: int) -> int:
        return self._padded[cell]

    def kruskal(self) -> None:
        """``generate_maze``: one randn per wall, the wall erased keeping the list's order."""
        walls, g, pad, free_cells, randn = list(self._walls), self.grid, self._padded, self.free_cells, self.rng.randn
        label = list(range(self.m * self.m))
        while walls:
            r1, r2, mid = walls.pop(randn(len(walls)))
            l1, l2 = label[r1], label[r2]
            if g[pad[mid]] == WALL and l1 != l2:
                for c in (r1, mid, r2):
                    if g[pad[c]] != SPACE:  # freed once, so "not yet SPACE" is "not yet listed"
                        free_cells.append(c)
                        g[pad[c]] = SPACE
                label = [l2 if v == l1 else v for v in label]
                label[mid] = l2

    def open_dead_ends(self) -> None:
        """``generate_maze_no_dead_ends``' pass: the grid changes during the scan, and the cells
        it opens are not added to ``free_cells``."""
        g = self.grid
        for i, nb in self._nbrs:
            if g[i] == SPACE and [g[k] for k in nb].count(SPACE) == 1:
                walls = [k for k in nb if g[k] == WALL]
                if walls:
                    g[walls[self.rng.randn(len(walls))]] = SPACE

    def place_objects(self, value: int, count: int = 1) -> list[int]:
        """``place_objects``: redraw while the pick is used (-1) or the start cell (0)."""
        cells = []
        fc = self.free_cells
        for j in range(count):
            if sum(c > 0 for c in fc) == 0:
                raise LevelError(f"no free cell left for an object in a {self.m}x{self.m} maze")
            k = self.rng.randn(len(fc))
            while fc[k] == -1 or fc[k] == 0:
                k = self.rng.randn(len(fc))
            cells.append(fc[k])
            self.grid[self._pad(fc[k])] = value + j
            fc[k] = -1
        return cells


@dataclass
class ProcgenLevel:
    """One level in procgen's terms: ``grid`` int (H, W) with row = y (row 0 at the bottom),
    values WALL / SPACE / 2 + k for object k; ``agent`` = the start cell (x, y); ``objects``
    = maze cells (x, y) of obj1..objK; ``draws`` = mt19937 outputs used."""

    grid: np.ndarray
    agent: tuple[int, int]
    objects: list[tuple[int, int]]
    background_index: int
    bg_pct_x: float
    maze_dim: int
    draws: int


def _level(rng: RandGen, world_dim: int, maze_dim: int, bg_pct_x: float, background: int,
           dead_ends: bool, n_objects: int) -> ProcgenLevel:
    gen = MazeGen(rng, maze_dim)
    gen.kruskal()
    if dead_ends:
        gen.open_dead_ends()
    cells = [gen.place_objects(FIRST_OBJECT + k)[0] for k in range(n_objects)]
    margin = (world_dim - maze_dim) // 2
    # the world is all wall (procgen's border ring lies in it) with the maze copied in at the margin
    grid = np.full((world_dim, world_dim), WALL, dtype=np.int32)
    a = maze_dim + 2
    padded = np.asarray(gen.grid, dtype=np.int32).reshape(a, a)
    grid[margin:margin + maze_dim, margin:margin + maze_dim] = padded[1:-1, 1:-1]
    objects = [(margin + c % maze_dim, margin + c // maze_dim) for c in cells]
    return ProcgenLevel(grid, (margin, margin), objects, background, bg_pct_x, maze_dim, rng.draws)


def _start(level_id: int) -> tuple[RandGen, float, int]:
    # BasicAbstractGame::game_reset's two draws, before the game's own
    rng = RandGen(level_id)
    bg_pct_x = rng.rand01()
    return rng, bg_pct_x, rng.randn(N_BACKGROUNDS)


def maze_level(level_id: int, world_dim: int = 15) -> ProcgenLevel:
    """procgen's standard ``maze`` level for this seed (world 15 in easy mode, 25 in hard)."""
    rng, bg_pct_x, background = _start(level_id)
    maze_dim = rng.randn((world_dim - 1) // 2) * 2 + 3
    return _level(rng, world_dim, maze_dim, bg_pct_x, background, dead_ends=False, n_objects=1)


def fork_level(level_id: int, world_dim: int = WORLD_DIM, n_objects: int = 1) -> ProcgenLevel:
    """The original fork's level for this seed: the maze fills the world (no size draw, no
    margin), no dead ends, then obj1, obj2, ... placed in turn (the fork has one or two)."""
    check_world_dim(world_dim)
    rng, bg_pct_x, background = _start(level_id)
    return _level(rng, world_dim, world_dim, bg_pct_x, background, dead_ends=True, n_objects=n_objects)


def generate_procgen(level_ids: torch.Tensor, world_dim: int = WORLD_DIM, n_objects: int = 1) -> Levels:
    """``Levels`` for these ids from the original's generator, in gmg's orientation (row 0 at
    the top, the start bottom-left); background = procgen's background_index, bg_offset = bg_pct_x."""
    check_world_dim(world_dim)
    if n_objects < 1:
        raise LevelError(f"n_objects must be at least 1, got {n_objects}")
    device = level_ids.device
    ids = level_ids.to(torch.int64).cpu()
    n, w = ids.shape[0], world_dim
    walls = np.empty((n, w, w), dtype=bool)
    objects = np.empty((n, n_objects), dtype=np.int64)
    background = np.empty(n, dtype=np.int64)
    offset = np.empty(n, dtype=np.float64)
    for k, level_id in enumerate(ids.tolist()):
        lv = fork_level(level_id, w, n_objects)
        walls[k] = lv.grid == WALL
        objects[k] = [(w - 1 - y) * w + x for x, y in lv.objects]
        background[k], offset[k] = lv.background_index, lv.bg_pct_x
    free = torch.from_numpy(~walls[:, ::-1].copy())  # procgen's bottom row becomes the last row
    objects_t = torch.from_numpy(objects)
    levels = Levels(ids, free, objects_t, path_lengths(free, objects_t),
                    torch.from_numpy(background), torch.from_numpy(offset))
    return levels.to(device)
