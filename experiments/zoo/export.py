"""The zoo's two tools: export a finished run as 16-bit package data, and the held-out check."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from gmg.training.checkpoint import is_finished, load_agent, read_meta, save_weights, write_meta
from gmg.training.errors import UserError


def export_zoo(run_dir: Path, zoo_dir: Path, dtype: torch.dtype = torch.float16, seeds: list[int] | None = None) -> list[Path]:
    """Copy the finished agents of a run (``seeds`` only, if given) into a zoo folder: 16-bit
    weights, meta, log. Agents of the zoo folder that are not exported this time are removed."""
    src = Path(run_dir) / "agents"
    if not src.is_dir():
        raise UserError(f"{run_dir} has no agents/ folder; train it with `gmg train`")
    zoo_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for folder in sorted(src.iterdir()):
        if not is_finished(folder) or (seeds is not None and int(read_meta(folder)["seed"]) not in seeds):
            continue
        model, meta = load_agent(folder)
        dest = zoo_dir / folder.name
        dest.mkdir(exist_ok=True)
        save_weights(model, dest / "model.safetensors", dtype=dtype)
        meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "code_version")}
        write_meta(dest, {**meta, "weights_dtype": str(dtype).replace("torch.", "")})
        shutil.copy(folder / "train.csv", dest / "train.csv")
        out.append(dest)
    for stale in set(zoo_dir.iterdir()) - set(out):  # an agent left out (it failed the held-out bar)
        if stale.is_dir() and (stale / "meta.json").is_file():
            shutil.rmtree(stale)
    return out


HELDOUT_SUCCESS, HELDOUT_RATIO = 0.99, 1.5  # the zoo's bar: success and length / shortest path


def heldout_table(episodes: "pandas.DataFrame") -> "pandas.DataFrame":  # noqa: F821
    """Per agent: held-out success, mean length against mean shortest path, and whether it passes."""
    g = episodes.assign(success=episodes["outcome"].eq("obj1")).groupby("agent")
    table = g.agg(levels=("level", "size"), success=("success", "mean"), length=("steps", "mean"),
                  shortest=("path_len_obj1", "mean"))
    table["ratio"] = table["length"] / table["shortest"]
    table["passes"] = (table["success"] >= HELDOUT_SUCCESS) & (table["ratio"] <= HELDOUT_RATIO)
    return table.reset_index()


def check_agents(agents: str, run_dir: Path, device: str = "auto", n_levels: int = 1000,
                 progress: bool = True) -> "pandas.DataFrame":  # noqa: F821
    """Evaluate agents on held-out levels of their own training object and background."""
    from gmg.experiments.evaluate import evaluate
    from gmg.experiments.population import resolve_agents
    from gmg.experiments.settings import resolve_settings

    by_env: dict[tuple[str, str], list] = {}
    for ref in resolve_agents(agents):
        by_env.setdefault((ref.trained_on.goal, ref.trained_on.background), []).append(ref)
    frames = [evaluate(group, resolve_settings([f"train:{goal}"], background), run_dir, device,
                       n_levels=n_levels, progress=progress)
              for (goal, background), group in by_env.items()]
    import pandas as pd

    return heldout_table(pd.concat(frames, ignore_index=True))


