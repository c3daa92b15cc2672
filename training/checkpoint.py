"""Agent checkpoints: weights in safetensors, metadata in JSON, one folder per agent.

    agent-0007/
      model.safetensors   weights (float32, or float16 for the bundled zoo)
      meta.json           format version, model and training config, seed, steps, stats
      train.csv           one row per PPO update
      resume.pt           optimizer, RNG and environment state (only while unfinished)

``load_agent`` is the only loader: it checks format, version and architecture and turns
every failure into one ``AgentLoadError`` line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from training.model import ImpalaAgent, ModelConfig

FORMAT = "gmg-agent"
FORMAT_VERSION = 1
CODE_VERSION = "0.1.0"


class AgentLoadError(RuntimeError):
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
