"""``gmg bench eval``: seconds, episodes/s and peak memory of evaluating a population."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from gmg.experiments.evaluate import evaluate
from gmg.experiments.population import AgentRef, resolve_agents
from gmg.training.env import TIMEOUT, WORLD_DIM
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
                "env": {"objects": [goal], "world_dim": WORLD_DIM, "size": config.obs_size, "background": "black",
                        "timeout": TIMEOUT}}
        write_meta(folder, meta)
        refs.append(AgentRef(seed, folder, meta))
    return refs


def bench_eval(*, device: str | torch.device = "auto", n_agents: int = 100, n_levels: int = 1000,
               setting: str = "red_line-vs-yellow_gem", agents: str | None = "runs/zoo-yellow-line/agents",
               random_agents: bool = False, batch_envs: int | None = None, threads: int | None = None,
               exact: bool = False, settings: list[str] | None = None, cycle: bool = True, **_) -> dict:
    """Seconds, episodes/s and peak memory of evaluating ``n_agents`` x ``n_levels`` x 1 setting.

    Rows: the finished agents found at ``agents`` cycled to ``n_agents`` (if any; without
    ``cycle``, the first ``n_agents`` of them, each once), and ``n_agents`` random agents of the
    cpu preset (if ``random_agents``); random agents wander, so their episodes are far longer
    than trained ones'. ``settings`` replaces the one ``setting``. With ``exact``, each row is
    evaluated twice, sampled and exact (``evaluate(exact=True)``), with the CPU seconds, the
    frames drawn per level and the mean width of the agents' 95% preference (or, in one-object
    settings, success) interval: ``width_x_sqrt_cpu_s`` is the width one CPU-second would buy
    (widths shrink as one over the square root of the work), lower is better;
    ``sampled_inside_95``: the share of agents whose sampled preference lies inside the 95%
    interval a sampled evaluation has around the exact one (``exact.sampled_interval``).
    """
    import resource
    import tempfile

    import numpy as np

    from gmg.experiments.evaluate import metrics
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
            if cycle:
                cycled = [AgentRef(i, found[i % len(found)].path, found[i % len(found)].meta) for i in range(n_agents)]
                populations.append((f"trained ({len(found)} cycled)", cycled))
            else:
                populations.append((f"trained ({min(n_agents, len(found))})", list(found)[:n_agents]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if random_agents:
            populations.append(("random cpu preset", random_population(Path(tmp) / "agents", n_agents)))
        for label, refs in populations:
            for name in settings or [setting]:
                for mode in ("sampled", "exact") if exact else ("sampled",):
                    run = Path(tmp) / f"run-{len(rows)}"
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    stats: dict = {}
                    t0, c0 = time.perf_counter(), time.process_time()
                    df = evaluate(refs, [name], run, device, n_levels=n_levels, batch_envs=batch_envs, progress=False,
                                  stats=stats, exact=mode == "exact")
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                    row = {"agents": label, "device": str(device), "n_agents": len(refs), "n_levels": n_levels,
                           "setting": name, "threads": torch.get_num_threads(), "seconds": seconds,
                           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
                    if exact:
                        m = metrics(df)
                        col = "preference" if m["preference"].notna().any() else "success"
                        if col == "success" and mode == "sampled":  # a Wilson interval of obj1 among all episodes
                            from statsmodels.stats.proportion import proportion_confint

                            lo, hi = proportion_confint(m["n_obj1"], m["n"], alpha=0.05, method="wilson")
                        else:
                            lo, hi = m[f"{col}_lo"], m[f"{col}_hi"]
                        width = float(np.nanmean(np.asarray(hi) - np.asarray(lo)))
                        row = {**row, "mode": mode, "cpu_s": cpu, "interval_of": col,
                               "frames_per_level": stats.get("forwards", 0) / len(m) / n_levels,
                               "ci_width": width, "width_x_sqrt_cpu_s": width * np.sqrt(cpu)}
                        if mode == "sampled":
                            sampled = m.set_index("agent")["preference"]
                        elif col == "preference":  # the sampled preference inside its 95% interval around the exact
                            from gmg.experiments.exact import sampled_interval

                            inside = [lo <= sampled.get(a, np.nan) <= hi for a, g in df.groupby("agent")
                                      for lo, hi in [sampled_interval(g)]]
                            row["sampled_inside_95"] = float(np.mean(inside))
                    if mode == "sampled":
                        row = {**row, "episodes_per_s": len(df) / seconds, "mean_steps": float(df["steps"].mean()),
                               "agent_steps_per_s": float(df["steps"].sum()) / seconds,
                               "forwards_per_episode": stats.get("forwards", 0) / len(df),
                               "us_per_forward": seconds / max(1, stats.get("forwards", 0)) * 1e6}
                    if device.type == "cuda":
                        row["peak_gpu_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
                    rows.append(row)
    return {"bench": "eval", "machine": machine(), "rows": rows}
