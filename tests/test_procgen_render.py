"""gmg's procgen renderer against procgen's own runtime, pixel for pixel.

The same layouts (gmg's levels as procgen grids), mouse cells and facings, world sizes and
backgrounds are drawn by procgen-mirror's ``maze`` (its state edited through get_state /
set_state, ``procgen_state``) and by ``ProcgenRenderer``; every pixel must agree. The cheese
is removed from procgen's grid and gmg draws no object, so every pixel is compared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv
from gmg.training.levels import generate
from gmg.training.objects import parse_object
from gmg.training.render import (
    GREY,
    RENDER_EPS,
    ProcgenGeometry,
    ProcgenRenderer,
    Renderer,
    RenderError,
    blit_map,
    make_renderer,
)

WALL, SPACE = 51, 100  # procgen's grid values
N = 40  # frames per case; six cases make 240
CASES = [(5, "textured"), (5, "black"), (7, "textured"), (15, "black"), (15, "textured"), (25, "textured")]
CPU = torch.device("cpu")


def _case(w: int, seed: int):
    lv = generate(torch.arange(seed * 1000, seed * 1000 + N), w, 1)
    free = lv.free.reshape(N, -1)
    rng = np.random.default_rng(seed)
    agent = torch.tensor([rng.choice(np.flatnonzero(f)) for f in free.numpy()])
    mirrored = torch.arange(N) % 2 == 1  # both facings
    background = torch.arange(N) % 9  # every texture
    return free, agent, mirrored, background, rng


@pytest.fixture(scope="module")
def procgen_env():
    procgen = pytest.importorskip("procgen")
    from procgen_state import decode

    env = procgen.ProcgenGym3Env(num=N, env_name="maze", distribution_mode="easy", start_level=0, num_levels=1)
    return env, decode(env.get_state()[0])


def procgen_frames(procgen_env, w, free, agent, mirrored, background, use_backgrounds, rng) -> np.ndarray:
    """procgen's own frames of these layouts: uint8 (N, 64, 64, 3)."""
    from procgen_state import encode

    env, base = procgen_env
    states = []
    for i in range(N):
        grid = np.where(free[i].numpy().reshape(w, w), SPACE, WALL)[::-1]  # procgen's row 0 is the bottom
        r, c = divmod(int(agent[i]), w)
        mouse = dict(base["entities"][0], x=c + 0.5, y=w - 1 - r + 0.5, is_reflected=int(mirrored[i]))
        states.append(encode({
            **base, "grid": grid, "grid_size": w * w, "main_width": w, "main_height": w, "world_dim": w,
            "maze_dim": w, "entities": [mouse], "use_backgrounds": int(use_backgrounds),
            "background_index": int(background[i]), "bg_pct_x": float(rng.random()),  # no effect: square textures
        }))
    env.set_state(states)
    return env.observe()[1]["rgb"]


@pytest.mark.parametrize("w, background", CASES)
def test_frames_equal_procgens_own_pixel_for_pixel(procgen_env, w, background):
    free, agent, mirrored, bg_index, rng = _case(w, len(background) + w)
    want = procgen_frames(procgen_env, w, free, agent, mirrored, bg_index, background == "textured", rng)
    r = ProcgenRenderer(w, 64, background, (), CPU)
    static = r.static(~free, torch.zeros(N, 0, dtype=torch.int64), r.background_frames(bg_index, torch.zeros(N)))
    got = r.with_agent(static, agent, mirrored).numpy()
    bad = (got != want).any(-1)
    assert bad.sum() == 0, f"{int(bad.sum())} pixels differ in {int(bad.any((1, 2)).sum())} of {N} frames"
    # the area-averaged renderer is not procgen's: its walls and mouse differ
    box = Renderer(w, 64, background, (), CPU)
    other = box.render(~free, torch.zeros(N, 0, dtype=torch.int64), agent, mirrored,
                       box.background_frames(bg_index, torch.zeros(N, dtype=torch.float64))).numpy()
    assert (other != want).any(-1).mean() > 0.02


def test_grey_fills_what_black_leaves_empty():
    free, agent, mirrored, _, _ = _case(5, 3)
    none = torch.zeros(N, 0, dtype=torch.int64)
    black, grey = (ProcgenRenderer(5, 64, bg, (), CPU).render(~free, none, agent, mirrored, None).numpy()
                   for bg in ("black", "grey"))
    empty = (black == 0).all(-1)
    assert empty.mean() > 0.1 and (grey[empty] == GREY).all()
    # elsewhere only the mouse's half-transparent rim differs (it blends with what is under it)
    assert ((grey != black).any(-1) & ~empty).mean() < 0.01


def test_objects_are_grown_grid_tiles_with_the_reference_shape():
    """Objects are grid values in procgen, drawn like a wall tile (grown by RENDER_EPS); in a
    13-px tile of a 5x5 world the shape is the original's reference crop."""
    w = 5
    geom = ProcgenGeometry(w, w, 64)
    for name, ref in (("yellow_line", "yellow_line_diag"), ("yellow_gem", "yellow_gem")):
        want = np.asarray(Image.open(f"tests/data/reference/object-{ref}-black-bg.png").convert("RGB"))
        r = ProcgenRenderer(w, 64, "black", (parse_object(name),), CPU)
        cells = torch.tensor([[0], [6], [12], [24]])  # 13-px tiles at (0, 0), (1, 1); 14-px ones at (2, 2)
        frames = r.render(torch.zeros(4, w * w, dtype=torch.bool), cells, torch.full((4,), 20), torch.zeros(4, dtype=torch.bool), None)
        masks = r.object_masks(cells)
        for frame, mask, cell in zip(frames.numpy(), masks.numpy(), cells[:, 0].tolist()):
            rr, cc = divmod(cell, w)
            pix, _ = blit_map(geom.rect(cc, w - rr, 1, 1, RENDER_EPS), 128, 128, 64)
            rows, cols = np.unique(pix // 64), np.unique(pix % 64)
            crop = frame[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            if crop.shape[:2] == (13, 13):
                assert np.array_equal(crop, want), (name, cell)
            else:  # a grown 14-px tile: the same shape resampled nearest-neighbour
                assert crop.shape[:2] == (14, 14) and abs(int(crop.any(-1).sum()) - int(want.any(-1).sum())) < 12
            # the object's pixels are its mask, all inside its grown tile
            assert mask[..., 0].sum() == crop.any(-1).sum() and (frame[mask[..., 0]] == (255, 255, 0)).all()
    # a wall drawn later (the cell to the right) covers the grown rim of the tile before it
    r = ProcgenRenderer(w, 64, "black", (parse_object("yellow_line"),), CPU)
    wall = torch.zeros(1, w * w, dtype=torch.bool)
    wall[0, 2] = True
    alone, beside = (r.object_masks(torch.tensor([[1]]), wl)[0, ..., 0] for wl in (None, wall))
    assert alone[:, 25].any() and not beside[:, 25].any() and (alone[:, :25] == beside[:, :25]).all()


def test_env_renders_with_the_configured_renderer():
    ids = torch.arange(6)
    frames = {}
    for render in ("procgen", "box"):
        env = MazeEnv(6, EnvConfig(render=render, background="textured"), EvaluationLevels(ids))
        frames[render] = env.observe()
        assert isinstance(env.renderer, ProcgenRenderer if render == "procgen" else Renderer)
    assert not torch.equal(frames["procgen"], frames["box"])
    with pytest.raises(RenderError, match="unknown render"):
        make_renderer("bilinear", 5, 64, "black", (), CPU)


def test_render_is_recorded_and_a_missing_field_means_box(tmp_path):
    import json

    from gmg.experiments.cli.train import _legacy_render
    from gmg.experiments.population import TrainedOn
    from gmg.training.checkpoint import _config_diff, agent_meta
    from gmg.training.config import ConfigError, config_from_dict, make_config

    config = make_config("cpu")  # new training draws like procgen
    assert config.render == "procgen" and config.env_config().render == "procgen"
    meta = agent_meta(config, CPU)
    assert meta["train"]["render"] == meta["env"]["render"] == "procgen"
    assert TrainedOn.from_meta(meta).render == "procgen"
    # files written before the field (the bundled zoo): box, in the recipe, the env and on resume
    old = {k: v for k, v in meta["train"].items() if k != "render"}
    assert config_from_dict(old).render == "box" and TrainedOn.from_meta({"env": {}}).render == "box"
    assert _config_diff(old, make_config("cpu", {"render": "box"}).to_dict()) == []
    assert _config_diff(old, config.to_dict()) == ["render"]
    (tmp_path / "population.json").write_text(json.dumps({"train": old}))
    assert _legacy_render(tmp_path) == {"render": "box"}
    (tmp_path / "population.json").write_text(json.dumps({"train": meta["train"]}))
    assert _legacy_render(tmp_path) == {} and _legacy_render(tmp_path / "nothing") == {}
    with pytest.raises(ConfigError, match="unknown render"):
        make_config("cpu", {"render": "bilinear"})
