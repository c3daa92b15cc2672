"""Training configuration: one dataclass, named presets, overrides from CLI or TOML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path

from gmg.training.env import LEVEL_SOURCES, OBS_SIZE, TIMEOUT, WORLD_DIM, EnvConfig
from gmg.training.errors import UserError
from gmg.training.levels import LevelError, check_world_dim
from gmg.training.model import ModelConfig
from gmg.training.objects import parse_object
from gmg.training.render import RENDERS


class ConfigError(UserError, ValueError):
    """A preset, field or value that cannot be used."""


@dataclass
class RunSettings:
    """How a run computes, not what it learns: a resumed run may change any of these."""

    bf16: bool = False  # bf16 autocast (10x slower on CPUs without native bf16; see docs/training.md)
    channels_last: bool = True
    compile: bool = False  # torch.compile the network
    cudnn_benchmark: bool = True  # on a GPU, let cuDNN time its convolution algorithms once per shape
    cuda_graph: bool = True  # on a GPU, replay the rollout step as one CUDA graph (lone seeds, no compile)
    checkpoint_every: int = 20  # updates between resumable checkpoints
    snapshot_every: int = 0  # keep the weights every N updates under snapshots/ (0: never), to replay training
    threads: int = 0  # torch CPU threads; 0 = all cores


@dataclass
class TrainConfig:
    """The PPO recipe of one run (CleanRL's names), with its ``run`` settings beside it.

    Files (meta.json, resume.pt, population.json) hold both as one flat dict (``to_dict``).
    """

    preset: str = "cpu"
    seed: int = 0  # the initial weights (and, without data_seed, everything else)
    # the order of training levels, action sampling and minibatch order; None: ``seed`` sets them
    # too (the original's way, and every agent trained before this field existed)
    data_seed: int | None = None
    total_timesteps: int = 100_000  # env steps
    num_envs: int = 64
    num_steps: int = 32  # rollout length per env
    num_minibatches: int = 16
    update_epochs: int = 1
    learning_rate: float = 2e-3
    anneal_lr: bool = True  # linearly to 0 over total_timesteps (CleanRL's)
    gamma: float = 0.95
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_vloss: bool = False
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    scale_rewards: bool = True  # divide rewards by a running std of the discounted return
    # that return's discount (None: gamma; the original's VecNormalize used 0.99 beside GAE's 0.999)
    return_gamma: float | None = None
    reward_clip: float = 0.0  # clip scaled rewards to +-this (0: never; the original clipped at 10)
    init: str = "orthogonal"  # initial weights: orthogonal (CleanRL's) or xavier (the original's)
    widths: tuple[int, ...] = (8, 16, 16)
    hidden: int = 256
    goal: str = "yellow_line"
    background: str = "black"
    world_dim: int = WORLD_DIM
    obs_size: int = OBS_SIZE
    num_levels: int = 100_000
    start_level: int = 0
    levels: str = "hashed"  # where levels come from: gmg's hash of the id, or "procgen" (the original's)
    timeout: int = TIMEOUT
    # how frames are drawn: procgen's own drawing, or "box" (area-averaged; a file without the
    # field, every agent trained before it, means box: ``MISSING_MEANS``)
    render: str = "procgen"
    run: RunSettings = field(default_factory=RunSettings)

    # derived sizes, computed in one place
    batch_size: int = field(init=False, default=0)
    minibatch_size: int = field(init=False, default=0)
    num_iterations: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.batch_size = self.num_envs * self.num_steps
        self.minibatch_size = self.batch_size // max(self.num_minibatches, 1)
        self.num_iterations = -(-self.total_timesteps // max(self.batch_size, 1))

    def validate(self) -> "TrainConfig":
        def bad(msg: str) -> ConfigError:
            return ConfigError(msg)

        for name in ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs", "hidden", "num_levels",
                     "timeout"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.data_seed is not None and not (0 <= self.data_seed < DATA_SEED_BASE and 0 <= self.seed < DATA_SEED_BASE):
            raise bad(f"with a data seed, both seeds must be in 0-{DATA_SEED_BASE - 1} (the agent id is "
                      f"seed x {DATA_SEED_BASE} + data seed), got seed {self.seed}, data seed {self.data_seed}")
        if self.run.checkpoint_every < 1:
            raise bad(f"checkpoint_every must be at least 1, got {self.run.checkpoint_every}")
        if self.run.snapshot_every < 0:
            raise bad(f"snapshot_every must be 0 (never) or a count of updates, got {self.run.snapshot_every}")
        if self.init not in INITS:
            raise bad(f"unknown init {self.init!r}: use {' or '.join(INITS)}")
        if self.reward_clip < 0:
            raise bad(f"reward_clip must be 0 (never) or positive, got {self.reward_clip}")
        if not self.learning_rate > 0:
            raise bad(f"learning_rate must be positive, got {self.learning_rate}")
        for name in ("gamma", "gae_lambda", "return_gamma"):
            if getattr(self, name) is not None and not 0 <= getattr(self, name) <= 1:
                raise bad(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("clip_coef", "ent_coef", "vf_coef", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise bad(f"{name} must not be negative, got {getattr(self, name)}")
        if self.batch_size % self.num_minibatches:
            raise bad(
                f"batch of num_envs x num_steps = {self.batch_size} does not split into "
                f"{self.num_minibatches} minibatches; change num_minibatches or num_steps"
            )
        if self.norm_adv and self.minibatch_size < 2:
            raise bad(f"minibatches of {self.minibatch_size} sample cannot normalise advantages; "
                      "use fewer num_minibatches or set norm_adv=false")
        if self.run.threads < 0:
            raise bad(f"threads must be 0 (all cores) or a positive count, got {self.run.threads}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise bad(f"widths must be positive channel counts, got {list(self.widths)}")
        try:
            check_world_dim(self.world_dim)
            parse_object(self.goal)
        except (LevelError, ValueError) as e:
            raise bad(str(e)) from None
        if self.background not in ("black", "grey", "textured"):
            raise bad(f"unknown background {self.background!r}: use black, grey or textured")
        if self.levels not in LEVEL_SOURCES:
            raise bad(f"unknown levels {self.levels!r}: use {' or '.join(LEVEL_SOURCES)}")
        if self.render not in RENDERS:
            raise bad(f"unknown render {self.render!r}: use {' or '.join(RENDERS)}")
        return self

    def env_config(self) -> EnvConfig:
        return EnvConfig(objects=(self.goal,), world_dim=self.world_dim, size=self.obs_size,
                         background=self.background, timeout=self.timeout, levels=self.levels,
                         render=self.render)

    def model_config(self) -> ModelConfig:
        return ModelConfig(widths=self.widths, hidden=self.hidden, obs_size=self.obs_size)

    @property
    def level_seed(self) -> int:
        """The seed of the order of training levels (and of the rest of the data stream)."""
        return self.seed if self.data_seed is None else self.data_seed

    @property
    def agent_id(self) -> int:
        """The agent's id (folder ``agent-XXXX``, results keys): the seed, or with a data seed
        ``seed * DATA_SEED_BASE + data_seed`` (init 3, data 101 -> 30101)."""
        return self.seed if self.data_seed is None else self.seed * DATA_SEED_BASE + self.data_seed

    def with_run(self, **settings) -> "TrainConfig":
        """This recipe with some run settings changed."""
        return dataclasses.replace(self, run=dataclasses.replace(self.run, **settings))

    def to_dict(self) -> dict:
        """Recipe and run settings as one flat dict (the form files hold)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "run"}
        d["widths"] = list(self.widths)
        for name, default in OMITTED_AT_DEFAULT.items():  # files as before these fields existed
            if d[name] == default:
                del d[name]
        return {**d, **dataclasses.asdict(self.run)}

    @property
    def normaliser_gamma(self) -> float:
        """The discount of the return whose running std scales rewards."""
        return self.gamma if self.return_gamma is None else self.return_gamma


DATA_SEED_BASE = 10_000
INITS = ("orthogonal", "xavier")
# recipe fields newer than the first agents: left out of files while at their default, so that
# files (and the resume check) stay as they were; a file without one means the default
OMITTED_AT_DEFAULT = {"data_seed": None, "return_gamma": None, "reward_clip": 0.0, "init": "orthogonal",
                      "levels": "hashed"}
# recipe fields whose default changed: a file without one was written before the field existed,
# when it held this value (new runs default to procgen's drawing; the bundled zoo is "box")
MISSING_MEANS = {"render": "box"}

# the original's training code (procgenAISC's PPO): its hyperparameters, learning rate annealed
# linearly to 0, value loss clipped, Xavier-uniform init, rewards scaled by the std of a 0.99-discounted
# return and clipped at 10 while GAE discounts at 0.999, float32
PAPER = dict(
    total_timesteps=5_000_000, num_envs=256, num_steps=256, num_minibatches=8, update_epochs=3,
    learning_rate=5e-4, anneal_lr=True, gamma=0.999, gae_lambda=0.95, widths=(16, 32, 32), background="black",
    clip_vloss=True, init="xavier", return_gamma=0.99, reward_clip=10.0,
)
PRESETS: dict[str, dict] = {
    "paper": PAPER,
    "paper-textured": {**PAPER, "total_timesteps": 10_000_000, "background": "textured"},
    # measured on 2 CPU cores; see docs/training.md, "The cpu preset"
    "cpu": {},
    # the cpu recipe on procgen's textured backgrounds with twice the steps, as the original doubled
    # them for textures; measured in docs/zoo.md ("yellow-line-textured")
    "cpu-textured": {"background": "textured", "total_timesteps": 200_000},
    # the bundled zoo's recipe (called cpu when it was trained): 3 epochs, about 5x the time per agent
    "cpu-zoo": dict(total_timesteps=200_000, num_steps=64, num_minibatches=4, update_epochs=3, learning_rate=5e-4,
                    anneal_lr=False),
}
# a resumed run must match every field of the recipe but these: how long it goes (a run may be
# extended, unless anneal_lr ties the schedule to it) and the preset's name (a preset only names
# field values: cpu-zoo was once called cpu); the run settings may change freely
RUN_FIELDS = tuple(f.name for f in fields(RunSettings))
RUN_FIELDS_IGNORED_ON_RESUME = ("total_timesteps", "num_iterations", "preset", *RUN_FIELDS)
_INIT_FIELDS = {f.name: f for f in (*fields(TrainConfig), *fields(RunSettings)) if f.init and f.name != "run"}


def _coerce(name: str, value):
    if name not in _INIT_FIELDS:
        allowed = ", ".join(sorted(_INIT_FIELDS))
        raise ConfigError(f"unknown training field {name!r}; fields are: {allowed}")
    default = getattr(RunSettings() if name in RUN_FIELDS else TrainConfig(), name)
    try:
        if default is None:  # optional: data_seed (int), return_gamma (float)
            if value is None or str(value).strip().lower() in ("", "none"):
                return None
            return float(value) if "float" in str(_INIT_FIELDS[name].type) else int(value)
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
            return tuple(int(v) for v in value)
        if isinstance(default, int):
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"field {name} expects {type(default).__name__}, got {value!r}") from None


def config_from_dict(saved: dict) -> TrainConfig:
    """The config a file recorded (``TrainConfig.to_dict``'s flat form: meta.json's ``train``);
    derived sizes are recomputed, fields this version does not know are refused."""
    values = {**OMITTED_AT_DEFAULT, **MISSING_MEANS, **{k: v for k, v in saved.items() if k in _INIT_FIELDS}}
    preset = str(saved.get("preset", "cpu"))
    return make_config(preset if preset in PRESETS else "cpu", values)


def make_config(preset: str = "cpu", overrides: dict | None = None, toml_path: str | Path | None = None) -> TrainConfig:
    """A validated config: preset, then TOML file, then explicit overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    if toml_path is not None:
        import tomllib

        try:
            with open(toml_path, "rb") as f:
                values.update(tomllib.load(f))
        except FileNotFoundError:
            raise ConfigError(f"config file {toml_path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {toml_path} is not valid TOML: {e}") from None
    values.update(overrides or {})
    values.pop("preset", None)
    kwargs = {k: _coerce(k, v) for k, v in values.items()}
    run = RunSettings(**{k: kwargs.pop(k) for k in RUN_FIELDS if k in kwargs})
    return TrainConfig(preset=preset, run=run, **kwargs).validate()
