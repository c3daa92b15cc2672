"""RGB input-channel interventions: small named objects that edit what the network sees.

Each intervention acts at ``hook_obs`` (float (B, 3, H, W) in [0, 1], after the one
uint8 -> float conversion) through the hook mechanism of :mod:`gmg.interp.hooks`:

- ``Identity()``: changes nothing (goes through the hook all the same).
- ``Ablate(channel, value="zero" | float | "mean", reference=obs)``: replace channel(s)
  by 0, a constant, or their per-pixel mean over a reference batch of observations.
- ``Isolate(channel)``: keep only the given channel(s); the others become 0.
- ``Permute("grb")``: output channel i shows input channel ``order[i]`` (swap R and G).
- ``Greyscale()``: every channel becomes the luma (or plain mean) of the three.
- ``ObjectLocal("ablate" | "isolate" | "scale", channel, target)``: the same edits on the
  pixels of one object only (``obj1``, ``obj2``, or ``goal`` = obj1, the single object of
  a training setting); every other pixel stays bit-identical. It needs the frames' object
  masks (``MazeEnv.object_masks``): evaluation passes them each step; in the hooks API,
  ``with iv.masked(masks): ...``.

Channels are ``"r"``, ``"g"``, ``"b"`` (or 0-2, case-insensitive), several at once as
``"rg"`` or a list; ``"all"`` is explicit. An intervention is itself a callable
``intervention(model) -> context manager`` (also ``intervention.apply(model)``), the
form evaluation takes::

    with Isolate("g")(model):
        logits, value = model(obs)

``parse_intervention`` reads the CLI form: ``none``, ``ablate:r``, ``ablate:r=0.5``,
``ablate:g=mean`` (needs a reference batch), ``isolate:G``, ``permute:grb``, ``grey``, and
object-local ``ablate:r@obj1``, ``isolate:g@goal``, ``scale:b=0.5@obj2``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import Sequence

import torch
from torch import nn

from gmg.interp.hooks import HookFn, hooks
from gmg.training.errors import UserError
from gmg.training.model import ImpalaAgent

CHANNELS = ("r", "g", "b")
OBS_HOOK = "hook_obs"
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


class InterventionError(UserError, ValueError):
    """A channel, value or intervention spec that does not exist."""


def parse_channels(channel: str | int | Sequence[str | int]) -> tuple[int, ...]:
    """Channel indices (sorted, unique) from "r"/"g"/"b", 0-2, "rg", a list, or "all"."""
    allowed = "'r', 'g', 'b' (or 0-2, several as 'rg' or a list), or 'all'"
    if isinstance(channel, bool):
        raise InterventionError(f"unknown channel {channel!r}; allowed: {allowed}")
    if isinstance(channel, int):
        items: list = [channel]
    elif isinstance(channel, str):
        text = channel.strip().lower()
        if text == "all":
            return (0, 1, 2)
        items = list(text) if text and all(c in CHANNELS for c in text) else [text]
    else:
        items = list(channel)
        if not items:
            raise InterventionError(f"no channel given; allowed: {allowed}")
    out = set()
    for item in items:
        if isinstance(item, str) and item.strip().lower() in CHANNELS:
            out.add(CHANNELS.index(item.strip().lower()))
        elif isinstance(item, str) and item.strip() in ("0", "1", "2"):
            out.add(int(item.strip()))
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 2:
            out.add(item)
        else:
            raise InterventionError(f"unknown channel {item!r}; allowed: {allowed}")
    return tuple(sorted(out))


def channel_label(channels: Sequence[int]) -> str:
    return "".join(CHANNELS[c] for c in channels)


def as_float_obs(obs: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) or float (B, 3, H, W) -> float (B, 3, H, W) in [0, 1]."""
    return ImpalaAgent.preprocess(obs)


class Intervention:
    """Base class: a pure hook function for ``hook_obs`` plus a context manager."""

    name = "intervention"

    def hook_fn(self, activation: torch.Tensor, *, hook) -> torch.Tensor | None:
        raise NotImplementedError

    def fwd_hooks(self) -> list[tuple[str, HookFn]]:
        return [(OBS_HOOK, self.hook_fn)]

    def hooks(self, model: nn.Module) -> AbstractContextManager:
        """Context manager applying this intervention to every forward pass of ``model``."""
        return hooks(model, fwd_hooks=self.fwd_hooks())

    def __call__(self, model: nn.Module) -> AbstractContextManager:
        return self.hooks(model)

    def apply(self, model: nn.Module) -> AbstractContextManager:
        """Same as :meth:`hooks` (the ``apply(model)`` form ``gmg.experiments.evaluate`` takes)."""
        return self.hooks(model)

    def edit(self, obs: torch.Tensor) -> torch.Tensor:
        """The edited float observation (B, 3, H, W), without a model."""
        x = as_float_obs(obs)
        out = self.hook_fn(x, hook=None)
        return x if out is None else out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Intervened(nn.Module):
    """``model`` with ``intervention`` active on every forward pass (hooks attached per call).

    Lets several interventions of one network play side by side as separate "models".
    """

    def __init__(self, model: nn.Module, intervention: Intervention):
        super().__init__()
        self.model = model
        self.intervention = intervention

    def forward(self, obs: torch.Tensor):
        with self.intervention(self.model):
            return self.model(obs)


class Identity(Intervention):
    """No change; the hook runs and returns None (keeps the activation)."""

    name = "none"

    def hook_fn(self, activation: torch.Tensor, *, hook) -> None:
        return None


class Ablate(Intervention):
    """Replace channel(s) by zero, a constant in [0, 1], or a per-pixel reference mean.

    ``reference``: uint8 (N, H, W, 3) or float (N, 3, H, W) observations, required for
    ``value="mean"``; the fill is their mean over N at each pixel, shape (3, H, W).
    """

    def __init__(self, channel, value: str | float = "zero", reference: torch.Tensor | None = None):
        self.channels = parse_channels(channel)
        self.value = value
        if isinstance(value, str):
            key = value.strip().lower()
            if key == "zero":
                self.fill: torch.Tensor | float = 0.0
            elif key == "mean":
                if reference is None:
                    raise InterventionError("ablate with value='mean' needs a reference batch of observations")
                self.fill = as_float_obs(reference).float().mean(0)
            else:
                try:
                    self.fill = float(key)
                except ValueError:
                    raise InterventionError(
                        f"ablation value {value!r} is not 'zero', 'mean' or a number in [0, 1]"
                    ) from None
        else:
            self.fill = float(value)
        if isinstance(self.fill, float) and not 0.0 <= self.fill <= 1.0:
            raise InterventionError(f"ablation value {self.fill} is outside [0, 1] (inputs are scaled to [0, 1])")
        if isinstance(self.fill, torch.Tensor):
            suffix = "=mean"
        else:
            suffix = "" if self.fill == 0 else f"={self.fill:g}"
        self.name = f"ablate:{channel_label(self.channels)}{suffix}"

    def hook_fn(self, activation: torch.Tensor, *, hook) -> torch.Tensor:
        mask = torch.zeros(3, 1, 1, dtype=torch.bool, device=activation.device)
        mask[list(self.channels)] = True
        if isinstance(self.fill, torch.Tensor):
            fill = self.fill.to(activation.device, activation.dtype).expand_as(activation)
        else:
            fill = torch.full_like(activation, self.fill)
        return torch.where(mask, fill, activation)


class Isolate(Intervention):
    """Keep only the given channel(s); every other channel becomes zero."""

    def __init__(self, channel):
        self.channels = parse_channels(channel)
        self.name = f"isolate:{channel_label(self.channels)}"

    def hook_fn(self, activation: torch.Tensor, *, hook) -> torch.Tensor:
        keep = torch.zeros(3, 1, 1, dtype=activation.dtype, device=activation.device)
        keep[list(self.channels)] = 1
        return activation * keep


class Permute(Intervention):
    """Output channel i shows input channel ``order[i]``: ``Permute("grb")`` swaps R and G."""

    def __init__(self, order: str | Sequence[str | int]):
        items = list(order.strip().lower()) if isinstance(order, str) else list(order)
        idx = [parse_channels(c) for c in items]
        if sorted(idx) != [(0,), (1,), (2,)]:
            raise InterventionError(f"permutation {order!r} must name each of r, g, b exactly once, e.g. 'grb'")
        self.order = tuple(c[0] for c in idx)
        self.name = f"permute:{channel_label(self.order)}"

    def hook_fn(self, activation: torch.Tensor, *, hook) -> torch.Tensor:
        return activation[:, list(self.order)]


class Greyscale(Intervention):
    """Every channel becomes a weighted sum of R, G, B: ``"luma"`` (BT.601) or ``"mean"``."""

    def __init__(self, weights: str | Sequence[float] = "luma"):
        if isinstance(weights, str):
            if weights not in ("luma", "mean"):
                raise InterventionError(f"greyscale weights {weights!r}: use 'luma', 'mean' or three numbers")
            w = LUMA if weights == "luma" else (1 / 3, 1 / 3, 1 / 3)
        else:
            w = tuple(float(x) for x in weights)
            if len(w) != 3:
                raise InterventionError(f"greyscale needs three weights, got {len(w)}")
        self.weights = w
        self.name = "grey" if weights == "luma" else f"grey:{weights if isinstance(weights, str) else w}"

    def hook_fn(self, activation: torch.Tensor, *, hook) -> torch.Tensor:
        w = torch.tensor(self.weights, dtype=activation.dtype, device=activation.device).view(1, 3, 1, 1)
        return (activation * w).sum(1, keepdim=True).expand_as(activation).clone()


OBJECT_TARGETS = {"obj1": 0, "goal": 0, "obj2": 1}


class ObjectLocal(Intervention):
    """Ablate, isolate or scale channel(s) on one object's pixels only.

    ``kind``: ``"ablate"`` (the channels become ``value``, default 0), ``"isolate"`` (the
    other channels become 0) or ``"scale"`` (the channels are multiplied by ``value`` and
    clipped to [0, 1]); ``target``: ``obj1``, ``obj2`` or ``goal`` (obj1). The object's
    pixels come from bool masks (B, H, W, K) of the frames being edited, set per forward
    pass with ``masked`` (evaluation does it from ``MazeEnv.object_masks``).
    """

    needs_masks = True

    def __init__(self, kind: str, channel, target: str = "goal", value: float | None = None):
        kind, target = kind.strip().lower(), target.strip().lower()
        if kind not in ("ablate", "isolate", "scale"):
            raise InterventionError(f"object-local intervention {kind!r}: use ablate, isolate or scale")
        if target not in OBJECT_TARGETS:
            raise InterventionError(f"unknown object {target!r}: use {', '.join(OBJECT_TARGETS)}")
        if kind == "isolate" and value is not None:
            raise InterventionError("isolate takes no value")
        if kind == "scale" and value is None:
            raise InterventionError("scale needs a factor: scale:C=FACTOR@OBJECT, e.g. scale:r=0.5@goal")
        self.value = float(value) if value is not None else 0.0
        if not (0.0 <= self.value <= 1.0 if kind == "ablate" else self.value >= 0.0):
            raise InterventionError(f"{kind} value {self.value:g} is outside {'[0, 1]' if kind == 'ablate' else '[0, inf)'}")
        self.kind, self.target, self.index = kind, target, OBJECT_TARGETS[target]
        self.channels = parse_channels(channel)
        suffix = f"={self.value:g}" if kind == "scale" or (kind == "ablate" and self.value) else ""
        self.name = f"{kind}:{channel_label(self.channels)}{suffix}@{target}"
        self.masks: torch.Tensor | None = None

    @contextmanager
    def masked(self, masks: torch.Tensor):
        """Use ``masks`` (bool (B, H, W, K), the frames' object pixels) for the forward passes inside."""
        previous, self.masks = self.masks, masks
        try:
            yield self
        finally:
            self.masks = previous

    def hook_fn(self, activation: torch.Tensor, *, hook) -> torch.Tensor:
        if self.masks is None:
            raise InterventionError(f"{self.name} needs the frames' object masks: use `with iv.masked(masks):`")
        if self.masks.shape[0] != activation.shape[0] or self.index >= self.masks.shape[-1]:
            raise InterventionError(f"{self.name}: masks of shape {tuple(self.masks.shape)} do not fit a batch of "
                                    f"{activation.shape[0]} frames with an object {self.target}")
        chosen = torch.zeros(3, 1, 1, dtype=torch.bool, device=activation.device)
        chosen[list(self.channels)] = True
        if self.kind == "ablate":
            edited = torch.where(chosen, torch.full_like(activation, self.value), activation)
        elif self.kind == "isolate":
            edited = torch.where(chosen, activation, torch.zeros_like(activation))
        else:
            edited = torch.where(chosen, (activation * self.value).clamp(0.0, 1.0), activation)
        pixels = self.masks[..., self.index].to(activation.device)[:, None]  # (B, 1, H, W)
        return torch.where(pixels, edited, activation)

    def edit(self, obs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """The edited float observation (B, 3, H, W) given the frames' object ``masks``."""
        with self.masked(masks if masks is not None else self.masks):
            return super().edit(obs)


FORMS = ("none, ablate:C, ablate:C=VALUE (0-1; =mean needs a reference batch, so the Python API only), "
         "isolate:C, permute:ORDER (e.g. grb), grey; on one object's pixels only: ablate:C@OBJ, "
         "ablate:C=VALUE@OBJ, isolate:C@OBJ, scale:C=FACTOR@OBJ with OBJ obj1, obj2 or goal")


def parse_intervention(text: str, reference: torch.Tensor | None = None) -> Intervention:
    """The intervention named by a CLI spec (case-insensitive).

    ``none`` | ``ablate:r`` | ``ablate:r=0.5`` | ``ablate:g=mean`` (with ``reference``) |
    ``isolate:G`` | ``isolate:rg`` | ``permute:grb`` | ``grey`` (``greyscale``, ``gray``) |
    ``ablate:r@obj1`` | ``isolate:g@goal`` | ``scale:b=0.5@obj2`` (``ObjectLocal``).
    """
    spec = str(text).strip().lower()
    if "@" in spec:
        body, _, target = spec.partition("@")
        kind, _, arg = body.partition(":")
        channel, _, value = arg.partition("=")
        if kind in ("ablate", "isolate", "scale") and channel:
            try:
                number = float(value) if value else None
            except ValueError:
                raise InterventionError(f"intervention {text!r}: {value!r} is not a number") from None
            return ObjectLocal(kind, channel, target, number)
        raise InterventionError(f"unknown intervention {text!r}; use one of: {FORMS}")
    kind, _, arg = spec.partition(":")
    if kind in ("none", "identity") and not arg:
        return Identity()
    if kind in ("grey", "gray", "greyscale", "grayscale"):
        return Greyscale(arg or "luma")
    if kind == "ablate" and arg:
        channel, _, value = arg.partition("=")
        return Ablate(channel, value or "zero", reference=reference)
    if kind == "isolate" and arg:
        return Isolate(arg)
    if kind == "permute" and arg:
        return Permute(arg)
    raise InterventionError(f"unknown intervention {text!r}; use one of: {FORMS}")
