"""The dossier's "Channels, shape and mixing" section (issue 39, item 4): in words and one figure,
an agent's channel pulls, its shape preference and how it combines channels.

- **Pulls**: the walk model's pulls above the floor (``b_X - b0``) from ``gmg predict``'s
  ``analysis/predict_profile.csv`` (else its ``_exact`` or ``_network`` profile).
- **Shape**: its observed preference for the goal colour's line over its gem
  (``COLOUR_line-vs-COLOUR_gem`` in the store's episodes) and the policy's shape readout
  (``shape_pull = b_line - b_gem`` from ``analysis/shape_agents.csv``,
  ``gmg.experiments.analysis.shape``).
- **Mixing**: each mixed-colour line measured alone (the contest model's profile objects,
  ``b_OBJ`` in the profile) against the channel rule's pull from its best channel (``max``) and
  from the sum of its channels (``add``): where between the two it lies.

A piece a run lacks is one line naming the command that fills it; the section is still written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gmg.experiments.analysis.profile_objects import PULL_COLUMNS, above_floor
from gmg.experiments.plots.style import pyplot
from gmg.training.objects import parse_object

PROFILE_FILES = ("predict_profile.csv", "predict_profile_exact.csv", "predict_profile_network.csv")
SHAPE_FILE = "shape_agents.csv"


def pull_profile_of_run(run_dir: Path) -> tuple[pd.DataFrame, str] | None:
    """(profile, file name) of the first of ``PROFILE_FILES`` the run holds with pulls, else None."""
    for name in PROFILE_FILES:
        path = Path(run_dir) / "analysis" / name
        if path.is_file():
            prof = pd.read_csv(path)
            if set(PULL_COLUMNS) <= set(prof.columns):
                return prof, name
    return None


def channel_pulls(prof: pd.DataFrame, goal: str) -> pd.DataFrame:
    """Per agent, the pulls above the floor of the pure lines, the goal line and the goal gem
    (columns named after the objects)."""
    colour = parse_object(goal).name.rsplit("_", 1)[0]
    names = ["red_line", "green_line", "blue_line", f"{colour}_line", f"{colour}_gem"]
    out = pd.DataFrame({n: prof[c] - prof["b0"] for n, c in zip(names, PULL_COLUMNS[:5])})
    out.index = prof["agent"].astype(int)
    return out


def mixed_pulls(prof: pd.DataFrame, goal: str) -> pd.DataFrame:
    """One row per agent and mixed-colour line measured alone: ``measured`` (above the floor),
    the channel rule's ``max`` and ``add`` pulls, and ``position`` = (measured - max) / (add - max):
    0 its best channel, 1 the sum of its channels (NaN where the two rules agree)."""
    rows = []
    extra = [c for c in prof.columns if c.startswith("b_") and c not in PULL_COLUMNS]
    for col in extra:
        try:
            o = parse_object(col[2:])
        except ValueError:
            continue
        if o.shape != "line" or o.rgb is None or sum(v > 0 for v in o.rgb) < 2:
            continue  # mixed colours only: what the rule builds from two or three channels
        for _, r in prof.iterrows():
            lo = above_floor(r, PULL_COLUMNS, o.name, goal, "max", clip=True)
            hi = above_floor(r, PULL_COLUMNS, o.name, goal, "add", clip=True)
            measured = float(r[col] - r["b0"])
            span = hi - lo
            rows.append({"agent": int(r["agent"]), "object": o.name, "measured": measured, "max": lo, "add": hi,
                         "position": (measured - lo) / span if span > 1e-6 else np.nan})
    return pd.DataFrame(rows, columns=["agent", "object", "measured", "max", "add", "position"])


def _rank_phrase(values: pd.Series, agent_id: int) -> str:
    v = values[agent_id]
    return f"population median {values.median():.2f}, above {100 * (values < v).mean():.0f}% of agents"


def channel_section(run_dir: str | Path, agent_id: int, goal: str, metrics: pd.DataFrame | None,
                    out_dir: str | Path, agents_spec: str = "AGENTS") -> dict:
    """{"sentences": [...], "figure": file name or None, "notes": [one line per missing table]}
    for ``agent_id``; ``metrics``: ``rundir.population_metrics`` of the run (or None)."""
    from gmg.experiments.analysis.shape import shape_setting
    from gmg.experiments.settings import base_names

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    colour = parse_object(goal).name.rsplit("_", 1)[0]
    setting = shape_setting(goal)
    sentences, notes = [], []
    found = pull_profile_of_run(run_dir)
    pulls = mixed = None
    if found is not None and (found[0]["agent"].astype(int) == agent_id).any():
        prof, source = found
        pulls = channel_pulls(prof, goal)
        mine = pulls.loc[agent_id]
        pure = mine[["red_line", "green_line", "blue_line"]]
        sentences.append(
            f"Its pulls above the floor (walk model, {source}): " + ", ".join(f"{k.replace('_', ' ')} {v:.2f}"
                                                                              for k, v in mine.items())
            + f"; of the pure channels it reads {pure.idxmax().split('_')[0]} most "
            f"({_rank_phrase(pulls[pure.idxmax()], agent_id)}).")
        mixed = mixed_pulls(prof, goal)
        if mixed.empty:
            notes.append(f"mixed colours not measured alone: run `gmg predict --run-dir {run_dir}` (rollout profile)")
        else:
            own = mixed[mixed["agent"] == agent_id]
            sentences.append("Mixing channels: " + "; ".join(
                f"its {r.object.replace('_', ' ')} pulls {r.measured:.2f} alone against {r.max:.2f} from its best "
                f"channel and {r.add:.2f} from their sum ({'position ' + format(r.position, '.2f') if np.isfinite(r.position) else 'the rules agree'}: 0 = best channel, 1 = sum)"
                for r in own.itertuples()) + ".")
    else:
        notes.append(f"channel pulls not measured: run `gmg predict --run-dir {run_dir}`")

    observed = None
    if metrics is not None and not metrics.empty:
        m = metrics[base_names(metrics["setting"]) == setting]
        if not m.empty:
            observed = m.groupby("agent")["preference"].mean()
    shape_path = run_dir / "analysis" / SHAPE_FILE
    readout = pd.read_csv(shape_path).set_index("agent") if shape_path.is_file() else None
    words = []
    if observed is not None and agent_id in observed.index:
        words.append(f"it reaches the {colour} line before the {colour} gem in {observed[agent_id]:.0%} of levels "
                     f"({_rank_phrase(observed, agent_id)})")
    else:
        notes.append(f"shape contest not evaluated: run `gmg evaluate --settings {setting} --run-dir {run_dir}`")
    if readout is not None and agent_id in readout.index:
        sp = readout["shape_pull"]
        words.append(f"its policy pulls toward the line by {sp[agent_id]:+.2f} more than toward the gem, each alone "
                     f"({_rank_phrase(sp, agent_id)})")
    else:
        notes.append(f"shape readout not measured: run `python scripts/shape_probes.py --population "
                     f"{agents_spec}={run_dir}`")
    if words:
        sentences.append("Shape: " + "; ".join(words) + ".")
    figure = None
    if pulls is not None or words:
        figure = plot_channels(agent_id, pulls, mixed, observed, readout, colour, out_dir / "channels.png").name
    return {"sentences": sentences, "figure": figure, "notes": notes}


def plot_channels(agent_id: int, pulls, mixed, observed, readout, colour: str, path: Path) -> Path:
    """Three panels: pulls against the population, mixed colours against the rules, shape."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    if pulls is not None:
        x = np.arange(pulls.shape[1])
        q = pulls.quantile([0.1, 0.5, 0.9])
        ax.bar(x, pulls.loc[agent_id].to_numpy(), color="tab:red", alpha=0.8, label=f"agent {agent_id}")
        ax.errorbar(x, q.loc[0.5], yerr=[q.loc[0.5] - q.loc[0.1], q.loc[0.9] - q.loc[0.5]], fmt="_", color="k",
                    capsize=3, label="population median, 10-90%")
        ax.set_xticks(x, [c.replace("_", " ") for c in pulls.columns], rotation=30, ha="right", fontsize=7)
        ax.legend(fontsize=6)
    ax.set_title("pull above the floor, each object alone", fontsize=8)
    ax = axes[1]
    if mixed is not None and not mixed.empty:
        objs = list(dict.fromkeys(mixed["object"]))
        for i, obj in enumerate(objs):
            d = mixed[mixed["object"] == obj]
            ax.scatter(np.full(len(d), i) + np.linspace(-0.15, 0.15, len(d)), d["position"], s=8, color="0.6")
            mine = d[d["agent"] == agent_id]
            ax.scatter([i], mine["position"], s=40, color="tab:red", zorder=3)
        ax.axhline(0, color="k", lw=0.8, ls="--")
        ax.axhline(1, color="k", lw=0.8, ls=":")
        ax.set_xticks(range(len(objs)), [o.replace("_", " ") for o in objs], fontsize=7)
        ax.set_ylabel("0 = best channel (max), 1 = sum (add)", fontsize=7)
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
    ax.set_title("mixed colours alone: between the rules (grey: population)", fontsize=8)
    ax = axes[2]
    if observed is not None and readout is not None:
        d = readout[["shape_pull"]].join(observed.rename("observed"), how="inner")
        ax.scatter(d["shape_pull"], d["observed"], s=10, color="0.6", label="population")
        if agent_id in d.index:
            ax.scatter([d.loc[agent_id, "shape_pull"]], [d.loc[agent_id, "observed"]], s=40, color="tab:red",
                       label=f"agent {agent_id}")
        ax.set_xlabel("shape pull b_line - b_gem (policy)", fontsize=7)
        ax.set_ylabel(f"P({colour} line before gem)", fontsize=7)
        ax.legend(fontsize=6)
    elif observed is not None or readout is not None:
        vals = observed if observed is not None else readout["shape_pull"]
        ax.hist(vals, bins=12, color="0.7")
        if agent_id in vals.index:
            ax.axvline(vals[agent_id], color="tab:red")
        ax.set_xlabel("P(line before gem)" if observed is not None else "shape pull b_line - b_gem", fontsize=7)
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
    ax.set_title(f"shape: {colour} line over {colour} gem", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
