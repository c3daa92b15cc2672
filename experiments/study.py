"""The whole study in one call: evaluate -> predict -> reliance -> probes -> report.

The report stage fits the regressions, ranks the outliers and writes their dossiers
(``gmg.experiments.report.page.build_report``); a section whose inputs are missing says so.
``gmg demo`` runs it on the bundled zoo at a size that fits a 2-core CPU in minutes;
``gmg run`` runs it on any population at full size, on CPU or GPU. Every stage writes
to the run directory's results store chunk by chunk and skips what is already there,
so rerunning the same command after a crash or kill resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gmg.experiments.population import Population, population, zoo_names


@dataclass(frozen=True)
class PipelineConfig:
    """How much of each stage to run."""

    settings: tuple[str, ...] | None = None  # None: the list named after the agents' goal
    n_levels: int = 1000  # evaluation levels per (agent, setting)
    reliance_levels: int = 100
    reliance_attr: int = 32
    probe_objects: tuple[str, ...] | None = None  # None: every colour x shape of the probes stage
    probe_scenes: int = 600
    probe_layers: str | tuple[str, ...] = "main"
    top_outliers: int = 3
    compare_with: tuple[str, ...] = ()  # other populations shown beside this one (``gmg compare``)
    compare_levels: int = 1000
    predict: bool = True  # the channel model (``gmg predict``): profile settings, predictions, scores
    predict_attribution: bool = True  # its goal-pixel attributions too (captum; minutes for a population)
    seed: int = 0


# the demo's key settings: the colour-vs-shape contests of the original and the training setting
DEMO_SETTINGS = {
    "yellow_line": ("red_line-vs-yellow_gem", "yellow_gem-vs-red_line", "green_line-vs-red_line",
                    "green_line-vs-yellow_gem", "blue_line-vs-yellow_gem", "train:yellow_line"),
    "white_line": ("white_line-vs-white_gem", "yellow_line-vs-white_gem", "red_line-vs-green_line",
                   "train:white_line"),
}
# whole-frame reliance at half its former size: the channel model (predict) now carries the explanation
DEMO = PipelineConfig(n_levels=200, reliance_levels=20, reliance_attr=8,
                      probe_objects=("red_line", "green_line", "yellow_line"), probe_scenes=160,
                      probe_layers=("hook_obs", "blocks.0.hook_pool", "blocks.1.hook_pool", "blocks.2.hook_pool",
                                    "hook_hidden"),
                      top_outliers=2, compare_levels=100, predict_attribution=False)


def study_settings(agents: Population, config: PipelineConfig) -> tuple[list, str]:
    """(settings, background) of a study: ``config.settings`` or the goal's list, on the agents'
    own training background as reliance plays them (a ``@BACKGROUND`` suffix still wins)."""
    from gmg.experiments.settings import default_settings, resolve_settings

    goal, background = agents.trained_on.goal, agents.trained_on.background
    if config.settings:
        return resolve_settings(list(config.settings), background), background
    return default_settings(goal, background), background


def run_pipeline(agents: Population | str | Path = "zoo:yellow-line", run_dir: str | Path = "runs/study",
                 config: PipelineConfig = PipelineConfig(), device: str | torch.device = "auto",
                 progress: bool = True, ray: str | None = None, workers: int = 1) -> Path:
    """Run every stage on ``agents`` into ``run_dir``; returns the report's path.

    ``ray`` sends the evaluation (the stage that grows with agents x settings x levels) to
    a Ray cluster; reliance, probes and the report run in this process.
    """
    from tqdm import tqdm

    from gmg.experiments.analysis.compare import compare_populations
    from gmg.experiments.analysis.predict import run_predict
    from gmg.experiments.cluster import chunk_runner
    from gmg.experiments.evaluate import evaluate
    from gmg.experiments.probing import ProbeRunConfig, probe_population
    from gmg.experiments.reliance import run_reliance
    from gmg.experiments.report.page import build_report
    from gmg.training.runtime import resolve_device

    device = resolve_device(device)
    run_dir = Path(run_dir)
    refs = population(agents)  # resolved once: every stage takes it as it is
    settings, background = study_settings(refs, config)
    probe_cfg = ProbeRunConfig(seed=config.seed, n_scenes=config.probe_scenes, layers=config.probe_layers,
                               background=background)
    if config.probe_objects:
        probe_cfg = dataclasses.replace(probe_cfg, objects=tuple(config.probe_objects))

    stages = [
        ("evaluate", lambda: evaluate(refs, settings, run_dir, device, n_levels=config.n_levels,
                                      seed=config.seed, progress=progress,
                                      run_chunks=chunk_runner(ray, workers))),
        *([("predict", lambda: run_predict(refs, run_dir, [s.name for s in settings if not s.single], device,
                                           n_levels=config.n_levels, seed=config.seed, progress=progress,
                                           attribution=config.predict_attribution))] if config.predict else []),
        ("reliance", lambda: run_reliance(refs, run_dir, device, n_levels=config.reliance_levels,
                                          n_attr=config.reliance_attr, seed=config.seed)),
        ("probes", lambda: probe_population(refs, run_dir, probe_cfg, device=device)),
        *([("compare", lambda: compare_populations([refs, *config.compare_with], run_dir=run_dir / "compare",
                                                   device=device, n_levels=config.compare_levels, seed=config.seed,
                                                   progress=progress))] if config.compare_with else []),
        ("report", lambda: build_report(run_dir, agents=refs, top=config.top_outliers,
                                        device=str(device), seed=config.seed)),
    ]
    times = {}
    bar = tqdm(stages, desc="study", unit="stage", disable=not progress, dynamic_ncols=True)
    report = None
    for name, stage in bar:
        bar.set_postfix_str(name)
        t0 = time.time()
        out = stage()
        times[name] = round(time.time() - t0, 1)
        if name == "report":
            report = out
    (run_dir / "timings.json").write_text(json.dumps(times, indent=2))
    return Path(report)


def demo(run_dir: str | Path = "runs/demo", agents: str = "zoo:yellow-line", device: str | torch.device = "auto",
         progress: bool = True) -> Path:
    """``run_pipeline`` on the bundled zoo at demo size (minutes on a 2-core CPU); yellow-line
    agents are shown beside the textured-background zoo (the texture asymmetry)."""
    refs = population(agents)
    goal = refs.trained_on.goal
    textured = "zoo:yellow-line-textured" if goal == "yellow_line" and "yellow-line-textured" in zoo_names() else None
    config = dataclasses.replace(DEMO, settings=DEMO_SETTINGS.get(goal),
                                 compare_with=(textured,) if textured and refs.trained_on.background != "textured" else ())
    return run_pipeline(refs, run_dir, config, device, progress)
