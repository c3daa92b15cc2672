"""GPU speed paths checked on any device: the rollout step as a CUDA graph (sampling from
uniforms, state write-back, warm-up undone) and the scatter max-pool backward."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_config as tiny

from gmg.training import fast_pool
from gmg.training.config import make_config
from gmg.training.cuda_graph import GraphedStep
from gmg.training.env import MazeEnv, TrainingLevels
from gmg.training.model import ImpalaAgent
from gmg.training.ppo import RunningMeanStd, rollout_state, rollout_step_fn, sample_from_uniform, train_agent


def test_sampling_from_uniforms_inverts_the_cdf():
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    u = torch.tensor([0.05, 0.19, 0.21, 0.5, 0.69, 0.71, 0.9999])
    assert sample_from_uniform(logits.expand(7, 3), u).tolist() == [0, 0, 1, 1, 1, 2, 2]
    draws = sample_from_uniform(logits.expand(200_000, 3), torch.rand(200_000, generator=torch.Generator().manual_seed(0)))
    freq = torch.bincount(draws, minlength=3).double() / draws.numel()
    assert torch.allclose(freq, torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64), atol=0.005)


def _rollout(device, n=16):
    config = make_config("cpu", {"widths": (4, 8, 8), "num_envs": n})
    torch.manual_seed(0)
    model = ImpalaAgent(config.model_config()).to(device)
    env = MazeEnv(n, config.env_config(), TrainingLevels(50, 3), device)
    rms = RunningMeanStd(torch.device(device))
    cur = SimpleNamespace(obs=env.reset(), disc_return=torch.zeros(n, dtype=torch.float64, device=device),
                          noise=torch.zeros(n, device=device))
    return config, model, env, rms, cur


def _play(stepper, cur, noise):
    rows = []
    for u in noise:
        cur.noise.copy_(u)
        action, logprob, value, reward, scaled, done, info = stepper()
        rows.append([t.clone() for t in (action, logprob, value, reward, scaled, done, info["length"], cur.obs)])
    return rows


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_graphed_step_plays_the_same_steps_as_the_plain_step(device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no GPU")
    torch.backends.cudnn.benchmark = False
    noise = torch.rand((60, 16), generator=torch.Generator().manual_seed(1)).to(device)  # 60 steps: resets happen
    config, model, env, rms, cur = _rollout(device)
    plain = _play(rollout_step_fn(config, model, env, rms, cur, uniform=True), cur, noise)

    config, model, env, rms, cur = _rollout(device)
    calls = []
    fn = rollout_step_fn(config, model, env, rms, cur, uniform=True)
    state = rollout_state(cur, env, rms)
    buffers = [getattr(o, a) for o, a in state]
    graphed = GraphedStep(lambda: calls.append(1) or fn(), state, capture=device == "cuda", warmup=3)
    assert graphed.captured == (device == "cuda"), graphed.error
    assert len(calls) == (4 if device == "cuda" else 3)  # the warm-up ran (and was undone), the capture recorded
    replayed = _play(graphed, cur, noise)
    for a, b in zip(plain, replayed):
        for x, y in zip(a[:-3] + a[-2:], b[:-3] + b[-2:]):
            assert torch.equal(x, y)
        torch.testing.assert_close(a[-3], b[-3])  # the scaled reward: float64 running std
    # the state lives in the buffers the graph reads, and has moved on from the start
    assert all(getattr(o, a) is buf for (o, a), buf in zip(state, buffers))
    assert int(env.counter) > 16 and float(rms.count) > 60


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_a_gpu_run_captures_its_rollout_and_resumes(tmp_path):
    config = tiny(bf16=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the capture warning would fail the test
        train_agent(config, tmp_path / "a", device="cuda", progress=False, max_iterations=1)
        train_agent(config, tmp_path / "a", device="cuda", progress=False)
    rows = (tmp_path / "a" / "train.csv").read_text().splitlines()
    assert len(rows) == 1 + 3


def _grads(model, obs, device):
    model.zero_grad()
    logits, value = model(obs)
    (logits.square().sum() + value.sum()).backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_scatter_max_pool_backward_gives_the_same_gradients(device, monkeypatch):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no GPU")
    monkeypatch.setattr(fast_pool, "FAST_DEVICES", ("cuda", "cpu"))
    torch.backends.cudnn.benchmark = False
    dtype = torch.float64 if device == "cpu" else torch.float32
    torch.manual_seed(0)
    model = ImpalaAgent(make_config("cpu", {"widths": (4, 8, 8)}).model_config()).to(device, dtype)
    model = model.to(memory_format=torch.channels_last)
    obs = torch.rand(6, 3, 64, 64, device=device, dtype=dtype)
    obs[:, :, :20] = 0.0  # a black band: ties inside pooling windows
    plain = _grads(model, obs, device)
    used = []
    original = fast_pool._ScatterMaxPool.apply
    monkeypatch.setattr(fast_pool._ScatterMaxPool, "apply", lambda *a: used.append(1) or original(*a))
    with fast_pool.scatter_max_pool_backward(model):
        fast = _grads(model, obs, device)
        with torch.no_grad():
            model(obs)  # no gradient wanted: the plain pool
    assert len(used) == 3  # every pool of the network took the scatter path, once
    for a, b in zip(plain, fast):
        # float64 on a CPU: exact up to the order of at most four sums; on a GPU, cuDNN's own
        # float32 (TF32, atomics) rounding dominates
        torch.testing.assert_close(a, b, rtol=1e-4 if device == "cuda" else 1e-12, atol=1e-5 if device == "cuda" else 0)
    assert all("forward" not in m.__dict__ for m in model.modules())  # the block restored the modules
    assert all(type(m) is torch.nn.MaxPool2d for m in model.modules() if "pool" in type(m).__name__.lower())
