"""Vector fields of a population: every agent's most likely move from every free cell of one
level, the agents side by side, and how an intervention changes them.

The mouse is placed in every free cell without an object (facing left), every frame goes
through each network once, and the probabilities of the 15 actions are summed per effective
move (``gmg.training.env.action_deltas``: diagonals move sideways, 9-14 do nothing). The
objects stand where the level puts them, or where ``place`` says (a custom placement).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from gmg.experiments.plots.style import pyplot, save_figure
from gmg.experiments.population import Population, population
from gmg.experiments.settings import Setting, file_stem, parse_setting
from gmg.training.env import (
    OBS_SIZE,
    WORLD_DIM,
    EnvConfig,
    EvaluationLevels,
    MazeEnv,
    action_deltas,
    check_level_index,
    evaluation_start,
)
from gmg.training.errors import UserError


def parse_place(text: str | None) -> list[tuple[int, int]] | None:
    """``"0,4;4,0"`` -> [(0, 4), (4, 0)]: (row, col) of obj1, obj2."""
    if not text:
        return None
    try:
        cells = [tuple(int(v) for v in part.split(",")) for part in text.split(";") if part.strip()]
    except ValueError:
        cells = []
    if not cells or any(len(c) != 2 for c in cells):
        raise UserError(f"--place expects ROW,COL;ROW,COL (obj1 then obj2), got {text!r}")
    return cells


def level_frames(setting: Setting, level: int = 0, world_dim: int = WORLD_DIM, size: int = OBS_SIZE,
                 place: list[tuple[int, int]] | None = None, device: torch.device | str = "cpu",
                 levels: str = "hashed", render: str = "box") -> dict:
    """The frames of one evaluation level (index 0-999 of the level source ``levels``) with the
    mouse in every free cell.

    Returns {"frames": uint8 (n, size, size, 3), "masks": bool (n, size, size, K) object pixels,
    "cells": int64 (n,), "frame": uint8 (size, size, 3) without the mouse, "objects": int64 (K,)
    the objects' cells, "free": bool (world_dim, world_dim), "level", "world_dim", "size", "setting"}.
    """
    check_level_index(level)
    device = torch.device(device)
    config = EnvConfig(objects=setting.objects, world_dim=world_dim, size=size, background=setting.background,
                       levels=levels, render=render)
    env = MazeEnv(1, config, EvaluationLevels([evaluation_start(levels) + level]), device)
    if place is not None:
        if len(place) != len(setting.objects):
            raise UserError(f"--place gives {len(place)} cells for the {len(setting.objects)} objects of {setting.name}")
        cells = []
        for r, c in place:
            if not (0 <= r < world_dim and 0 <= c < world_dim) or not bool(env.free[0, r, c]):
                raise UserError(f"cell ({r}, {c}) is not a free cell of level {level} (a {world_dim}x{world_dim} maze)")
            cells.append(r * world_dim + c)
        if len(set(cells)) < len(cells) or world_dim * (world_dim - 1) in cells:
            raise UserError("objects need distinct cells, and not the start cell (bottom left)")
        env.place_objects(cells)
    objects = env.bank.objects[env.row][0]
    free = env.free[0].reshape(-1).clone()
    free[objects] = False
    cells = free.nonzero().squeeze(1)
    n = cells.numel()
    frames = env.renderer.with_agent(env.static.repeat(n, 1, 1), cells, torch.zeros(n, dtype=torch.bool, device=device))
    masks = env.renderer.object_masks(objects[None].repeat(n, 1))
    return {"frames": frames, "masks": masks, "cells": cells, "frame": env.static[0, :-1].reshape(size, size, 3),
            "objects": objects, "free": env.free[0], "level": level, "world_dim": world_dim, "size": size, "setting": setting,
            "env": env}


@torch.inference_mode()
def moves(model: torch.nn.Module, view: dict, intervention=None) -> dict:
    """The most probable move from each cell of ``view`` (``level_frames``): {"delta": int64 (n, 2)
    (d_row, d_col), "prob": float (n,)}; ``intervention`` active on the network if given."""
    import contextlib

    frames = view["frames"]
    ctx = contextlib.ExitStack()
    if intervention is not None:
        if getattr(intervention, "needs_masks", False):
            ctx.enter_context(intervention.masked(view["masks"]))
        ctx.enter_context(intervention(model))
    was_training = model.training
    model.eval()
    with ctx:
        logits = model(frames)[0]
    model.train(was_training)
    probs = torch.softmax(logits.float(), dim=-1)
    deltas = action_deltas(frames.device)
    unique, move_of_action = torch.unique(deltas, dim=0, return_inverse=True)
    move_probs = torch.zeros(probs.shape[0], unique.shape[0], device=frames.device).index_add_(1, move_of_action, probs)
    best = move_probs.argmax(1)
    return {"delta": unique[best].cpu().numpy(), "prob": move_probs.gather(1, best[:, None]).squeeze(1).cpu().numpy()}


@torch.inference_mode()
def expected_visits(model: torch.nn.Module, view: dict, intervention=None) -> dict:
    """The agent's expected visits per cell on ``view``'s level (``level_frames``), from its exact
    Markov chain (``gmg.experiments.exact.solve`` with ``occupancy``: the expected number of times
    0..T, T the episode's last step, at which the mouse is in each cell, so they sum to E[steps] + 1
    and an object's cell gets the probability of reaching it first), ``intervention`` active on
    the network (object-local ones get each frame's object masks).

    Returns {"visits": float64 (W, W), "p_obj1", "p_obj2", "p_timeout", "e_steps": floats}."""
    import contextlib

    from gmg.experiments.exact import network_probs, solve

    env, w = view["env"], view["world_dim"]
    local = [intervention] if getattr(intervention, "needs_masks", False) else None
    was_training = model.training
    model.eval()
    with contextlib.ExitStack() as stack:
        if intervention is not None:
            stack.enter_context(intervention(model))
        res = solve(env, 1, network_probs(env, [model], local=local), occupancy=True)
    model.train(was_training)
    out = {k: float(res[k][0]) for k in ("p_obj1", "p_obj2", "p_timeout", "e_steps")}
    return {"visits": res["visits"][0].view(w, w).cpu().numpy(), **out}


OCCUPANCY_FLOOR = 0.01  # expected visits below this leave a cell uncoloured
# dark blue to pale cyan: apart from the objects' reds and yellows and the walls' browns
OCCUPANCY_COLOURS = ("#0b1d4d", "#1f5fa6", "#35a7c9", "#a8eef5")


def _cell_text(v: float) -> str:
    return f"{v:.0f}" if v >= 9.95 else f"{v:.1f}" if v >= 0.995 else f"{v:.2f}".lstrip("0")


def _heat(ax, view: dict, occ: dict, scale: int, norm, cmap) -> None:
    from matplotlib.patches import Rectangle

    from gmg.training.levels import start_cell
    from gmg.training.render import cell_bounds

    w = view["world_dim"]
    b = cell_bounds(w, view["size"]) * scale
    objects = [int(c) for c in view["objects"]]
    free = view["free"].cpu().numpy().reshape(-1)
    ax.imshow(np.kron(view["frame"].cpu().numpy(), np.ones((scale, scale, 1), dtype=np.uint8)))
    visits = occ["visits"].reshape(-1)
    for cell in range(w * w):
        r, c = divmod(cell, w)
        x0, y0, side = b[c], b[r], b[c + 1] - b[c]
        v = float(visits[cell])
        if cell in objects:
            ax.add_patch(Rectangle((x0 + 1, y0 + 1), side - 2, side - 2, fill=False, ec="w", lw=1.0))
            if len(objects) > 1:
                ax.text(x0 + 3, y0 + 3, str(objects.index(cell) + 1), ha="left", va="top", fontsize=5.5, color="w")
            continue
        if not free[cell]:
            continue
        if v >= OCCUPANCY_FLOOR:
            rgba = cmap(norm(v))
            ax.add_patch(Rectangle((x0, y0), side, side, fc=rgba, ec="none"))
            dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
            ax.text(x0 + side / 2, y0 + side / 2, _cell_text(v), ha="center", va="center", fontsize=6.5,
                    color="w" if dark else "k")
        if cell == start_cell(w):
            ax.add_patch(Rectangle((x0 + 2, y0 + 2), side - 4, side - 4, fill=False, ec="w", lw=1.0, ls=(0, (2, 2))))


def plot_occupancy(panels: list[tuple[dict, dict, str]], path: Path, title: str, scale: int = 4,
                   cols: int = 8, panel_inches: float = 1.9) -> Path:
    """Heat maps of expected visits per cell over the maze, one panel per (view, ``expected_visits``,
    label), on one logarithmic colour scale: visited free cells coloured and labelled with their
    visits, walls and objects as the agent sees them (each object outlined and numbered; the title
    gives the probability of reaching each first and the expected steps), the start cell dashed."""
    from matplotlib.colors import LinearSegmentedColormap, LogNorm

    plt = pyplot()
    cmap = LinearSegmentedColormap.from_list("occupancy", OCCUPANCY_COLOURS)
    top = max([float(o["visits"].max()) for _, o, _ in panels] + [1.0])
    norm = LogNorm(vmin=OCCUPANCY_FLOOR, vmax=top)
    cols = min(cols, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_inches * cols + 0.6, (panel_inches + 0.3) * rows + 0.5),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (view, occ, label) in zip(axes.flat, panels):
        _heat(ax, view, occ, scale, norm, cmap)
        reach = (f"obj1 {occ['p_obj1']:.2f}, obj2 {occ['p_obj2']:.2f}" if len(view["objects"]) > 1
                 else f"reached {occ['p_obj1']:.2f}")
        ax.set_title(f"{label}\n{reach}\n{occ['e_steps']:.1f} steps", fontsize=6.5)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
    bar.set_label("expected visits", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, dpi=110)


def _arrows(ax, view: dict, field: dict, scale: int, changed: np.ndarray | None = None) -> None:
    from gmg.training.render import cell_bounds

    plt = pyplot()
    b = cell_bounds(view["world_dim"], view["size"]) * scale
    centres = (b[:-1] + b[1:]) / 2
    cmap = plt.get_cmap("viridis")
    for i, (cell, (dr, dc), p) in enumerate(zip(view["cells"].tolist(), field["delta"], field["prob"])):
        r, c = divmod(int(cell), view["world_dim"])
        y, x = centres[r], centres[c]
        colour = "#ff2d55" if changed is not None and changed[i] else cmap(float(p))
        if dr == 0 and dc == 0:
            ax.plot(x, y, "o", color=colour, ms=4, mec="w", mew=0.5)
        else:
            half = 0.3 * (b[1] - b[0])
            ax.annotate("", xy=(x + dc * half, y + dr * half), xytext=(x - dc * half, y - dr * half),
                        arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.6, mutation_scale=9))


def plot_fields(view: dict, fields: dict[int, dict], path: Path, title: str, base: dict[int, dict] | None = None,
                scale: int = 4) -> Path:
    """Small multiples, one panel per agent; with ``base``, moves that differ from it are red."""
    plt = pyplot()
    n = len(fields)
    cols = min(8, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.05 * rows + 0.5), squeeze=False)
    frame = np.kron(view["frame"].cpu().numpy(), np.ones((scale, scale, 1), dtype=np.uint8))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (agent, field) in zip(axes.flat, fields.items()):
        ax.imshow(frame)
        changed = None
        if base is not None:
            changed = np.any(field["delta"] != base[agent]["delta"], axis=1)
        _arrows(ax, view, field, scale, changed)
        label = f"agent {agent}" + (f": {int(changed.sum())} moves changed" if changed is not None else "")
        ax.set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def vector_fields(agents: Population | str | Path | list = "zoo:yellow-line", setting: str = "red_line-vs-yellow_gem",
                  level: int = 0, out_dir: str | Path = "runs/vfield", intervention: str | None = "isolate:g",
                  place: list[tuple[int, int]] | None = None, device: torch.device | str = "cpu",
                  occupancy: bool = False) -> dict:
    """Write the population's vector fields of ``setting`` on its training background (and,
    with ``intervention``, the fields under it with the changed moves marked); with ``occupancy``,
    also each agent's expected visits per cell (``expected_visits``), clean and under ``intervention``.

    Returns {"clean": path, "intervened": path or None, "changed": {agent: moves changed},
    "occupancy": [paths], "visits": {"clean" / intervention name: {agent: expected_visits}}}.
    """
    from gmg.interp.interventions import parse_intervention

    agents = population(agents)
    s = parse_setting(setting, agents.trained_on.background)
    view = level_frames(s, level, agents.trained_on.world_dim, agents.trained_on.size, place, device,
                        agents.trained_on.levels, agents.trained_on.render)
    iv = parse_intervention(intervention) if intervention and intervention != "none" else None
    clean, edited = {}, {}
    visits: dict[str, dict] = {"clean": {}, **({iv.name: {}} if iv is not None and occupancy else {})}
    for ref in agents:
        model = ref.load(device)
        clean[ref.agent_id] = moves(model, view)
        if iv is not None:
            edited[ref.agent_id] = moves(model, view, iv)
        if occupancy:
            visits["clean"][ref.agent_id] = expected_visits(model, view)
            if iv is not None:
                visits[iv.name][ref.agent_id] = expected_visits(model, view, iv)
    out_dir = Path(out_dir)
    where = f"level {level}" + (f", objects at {place}" if place else "")
    stem = f"vfield-{s.name.replace('@', '-')}-level{level}"
    iv_stem = iv.name.replace(':', '_').replace('@', '-') if iv is not None else ""
    paths = {"clean": plot_fields(view, clean, out_dir / f"{stem}.png",
                                  f"{s.name}, {where}: each agent's most likely move (colour = its probability)"),
             "intervened": None, "changed": {}, "occupancy": [], "visits": visits}
    if iv is not None:
        paths["intervened"] = plot_fields(view, edited, out_dir / f"{stem}-{iv_stem}.png",
                                          f"{s.name}, {where}, under {iv.name}: moves that differ from the clean "
                                          "field in red", base=clean)
        paths["changed"] = {a: int(np.any(edited[a]["delta"] != clean[a]["delta"], axis=1).sum()) for a in clean}
    for name, per_agent in visits.items() if occupancy else ():
        under = "" if name == "clean" else f", under {name}"
        paths["occupancy"].append(plot_occupancy(
            [(view, occ, f"agent {a}") for a, occ in per_agent.items()],
            out_dir / f"occupancy-{file_stem(s.name)}-level{level}{'' if name == 'clean' else '-' + iv_stem}.png",
            f"{s.name}, {where}{under}: each agent's expected visits per cell (exact, the start cell dashed)"))
    return paths
