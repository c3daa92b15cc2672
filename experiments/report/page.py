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
from gmg.experiments.report.findings import findings
from gmg.experiments.rundir import MissingStage, has_stage, missing, notes_of, population_metrics, read_stage
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

    Reads the tables the stages wrote (``gmg.experiments.rundir.TABLES``) and renders them; it
    computes no analysis. A section whose table is missing shows one line naming the stage and
    the command that writes it. ``top``: dossiers of this many top outliers are shown (``gmg
    explain`` or the study's outliers stage writes them). ``device`` and ``seed`` are kept for
    the command's options; nothing here runs a model or draws a random number.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no run directory {run_dir}: run `gmg train` or `gmg evaluate --run-dir {run_dir}` first")
    report_dir = run_dir / "report"
    if (report_dir / "img").is_dir():
        shutil.rmtree(report_dir / "img")  # stale images of an earlier report
    page = _Page(run_dir, report_dir, _Images(report_dir), population_of_run(run_dir, agents))
    metrics = _scatters(page)
    for section in (_training, _reliance, _probes, _regression, _outliers, _predictions, _populations, _anatomy):
        section(page)
    _dossiers(page, top)
    _other_figures(page)
    _interactive(page, metrics)
    scores = _table_or_none(run_dir, "predict_scores")
    found = findings(metrics, page.tables.get("regression"), page.outliers, page.tables.get("asymmetry"),
                     page.tables.get("decomposition"), scores)
    page.sections.insert(0, Section("findings", "Findings", items=[(f.text, f.href) for f in found],
                                    missing=None if found else "nothing to report yet: run `gmg evaluate` first"))
    path = report_dir / "index.html"
    path.write_text(render(page.sections, run_dir.name, page.bundle), encoding="utf-8")
    return path


@dataclass
class _Page:
    """What the section builders share: where to read and write, and what they read so far."""

    run_dir: Path
    report_dir: Path
    images: "_Images"
    agents: Population | None
    sections: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)  # name -> DataFrame read, for findings and the figures
    outliers: dict | None = None
    bundle: str | None = None
    claimed: set = field(default_factory=set)
    dossier_pages: dict = field(default_factory=dict)  # agent -> its dossier's index.html

    def section(self, key: str, title: str, *tables: str) -> Section | None:
        """A new section, appended; its ``missing`` line names the first absent table's stage and command."""
        s = Section(key, title)
        absent = [t for t in tables if not has_stage(self.run_dir, t)]
        if absent:
            s.missing = f"not run yet: {missing(self.run_dir, absent[0])}"
        self.sections.append(s)
        return s

    def figure(self, s: Section, png: Path | None, caption: str) -> None:
        """Show ``png`` (a figure drawn for the page, None if there was nothing to draw) in ``s``."""
        if png:
            s.images.append((self.images.add(png), caption))

    def read(self, name: str) -> pd.DataFrame:
        self.tables[name] = read_stage(self.run_dir, name)
        return self.tables[name]


def _table_or_none(run_dir: Path, name: str) -> pd.DataFrame | None:
    return read_stage(run_dir, name) if has_stage(run_dir, name) else None


def _training(page: _Page) -> None:
    s = Section("training", "Training curves")
    png = plot_training(page.agents.paths, page.images.path("training_curves.png")) if page.agents is not None else None
    if png:
        s.images.append((page.images.add(png), f"episode length and success of {len(page.agents)} agents during training"))
    else:
        s.missing = "not run yet: run `gmg train` (no train.csv found in the agents' folders)"
    page.sections.insert(0, s)


def _scatters(page: _Page) -> pd.DataFrame | None:
    s = page.section("scatters", "Settings: preference vs capability", "episodes")
    if s.missing:
        return None
    try:
        metrics = population_metrics(page.read("episodes"))
    except MissingStage as e:  # e.g. only intervention episodes so far
        s.missing = str(e)
        return None
    summary = metrics.groupby("setting")[["preference", "capability"]].median().reset_index()
    s.tables.append(("population medians per setting", _html_table(summary, 40)))
    s.links.append(_table_csv(metrics, page.report_dir, "metrics"))
    return metrics


def _reliance(page: _Page) -> None:
    s = page.section("reliance", "Channel reliance", "reliance")
    if s.missing:
        return
    rel = page.read("reliance")
    page.figure(s, plot_reliance(rel, page.images.path("reliance_summary.png")),
                "path efficiency under each channel condition; summary score")
    cols = [c for c in ("agent", "green_vs_red", "drop_r", "drop_g", "drop_b", "attr_share_r", "attr_share_g",
                        "attr_share_b") if c in rel.columns]
    s.tables.append(("per agent (first 20)", _html_table(rel[cols] if cols else rel)))
    s.links.append(_table_csv(rel, page.report_dir, "reliance"))


def _probes(page: _Page) -> None:
    s = page.section("probes", "Probes", "probes")
    if s.missing:
        return
    pr = page.read("probes")
    page.figure(s, _probe_bands(pr, page.images.path("probes_summary.png")), "probe accuracy per layer across agents")
    page.figure(s, plot_probe_heatmap(pr, page.images.path("probes_heatmap.png")),
                "median accuracy (and selectivity over the random-network control) per object and layer")
    s.links.append(_table_csv(pr, page.report_dir, "probes"))


def _regression(page: _Page) -> None:
    s = page.section("regression", "Regression: does reliance predict preference?", "regression")
    notes = notes_of(page.run_dir, "regression_notes")
    if s.missing:
        if notes:  # the stage ran and said why nothing could be fitted
            s.missing = f"not run yet: {'; '.join(notes)}"
        return
    reg = page.read("regression")
    cols = [c for c in ("model", "term", "coef", "se", "ci_low", "ci_high", "p", "r2", "r2_cv", "n") if c in reg]
    s.tables.append(("OLS with HC3 robust errors", _html_table(reg[cols], 40)))
    s.links.append(_table_csv(reg, page.report_dir, "regression"))
    if has_stage(page.run_dir, "regression_diagnostics"):
        s.tables.append(("residual diagnostics", _html_table(page.read("regression_diagnostics"), 10)))
    s.notes += notes


def _outliers(page: _Page) -> None:
    s = page.section("outliers", "Outliers", "outliers")
    if s.missing:
        s.notes += notes_of(page.run_dir, "outlier_notes")
        return
    ranking = page.read("outliers").set_index("agent")
    features = _table_or_none(page.run_dir, "outlier_features")
    capable = _table_or_none(page.run_dir, "capable_but_unusual")
    features = features if features is not None else pd.DataFrame()
    page.outliers = {"ranking": ranking, "features": features}
    s.links.append(_table_csv(ranking.reset_index(), page.report_dir, "outliers"))
    s.tables.append(("combined ranking (median of per-method rank percentiles)", _html_table(ranking.reset_index(), 10)))
    s.tables.append(("what makes the top ones unusual (robust z)", _html_table(features, 15)))
    s.tables.append(("fully capable but unusual preference (the Agent-439 kind)",
                     _html_table(capable) if capable is not None and len(capable) else "<p>none in this population</p>"))
    s.notes += notes_of(page.run_dir, "outlier_notes")


def _predictions(page: _Page) -> None:
    """The channel model's predictions (``gmg predict --run-dir RUN``), shown when the run has them."""
    if not has_stage(page.run_dir, "predictions"):
        return
    from gmg.experiments.analysis.predict import shown_model

    s = page.section("predictions", "Predicted from the channel profile vs observed")
    pred = page.read("predictions")
    model = shown_model(pred)
    png = plot_predictions(pred, page.images.path("predictions.png"))
    s.images.append((page.images.add(png), f"each point one agent in one setting, predicted by the {model} model; "
                                           "the diagonal is a perfect prediction"))
    scores = _table_or_none(page.run_dir, "predict_scores")
    if scores is not None and len(scores):
        s.tables.append(("across-agent R² per setting beside its noise ceiling (split-half, Spearman-Brown)",
                         _html_table(scores, 40)))
    worst = (pred.assign(residual=(pred["observed"] - pred[model]).abs()).groupby("agent")["residual"].mean()
             .sort_values(ascending=False).head(5).rename("mean |observed - predicted|").reset_index())
    s.tables.append(("the agents the channel model explains worst (an Agent-439 is one of these; the worst has "
                     "a dossier below)", _html_table(worst)))
    s.links.append(_table_csv(pred, page.report_dir, "predictions"))


def _populations(page: _Page) -> None:
    """Populations side by side (``gmg compare --run-dir RUN/compare``), shown when the run has them."""
    if not has_stage(page.run_dir, "asymmetry"):
        return
    compare_dir = page.run_dir / "compare"
    s = page.section("populations", "Populations side by side: the texture asymmetry")
    if (compare_dir / "populations.png").is_file():
        s.images.append((page.images.add(compare_dir / "populations.png", "compare_populations.png"),
                         "each population on its own training background; one point per agent"))
    asym = page.read("asymmetry")
    if len(asym):
        s.tables.append(("mean preference for the green line minus the red line (each vs the yellow gem), "
                         "bootstrap 95% CI over agents", _html_table(asym)))
        tests = _table_or_none(page.run_dir, "asymmetry_tests")
        if tests is not None and len(tests):
            s.tables.append(("between populations: permutation test of the difference", _html_table(tests)))
    else:
        s.notes.append("the compared settings lack green_line-vs-yellow_gem or red_line-vs-yellow_gem: no asymmetry")


def _anatomy(page: _Page) -> None:
    """The anatomy of a seed (``gmg anatomy --run-dir RUN``), shown when the run has it."""
    if not has_stage(page.run_dir, "outcomes"):
        return
    anatomy_dir = page.run_dir / "anatomy"
    s = page.section("anatomy", "The anatomy of a seed: initialisation or data order?")
    s.notes += notes_of(page.run_dir, "anatomy_notes")  # what did not apply to these agents (no grid, ...)
    if has_stage(page.run_dir, "decomposition"):  # a seed grid's
        dec = page.read("decomposition")
        cols = [c for c in ("outcome", "n_init", "n_data", "share_init", "share_init_lo", "share_init_hi", "p_init",
                            "share_data", "share_data_lo", "share_data_hi", "p_data", "share_resid") if c in dec]
        s.tables.append(("share of between-agent variance each part of the seed explains (two-way random effects; "
                         "bootstrap 95% CI over initialisations and data orders; permutation p)", _html_table(dec[cols])))
    if (anatomy_dir / "shares.png").is_file():
        s.images.append((page.images.add(anatomy_dir / "shares.png", "anatomy_shares.png"), "variance shares with CIs"))
    if (anatomy_dir / "commitment.png").is_file():
        s.images.append((page.images.add(anatomy_dir / "commitment.png", "anatomy_commitment.png"),
                         "each grid agent at its kept snapshots: when does a seed commit?"))
    commit = _table_or_none(page.run_dir, "commitment")
    if commit is not None and len(commit):
        summary = commit.groupby("outcome")["committed_at"].describe()[["count", "mean", "min", "50%", "max"]]
        s.tables.append(("fraction of training after which the final value is fixed (within ±0.05)",
                         _html_table(summary.reset_index())))
    before = _table_or_none(page.run_dir, "before_training")
    if before is not None and len(before):
        s.tables.append(("predicted from the untrained network alone (out of sample: leave one initialisation out)",
                         _html_table(before, 20)))
    for name in ("decomposition", "commitment", "before_training", "trajectory", "outcomes"):
        if has_stage(page.run_dir, name):
            s.links.append(_table_csv(read_stage(page.run_dir, name), page.report_dir, f"anatomy_{name}"))


def _dossiers(page: _Page, top: int) -> None:
    """Links to the dossiers the outliers stage (or ``gmg explain``) wrote, with their images; an
    agent without one gets the command that writes it."""
    from gmg.experiments.report.dossier import dossier_dir, dossier_files

    s = page.section("dossiers", "Dossiers of the top outliers and of the agent the channel model explains worst")
    if page.outliers is None:
        s.missing = "no outlier ranking to take them from (see Outliers above)"
        return
    chosen = [int(a) for a in page.outliers["ranking"].index[:top]]
    if "predictions" in page.tables:
        from gmg.experiments.analysis.predict import shown_model

        pred = page.tables["predictions"]
        model = shown_model(pred)
        miss = (pred["observed"] - pred[model]).abs().groupby(pred["agent"]).mean().sort_values(ascending=False)
        if len(miss) and int(miss.index[0]) not in chosen:
            chosen.append(int(miss.index[0]))
    for agent_id in chosen:
        index = dossier_dir(page.run_dir, agent_id) / "index.html"
        if not index.is_file():
            s.notes.append(f"no dossier of agent {agent_id} yet: run `gmg explain {agent_id} --run-dir {page.run_dir}`")
            continue
        page.dossier_pages[agent_id] = index
        s.links.append((_rel(index, page.report_dir), f"agent {agent_id}"))
        for img in dossier_files(index):
            s.images.append((page.images.add(img, f"dossier-{agent_id:04d}-{img.name}"), f"agent {agent_id}: {img.stem}"))
    fields = _table_or_none(page.run_dir, "outlier_fields")
    for row in (fields.itertuples() if fields is not None else ()):
        if (page.run_dir / row.path).is_file():
            s.images.append((page.images.add(page.run_dir / row.path), row.caption))


def _other_figures(page: _Page) -> None:
    """Figures other verbs left in run_dir/plots, beside their section's results; a section whose
    results are missing keeps saying so (its old figures go to "Other figures")."""
    for sec in page.sections:
        if sec.key in PLOT_PREFIXES and not sec.missing:
            for png in _plots(page.run_dir, sec.key, page.claimed):
                sec.images.append((page.images.add(png), png.stem.replace("_", " ")))
    folder = page.run_dir / "plots"
    rest = [p for p in sorted(folder.glob("*.png")) if p not in page.claimed] if folder.is_dir() else []
    if rest:
        page.sections.append(Section("other", "Other figures", images=[(page.images.add(p), p.stem) for p in rest]))


def _interactive(page: _Page, metrics: pd.DataFrame | None) -> None:
    """The interactive figures, now that the dossiers they link to are known."""
    from gmg.experiments.report import interactive

    by_key = {sec.key: sec for sec in page.sections}
    links = {int(a): _rel(p, page.report_dir) for a, p in page.dossier_pages.items()}
    points = _table_or_none(page.run_dir, "regression_points") if "regression" in page.tables else None
    out = page.outliers or {}
    for key, make in (("scatters", lambda: interactive.scatter_figure(metrics, links, page.report_dir)
                       if metrics is not None else None),
                      ("regression", lambda: interactive.regression_figure(points, links, page.report_dir)),
                      ("outliers", lambda: interactive.outlier_figure(out.get("ranking"), out.get("features"), links,
                                                                      page.report_dir))):
        fig = make()
        if fig is not None:
            by_key[key].figures.append(fig)
            page.bundle = interactive.write_bundle(page.report_dir)


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
