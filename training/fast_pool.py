"""A faster max-pool backward for the PPO update on a GPU: the gradient scattered through the
forward's argmax indices.

PyTorch's channels-last max-pool backward took a quarter of a paper-preset minibatch on an
H200 (14.5 of 56 ms). Adding the output gradient into a float32 buffer at the saved indices
(``scatter_add``) gives the same gradient (ties go where the forward's indices say, as in
PyTorch's kernel) at 11.8 ms instead of 20.0 for the network's three pools, forward and
backward (``scripts/profile_train.py --pools 8192``; the measured gradients were identical).

Used by training only, inside ``scatter_max_pool_backward(model)``: the modules stay
``nn.MaxPool2d`` (captum's DeepLift recognises max-pools by their exact type).
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn
from torch.nn import functional as F

FAST_DEVICES = ("cuda",)  # where the scatter is faster; tests add "cpu" to check its logic


class _ScatterMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding):
        y, idx = F.max_pool2d(x, kernel_size, stride, padding, return_indices=True)
        ctx.save_for_backward(idx)
        ctx.shape = x.shape
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (idx,) = ctx.saved_tensors
        n, c, h, w = ctx.shape
        # (N, H, W, C) is a channels-last tensor's memory order, so these are views there
        acc = torch.promote_types(grad_out.dtype, torch.float32)  # sums in float at least, as PyTorch's
        grad = torch.zeros((n, h * w, c), dtype=acc, device=grad_out.device)
        grad.scatter_add_(1, idx.permute(0, 2, 3, 1).reshape(n, -1, c),
                          grad_out.permute(0, 2, 3, 1).reshape(n, -1, c).to(acc))
        grad = grad.to(grad_out.dtype).view(n, h, w, c).permute(0, 3, 1, 2)
        return grad, None, None, None


def scatter_max_pool(x: torch.Tensor, kernel_size, stride, padding) -> torch.Tensor:
    """``F.max_pool2d`` whose backward scatters the gradient (the fast path's autograd function)."""
    return _ScatterMaxPool.apply(x, kernel_size, stride, padding)


def _forward(pool: nn.MaxPool2d, x: torch.Tensor) -> torch.Tensor:
    plain = (x.device.type not in FAST_DEVICES or not torch.is_grad_enabled() or not x.requires_grad
             or x.dim() != 4 or pool.dilation not in (1, (1, 1)) or pool.ceil_mode or pool.return_indices)
    if plain:
        return nn.MaxPool2d.forward(pool, x)
    return scatter_max_pool(x, pool.kernel_size, pool.stride, pool.padding)


@contextlib.contextmanager
def scatter_max_pool_backward(model: nn.Module):
    """Within this block, ``model``'s max-pools back-propagate by scatter on a GPU."""
    pools = [m for m in model.modules() if type(m) is nn.MaxPool2d]
    for m in pools:
        m.forward = functools.partial(_forward, m)
    try:
        yield model
    finally:
        for m in pools:
            del m.forward
