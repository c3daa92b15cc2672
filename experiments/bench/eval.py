"""``gmg bench eval``: seconds, episodes/s and peak memory of evaluating a population."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from gmg.experiments.evaluate import evaluate
from gmg.experiments.population import AgentRef, resolve_agents
from gmg.training.env import TIMEOUT
from gmg.training.errors import UserError


def random_population(root: str | Path, n: int, widths: tuple[int, ...] = (8, 16, 16),
                      goal: str = "yellow_line") -> list[AgentRef]:
    """``n`` randomly initialised agents of the cpu preset's architecture, saved as training saves them."""
    from gmg.training.checkpoint import agent_dir_name, save_weights, write_meta
    from gmg.training.model import ImpalaAgent, ModelConfig

    refs = []
    for seed in range(n):
        torch.manual_seed(seed)
        config = ModelConfig(widths=tuple(widths))
        model = ImpalaAgent(config)
        folder = Path(root) / agent_dir_name(seed)
        folder.mkdir(parents=True, exist_ok=True)
        save_weights(model, folder / "model.safetensors")
        meta = {"seed": seed, "model": config.to_dict(), "finished": True,
                "env": {"objects": [goal], "world_dim": 5, "size": config.obs_size, "background": "black",
                        "timeout": TIMEOUT}}
        write_meta(folder, meta)
        refs.append(AgentRef(seed, folder, meta))
    return refs


def bench_eval(*, device: str | torch.device = "auto", n_agents: int = 100, n_levels: int = 1000,
               setting: str = "red_line-vs-yellow_gem", agents: str | None = "runs/zoo-yellow-line/agents",
               random_agents: bool = False, batch_envs: int | None = None, threads: int | None = None,
               **_) -> dict:
    """Seconds, episodes/s and peak memory of evaluating ``n_agents`` x ``n_levels`` x 1 setting.

    Rows: the finished agents found at ``agents`` cycled to ``n_agents`` (if any), and
    ``n_agents`` random agents of the cpu preset (if ``random_agents``); random agents
    wander, so their episodes are far longer than trained ones'.
    """
    import resource
    import tempfile

    from gmg.training.runtime import machine, resolve_device

    device = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    populations = []
    if agents:
        try:
            found = resolve_agents(agents)
        except UserError:
            found = []
        if found:
            cycled = [AgentRef(i, found[i % len(found)].path, found[i % len(found)].meta) for i in range(n_agents)]
            populations.append((f"trained ({len(found)} cycled)", cycled))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if random_agents:
            populations.append(("random cpu preset", random_population(Path(tmp) / "agents", n_agents)))
        for label, refs in populations:
            run = Path(tmp) / f"run-{len(rows)}"
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            stats: dict = {}
            t0 = time.perf_counter()
            df = evaluate(refs, [setting], run, device, n_levels=n_levels, batch_envs=batch_envs, progress=False,
                          stats=stats)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - t0
            row = {"agents": label, "device": str(device), "n_agents": n_agents, "n_levels": n_levels,
                   "setting": setting, "threads": torch.get_num_threads(), "seconds": seconds, "episodes_per_s": len(df) / seconds,
                   "mean_steps": float(df["steps"].mean()), "agent_steps_per_s": float(df["steps"].sum()) / seconds,
                   "forwards_per_episode": stats.get("forwards", 0) / len(df),
                   "us_per_forward": seconds / max(1, stats.get("forwards", 0)) * 1e6,
                   "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            if device.type == "cuda":
                row["peak_gpu_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            rows.append(row)
    return {"bench": "eval", "machine": machine(), "rows": rows}

