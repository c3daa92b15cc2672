"""Where shape lives in the network (issue 39, item 3): the line-or-gem probe per layer against
random networks, the policy's shape readout, and whether either predicts the shape contest.

    python scripts/shape_probes.py --population zoo:yellow-line=runs/shape-yellow \\
        --population zoo:white-line=runs/shape-white --n-levels 300

Each run directory should hold the shape contest's episodes (``gmg evaluate --settings
yellow_line-vs-yellow_gem --run-dir runs/shape-yellow``; white for the white-line zoo); the
per-population results go to ``RUN/analysis/shape_*.csv`` (``--reuse`` reads them back instead
of probing again), the tables to ``OUT/shape-probes.csv``, ``shape-agents.csv``,
``shape-scores.csv`` and the figure to ``OUT/shape-probes.png``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gmg.experiments.analysis.shape import (
    PREDICTORS,
    across_agents,
    loao_predictions,
    observed_shape,
    run_shape,
    shape_setting,
)
from gmg.experiments.plots.style import pyplot
from gmg.experiments.population import population
from gmg.training.errors import UserError


def machine_line() -> str:
    from gmg.training.runtime import machine

    m = machine()
    return f"{m['cores']}-core {m['cpu']}, torch {m['torch']}"


def load_or_run(spec: str, run_dir: Path, n_levels: int, reuse: bool) -> dict:
    folder = run_dir / "analysis"
    agents = population(spec)
    if reuse and (folder / "shape_agents.csv").is_file():
        per_agent = pd.read_csv(folder / "shape_agents.csv")
        if int(per_agent["n_levels"].iloc[0]) != n_levels:
            raise UserError(f"{folder} holds a shape study on {per_agent['n_levels'].iloc[0]} levels, not {n_levels}: "
                            "drop --reuse to probe again")
        probes = pd.read_csv(folder / "shape_probes.csv")
        observed = observed_shape(run_dir, agents.trained_on.goal)
        scores = across_agents(per_agent.drop(columns=["observed"], errors="ignore"), observed)
        return {"probes": probes, "per_agent": per_agent, "scores": scores.assign(setting=shape_setting(
            agents.trained_on.goal)), "setting": shape_setting(agents.trained_on.goal)}
    t0 = time.perf_counter()
    out = run_shape(agents, run_dir, n_levels, progress=lambda m: print(m, flush=True))
    print(f"{spec}: {time.perf_counter() - t0:.0f} s", flush=True)
    if out["scores"] is None:
        raise UserError(f"{run_dir} lacks {out['setting']}: run `gmg evaluate --settings {out['setting']} "
                        f"--run-dir {run_dir}` first")
    return out


def layer_panel(ax, probes: pd.DataFrame, metric: str, title: str) -> None:
    """Per layer: the agents' median and 95% range (over agents), each random network."""
    layers = probes.sort_values("layer_index").drop_duplicates("layer")["layer"].tolist()
    x = np.arange(len(layers))
    trained = probes[probes["network"] == "trained"].pivot_table(index="agent", columns="layer", values=metric)[layers]
    lo, med, hi = (trained.quantile(q).to_numpy() for q in (0.025, 0.5, 0.975))
    ax.fill_between(x, lo, hi, color="tab:blue", alpha=0.25, label="agents, 95% range")
    ax.plot(x, med, "-o", color="tab:blue", ms=3, label="agents, median")
    if metric == "accuracy":  # the Wilson interval of one agent's accuracy, at the median agent
        ci = probes[probes["network"] == "trained"].groupby("layer")[["ci_low", "ci_high"]].median().reindex(layers)
        ax.errorbar(x, med, yerr=[med - ci["ci_low"], ci["ci_high"] - med], fmt="none", color="tab:blue", lw=0.8)
    rand = probes[probes["network"] == "random"]
    for i, (seed, d) in enumerate(rand.groupby("agent")):
        ax.plot(x, d.set_index("layer")[metric].reindex(layers).to_numpy(), "--", color="0.4", lw=1,
                label="random networks" if i == 0 else None)
    ax.set_xticks(x, [la.replace("blocks.", "b").replace(".hook_", ".").replace("hook_", "") for la in layers],
                  rotation=70, fontsize=6)
    ax.set_ylabel(f"held-out {metric}")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6)


def scatter_panel(ax, per_agent: pd.DataFrame, scores: pd.DataFrame, setting: str, predictor: str = "shape_pull"):
    d = per_agent.dropna(subset=[predictor, "observed"])
    s = scores.set_index("predictor").loc[predictor]
    pred = loao_predictions(d[predictor], d["observed"])
    ax.scatter(d[predictor], d["observed"], s=14, color="tab:blue", label="observed")
    ax.scatter(d[predictor], pred, s=8, marker="x", color="tab:red", label="leave-one-agent-out fit")
    ax.set_xlabel("shape pull, b_line - b_gem (policy readout)")
    ax.set_ylabel(f"P(line first), {setting}")
    ax.set_title(f"R² {s['r2']:.2f} [{s['r2_lo']:.2f}, {s['r2_hi']:.2f}], Spearman {s['spearman']:.2f} "
                 f"[{s['spearman_lo']:.2f}, {s['spearman_hi']:.2f}], {int(s['n'])} agents", fontsize=7)
    ax.legend(fontsize=6)


def figure(results: dict[str, dict], path: Path, command: str, n_levels: int) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(len(results), 3, figsize=(14, 4.2 * len(results)), squeeze=False)
    for row, (name, r) in zip(axes, results.items()):
        layer_panel(row[0], r["probes"], "accuracy", f"{name}: line or gem at the object's cell, {n_levels} levels x 2 "
                    "frames, 5-fold held-out levels")
        layer_panel(row[1], r["probes"], "bits", f"{name}: the same probe in held-out bits (1 - log loss / ln 2)")
        scatter_panel(row[2], r["per_agent"], r["scores"], r["setting"])
    fig.suptitle(f"`{command}` ({machine_line()})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--population", action="append", required=True, metavar="AGENTS=RUN_DIR",
                    help="agents (zoo:NAME, a run or an agent folder) and the run directory holding its shape contest")
    ap.add_argument("--n-levels", type=int, default=300)
    ap.add_argument("--reuse", action="store_true", help="read RUN/analysis/shape_*.csv instead of probing again")
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args(argv)
    results = {}
    for item in args.population:
        spec, sep, run = item.partition("=")
        if not sep:
            raise UserError(f"--population takes AGENTS=RUN_DIR, got {item!r}")
        results[spec.removeprefix("zoo:")] = load_or_run(spec, Path(run), args.n_levels, args.reuse)
    args.out.mkdir(parents=True, exist_ok=True)
    tables = {k: pd.concat([r[k].assign(population=name) for name, r in results.items()], ignore_index=True)
              for k in ("probes", "per_agent", "scores")}
    tables["probes"].to_csv(args.out / "shape-probes.csv", index=False, float_format="%.4f")
    tables["per_agent"].to_csv(args.out / "shape-agents.csv", index=False, float_format="%.4f")
    tables["scores"].to_csv(args.out / "shape-scores.csv", index=False, float_format="%.3f")
    command = "python scripts/shape_probes.py " + " ".join(f"--population {p}" for p in args.population)
    figure(results, args.out / "shape-probes.png", command + f" --n-levels {args.n_levels}", args.n_levels)
    print(tables["scores"][["population", "predictor", "n", "r2", "r2_lo", "r2_hi", "spearman", "spearman_lo",
                            "spearman_hi"]].to_string(index=False, float_format="%.3f"))
    print(f"{platform.python_version()} on {machine_line()}; predictors: {', '.join(PREDICTORS)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
