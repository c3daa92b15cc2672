"""``gmg import original``: the original study's train-procgen checkpoints as gmg agent folders.

What the original wrote (KarolisRam/train-procgen, after jbkjr/train-procgen-pytorch)::

    logs/train/<env_name>/<run name>/<YYYY-MM-DD__HH-MM-SS>__seed_<seed>/
        model_<env steps>.pth   torch.save({"model_state_dict", "optimizer_state_dict"}), from a GPU
        obs.png, log-append.csv

What it becomes: ``RUN_DIR/<run name>/agents/agent-<id>/`` in gmg's own format
(``gmg.training.checkpoint``): the last checkpoint as ``model.safetensors``, every checkpoint with
its step count under ``snapshots/update-NNNN`` (so ``gmg anatomy`` replays training), a
``model_0.pth`` as ``initial/`` (the untrained network ``before_training`` needs), and a meta.json
recording the origin, run name, seed, steps, goal, background and the original's renderer and
level source. One run name is one population. The state dict is mapped by index, never by name
suffix: the original counts its residual blocks and convs from 1 (``res1``, ``res2``, ``conv1``,
``conv2``), gmg from 0, so ``res1`` names a different block on each side.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from gmg.training.checkpoint import (
    SNAPSHOTS,
    agent_dir_name,
    read_meta,
    save_weights,
    write_meta,
)
from gmg.training.errors import UserError
from gmg.training.model import ImpalaAgent, ModelConfig

# run name -> (goal, background): the original's notebooks (TRAIN_DICT of scatter-plots.ipynb)
RUN_NAMES: dict[str, tuple[str, str]] = {
    "maze-5x5": ("yellow_line", "black"),
    "maze-5x5-with-backgrounds": ("yellow_line", "textured"),
    "maze-5x5-red-line": ("red_line", "black"),
    "maze-5x5-grey-background": ("yellow_line", "grey"),
    "maze-5x5-grey-background-red-line": ("red_line", "grey"),
    "maze-5x5-white-line": ("white_line", "black"),
}
# runs the original's notebooks leave out, with their reason
BLACKLIST = {"2023-02-10__09-48-21__seed_8998": "the original's notebooks leave this run out "
                                                "(\"the single much longer run in maze-5x5\")"}
STEPS_PER_UPDATE = 256 * 256  # the original's hard-500 recipe: 256 envs x 256 steps per PPO update
ORIGINAL_SEED_RANGE = 10_000  # train.py draws seeds from 0..9999; ids of a repeated seed step by this
RUN_FOLDER = re.compile(r"^(?P<stamp>\d{4}-\d{2}-\d{2}__\d{2}-\d{2}-\d{2})__seed_(?P<seed>\d+)$")
CHECKPOINT = re.compile(r"^model_(?P<steps>\d+)\.pth$")
INITIAL = "initial"  # the imported model_0.pth: the network before training
STAGING = ".importing"  # agents are assembled here and moved into agents/ whole
ORIGIN = "original"
ENV_FIELDS = {"world_dim": 5, "size": 64, "timeout": 500, "num_levels": 100_000, "start_level": 0,
              "render": "procgen", "levels": "procgen"}


class OriginalFormatError(UserError, ValueError):
    """A file or folder of the original's archive that cannot be imported."""


# ---------------------------------------------------------------- the state dict, by index

def state_dict_names(config: ModelConfig = ModelConfig()) -> dict[str, str]:
    """The original's state-dict name -> gmg's, built by index: block i (1-based there) is
    ``blocks.{i-1}``, its residual block r and conv c (1-based there) are ``res{r-1}.conv{c-1}``."""
    names = {}
    for i in range(len(config.widths)):
        for p in ("weight", "bias"):
            names[f"embedder.block{i + 1}.conv.{p}"] = f"blocks.{i}.conv.{p}"
            for r in range(2):
                for c in range(2):
                    names[f"embedder.block{i + 1}.res{r + 1}.conv{c + 1}.{p}"] = f"blocks.{i}.res{r}.conv{c}.{p}"
    for theirs, ours in (("embedder.fc", "fc"), ("fc_policy", "policy"), ("fc_value", "value")):
        for p in ("weight", "bias"):
            names[f"{theirs}.{p}"] = f"{ours}.{p}"
    return names


def model_config_of(state: dict) -> ModelConfig:
    """The architecture an original state dict holds (widths, hidden size, actions); one line
    if it is recurrent or lacks the tensors that say."""
    if any(k.startswith("gru.") or ".gru." in k for k in state):
        raise OriginalFormatError("a recurrent model (it has gru.* weights); the study's agents are feed-forward")
    widths, i = [], 1
    while f"embedder.block{i}.conv.weight" in state:
        widths.append(int(state[f"embedder.block{i}.conv.weight"].shape[0]))
        i += 1
    try:
        hidden, actions = int(state["embedder.fc.weight"].shape[0]), int(state["fc_policy.weight"].shape[0])
    except KeyError as e:
        raise OriginalFormatError(f"not an original IMPALA policy: no {e.args[0]}") from None
    if not widths:
        raise OriginalFormatError("not an original IMPALA policy: no embedder.block1.conv.weight")
    return ModelConfig(widths=tuple(widths), hidden=hidden, num_actions=actions, obs_size=64)


def convert_state_dict(state: dict) -> tuple[dict[str, torch.Tensor], ModelConfig]:
    """The original's ``model_state_dict`` as gmg's ``ImpalaAgent`` state dict (float32, CPU),
    mapped by index; every one of the original's tensors must be there with gmg's shape."""
    config = model_config_of(state)
    names = state_dict_names(config)
    missing = [k for k in names if k not in state]
    if missing:
        raise OriginalFormatError(f"{len(missing)} of the {len(names)} tensors missing, e.g. {missing[0]}")
    extra = sorted(set(state) - set(names))
    if extra:
        raise OriginalFormatError(f"unexpected tensors for the original IMPALA policy, e.g. {extra[0]}")
    expected = {k: tuple(v.shape) for k, v in ImpalaAgent(config).state_dict().items()}
    out = {}
    for theirs, ours in names.items():
        t = state[theirs]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != expected[ours]:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise OriginalFormatError(f"{theirs} has shape {shape}, gmg's {ours} needs {expected[ours]}")
        out[ours] = t.detach().to("cpu", torch.float32).contiguous()
    return out, config


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], ModelConfig]:
    """gmg weights and architecture of one ``model_<t>.pth`` (loaded on the CPU whatever GPU
    saved it; tensors only, no code runs); one ``OriginalFormatError`` line for anything else."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip, pickle and EOF errors all mean the same to the user
        raise OriginalFormatError(f"{path}: unreadable, truncated or not a torch file ({type(e).__name__})") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("model_state_dict"), dict):
        raise OriginalFormatError(f"{path}: not a train-procgen checkpoint (no model_state_dict)")
    try:
        return convert_state_dict(blob["model_state_dict"])
    except OriginalFormatError as e:
        raise OriginalFormatError(f"{path}: {e}") from None


# ---------------------------------------------------------------- finding the runs

@dataclass
class RunFolder:
    """One run folder of the original (``<date>__<time>__seed_<seed>``) and the agent id it gets."""

    path: Path
    run_name: str
    seed: int
    stamp: str
    agent_id: int = -1

    @property
    def folder(self) -> str:
        return self.path.name


@dataclass
class OriginalRun(RunFolder):
    """A run folder of checkpoints (env steps -> file)."""

    checkpoints: dict[int, Path] = field(default_factory=dict)


def numbered_files(root: Path, pattern: re.Pattern) -> Iterator[tuple[Path, dict[int, str], re.Match | None]]:
    """(folder, {number: file name}, its run-folder name match) for every folder under ``root``
    holding files that match ``pattern`` (which names its number ``steps``), in sorted order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        files = {int(m["steps"]): f for f in filenames if (m := pattern.match(f))}
        if files:
            yield Path(dirpath), files, RUN_FOLDER.match(Path(dirpath).name)


def find_runs(path: str | Path) -> tuple[list[OriginalRun], list[str]]:
    """Every run folder (a folder holding ``model_<t>.pth`` files) under ``path``, which may be
    one run folder, a ``logs/train`` tree or an unpacked archive; with one line per folder
    whose name does not say its seed. Ids are assigned per run name (``assign_ids``)."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"no such file or folder: {path}")
    runs, problems = [], []
    for folder, files, m in numbered_files(root, CHECKPOINT):
        if not m:
            problems.append(f"{folder}: not a train-procgen run folder (<date>__<time>__seed_<seed>); skipped")
            continue
        runs.append(OriginalRun(folder, folder.parent.name, int(m["seed"]), m["stamp"],
                                checkpoints={t: folder / f for t, f in files.items()}))
    return assign_ids(runs), problems


def assign_ids(runs: list) -> list:
    """Give each ``RunFolder`` its agent id: its seed, or, where several runs of one run name share
    a seed (train.py drew seeds from 0..9999), seed + 10,000 x k for the k-th of them by start time."""
    by_seed: dict[tuple[str, int], list] = {}
    for r in sorted(runs, key=lambda r: (r.run_name, r.seed, r.stamp)):
        by_seed.setdefault((r.run_name, r.seed), []).append(r)
    for group in by_seed.values():
        for k, r in enumerate(group):
            r.agent_id = r.seed + ORIGINAL_SEED_RANGE * k
    return sorted(runs, key=lambda r: (r.run_name, r.agent_id))


# ---------------------------------------------------------------- importing

@dataclass
class ImportResult:
    """What an import did: agent folders written, agents already there, one line per problem."""

    imported: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    populations: list[Path] = field(default_factory=list)


def trained_on(run_name: str, goal: str | None = None, background: str | None = None) -> tuple[str, str]:
    """(goal, background) of a run name: the original's table, else ``goal``/``background``."""
    if run_name in RUN_NAMES:
        return RUN_NAMES[run_name]
    if goal is None:
        raise OriginalFormatError(f"unknown run name {run_name!r} (known: {', '.join(RUN_NAMES)}): "
                                  "say what it was trained on with --goal (and --background)")
    from gmg.training.objects import parse_object
    from gmg.training.render import BACKGROUND_KINDS

    bg = (background or "black").strip().lower()
    if bg not in BACKGROUND_KINDS:
        raise OriginalFormatError(f"unknown background {bg!r}; use one of {', '.join(BACKGROUND_KINDS)}")
    try:
        return parse_object(goal).name, bg
    except UserError as e:
        raise OriginalFormatError(f"--goal {goal!r}: {e}") from None


def agent_meta(run: OriginalRun, config: ModelConfig, goal: str, background: str, steps: int) -> dict:
    """meta.json of an imported agent (its snapshots add ``snapshot``)."""
    origin = {"source": ORIGIN, "run_name": run.run_name, "run_folder": run.folder, "seed": run.seed,
              "started": run.stamp, "checkpoints": sorted(run.checkpoints), "steps_per_update": STEPS_PER_UPDATE}
    if run.folder in BLACKLIST:
        origin["note"] = BLACKLIST[run.folder]
    return {"seed": run.agent_id, "preset": ORIGIN, "origin": origin, "model": config.to_dict(),
            "env": {"objects": [goal], "background": background, **ENV_FIELDS},
            "finished": True, "steps": steps, "wall_time": 0.0, "final_stats": {}}


def is_imported(folder: Path, run: OriginalRun) -> bool:
    """Whether ``folder`` already holds this run, imported whole from its last checkpoint."""
    try:
        origin = read_meta(folder).get("origin") or {}
    except UserError:
        return False
    return (origin.get("run_folder") == run.folder and origin.get("run_name") == run.run_name
            and origin.get("checkpoints") == sorted(run.checkpoints)
            and (folder / "model.safetensors").is_file())


def import_run(run: OriginalRun, population_dir: Path, goal: str, background: str) -> tuple[Path, list[str]]:
    """One run as ``population_dir/agents/agent-<id>``, assembled under ``.importing/`` and moved
    in whole; returns the folder and one line per checkpoint left out. Raises
    ``OriginalFormatError`` (nothing written) when the last checkpoint cannot be imported."""
    final_steps = max(run.checkpoints)
    state, config = read_checkpoint(run.checkpoints[final_steps])  # the agent: refused whole if unreadable
    name = agent_dir_name(run.agent_id)
    staging = population_dir / STAGING / name
    if staging.exists():
        shutil.rmtree(staging)  # a killed earlier import
    staging.mkdir(parents=True)
    lines = []
    try:
        meta = agent_meta(run, config, goal, background, final_steps)
        kept = []
        for steps in sorted(run.checkpoints):
            if steps == final_steps:
                weights = state
            else:
                try:
                    weights, other = read_checkpoint(run.checkpoints[steps])
                    if other != config:
                        raise OriginalFormatError(f"{run.checkpoints[steps]}: another architecture than the last checkpoint")
                except OriginalFormatError as e:
                    lines.append(f"{e}; agent {run.agent_id} imported without it")
                    continue
            if steps == 0:  # the untrained network: not a training snapshot (gmg keeps none at update 0)
                _write_agent(staging / INITIAL, weights, {**meta, "steps": 0, "initial": True})
                continue
            update = steps // STEPS_PER_UPDATE
            _write_agent(staging / SNAPSHOTS / f"update-{update:04d}", weights,
                         {**meta, "steps": steps, "snapshot": {"update": update, "steps": steps}})
            kept.append(steps)
        meta["origin"]["imported_checkpoints"] = sorted(set(kept) | ({0} if (staging / INITIAL).is_dir() else set()))
        for extra in ("obs.png", "log-append.csv"):
            if (run.path / extra).is_file():
                shutil.copyfile(run.path / extra, staging / f"original-{extra}")
        _write_agent(staging, state, meta)  # meta.json last: the folder is whole once it has one
        dest = population_dir / "agents" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)  # an older import of this run (checked by the caller)
        os.replace(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return dest, lines


def _write_agent(folder: Path, weights: dict, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(weights, folder / "model.safetensors")
    write_meta(folder, meta)


def import_original(path: str | Path, run_dir: str | Path, goal: str | None = None, background: str | None = None,
                    progress: bool = False) -> ImportResult:
    """Import every run under ``path`` into ``run_dir/<run name>/agents/`` (see the module).

    Resumable: an agent already imported from the same run folder and checkpoints is skipped.
    Each file that cannot be imported is one line in ``problems``; the rest import. ``goal`` and
    ``background`` say what runs of an unknown run name were trained on.
    """
    from tqdm import tqdm

    runs, problems = find_runs(path)
    if not runs and not problems:
        raise UserError(f"no train-procgen checkpoints (model_<steps>.pth) under {path}")
    out = ImportResult(problems=problems)
    run_dir = Path(run_dir)
    envs: dict[str, tuple[str, str]] = {}
    for run in tqdm(runs, desc="import", unit="agent", disable=not progress):
        try:
            if run.run_name not in envs:
                envs[run.run_name] = trained_on(run.run_name, goal, background)
        except OriginalFormatError as e:
            out.problems.append(f"{run.path}: {e}")
            continue
        pop_dir = run_dir / run.run_name
        folder = pop_dir / "agents" / agent_dir_name(run.agent_id)
        if folder.exists():
            if is_imported(folder, run):
                out.skipped.append(folder)
                _add(out.populations, pop_dir)
                continue
            origin = _origin_of(folder)
            if origin.get("run_folder") not in (None, run.folder):
                out.problems.append(f"{run.path}: {folder} holds another run ({origin.get('run_folder')}); "
                                    "import it into another --run-dir")
                continue
        try:
            dest, lines = import_run(run, pop_dir, *envs[run.run_name])
        except OriginalFormatError as e:
            out.problems.append(f"{e}; agent {run.agent_id} of {run.run_name} not imported")
            continue
        out.imported.append(dest)
        out.problems += lines
        _add(out.populations, pop_dir)
    for pop_dir in {run_dir / r.run_name for r in runs}:
        staging = pop_dir / STAGING
        if staging.is_dir() and not any(staging.iterdir()):
            staging.rmdir()
    return out


def _origin_of(folder: Path) -> dict:
    try:
        return read_meta(folder).get("origin") or {}
    except UserError:
        return {}


def _add(items: list, item) -> None:
    if item not in items:
        items.append(item)


def is_original(meta: dict) -> bool:
    """Whether an agent's meta.json says it was imported from the original study."""
    return (meta.get("origin") or {}).get("source") == ORIGIN


def initial_network(agent_dir: str | Path, device: torch.device | str = "cpu") -> ImpalaAgent:
    """An imported agent's untrained network (its ``model_0.pth``); one line if none was imported."""
    from gmg.training.checkpoint import load_agent

    folder = Path(agent_dir) / INITIAL
    if not (folder / "meta.json").is_file():
        raise UserError(f"{agent_dir} was imported from the original study without a model_0.pth: its untrained "
                        "network cannot be rebuilt (the original's runs saved one only in later runs)")
    return load_agent(folder, device)[0]
