"""Shared fixtures: tiny random agents on disk, and a guard that no hook leaks."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from gmg.training.checkpoint import agent_dir_name, save_weights, write_meta
from gmg.training.config import make_config
from gmg.training.model import ImpalaAgent


def make_agent_dir(root: Path, seed: int, widths=(4, 8, 8), goal: str = "yellow_line", finished: bool = True,
                   background: str = "black") -> Path:
    """A randomly initialised agent saved exactly as training saves one."""
    config = make_config("cpu", {"widths": widths, "goal": goal, "seed": seed, "background": background})
    torch.manual_seed(seed)
    model = ImpalaAgent(config.model_config())
    folder = Path(root) / agent_dir_name(seed)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder / "model.safetensors")
    write_meta(folder, {
        "seed": seed, "preset": "cpu", "train": config.to_dict(),
        "model": config.model_config().to_dict(),
        "env": {"objects": [goal], "world_dim": 5, "size": 64, "background": background, "timeout": 500,
                "num_levels": config.num_levels, "start_level": 0},
        "finished": finished, "steps": 0, "wall_time": 0.0, "final_stats": {},
    })
    return folder


def tiny_config(**over):
    """A cpu-preset config shrunk to seconds of training: 3 updates of 64 steps, a tiny network."""
    base = dict(widths=(2, 4, 4), hidden=16, num_envs=4, num_steps=16, num_minibatches=2,
                update_epochs=2, total_timesteps=64 * 3, num_levels=50, checkpoint_every=1)
    return make_config("cpu", {**base, **over})


def frame_by_frame(model: ImpalaAgent) -> ImpalaAgent:
    """``model`` with every layer after its input edit run on one frame at a time.

    oneDNN picks its kernels by batch size (and CPU), so the same frame's logits may differ in
    the last bits between forward passes of other sizes, and a sampled action can then flip.
    Run frame by frame, logits depend on the frame alone: tests that compare two ways of
    batching the same episodes (memoised or not, chunks of 3 or whole) compare like with like.
    Interventions still act on ``model.hook_obs`` over the whole batch, masks included.
    """
    alone = copy.deepcopy(model)  # taken before any hook is entered: its hook points stay bare

    def forward(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = model.hook_obs(model.preprocess(obs))
        outs = [alone(x[i : i + 1]) for i in range(x.shape[0])]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    model.forward = forward
    return model


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests use tiny tensors: one thread avoids oversubscribing a shared 2-core machine.

    It also makes every computation of the suite use the thread count of its subprocesses and
    Ray workers (OMP_NUM_THREADS=1), so results compared across processes are computed alike.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_population(tmp_path: Path) -> Path:
    """A run directory with three tiny random agents (seeds 0-2) under ``agents/``."""
    for seed in range(3):
        make_agent_dir(tmp_path / "agents", seed)
    return tmp_path


@pytest.fixture(autouse=True)
def no_leaked_hooks():
    """Every module's hook dicts must be empty after each test."""
    created: list[torch.nn.Module] = []
    original = ImpalaAgent.__init__

    def tracking_init(self, *a, **k):
        original(self, *a, **k)
        created.append(self)

    ImpalaAgent.__init__ = tracking_init
    try:
        yield
    finally:
        ImpalaAgent.__init__ = original
    for model in created:
        for m in model.modules():
            assert not m._forward_hooks, f"forward hook left on {type(m).__name__}"
            assert not m._forward_pre_hooks, f"forward pre-hook left on {type(m).__name__}"
            assert not m._backward_hooks, f"backward hook left on {type(m).__name__}"
            assert not getattr(m, "_backward_pre_hooks", {}), f"backward pre-hook left on {type(m).__name__}"
