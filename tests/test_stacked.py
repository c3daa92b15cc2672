"""Seeds stacked in one process: the same agents as trained alone, resumable either way."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import tiny_config

from gmg.experiments.cli.main import main
from gmg.training.checkpoint import load_agent, read_meta
from gmg.training.env import EnvConfig, MazeEnv, StackedMazeEnv, TrainingLevels
from gmg.training.errors import TrainingError
from gmg.training.ppo import train_agent
from gmg.training.seed_groups import seed_groups, train, train_group
from gmg.training.stacked import StackedAgents, clip_grad_norm_per_seed, train_stacked

SEEDS = [0, 1, 5]


def tiny(**over):
    # the 1e-5 tolerances below hold at lr 5e-4; at 1e-3 (held, not annealed) the batched
    # convolutions' rounding grew to 1.4e-4 in one seed after 4 updates (uniform sampling)
    return tiny_config(**{"learning_rate": 5e-4, **over})


def weights(run_dir, seed):
    return load_agent(run_dir / "agents" / f"agent-{seed:04d}")[0].state_dict()


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def log_rows(run_dir, seed):
    return (run_dir / "agents" / f"agent-{seed:04d}" / "train.csv").read_text().strip().splitlines()[1:]


def solo(tmp_path, config, seeds):
    for s in seeds:
        train_agent(dataclasses.replace(config, seed=s), tmp_path / "solo" / "agents" / f"agent-{s:04d}",
                    device="cpu", progress=False)
    return tmp_path / "solo"


def test_stacked_env_gives_each_seed_the_levels_and_frames_it_has_alone():
    config = EnvConfig(objects=("yellow_line", "red_gem"), world_dim=3)
    stacked = StackedMazeEnv(4, config, num_levels=30, seeds=[3, 8], device="cpu")
    alone = [MazeEnv(4, config, TrainingLevels(30, s), "cpu") for s in (3, 8)]
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):  # many episodes end, so each seed's sampler advances on its own
        actions = torch.randint(0, 15, (8,), generator=gen)
        obs, reward, term, trunc, info = stacked.step(actions)
        for k, env in enumerate(alone):
            o, r, te, tr, inf = env.step(actions[4 * k : 4 * k + 4])
            assert torch.equal(obs[4 * k : 4 * k + 4], o) and torch.equal(reward[4 * k : 4 * k + 4], r)
            assert torch.equal(info["level_now"][4 * k : 4 * k + 4], inf["level_now"])
    for k, env in enumerate(alone):
        state = stacked.seed_state(k)
        assert all(torch.equal(state[key], env.state()[key]) for key in env.STATE)
    assert not torch.equal(stacked.level_ids[:4], stacked.level_ids[4:])


def test_per_seed_gradient_clip_equals_clipping_each_network_alone():
    from gmg.training.model import ImpalaAgent, ModelConfig

    torch.manual_seed(0)
    models = [ImpalaAgent(ModelConfig(widths=(2, 4, 4), hidden=8)) for _ in range(3)]
    stacked = StackedAgents(models, torch.device("cpu"))
    obs = torch.randint(0, 256, (3, 5, 64, 64, 3), dtype=torch.uint8)
    scale = torch.tensor([1.0, 100.0, 1e-4])  # one seed far over the limit, one far under
    logits, value = stacked(obs)
    ((logits.sum((1, 2)) + value.sum(1)) * scale).sum().backward()
    clip_grad_norm_per_seed(stacked.parameters(), 0.5)
    for k, m in enumerate(models):
        lo, va = m(obs[k])
        ((lo.sum() + va.sum()) * scale[k]).backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 0.5)
        for p, q in zip(stacked.parameters(), m.parameters()):
            torch.testing.assert_close(p.grad[k], q.grad, rtol=1e-4, atol=1e-7)


def test_stacked_seeds_train_the_agents_each_seed_trains_alone(tmp_path):
    config = tiny(total_timesteps=64 * 4)
    train_stacked(config, tmp_path / "stacked", SEEDS, device="cpu", progress=False)
    alone = solo(tmp_path, config, SEEDS)
    for s in SEEDS:
        assert max_diff(weights(tmp_path / "stacked", s), weights(alone, s)) < 1e-5
        # the same episodes ended in every update: the same actions were sampled
        a, b = log_rows(tmp_path / "stacked", s), log_rows(alone, s)
        assert [r.split(",")[4:6] for r in a] == [r.split(",")[4:6] for r in b]
        assert read_meta(tmp_path / "stacked" / "agents" / f"agent-{s:04d}")["seed"] == s
    assert max_diff(weights(tmp_path / "stacked", 0), weights(tmp_path / "stacked", 1)) > 1e-3


def test_stacked_seeds_drawing_from_uniforms_match_lone_runs_that_do(tmp_path, monkeypatch):
    # a GPU's default (cuda_graph): actions drawn from per-rollout uniforms; run here on a CPU
    from gmg.training import ppo, stacked

    for module in (ppo, stacked):
        monkeypatch.setattr(module, "samples_from_uniforms", lambda config, device: True)
    config = tiny(total_timesteps=64 * 4)
    train_stacked(config, tmp_path / "stacked", [0, 1], device="cpu", progress=False, max_iterations=2)
    train_stacked(config, tmp_path / "stacked", [0, 1], device="cpu", progress=False)  # resumed
    alone = solo(tmp_path, config, [0, 1])
    for s in (0, 1):
        assert max_diff(weights(tmp_path / "stacked", s), weights(alone, s)) < 1e-5
        a, b = log_rows(tmp_path / "stacked", s), log_rows(alone, s)
        assert [r.split(",")[4:6] for r in a] == [r.split(",")[4:6] for r in b]
    # and the uniforms really drew other actions than the generator's own sampling would
    monkeypatch.undo()
    plain = solo(tmp_path / "plain", config, [0])
    assert max_diff(weights(plain, 0), weights(alone, 0)) > 1e-4


def test_killed_stacked_run_resumes_bit_for_bit_without_duplicate_rows(tmp_path):
    config = tiny(total_timesteps=64 * 4)
    train_stacked(config, tmp_path / "whole", SEEDS, device="cpu", progress=False)
    train_stacked(config, tmp_path / "part", SEEDS, device="cpu", progress=False, max_iterations=2)
    assert read_meta(tmp_path / "part" / "agents" / "agent-0005")["finished"] is False
    train_stacked(config, tmp_path / "part", SEEDS, device="cpu", progress=False)
    for s in SEEDS:
        a, b = weights(tmp_path / "whole", s), weights(tmp_path / "part", s)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert [int(r.split(",")[0]) for r in log_rows(tmp_path / "part", s)] == [1, 2, 3, 4]


def test_stacked_and_lone_runs_resume_each_others_checkpoints(tmp_path):
    config = tiny(total_timesteps=64 * 4)
    alone = solo(tmp_path, config, [0, 1])
    # stacked, killed, then finished alone
    train_stacked(config, tmp_path / "a", [0, 1], device="cpu", progress=False, max_iterations=2)
    train_group(config, tmp_path / "a", [1], device="cpu")
    assert max_diff(weights(tmp_path / "a", 1), weights(alone, 1)) < 1e-5
    # alone, killed, then finished stacked (train groups seeds standing at the same update)
    for s in (0, 1):
        train_group(config, tmp_path / "b", [s], device="cpu", max_iterations=2)
    assert seed_groups(tmp_path / "b", [0, 1], stack=2) == [[0, 1]]
    train(config, tmp_path / "b", [0, 1], device="cpu", progress=False, stack=2)
    for s in (0, 1):
        assert max_diff(weights(tmp_path / "b", s), weights(alone, s)) < 1e-5
        assert [int(r.split(",")[0]) for r in log_rows(tmp_path / "b", s)] == [1, 2, 3, 4]


def test_seeds_at_different_updates_are_never_stacked_together(tmp_path):
    config = tiny(total_timesteps=64 * 4)
    train_group(config, tmp_path, [1], device="cpu", max_iterations=1)
    assert seed_groups(tmp_path, [0, 1, 2, 3], stack=2) == [[0, 2], [3], [1]]
    with pytest.raises(TrainingError, match="same update"):
        train_stacked(config, tmp_path, [0, 1], device="cpu", progress=False)


def test_population_with_stack_finishes_every_seed_and_a_lone_leftover_is_exact(tmp_path):
    config = tiny()
    train(config, tmp_path / "pop", [0, 1, 2], device="cpu", progress=False, stack=2)
    alone = solo(tmp_path, config, [2])
    a, b = weights(tmp_path / "pop", 2), weights(alone, 2)  # seed 2 ran in a group of one
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(read_meta(tmp_path / "pop" / "agents" / f"agent-{s:04d}")["finished"] for s in (0, 1, 2))


def test_workers_of_stacked_groups_train_what_one_process_does(tmp_path):
    config = tiny(threads=1)
    train(config, tmp_path / "workers", [0, 1, 2, 3], device="cpu", progress=False, stack=2, workers=2)
    for group in ([0, 1], [2, 3]):
        train_stacked(config, tmp_path / "one", group, device="cpu", progress=False)
    for s in (0, 1, 2, 3):
        a, b = weights(tmp_path / "workers", s), weights(tmp_path / "one", s)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_seed_groups_read_the_update_from_resume_pt_not_a_stale_meta(tmp_path):
    train_stacked(tiny(), tmp_path, [0, 1], device="cpu", progress=False, max_iterations=2)
    agent = tmp_path / "agents" / "agent-0001"
    meta = read_meta(agent)
    (agent / "meta.json").write_text(__import__("json").dumps({**meta, "steps": 64}))  # killed before its meta
    assert seed_groups(tmp_path, [0, 1, 2], stack=4) == [[0, 1], [2]]
    train(tiny(), tmp_path, [0, 1], device="cpu", progress=False, stack=2)
    assert all(read_meta(tmp_path / "agents" / f"agent-{s:04d}")["finished"] for s in (0, 1))


def test_nan_in_one_stacked_seed_names_it_and_keeps_every_last_checkpoint(tmp_path, monkeypatch):
    real = StackedAgents.__call__
    calls = {"n": 0}

    def poisoned(self, obs):
        logits, value = real(self, obs)
        if torch.is_grad_enabled():  # the update phase
            calls["n"] += 1
            if calls["n"] > 4:  # after the first update's minibatches
                logits = logits * torch.tensor([1.0, float("nan")])[:, None, None]
        return logits, value

    monkeypatch.setattr(StackedAgents, "__call__", poisoned)
    with pytest.raises(TrainingError, match=r"seed 4: the loss or its gradient became NaN"):
        train_stacked(tiny(), tmp_path, [3, 4], device="cpu", progress=False)
    for s in (3, 4):
        model, meta = load_agent(tmp_path / "agents" / f"agent-{s:04d}")
        assert meta["steps"] == 64 and meta["finished"] is False
        assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("argv, message", [
    (["--stack", "0"], "stack must be at least 1"),
    (["--stack", "2", "--set", "compile=true"], "compile is not supported when seeds are stacked"),
])
def test_bad_stack_options_are_one_line(argv, message, tmp_path, capsys):
    code = main(["train", "--seeds", "0-1", "--run-dir", str(tmp_path), "--device", "cpu", "--quiet",
                 "--set", "total_timesteps=64", "--set", "num_envs=4", "--set", "num_steps=16", *argv])
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_stacked_seeds_on_gpu_match_each_seed_alone_on_gpu(tmp_path):
    # on a GPU actions come from uniforms of a per-seed CUDA generator (the lone run's are
    # drawn for its CUDA-graph rollout) and minibatches from a CPU one
    config = tiny(total_timesteps=64 * 4)
    train_stacked(config, tmp_path / "stacked", [0, 1], device="cuda", progress=False, max_iterations=2)
    train_stacked(config, tmp_path / "stacked", [0, 1], device="cuda", progress=False)
    for s in (0, 1):
        train_agent(dataclasses.replace(config, seed=s), tmp_path / "solo" / "agents" / f"agent-{s:04d}",
                    device="cuda", progress=False)
        assert max_diff(weights(tmp_path / "stacked", s), weights(tmp_path / "solo", s)) < 1e-4
        a, b = log_rows(tmp_path / "stacked", s), log_rows(tmp_path / "solo", s)
        assert [r.split(",")[4:6] for r in a] == [r.split(",")[4:6] for r in b]
