"""PPO on the batched maze, CleanRL's procgen loop written out top to bottom.

``train_agent(config, agent_dir)`` trains (or resumes) one seed; ``train(config, run_dir,
seeds)`` trains a population, skipping finished seeds. Environment, rollout buffers and
network live on one device.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn, optim

from training.checkpoint import (
    CODE_VERSION,
    agent_dir_name,
    is_finished,
    read_meta,
    save_weights,
    write_meta,
)
from training.config import RUN_FIELDS_IGNORED_ON_RESUME, ConfigError, TrainConfig
from training.env import MazeEnv, TrainingLevels
from training.model import ImpalaAgent

LOG_FIELDS = (
    "iteration", "global_step", "wall_time", "sps", "episodes", "episodic_return", "episode_length",
    "shortest_path", "success", "learning_rate", "policy_loss", "value_loss", "entropy",
    "approx_kl", "clipfrac", "explained_variance",
)


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, a changed config on resume)."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; the one place seeds are set."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    return device


class RunningMeanStd:
    """Running variance of a stream of batches (for reward scaling)."""

    def __init__(self, device: torch.device):
        self.mean = torch.zeros((), dtype=torch.float64, device=device)
        self.var = torch.ones((), dtype=torch.float64, device=device)
        self.count = torch.tensor(1e-4, dtype=torch.float64, device=device)

    def update(self, x: torch.Tensor) -> None:
        x = x.double()
        b_mean, b_var, b_count = x.mean(), x.var(unbiased=False), x.numel()
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def state(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load(self, s: dict) -> None:
        self.mean, self.var, self.count = s["mean"], s["var"], s["count"]


def _config_diff(a: dict, b: dict) -> list[str]:
    keys = (set(a) | set(b)) - set(RUN_FIELDS_IGNORED_ON_RESUME)
    return sorted(k for k in keys if a.get(k) != b.get(k))


def train_agent(config: TrainConfig, agent_dir: str | Path, device: str | torch.device = "auto",
                progress: bool = True, max_iterations: int | None = None) -> Path:
    """Train one agent with ``config.seed`` into ``agent_dir`` (resuming if it holds a run).

    ``max_iterations`` stops early after that many updates in this call (used to test
    resume); the run stays resumable.
    """
    config.validate()
    device = resolve_device(device)
    agent_dir = Path(agent_dir)
    agent_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    if is_finished(agent_dir):
        return agent_dir

    # ---- setup: the seed fixes the initial weights and the order of training levels
    seed_everything(config.seed)
    model = ImpalaAgent(config.model_config()).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
    env = MazeEnv(config.num_envs, config.env_config(), TrainingLevels(config.num_levels, config.seed, config.start_level), device)
    forward = torch.compile(model) if config.compile else model
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if config.bf16 else contextlib.nullcontext
    reward_rms = RunningMeanStd(device)

    n, t_len = config.num_envs, config.num_steps
    obs = torch.zeros((t_len, n, config.obs_size, config.obs_size, 3), dtype=torch.uint8, device=device)
    actions = torch.zeros((t_len, n), dtype=torch.int64, device=device)
    logprobs = torch.zeros((t_len, n), device=device)
    rewards = torch.zeros((t_len, n), device=device)
    dones = torch.zeros((t_len, n), device=device)
    values = torch.zeros((t_len, n), device=device)

    global_step, iteration, wall_before = 0, 0, 0.0
    next_obs = env.reset()
    next_done = torch.zeros(n, device=device)
    disc_return = torch.zeros(n, dtype=torch.float64, device=device)
    resume_path = agent_dir / "resume.pt"
    log_path = agent_dir / "train.csv"
    if resume_path.exists():
        meta = read_meta(agent_dir)
        diff = _config_diff(meta["train"], config.to_dict())
        if diff:
            shown = ", ".join(f"{k}: {meta['train'].get(k)!r} -> {config.to_dict().get(k)!r}" for k in diff[:4])
            raise TrainingError(
                f"{agent_dir} holds a run with a different config ({shown}); "
                "use the original settings or another run directory"
            )
        state = torch.load(resume_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        reward_rms.load(state["reward_rms"])
        for k in ("row", "agent", "mirrored", "steps", "counter"):
            setattr(env, k, state["env"][k])
        env.static = env._render_static(env.row)
        next_obs = env.observe()
        next_done, disc_return = state["next_done"], state["disc_return"]
        global_step, iteration, wall_before = state["global_step"], state["iteration"], state["wall_time"]
        # map_location moved every tensor to the device; RNG states must be CPU byte tensors
        torch.set_rng_state(state["rng_cpu"].cpu())
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"].cpu())
        # drop log rows written after this checkpoint, so none is duplicated
        if log_path.exists():
            rows = list(csv.DictReader(log_path.open()))
            rows = [r for r in rows if int(r["iteration"]) <= iteration]
            with log_path.open("w", newline="") as f:
                w = csv.DictWriter(f, LOG_FIELDS)
                w.writeheader()
                w.writerows(rows)
    else:
        with log_path.open("w", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writeheader()

    base_meta = {
        "seed": config.seed, "preset": config.preset, "train": config.to_dict(),
        "model": config.model_config().to_dict(),
        "env": {"objects": [config.goal], "world_dim": config.world_dim, "size": config.obs_size,
                "background": config.background, "timeout": config.timeout,
                "num_levels": config.num_levels, "start_level": config.start_level},
        "device": device.type,
    }

    def checkpoint(finished: bool, stats: dict) -> None:
        save_weights(model, agent_dir / "model.safetensors")
        if not finished:
            state = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "reward_rms": reward_rms.state(),
                "env": {k: getattr(env, k) for k in ("row", "agent", "mirrored", "steps", "counter")},
                "next_done": next_done, "disc_return": disc_return,
                "global_step": global_step, "iteration": iteration,
                "wall_time": wall_before + time.time() - t0, "rng_cpu": torch.get_rng_state(),
            }
            if device.type == "cuda":
                state["rng_cuda"] = torch.cuda.get_rng_state()
            tmp = resume_path.with_name("resume.pt.tmp")
            torch.save(state, tmp)
            tmp.replace(resume_path)
        write_meta(agent_dir, {**base_meta, "finished": finished, "steps": global_step,
                               "wall_time": round(wall_before + time.time() - t0, 2), "final_stats": stats})
        if finished and resume_path.exists():
            resume_path.unlink()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.num_iterations * config.batch_size, initial=global_step, unit="step",
                   desc=f"seed {config.seed}", dynamic_ncols=True, leave=False)
    t0 = time.time()
    stats: dict = {}
    iterations_this_call = 0
    while iteration < config.num_iterations:
        if max_iterations is not None and iterations_this_call >= max_iterations:
            checkpoint(False, stats)
            if bar:
                bar.close()
            return agent_dir
        iteration += 1
        iterations_this_call += 1
        t_iter = time.time()
        if config.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / config.num_iterations
            optimizer.param_groups[0]["lr"] = frac * config.learning_rate
        # episode statistics as on-device sums: no host sync inside the rollout
        ep = torch.zeros(5, dtype=torch.float64, device=device)  # count, length, return, shortest, success

        # ---- rollout
        model.eval()
        for step in range(t_len):
            global_step += n
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad(), autocast():
                action, logprob, _, value = _act(forward, next_obs)
            values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob
            next_obs, reward, terminated, truncated, info = env.step(action)
            done = terminated | truncated
            if config.scale_rewards:
                disc_return = disc_return * config.gamma + reward.double()
                reward_rms.update(disc_return)
                disc_return = torch.where(done, 0.0, disc_return)
                rewards[step] = (reward / torch.sqrt(reward_rms.var + 1e-8)).float()
            else:
                rewards[step] = reward
            next_done = done.float()
            ep += torch.stack([x.double().sum() for x in (
                done, info["length"] * done, reward * done, info["path_len"][:, 0] * done, (info["reached"] == 1) & done)])

        # ---- advantages (GAE)
        with torch.no_grad(), autocast():
            next_value = _value(forward, next_obs).float()
        advantages = torch.zeros_like(rewards)
        lastgaelam = torch.zeros(n, device=device)
        for t in reversed(range(t_len)):
            if t == t_len - 1:
                nextnonterminal, nextvalues = 1.0 - next_done, next_value
            else:
                nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
            delta = rewards[t] + config.gamma * nextvalues * nextnonterminal - values[t]
            lastgaelam = delta + config.gamma * config.gae_lambda * nextnonterminal * lastgaelam
            advantages[t] = lastgaelam
        returns = advantages + values

        # ---- flatten the batch
        b_obs = obs.reshape((-1,) + obs.shape[2:])
        b_logprobs, b_actions = logprobs.reshape(-1), actions.reshape(-1)
        b_advantages, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)

        # ---- optimise policy and value
        model.train()
        clipfracs, approx_kl = [], torch.zeros(())
        nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        for _ in range(config.update_epochs):
            # drawn from torch's CPU generator, whose state the resume checkpoint carries
            b_inds = torch.randperm(config.batch_size).to(device)
            for start in range(0, config.batch_size, config.minibatch_size):
                mb_inds = b_inds[start : start + config.minibatch_size]
                with autocast():
                    _, newlogprob, entropy, newvalue = _act(forward, b_obs[mb_inds], b_actions[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > config.clip_coef).float().mean())
                mb_advantages = b_advantages[mb_inds]
                if config.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
                pg_loss = torch.max(-mb_advantages * ratio,
                                    -mb_advantages * torch.clamp(ratio, 1 - config.clip_coef, 1 + config.clip_coef)).mean()
                newvalue = newvalue.view(-1)
                if config.clip_vloss:
                    v_clipped = b_values[mb_inds] + torch.clamp(newvalue - b_values[mb_inds], -config.clip_coef, config.clip_coef)
                    v_loss = 0.5 * torch.max((newvalue - b_returns[mb_inds]) ** 2, (v_clipped - b_returns[mb_inds]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - config.ent_coef * entropy_loss + v_loss * config.vf_coef
                nonfinite |= ~torch.isfinite(loss.detach())
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()

        # checked once per update (a check per minibatch would stall a GPU); a model hit by a
        # NaN is never saved, so the last good checkpoint on disk stays
        if nonfinite.item():
            raise TrainingError(
                f"seed {config.seed}: the loss became NaN or infinite at step {global_step}; "
                f"the last good checkpoint in {agent_dir} is kept (try a lower learning_rate)"
            )

        # ---- log
        y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
        var_y = np.var(y_true)
        n_ep, len_sum, ret_sum, path_sum, success_sum = ep.tolist()
        per_episode = (lambda total: total / n_ep) if n_ep else (lambda total: float("nan"))
        sps = config.batch_size / max(time.time() - t_iter, 1e-9)
        stats = {
            "iteration": iteration, "global_step": global_step,
            "wall_time": round(wall_before + time.time() - t0, 2), "sps": round(sps, 1),
            "episodes": int(n_ep),
            "episodic_return": per_episode(ret_sum), "episode_length": per_episode(len_sum),
            "shortest_path": per_episode(path_sum), "success": per_episode(success_sum),
            "learning_rate": optimizer.param_groups[0]["lr"], "policy_loss": pg_loss.item(),
            "value_loss": v_loss.item(), "entropy": entropy_loss.item(), "approx_kl": approx_kl.item(),
            "clipfrac": torch.stack(clipfracs).mean().item(),
            "explained_variance": float("nan") if var_y == 0 else float(1 - np.var(y_true - y_pred) / var_y),
        }
        with log_path.open("a", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writerow({k: _round(v) for k, v in stats.items()})
        if bar:
            bar.update(config.batch_size)
            bar.set_postfix_str(
                f"{sps:,.0f} steps/s  success {stats['success']:.2f}  "
                f"length {stats['episode_length']:.1f} / shortest {stats['shortest_path']:.1f}"
            )
        if iteration % config.checkpoint_every == 0 and iteration < config.num_iterations:
            checkpoint(False, stats)

    checkpoint(True, stats)
    if bar:
        bar.close()
    return agent_dir


def _act(model, obs, action=None):
    return model.get_action_and_value(obs, action) if isinstance(model, ImpalaAgent) else \
        model._orig_mod.get_action_and_value(obs, action)


def _value(model, obs):
    return (model if isinstance(model, ImpalaAgent) else model._orig_mod).get_value(obs)


def _round(v):
    return round(v, 6) if isinstance(v, float) and math.isfinite(v) else v


def parse_seeds(text: str | int | list[int]) -> list[int]:
    """``"0-31"``, ``"0,3,5-7"``, an int or a list of ints -> sorted unique seeds."""
    if isinstance(text, int):
        return [text]
    if isinstance(text, list):
        return sorted(set(int(s) for s in text))
    seeds: set[int] = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                seeds.update(range(lo, hi + 1))
            else:
                seeds.add(int(part))
    except ValueError:
        raise ConfigError(f"cannot read seeds {text!r}: write e.g. 0-31 or 0,4,7-9") from None
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"seeds must be non-negative integers, got {text!r}")
    return sorted(seeds)


def train(config: TrainConfig, run_dir: str | Path, seeds: list[int], device: str | torch.device = "auto",
          progress: bool = True, workers: int = 1, run_seeds=None) -> Path:
    """Train a population into ``run_dir/agents``; finished seeds are skipped, others resumed.

    ``workers > 1`` trains that many seeds at once, one process each, sharing the device
    (on a GPU this fills the card; each agent is exactly the one trained alone). On a CPU
    the cores are divided between the workers unless ``config.threads`` is set.
    ``run_seeds(config, run_dir, seeds, device, workers, bar)``, if given, trains the
    unfinished seeds instead (``experiments.cluster`` passes one that uses Ray).
    """
    import dataclasses

    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    run_dir = Path(run_dir)
    (run_dir / "agents").mkdir(parents=True, exist_ok=True)
    (run_dir / "population.json").write_text(json.dumps(
        {"code_version": CODE_VERSION, "preset": config.preset, "seeds": seeds, "train": config.to_dict()},
        indent=2))
    todo = [s for s in seeds if not is_finished(run_dir / "agents" / agent_dir_name(s))]
    outer = None
    if progress:
        from tqdm import tqdm

        outer = tqdm(total=len(seeds), initial=len(seeds) - len(todo), unit="agent", desc="population",
                     dynamic_ncols=True)
    if run_seeds is not None:
        if todo:
            run_seeds(config, run_dir, todo, device, workers, outer)
    elif workers > 1 and len(todo) > 1:
        _train_in_workers(config, run_dir, todo, resolve_device(device), min(workers, len(todo)), outer)
    else:
        for seed in todo:
            cfg = dataclasses.replace(config, seed=seed)
            train_agent(cfg, run_dir / "agents" / agent_dir_name(seed), device=device, progress=progress)
            if outer:
                outer.update(1)
    if outer:
        outer.close()
    return run_dir


def _train_one(config: TrainConfig, agent_dir: Path, device: str) -> int:
    train_agent(config, agent_dir, device=device, progress=False)
    return config.seed


def _train_in_workers(config: TrainConfig, run_dir: Path, seeds: list[int], device: torch.device,
                      workers: int, bar) -> None:
    """One process per concurrently trained seed; a failed seed is reported, the others go on."""
    import dataclasses
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = config.threads or (max(1, (os.cpu_count() or 1) // workers) if device.type == "cpu" else 1)
    failed = []
    # spawn, not fork: CUDA cannot be used in a forked child
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            pool.submit(_train_one, dataclasses.replace(config, seed=s, threads=threads),
                        run_dir / "agents" / agent_dir_name(s), str(device)): s
            for s in seeds
        }
        for fut in as_completed(futures):
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - reported per seed below
                failed.append(f"seed {futures[fut]}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            if bar:
                bar.update(1)
    if failed:
        raise TrainingError(failed_seeds_message(failed, len(seeds)))


def failed_seeds_message(failed: list[str], total: int, where: str = "") -> str:
    """One line for seeds that failed in workers (``failed``: "seed N: reason" each)."""
    return f"{len(failed)} of {total} seeds failed{where} ({'; '.join(failed[:3])}); rerun the same command to retry them"
