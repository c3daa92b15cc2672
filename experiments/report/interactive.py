"""The report's interactive figures: Vega-Lite specs (through altair) rendered in the page by
one embedded copy of Vega (``js/vega.js``, from vl-convert's bundle: no CDN, works offline)
and to PNG from the same spec by vl-convert. Hovering a point shows the agent, its preference
with its 95% CI and its capability; clicking it opens the agent's dossier where it has one.

Chosen by measure over plotly: plotly's PNG export needs kaleido and a Chrome of its own,
while vl-convert renders Vega-Lite to PNG in-process, and its bundle (0.9 MB) embeds once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

BUNDLE = "js/vega.js"
EMBED_OPTIONS = {"actions": False, "renderer": "svg", "loader": {"target": "_self"}}


@dataclass
class Figure:
    """One interactive figure: its element id, caption, Vega-Lite spec and static PNG (page-relative)."""

    id: str
    caption: str
    spec: dict
    png: str

    def html(self) -> str:
        spec = json.dumps(self.spec).replace("</", "<\\/")
        return (f'<div class="vega" id="{self.id}"></div><script>vegaEmbed("#{self.id}", {spec}, '
                f'{json.dumps(EMBED_OPTIONS)}).catch(e => console.error(e));</script>'
                f'<p class="static"><a href="{self.png}">static PNG</a></p>')


def write_bundle(report_dir: Path) -> str:
    """Write Vega, Vega-Lite and vega-embed once into the report folder; its page-relative src."""
    import vl_convert as vlc

    path = report_dir / BUNDLE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        path.write_text(vlc.javascript_bundle(), encoding="utf-8")
    return BUNDLE


def _save(chart, report_dir: Path, name: str, caption: str) -> Figure:
    import vl_convert as vlc

    spec = chart.to_dict()
    (report_dir / "img").mkdir(parents=True, exist_ok=True)
    (report_dir / "img" / f"interactive-{name}.png").write_bytes(vlc.vegalite_to_png(spec, scale=1))
    return Figure(f"fig-{name}", caption, spec, f"img/interactive-{name}.png")


def _with_links(df: pd.DataFrame, dossiers: dict[int, str]) -> pd.DataFrame:
    return df.assign(dossier=[dossiers.get(int(a)) for a in df["agent"]],
                     has_dossier=[int(a) in dossiers for a in df["agent"]])


def scatter_figure(metrics: pd.DataFrame, dossiers: dict[int, str], report_dir: Path, max_settings: int = 20) -> Figure | None:
    """Preference vs mean episode length, one panel per two-object setting (the original's figure)."""
    import altair as alt

    d = metrics.dropna(subset=["preference"])
    settings = list(dict.fromkeys(d["setting"]))[:max_settings]
    if not settings:
        return None
    d = _with_links(d[d["setting"].isin(settings)], dossiers)
    d = d.assign(ci=[f"{p:.2f} [{lo:.2f}, {hi:.2f}]" for p, lo, hi in
                     zip(d["preference"], d["preference_lo"], d["preference_hi"])])[
        ["agent", "setting", "preference", "preference_lo", "preference_hi", "capability", "ci", "dossier", "has_dossier"]]
    tooltip = [alt.Tooltip("agent:N", title="agent"), alt.Tooltip("ci:N", title="preference [95% CI]"),
               alt.Tooltip("capability:Q", title="mean episode length", format=".1f")]
    base = alt.Chart(d).encode(x=alt.X("capability:Q", title="mean episode length"),
                               y=alt.Y("preference:Q", title="preference for obj1", scale=alt.Scale(domain=[0, 1])))
    bars = base.mark_rule(opacity=0.35).encode(y="preference_lo:Q", y2="preference_hi:Q")
    points = base.mark_circle(size=45).encode(
        color=alt.Color("has_dossier:N", title="has a dossier", scale=alt.Scale(range=["#636efa", "#ef553b"])),
        tooltip=tooltip, href="dossier:N")
    chart = (bars + points).properties(width=230, height=200).facet(
        facet=alt.Facet("setting:N", title=None, sort=settings), columns=3)
    return _save(chart, report_dir, "scatters", "every agent in every setting: hover a point for the agent, "
                                                "its preference with 95% CI and capability; click for its dossier")


def regression_figure(points: pd.DataFrame | None, dossiers: dict[int, str], report_dir: Path) -> Figure | None:
    """One panel per fitted regression (the ``regression_points`` table of ``gmg regress``): the
    agents against its single regressor with the straight fit, or, for several regressors,
    observed against predicted with the identity line."""
    import altair as alt

    panels = []
    for _, d in (points.groupby("model", sort=False) if points is not None and len(points) else ()):
        x_title, y_title, title = d["x_title"].iloc[0], d["y_title"].iloc[0], d["title"].iloc[0]
        d = _with_links(d[["agent", "x", "y", "fit"]].reset_index(drop=True), dossiers)
        base = alt.Chart(d).encode(x=alt.X("x:Q", title=x_title, scale=alt.Scale(zero=False)))
        dots = base.mark_circle(size=50).encode(
            y=alt.Y("y:Q", title=y_title),
            color=alt.Color("has_dossier:N", title="has a dossier", scale=alt.Scale(range=["#636efa", "#ef553b"])),
            tooltip=[alt.Tooltip("agent:N"), alt.Tooltip("x:Q", format=".3f"), alt.Tooltip("y:Q", format=".3f")],
            href="dossier:N")
        ends = d.loc[[d["x"].idxmin(), d["x"].idxmax()], ["x", "fit"]]  # a straight line needs its two ends
        line = alt.Chart(ends).mark_line(color="black").encode(x="x:Q", y="fit:Q")
        panels.append((dots + line).properties(title=title, width=300, height=240))
    if not panels:
        return None
    return _save(alt.hconcat(*panels), report_dir, "regressions",
                 "each regression's agents and fitted line (in-sample); a model of several regressors is shown "
                 "as observed against predicted, with the identity line")


def outlier_figure(ranking: pd.DataFrame, features: pd.DataFrame, dossiers: dict[int, str], report_dir: Path) -> Figure | None:
    """Agents by combined outlier score, most abnormal first; hover for what makes each unusual."""
    import altair as alt

    if ranking is None or not len(ranking):
        return None
    r = ranking.reset_index().rename(columns={ranking.index.name or "index": "agent"})
    r["rank"] = range(1, len(r) + 1)
    why = {}
    if features is not None and len(features):
        for agent, g in features.groupby("agent"):
            why[int(agent)] = "; ".join(f"{f} z {z:+.1f}" for f, z in zip(g["feature"], g["z"]))
    r = _with_links(r[["agent", "rank", "combined"]], dossiers)
    r["why"] = [why.get(int(a), "") for a in r["agent"]]
    chart = alt.Chart(r).mark_circle(size=60).encode(
        x=alt.X("rank:Q", title="agents, most abnormal first"),
        y=alt.Y("combined:Q", title="combined outlier score", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("has_dossier:N", title="has a dossier", scale=alt.Scale(range=["#636efa", "#ef553b"])),
        tooltip=[alt.Tooltip("agent:N"), alt.Tooltip("combined:Q", format=".3f"), alt.Tooltip("why:N", title="unusual in")],
        href="dossier:N").properties(width=640, height=220)
    return _save(chart, report_dir, "outliers", "the outlier map: hover for what makes an agent unusual; click for its dossier")
