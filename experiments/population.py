"""A population of agents: where they are, and what they were trained on.

``--agents zoo:yellow-line`` (the default), ``zoo:white-line``, a run directory (its
``agents/`` folder), a folder of agent folders, or one agent folder. ``population(spec)``
resolves it once into a ``Population`` (agents, goal, background, maze geometry, checked
uniform) that every stage takes as it is; ``TrainedOn.from_meta`` is the one reader of
"what was this agent trained on".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator

import torch

from gmg.training.checkpoint import load_agent, read_meta, weights_fingerprint
from gmg.training.env import OBS_SIZE, TIMEOUT, WORLD_DIM
from gmg.training.errors import UserError
from gmg.training.model import ImpalaAgent
from gmg.training.objects import parse_object

ZOO_DIR = Path(__file__).parent / "zoo"
DEFAULT_AGENTS = "zoo:yellow-line"


@dataclass(frozen=True)
class TrainedOn:
    """What an agent was trained on: its goal, background and maze (the defaults of every stage)."""

    goal: str = "yellow_line"
    background: str = "black"
    world_dim: int = WORLD_DIM
    size: int = OBS_SIZE  # observation side in pixels
    timeout: int = TIMEOUT
    levels: str = "hashed"  # the level source (gmg.training.env.LEVEL_SOURCES)
    render: str = "box"  # how its frames were drawn (gmg.training.render.RENDERS); the zoo's: box

    @classmethod
    def from_meta(cls, meta: dict) -> "TrainedOn":
        """Read from an agent's meta.json; missing fields take the defaults of the first zoo."""
        env, model = meta.get("env") or {}, meta.get("model") or {}
        try:
            return cls(goal=parse_object((env.get("objects") or ["yellow_line"])[0]).name,
                       background=str(env.get("background", "black")),
                       world_dim=int(env.get("world_dim", WORLD_DIM)),
                       size=int(model.get("obs_size", env.get("size", OBS_SIZE))),
                       timeout=int(env.get("timeout", TIMEOUT)),
                       levels=str(env.get("levels", "hashed")),
                       render=str(env.get("render", "box")))
        except (TypeError, ValueError) as e:
            raise UserError(f"agent metadata has no usable env settings: {e}") from None

    @property
    def geometry(self) -> tuple[int, int, int]:
        """(world_dim, size, timeout): what an evaluation of these agents must match."""
        return self.world_dim, self.size, self.timeout


@dataclass
class AgentRef:
    """One agent of a population: a stable id (its seed), its folder and metadata."""

    agent_id: int
    path: Path
    meta: dict
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    def load(self, device: torch.device | str = "cpu") -> ImpalaAgent:
        return load_agent(self.path, device)[0]

    @cached_property
    def trained_on(self) -> TrainedOn:
        return TrainedOn.from_meta(self.meta)

    @property
    def fingerprint(self) -> str:
        """Its weights' identity (``gmg.training.checkpoint.weights_fingerprint``), read once."""
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.path)
        return self._fingerprint


def zoo_names() -> list[str]:
    """The bundled populations: the zoo's folders (its code and caches start with ``_``)."""
    return sorted(p.name for p in ZOO_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def resolve_agents(spec: str | Path | list = DEFAULT_AGENTS, ids: list[int] | None = None) -> list[AgentRef]:
    """The finished agents named by ``spec`` (or a list of specs and AgentRefs), sorted by id (their seed)."""
    if isinstance(spec, (list, tuple)):
        refs = [r for item in spec for r in ([item] if isinstance(item, AgentRef) else resolve_agents(item))]
        if not refs:
            raise UserError("no agents given")
        return _select(sorted(refs, key=lambda r: r.agent_id), ids, f"these {len(refs)} agents")
    text = str(spec)
    if text.startswith("zoo:"):
        name = text[4:]
        root = ZOO_DIR / name
        if not name or "/" in name or not root.is_dir():
            raise UserError(f"no zoo population {name!r}; bundled: {', '.join(zoo_names()) or 'none'}")
    else:
        root = Path(text)
        if not root.exists():
            raise UserError(f"no agents at {text}: give zoo:NAME, a run directory or an agent folder")
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
        raise UserError(f"{text} holds no finished agents; train some with `gmg train`")
    refs.sort(key=lambda r: r.agent_id)
    return _select(refs, ids, text)


def _select(refs: list[AgentRef], ids: list[int] | None, where: str) -> list[AgentRef]:
    if ids is None:
        return refs
    known = {r.agent_id for r in refs}
    missing = [i for i in ids if i not in known]
    if missing:
        raise UserError(f"agent(s) {missing} not in {where}; it has ids {sorted(known)[:10]}{'...' if len(known) > 10 else ''}")
    return [r for r in refs if r.agent_id in set(ids)]


def load_population(refs: list[AgentRef], device: torch.device | str = "cpu") -> list[ImpalaAgent]:
    return [r.load(device) for r in refs]


@dataclass(frozen=True)
class Population:
    """Agents trained on one goal, background and maze, sorted by id; resolved once by
    ``population`` and passed down through every stage."""

    agents: tuple[AgentRef, ...]
    trained_on: TrainedOn
    source: str = ""

    @classmethod
    def of(cls, refs: list[AgentRef], source: str = "") -> "Population":
        """``refs`` as a population; one line if they were trained on different things."""
        if not refs:
            raise UserError("no agents given")
        kinds = {r.trained_on for r in refs}
        if len(kinds) > 1:
            shown = sorted(f"{k.goal} on {k.background}, world_dim {k.world_dim}, {k.size}px, timeout {k.timeout}, "
                           f"{k.levels} levels, {k.render} render"
                           for k in kinds)
            raise UserError(f"these agents were trained on different things ({'; '.join(shown[:3])}); "
                            "study each population in its own run")
        return cls(tuple(sorted(refs, key=lambda r: r.agent_id)), kinds.pop(), source)

    def __len__(self) -> int:
        return len(self.agents)

    def __iter__(self) -> Iterator[AgentRef]:
        return iter(self.agents)

    def __getitem__(self, i):
        return self.agents[i]

    @property
    def ids(self) -> list[int]:
        return [r.agent_id for r in self.agents]

    @property
    def paths(self) -> list[Path]:
        return [r.path for r in self.agents]

    def select(self, ids: list[int] | None) -> "Population":
        """These ids only (all of them for None)."""
        return self if ids is None else Population(tuple(_select(list(self.agents), ids, self.source or "the population")),
                                                   self.trained_on, self.source)


def population(agents: "Population | str | Path | list" = DEFAULT_AGENTS, ids: list[int] | None = None) -> Population:
    """The ``Population`` named by ``agents``: a Population (returned as it is), a spec
    (``zoo:NAME``, a run directory, an agent folder) or a list of specs and AgentRefs."""
    if isinstance(agents, Population):
        return agents.select(ids)
    return Population.of(resolve_agents(agents, ids), "" if isinstance(agents, (list, tuple)) else str(agents))


def population_of_run(run_dir: str | Path, agents: "Population | str | Path | list | None" = None) -> Population | None:
    """The agents a run directory's results are about: ``agents`` if given, else the run's own
    ``agents/`` folder, else the agent folders its results store names; None if none is found."""
    if agents is not None:
        return population(agents)
    run_dir = Path(run_dir)
    if (run_dir / "agents").is_dir():
        return population(run_dir)
    from gmg.experiments.store import AGENTS, STORE_FILE, ResultsStore

    if not (run_dir / STORE_FILE).is_file():
        return None
    with ResultsStore(run_dir, read_only=True) as store:
        if AGENTS not in store.tables():
            return None
        sources = [Path(p) for p in store.table(AGENTS)["source"]]
    try:
        return population([p for p in sources if p.is_dir()])
    except UserError:
        return None
