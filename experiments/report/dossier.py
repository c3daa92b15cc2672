"""The one-page dossier of one agent: why is this seed different?

``explain(agent_id, run_dir)`` writes ``run_dir/dossiers/agent-XXXX/index.html`` with:
its preference and capability in every setting against the population's percentiles;
its channel-reliance profile and probe profile (when those stages ran); the action it
takes from every free cell of a maze, drawn as arrows over the frame it sees (training
objects, the same seeing only green, and the setting where it is most unusual;
``gmg.experiments.vfield``); its expected visits per cell on one level, clean and seeing only
green, from its exact Markov chain (``vfield.expected_visits``); rollout GIFs when
``gmg.experiments.rollout`` provides them; its channel pulls, shape preference and how it mixes
channels (``gmg.experiments.report.channels``). Only ``episodes`` is required: everything else is
skipped with a note saying which ``gmg`` verb would add it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gmg.experiments.plots.style import pyplot
from gmg.training.errors import UserError


def dossier_dir(run_dir: str | Path, agent_id: int) -> Path:
    return Path(run_dir) / "dossiers" / f"agent-{int(agent_id):04d}"


# ------------------------------------------------------------------ percentiles
def plot_percentiles(matrix: pd.DataFrame, agent_id, path: str | Path) -> Path:
    """Per setting: the population's 5-95% and 25-75% ranges, its median, and this agent.

    ``matrix``: agents x (setting, metric) with metrics ``preference`` and ``capability``.
    """
    plt = pyplot()
    metrics = [m for m in ("preference", "capability") if m in matrix.columns.get_level_values("metric")]
    settings = list(dict.fromkeys(matrix.columns.get_level_values("setting")))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 0.32 * len(settings) + 1.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for i, s in enumerate(settings):
            if (s, metric) not in matrix.columns:
                continue
            col = matrix[(s, metric)].dropna()
            if col.empty:
                continue
            q = np.percentile(col, [5, 25, 50, 75, 95])
            ax.plot([q[0], q[4]], [i, i], color="0.75", lw=6, solid_capstyle="butt")
            ax.plot([q[1], q[3]], [i, i], color="0.5", lw=6, solid_capstyle="butt")
            ax.plot(q[2], i, "|", color="k", ms=10)
            v = matrix.loc[agent_id, (s, metric)]
            if pd.notna(v):
                pct = (col < v).mean() * 100
                ax.plot(v, i, "o", color="tab:red", ms=6)
                ax.annotate(f"{pct:.0f}%", (v, i), xytext=(6, 3), textcoords="offset points", fontsize=7, color="tab:red")
        ax.set_yticks(range(len(settings)), settings, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(metric + (" (mean steps, lower = more capable)" if metric == "capability" else " for obj1"))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_title(f"agent {agent_id} (red) vs population: 5-95%, 25-75%, median", fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_profile(table: pd.DataFrame, agent_id, columns: list[str], path: str | Path, title: str,
                 agent_col: str = "agent") -> Path:
    """Bars of this agent's values of ``columns`` against the population's 10/50/90 percentiles."""
    plt = pyplot()
    pop = table[columns].astype(float)
    mine = table.loc[table[agent_col] == agent_id, columns].astype(float).mean()
    x = np.arange(len(columns))
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(columns) + 2), 3.4))
    q = pop.quantile([0.1, 0.5, 0.9])
    ax.bar(x, mine.to_numpy(), color="tab:red", alpha=0.8, label=f"agent {agent_id}")
    ax.errorbar(x, q.loc[0.5], yerr=[q.loc[0.5] - q.loc[0.1], q.loc[0.9] - q.loc[0.5]], fmt="_", color="k",
                capsize=3, label="population median, 10-90%")
    ax.set_xticks(x, columns, rotation=60, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def reliance_columns(reliance: pd.DataFrame) -> list[str]:
    """The reliance columns worth a glance: efficiencies per condition, shares, the summary score."""
    cols = [c for c in reliance.columns if str(c).endswith("_efficiency")]
    cols += [c for c in reliance.columns if str(c).startswith(("attr_share_", "tv_share_"))]
    cols += [c for c in reliance.columns if str(c) == "green_vs_red"]
    if not cols:
        cols = [c for c in reliance.columns if c != "agent" and pd.api.types.is_numeric_dtype(reliance[c])]
    return cols


def plot_probe_profile(probes: pd.DataFrame, agent_id, path: str | Path, agent_col: str = "agent",
                       object_col: str = "object", layer_col: str = "layer", value_col: str = "accuracy") -> Path:
    """Probe accuracy per layer for each object: this agent (solid) vs the population median (dashed)."""
    plt = pyplot()
    layers = list(dict.fromkeys(probes[layer_col]))
    fig, ax = plt.subplots(figsize=(6, 3.4))
    objects = list(dict.fromkeys(probes[object_col])) if object_col in probes.columns else [None]
    for i, obj in enumerate(objects):
        d = probes if obj is None else probes[probes[object_col] == obj]
        med = d.groupby(layer_col)[value_col].median().reindex(layers)
        mine = d[d[agent_col] == agent_id].groupby(layer_col)[value_col].mean().reindex(layers)
        color = f"C{i % 10}"
        ax.plot(range(len(layers)), mine.to_numpy(), "-o", color=color, ms=3, label=str(obj))
        ax.plot(range(len(layers)), med.to_numpy(), "--", color=color, alpha=0.6)
    ax.set_xticks(range(len(layers)), [str(x) for x in layers], rotation=60, ha="right", fontsize=6)
    ax.set_ylabel(value_col)
    ax.set_title(f"probe {value_col}: agent {agent_id} (solid) vs population median (dashed)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# ------------------------------------------------------------------ the page
def _reliance_figure(rel: pd.DataFrame, agent_id: int, path: Path) -> Path:
    """``gmg.experiments.plots.interp``'s profile when the table has its columns, else a generic one."""
    try:
        from gmg.experiments.plots.interp import plot_reliance_bars

        return Path(plot_reliance_bars(rel[rel["agent"] == agent_id].iloc[0], path))
    except (ImportError, KeyError):
        return plot_profile(rel, agent_id, reliance_columns(rel), path, "channel reliance")


def _probe_figure(pr: pd.DataFrame, agent_id: int, path: Path) -> Path:
    """``gmg.experiments.plots.probes``'s agent profile when the table has its columns, else a generic one."""
    from gmg.experiments.analysis.regression import probe_rows

    try:
        from gmg.experiments.plots.probes import plot_agent_profile

        fig = plot_agent_profile(pr, agent_id, path=path)
        pyplot().close(fig)
        return Path(path)
    except (ImportError, KeyError, UserError):
        return plot_probe_profile(probe_rows(pr), agent_id, path)


def _unusual_setting(matrix: pd.DataFrame, agent_id) -> str | None:
    from gmg.experiments.analysis.outliers import robust_z

    if "preference" not in matrix.columns.get_level_values("metric"):
        return None
    z = robust_z(matrix.xs("preference", axis=1, level="metric").astype(float))
    row = z.loc[agent_id].abs().dropna()
    return None if row.empty else str(row.idxmax())


def _rollout_gifs(ref, settings: list[str], out: Path, device) -> tuple[list[Path], str | None]:
    """GIFs of the agent's first evaluation level in each setting (``gmg.experiments.rollout``)."""
    from gmg.experiments.rollout import rollout
    from gmg.experiments.settings import file_stem

    paths = []
    for s in settings:
        try:
            path, _ = rollout(ref, s, out / f"rollout-{file_stem(s)}.gif", device=device)
            paths.append(Path(path))
        except UserError as e:  # a GIF is a bonus: never lose the dossier for it
            return paths, f"rollout GIF for {s} skipped: {e}"
    return paths, None


def explain(agent_id: int, run_dir: str | Path, agents=None,
            device: torch.device | str = "cpu", level_id: int | None = None,
            metrics: pd.DataFrame | None = None) -> Path:
    """Write the dossier of ``agent_id`` and return the path of its ``index.html``.

    ``agents``: the population (or its spec; default: the run's, ``population_of_run``). Raises UserError when the run has no evaluation or the agent is not
    in it; missing reliance/probes/agent weights only leave notes on the page. ``metrics``:
    the output of ``rundir.population_metrics`` if already computed.
    """
    from gmg.experiments.analysis.outliers import explain_outliers, feature_matrix
    from gmg.experiments.rundir import has_stage, population_metrics, read_stage

    run_dir = Path(run_dir)
    agent_id = int(agent_id)
    if metrics is None:
        metrics = population_metrics(read_stage(run_dir, "episodes"))
    matrix = feature_matrix(metrics)
    if agent_id not in matrix.index:
        ids = list(matrix.index)
        raise UserError(f"agent {agent_id} is not in the evaluated population of {run_dir} "
                       f"(ids {ids[:10]}{'...' if len(ids) > 10 else ''}); evaluate it with `gmg evaluate`")
    out = dossier_dir(run_dir, agent_id)
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, str]] = []
    notes: list[str] = []
    figures.append((plot_percentiles(matrix, agent_id, out / "percentiles.png").name,
                    "preference and capability in every setting against the population"))
    z = explain_outliers(matrix, [agent_id], k=5)

    if has_stage(run_dir, "reliance"):
        rel = read_stage(run_dir, "reliance")
        if (rel["agent"] == agent_id).any():
            figures.append((_reliance_figure(rel, agent_id, out / "reliance.png").name, "channel reliance profile"))
        else:
            notes.append(f"no reliance row for this agent: run `gmg reliance --run-dir {run_dir}`")
    else:
        notes.append(f"channel reliance not measured yet: run `gmg reliance --run-dir {run_dir}`")
    if has_stage(run_dir, "probes"):
        pr = read_stage(run_dir, "probes")
        if "agent" in pr.columns and (pr["agent"] == agent_id).any() and "accuracy" in pr.columns and "layer" in pr.columns:
            figures.append((_probe_figure(pr, agent_id, out / "probes.png").name, "probe profile"))
        else:
            notes.append(f"no probe results for this agent: run `gmg probe --run-dir {run_dir}`")
    else:
        notes.append(f"probes not fitted yet: run `gmg probe --run-dir {run_dir}`")

    explained = _channel_model_table(run_dir, agent_id) if has_stage(run_dir, "predictions") else None
    if explained is None:
        notes.append(f"channel model not run yet: run `gmg predict --run-dir {run_dir}`")

    from gmg.experiments.population import population_of_run

    spec = agents if isinstance(agents, (str, Path)) else "AGENTS"
    try:
        agents = population_of_run(run_dir, agents)
        if agents is None:
            raise UserError(f"no agent folders found for {run_dir}; pass --agents")
        ref = agents.select([agent_id])[0]
        model = ref.load(device)
    except UserError as e:
        ref, model = None, None
        notes.append(f"policy maps skipped: {e}")
    if model is not None:
        _policy_figures(ref, model, matrix, agent_id, out, device, level_id, figures, notes)

    from gmg.experiments.report.channels import channel_section

    trained = getattr(agents, "trained_on", None)
    channels = channel_section(run_dir, agent_id, trained.goal if trained else "yellow_line", metrics, out, str(spec))
    page = _page(agent_id, run_dir, figures, z, notes, explained, channels)
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _policy_figures(ref, model, matrix, agent_id: int, out: Path, device, level_id: int | None,
                    figures: list, notes: list) -> None:
    """The agent's vector fields, occupancy heat map and rollout GIF (appended to ``figures``/``notes``)."""
    from gmg.experiments.settings import parse_setting, setting_of

    trained = ref.trained_on
    world, size, bg = trained.world_dim, trained.size, trained.background
    maps = [("training objects", (trained.goal,), bg)]
    unusual = _unusual_setting(matrix, agent_id)
    if unusual is not None:
        try:
            s = parse_setting(unusual)
            maps.append((f"most unusual setting {s.name}", s.objects, s.background))
        except UserError:
            pass
    from gmg.experiments.vfield import expected_visits, level_frames, moves, plot_fields, plot_occupancy
    from gmg.interp.interventions import parse_intervention
    from gmg.training.env import evaluation_start

    level = 0 if level_id is None else int(level_id) - evaluation_start(trained.levels)
    isolate_g = parse_intervention("isolate:g")
    heat = []
    for i, (label, objects, background) in enumerate(maps):
        setting = setting_of(objects, background)
        view = level_frames(setting, level, world, size, device=device, levels=trained.levels, render=trained.render)
        clean = {agent_id: moves(model, view)}
        figures.append((plot_fields(view, clean, out / f"policy-{i}.png", f"{label}:\n{' vs '.join(objects)}").name,
                        f"most probable move from every cell ({label})"))
        if i == 0:  # the same field seeing only green: which moves depend on R and B
            edited = {agent_id: moves(model, view, isolate_g)}
            figures.append((plot_fields(view, edited, out / "policy-isolate_g.png",
                                        f"{label} under isolate:g", base=clean).name,
                            f"most probable move seeing only the green channel ({label}); changed moves in red"))
        heat += [(view, expected_visits(model, view), f"{' vs '.join(objects)}"),
                 (view, expected_visits(model, view, isolate_g), f"{' vs '.join(objects)}, isolate:g")]
    figures.append((plot_occupancy(heat, out / "occupancy.png", f"agent {agent_id}, level {level}: expected "
                                   "visits per cell (exact; start cell dashed)", panel_inches=2.2).name,
                    "where the agent goes: its expected visits per cell on one level, clean and seeing only "
                    "the green channel (its exact Markov chain, not a sample)"))
    gifs, note = _rollout_gifs(ref, [unusual] if unusual else [], out, device)
    figures += [(p.name, f"rollout {p.stem}") for p in gifs]
    if note:
        notes.append(note)


def _channel_model_table(run_dir: Path, agent_id: int) -> tuple[str, str] | None:
    """(sentence, HTML table) of what the channel model predicts for this agent in each setting
    against what it did, with its pulls; None if the model has no row for it."""
    from gmg.experiments.analysis.predict import shown_model
    from gmg.experiments.rundir import read_stage

    pred = read_stage(run_dir, "predictions")
    model = shown_model(pred)
    miss = (pred["observed"] - pred[model]).abs().groupby(pred["agent"]).mean().sort_values(ascending=False)
    if agent_id not in miss.index:
        return None
    rank = int(list(miss.index).index(agent_id)) + 1
    mine = pred[pred["agent"] == agent_id][["setting", "observed", model]].rename(columns={model: "predicted"})
    mine = mine.assign(residual=mine["observed"] - mine["predicted"]).sort_values("residual", key=abs, ascending=False)
    sentence = (f"The {model} model, from this agent's single-object profile, misses its preferences by "
                f"{miss[agent_id]:.3f} on average: rank {rank} of {len(miss)} (1 = explained worst; the population's "
                f"median is {miss.median():.3f}).")
    prof_path = run_dir / "analysis" / "predict_profile.csv"
    if prof_path.is_file():
        prof = pd.read_csv(prof_path)
        pulls = [c for c in prof.columns if c.startswith("b_") or c == "b0"]
        if pulls and (prof["agent"] == agent_id).any():
            row = prof.set_index("agent").loc[agent_id, pulls]
            sentence += " Its pulls (walk model, toward each object alone): " + ", ".join(
                f"{c[2:] if c != 'b0' else 'invisible'} {v:.2f}" for c, v in row.items()) + "."
    return sentence, mine.to_html(index=False, float_format="%.3f", border=0)


def _page(agent_id: int, run_dir: Path, figures: list[tuple[str, str]], z: pd.DataFrame, notes: list[str],
          explained: tuple[str, str] | None = None, channels: dict | None = None) -> str:
    import jinja2

    template = jinja2.Environment(autoescape=True).from_string(DOSSIER_TEMPLATE)
    table = z[["setting", "metric", "value", "median", "z"]].to_html(index=False, float_format="%.3f", border=0)
    return template.render(agent=agent_id, run=run_dir.name, figures=figures, table=table, notes=notes,
                           explained=explained, channels=channels)


DOSSIER_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gmg dossier: agent {{ agent }}</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}figure{display:inline-block;margin:6px;vertical-align:top}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #eee}
.note{color:#8a5a00}</style></head><body>
<h1>Agent {{ agent }}</h1><p>run <code>{{ run }}</code></p>
<h2>What makes it unusual (robust z against the population)</h2>{{ table|safe }}
{% if explained %}<h2>What the channel model explains</h2><p>{{ explained[0] }}</p>{{ explained[1]|safe }}{% endif %}
{% if channels %}<h2 id="channels">Channels, shape and mixing</h2>{% for s in channels.sentences %}<p>{{ s }}</p>{% endfor %}
{% if channels.figure %}<figure><img src="{{ channels.figure }}" alt="channels, shape and mixing"><figcaption>pulls
against the population (10-90%), mixed colours between the channel rules, shape preference against the shape readout
</figcaption></figure>{% endif %}{% for n in channels.notes %}<p class="note">{{ n }}</p>{% endfor %}{% endif %}
{% for src, caption in figures %}<figure><img src="{{ src }}" alt="{{ caption }}"><figcaption>{{ caption }}</figcaption></figure>
{% endfor %}
{% if notes %}<h2>Not shown</h2><ul>{% for n in notes %}<li class="note">{{ n }}</li>{% endfor %}</ul>{% endif %}
</body></html>
"""


def dossier_files(path: Path) -> list[Path]:
    """The images of a written dossier (for the report to copy)."""
    return sorted(p for p in Path(path).parent.iterdir() if p.suffix in (".png", ".gif"))

