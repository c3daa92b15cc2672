"""A step function captured once as a CUDA graph and replayed: one launch instead of hundreds.

A rollout step of the paper preset (network on 256 frames, sampling, env step, reward scaling)
launches a few hundred small kernels from Python; on an H200 that took 5.9 ms per step, half of
a whole PPO update, with the GPU mostly idle. Replaying a captured graph costs one launch.

A graph reads and writes fixed addresses, while the step code (the env, the reward scaler)
rebinds its state attributes to new tensors. ``GraphedStep`` therefore names that state as
(object, attribute) pairs: after each call their new values are copied into the tensors the
graph reads, and the attributes point at those again. Without ``capture`` the same write-back
and warm-up undo run eagerly: that is how the tests check the logic on a CPU.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch


class GraphedStep:
    """``fn()`` (no arguments; reads and rebinds ``state``) run as one CUDA graph replay.

    Warm-up calls (needed before a capture: cuDNN's algorithm search, lazy inits) step the
    state; it is put back afterwards, so the first replay starts where the caller stood.
    Other tensors ``fn`` reads (random numbers the caller refills, weights an optimiser updates
    in place) are read at their addresses at every replay.
    Returns ``fn``'s outputs; in a captured step they are overwritten by the next replay.
    """

    def __init__(self, fn: Callable[[], object], state: list[tuple[object, str]], capture: bool,
                 warmup: int | None = None):
        self.fn, self.state = fn, state
        self.buffers = [getattr(obj, attr) for obj, attr in state]
        self.graph, self.error = None, ""
        warmup = (3 if capture else 0) if warmup is None else warmup
        saved = [b.clone() for b in self.buffers] if warmup or capture else []
        if warmup:
            side = torch.cuda.Stream() if capture else None
            if side is not None:
                side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
                for _ in range(warmup):
                    self._run()
            if side is not None:
                torch.cuda.current_stream().wait_stream(side)
            self._restore(saved)
        if not capture:
            return
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.out = self._run()
        except RuntimeError as e:  # an op that cannot be captured: run eagerly, same results
            torch.cuda.synchronize()
            self.error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"
        self._restore(saved)  # capturing records the kernels without running them; a failed one may leave rebinds
        if not self.error:
            self.graph = graph

    def _run(self):
        out = self.fn()
        for (obj, attr), buf in zip(self.state, self.buffers):
            new = getattr(obj, attr)
            if new is not buf:
                buf.copy_(new)
                setattr(obj, attr, buf)
        return out

    def _restore(self, saved: list[torch.Tensor]) -> None:
        for (obj, attr), buf, value in zip(self.state, self.buffers, saved):
            buf.copy_(value)
            setattr(obj, attr, buf)

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self):
        if self.graph is None:
            return self._run()
        self.graph.replay()
        return self.out
