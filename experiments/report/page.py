"""One static HTML page for a run: ``run_dir/report/index.html`` with its images beside it.

Sections, each rendered from whatever the run holds: training curves (``train.csv`` of
the agents), setting scatters (``episodes``), channel reliance (``reliance``), probes
(``probes``), regression, outliers, and the dossiers of the top outliers. A section
whose stage has not run says so and names the ``gmg`` verb to run. PNGs that other
verbs left in ``run_dir/plots/`` are picked up by their name prefix
(:data:`PLOT_PREFIXES`); every image is copied into ``run_dir/report/img/`` so the
report folder is self-contained.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gmg.experiments.plots.style import pyplot
from gmg.experiments.plots.training import plot_training
from gmg.experiments.population import Population, population_of_run
from gmg.training.errors import UserError

# which PNGs of run_dir/plots/ belong to which section (by file-name prefix)
PLOT_PREFIXES = {
    "training": ("train",),
    "scatters": ("scatter", "setting", "preference", "capability", "eval", "matrix"),
    "reliance": ("reliance", "attribution", "channel"),
    "probes": ("probe",),
    "regression": ("regress",),
    "outliers": ("outlier",),
}


@dataclass
class Section:
    """One block of the page: images (src relative to the page, caption), HTML tables, notes."""

    key: str
    title: str
    missing: str | None = None  # "not run yet: run `gmg X`" when the stage is absent
    images: list[tuple[str, str]] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)  # (caption, html)
    notes: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    items: list[tuple[str, str]] = field(default_factory=list)  # (sentence, href of its figure)
    figures: list = field(default_factory=list)  # interactive figures (``report.interactive.Figure``)


def _html_table(df: pd.DataFrame, max_rows: int = 20, index: bool = False) -> str:
    return df.head(max_rows).to_html(index=index, float_format=lambda v: f"{v:.3g}", border=0, na_rep="–")


class _Images:
    """Copies images into ``report/img/`` under unique names; returns their page-relative src."""

    def __init__(self, report_dir: Path):
        self.dir = report_dir / "img"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.used: set[str] = set()

    def add(self, src: Path, name: str | None = None) -> str:
        name = name or src.name
        stem, suffix = Path(name).stem, Path(name).suffix
        i = 1
        while name in self.used:
            i += 1
            name = f"{stem}-{i}{suffix}"
        self.used.add(name)
        if src.resolve() != (self.dir / name).resolve():
            shutil.copyfile(src, self.dir / name)
        return f"img/{name}"

    def path(self, name: str) -> Path:
        """A fresh path inside img/ for a figure the report draws itself."""
        return self.dir / name


def _plots(run_dir: Path, key: str, claimed: set[Path]) -> list[Path]:
    folder = run_dir / "plots"
    if not folder.is_dir():
        return []
    out = [p for p in sorted(folder.glob("*.png")) if p.name.lower().startswith(PLOT_PREFIXES[key]) and p not in claimed]
    claimed.update(out)
    return out


def plot_reliance(rel: pd.DataFrame, path: Path) -> Path | None:
    """Boxplots of path efficiency under each channel condition, and the summary score."""
    eff = [c for c in rel.columns if str(c).endswith("_efficiency")]
    if not eff:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    axes[0].boxplot([rel[c].dropna() for c in eff], tick_labels=[c.replace("_efficiency", "") for c in eff])
    axes[0].set_ylabel("path efficiency")
    axes[0].tick_params(axis="x", labelsize=7, rotation=30)
    if "green_vs_red" in rel:
        axes[1].hist(rel["green_vs_red"].dropna(), bins=20, range=(-1, 1), color="tab:green")
        axes[1].set_xlabel("green_vs_red reliance")
    else:
        axes[1].set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_probes(probes: pd.DataFrame, path: Path, layer_col: str = "layer", object_col: str = "object",
                value_col: str = "accuracy") -> Path | None:
    """Median probe accuracy per layer (10-90% band across agents), one line per object."""
    if not {layer_col, value_col} <= set(probes.columns):
        return None
    plt = pyplot()
    layers = list(dict.fromkeys(probes[layer_col]))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    objects = list(dict.fromkeys(probes[object_col])) if object_col in probes else [None]
    for i, obj in enumerate(objects):
        d = probes if obj is None else probes[probes[object_col] == obj]
        q = d.groupby(layer_col)[value_col].quantile([0.1, 0.5, 0.9]).unstack().reindex(layers)
        x = np.arange(len(layers))
        ax.plot(x, q[0.5], "-o", ms=3, color=f"C{i % 10}", label=str(obj))
        ax.fill_between(x, q[0.1], q[0.9], color=f"C{i % 10}", alpha=0.15)
    ax.set_xticks(range(len(layers)), [str(v) for v in layers], rotation=60, ha="right", fontsize=6)
    ax.set_ylabel(value_col)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _probe_bands(probes: pd.DataFrame, path: Path) -> Path | None:
    """``gmg.experiments.plots.probes``'s population bands when the table has its columns, else :func:`plot_probes`."""
    from gmg.experiments.analysis.regression import probe_rows

    try:
        from gmg.experiments.plots.probes import plot_population_bands

        fig = plot_population_bands(probes, path=path)
        pyplot().close(fig)
        return path
    except (ImportError, KeyError, UserError):
        return plot_probes(probe_rows(probes), path)


# ------------------------------------------------------------------ the report
def build_report(run_dir: str | Path, agents: Population | str | Path | list | None = None, top: int = 3,
                 device: str = "cpu", seed: int = 0) -> Path:
    """Write ``run_dir/report/index.html`` (and ``report/img/``); return its path.

    Runs the regression and outlier analyses when their inputs exist (writing their CSVs
    and plots as ``gmg regress`` / ``gmg outliers`` do) and the dossiers of the ``top``
    outliers. Never fails for a missing stage: that section names the verb to run.
    """
    from gmg.experiments.analysis.outliers import run_outliers
    from gmg.experiments.analysis.regression import run_regressions
    from gmg.experiments.report.dossier import dossier_files, explain
    from gmg.experiments.rundir import MissingStage, has_stage, population_metrics, read_stage

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no run directory {run_dir}: run `gmg train` or `gmg evaluate --run-dir {run_dir}` first")
    report_dir = run_dir / "report"
    if (report_dir / "img").is_dir():
        shutil.rmtree(report_dir / "img")  # stale images of an earlier report
    images = _Images(report_dir)
    claimed: set[Path] = set()
    sections = []

    # training curves
    s = Section("training", "Training curves")
    agents = population_of_run(run_dir, agents)
    png = plot_training(agents.paths, images.path("training_curves.png")) if agents is not None else None
    if png:
        s.images.append((images.add(png), f"episode length and success of {len(agents)} agents during training"))
    else:
        s.missing = "not run yet: run `gmg train` (no train.csv found in the agents' folders)"
    sections.append(s)

    # scatters
    metrics = None
    s = Section("scatters", "Settings: preference vs capability")
    if has_stage(run_dir, "episodes"):
        try:
            metrics = population_metrics(read_stage(run_dir, "episodes"))
        except MissingStage as e:  # e.g. only intervention episodes so far
            s.missing = str(e)
    else:
        s.missing = f"not run yet: run `gmg evaluate --run-dir {run_dir}`"
    if metrics is not None:
        summary = metrics.groupby("setting")[["preference", "capability"]].median().reset_index()
        s.tables.append(("population medians per setting", _html_table(summary, 40)))
        s.links.append(_table_csv(metrics, report_dir, "metrics"))
    sections.append(s)

    # reliance
    s = Section("reliance", "Channel reliance")
    if has_stage(run_dir, "reliance"):
        rel = read_stage(run_dir, "reliance")
        png = plot_reliance(rel, images.path("reliance_summary.png"))
        if png:
            s.images.append((images.add(png), "path efficiency under each channel condition; summary score"))
        cols = [c for c in ("agent", "green_vs_red", "drop_r", "drop_g", "drop_b", "attr_share_r", "attr_share_g",
                            "attr_share_b") if c in rel.columns]
        s.tables.append(("per agent (first 20)", _html_table(rel[cols] if cols else rel)))
        s.links.append(_table_csv(rel, report_dir, "reliance"))
    else:
        s.missing = f"not run yet: run `gmg reliance --run-dir {run_dir}`"
    sections.append(s)

    # probes
    s = Section("probes", "Probes")
    if has_stage(run_dir, "probes"):
        pr = read_stage(run_dir, "probes")
        png = _probe_bands(pr, images.path("probes_summary.png"))
        if png:
            s.images.append((images.add(png), "probe accuracy per layer across agents"))
        png = plot_probe_heatmap(pr, images.path("probes_heatmap.png"))
        if png:
            s.images.append((images.add(png), "median accuracy (and selectivity over the random-network control) "
                                              "per object and layer"))
        s.links.append(_table_csv(pr, report_dir, "probes"))
    else:
        s.missing = f"not run yet: run `gmg probe --run-dir {run_dir}`"
    sections.append(s)

    # regression
    s = Section("regression", "Regression: does reliance predict preference?")
    regression, reg_results = None, {}
    try:
        reg = run_regressions(run_dir, metrics=metrics)
        cols = ["model", "term", "coef", "se", "ci_low", "ci_high", "p", "r2", "r2_cv", "n"]
        s.tables.append(("OLS with HC3 robust errors", _html_table(reg["table"][cols], 40)))
        regression, reg_results = reg["table"], reg["results"]
        s.links.append(_table_csv(regression, report_dir, "regression"))
        diag = pd.read_csv(run_dir / "analysis" / "regression_diagnostics.csv")
        s.tables.append(("residual diagnostics", _html_table(diag, 10)))
        s.notes += reg["notes"]
    except MissingStage as e:
        s.missing = f"not run yet: {e}"
    except UserError as e:  # e.g. too few agents for a regression
        s.missing = str(e)
    sections.append(s)

    # outliers
    s = Section("outliers", "Outliers")
    ranking, outliers = None, None
    try:
        out = outliers = run_outliers(run_dir, top=max(top, 5), seed=seed, metrics=metrics)
        ranking = out["ranking"]
        s.links.append(_table_csv(ranking.reset_index(), report_dir, "outliers"))
        s.tables.append(("combined ranking (median of per-method rank percentiles)",
                         _html_table(ranking.reset_index(), 10)))
        s.tables.append(("what makes the top ones unusual (robust z)", _html_table(out["features"], 15)))
        cap = out["capable"]
        s.tables.append(("fully capable but unusual preference (the Agent-439 kind)",
                         _html_table(cap) if len(cap) else "<p>none in this population</p>"))
        s.notes += out["notes"]
    except MissingStage as e:
        s.missing = f"not run yet: {e}"
    except UserError as e:
        s.notes.append(str(e))
    sections.append(s)

    # the channel model's predictions (gmg predict --run-dir RUN)
    worst_explained = None
    if has_stage(run_dir, "predictions"):
        s = Section("predictions", "Predicted from the channel profile vs observed")
        from gmg.experiments.analysis.predict import shown_model

        pred = read_stage(run_dir, "predictions")
        model = shown_model(pred)
        png = plot_predictions(pred, images.path("predictions.png"))
        s.images.append((images.add(png), f"each point one agent in one setting, predicted by the {model} model; "
                                          "the diagonal is a perfect prediction"))
        scores = _csv_or_empty(run_dir / "analysis" / "predict_scores.csv")
        if len(scores):
            s.tables.append(("across-agent R² per setting beside its noise ceiling (split-half, Spearman-Brown)",
                             _html_table(scores, 40)))
        worst = (pred.assign(residual=(pred["observed"] - pred[model]).abs()).groupby("agent")["residual"].mean()
                 .sort_values(ascending=False).head(5).rename("mean |observed - predicted|").reset_index())
        s.tables.append(("the agents the channel model explains worst (an Agent-439 is one of these; the worst has "
                         "a dossier below)", _html_table(worst)))
        worst_explained = int(worst["agent"].iloc[0]) if len(worst) else None
        s.links.append(_table_csv(pred, report_dir, "predictions"))
        sections.append(s)

    # populations side by side (gmg compare --run-dir RUN/compare)
    compare_dir = run_dir / "compare"
    asym = None
    if (compare_dir / "asymmetry.csv").is_file():
        s = Section("populations", "Populations side by side: the texture asymmetry")
        if (compare_dir / "populations.png").is_file():
            s.images.append((images.add(compare_dir / "populations.png", "compare_populations.png"),
                             "each population on its own training background; one point per agent"))
        asym = _csv_or_empty(compare_dir / "asymmetry.csv")
        if len(asym):
            s.tables.append(("mean preference for the green line minus the red line (each vs the yellow gem), "
                             "bootstrap 95% CI over agents", _html_table(asym)))
            tests = _csv_or_empty(compare_dir / "asymmetry_tests.csv")
            if len(tests):
                s.tables.append(("between populations: permutation test of the difference", _html_table(tests)))
        else:
            s.notes.append("the compared settings lack green_line-vs-yellow_gem or red_line-vs-yellow_gem: no asymmetry")
        sections.append(s)

    # the anatomy of a seed (gmg anatomy --run-dir RUN)
    anatomy_dir, dec = run_dir / "anatomy", None
    if (anatomy_dir / "decomposition.csv").is_file():
        s = Section("anatomy", "The anatomy of a seed: initialisation or data order?")
        dec = _csv_or_empty(anatomy_dir / "decomposition.csv")
        cols = [c for c in ("outcome", "n_init", "n_data", "share_init", "share_init_lo", "share_init_hi", "p_init",
                            "share_data", "share_data_lo", "share_data_hi", "p_data", "share_resid") if c in dec]
        s.tables.append(("share of between-agent variance each part of the seed explains (two-way random effects; "
                         "bootstrap 95% CI over initialisations and data orders; permutation p)", _html_table(dec[cols])))
        if (anatomy_dir / "shares.png").is_file():
            s.images.append((images.add(anatomy_dir / "shares.png", "anatomy_shares.png"), "variance shares with CIs"))
        if (anatomy_dir / "commitment.png").is_file():
            s.images.append((images.add(anatomy_dir / "commitment.png", "anatomy_commitment.png"),
                             "each grid agent at its kept snapshots: when does a seed commit?"))
        commit = _csv_or_empty(anatomy_dir / "commitment.csv")
        if len(commit):
            summary = commit.groupby("outcome")["committed_at"].describe()[["count", "mean", "min", "50%", "max"]]
            s.tables.append(("fraction of training after which the final value is fixed (within ±0.05)",
                             _html_table(summary.reset_index())))
        before = _csv_or_empty(anatomy_dir / "before_training.csv")
        if len(before):
            s.tables.append(("predicted from the untrained network alone (out of sample: leave one initialisation out)",
                             _html_table(before, 20)))
        for name in ("decomposition", "commitment", "before_training", "trajectory", "outcomes"):
            if (anatomy_dir / f"{name}.csv").is_file():
                s.links.append(_table_csv(_csv_or_empty(anatomy_dir / f"{name}.csv"), report_dir, f"anatomy_{name}"))
        sections.append(s)

    # dossiers
    s = Section("dossiers", "Dossiers of the top outliers and of the agent the channel model explains worst")
    dossier_pages: dict[int, Path] = {}
    if ranking is None:
        s.missing = "no outlier ranking to take them from (see Outliers above)"
    else:
        chosen = [int(a) for a in ranking.index[:top]]
        for agent_id in chosen + ([worst_explained] if worst_explained is not None and worst_explained not in chosen
                                  else []):
            page = dossier_pages[int(agent_id)] = explain(int(agent_id), run_dir, agents, device, metrics=metrics)
            s.links.append((_rel(page, report_dir), f"agent {agent_id}"))
            for img in dossier_files(page):
                s.images.append((images.add(img, f"dossier-{int(agent_id):04d}-{img.name}"), f"agent {agent_id}: {img.stem}"))
        pairs = [x for x in dict.fromkeys(metrics["setting"]) if "-vs-" in x] if metrics is not None else []
        if agents is not None and pairs:
            from gmg.experiments.vfield import vector_fields

            try:
                top_ids = [int(a) for a in ranking.index[:top] if int(a) in agents.ids]
                fields = vector_fields(agents.select(top_ids), pairs[0], 0, run_dir / "vfield", "isolate:g",
                                       device=device)
                s.images.append((images.add(fields["clean"]), f"vector fields of the top outliers, {pairs[0]}"))
                s.images.append((images.add(fields["intervened"]), "the same under isolate:g, changed moves in red"))
            except UserError as e:
                s.notes.append(f"vector fields skipped: {e}")
    sections.append(s)

    # figures other verbs left in run_dir/plots, beside their section's results; a section
    # whose results are missing keeps saying so (its old figures go to "Other figures")
    for sec in sections:
        if sec.key in PLOT_PREFIXES and not sec.missing:
            for png in _plots(run_dir, sec.key, claimed):
                sec.images.append((images.add(png), png.stem.replace("_", " ")))
    rest = [p for p in sorted((run_dir / "plots").glob("*.png")) if p not in claimed] if (run_dir / "plots").is_dir() else []
    if rest:
        sections.append(Section("other", "Other figures", images=[(images.add(p), p.stem) for p in rest]))

    # interactive figures, now that the dossiers they link to exist
    from gmg.experiments.report import interactive

    by_key = {sec.key: sec for sec in sections}
    links = {int(a): _rel(p, report_dir) for a, p in dossier_pages.items()}
    bundle = None
    for key, make in (("scatters", lambda: interactive.scatter_figure(metrics, links, report_dir) if metrics is not None else None),
                      ("regression", lambda: interactive.regression_figure(reg_results, links, report_dir)),
                      ("outliers", lambda: interactive.outlier_figure(ranking, outliers["features"] if outliers else None,
                                                                      links, report_dir))):
        fig = make()
        if fig is not None:
            by_key[key].figures.append(fig)
            bundle = interactive.write_bundle(report_dir)

    # findings first: sentences computed from the data above, each linked to its figure
    from gmg.experiments.report.findings import findings

    scores = _csv_or_empty(run_dir / "analysis" / "predict_scores.csv")
    found = findings(metrics, regression, outliers, asym, dec, scores if len(scores) else None)
    sections.insert(0, Section("findings", "Findings", items=[(f.text, f.href) for f in found],
                               missing=None if found else "nothing to report yet: run `gmg evaluate` first"))

    path = report_dir / "index.html"
    path.write_text(render(sections, run_dir.name, bundle), encoding="utf-8")
    return path


def _table_csv(df: pd.DataFrame, report_dir: Path, name: str) -> tuple[str, str]:
    """Write the whole table as ``report/tables/NAME.csv``; a (href, text) link to it."""
    folder = report_dir / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / f"{name}.csv", index=False)
    return f"tables/{name}.csv", f"{name}.csv ({len(df)} rows)"


def text_colour_on(im, value: float) -> str:
    """Black or white, whichever reads on the colour ``im`` gives ``value`` (by its luminance)."""
    r, g, b, _ = im.cmap(im.norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def plot_probe_heatmap(probes: pd.DataFrame, path: Path, probe: str = "cell_logistic") -> Path | None:
    """Median accuracy across agents per object (rows) and layer (columns), with the
    selectivity over the random-network control where the table has it."""
    from gmg.experiments.analysis.regression import probe_rows
    from gmg.experiments.plots.style import save_figure

    d = probe_rows(probes, probe)
    if not {"object", "layer", "accuracy"} <= set(d.columns) or d.empty:
        return None
    layers = list(dict.fromkeys(d["layer"]))
    panels = ["accuracy"] + [next(c for c in ("selectivity_random", "selectivity") if c in d.columns)] \
        if {"selectivity_random", "selectivity"} & set(d.columns) else ["accuracy"]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(0.9 * len(layers) * len(panels) + 2, 0.45 * d["object"].nunique() + 1.6),
                             squeeze=False)
    for ax, col in zip(axes[0], panels):
        grid = d.pivot_table(index="object", columns="layer", values=col, aggfunc="median").reindex(columns=layers)
        im = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis" if col == "accuracy" else "RdBu", aspect="auto",
                       vmin=0 if col == "accuracy" else -1, vmax=1)
        ax.set_xticks(range(len(layers)), [str(x).replace("blocks.", "b").replace(".hook_", ".") for x in layers],
                      rotation=60, fontsize=7)
        ax.set_yticks(range(len(grid.index)), list(grid.index), fontsize=8)
        for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color=text_colour_on(im, v))
        what = {"selectivity_random": "accuracy minus a random network's", "selectivity": "accuracy minus shuffled labels'"}
        ax.set_title(f"{probe}: median {what.get(col, col)} across agents", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_predictions(pred: pd.DataFrame, path: Path) -> Path:
    """Observed vs predicted preference (``predict.shown_model``), coloured by setting."""
    from gmg.experiments.analysis.predict import shown_model
    from gmg.experiments.plots.style import save_figure

    model = shown_model(pred)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    colours = plt.get_cmap("tab20")  # up to 20 settings, each its own colour
    for i, (setting, d) in enumerate(pred.groupby("setting", sort=False)):
        ax.scatter(d[model], d["observed"], s=12, label=setting, alpha=0.8, color=colours(i % 20))
    ax.plot([0, 1], [0, 1], color="k", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"predicted preference (channel profile, {model} model)")
    ax.set_ylabel("observed preference")
    ax.legend(fontsize=6, loc="upper left")
    return save_figure(fig, path)


def _csv_or_empty(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def _rel(target: Path, start: Path) -> str:
    import os

    return Path(os.path.relpath(target, start)).as_posix()


def render(sections: list[Section], title: str, bundle: str | None = None) -> str:
    """The page's HTML from the package's Jinja2 template."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True)
    return env.get_template("template.html").render(sections=sections, title=title, bundle=bundle)
