"""The IMPALA CNN actor-critic, built from shapes and widths, every step hookable.

Layout (names are the hook points ``interp`` uses)::

    hook_obs                      float (B, 3, H, W) in [0, 1], where RGB edits act
    blocks.{i}.conv -> hook_conv -> pool -> hook_pool
    blocks.{i}.res{j}: relu0 -> hook_relu0 -> conv0 -> hook_conv0 -> relu1 -> hook_relu1
                       -> conv1 -> hook_conv1 -> add (with the block input) -> hook_out
    relu -> flatten -> fc -> hook_fc -> relu_fc -> hook_hidden
    policy -> hook_logits          value -> hook_value (B,)

Every nonlinearity, the residual sum and the pooling are modules of their own, each used
once per forward pass and never in place (captum's DeepLift relies on this).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.distributions import Categorical

from gmg.training.env import NUM_ACTIONS, OBS_SIZE


class HookPoint(nn.Module):
    """Identity module marking a readable, editable activation (see ``gmg.interp.hooks``)."""

    def __init__(self) -> None:
        super().__init__()
        self.name: str = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Add(nn.Module):
    """Residual sum as a module, so it can be hooked and attributed through."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.relu0 = nn.ReLU()
        self.hook_relu0 = HookPoint()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.hook_conv0 = HookPoint()
        self.relu1 = nn.ReLU()
        self.hook_relu1 = HookPoint()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.hook_conv1 = HookPoint()
        self.add = Add()
        self.hook_out = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hook_relu0(self.relu0(x))
        h = self.hook_conv0(self.conv0(h))
        h = self.hook_relu1(self.relu1(h))
        h = self.hook_conv1(self.conv1(h))
        return self.hook_out(self.add(x, h))


class ConvSequence(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.hook_conv = HookPoint()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.hook_pool = HookPoint()
        self.res0 = ResidualBlock(out_channels)
        self.res1 = ResidualBlock(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_pool(self.pool(self.hook_conv(self.conv(x))))
        return self.res1(self.res0(x))


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and widths of the network; stored with every checkpoint."""

    widths: tuple[int, ...] = (16, 32, 32)
    hidden: int = 256
    num_actions: int = NUM_ACTIONS
    obs_size: int = OBS_SIZE

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(
            widths=tuple(int(w) for w in d["widths"]),
            hidden=int(d["hidden"]),
            num_actions=int(d["num_actions"]),
            obs_size=int(d["obs_size"]),
        )


class ImpalaAgent(nn.Module):
    """Actor-critic over uint8 frames (B, H, W, 3) or float inputs (B, 3, H, W) in [0, 1]."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        self.hook_obs = HookPoint()
        chans = [3, *config.widths]
        self.blocks = nn.ModuleList(ConvSequence(chans[i], chans[i + 1]) for i in range(len(config.widths)))
        side = config.obs_size
        for _ in config.widths:
            side = (side + 1) // 2
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(config.widths[-1] * side * side, config.hidden)
        self.hook_fc = HookPoint()
        self.relu_fc = nn.ReLU()
        self.hook_hidden = HookPoint()
        self.policy = nn.Linear(config.hidden, config.num_actions)
        self.hook_logits = HookPoint()
        self.value = nn.Linear(config.hidden, 1)
        self.hook_value = HookPoint()
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name
        self._init_weights()

    def _init_weights(self) -> None:
        # CleanRL's procgen init: orthogonal, small gain on the policy head
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(m.weight, 2**0.5)
                nn.init.zeros_(m.bias)
        nn.init.orthogonal_(self.policy.weight, 0.01)
        nn.init.orthogonal_(self.value.weight, 1.0)

    @property
    def hook_points(self) -> dict[str, HookPoint]:
        return {m.name: m for m in self.modules() if isinstance(m, HookPoint)}

    @staticmethod
    def preprocess(obs: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]; floats pass unchanged."""
        if obs.dtype == torch.uint8:
            return obs.permute(0, 3, 1, 2).float().div(255.0)
        return obs

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, num_actions) and value (B,)."""
        x = self.hook_obs(self.preprocess(obs))
        for block in self.blocks:
            x = block(x)
        x = self.flatten(self.relu(x))
        h = self.hook_hidden(self.relu_fc(self.hook_fc(self.fc(x))))
        logits = self.hook_logits(self.policy(h))
        value = self.hook_value(self.value(h).squeeze(-1))
        return logits, value

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.forward(obs)[1]

    def get_action_and_value(self, obs: torch.Tensor, action: torch.Tensor | None = None):
        """(action, log_prob, entropy, value); samples an action when none is given."""
        logits, value = self.forward(obs)
        # no argument validation: it syncs with a GPU at every call, and PPO checks for NaN itself
        dist = Categorical(logits=logits.float(), validate_args=False)
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), value.float()


def hook_names(config: ModelConfig = ModelConfig()) -> tuple[str, ...]:
    """Every hook point name of a network with this config, in forward order."""
    return tuple(ImpalaAgent(config).hook_points)


def unwrap(model: nn.Module) -> "ImpalaAgent":
    """The network itself, also when ``model`` is its ``torch.compile`` wrapper."""
    return getattr(model, "_orig_mod", model)
