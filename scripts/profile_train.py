"""Where a PPO update's time goes, part by part: one rollout step and one minibatch, timed alone.

    python3 scripts/profile_train.py [--preset paper] [--device cuda] [--out DIR] [--set F=V ...]

For each variant (bf16 and channels-last on or off) it times one rollout step (network on
``num_envs`` observations, sampling, env step, reward scaling; a CUDA graph replay on a GPU
unless ``--set cuda_graph=false``) and one update minibatch (forward, PPO loss,
backward, gradient clip, Adam) with device events, then gives the update those parts add
up to (``num_steps`` rollout steps + epochs x minibatches) as env steps/s, to compare with
``gmg bench train``. The kernels of one minibatch are profiled and the top ones printed:
that says which layer to fix. ``--out`` writes the kernel tables.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn, optim

from gmg.experiments.cli.train import parse_overrides
from gmg.training.config import make_config
from gmg.training.cuda_graph import GraphedStep
from gmg.training.env import MazeEnv, TrainingLevels
from gmg.training.fast_pool import scatter_max_pool, scatter_max_pool_backward
from gmg.training.model import ImpalaAgent
from gmg.training.ppo import RunningMeanStd, ppo_loss, rollout_state, rollout_step_fn
from gmg.training.runtime import apply_run_settings, resolve_device


def timed(fn, device, reps: int) -> float:
    """Median milliseconds of ``fn`` after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t))
    return statistics.median(times)


def measure(config, device, reps: int, out: Path | None, tag: str) -> dict:
    apply_run_settings(config, device)
    torch.manual_seed(0)
    model = ImpalaAgent(config.model_config()).to(device)
    if config.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if config.run.bf16 else contextlib.nullcontext
    env = MazeEnv(config.num_envs, config.env_config(), TrainingLevels(1000, 0), device)
    graphed = device.type == "cuda" and config.run.cuda_graph
    cur = SimpleNamespace(obs=env.reset(), disc_return=torch.zeros(config.num_envs, dtype=torch.float64, device=device),
                          noise=torch.rand(config.num_envs, device=device))
    rms = RunningMeanStd(device)
    rollout_step = rollout_step_fn(config, model, env, rms, cur, uniform=graphed)
    if graphed:
        rollout_step = GraphedStep(rollout_step, rollout_state(cur, env, rms), capture=True)
        assert rollout_step.captured, rollout_step.error

    m = config.minibatch_size
    obs = torch.randint(0, 256, (m, config.obs_size, config.obs_size, 3), dtype=torch.uint8, device=device)
    actions = torch.randint(0, 15, (m,), device=device)
    old = {k: torch.randn(m, device=device) for k in ("logprobs", "advantages", "values", "returns")}

    def minibatch():
        with autocast():
            _, logprob, entropy, value = model.get_action_and_value(obs, actions)
        loss = ppo_loss(config, logprob, entropy, value.view(-1), old["logprobs"] - 2.7, old["advantages"],
                        old["values"], old["returns"])["loss"]
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()

    step_ms = timed(rollout_step, device, reps)
    with scatter_max_pool_backward(model):  # as the training loop's update
        mb_ms = timed(minibatch, device, reps)
    rollout_s = config.num_steps * step_ms / 1e3
    update_s = config.update_epochs * config.num_minibatches * mb_ms / 1e3
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.profiler.profile(activities=activities) as prof, scatter_max_pool_backward(model):
        minibatch()
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=70)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"kernels-{tag.replace('+', '-')}.txt").write_text(table)
    return {"variant": tag, "rollout_step_ms": step_ms, "minibatch_ms": mb_ms, "rollout_s": rollout_s,
            "update_s": update_s, "env_steps_per_s": config.batch_size / (rollout_s + update_s), "table": table}


POOLS = {
    "channels-last": lambda x: torch.nn.functional.max_pool2d(x, 3, 2, 1),
    "nchw": lambda x: torch.nn.functional.max_pool2d(x.contiguous(), 3, 2, 1).contiguous(
        memory_format=torch.channels_last),
    "scatter": lambda x: scatter_max_pool(x, 3, 2, 1),  # gmg.training.fast_pool's
}


def bench_pools(device, batch: int, reps: int) -> None:
    """Forward + backward of the network's three max-pools (paper widths), per implementation."""
    for shape in ((batch, 16, 64, 64), (batch, 32, 32, 32), (batch, 32, 16, 16)):
        x0 = torch.randn(shape, device=device, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        x0[:, :, : shape[2] // 4] = 0.5  # ties, as a black background gives: each pool must pick the same cell
        g = torch.randn(POOLS["channels-last"](x0).shape, device=device, dtype=torch.bfloat16)
        ref = None
        cells = []
        for name, pool in POOLS.items():
            x = x0.detach().requires_grad_()

            def run():
                x.grad = None
                pool(x).backward(g)

            ms = timed(run, device, reps)
            if ref is None:
                ref = x.grad.float()
            err = (x.grad.float() - ref).abs().max().item()
            cells.append(f"{name} {ms:6.2f} ms (max diff {err:.1e})")
        print(f"pool {tuple(shape)}: " + ", ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--variants", default="bf16+cl,bf16,fp32+cl", help="bf16 / fp32, +cl = channels-last")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE")
    parser.add_argument("--pools", type=int, metavar="BATCH", help="also time max-pool implementations at this batch")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.pools:
        bench_pools(device, args.pools, args.reps)
    rows = []
    for tag in args.variants.split(","):
        over = {**parse_overrides(args.set), "bf16": tag.startswith("bf16"), "channels_last": tag.endswith("+cl")}
        rows.append(measure(make_config(args.preset, over), device, args.reps, args.out, tag))
        r = rows[-1]
        print(f"{args.preset} {tag:8s} rollout step {r['rollout_step_ms']:7.2f} ms, minibatch {r['minibatch_ms']:7.2f} ms"
              f" -> rollout {r['rollout_s']:.2f} s + update {r['update_s']:.2f} s = {r['env_steps_per_s']:,.0f} env steps/s",
              flush=True)
    print("\n".join(rows[0]["table"].splitlines()[:22]))


if __name__ == "__main__":
    main()
