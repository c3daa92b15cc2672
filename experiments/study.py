"""The whole study in one call: the stages of ``gmg.experiments.stages.STAGES`` (evaluate ->
predict -> reliance -> probes -> compare -> regress -> outliers), then the report.

Each stage writes its tables (the regressions, the outlier ranking, the top outliers' dossiers
and vector fields included); the report (``gmg.experiments.report.page.build_report``) only
reads them, and a section whose table is missing names the stage and command that writes it.
``gmg demo`` runs it on the bundled zoo at a size that fits a 2-core CPU in minutes;
``gmg run`` runs it on any population at full size, on CPU or GPU. Every stage writes
to the run directory's results store chunk by chunk and skips what is already there,
so rerunning the same command after a crash or kill resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from gmg.experiments.population import Population, population, zoo_names
from gmg.experiments.stages import STAGES, PipelineConfig, stage

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


def run_pipeline(agents: Population | str | Path = "zoo:yellow-line", run_dir: str | Path = "runs/study",
                 config: PipelineConfig = PipelineConfig(), device: str | torch.device = "auto",
                 progress: bool = True, ray: str | None = None, workers: int = 1) -> Path:
    """Run every stage on ``agents`` into ``run_dir``; returns the report's path.

    ``ray`` sends the evaluations (of the evaluate and predict stages: they grow with agents x
    settings x levels) to a Ray cluster, or without it ``workers > 1`` to that many local
    processes; reliance, probes and the report run in this process.
    """
    from tqdm import tqdm

    from gmg.experiments.report.page import build_report
    from gmg.training.runtime import resolve_device

    device = resolve_device(device)
    run_dir = Path(run_dir)
    refs = population(agents)  # resolved once: every stage takes it as it is
    extra = {"evaluate": {"ray": ray, "workers": workers}, "predict": {"ray": ray, "workers": workers}}
    skipped = {"predict": not config.predict, "compare": not config.compare_with}
    stages = [(name, lambda name=name: stage(name).run(refs, run_dir, config, device, progress, **extra.get(name, {})))
              for name in STAGES if not skipped.get(name)]
    stages.append(("report", lambda: build_report(run_dir, agents=refs, top=config.top_outliers)))
    times = {}
    bar = tqdm(stages, desc="study", unit="stage", disable=not progress, dynamic_ncols=True)
    report = None
    for name, step in bar:
        bar.set_postfix_str(name)
        t0 = time.time()
        out = step()
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
