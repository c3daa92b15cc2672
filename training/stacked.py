"""Several seeds trained together in one process: one network call for all of them.

The seeds' parameters are stacked (``torch.func.stack_module_state``) and the network runs
under ``torch.func.vmap``, so each layer is one batched kernel for every seed (on a GPU, one
launch instead of one per seed). Everything a seed's run depends on stays its own: its
initial weights and level order, an RNG (a copy of the state the lone run's global RNG
would have), its gradient-norm clip, advantage normalisation and reward scale. Each agent
is therefore the agent ``train_agent`` makes with that seed, up to float rounding (the
batched convolutions add in another order), and checkpoints are written per seed in
``train_agent``'s format, so either path resumes the other's runs.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from pathlib import Path

import torch
from torch import optim

from gmg.training.checkpoint import agent_dir_name, agent_meta, append_log, is_finished, load_resume, save_checkpoint
from gmg.training.config import TrainConfig
from gmg.training.env import StackedMazeEnv
from gmg.training.errors import TrainingError
from gmg.training.model import ImpalaAgent
from gmg.training.ppo import (
    RunningMeanStd,
    anneal_learning_rate,
    episode_sums,
    gae,
    initial_model,
    iteration_stats,
    ppo_loss,
    progress_bar,
    progress_text,
    sample_from_uniform,
    samples_from_uniforms,
    scaled_reward,
)
from gmg.training.runtime import apply_run_settings, resolve_device
from gmg.training.seeds import format_seeds


class StackedAgents:
    """K networks of one architecture as stacked parameters; ``(obs (K, B, ...))`` ->
    logits (K, B, A) and values (K, B)."""

    def __init__(self, models: list[ImpalaAgent], device: torch.device):
        params, buffers = torch.func.stack_module_state([m.to(device) for m in models])
        self.names = list(params)
        self.params = params
        self.buffers = buffers
        base = copy.deepcopy(models[0]).to("meta")

        def one(p, b, x):
            return torch.func.functional_call(base, (p, b), (x,))

        self._forward = torch.func.vmap(one)

    def __call__(self, obs: torch.Tensor):
        return self._forward(self.params, self.buffers, obs)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def state_dict(self, k: int) -> dict:
        """Seed ``k``'s weights under ``ImpalaAgent``'s names."""
        return {name: t[k].detach().clone() for name, t in {**self.params, **self.buffers}.items()}

    def load_state_dict(self, k: int, state: dict) -> None:
        with torch.no_grad():
            for name, t in {**self.params, **self.buffers}.items():
                t[k].copy_(state[name])


def clip_grad_norm_per_seed(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` applied to each seed's slice of the stacked gradients."""
    norms = torch.stack([p.grad.flatten(1).norm(dim=1) for p in params], 1).norm(dim=1)  # (K,)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(coef.view((-1,) + (1,) * (p.dim() - 1)))
    return norms


def _adam_state_of_seed(optimizer: optim.Adam, k: int) -> dict:
    """The state dict a lone Adam over seed ``k``'s parameters would have."""
    full = optimizer.state_dict()
    state = {i: {"step": s["step"].clone(), "exp_avg": s["exp_avg"][k].clone(), "exp_avg_sq": s["exp_avg_sq"][k].clone()}
             for i, s in full["state"].items()}
    return {"state": state, "param_groups": full["param_groups"]}


def _load_adam_state_of_seed(optimizer: optim.Adam, params: list[torch.Tensor], k: int, solo: dict) -> None:
    for i, p in enumerate(params):
        s = solo["state"].get(i)
        if s is None:
            continue
        st = optimizer.state[p]
        # Adam keeps the step count on the CPU (neither fused nor capturable here)
        st["step"] = s["step"].detach().to("cpu", torch.float32).clone()
        for key in ("exp_avg", "exp_avg_sq"):
            st.setdefault(key, torch.zeros_like(p))[k].copy_(s[key])


def train_stacked(config: TrainConfig, run_dir: str | Path, seeds: list[int], device: str | torch.device = "auto",
                  progress: bool = True, max_iterations: int | None = None, on_update=None) -> list[Path]:
    """Train ``seeds`` together into ``run_dir/agents/agent-NNNN`` (resuming where they are).

    Finished seeds are skipped; the others must stand at the same update (true of seeds
    started together: ``gmg.training.population.train`` groups them so). ``on_update(stats)`` is called
    with each seed's log row of each update.
    """
    config.validate()
    device = resolve_device(device)
    if config.run.compile:
        raise TrainingError("compile is not supported when seeds are stacked; drop compile=true or use --stack 1")
    apply_run_settings(config.run, device)
    run_dir = Path(run_dir)
    dirs = {s: run_dir / "agents" / agent_dir_name(s) for s in seeds}
    seeds = [s for s in seeds if not is_finished(dirs[s])]
    if not seeds:
        return list(dirs.values())
    for s in seeds:
        dirs[s].mkdir(parents=True, exist_ok=True)
    configs = [dataclasses.replace(config, seed=s) for s in seeds]
    k_n, n, t_len = len(seeds), config.num_envs, config.num_steps
    uniform = samples_from_uniforms(config, device)

    # ---- setup: each seed's weights and RNG exactly as its lone run would have them
    models, gens, dev_gens = [], [], []
    for s in seeds:
        models.append(initial_model(dataclasses.replace(config, seed=s)))
        g = torch.Generator()
        g.set_state(torch.get_rng_state())
        gens.append(g)
        # a lone CUDA run samples actions from the CUDA generator, seeded by seed_everything
        dev_gens.append(torch.Generator(device=device).manual_seed(s) if device.type == "cuda" else g)
    agents = StackedAgents(models, device)
    params = agents.parameters()
    optimizer = optim.Adam(params, lr=config.learning_rate, eps=1e-5)
    env = StackedMazeEnv(n, config.env_config(), config.num_levels, seeds, config.start_level, device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if config.run.bf16 else contextlib.nullcontext
    reward_rms = RunningMeanStd(device, (k_n,))
    seed_ids = torch.arange(k_n, device=device)[:, None]

    obs = torch.zeros((t_len, k_n, n, config.obs_size, config.obs_size, 3), dtype=torch.uint8, device=device)
    actions = torch.zeros((t_len, k_n, n), dtype=torch.int64, device=device)
    logprobs = torch.zeros((t_len, k_n, n), device=device)
    rewards = torch.zeros((t_len, k_n, n), device=device)
    dones = torch.zeros((t_len, k_n, n), device=device)
    values = torch.zeros((t_len, k_n, n), device=device)

    global_step, iteration, wall_before = 0, 0, 0.0
    next_done = torch.zeros((k_n, n), device=device)
    disc_return = torch.zeros((k_n, n), dtype=torch.float64, device=device)
    states = [load_resume(c, dirs[s], device) for c, s in zip(configs, seeds)]
    resumed = {st["iteration"] if st else 0 for st in states}
    if len(resumed) > 1:
        at = ", ".join(f"seed {s}: {st['iteration'] if st else 0}" for s, st in zip(seeds, states))
        raise TrainingError(f"stacked seeds must resume from the same update ({at}); train them in separate groups")
    for k, st in enumerate(states):
        if st is None:
            continue
        agents.load_state_dict(k, st["model"])
        _load_adam_state_of_seed(optimizer, params, k, st["optimizer"])
        for key in ("mean", "var", "count"):
            getattr(reward_rms, key)[k] = st["reward_rms"][key]
        env.load_seed_state(k, st["env"])
        next_done[k], disc_return[k] = st["next_done"], st["disc_return"]
        gens[k].set_state(st["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in st:
            dev_gens[k].set_state(st["rng_cuda"])
        global_step, iteration, wall_before = st["global_step"], st["iteration"], st["wall_time"]
    next_obs = env.observe().view(k_n, n, *obs.shape[3:])
    metas = [agent_meta(c, device) for c in configs]

    def checkpoint(finished: bool, stats: list[dict]) -> None:
        wall_time = wall_before + time.time() - t0
        for k, s in enumerate(seeds):
            resume = None
            if not finished:
                resume = {
                    "model": agents.state_dict(k), "optimizer": _adam_state_of_seed(optimizer, k),
                    "reward_rms": {key: v[k].clone() for key, v in reward_rms.state().items()},
                    "env": env.seed_state(k), "next_done": next_done[k].clone(),
                    "disc_return": disc_return[k].clone(), "global_step": global_step, "iteration": iteration,
                    "wall_time": wall_time, "rng_cpu": gens[k].get_state(), "train": configs[k].to_dict(),
                }
                if device.type == "cuda":
                    resume["rng_cuda"] = dev_gens[k].get_state()
            save_checkpoint(dirs[s], metas[k], agents.state_dict(k), resume, stats[k] if stats else {},
                            global_step, wall_time)

    bar = progress_bar(progress, config.num_iterations * config.batch_size * k_n, global_step * k_n,
                       f"seeds {format_seeds(seeds)} stacked")
    t0 = time.time()
    stats: list[dict] = []
    iterations_this_call = 0
    while iteration < config.num_iterations:
        if max_iterations is not None and iterations_this_call >= max_iterations:
            checkpoint(False, stats)
            if bar:
                bar.close()
            return list(dirs.values())
        iteration += 1
        iterations_this_call += 1
        t_iter = time.time()
        anneal_learning_rate(config, optimizer, iteration)
        ep = torch.zeros((5, k_n), dtype=torch.float64, device=device)

        # ---- rollout: one network call for all seeds, each seed's actions from its own RNG
        if uniform:  # as a lone run does: the rollout's uniforms first, from the seed's generator
            noise = torch.stack([torch.rand((t_len, n), generator=g, device=device) for g in dev_gens], 1)
        for step in range(t_len):
            global_step += n
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad(), autocast():
                logits, value = agents(next_obs)
            dist = torch.distributions.Categorical(logits=logits.float(), validate_args=False)
            if uniform:
                action = sample_from_uniform(logits, noise[step])
            else:
                action = torch.stack([torch.multinomial(dist.probs[k], 1, True, generator=dev_gens[k]).T.reshape(-1)
                                      for k in range(k_n)])
            values[step] = value.float()
            actions[step] = action
            logprobs[step] = dist.log_prob(action)
            flat_obs, reward, terminated, truncated, info = env.step(action.reshape(-1))
            next_obs = flat_obs.view(next_obs.shape)
            done = (terminated | truncated).view(k_n, n)
            reward = reward.view(k_n, n)
            info = {key: info[key].view(k_n, n, *info[key].shape[1:]) for key in ("length", "path_len", "reached")}
            rewards[step], disc_return = scaled_reward(config, reward, done, disc_return, reward_rms)
            next_done = done.float()
            ep += episode_sums(done, reward, info)

        # ---- advantages (GAE), then the batch of each seed in its lone run's order
        with torch.no_grad(), autocast():
            next_value = agents(next_obs)[1].float()
        advantages = gae(config, rewards, values, dones, next_value, next_done)
        returns = advantages + values

        def per_seed(x):
            return x.transpose(0, 1).reshape((k_n, -1) + x.shape[3:])

        b_obs, b_logprobs, b_actions = per_seed(obs), per_seed(logprobs), per_seed(actions)
        b_advantages, b_returns, b_values = per_seed(advantages), per_seed(returns), per_seed(values)

        # ---- optimise policy and value
        clipfracs = []
        nonfinite = torch.zeros(k_n, dtype=torch.bool, device=device)
        for _ in range(config.update_epochs):
            b_inds = torch.stack([torch.randperm(config.batch_size, generator=g) for g in gens]).to(device)
            for start in range(0, config.batch_size, config.minibatch_size):
                mb = b_inds[:, start : start + config.minibatch_size]
                with autocast():
                    logits, newvalue = agents(b_obs[seed_ids, mb])
                dist = torch.distributions.Categorical(logits=logits.float(), validate_args=False)
                mb_actions = b_actions.gather(1, mb)
                out = ppo_loss(config, dist.log_prob(mb_actions), dist.entropy(), newvalue.float(),
                               b_logprobs.gather(1, mb), b_advantages.gather(1, mb), b_values.gather(1, mb),
                               b_returns.gather(1, mb))
                clipfracs.append(out["clipfrac"])
                nonfinite |= ~torch.isfinite(out["loss"].detach())
                optimizer.zero_grad()
                # the seeds share no parameter, so each gets exactly the gradient of its own loss
                out["loss"].sum().backward()
                norms = clip_grad_norm_per_seed(params, config.max_grad_norm)
                nonfinite |= ~torch.isfinite(norms)  # a finite loss can still overflow backward
                optimizer.step()

        if nonfinite.any().item():
            bad = [s for s, f in zip(seeds, nonfinite.tolist()) if f]
            raise TrainingError(
                f"seed {', '.join(map(str, bad))}: the loss or its gradient became NaN or infinite at step {global_step}; the last good "
                f"checkpoints in {run_dir / 'agents'} are kept (try a lower learning_rate, or train that seed alone)"
            )

        # ---- log, one row per seed
        sps = config.batch_size * k_n / max(time.time() - t_iter, 1e-9)
        ep_rows = ep.T.tolist()
        last = {key: v.tolist() for key, v in out.items() if key != "loss"}
        clipfrac = torch.stack(clipfracs).mean(0).tolist()
        stats = []
        for k, s in enumerate(seeds):
            row = iteration_stats(
                iteration=iteration, global_step=global_step, wall_time=wall_before + time.time() - t0,
                sps=sps / k_n, ep=ep_rows[k], lr=optimizer.param_groups[0]["lr"],
                last={key: v[k] for key, v in last.items()}, clipfrac=clipfrac[k],
                values=b_values[k], returns=b_returns[k])
            append_log(dirs[s], row)
            stats.append(row)
            if on_update is not None:
                on_update(row)
        if bar:
            bar.update(config.batch_size * k_n)
            bar.set_postfix_str(progress_text(sps, stats[0]) + " (first seed)")
        if iteration % config.run.checkpoint_every == 0 and iteration < config.num_iterations:
            checkpoint(False, stats)

    checkpoint(True, stats)
    if bar:
        bar.close()
    return list(dirs.values())
