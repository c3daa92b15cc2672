"""Hook points: read and edit any named activation of an agent, leaving nothing behind.

Modelled on TransformerLens. Every activation of :class:`gmg.training.model.ImpalaAgent`
passes through a ``HookPoint`` with a fixed dotted name (``hook_obs``,
``blocks.0.hook_conv``, ``blocks.1.res0.hook_relu1``, ``hook_logits`` ... see
``gmg.training.model.hook_names``). A hook function has the signature
``fn(activation, *, hook) -> tensor | None``: ``hook`` is the ``HookPoint`` (``hook.name``
is its name); returning ``None`` keeps the activation, returning a (new) tensor replaces
it. Never edit ``activation`` in place.

One context manager, :func:`hooks`, attaches hooks and removes every one of them in a
``finally`` block, so they are gone when the block ends, even when a hook raises.
:func:`run_with_cache` and :func:`run_with_hooks` are built on it::

    (logits, value), cache = run_with_cache(model, obs, names=["hook_obs", "blocks.0.hook_conv"])
    logits, value = run_with_hooks(model, obs, hooks=[("hook_obs", Isolate("g").hook_fn)])
    with hooks(model, fwd_hooks=[("hook_obs", fn)]):
        ...  # any number of forward (and backward) passes
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from gmg.training.errors import UserError
from gmg.training.model import HookPoint

HookFn = Callable[..., "torch.Tensor | None"]
NamesFilter = "None | str | Sequence[str] | Callable[[str], bool]"


class HookNameError(UserError, ValueError):
    """A hook point name the model does not have; the message lists the valid names."""


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """Name -> ``HookPoint`` of every hook point of ``model``, in forward order."""
    points = getattr(model, "hook_points", None)
    if isinstance(points, dict):
        return points
    return {name: m for name, m in model.named_modules() if isinstance(m, HookPoint)}


def get_hook_point(model: nn.Module, name: str) -> HookPoint:
    """The ``HookPoint`` called ``name``; :class:`HookNameError` listing the valid names if none."""
    points = hook_points(model)
    if name not in points:
        raise HookNameError(f"unknown hook point {name!r}; valid names: {', '.join(points)}")
    return points[name]


def resolve_names(model: nn.Module, names=None) -> list[str]:
    """Hook names selected by ``names``: None (all), one name, a list of names, or a predicate.

    Explicit names are checked (:class:`HookNameError`); the result keeps forward order.
    """
    points = hook_points(model)
    if names is None:
        return list(points)
    if callable(names):
        return [n for n in points if names(n)]
    wanted = [names] if isinstance(names, str) else list(names)
    for n in wanted:
        get_hook_point(model, n)
    wanted_set = set(wanted)
    return [n for n in points if n in wanted_set]


def _forward_wrapper(fn: HookFn, point: HookPoint):
    def forward_hook(module, inputs, output):
        return fn(output, hook=point)

    return forward_hook


def _backward_wrapper(fn: HookFn, point: HookPoint):
    def backward_hook(module, grad_input, grad_output):
        # HookPoint is the identity: the gradient w.r.t. its output is the one to read/edit
        new = fn(grad_output[0], hook=point)
        return None if new is None else (new,)

    return backward_hook


@contextmanager
def hooks(
    model: nn.Module,
    fwd_hooks: Iterable[tuple[str, HookFn]] = (),
    bwd_hooks: Iterable[tuple[str, HookFn]] = (),
) -> Iterator[nn.Module]:
    """Attach hooks for the duration of the ``with`` block; always remove all of them.

    Parameters
    ----------
    fwd_hooks : iterable of (name, fn)
        ``fn(activation, *, hook) -> tensor | None`` runs on the activation at ``name``.
        Several hooks on one point run in the order given, each seeing the previous edit.
    bwd_hooks : iterable of (name, fn)
        ``fn(grad, *, hook) -> tensor | None`` runs on the gradient w.r.t. the activation
        at ``name``. Call ``.backward()`` *inside* the block: the hooks are gone after it.

    Every name is checked before anything is attached (:class:`HookNameError`).
    """
    fwd = [(get_hook_point(model, name), fn) for name, fn in fwd_hooks]
    bwd = [(get_hook_point(model, name), fn) for name, fn in bwd_hooks]
    handles = []
    try:
        for point, fn in fwd:
            handles.append(point.register_forward_hook(_forward_wrapper(fn, point)))
        for point, fn in bwd:
            handles.append(point.register_full_backward_hook(_backward_wrapper(fn, point)))
        yield model
    finally:
        for handle in reversed(handles):
            handle.remove()


def run_with_hooks(
    model: nn.Module,
    obs: torch.Tensor,
    hooks: Sequence[tuple[str, HookFn]] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass with the given forward hooks; returns ``model(obs)``.

    ``obs``: uint8 (B, H, W, 3) or float (B, 3, H, W) in [0, 1]. Returns logits
    (B, num_actions) and value (B,).
    """
    with _hooks_context(model, fwd_hooks=hooks):
        return model(obs)


_hooks_context = hooks  # run_with_hooks's parameter shadows the context manager's name


def run_with_cache(
    model: nn.Module,
    obs: torch.Tensor,
    names=None,
    hooks: Sequence[tuple[str, HookFn]] = (),
    detach: bool = True,
) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
    """One forward pass that records activations.

    Parameters
    ----------
    obs : uint8 (B, H, W, 3) or float (B, 3, H, W) in [0, 1]
    names : None (every hook point), a name, a list of names, or a predicate ``str -> bool``
    hooks : forward hooks (name, fn) applied first, so the cache sees their edits
    detach : store detached tensors (default); False keeps them in the autograd graph

    Returns
    -------
    (logits (B, num_actions), value (B,)), and a dict name -> activation tensor (batch first).
    """
    cache: dict[str, torch.Tensor] = {}

    def saver(name: str) -> HookFn:
        def save(activation: torch.Tensor, *, hook: HookPoint) -> None:
            cache[name] = activation.detach() if detach else activation

        return save

    selected = resolve_names(model, names)
    with _hooks_context(model, fwd_hooks=[*hooks, *((n, saver(n)) for n in selected)]):
        output = model(obs)
    return output, cache
