"""Training curves of a population, read from each agent's ``train.csv``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gmg.experiments.plots.style import pyplot, save_figure
from gmg.training.checkpoint import read_meta


def read_training_logs(agent_dirs: list[Path]) -> pd.DataFrame:
    """Every ``train.csv`` of these agent folders, one frame with an ``agent`` column (empty if none)."""
    frames = []
    for folder in agent_dirs:
        log = Path(folder) / "train.csv"
        if log.is_file():
            df = pd.read_csv(log)
            df["agent"] = read_meta(folder)["seed"]
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_training(agent_dirs: list[Path], out: Path) -> Path | None:
    """Episode length against the shortest path, success and losses over env steps, one line
    per agent (and the median); None when no folder has a ``train.csv``."""
    df = read_training_logs(agent_dirs)
    if df.empty:
        return None
    plt = pyplot()
    panels = [("episode_length", "episode length (steps)"), ("success", "success rate"),
              ("entropy", "policy entropy"), ("value_loss", "value loss")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    many = df["agent"].nunique() > 1
    for ax, (col, label) in zip(axes, panels):
        for agent, g in df.groupby("agent"):
            ax.plot(g["global_step"], g[col], lw=0.8, alpha=0.4 if many else 1.0, color="tab:blue")
        if many:
            med = df.groupby("global_step")[col].median()
            ax.plot(med.index, med.values, color="black", lw=1.5, label="median")
        if col == "episode_length":
            sp = df.groupby("global_step")["shortest_path"].mean()
            ax.plot(sp.index, sp.values, color="tab:green", ls="--", label="shortest path")
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        ax.set_xlabel("env steps")
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"training curves, {df['agent'].nunique()} agent(s)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out)

