"""``gmg ablate``, ``gmg attribute``, ``gmg reliance``: thin shells over ``interp`` and
``gmg.experiments.reliance``."""

from __future__ import annotations

import argparse
from pathlib import Path

from gmg.training.errors import UserError


def _agents(args):
    from gmg.experiments.population import resolve_agents
    from gmg.training.seeds import parse_seeds

    ids = parse_seeds(args.ids) if args.ids else None
    return resolve_agents(args.agents, ids)


def _channels(text: str | None, layer: str):
    if text is None or text.strip().lower() == "all":
        return None
    if layer == "hook_obs":
        from gmg.interp.interventions import parse_channels

        parts = [c for c in text.replace(" ", "").split(",") if c]
        return list(parse_channels(parts if len(parts) > 1 else text))
    try:
        return [int(c) for c in text.replace(" ", "").split(",") if c]
    except ValueError:
        raise UserError(f"--channels expects comma-separated channel indices or 'all', got {text!r}") from None


def cmd_ablate(args: argparse.Namespace) -> None:
    from gmg.experiments.reliance import first_frames
    from gmg.interp.patching import ablate_channels, patch_activations
    from gmg.training.runtime import resolve_device

    device = resolve_device(args.device)
    channels = _channels(args.channels, args.layer)
    value = args.value
    if value not in ("zero", "mean"):
        try:
            value = float(value)
        except ValueError:
            raise UserError(f"--value must be zero, mean or a number, got {args.value!r}") from None
    what = f"patch from {args.patch_from}" if args.patch_from else f"{args.value}-ablate"
    print(f"{what} at {args.layer}, channels {args.channels or 'all'}, on {args.n_obs} first frames")
    print(f"{'agent':>6} {'tv':>7} {'kl':>8} {'d_value':>8} {'|d_value|':>9} {'act_changed':>11}")
    for ref in _agents(args):
        model = ref.load(device)
        target = first_frames(ref.trained_on, args.n_obs, device)
        if args.patch_from:
            objects = [o.strip() for o in args.patch_from.split(",")]
            source = first_frames(ref.trained_on, args.n_obs, device, objects=tuple(objects))
            res = patch_activations(model, source, target, args.layer, channels)
        else:
            res = ablate_channels(model, target, args.layer, channels, value)
        s = res.summary()
        print(f"{ref.agent_id:>6} {s['tv']:7.4f} {s['kl']:8.4f} {s['value_change']:+8.4f} "
              f"{s['abs_value_change']:9.4f} {s['action_changed']:11.3f}")


def cmd_attribute(args: argparse.Namespace) -> None:
    from gmg.experiments.plots.interp import plot_attribution
    from gmg.experiments.reliance import evaluation_env
    from gmg.interp.attribution import attribute, cell_attribution, mean_shares
    from gmg.training.runtime import resolve_device

    device = resolve_device(args.device)
    print(f"{args.method} attribution of the greedy action's logit on {args.n_obs} first frames")
    print(f"{'agent':>6} {'R':>6} {'G':>6} {'B':>6} {'max|delta|':>10}  goal-cell share")
    for ref in _agents(args):
        model = ref.load(device)
        env = evaluation_env(ref.trained_on, args.n_obs, device)  # the frames and their goal cells
        frames = env.observe()
        res = attribute(model, frames, method=args.method, n_steps=args.n_steps)
        shares = mean_shares(res.attributions)
        world = ref.trained_on.world_dim
        cells = cell_attribution(res.attributions, world).flatten(1)
        goal = env.objects[:, 0].to(cells.device)
        goal_share = float((cells.gather(1, goal[:, None]).squeeze(1) / cells.sum(1).clamp(min=1e-12)).mean())
        delta = "-" if res.delta is None else f"{float(res.delta.abs().max()):.2e}"
        print(f"{ref.agent_id:>6} {shares[0]:6.3f} {shares[1]:6.3f} {shares[2]:6.3f} {delta:>10}  {goal_share:.3f}")
        if args.plot:
            path = Path(args.run_dir) / "plots" / f"attribute_{args.method}_agent{ref.agent_id}.png"
            plot_attribution(frames[0].cpu().numpy(), res.attributions[0].cpu().numpy(), path,
                             f"agent {ref.agent_id}, action {int(res.target[0])}")
            print(f"       wrote {path}")


def cmd_reliance(args: argparse.Namespace) -> None:
    from gmg.experiments.plots.interp import plot_reliance_bars, plot_reliance_scatter
    from gmg.experiments.reliance import preferences, run_reliance
    from gmg.training.runtime import resolve_device

    device = resolve_device(args.device)
    refs = _agents(args)
    table = run_reliance(refs, args.run_dir, device, n_levels=args.n_levels, n_attr=args.n_attr,
                         seed=args.seed, greedy=args.greedy, timeout=args.timeout, force=args.force,
                         progress=None if args.quiet else print)
    cols = ["agent", "green_vs_red", "none_efficiency", "isolate_r_efficiency", "isolate_g_efficiency",
            "isolate_b_efficiency", "attr_share_r", "attr_share_g", "attr_share_b", "seconds"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.plot:
        plots = Path(args.run_dir) / "plots"
        for _, row in table.iterrows():
            plot_reliance_bars(row, plots / f"reliance_agent{int(row['agent'])}.png")
        print(f"wrote {len(table)} reliance bar plots to {plots}")
        if args.preference:
            try:
                prefs = preferences(args.run_dir, args.preference)
            except UserError as e:
                print(f"no scatter: {e}")
            else:
                path = plot_reliance_scatter(table, prefs, plots / "reliance_vs_preference.png",
                                             label=f"preference for obj1 in {args.preference}")
                print(f"wrote {path}")


def register(sub: argparse._SubParsersAction) -> None:
    def common(p):
        p.add_argument("--agents", default="zoo:yellow-line", help="zoo:NAME, a run directory or an agent folder")
        p.add_argument("--ids", help="agent ids, e.g. 0-7 or 0,3 (default: all)")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    p = sub.add_parser("ablate", help="ablate channels at a layer (or patch in activations) and measure the policy change")
    common(p)
    p.add_argument("--layer", default="hook_obs", help="hook point name, e.g. hook_obs, blocks.0.hook_conv")
    p.add_argument("--channels", help="channel indices (comma-separated; r,g,b at hook_obs) or all (default)")
    p.add_argument("--value", default="zero", help="zero, mean or a number")
    p.add_argument("--patch-from", help="patch instead: activations from the same levels drawn with these objects, e.g. red_line")
    p.add_argument("--n-obs", type=int, default=64, help="first frames of this many evaluation levels")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("attribute", help="captum attributions per RGB channel and maze cell")
    common(p)
    p.add_argument("--method", default="ig", help="ig, saliency or deeplift")
    p.add_argument("--n-obs", type=int, default=16)
    p.add_argument("--n-steps", type=int, default=32, help="IG integration steps")
    p.add_argument("--plot", action="store_true", help="write a PNG of the first frame's attributions")
    p.add_argument("--run-dir", default="runs/interp", type=Path)
    p.set_defaults(func=cmd_attribute)

    p = sub.add_parser("reliance", help="channel-reliance profile per agent -> store table 'reliance'")
    common(p)
    p.add_argument("--run-dir", default="runs/interp", type=Path)
    p.add_argument("--n-levels", type=int, default=100, help="evaluation levels per condition (1-1000)")
    p.add_argument("--n-attr", type=int, default=32, help="first frames for sensitivity and IG shares")
    p.add_argument("--timeout", type=int, help="episode limit (default: the agent's training timeout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--force", action="store_true", help="recompute agents already in the store")
    p.add_argument("--plot", action="store_true", help="bar plot per agent (+ scatter with --preference)")
    p.add_argument("--preference", default="yellow_gem-vs-red_line",
                   help="setting whose preference (from the episodes table) the scatter shows")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_reliance)
