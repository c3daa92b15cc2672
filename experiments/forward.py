"""Forward passes of a population's networks over batched frames, shared by sampled and exact
evaluation: each agent's network on its own frames, in CPU-cache-sized passes, with its
intervention (object-local ones get the object masks of the frames in each pass)."""

from __future__ import annotations

import contextlib

import torch

from gmg.training.env import NUM_ACTIONS

# frames per forward pass on a CPU: a small batch's activations stay in cache (the cpu preset's
# network, 2-core EPYC: 200 us per frame in batches of 64 against 490 in batches of 1024)
CPU_FORWARD_FRAMES = 64


def forward_groups(models: list[torch.nn.Module], obs: torch.Tensor, group: torch.Tensor, masks: torch.Tensor | None,
                   local: list | None = None, stats: dict | None = None) -> torch.Tensor:
    """float32 (n, 15) logits: model k on the frames of group k (``group`` int64 (n,), sorted, so
    each group's frames form one contiguous slice), in passes of at most ``CPU_FORWARD_FRAMES``
    on a CPU; ``local[k]`` (an ``ObjectLocal`` or None) gets the object ``masks`` of its frames.
    ``stats["forwards"]`` (if given) counts the frames.

    Model k's passes hold only group k's frames, so an agent's logits are the same alone or beside
    other agents, on any CPU. Another chunk size or set of frames changes the passes, and oneDNN
    picks kernels by batch size: logits may then differ in the last bits (and, rarely, a sampled
    action with them)."""
    if stats is not None:
        stats["forwards"] = stats.get("forwards", 0) + obs.shape[0]
    counts = torch.bincount(group, minlength=len(models)).tolist()
    step = CPU_FORWARD_FRAMES if obs.device.type == "cpu" else max(counts + [1])
    parts, start = [], 0
    for k, (model, c) in enumerate(zip(models, counts)):
        for lo in range(start, start + c, step):
            part = slice(lo, min(lo + step, start + c))
            with local[k].masked(masks[part]) if local and local[k] is not None else contextlib.nullcontext():
                parts.append(model(obs[part])[0].float())
        start += c
    return torch.cat(parts) if parts else torch.zeros(0, NUM_ACTIONS, device=obs.device)



def enter_intervention(intervention, model: torch.nn.Module, stack: contextlib.ExitStack) -> None:
    """Enter ``intervention`` (an ``Intervention`` or a context-manager factory) on ``model`` in ``stack``."""
    if intervention is None:
        return
    ctx = intervention.apply(model) if hasattr(intervention, "apply") else intervention(model)
    stack.enter_context(ctx)
