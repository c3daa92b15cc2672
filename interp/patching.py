"""Activation patching and channel ablation at any named layer.

- :func:`patch_activations`: run a *source* batch, cache the activation at ``layer``,
  then run a *target* batch with that activation (all of it, or chosen channels)
  written in; e.g. yellow-line frames into the same levels drawn with a red line.
- :func:`ablate_channels`: zero- or mean-ablate chosen channels of a layer.

Both return a :class:`PatchResult`: the clean and edited outputs and, per observation,
the total-variation distance and KL divergence between the clean and edited action
distributions, the change in value and whether the greedy action changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from gmg.interp.hooks import get_hook_point, run_with_cache, run_with_hooks
from gmg.training.errors import UserError


class PatchError(UserError, ValueError):
    """Patching inputs that do not fit (batch sizes, channels, shapes)."""


@dataclass
class PatchResult:
    """Clean vs. edited outputs; every tensor has the batch first.

    ``clean_logits``, ``patched_logits``: (B, A); ``clean_value``, ``patched_value``: (B,);
    ``tv``: total variation 0.5 * sum |p - q| (B,); ``kl``: KL(p_clean || p_patched) (B,);
    ``value_change``: patched - clean (B,); ``action_changed``: bool (B,) greedy action differs.
    """

    clean_logits: torch.Tensor
    clean_value: torch.Tensor
    patched_logits: torch.Tensor
    patched_value: torch.Tensor

    @property
    def tv(self) -> torch.Tensor:
        return total_variation(self.clean_logits, self.patched_logits)

    @property
    def kl(self) -> torch.Tensor:
        return kl_divergence(self.clean_logits, self.patched_logits)

    @property
    def value_change(self) -> torch.Tensor:
        return self.patched_value - self.clean_value

    @property
    def action_changed(self) -> torch.Tensor:
        return self.clean_logits.argmax(-1) != self.patched_logits.argmax(-1)

    def summary(self) -> dict[str, float]:
        """Batch means: tv, kl, value_change, abs_value_change, action_changed."""
        return {
            "tv": float(self.tv.mean()),
            "kl": float(self.kl.mean()),
            "value_change": float(self.value_change.mean()),
            "abs_value_change": float(self.value_change.abs().mean()),
            "action_changed": float(self.action_changed.float().mean()),
        }


def total_variation(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """(B,) total-variation distance between the softmax distributions of two (B, A) logits."""
    return 0.5 * (logits_p.softmax(-1) - logits_q.softmax(-1)).abs().sum(-1)


def kl_divergence(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """(B,) KL(p || q) of two (B, A) logits, in nats."""
    logp, logq = logits_p.log_softmax(-1), logits_q.log_softmax(-1)
    return (logp.exp() * (logp - logq)).sum(-1).clamp(min=0.0)


def _channel_mask(activation: torch.Tensor, channels: Sequence[int] | None, layer: str) -> torch.Tensor | None:
    """Bool mask broadcastable to ``activation`` selecting dim-1 ``channels``; None = all."""
    if channels is None:
        return None
    if activation.dim() < 2:
        raise PatchError(f"{layer} has no channel dimension (shape {tuple(activation.shape)})")
    n = activation.shape[1]
    chans = [int(c) for c in channels]
    bad = [c for c in chans if not 0 <= c < n]
    if bad or not chans:
        raise PatchError(f"channels {bad or chans} out of range for {layer}, which has {n} channels (0-{n - 1})")
    mask = torch.zeros(n, dtype=torch.bool, device=activation.device)
    mask[chans] = True
    return mask.view(1, n, *([1] * (activation.dim() - 2)))


def replace_hook(replacement: torch.Tensor, channels: Sequence[int] | None = None, layer: str = "layer"):
    """Hook fn writing ``replacement`` (broadcastable to the activation) into ``channels`` (None = all)."""

    def hook_fn(activation: torch.Tensor, *, hook) -> torch.Tensor:
        new = replacement.to(activation.device, activation.dtype).expand_as(activation)
        mask = _channel_mask(activation, channels, layer)
        return new.clone() if mask is None else torch.where(mask, new, activation)

    return hook_fn


@torch.no_grad()
def patch_activations(
    model: nn.Module,
    source_obs: torch.Tensor,
    target_obs: torch.Tensor,
    layer: str,
    channels: Sequence[int] | None = None,
) -> PatchResult:
    """Run ``target_obs`` with the activation at ``layer`` taken from ``source_obs``.

    Parameters
    ----------
    source_obs, target_obs : uint8 (B, H, W, 3) or float (B, 3, H, W); the source batch
        has the target's size or size 1 (then broadcast to every target).
    layer : a hook point name (see ``gmg.training.model.hook_names``)
    channels : dim-1 indices to patch (conv channels, or 0-2 at ``hook_obs``); None = all

    Returns
    -------
    PatchResult comparing the target's clean outputs with the patched ones.
    """
    get_hook_point(model, layer)
    if source_obs.shape[0] not in (1, target_obs.shape[0]):
        raise PatchError(f"source batch {source_obs.shape[0]} must be 1 or the target's {target_obs.shape[0]}")
    _, cache = run_with_cache(model, source_obs, names=[layer])
    clean_logits, clean_value = model(target_obs)
    logits, value = run_with_hooks(model, target_obs, hooks=[(layer, replace_hook(cache[layer], channels, layer))])
    return PatchResult(clean_logits, clean_value, logits, value)


@torch.no_grad()
def layer_mean(model: nn.Module, obs: torch.Tensor, layer: str) -> torch.Tensor:
    """Mean activation at ``layer`` over the batch ``obs``: shape (1, *activation.shape[1:])."""
    _, cache = run_with_cache(model, obs, names=[layer])
    return cache[layer].mean(0, keepdim=True)


@torch.no_grad()
def ablate_channels(
    model: nn.Module,
    obs: torch.Tensor,
    layer: str,
    channels: Sequence[int] | None,
    value: str | float = "zero",
    reference: torch.Tensor | None = None,
) -> PatchResult:
    """Zero-, constant- or mean-ablate ``channels`` (None = all) of ``layer`` on ``obs``.

    ``value="mean"`` replaces each channel by its mean activation (per position) over
    ``reference`` observations (default: ``obs`` itself).
    """
    get_hook_point(model, layer)
    if value == "mean":
        fill = layer_mean(model, obs if reference is None else reference, layer)
    elif value == "zero":
        fill = torch.zeros(())
    else:
        try:
            fill = torch.tensor(float(value))
        except (TypeError, ValueError):
            raise PatchError(f"ablation value {value!r} is not 'zero', 'mean' or a number") from None
    clean_logits, clean_value = model(obs)
    logits, val = run_with_hooks(model, obs, hooks=[(layer, replace_hook(fill, channels, layer))])
    return PatchResult(clean_logits, clean_value, logits, val)
