"""What a training run reports: train.csv rows per update (``log_update``) and its progress bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gmg.training.checkpoint import append_log
from gmg.training.config import TrainConfig


def iteration_stats(*, iteration: int, global_step: int, wall_time: float, sps: float, ep: list[float],
                    lr: float, last: dict, clipfrac: float, values: torch.Tensor, returns: torch.Tensor) -> dict:
    """One row of train.csv: ``ep`` is ``episode_sums`` of the rollout, ``last`` the losses of
    the last minibatch (floats), ``values``/``returns`` the batch's (for explained variance)."""
    y_pred, y_true = values.float().cpu().numpy(), returns.float().cpu().numpy()
    var_y = np.var(y_true)
    n_ep, len_sum, ret_sum, path_sum, success_sum = ep
    per_episode = (lambda total: total / n_ep) if n_ep else (lambda total: float("nan"))
    return {
        "iteration": iteration, "global_step": global_step, "wall_time": round(wall_time, 2), "sps": round(sps, 1),
        "episodes": int(n_ep),
        "episodic_return": per_episode(ret_sum), "episode_length": per_episode(len_sum),
        "shortest_path": per_episode(path_sum), "success": per_episode(success_sum),
        "learning_rate": lr, "policy_loss": last["policy_loss"], "value_loss": last["value_loss"],
        "entropy": last["entropy"], "approx_kl": last["approx_kl"], "clipfrac": clipfrac,
        "explained_variance": float("nan") if var_y == 0 else float(1 - np.var(y_true - y_pred) / var_y),
    }


def log_update(config: TrainConfig, agent_dirs: list[Path], on_update, *, iteration: int, global_step: int,
               wall_time: float, sps: float, ep: torch.Tensor, lr: float, out: dict, clipfrac: torch.Tensor,
               batch: dict) -> list[dict]:
    """Each seed's row of train.csv (``iteration_stats``) appended to its log and passed to
    ``on_update``; ``ep`` is (5, K), ``out`` and ``clipfrac`` ``ppo_update``'s, ``sps`` per seed."""
    ep_rows, clipfracs = ep.T.tolist(), clipfrac.tolist()
    last = {key: v.tolist() for key, v in out.items() if key != "loss"}
    rows = []
    for k, agent_dir in enumerate(agent_dirs):
        row = iteration_stats(iteration=iteration, global_step=global_step, wall_time=wall_time, sps=sps, ep=ep_rows[k],
                              lr=lr, last={key: v[k] for key, v in last.items()}, clipfrac=clipfracs[k],
                              values=batch["values"][k], returns=batch["returns"][k])
        append_log(agent_dir, row)
        if on_update is not None:
            on_update(row)
        rows.append(row)
    return rows


def progress_bar(show: bool, total: int, initial: int, desc: str):
    """A tqdm bar over env steps, or None."""
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc=desc, dynamic_ncols=True, leave=False)


def progress_text(sps: float, stats: dict) -> str:
    return (f"{sps:,.0f} steps/s  success {stats['success']:.2f}  "
            f"length {stats['episode_length']:.1f} / shortest {stats['shortest_path']:.1f}")
