"""Channel-reliance profiles over a population, stored in the results table ``reliance``.

For each agent: one episode on each of the first ``n_levels`` evaluation levels of its
training setting (``train:GOAL`` on its background, its world size and timeout) under
every condition of ``gmg.interp.reliance.CONDITIONS``, plus policy sensitivity and
Integrated-Gradients channel shares on the first frames of those levels. One row per
agent (one store chunk per agent, so an interrupted run resumes where it stopped). The
measures and the summary score ``green_vs_red`` are defined in ``gmg.interp.reliance``.

The episodes are played by ``gmg.experiments.evaluate.play`` with its hashed action noise:
the seven conditions of one agent play side by side in one batch (each an
``gmg.interp.interventions.Intervened`` copy of the network) and see the same noise, so the
``none`` condition reproduces ``gmg evaluate --settings train:GOAL`` exactly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from gmg.experiments.evaluate import agent_policy, play
from gmg.experiments.population import Population, TrainedOn, population
from gmg.experiments.settings import Setting, parse_setting
from gmg.experiments.store import ResultsStore
from gmg.interp.attribution import attribute, mean_shares
from gmg.interp.interventions import Intervened, Intervention
from gmg.interp.reliance import CONDITIONS, condition_interventions, policy_sensitivity, profile_row, summarise_episodes
from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv, check_n_levels
from gmg.training.errors import UserError

TABLE = "reliance"


def training_setting(trained: TrainedOn) -> Setting:
    """The agent's training setting ``train:GOAL`` on its training background."""
    return parse_setting(f"train:{trained.goal}", background=trained.background)


def play_conditions(
    model: nn.Module,
    agent_id: int,
    trained: TrainedOn,
    interventions: dict[str, Intervention],
    n_levels: int = 100,
    device: torch.device | str = "cpu",
    seed: int = 0,
    greedy: bool = False,
    timeout: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Episodes of one agent in its training setting under each named intervention.

    Returns condition -> DataFrame with columns ``level`` (0-based evaluation index),
    ``reached`` (0 timeout / 1 goal), ``steps`` and ``path_len`` (shortest path to the goal).
    """
    check_n_levels(n_levels)
    setting = training_setting(trained)
    world_dim, size, limit = trained.world_dim, trained.size, int(timeout if timeout is not None else trained.timeout)
    names = list(interventions)
    models = [Intervened(model, interventions[n]) for n in names]
    masked = [interventions[n] if getattr(interventions[n], "needs_masks", False) else None for n in names]
    policy = agent_policy(models, [int(agent_id)] * len(names), setting, n_levels, greedy, seed, masked=masked)
    result = play(setting, policy, len(names), n_levels, device, world_dim, size, limit, trained.levels, trained.render)
    out = {}
    for g, name in enumerate(names):
        sel = result["group"] == g
        out[name] = pd.DataFrame({
            "level": result["level"][sel], "reached": result["reached"][sel],
            "steps": result["steps"][sel], "path_len": result["path_len"][sel][:, 0],
        })
    return out


def evaluation_env(trained: TrainedOn, n: int, device: torch.device | str = "cpu",
                   objects: tuple[str, ...] | None = None) -> MazeEnv:
    """A ``MazeEnv`` at the start of the first ``n`` evaluation levels of the agent's level
    source, one env each, in its training setting (or with other ``objects``) drawn by its renderer."""
    setting = training_setting(trained)
    world_dim, size, limit = trained.geometry
    config = EnvConfig(objects=tuple(objects or setting.objects), world_dim=world_dim, size=size,
                       background=setting.background, timeout=limit, levels=trained.levels,
                       render=trained.render)
    return MazeEnv(n, config, EvaluationLevels(n=n, levels=trained.levels), device)


def first_frames(trained: TrainedOn, n: int, device: torch.device | str = "cpu", objects: tuple[str, ...] | None = None) -> torch.Tensor:
    """uint8 (n, size, size, 3) first frames of the first ``n`` evaluation levels of the
    agent's training setting (or of the same levels drawn with other ``objects``): ``evaluation_env``'s."""
    return evaluation_env(trained, n, device, objects).observe()


def agent_profile(
    model: nn.Module,
    agent_id: int,
    trained: TrainedOn,
    n_levels: int = 100,
    n_attr: int = 32,
    device: torch.device | str = "cpu",
    seed: int = 0,
    greedy: bool = False,
    timeout: int | None = None,
) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The reliance row of one agent (``gmg.interp.reliance.profile_row``) and its episodes per condition."""
    episodes = play_conditions(model, agent_id, trained, condition_interventions(), n_levels, device, seed, greedy, timeout)
    behaviour = {
        name: summarise_episodes(df["reached"].to_numpy(), df["steps"].to_numpy(), df["path_len"].to_numpy())
        for name, df in episodes.items()
    }
    frames = first_frames(trained, max(n_attr, 1), device)
    sensitivity = policy_sensitivity(model, frames)
    shares = mean_shares(attribute(model, frames, method="ig", n_steps=32, internal_batch_size=256).attributions)
    return profile_row(behaviour, sensitivity, shares), episodes


def run_reliance(
    agents: Population | str | Path | list,
    run_dir: str | Path,
    device: torch.device | str = "cpu",
    n_levels: int = 100,
    n_attr: int = 32,
    seed: int = 0,
    greedy: bool = False,
    timeout: int | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Profile every agent not yet in the store (or all with ``force``); returns the table rows.

    ``timeout`` overrides the episode limit of the training setting (default: the agent's).
    Each row: ``agent``, ``path``, ``n_levels``, ``seed``, ``greedy``,
    ``seconds`` (wall time of that agent's profile) and the columns of ``profile_row``.
    """
    if n_levels < 1:
        raise UserError(f"--n-levels must be at least 1, got {n_levels}")
    agents = population(agents)
    with ResultsStore(run_dir) as store:
        store.check_config("reliance_config", {"n_levels": n_levels, "n_attr": n_attr, "seed": seed, "greedy": greedy,
                                               "timeout": timeout}, "reliance profiles")
        store.check_agents(agents)
        for ref in agents:
            key = {"agent": int(ref.agent_id)}
            if not force and store.has_chunk(TABLE, key):
                continue
            start = time.perf_counter()
            model = ref.load(device)
            row, _ = agent_profile(model, ref.agent_id, ref.trained_on, n_levels, n_attr, device, seed, greedy, timeout)
            seconds = time.perf_counter() - start
            df = pd.DataFrame([{
                "agent": int(ref.agent_id), "path": str(ref.path), "n_levels": int(n_levels),
                "seed": int(seed), "greedy": bool(greedy), "seconds": seconds, **row,
            }])
            store.write_chunk(TABLE, df, key)
            if progress is not None:
                progress(f"agent {ref.agent_id}: green_vs_red {row['green_vs_red']:+.3f} ({seconds:.1f}s)")
        ids = [int(r.agent_id) for r in agents]
        out = store.query(f"SELECT * FROM {TABLE} WHERE agent IN ({', '.join('?' * len(ids))}) ORDER BY agent", ids)
    return out


def preferences(run_dir: str | Path, setting: str, intervention: str = "none") -> pd.DataFrame:
    """Per-agent preference for obj1 in ``setting`` from the ``episodes`` table (``gmg evaluate``).

    preference as ``gmg.experiments.evaluate.metrics`` defines it (timeouts excluded; NaN if
    every episode timed out). Returns columns ``agent``, ``preference``, ``n_decided``.
    """
    from gmg.experiments.evaluate import episodes, metrics

    with ResultsStore(run_dir, read_only=True) as store:
        rows = episodes(store, settings=[setting], interventions=[intervention])
    if rows.empty:
        raise UserError(f"no episodes for setting {setting!r} (intervention {intervention!r}) in {run_dir}; "
                       "evaluate it first")
    m = metrics(rows)
    return pd.DataFrame({"agent": m["agent"].astype(int), "preference": m["preference"],
                         "n_decided": (m["n_obj1"] + m["n_obj2"]).astype(int)})


__all__ = ["CONDITIONS", "TABLE", "agent_profile", "first_frames", "play_conditions", "preferences", "run_reliance", "training_setting"]
