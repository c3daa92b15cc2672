"""PPO on the batched maze, CleanRL's procgen loop written out top to bottom.

``train_agent(config, agent_dir)`` trains (or resumes) one seed: set-up, then per update a
rollout, GAE, the clipped PPO loss over minibatches and a log row. Environment, rollout
buffers and network live on one device. The update (buffers, GAE, ``ppo_update``, the log
rows) is written once for K seeds and serves both this lone run (K = 1) and seeds stacked in
one process (``gmg.training.stacked``); only the rollout and the network call differ. A
population of seeds is ``gmg.training.seed_groups``; checkpoints and resume are
``gmg.training.checkpoint``.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn, optim
from torch.distributions import Categorical

from gmg.training.checkpoint import (
    agent_meta,
    is_finished,
    load_resume,
    resume_state,
    save_checkpoint,
    save_snapshot,
)
from gmg.training.config import TrainConfig
from gmg.training.cuda_graph import GraphedStep
from gmg.training.env import MazeEnv, TrainingLevels
from gmg.training.errors import TrainingError
from gmg.training.fast_pool import scatter_max_pool_backward
from gmg.training.model import ImpalaAgent, unwrap
from gmg.training.runtime import apply_run_settings, resolve_device, seed_everything
from gmg.training.train_log import log_update, progress_bar, progress_text


class RunningMeanStd:
    """Running variance of a stream of batches (for reward scaling), one per leading index:
    ``shape`` () for one agent, (K,) for K stacked agents; batches reduce over the last dim."""

    def __init__(self, device: torch.device, shape: tuple[int, ...] = ()):
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = torch.full(shape, 1e-4, dtype=torch.float64, device=device)

    def update(self, x: torch.Tensor) -> None:
        x = x.double()
        b_mean, b_var, b_count = x.mean(-1), x.var(-1, unbiased=False), x.shape[-1]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def state(self, k: int | None = None) -> dict:
        """The statistics (a copy of stacked agent ``k``'s, if given)."""
        s = {"mean": self.mean, "var": self.var, "count": self.count}
        return s if k is None else {key: v[k].clone() for key, v in s.items()}

    def load(self, s: dict, k: int | None = None) -> None:
        if k is None:
            self.mean, self.var, self.count = s["mean"], s["var"], s["count"]
        else:
            for key in ("mean", "var", "count"):
                getattr(self, key)[k] = s[key]


# ---------------------------------------------------------------- the PPO arithmetic
# Shared by one agent (K = 1) and stacked agents (tensors (K, n)): every reduction is over the
# last dim, so each stacked agent computes exactly what it would alone.

def scaled_reward(config: TrainConfig, reward, done, disc_return, reward_rms: RunningMeanStd):
    """(reward for the update, next discounted return): rewards divided by a running std of
    the discounted return, as procgen's PPO baselines do."""
    if not config.scale_rewards:
        return reward, disc_return
    disc_return = disc_return * config.normaliser_gamma + reward.double()
    reward_rms.update(disc_return)
    disc_return = torch.where(done, 0.0, disc_return)
    scaled = reward / torch.sqrt(reward_rms.var[..., None] + 1e-8)
    if config.reward_clip:
        scaled = scaled.clamp(-config.reward_clip, config.reward_clip)
    return scaled.float(), disc_return


def episode_sums(done, reward, info) -> torch.Tensor:
    """float64 (5, ...): count, length, return, shortest path and success of finished episodes."""
    return torch.stack([x.double().sum(-1) for x in (
        done, info["length"] * done, reward * done, info["path_len"][..., 0] * done, (info["reached"] == 1) & done)])


def gae(config: TrainConfig, rewards, values, dones, next_value, next_done) -> torch.Tensor:
    """Generalised advantage estimates; time is the first dim of every buffer."""
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(next_value)
    t_len = rewards.shape[0]
    for t in reversed(range(t_len)):
        if t == t_len - 1:
            nextnonterminal, nextvalues = 1.0 - next_done, next_value
        else:
            nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
        delta = rewards[t] + config.gamma * nextvalues * nextnonterminal - values[t]
        lastgaelam = delta + config.gamma * config.gae_lambda * nextnonterminal * lastgaelam
        advantages[t] = lastgaelam
    return advantages


def rollout_buffers(config: TrainConfig, k_n: int, device: torch.device) -> SimpleNamespace:
    """A rollout's obs, actions, logprobs, rewards, dones and values: (steps, seeds, envs, ...),
    one seed for a lone run."""
    shape = (config.num_steps, k_n, config.num_envs)
    return SimpleNamespace(
        obs=torch.zeros(shape + (config.obs_size, config.obs_size, 3), dtype=torch.uint8, device=device),
        actions=torch.zeros(shape, dtype=torch.int64, device=device),
        **{name: torch.zeros(shape, device=device) for name in ("logprobs", "rewards", "dones", "values")})


def seed_batches(buf: SimpleNamespace, advantages: torch.Tensor, returns: torch.Tensor) -> dict:
    """Each seed's batch (seeds, steps * envs, ...) from a rollout's buffers, in a lone run's order."""
    parts = {"obs": buf.obs, "actions": buf.actions, "logprobs": buf.logprobs, "values": buf.values,
             "advantages": advantages, "returns": returns}
    return {name: x.transpose(0, 1).reshape((x.shape[1], -1) + x.shape[3:]) for name, x in parts.items()}


def ppo_update(config: TrainConfig, batch: dict, evaluate, clip_grad, optimizer: optim.Optimizer,
               generators: list) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """PPO's optimisation of K seeds' ``batch`` (``seed_batches``): ``update_epochs`` passes over
    minibatches, each seed's order drawn from its CPU generator (None: torch's global one),
    whose state the resume checkpoint carries.

    ``evaluate(obs (K, M, ...), actions (K, M))`` -> (logprob, entropy, value), each (K, M);
    ``clip_grad()`` clips each seed's gradient and returns its norm. Returns the last
    minibatch's ``ppo_loss``, the mean clip fraction and whether a loss or gradient norm was
    not finite, each (K,): checked once per update by the caller (a check per minibatch
    would stall a GPU).
    """
    k_n, device = len(generators), batch["actions"].device
    seed_ids = torch.arange(k_n, device=device)[:, None]
    clipfracs = []
    nonfinite = torch.zeros(k_n, dtype=torch.bool, device=device)
    for _ in range(config.update_epochs):
        b_inds = torch.stack([torch.randperm(config.batch_size, generator=g) for g in generators]).to(device)
        for start in range(0, config.batch_size, config.minibatch_size):
            mb = b_inds[:, start : start + config.minibatch_size]
            newlogprob, entropy, newvalue = evaluate(batch["obs"][seed_ids, mb], batch["actions"].gather(1, mb))
            out = ppo_loss(config, newlogprob, entropy, newvalue,
                           *(batch[key].gather(1, mb) for key in ("logprobs", "advantages", "values", "returns")))
            clipfracs.append(out["clipfrac"])
            nonfinite |= ~torch.isfinite(out["loss"].detach())
            optimizer.zero_grad()
            # the seeds share no parameter, so each gets exactly the gradient of its own loss
            out["loss"].sum().backward()
            nonfinite |= ~torch.isfinite(clip_grad())  # a finite loss can still overflow backward
            optimizer.step()
    return out, torch.stack(clipfracs).mean(0), nonfinite


def check_finite(nonfinite: torch.Tensor, seeds: list[int], global_step: int, kept: str) -> None:
    """One line naming the seeds whose update was not finite; a model hit by a NaN is never
    saved, so ``kept`` says which last good checkpoints stay."""
    if nonfinite.any().item():
        bad = ", ".join(str(s) for s, f in zip(seeds, nonfinite.tolist()) if f)
        raise TrainingError(f"seed {bad}: the loss or its gradient became NaN or infinite at step {global_step}; {kept}")


def ppo_loss(config: TrainConfig, newlogprob, entropy, newvalue, logprobs, advantages, values, returns) -> dict:
    """Clipped PPO loss of one minibatch and its diagnostics, each reduced over the last dim."""
    logratio = newlogprob - logprobs
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean(-1)
        clipfrac = ((ratio - 1.0).abs() > config.clip_coef).float().mean(-1)
    if config.norm_adv:
        advantages = (advantages - advantages.mean(-1, keepdim=True)) / (advantages.std(-1, keepdim=True) + 1e-8)
    pg_loss = torch.max(-advantages * ratio,
                        -advantages * torch.clamp(ratio, 1 - config.clip_coef, 1 + config.clip_coef)).mean(-1)
    if config.clip_vloss:
        v_clipped = values + torch.clamp(newvalue - values, -config.clip_coef, config.clip_coef)
        v_loss = 0.5 * torch.max((newvalue - returns) ** 2, (v_clipped - returns) ** 2).mean(-1)
    else:
        v_loss = 0.5 * ((newvalue - returns) ** 2).mean(-1)
    entropy_loss = entropy.mean(-1)
    loss = pg_loss - config.ent_coef * entropy_loss + v_loss * config.vf_coef
    return {"loss": loss, "policy_loss": pg_loss, "value_loss": v_loss, "entropy": entropy_loss,
            "approx_kl": approx_kl, "clipfrac": clipfrac}


def updates_to_run(config: TrainConfig, done: int, max_iterations: int | None) -> range:
    """The updates a call runs after the ``done`` ones: to the run's end, or ``max_iterations``
    of them (it then stops with a resumable checkpoint)."""
    end = config.num_iterations if max_iterations is None else min(config.num_iterations, done + max_iterations)
    return range(done + 1, end + 1)


def anneal_learning_rate(config: TrainConfig, optimizer: optim.Optimizer, iteration: int) -> None:
    if config.anneal_lr:
        frac = 1.0 - (iteration - 1.0) / config.num_iterations
        optimizer.param_groups[0]["lr"] = frac * config.learning_rate


# ---------------------------------------------------------------- checkpoints


def initial_model(config: TrainConfig) -> ImpalaAgent:
    """The untrained network of ``config.seed``, on the CPU: every RNG is seeded first, so this
    is exactly what ``train_agent`` (and a stacked run) starts from; the same seed then sets
    the order of training levels."""
    seed_everything(config.seed)
    model = ImpalaAgent(config.model_config())
    if config.init == "xavier":  # the original's: Xavier-uniform body, the heads orthogonal as before
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m not in (model.policy, model.value):
                    nn.init.xavier_uniform_(m.weight, 1.0)
                    nn.init.zeros_(m.bias)
    return model


def train_agent(config: TrainConfig, agent_dir: str | Path, device: str | torch.device = "auto",
                progress: bool = True, max_iterations: int | None = None, on_update=None) -> Path:
    """Train one agent with ``config.seed`` into ``agent_dir`` (resuming if it holds a run).

    ``max_iterations`` stops early after that many updates in this call (used to test
    resume); the run stays resumable. ``on_update(stats)``, if given, is called with each
    update's log row once it is written (``gmg bench train`` times updates with it).
    """
    config.validate()
    device = resolve_device(device)
    agent_dir = Path(agent_dir)
    agent_dir.mkdir(parents=True, exist_ok=True)
    apply_run_settings(config.run, device)
    if is_finished(agent_dir):
        return agent_dir

    # ---- setup: the seed fixes the initial weights; the data seed (the seed itself unless
    # given apart) the order of training levels, action sampling and minibatch order
    model = initial_model(config).to(device)
    if config.data_seed is not None:
        seed_everything(config.data_seed)  # from here on the stream depends on the data seed alone
    if config.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
    env = MazeEnv(config.num_envs, config.env_config(), TrainingLevels(config.num_levels, config.level_seed, config.start_level), device)
    forward = torch.compile(model) if config.run.compile else model
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if config.run.bf16 else contextlib.nullcontext
    reward_rms = RunningMeanStd(device)
    n, t_len = config.num_envs, config.num_steps
    buf = rollout_buffers(config, 1, device)

    global_step, iteration, wall_before = 0, 0, 0.0
    next_obs = env.reset()
    next_done = torch.zeros(n, device=device)
    disc_return = torch.zeros(n, dtype=torch.float64, device=device)
    state = load_resume(config, agent_dir, device)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        reward_rms.load(state["reward_rms"])
        env.load_state(state["env"])
        next_obs = env.observe()
        next_done, disc_return = state["next_done"], state["disc_return"]
        global_step, iteration, wall_before = state["global_step"], state["iteration"], state["wall_time"]
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
    meta = agent_meta(config, device)

    # ---- one rollout step; on a GPU captured once as a CUDA graph (gmg.training.cuda_graph)
    uniform = samples_from_uniforms(config, device)
    graphed = uniform and device.type == "cuda"
    cur = SimpleNamespace(obs=next_obs, disc_return=disc_return, noise=torch.zeros(n, device=device))
    stepper = rollout_step_fn(config, forward, env, reward_rms, cur, uniform=uniform)
    if graphed:
        stepper = GraphedStep(stepper, rollout_state(cur, env, reward_rms), capture=True)
        if not stepper.captured:
            warnings.warn(f"the rollout step could not be captured as a CUDA graph, running it eagerly ({stepper.error})")

    def evaluate(obs, actions):  # the update's forward pass of the one seed's minibatch (1, M, ...)
        with autocast():
            _, newlogprob, entropy, newvalue = _act(forward, obs[0], actions[0])
        return newlogprob[None], entropy[None], newvalue.view(1, -1)

    def checkpoint(finished: bool, stats: dict) -> None:
        resume, wall_time = None, wall_before + time.time() - t0
        if not finished:
            resume = resume_state(
                config, model=model.state_dict(), optimizer=optimizer.state_dict(), reward_rms=reward_rms.state(),
                env=env.state(), next_done=next_done, disc_return=cur.disc_return, global_step=global_step,
                iteration=iteration, wall_time=wall_time, rng_cpu=torch.get_rng_state(),
                rng_cuda=torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
        save_checkpoint(agent_dir, meta, model.state_dict(), resume, stats, global_step, wall_time)

    bar = progress_bar(progress, config.num_iterations * config.batch_size, global_step, f"seed {config.seed}")
    t0 = time.time()
    stats: dict = {}
    for iteration in updates_to_run(config, iteration, max_iterations):
        t_iter = time.time()
        anneal_learning_rate(config, optimizer, iteration)
        # episode statistics as on-device sums: no host sync inside the rollout
        ep = torch.zeros((5, 1), dtype=torch.float64, device=device)

        # ---- rollout
        model.eval()
        if uniform:
            noise = torch.rand((t_len, n), device=device)
        for step in range(t_len):
            global_step += n
            buf.obs[step] = cur.obs
            buf.dones[step] = next_done
            if uniform:
                cur.noise.copy_(noise[step])
            action, logprob, value, reward, buf.rewards[step], done, info = stepper()
            buf.values[step] = value.flatten()
            buf.actions[step] = action
            buf.logprobs[step] = logprob
            next_done = done.float()
            ep += episode_sums(done, reward, info)[:, None]

        # ---- advantages (GAE), then the optimisation of policy and value
        with torch.no_grad(), autocast():
            next_value = unwrap(forward).get_value(cur.obs).float()
        advantages = gae(config, buf.rewards, buf.values, buf.dones, next_value, next_done)
        batch = seed_batches(buf, advantages, advantages + buf.values)
        model.train()
        with scatter_max_pool_backward(model) if not config.run.compile else contextlib.nullcontext():
            out, clipfrac, nonfinite = ppo_update(
                config, batch, evaluate, lambda: nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm),
                optimizer, [None])
        check_finite(nonfinite, [config.seed], global_step,
                     f"the last good checkpoint in {agent_dir} is kept (try a lower learning_rate)")

        # ---- log
        sps = config.batch_size / max(time.time() - t_iter, 1e-9)
        stats, = log_update(config, [agent_dir], on_update, iteration=iteration, global_step=global_step,
                            wall_time=wall_before + time.time() - t0, sps=sps, ep=ep,
                            lr=optimizer.param_groups[0]["lr"], out=out, clipfrac=clipfrac, batch=batch)
        if bar:
            bar.update(config.batch_size)
            bar.set_postfix_str(progress_text(sps, stats))
        if iteration % config.run.checkpoint_every == 0 and iteration < config.num_iterations:
            checkpoint(False, stats)
        if config.run.snapshot_every and (iteration % config.run.snapshot_every == 0 or iteration == config.num_iterations):
            save_snapshot(agent_dir, meta, model.state_dict(), iteration, global_step)

    checkpoint(iteration == config.num_iterations, stats)
    if bar:
        bar.close()
    return agent_dir


def _act(model, obs, action=None):
    return unwrap(model).get_action_and_value(obs, action)


def samples_from_uniforms(config: TrainConfig, device: torch.device) -> bool:
    """Whether rollouts draw actions from uniforms drawn per rollout (``sample_from_uniform``):
    where the step is a CUDA graph, and in stacked runs that must match such lone runs."""
    return device.type == "cuda" and config.run.cuda_graph and not config.run.compile


def rollout_step_fn(config: TrainConfig, forward, env: MazeEnv, reward_rms: RunningMeanStd, cur: SimpleNamespace,
                    uniform: bool):
    """One rollout step on ``cur.obs`` and ``cur.disc_return`` (both rebound):
    ``() -> (action, logprob, value, reward, scaled reward, done, info)``.

    ``uniform`` samples actions from ``cur.noise`` (uniforms the caller draws), so that the
    step holds no RNG call and can be a CUDA graph; otherwise from torch's generator, as
    ``ImpalaAgent.get_action_and_value`` does.
    """
    # a captured step must not keep autocast's cache of cast weights (it would hold stale copies)
    autocast = (lambda: torch.autocast(env.device.type, dtype=torch.bfloat16, cache_enabled=not uniform)) \
        if config.run.bf16 else contextlib.nullcontext

    def step():
        with torch.no_grad(), autocast():
            if uniform:
                logits, value = unwrap(forward)(cur.obs)
                action = sample_from_uniform(logits, cur.noise)
                logprob = Categorical(logits=logits.float(), validate_args=False).log_prob(action)
            else:
                action, logprob, _, value = _act(forward, cur.obs)
        cur.obs, reward, terminated, truncated, info = env.step(action)
        done = terminated | truncated
        scaled, cur.disc_return = scaled_reward(config, reward, done, cur.disc_return, reward_rms)
        return action, logprob, value.float(), reward, scaled, done, info

    return step


def rollout_state(cur: SimpleNamespace, env: MazeEnv, reward_rms: RunningMeanStd) -> list[tuple[object, str]]:
    """What a rollout step reads and rebinds (``GraphedStep``'s ``state``)."""
    return [(cur, "obs"), (cur, "disc_return")] + [(env, k) for k in (*env.STATE, "static")] + \
        [(reward_rms, k) for k in ("mean", "var", "count")]


def sample_from_uniform(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Actions drawn from softmax(``logits``) (..., A) by inverting its CDF at ``u`` (...) in [0, 1)."""
    cdf = torch.softmax(logits.float(), -1).cumsum(-1)
    return (cdf <= u[..., None]).sum(-1).clamp(max=logits.shape[-1] - 1)


