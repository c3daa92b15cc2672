"""Probe a population: per agent, per object, per layer, with controls, into the store.

For each object (default: red, green, blue, yellow and white line and gem) one probe
dataset of one-object scenes is rendered once and shared by every agent. Per agent the
activations at the chosen layers are streamed to ``run_dir/activations/agent-XXXX/OBJECT/``
as float16 (pooled conv maps, see ``gmg.probes.activations``), then each layer is probed for
the object's cell:

    cell_logistic   LinearProbe (standardise, PCA 64, LogisticRegressionCV) on flattened activations
    cell_position   PositionReadout on conv maps (one shared logistic score per cell)
    xy_ridge        RidgeProbe for the (x, y) coordinates, metric R^2

with the controls ``control_shuffled`` (same probe, permuted labels, the C chosen on the
real labels) and ``control_random`` (same probe on a randomly initialised network of the
same architecture, computed once per architecture and run). Rows for the raw pixels of
each RGB channel (``pixels.r`` ...) give the input baseline. One chunk per agent in table
``probes``; a rerun skips agents already probed. Activations are deleted after each agent
unless ``keep_activations``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from gmg.experiments.population import AgentRef, population
from gmg.experiments.store import ResultsStore
from gmg.probes.activations import flatten, layer_names, read_activations, write_activations
from gmg.probes.controls import chance_level, pixel_channel, random_network_like, shuffled_labels
from gmg.probes.datasets import ProbeDataset, ProbeError, probe_scenes
from gmg.probes.linear import LinearProbe, PositionReadout, RidgeProbe, holdout_score, split
from gmg.training.errors import UserError
from gmg.training.model import ImpalaAgent

TABLE = "probes"
DEFAULT_OBJECTS = tuple(f"{c}_{s}" for s in ("line", "gem") for c in ("red", "green", "blue", "yellow", "white"))
PIXEL_LAYERS = ("pixels.r", "pixels.g", "pixels.b")
PROBES = ("cell_logistic", "cell_position", "xy_ridge")


@dataclass(frozen=True)
class ProbeRunConfig:
    """What to probe and how; every field has a CLI flag."""

    objects: tuple[str, ...] = DEFAULT_OBJECTS
    layers: str | tuple[str, ...] = "main"  # "main", "all" or hook names
    probes: tuple[str, ...] = PROBES
    n_scenes: int = 600  # per object; 25% held out
    background: str = "black"
    pool: int | None = 8  # conv maps average-pooled to at most pool x pool
    test_size: float = 0.25
    seed: int = 0
    batch_size: int = 256
    n_components: int | None = 64
    keep_activations: bool = False
    n_jobs: int = -1  # processes fitting layers at once (joblib's convention: -1 = every core)

    def check(self) -> None:
        unknown = [p for p in self.probes if p not in PROBES]
        if unknown:
            raise ProbeError(f"unknown probe {unknown[0]!r}: use {', '.join(PROBES)}")
        if not self.objects:
            raise ProbeError("no objects to probe")
        if self.n_jobs == 0:
            raise ProbeError("--jobs must be a number of processes, or -1 for every core; 0 means nothing")
        if self.n_scenes < 8:
            raise ProbeError(f"--scenes must be at least 8 to hold some out, got {self.n_scenes}")


def make_datasets(cfg: ProbeRunConfig, device: torch.device | str = "cpu", render: str = "box") -> dict[str, ProbeDataset]:
    """One dataset of one-object scenes per object (seed fixed, the same for every agent), drawn
    by the agents' renderer."""
    return {
        obj: probe_scenes(obj, cfg.n_scenes, background=cfg.background, seed=cfg.seed, device=device, render=render)
        for obj in cfg.objects
    }


def _probe_features(X: np.ndarray, ds: ProbeDataset, shape: tuple[int, ...], cfg: ProbeRunConfig,
                    tr: np.ndarray, te: np.ndarray) -> list[dict]:
    """All probes of one (features, dataset): rows without agent/layer/control columns."""
    y = ds.label("cell")
    rows = []
    shuffled = shuffled_labels(y, cfg.seed)
    chance = chance_level(y[te])
    for probe in cfg.probes:
        t0 = time.perf_counter()
        if probe == "cell_logistic":
            est = LinearProbe(n_components=cfg.n_components, random_state=cfg.seed)
            score, fitted = holdout_score(est, X, y, tr, te)
            ctrl = est.set_params(Cs=(fitted.C_,), cv=2)
            control, _ = holdout_score(ctrl, X, shuffled, tr, te)
            extra = {"C": fitted.C_, "metric": "accuracy", "chance": chance}
        elif probe == "cell_position":
            if len(shape) != 3:
                continue  # not a conv map
            est = PositionReadout(map_shape=shape, world_dim=ds.meta["world_dim"], size=ds.meta["size"])
            score, fitted = holdout_score(est, X, y, tr, te)
            control, _ = holdout_score(est, X, shuffled, tr, te)
            extra = {"C": est.C, "metric": "accuracy", "chance": chance}
        else:  # xy_ridge
            xy = ds.labels[["x", "y"]].to_numpy()
            est = RidgeProbe(n_components=cfg.n_components, random_state=cfg.seed)
            score, fitted = holdout_score(est, X, xy, tr, te)
            control, _ = holdout_score(est, X, xy[np.random.default_rng(cfg.seed).permutation(len(xy))], tr, te)
            extra = {"C": 1.0 / fitted.alpha_, "metric": "r2", "chance": 0.0}
        rows.append({
            "probe": probe, "accuracy": score.accuracy, "ci_low": score.ci_low, "ci_high": score.ci_high,
            "n_test": score.n_test, "control_shuffled": control.accuracy, "n_features": X.shape[1],
            "seconds": time.perf_counter() - t0, **extra,
        })
    return rows


def _labels_only(ds: ProbeDataset) -> ProbeDataset:
    """``ds`` without its scenes, for the worker processes (a sliced tensor would pickle them all)."""
    return dataclasses.replace(ds, obs=ds.obs.new_empty((0, *ds.obs.shape[1:])))


def _quiet_probe_features(X, ds, shape, cfg, tr, te) -> list[dict]:
    """``_probe_features`` with one BLAS thread and no convergence warnings, in whichever
    process joblib runs it: the probes are many small fits, and multi-threaded BLAS made them
    10x slower on a busy 2-core CPU (measured, see docs/probes.md); parallelism comes from joblib."""
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        if isinstance(X, tuple):  # (directory, layer): read where it is fitted, not pickled over
            acts = read_activations(*X)
            X, shape = flatten(acts), tuple(acts.shape[1:])
        return _probe_features(X, ds, shape, cfg, tr, te)


def _probe_model(model: ImpalaAgent, datasets: dict[str, ProbeDataset], layers: list[str], act_root: Path,
                 cfg: ProbeRunConfig, device, parallel: Parallel) -> pd.DataFrame:
    """Rows (object, layer, layer_index, probe, ...) for one network; its layers are fitted by
    ``parallel`` (the results do not depend on how many processes)."""
    rows = []
    for obj, ds in datasets.items():
        y = ds.label("cell")
        tr, te = split(len(y), cfg.test_size, cfg.seed, stratify=y)
        directory = act_root / obj
        write_activations(model, ds.obs, directory, layers, batch_size=cfg.batch_size, pool=cfg.pool, device=device)
        labels_only = _labels_only(ds)
        fitted = parallel(delayed(_quiet_probe_features)((directory, layer), labels_only, None, cfg, tr, te)
                          for layer in layers)
        for index, (layer, layer_rows) in enumerate(zip(layers, fitted)):
            rows += [{"object": obj, "layer": layer, "layer_index": index, **r} for r in layer_rows]
    return pd.DataFrame(rows)


def _pixel_rows(datasets: dict[str, ProbeDataset], cfg: ProbeRunConfig, parallel: Parallel) -> pd.DataFrame:
    rows = []
    for obj, ds in datasets.items():
        y = ds.label("cell")
        tr, te = split(len(y), cfg.test_size, cfg.seed, stratify=y)
        side = cfg.pool or ds.meta["size"]
        labels_only = _labels_only(ds)
        fitted = parallel(delayed(_quiet_probe_features)(pixel_channel(ds.obs, layer[-1], pool=cfg.pool), labels_only,
                                                         (1, side, side), cfg, tr, te) for layer in PIXEL_LAYERS)
        for index, (layer, layer_rows) in enumerate(zip(PIXEL_LAYERS, fitted)):
            rows += [{"object": obj, "layer": layer, "layer_index": index - len(PIXEL_LAYERS), **r} for r in layer_rows]
    return pd.DataFrame(rows)


def probe_population(
    agents: str | Path | Sequence[AgentRef],
    run_dir: str | Path,
    cfg: ProbeRunConfig = ProbeRunConfig(),
    *,
    ids: list[int] | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Probe every agent (skipping those already in the store); returns the whole ``probes`` table."""
    cfg.check()
    refs = population(agents, ids)
    run_dir = Path(run_dir)
    say = progress or (lambda msg: None)
    with ResultsStore(run_dir) as store:
        # what the probes' scores depend on; batch size and kept activations do not count
        store.check_config("probe_config", {k: v for k, v in asdict(cfg).items()
                                            if k not in ("batch_size", "keep_activations", "n_jobs")}, "probes")
        store.check_agents(refs)
        todo = [r for r in refs if not store.has_chunk(TABLE, {"agent": r.agent_id})]
        say(f"{len(refs) - len(todo)} of {len(refs)} agents already probed")
        if todo:
            layer_names(todo[0].load("cpu"), cfg.layers if isinstance(cfg.layers, str) else list(cfg.layers))  # fail early
            datasets = make_datasets(cfg, render=refs.trained_on.render)
            # one pool of worker processes for the whole run (started once)
            with Parallel(n_jobs=cfg.n_jobs) as parallel:
                baselines = _pixel_rows(datasets, cfg, parallel)
                random_cache: dict[tuple, pd.DataFrame] = {}
                for ref in todo:
                    t0 = time.perf_counter()
                    model = ref.load(device)
                    layers = layer_names(model, cfg.layers if isinstance(cfg.layers, str) else list(cfg.layers))
                    key = (model.config, tuple(layers))
                    if key not in random_cache:
                        rand = random_network_like(model, seed=cfg.seed)
                        rdir = run_dir / "activations" / f"random-{'-'.join(map(str, model.config.widths))}"
                        random_cache[key] = _probe_model(rand, datasets, layers, rdir, cfg, device, parallel)
                        if not cfg.keep_activations:
                            shutil.rmtree(rdir, ignore_errors=True)
                    adir = run_dir / "activations" / f"agent-{ref.agent_id:04d}"
                    rows = _probe_model(model, datasets, layers, adir, cfg, device, parallel)
                    if not cfg.keep_activations:
                        shutil.rmtree(adir, ignore_errors=True)
                    rand_acc = random_cache[key].set_index(["object", "layer", "probe"])["accuracy"]
                    rows["control_random"] = [rand_acc.get((o, la, p), np.nan) for o, la, p in
                                              zip(rows["object"], rows["layer"], rows["probe"])]
                    base = baselines.assign(control_random=np.nan)
                    chunk = pd.concat([rows, base], ignore_index=True)
                    chunk["selectivity"] = chunk["accuracy"] - chunk["control_shuffled"]
                    chunk["selectivity_random"] = chunk["accuracy"] - chunk["control_random"]
                    chunk.insert(0, "agent", ref.agent_id)
                    chunk["background"] = cfg.background
                    chunk["n_scenes"] = cfg.n_scenes
                    chunk["seed"] = cfg.seed
                    store.write_chunk(TABLE, chunk, {"agent": ref.agent_id})
                    say(f"agent {ref.agent_id}: {len(chunk)} probes in {time.perf_counter() - t0:.1f}s")
        return store.table(TABLE)


def detectability_profile(table: pd.DataFrame, probe: str = "cell_logistic") -> pd.DataFrame:
    """Accuracy per (agent, object) x layer in forward order (pixel baselines first)."""
    rows = table[table["probe"] == probe]
    if rows.empty:
        raise UserError(f"no {probe!r} rows in the probes table; probes present: {sorted(table['probe'].unique())}")
    order = rows.drop_duplicates("layer").sort_values("layer_index")["layer"].tolist()
    wide = rows.pivot_table(index=["agent", "object"], columns="layer", values="accuracy")
    return wide[order]
