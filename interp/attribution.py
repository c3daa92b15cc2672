"""Captum attributions of an action's logit w.r.t. the float input, per channel and per cell.

The input space is ``hook_obs``'s: float (B, 3, H, W) in [0, 1]. Methods:
``"ig"`` (IntegratedGradients, with its convergence delta), ``"saliency"`` (signed
gradient) and ``"deeplift"`` (works because every ReLU, the residual add and the pool of
the IMPALA network are modules used once, never in place). The target is the chosen
action: by default the greedy action of the clean observation.

    result = attribute(model, obs, method="ig")
    channel_shares(result.attributions)          # (B, 3): each channel's share of |attr|
    cell_attribution(result.attributions, 5)     # (B, 5, 5): |attr| summed per maze cell
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gmg.interp.interventions import as_float_obs
from gmg.training.errors import UserError
from gmg.training.render import pixel_cells

METHODS = ("ig", "saliency", "deeplift")


class AttributionError(UserError, ValueError):
    """An unknown method, baseline or target."""


class LogitsOf(nn.Module):
    """Wraps an agent so captum sees ``float (B, 3, H, W) -> logits (B, A)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


@dataclass
class Attribution:
    """``attributions`` float (B, 3, H, W); ``target`` int64 (B,) the attributed action;
    ``delta`` (B,) convergence delta (IG, DeepLift) or None; ``method`` its name."""

    attributions: torch.Tensor
    target: torch.Tensor
    delta: torch.Tensor | None
    method: str


def _baseline(x: torch.Tensor, baseline) -> torch.Tensor:
    if baseline is None or (isinstance(baseline, str) and baseline == "black"):
        return torch.zeros_like(x)
    if isinstance(baseline, (int, float)):
        return torch.full_like(x, float(baseline))
    if isinstance(baseline, torch.Tensor):
        return as_float_obs(baseline).to(x.device, x.dtype).expand_as(x).clone()
    raise AttributionError(f"baseline {baseline!r}: use 'black', a number in [0, 1] or an observation tensor")


def attribute(
    model: nn.Module,
    obs: torch.Tensor,
    method: str = "ig",
    target: int | torch.Tensor | None = None,
    baseline="black",
    n_steps: int = 32,
    internal_batch_size: int | None = None,
) -> Attribution:
    """Attribute the ``target`` action's logit to the input pixels.

    Parameters
    ----------
    obs : uint8 (B, H, W, 3) or float (B, 3, H, W) in [0, 1]
    method : "ig", "saliency" or "deeplift"
    target : action index, int64 (B,), or None for each observation's greedy action
    baseline : "black" (zeros), a constant, or an observation batch (IG and DeepLift)
    n_steps, internal_batch_size : IG's integration steps and memory cap
    """
    from captum.attr import DeepLift, IntegratedGradients, Saliency

    method = method.lower()
    if method not in METHODS:
        raise AttributionError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)}")
    x = as_float_obs(obs).detach()
    wrapped = LogitsOf(model)
    if target is None:
        with torch.no_grad():
            target = wrapped(x).argmax(-1)
    target = torch.as_tensor(target, dtype=torch.int64, device=x.device).expand(x.shape[0]).clone()
    x = x.clone().requires_grad_(True)
    delta = None
    if method == "saliency":
        attr = Saliency(wrapped).attribute(x, target=target, abs=False)
    elif method == "ig":
        attr, delta = IntegratedGradients(wrapped).attribute(
            x, baselines=_baseline(x, baseline), target=target, n_steps=n_steps,
            internal_batch_size=internal_batch_size, return_convergence_delta=True,
        )
    else:
        with warnings.catch_warnings():  # captum announces its temporary hooks on every call
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
            attr, delta = DeepLift(wrapped).attribute(
                x, baselines=_baseline(x, baseline), target=target, return_convergence_delta=True
            )
    return Attribution(attr.detach(), target, None if delta is None else delta.detach(), method)


def channel_totals(attributions: torch.Tensor) -> torch.Tensor:
    """(B, 3) sum of |attribution| over the pixels of each RGB channel."""
    return attributions.abs().flatten(2).sum(-1)


def channel_shares(attributions: torch.Tensor) -> torch.Tensor:
    """(B, 3) each channel's share of the total absolute attribution (rows sum to 1; 0 if none)."""
    totals = channel_totals(attributions)
    s = totals.sum(-1, keepdim=True)
    return torch.where(s > 0, totals / s.clamp(min=torch.finfo(totals.dtype).tiny), torch.zeros_like(totals))


def masked_channel_shares(attributions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(B, 3) each channel's share of the absolute attribution on the pixels of ``masks``
    (bool (B, H, W): one object's pixels, ``MazeEnv.object_masks()[..., k]``) only; walls,
    floor and mouse do not count. Rows sum to 1 (0 where the mask holds no attribution)."""
    if masks.shape != (attributions.shape[0], *attributions.shape[2:]):
        raise AttributionError(f"masks of shape {tuple(masks.shape)} do not fit attributions {tuple(attributions.shape)}")
    return channel_shares(attributions * masks[:, None].to(attributions.dtype))


def cell_attribution(attributions: torch.Tensor, world_dim: int, absolute: bool = True) -> torch.Tensor:
    """(B, world_dim, world_dim) attribution summed per maze cell (over channels and pixels).

    Pixels are assigned to cells with ``gmg.training.render.pixel_cells`` (the renderer's grid).
    """
    b, _, h, w = attributions.shape
    if h != w:
        raise AttributionError(f"expected square frames, got {h}x{w}")
    a = attributions.abs() if absolute else attributions
    per_pixel = a.sum(1)  # (B, H, W)
    cells = torch.as_tensor(pixel_cells(world_dim, h), device=a.device)
    flat = (cells[:, None] * world_dim + cells[None, :]).reshape(-1)  # (H*W,)
    out = torch.zeros(b, world_dim * world_dim, dtype=a.dtype, device=a.device)
    out.index_add_(1, flat, per_pixel.reshape(b, -1))
    return out.view(b, world_dim, world_dim)


def mean_shares(attributions: torch.Tensor) -> np.ndarray:
    """(3,) channel shares of |attribution| pooled over the whole batch."""
    t = channel_totals(attributions).sum(0)
    s = float(t.sum())
    return (t / s).cpu().numpy() if s > 0 else np.zeros(3)
