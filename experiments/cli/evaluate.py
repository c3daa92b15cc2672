"""Verbs ``gmg settings``, ``gmg evaluate``, ``gmg plot`` and ``gmg rollout``."""

from __future__ import annotations

import argparse
from pathlib import Path

from gmg.experiments.population import DEFAULT_AGENTS

DEFAULT_RUN = Path("runs/eval")


def _ids(text: str | None) -> list[int] | None:
    if not text:
        return None
    from gmg.training.seeds import parse_seeds

    return parse_seeds(text)


def cmd_settings(args: argparse.Namespace) -> None:
    from gmg.experiments.settings import all_settings, lists_holding, resolve_settings, write_thumbnails

    settings = resolve_settings(args.names, args.background) if args.names else all_settings()
    lists = lists_holding()
    for s in settings:
        print(f"{s.name:40s} obj1={s.obj1:14s} obj2={s.obj2 or '-':14s} background={s.background:8s} "
              f"{','.join(lists.get(s.name, []))}")
    if not args.no_thumbnails:
        paths = write_thumbnails(settings, args.run_dir / "settings")
        print(f"{len(paths)} thumbnails in {args.run_dir / 'settings'}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from gmg.experiments.cluster import chunk_runner
    from gmg.experiments.evaluate import evaluate, metrics
    from gmg.experiments.population import resolve_agents
    from gmg.experiments.settings import default_settings, resolve_settings

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # 1 is faster on a busy CPU: tiny convs, contended cores
    refs = resolve_agents(args.agents, _ids(args.ids))
    if args.settings in (None, ["auto"]):
        settings = default_settings(refs[0].trained_on.goal, args.background)
    else:
        settings = resolve_settings(args.settings, args.background)
    intervention, name = None, "none"
    if args.intervention.strip().lower() != "none":
        intervention, name = _intervention(args.intervention)
    df = evaluate(refs, settings, args.run_dir, args.device, n_levels=args.n_levels, greedy=args.greedy,
                  seed=args.seed, intervention=intervention, intervention_name=name, batch_envs=args.batch_envs,
                  timeout=args.timeout, progress=not args.quiet, run_chunks=chunk_runner(args.ray, args.workers, args.threads),
                  levels=args.levels, render=args.render, exact=args.exact, eps=args.eps)
    m = metrics(df)
    shown = ["preference", "capability", "timeout_rate"] + (["frames", "p_unresolved"] if args.exact else [])
    summary = m.groupby("setting", sort=False)[shown].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.3g}" if v < 1e-3 else f"{v:.3f}"))
    what = "exact rows (one per agent and level)" if args.exact else "episodes"
    print(f"{len(df)} {what} in {args.run_dir / 'results.duckdb'} (table {'exact' if args.exact else 'episodes'})")


def _intervention(spec: str):
    """``--intervention SPEC`` (``isolate:g``, ``ablate:r``, ...) -> (intervention, its name)."""
    from gmg.interp.interventions import parse_intervention
    iv = parse_intervention(spec)
    return iv, getattr(iv, "name", spec.strip().lower())


def cmd_plot(args: argparse.Namespace) -> None:
    if args.what == "training":
        from gmg.experiments.plots.training import plot_training
        from gmg.experiments.population import resolve_agents
        from gmg.training.errors import UserError

        agents = args.agents or (args.run_dir if (args.run_dir / "agents").is_dir() else "zoo:yellow-line")
        png = plot_training([r.path for r in resolve_agents(agents)], args.run_dir / "plots" / "training.png")
        if png is None:
            raise UserError(f"no train.csv in the agent folders of {agents}; train them with `gmg train`")
        print(png)
        return
    from gmg.experiments.plots.preference import plot_run

    paths = plot_run(args.run_dir, args.intervention)
    print(f"{len(paths)} plots in {args.run_dir / 'plots'}")


def cmd_rollout(args: argparse.Namespace) -> None:
    from gmg.experiments.population import resolve_agents
    from gmg.experiments.rollout import default_path, rollout
    from gmg.experiments.settings import parse_setting
    from gmg.training.runtime import resolve_device

    ref = resolve_agents(args.agents, [args.agent])[0]
    setting = parse_setting(args.setting, args.background)
    out = args.out or default_path(args.run_dir, ref, setting, args.level)
    path, record = rollout(ref, setting, out, args.level, args.greedy, args.seed, resolve_device(args.device),
                           timeout=args.timeout)
    print(f"{path}: {record['outcome']} after {record['steps']} steps")


def _common(p: argparse.ArgumentParser, agents: bool = True) -> None:
    if agents:
        p.add_argument("--agents", default=DEFAULT_AGENTS, help="zoo:NAME, a run directory or an agent folder")
    p.add_argument("--run-dir", default=DEFAULT_RUN, type=Path)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def register(sub) -> None:
    from gmg.experiments.cluster import add_ray_arguments

    p = sub.add_parser("settings", help="list evaluation settings and write a thumbnail of each")
    p.add_argument("names", nargs="*", help="settings or list names (default: the whole catalogue)")
    p.add_argument("--background", help="black (default), grey or textured")
    p.add_argument("--no-thumbnails", action="store_true")
    _common(p, agents=False)
    p.set_defaults(func=cmd_settings)

    p = sub.add_parser("evaluate", help="evaluate agents in settings on the fixed evaluation levels (resumable)")
    _common(p)
    p.add_argument("--ids", help="agent ids, e.g. 0-9 or 1,4 (default: all)")
    p.add_argument("--settings", nargs="+", help="OBJ1-vs-OBJ2, train:OBJ or a list name (yellow-line, "
                   "white-line); default: the list of the agents' goal plus train:GOAL")
    p.add_argument("--background", help="black (default), grey or textured")
    p.add_argument("--n-levels", type=int, default=1000, help="first N of the 1000 evaluation levels")
    p.add_argument("--levels", choices=["hashed", "procgen"], help="level source: gmg's hashed levels (ids from "
                   "10^9) or the original's procgen levels (ids from 100,000, its test levels); default: the "
                   "agents' training levels")
    p.add_argument("--render", choices=["procgen", "box"], help="how frames are drawn: procgen's own drawing or the "
                   "area-averaged box (the bundled zoo's); default: as the agents were trained (another: a what-if)")
    p.add_argument("--greedy", action="store_true", help="argmax actions instead of sampling")
    p.add_argument("--exact", action="store_true", help="solve each agent's Markov chain on each level instead of "
                   "sampling episodes (table exact: P(obj1), P(obj2), P(timeout), E[steps] per level)")
    p.add_argument("--eps", type=float, help="with --exact: draw a state while its expected entries exceed this "
                   "(default 1e-4; 0 draws every reachable state)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled actions")
    p.add_argument("--timeout", type=int, help="steps per episode (default: the agents' training timeout)")
    p.add_argument("--intervention", default="none", help="input-channel intervention active while agents "
                   "play: none, isolate:g, ablate:r, ablate:r=0.5, permute:grb, grey")
    p.add_argument("--batch-envs", type=int, help="envs stepped together (default 8192 on CPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is faster on a busy CPU); "
                   "with --workers, of each worker process (default 1)")
    add_ray_arguments(p, "evaluation chunks")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="plots into RUN_DIR/plots: evaluation (default) or training curves")
    _common(p, agents=False)
    p.add_argument("what", nargs="?", default="evaluation", choices=["evaluation", "training"])
    p.add_argument("--agents", help="training: zoo:NAME, a run directory or agent folder (default: RUN_DIR)")
    p.add_argument("--intervention", default="none", help="which intervention's episodes to plot")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("rollout", help="GIF of one agent on one evaluation level, view beside its R/G/B split")
    _common(p)
    p.add_argument("--agent", type=int, required=True, help="agent id (its seed)")
    p.add_argument("--setting", default="red_line-vs-yellow_gem")
    p.add_argument("--background", help="black (default), grey or textured")
    p.add_argument("--level", type=int, default=0, help="evaluation level 0-999")
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=int, help="steps (default: the agent's training timeout)")
    p.add_argument("--out", type=Path, help="GIF path (default RUN_DIR/rollouts/...)")
    p.set_defaults(func=cmd_rollout)
