"""Finding populations of agents: the bundled zoo, a run directory or one agent folder.

``--agents zoo:yellow-line`` (the default), ``zoo:white-line``, a run directory (its
``agents/`` folder), a folder of agent folders, or one agent folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from experiments.errors import GmgError
from training.checkpoint import load_agent, read_meta, weights_fingerprint
from training.model import ImpalaAgent

ZOO_DIR = Path(__file__).parent / "zoo"
DEFAULT_AGENTS = "zoo:yellow-line"


@dataclass
class AgentRef:
    """One agent of a population: a stable id (its seed), its folder and metadata."""

    agent_id: int
    path: Path
    meta: dict
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    def load(self, device: torch.device | str = "cpu") -> ImpalaAgent:
        return load_agent(self.path, device)[0]

    @property
    def fingerprint(self) -> str:
        """Its weights' identity (``training.checkpoint.weights_fingerprint``), read once."""
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.path)
        return self._fingerprint


def zoo_names() -> list[str]:
    return sorted(p.name for p in ZOO_DIR.iterdir() if p.is_dir()) if ZOO_DIR.is_dir() else []


def resolve_agents(spec: str | Path | list = DEFAULT_AGENTS, ids: list[int] | None = None) -> list[AgentRef]:
    """The finished agents named by ``spec`` (or a list of specs and AgentRefs), sorted by id (their seed)."""
    if isinstance(spec, (list, tuple)):
        refs = [r for item in spec for r in ([item] if isinstance(item, AgentRef) else resolve_agents(item))]
        if not refs:
            raise GmgError("no agents given")
        return _select(sorted(refs, key=lambda r: r.agent_id), ids, f"these {len(refs)} agents")
    text = str(spec)
    if text.startswith("zoo:"):
        name = text[4:]
        root = ZOO_DIR / name
        if not name or "/" in name or not root.is_dir():
            raise GmgError(f"no zoo population {name!r}; bundled: {', '.join(zoo_names()) or 'none'}")
    else:
        root = Path(text)
        if not root.exists():
            raise GmgError(f"no agents at {text}: give zoo:NAME, a run directory or an agent folder")
    if (root / "agents").is_dir():
        root = root / "agents"
    folders = [root] if (root / "meta.json").is_file() else sorted(p for p in root.iterdir() if (p / "meta.json").is_file())
    refs = []
    for folder in folders:
        meta = read_meta(folder)
        if not meta.get("finished") and not str(spec).startswith("zoo:"):
            continue  # still training
        refs.append(AgentRef(int(meta["seed"]), folder, meta))
    if not refs:
        raise GmgError(f"{text} holds no finished agents; train some with `gmg train`")
    refs.sort(key=lambda r: r.agent_id)
    return _select(refs, ids, text)


def _select(refs: list[AgentRef], ids: list[int] | None, where: str) -> list[AgentRef]:
    if ids is None:
        return refs
    known = {r.agent_id for r in refs}
    missing = [i for i in ids if i not in known]
    if missing:
        raise GmgError(f"agent(s) {missing} not in {where}; it has ids {sorted(known)[:10]}{'...' if len(known) > 10 else ''}")
    return [r for r in refs if r.agent_id in set(ids)]


def load_population(refs: list[AgentRef], device: torch.device | str = "cpu") -> list[ImpalaAgent]:
    return [r.load(device) for r in refs]
