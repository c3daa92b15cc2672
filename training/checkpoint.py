"""Agent checkpoints: weights in safetensors, metadata in JSON, one folder per agent.

    agent-0007/
      model.safetensors   weights (float32, or float16 for the bundled zoo)
      meta.json           format version, model and training config, seed, steps, stats
      train.csv           one row per PPO update
      resume.pt           optimizer, RNG and environment state (only while unfinished)

``load_agent`` is the only loader: it checks format, version and architecture and turns
every failure into one ``AgentLoadError`` line. A training run writes through
``save_checkpoint`` and ``append_log`` and picks up again with ``load_resume``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from pathlib import Path

import torch

from gmg.training.config import MISSING_MEANS, OMITTED_AT_DEFAULT, RUN_FIELDS_IGNORED_ON_RESUME, TrainConfig
from gmg.training.errors import TrainingError, UserError
from gmg.training.model import ImpalaAgent, ModelConfig

FORMAT = "gmg-agent"
FORMAT_VERSION = 1
CODE_VERSION = "0.1.0"


class AgentLoadError(UserError, RuntimeError):
    """A checkpoint that cannot be loaded (missing, corrupt, wrong version or shape)."""


def agent_dir_name(seed: int) -> str:
    return f"agent-{seed:04d}"


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_weights(model: ImpalaAgent | dict, path: Path, dtype: torch.dtype = torch.float32) -> None:
    """A model's weights (or a state dict) as safetensors, written atomically."""
    from safetensors.torch import save_file

    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in state.items()}
    if _holds(path, state):
        return  # safetensors orders its metadata at random: rewriting equal weights churns bytes
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT, "version": str(FORMAT_VERSION)})
    os.replace(tmp, path)


def _holds(path: Path, state: dict) -> bool:
    """Whether `path` is a readable gmg weights file of this version with exactly these tensors."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return False
    try:
        with safe_open(str(path), "pt") as f:
            if f.metadata() != {"format": FORMAT, "version": str(FORMAT_VERSION)} or set(f.keys()) != state.keys():
                return False
            return all(torch.equal(f.get_tensor(k), v) and f.get_tensor(k).dtype == v.dtype for k, v in state.items())
    except (SafetensorError, OSError, ValueError):
        return False


def weights_fingerprint(agent_dir: str | Path) -> str:
    """sha256 of an agent's tensors (names, dtypes, shapes, values): its identity, whatever
    order the file's metadata was written in. Corrupt or missing weights are one line."""
    import hashlib

    from safetensors import SafetensorError, safe_open

    path = Path(agent_dir) / "model.safetensors"
    digest = hashlib.sha256()
    try:
        with safe_open(str(path), "pt") as f:
            for k in sorted(f.keys()):
                t = f.get_tensor(k).contiguous()
                digest.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
                digest.update(t.view(torch.uint8).numpy().tobytes())
    except (SafetensorError, OSError, ValueError) as e:
        raise AgentLoadError(f"{path} is missing, corrupt or truncated ({e}); retrain or restore this agent") from None
    return digest.hexdigest()[:16]


def write_meta(agent_dir: Path, meta: dict) -> None:
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "code_version": CODE_VERSION, **meta}
    atomic_write_text(agent_dir / "meta.json", json.dumps(meta, indent=2, sort_keys=True))


def read_meta(agent_dir: str | Path) -> dict:
    path = Path(agent_dir) / "meta.json"
    if not path.is_file():
        raise AgentLoadError(f"{agent_dir} is not an agent folder: it has no meta.json")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AgentLoadError(f"{path} is corrupt (not JSON); retrain or restore this agent") from None
    if meta.get("format") != FORMAT:
        raise AgentLoadError(f"{path} is not a gmg agent (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise AgentLoadError(
            f"{agent_dir} was written by checkpoint format {meta.get('format_version')} "
            f"(code {meta.get('code_version')}); this gmg reads format {FORMAT_VERSION}: "
            "retrain it with this version"
        )
    return meta


def load_agent(agent_dir: str | Path, device: torch.device | str = "cpu") -> tuple[ImpalaAgent, dict]:
    """Load a trained agent (float32, eval mode) and its metadata."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    agent_dir = Path(agent_dir)
    if not agent_dir.exists():
        raise AgentLoadError(f"no agent at {agent_dir}")
    meta = read_meta(agent_dir)
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (KeyError, TypeError, ValueError):
        raise AgentLoadError(f"{agent_dir}/meta.json has no valid model config") from None
    weights = agent_dir / "model.safetensors"
    if not weights.is_file():
        raise AgentLoadError(f"{agent_dir} has no model.safetensors (training unfinished?)")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise AgentLoadError(f"{weights} is corrupt or truncated ({e}); retrain this agent") from None
    model = ImpalaAgent(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))[:3]
        raise AgentLoadError(
            f"{weights} does not match the architecture in its meta.json "
            f"(widths {list(config.widths)}): first differences {diff}"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(device).eval(), meta


def is_finished(agent_dir: Path) -> bool:
    try:
        return bool(read_meta(agent_dir).get("finished")) and (agent_dir / "model.safetensors").is_file()
    except AgentLoadError:
        return False


# ---------------------------------------------------------------- a training run's files

LOG_FIELDS = (
    "iteration", "global_step", "wall_time", "sps", "episodes", "episodic_return", "episode_length",
    "shortest_path", "success", "learning_rate", "policy_loss", "value_loss", "entropy",
    "approx_kl", "clipfrac", "explained_variance",
)


def append_log(agent_dir: Path, stats: dict) -> None:
    with (agent_dir / "train.csv").open("a", newline="") as f:
        csv.DictWriter(f, LOG_FIELDS).writerow({k: _round(v) for k, v in stats.items()})


def _config_diff(a: dict, b: dict) -> list[str]:
    # sizes derived from other fields (batch_size, ...) would only repeat their difference
    derived = {f.name for f in dataclasses.fields(TrainConfig) if not f.init}
    keys = (set(a) | set(b)) - set(RUN_FIELDS_IGNORED_ON_RESUME) - derived
    # a file leaves these out at their default, or predates them
    a, b = ({**OMITTED_AT_DEFAULT, **MISSING_MEANS, **d} for d in (a, b))
    return sorted(k for k in keys if a.get(k) != b.get(k))


def agent_meta(config: TrainConfig, device: torch.device) -> dict:
    """What meta.json says of every agent of this config (steps and stats are added later)."""
    return {
        "seed": config.agent_id, "preset": config.preset, "train": config.to_dict(),
        # an agent of a grid names its two seeds (its id is their combination)
        **({} if config.data_seed is None else {"init_seed": config.seed, "data_seed": config.data_seed}),
        "model": config.model_config().to_dict(),
        "env": {"objects": [config.goal], "world_dim": config.world_dim, "size": config.obs_size,
                "background": config.background, "timeout": config.timeout,
                "num_levels": config.num_levels, "start_level": config.start_level, "levels": config.levels,
                "render": config.render},
        "device": device.type,
    }


def load_resume(config: TrainConfig, agent_dir: Path, device: torch.device) -> dict | None:
    """The resume state of an unfinished run in ``agent_dir`` (None: start afresh, with a new
    log). Refuses a changed config; drops log rows written after the checkpoint."""
    resume_path, log_path = agent_dir / "resume.pt", agent_dir / "train.csv"
    if not resume_path.exists():
        with log_path.open("w", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writeheader()
        return None
    state = _read_resume(resume_path, device)
    # resume.pt files written before they carried the config fall back on meta.json's
    saved = state.get("train") or read_meta(agent_dir)["train"]
    now = config.to_dict()
    diff = _config_diff(saved, now)
    if config.anneal_lr and saved.get("total_timesteps") != now["total_timesteps"]:
        diff.append("total_timesteps")  # it sets the learning-rate schedule
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff[:4])
        raise TrainingError(
            f"{agent_dir} holds a run with a different config ({shown}); "
            "use the original settings or another run directory"
        )
    if state["iteration"] >= config.num_iterations:
        raise TrainingError(f"{agent_dir} is already at step {state['global_step']:,}, not below the "
                            f"{config.total_timesteps:,} asked for; ask for more steps or use another run directory")
    # map_location moved every tensor to the device; RNG states must be CPU byte tensors, and
    # Adam keeps its step counts on the CPU (neither fused nor capturable here)
    for k in ("rng_cpu", "rng_cuda"):
        if k in state:
            state[k] = state[k].cpu()
    for st in state["optimizer"]["state"].values():
        st["step"] = st["step"].cpu()
    if log_path.exists():
        with log_path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= state["iteration"]]
        tmp = log_path.with_name("train.csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)
        tmp.replace(log_path)
    return state


def _read_resume(path: Path, device: torch.device | str, mmap: bool = False) -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except Exception as e:  # pickle, zip and EOF errors all mean the same to the user
        raise TrainingError(f"{path} is corrupt or truncated ({type(e).__name__}); "
                            "delete it to start this seed afresh") from None


def resume_iteration(agent_dir: Path) -> int:
    """The update an unfinished run's resume.pt stands at (0 when there is none)."""
    path = agent_dir / "resume.pt"
    return int(_read_resume(path, "cpu", mmap=True)["iteration"]) if path.exists() else 0


def resume_state(config: TrainConfig, *, model: dict, optimizer: dict, reward_rms: dict, env: dict,
                 next_done: torch.Tensor, disc_return: torch.Tensor, global_step: int, iteration: int,
                 wall_time: float, rng_cpu: torch.Tensor, rng_cuda: torch.Tensor | None) -> dict:
    """resume.pt's dict, one seed's state (a stacked run writes each seed's as its lone run
    would). Its keys are the format: runs written before must still resume."""
    state = {"model": model, "optimizer": optimizer, "reward_rms": reward_rms, "env": env, "next_done": next_done,
             "disc_return": disc_return, "global_step": global_step, "iteration": iteration, "wall_time": wall_time,
             "rng_cpu": rng_cpu, "train": config.to_dict()}
    if rng_cuda is not None:
        state["rng_cuda"] = rng_cuda
    return state


def save_checkpoint(agent_dir: Path, meta: dict, weights: dict, resume: dict | None, stats: dict,
                    steps: int, wall_time: float) -> None:
    """Weights and meta.json; ``resume`` (None once finished) is the state a killed run goes on
    from: model, optimizer, reward_rms, env, next_done, disc_return, global_step, iteration,
    wall_time, rng_cpu (and rng_cuda), train (the config). resume.pt is written first and
    holds all a resume needs, so a kill between the files loses nothing."""
    resume_path = agent_dir / "resume.pt"
    save_weights(weights, agent_dir / "model.safetensors")
    if resume is not None:
        tmp = resume_path.with_name("resume.pt.tmp")
        torch.save(resume, tmp)
        tmp.replace(resume_path)
    write_meta(agent_dir, {**meta, "finished": resume is None, "steps": steps, "wall_time": round(wall_time, 2),
                           "final_stats": stats})
    if resume is None and resume_path.exists():
        resume_path.unlink()


SNAPSHOTS = "snapshots"


def save_snapshot(agent_dir: Path, meta: dict, weights: dict, iteration: int, steps: int) -> Path:
    """The weights after update ``iteration`` as an agent folder of their own,
    ``snapshots/update-NNNN`` (its meta says ``snapshot``: update and steps), to replay training."""
    folder = agent_dir / SNAPSHOTS / f"update-{iteration:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(weights, folder / "model.safetensors")
    write_meta(folder, {**meta, "finished": True, "steps": steps, "snapshot": {"update": iteration, "steps": steps}})
    return folder


def snapshot_dirs(agent_dir: str | Path) -> list[Path]:
    """An agent's kept snapshots (``save_snapshot``), in training order."""
    root = Path(agent_dir) / SNAPSHOTS
    return sorted(p for p in root.glob("update-*") if (p / "meta.json").is_file()) if root.is_dir() else []


def _round(v):
    return round(v, 6) if isinstance(v, float) and math.isfinite(v) else v
