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

from gmg.training.checkpoint import agent_dir_name, agent_meta, is_finished, load_resume, resume_state, save_checkpoint
from gmg.training.config import TrainConfig
from gmg.training.env import StackedMazeEnv
from gmg.training.errors import TrainingError
from gmg.training.model import ImpalaAgent
from gmg.training.ppo import (
    RunningMeanStd,
    anneal_learning_rate,
    check_finite,
    episode_sums,
    gae,
    initial_model,
    ppo_update,
    rollout_buffers,
    sample_from_uniform,
    samples_from_uniforms,
    scaled_reward,
    seed_batches,
    updates_to_run,
)
from gmg.training.runtime import apply_run_settings, resolve_device
from gmg.training.seeds import format_seeds
from gmg.training.train_log import log_update, progress_bar, progress_text


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
    buf = rollout_buffers(config, k_n, device)

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
        reward_rms.load(st["reward_rms"], k)
        env.load_seed_state(k, st["env"])
        next_done[k], disc_return[k] = st["next_done"], st["disc_return"]
        gens[k].set_state(st["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in st:
            dev_gens[k].set_state(st["rng_cuda"])
        global_step, iteration, wall_before = st["global_step"], st["iteration"], st["wall_time"]
    next_obs = env.observe().view(k_n, n, *buf.obs.shape[3:])
    metas = [agent_meta(c, device) for c in configs]

    def evaluate(obs, actions):  # the update's forward pass of every seed's minibatch (K, M, ...)
        with autocast():
            logits, newvalue = agents(obs)
        dist = torch.distributions.Categorical(logits=logits.float(), validate_args=False)
        return dist.log_prob(actions), dist.entropy(), newvalue.float()

    def checkpoint(finished: bool, stats: list[dict]) -> None:
        wall_time = wall_before + time.time() - t0
        for k, s in enumerate(seeds):
            resume = None
            if not finished:
                resume = resume_state(
                    configs[k], model=agents.state_dict(k), optimizer=_adam_state_of_seed(optimizer, k),
                    reward_rms=reward_rms.state(k), env=env.seed_state(k), next_done=next_done[k].clone(),
                    disc_return=disc_return[k].clone(), global_step=global_step, iteration=iteration,
                    wall_time=wall_time, rng_cpu=gens[k].get_state(),
                    rng_cuda=dev_gens[k].get_state() if device.type == "cuda" else None)
            save_checkpoint(dirs[s], metas[k], agents.state_dict(k), resume, stats[k] if stats else {},
                            global_step, wall_time)

    bar = progress_bar(progress, config.num_iterations * config.batch_size * k_n, global_step * k_n,
                       f"seeds {format_seeds(seeds)} stacked")
    t0 = time.time()
    stats: list[dict] = []
    for iteration in updates_to_run(config, iteration, max_iterations):
        t_iter = time.time()
        anneal_learning_rate(config, optimizer, iteration)
        ep = torch.zeros((5, k_n), dtype=torch.float64, device=device)

        # ---- rollout: one network call for all seeds, each seed's actions from its own RNG
        if uniform:  # as a lone run does: the rollout's uniforms first, from the seed's generator
            noise = torch.stack([torch.rand((t_len, n), generator=g, device=device) for g in dev_gens], 1)
        for step in range(t_len):
            global_step += n
            buf.obs[step] = next_obs
            buf.dones[step] = next_done
            with torch.no_grad(), autocast():
                logits, value = agents(next_obs)
            dist = torch.distributions.Categorical(logits=logits.float(), validate_args=False)
            if uniform:
                action = sample_from_uniform(logits, noise[step])
            else:
                action = torch.stack([torch.multinomial(dist.probs[k], 1, True, generator=dev_gens[k]).T.reshape(-1)
                                      for k in range(k_n)])
            buf.values[step] = value.float()
            buf.actions[step] = action
            buf.logprobs[step] = dist.log_prob(action)
            flat_obs, reward, terminated, truncated, info = env.step(action.reshape(-1))
            next_obs = flat_obs.view(next_obs.shape)
            done = (terminated | truncated).view(k_n, n)
            reward = reward.view(k_n, n)
            info = {key: info[key].view(k_n, n, *info[key].shape[1:]) for key in ("length", "path_len", "reached")}
            buf.rewards[step], disc_return = scaled_reward(config, reward, done, disc_return, reward_rms)
            next_done = done.float()
            ep += episode_sums(done, reward, info)

        # ---- advantages (GAE), then the optimisation of policy and value, as a lone run's
        with torch.no_grad(), autocast():
            next_value = agents(next_obs)[1].float()
        advantages = gae(config, buf.rewards, buf.values, buf.dones, next_value, next_done)
        batch = seed_batches(buf, advantages, advantages + buf.values)
        out, clipfrac, nonfinite = ppo_update(
            config, batch, evaluate, lambda: clip_grad_norm_per_seed(params, config.max_grad_norm), optimizer, gens)
        check_finite(nonfinite, seeds, global_step, f"the last good checkpoints in {run_dir / 'agents'} are kept "
                     "(try a lower learning_rate, or train that seed alone)")

        # ---- log, one row per seed
        sps = config.batch_size * k_n / max(time.time() - t_iter, 1e-9)
        stats = log_update(config, [dirs[s] for s in seeds], on_update, iteration=iteration, global_step=global_step,
                           wall_time=wall_before + time.time() - t0, sps=sps / k_n, ep=ep,
                           lr=optimizer.param_groups[0]["lr"], out=out, clipfrac=clipfrac, batch=batch)
        if bar:
            bar.update(config.batch_size * k_n)
            bar.set_postfix_str(progress_text(sps, stats[0]) + " (first seed)")
        if iteration % config.run.checkpoint_every == 0 and iteration < config.num_iterations:
            checkpoint(False, stats)

    checkpoint(iteration == config.num_iterations, stats)
    if bar:
        bar.close()
    return list(dirs.values())
