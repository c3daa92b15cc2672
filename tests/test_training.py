"""Training: the network's layout, PPO determinism, resume, presets and bad input."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import tiny_config as tiny

from gmg.experiments.cli.main import main
from gmg.training.checkpoint import AgentLoadError, load_agent
from gmg.training.config import ConfigError, make_config
from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv
from gmg.training.errors import TrainingError
from gmg.training.model import ImpalaAgent, ModelConfig
from gmg.training.ppo import train_agent
from gmg.training.seed_groups import train
from gmg.training.seeds import parse_seeds


def test_paper_network_has_the_original_parameter_count():
    model = ImpalaAgent(ModelConfig(widths=(16, 32, 32)))
    assert sum(p.numel() for p in model.parameters()) == 626_256


def test_every_module_runs_once_per_forward_and_nothing_in_place():
    model = ImpalaAgent(ModelConfig(widths=(2, 4, 4), hidden=8))
    calls: Counter = Counter()
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: calls.update([name]))
               for name, m in model.named_modules() if not list(m.children())]
    try:
        model(torch.zeros(2, 64, 64, 3, dtype=torch.uint8))
    finally:
        for h in handles:
            h.remove()
    leaves = {name for name, m in model.named_modules() if not list(m.children())}
    assert set(calls) == leaves
    assert all(c == 1 for c in calls.values()), [k for k, c in calls.items() if c != 1]
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_same_seed_gives_the_same_agent_bit_for_bit(tmp_path):
    a = train_agent(tiny(seed=3), tmp_path / "a", device="cpu", progress=False)
    b = train_agent(tiny(seed=3), tmp_path / "b", device="cpu", progress=False)
    c = train_agent(tiny(seed=4), tmp_path / "c", device="cpu", progress=False)
    wa, wb, wc = (load_agent(p)[0].state_dict() for p in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert json.loads((a / "meta.json").read_text())["finished"] is True
    assert not (a / "resume.pt").exists()


def test_killed_run_resumes_to_the_same_agent_with_no_duplicate_log_rows(tmp_path):
    whole = train_agent(tiny(seed=1), tmp_path / "whole", device="cpu", progress=False)
    part = tmp_path / "part"
    train_agent(tiny(seed=1), part, device="cpu", progress=False, max_iterations=1)
    assert (part / "resume.pt").exists()
    assert json.loads((part / "meta.json").read_text())["finished"] is False
    # resume.pt's keys are its format: runs checkpointed by earlier code must still resume
    assert set(torch.load(part / "resume.pt", weights_only=True)) == {
        "model", "optimizer", "reward_rms", "env", "next_done", "disc_return", "global_step", "iteration",
        "wall_time", "rng_cpu", "train"}
    train_agent(tiny(seed=1), part, device="cpu", progress=False)
    wa, wb = load_agent(whole)[0].state_dict(), load_agent(part)[0].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = (part / "train.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3]


def test_resume_with_a_changed_config_is_refused_naming_the_field(tmp_path):
    train_agent(tiny(seed=1), tmp_path, device="cpu", progress=False, max_iterations=1)
    with pytest.raises(TrainingError, match="learning_rate"):
        train_agent(tiny(seed=1, learning_rate=3e-3), tmp_path, device="cpu", progress=False)


def test_a_run_resumes_under_another_preset_name_with_the_same_fields(tmp_path):
    """The zoo's recipe was called cpu when it was trained: cpu-zoo resumes such a run, the new cpu refuses it."""
    small = dict(widths=(2, 4, 4), hidden=16, num_envs=4, num_steps=16, total_timesteps=64 * 3, num_levels=50,
                 checkpoint_every=1)
    zoo = make_config("cpu-zoo", small)
    train_agent(dataclasses.replace(zoo, preset="cpu"), tmp_path, device="cpu", progress=False, max_iterations=1)
    with pytest.raises(TrainingError, match=r"learning_rate: 0.0005 -> 0.002, num_minibatches: 4 -> 16, upd"):
        train_agent(make_config("cpu", small), tmp_path, device="cpu", progress=False)
    train_agent(zoo, tmp_path, device="cpu", progress=False)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["finished"] and meta["preset"] == "cpu-zoo" and meta["train"]["update_epochs"] == 3


def test_a_kill_between_resume_and_meta_loses_nothing(tmp_path):
    # resume.pt is written before meta.json: a run killed between the two at its first
    # checkpoint has no meta.json yet, and must still resume to the same agent
    whole = train_agent(tiny(seed=1), tmp_path / "whole", device="cpu", progress=False)
    part = tmp_path / "part"
    train_agent(tiny(seed=1), part, device="cpu", progress=False, max_iterations=1)
    (part / "meta.json").unlink()
    train_agent(tiny(seed=1), part, device="cpu", progress=False)
    wa, wb = load_agent(whole)[0].state_dict(), load_agent(part)[0].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# the long recipe (issue 37: the cpu preset, procgen levels and drawing, snapshots) shrunk to
# 4 updates of 8 envs x 16 steps; its 16 minibatches, 1 epoch, lr annealing and reward scaling kept
KILL_ARGS = ["train", "--preset", "cpu", "--goal", "white_line", "--levels", "procgen", "--render", "procgen",
             "--seeds", "3", "--steps", str(4 * 8 * 16), "--snapshot-every", "2", "--device", "cpu", "--quiet",
             "--set", "widths=2,4,4", "--set", "hidden=16", "--set", "num_envs=8", "--set", "num_steps=16",
             "--set", "num_levels=50", "--set", "checkpoint_every=2"]
# the child kills itself in the 9th minibatch of the last update (1-3 ran, the checkpoint stands at 2)
KILLED_INSIDE_AN_UPDATE = """
import os, signal, sys
from gmg.experiments.cli.main import main
from gmg.training import ppo

real, calls = ppo.ppo_loss, [0]

def loss(*args, **kwargs):
    calls[0] += 1
    if calls[0] == 3 * 16 + 9:  # past 8 optimizer steps of update 4
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)

ppo.ppo_loss = loss
main(sys.argv[1:])
"""


def test_a_run_of_the_long_recipe_sigkilled_inside_an_update_resumes_to_the_same_weights(tmp_path):
    from gmg.training.checkpoint import snapshot_dirs

    run = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", KILLED_INSIDE_AN_UPDATE, *KILL_ARGS, "--run-dir", str(run)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    agent = run / "agents" / "agent-0003"
    meta = json.loads((agent / "meta.json").read_text())
    assert meta["finished"] is False and meta["steps"] == 2 * 128 and meta["env"]["levels"] == "procgen"
    assert len((agent / "train.csv").read_text().strip().splitlines()) == 1 + 3  # update 3 was logged, not saved
    assert main([*KILL_ARGS, "--run-dir", str(run)]) == 0  # resumed in this process
    assert main([*KILL_ARGS, "--run-dir", str(tmp_path / "whole")]) == 0
    whole = tmp_path / "whole" / "agents" / "agent-0003"
    assert [int(r.split(",")[0]) for r in (agent / "train.csv").read_text().strip().splitlines()[1:]] == [1, 2, 3, 4]
    pairs = [(whole, agent), *zip(snapshot_dirs(whole), snapshot_dirs(agent), strict=True)]
    assert [p.name for p in snapshot_dirs(agent)] == ["update-0002", "update-0004"]
    for a, b in pairs:
        wa, wb = load_agent(a)[0].state_dict(), load_agent(b)[0].state_dict()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), (a.name, b.name)


def test_resume_refuses_fewer_steps_a_new_schedule_and_a_corrupt_file(tmp_path):
    train_agent(tiny(seed=1, anneal_lr=False), tmp_path / "a", device="cpu", progress=False, max_iterations=2)
    with pytest.raises(TrainingError, match="already at step 128"):
        train_agent(tiny(seed=1, anneal_lr=False, total_timesteps=64), tmp_path / "a", device="cpu", progress=False)
    train_agent(tiny(seed=1, anneal_lr=True), tmp_path / "b", device="cpu", progress=False, max_iterations=1)
    with pytest.raises(TrainingError, match="total_timesteps"):
        train_agent(tiny(seed=1, anneal_lr=True, total_timesteps=640), tmp_path / "b", device="cpu", progress=False)
    rows_before = (tmp_path / "a" / "train.csv").read_text()
    data = (tmp_path / "a" / "resume.pt").read_bytes()
    (tmp_path / "a" / "resume.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(TrainingError, match="corrupt or truncated"):
        train_agent(tiny(seed=1, anneal_lr=False), tmp_path / "a", device="cpu", progress=False)
    assert (tmp_path / "a" / "train.csv").read_text() == rows_before  # the log is untouched
    # without anneal_lr more steps are fine: the run goes on to the new total
    (tmp_path / "a" / "resume.pt").write_bytes(data)
    train_agent(tiny(seed=1, anneal_lr=False, total_timesteps=64 * 4), tmp_path / "a", device="cpu", progress=False)
    assert load_agent(tmp_path / "a")[1]["steps"] == 256


def test_population_skips_finished_seeds(tmp_path):
    train(tiny(), tmp_path, [0, 1], device="cpu", progress=False)
    stamp = (tmp_path / "agents" / "agent-0000" / "model.safetensors").stat().st_mtime_ns
    train(tiny(), tmp_path, [0, 1, 2], device="cpu", progress=False)
    assert (tmp_path / "agents" / "agent-0000" / "model.safetensors").stat().st_mtime_ns == stamp
    assert (tmp_path / "agents" / "agent-0002" / "meta.json").exists()


def test_workers_train_the_same_agents_as_one_process(tmp_path):
    train(tiny(threads=1), tmp_path / "serial", [0, 1], device="cpu", progress=False)
    train(tiny(threads=1), tmp_path / "parallel", [0, 1], device="cpu", progress=False, workers=2)
    for seed in (0, 1):
        a = load_agent(tmp_path / "serial" / "agents" / f"agent-{seed:04d}")[0].state_dict()
        b = load_agent(tmp_path / "parallel" / "agents" / f"agent-{seed:04d}")[0].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    a0 = load_agent(tmp_path / "parallel" / "agents" / "agent-0000")[0].state_dict()
    assert not all(torch.equal(a0[k], b[k]) for k in a0)  # and the seeds differ


def _worker_pids(pid: int) -> list[int]:
    def is_worker(k: str) -> bool:
        try:
            return b"multiprocessing-fork" in Path(f"/proc/{k}/cmdline").read_bytes()
        except FileNotFoundError:  # a child that ended since the listing
            return False

    return [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split() if is_worker(k)]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker processes from Linux /proc")
def test_killing_a_population_run_ends_its_workers(tmp_path):
    sets = [f"--set={k}={v}" for k, v in dict(widths="2,4,4", hidden=16, num_envs=4, num_steps=16,
                                              num_minibatches=2, num_levels=50).items()]
    parent = subprocess.Popen([sys.executable, "-m", "gmg.experiments.cli.main", "train", "--seeds", "0-1", "--workers", "2",
                               "--steps", "100000000", "--run-dir", str(tmp_path), "--quiet", *sets],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while len(workers := _worker_pids(parent.pid)) < 2 or not list(tmp_path.glob("agents/*/train.csv")):
            assert parent.poll() is None and time.time() < deadline, "the workers never started training"
            time.sleep(0.2)
        parent.send_signal(signal.SIGTERM)
        parent.wait(30)
        deadline = time.time() + 15
        while any(map(_alive, workers)) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, workers)), "workers went on training after their parent was killed"
    finally:
        parent.kill()


def test_a_failing_worker_names_its_seed_and_the_others_finish(tmp_path):
    bad = tmp_path / "agents" / "agent-0001"
    bad.mkdir(parents=True)
    (bad / "resume.pt").write_bytes(b"not a checkpoint")
    (bad / "meta.json").write_text("{}")
    with pytest.raises(TrainingError, match="seed 1"):
        train(tiny(threads=1), tmp_path, [0, 1], device="cpu", progress=False, workers=2)
    assert (tmp_path / "agents" / "agent-0000" / "model.safetensors").exists()


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import gmg.training.ppo as ppo

    real = ppo._act
    calls = {"n": 0}

    def poisoned(model, obs, action=None):
        out = real(model, obs, action)
        if action is not None:  # the update phase
            calls["n"] += 1
            if calls["n"] > 4:  # after the first update's minibatches
                return out[0], out[1] * float("nan"), out[2], out[3]
        return out

    monkeypatch.setattr(ppo, "_act", poisoned)
    with pytest.raises(TrainingError, match="loss or its gradient became NaN"):
        train_agent(tiny(seed=2), tmp_path, device="cpu", progress=False)
    model, meta = load_agent(tmp_path)
    assert meta["steps"] == 64 and meta["finished"] is False
    assert all(torch.isfinite(p).all() for p in model.parameters())


class _InfGrad(torch.autograd.Function):
    """Identity forward, infinite gradient backward: a finite loss whose backward overflows."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * float("inf")


def test_an_infinite_gradient_under_a_finite_loss_also_stops_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    import gmg.training.ppo as ppo

    real = ppo._act
    calls = {"n": 0}

    def poisoned(model, obs, action=None):
        out = real(model, obs, action)
        if action is not None:
            calls["n"] += 1
            if calls["n"] > 4:
                return out[0], out[1], out[2], _InfGrad.apply(out[3])
        return out

    monkeypatch.setattr(ppo, "_act", poisoned)
    with pytest.raises(TrainingError, match="loss or its gradient became NaN or infinite"):
        train_agent(tiny(seed=2), tmp_path, device="cpu", progress=False)
    model, meta = load_agent(tmp_path)
    assert meta["steps"] == 64
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_out_of_memory_is_one_line_naming_the_seeds(tmp_path, monkeypatch):
    import gmg.training.seed_groups as seed_groups

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(seed_groups, "train_agent", oom)
    with pytest.raises(TrainingError, match=r"^seed 7: out of memory on cpu; the last checkpoint is kept"):
        seed_groups.train_group(tiny(), tmp_path, [7], device="cpu")


@pytest.mark.parametrize("preset, over, message", [
    ("nope", {}, "unknown preset"),
    ("cpu", {"lerning_rate": 1}, "unknown training field"),
    ("cpu", {"learning_rate": -1}, "learning_rate must be positive"),
    ("cpu", {"num_envs": 6, "num_steps": 5, "num_minibatches": 4}, "does not split"),
    ("cpu", {"world_dim": 4}, "odd integer"),
    ("cpu", {"goal": "pink_line"}, "unknown colour"),
    ("cpu", {"num_envs": "many"}, "expects int"),
    ("cpu", {"checkpoint_every": 0}, "checkpoint_every must be at least 1"),
    ("cpu", {"threads": -1}, "threads must be 0"),
    ("cpu", {"num_envs": 2, "num_steps": 2, "num_minibatches": 4}, "cannot normalise advantages"),
])
def test_bad_config_is_one_clear_error(preset, over, message):
    with pytest.raises(ConfigError, match=message):
        make_config(preset, over)


def test_cli_turns_bad_input_into_one_line(capsys, tmp_path):
    assert main(["train", "--preset", "nope", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gmg train: unknown preset") and "\n" not in err
    assert main(["train", "--seeds", "5-2", "--run-dir", str(tmp_path)]) == 2


def test_seed_ranges():
    assert parse_seeds("0-3,7,9-10") == [0, 1, 2, 3, 7, 9, 10]
    assert parse_seeds(5) == [5] and parse_seeds([3, 1, 3]) == [1, 3]
    for text, says in [("a-b", "cannot read seeds"), ("5-3", "ends before it starts: write 3-5"),
                       ("-2", "non-negative"), (" , ", "no seeds"), ("0-10000000000", "was it a typo")]:
        with pytest.raises(ConfigError, match=says):
            parse_seeds(text)


def test_corrupt_mismatched_and_foreign_checkpoints_fail_in_one_line(tmp_path):
    folder = train_agent(tiny(), tmp_path / "a", device="cpu", progress=False)
    meta = json.loads((folder / "meta.json").read_text())
    weights = (folder / "model.safetensors").read_bytes()

    (folder / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(AgentLoadError, match="corrupt or truncated"):
        load_agent(folder)
    (folder / "model.safetensors").write_bytes(weights)

    (folder / "meta.json").write_text(json.dumps({**meta, "model": {**meta["model"], "widths": [8, 8, 8]}}))
    with pytest.raises(AgentLoadError, match="does not match the architecture"):
        load_agent(folder)

    (folder / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(AgentLoadError, match="format 99"):
        load_agent(folder)

    (folder / "meta.json").write_text("{not json")
    with pytest.raises(AgentLoadError, match="corrupt"):
        load_agent(folder)


def test_saving_equal_weights_again_leaves_the_file_alone_and_changed_weights_rewrite_it(tmp_path):
    # safetensors writes its metadata in random order, so a rewrite of the same weights can
    # change the bytes; the zoo's export must not churn files whose weights did not change
    from gmg.training.checkpoint import save_weights

    model, path = ImpalaAgent(ModelConfig(widths=(4, 8, 8))), tmp_path / "model.safetensors"
    save_weights(model, path, dtype=torch.float16)
    before = path.read_bytes(), path.stat().st_mtime_ns
    for _ in range(8):
        save_weights(model, path, dtype=torch.float16)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    save_weights(model, path, dtype=torch.float32)  # same values, another dtype: rewritten
    assert path.read_bytes() != before[0]
    with torch.no_grad():
        model.value.bias.add_(1.0)
    save_weights(model, path, dtype=torch.float32)
    assert load_agent_weights(path)["value.bias"].equal(model.value.bias.detach())
    path.write_bytes(before[0][:100])  # a truncated file is rewritten, not trusted
    save_weights(model, path, dtype=torch.float32)
    assert load_agent_weights(path)["value.bias"].equal(model.value.bias.detach())


def load_agent_weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _mean_length(model, world_dim, n=200):
    env = MazeEnv(n, EnvConfig(world_dim=world_dim), EvaluationLevels(n=n), "cpu")
    obs, lengths, done_once = env.observe(), torch.zeros(n), torch.zeros(n, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(500):
            logits = model(obs)[0] if model is not None else torch.zeros(n, 15)
            action = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0]
            obs, _, term, trunc, info = env.step(action)
            finished = (term | trunc) & ~done_once
            lengths[finished] = info["length"][finished].float()
            done_once |= term | trunc
            if done_once.all():
                break
    return lengths.mean().item()


@pytest.mark.slow
def test_cpu_recipe_learns_a_3x3_maze_from_scratch(tmp_path):
    """Held-out episode length falls to at most half the random policy's (both measured here)."""
    config = make_config("cpu", {"world_dim": 3, "total_timesteps": 24_576, "widths": (4, 8, 8), "seed": 0})
    folder = train_agent(config, tmp_path, device="cpu", progress=False)
    random_len = _mean_length(None, 3)
    trained_len = _mean_length(load_agent(folder)[0], 3)
    assert trained_len <= 0.5 * random_len, (trained_len, random_len)


def test_dataclass_replace_keeps_derived_sizes():
    c = dataclasses.replace(tiny(), num_envs=8)
    assert c.batch_size == 8 * 16 and c.minibatch_size == 64


def test_workers_below_one_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="workers must be at least 1"):
        train(tiny(), tmp_path, [0], device="cpu", progress=False, workers=0)


def test_weights_fingerprint_is_the_tensors_identity(tmp_path):
    from gmg.training.checkpoint import save_weights, weights_fingerprint

    model = ImpalaAgent(ModelConfig(widths=(4, 8, 8)))
    for name, dtype in (("a", torch.float32), ("b", torch.float32), ("c", torch.float16)):
        (tmp_path / name).mkdir()
        save_weights(model, tmp_path / name / "model.safetensors", dtype=dtype)
    assert weights_fingerprint(tmp_path / "a") == weights_fingerprint(tmp_path / "b")
    assert weights_fingerprint(tmp_path / "a") != weights_fingerprint(tmp_path / "c")  # fp16 plays otherwise
    with torch.no_grad():
        model.value.bias.add_(1e-3)
    save_weights(model, tmp_path / "b" / "model.safetensors")
    assert weights_fingerprint(tmp_path / "a") != weights_fingerprint(tmp_path / "b")
    (tmp_path / "b" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(AgentLoadError, match="corrupt"):
        weights_fingerprint(tmp_path / "b")


def test_bench_train_times_stacked_rows_with_overrides(tmp_path, capsys):
    from gmg.experiments.bench.train import measure_presets

    rows = measure_presets(device="cpu", presets=("cpu",), num_steps=4, variants={"cpu": ((False, False),)},
                       stacks=(1, 2), overrides={"widths": "2,4,4", "hidden": "16", "num_envs": "4"})
    assert [r["stack"] for r in rows] == [1, 2]
    assert all(r["widths"] == [2, 4, 4] and r["num_envs"] == 4 and not r["error"] for r in rows)
    assert all(r["env_steps_per_s"] > 0 and "widths=2,4,4" in r["set"] for r in rows)
    assert main(["bench", "train", "--device", "cpu", "--presets", "cpu", "--set", "nosuch=1",
                 "--out", str(tmp_path / "b.json")]) == 2
    assert "unknown training field 'nosuch'" in capsys.readouterr().err


def test_bench_train_keeps_each_presets_minibatch_size_in_its_shortened_rollout():
    from gmg.experiments.bench.train import _minibatches_of

    cpu, paper = make_config("cpu"), make_config("paper")
    assert 64 * 16 // _minibatches_of(cpu, 64 * 16) == cpu.minibatch_size == 128
    assert _minibatches_of(paper, 256 * 16) == 1  # a shortened paper rollout is below one of its minibatches
    assert _minibatches_of(cpu, 128 * 3) == 3 and _minibatches_of(cpu, 1031) == 1  # a prime


def test_steady_rate_counts_only_the_time_every_worker_trains_past_its_first_update():
    from gmg.experiments.bench.train import steady_rate

    # A: a 5 s first update, then 100 steps/s; B starts late (first end at 8 s), then 300 steps/s
    a = [(5.0, 100.0)] + [(5.0 + i, 100.0 + 100 * i) for i in range(1, 11)]  # last end 15 s
    b = [(8.0, 300.0)] + [(8.0 + i, 300.0 + 300 * i) for i in range(1, 6)]  # last end 13 s
    assert steady_rate([a, b]) == pytest.approx(400.0)  # the window 8-13 s, the warm-ups left out
    assert steady_rate([a]) == pytest.approx(100.0)
    half = [(8.5, 0.0), (10.5, 300.0)]  # update ends between the window's edges: interpolated
    assert steady_rate([a, half]) == pytest.approx(100.0 + 150.0)
    assert torch.isnan(torch.tensor(steady_rate([a, [(20.0, 1.0), (21.0, 2.0)]])))  # no overlap
    assert torch.isnan(torch.tensor(steady_rate([a, [(6.0, 1.0)]])))  # one update: no steady part


def test_on_update_sees_every_update_of_every_seed_alone_and_stacked(tmp_path):
    from gmg.training.seed_groups import train_group

    config = tiny()  # three updates of 4 envs x 16 steps
    alone, stacked = [], []
    train_group(config, tmp_path / "a", [0], device="cpu", on_update=alone.append)
    train_group(config, tmp_path / "s", [0, 1], device="cpu", on_update=stacked.append)
    assert [r["global_step"] for r in alone] == [64, 128, 192]
    assert [r["global_step"] for r in stacked] == [64, 64, 128, 128, 192, 192]


def test_bench_train_gives_workers_rows_a_steady_figure(tmp_path):
    from gmg.experiments.bench.train import bench_train

    small = {"widths": "2,4,4", "hidden": "16", "num_envs": "4"}
    rows = bench_train(device="cpu", presets=("cpu",), variants=["fp32"], workers=[2], overrides=small,
                       iterations=4)["rows"]
    assert [r["workers"] for r in rows] == [1, 2] and not any(r["error"] for r in rows)
    for r in rows:  # both figures are measured (speeds themselves are for `gmg bench`, not for a unit test)
        assert r["env_steps_per_s"] > 0 and math.isfinite(r["steady_env_steps_per_s"]) and r["steady_env_steps_per_s"] > 0
    with pytest.raises(Exception, match="at least 2"):
        bench_train(device="cpu", presets=("cpu",), variants=["fp32"], iterations=1)
    with pytest.raises(Exception, match="--workers must be at least 1, got 0"):
        bench_train(device="cpu", presets=("cpu",), variants=["fp32"], workers=[0, 2])


def test_the_untrained_network_rebuilt_from_the_seed_is_what_training_started_from(tmp_path):
    from gmg.experiments.analysis.before_training import untrained_network
    from gmg.experiments.population import AgentRef

    folder = tmp_path / "agents" / "agent-0005"
    train_agent(tiny(seed=5), folder, device="cpu", progress=False, max_iterations=0)  # saved before any update
    meta = json.loads((folder / "meta.json").read_text())
    started = load_agent_weights(folder / "model.safetensors")
    rebuilt = untrained_network(AgentRef(5, folder, meta)).state_dict()
    assert set(rebuilt) == set(started) and all(torch.equal(rebuilt[k], started[k]) for k in started)
    other = untrained_network(AgentRef(6, folder, {**meta, "train": {**meta["train"], "seed": 6}})).state_dict()
    assert not torch.equal(other["blocks.0.conv.weight"], rebuilt["blocks.0.conv.weight"])


def test_a_prediction_before_training_scores_out_of_sample_and_at_chance_on_noise():
    import numpy as np
    import pandas as pd

    from gmg.experiments.analysis.before_training import FEATURES, predict

    rng = np.random.default_rng(0)
    feats = pd.DataFrame(rng.normal(size=(32, len(FEATURES))), columns=list(FEATURES)).assign(agent=range(32))
    signal = pd.Series(2 * feats["filter_share_g"] - feats["filter_share_r"] + rng.normal(0, 0.1, 32), index=range(32))
    good = predict(feats, signal, n_permutations=99, n_boot=200)
    assert good["r2_cv"] > 0.9 and good["ci_low"] > 0.7 and good["p_permutation"] < 0.05 and good["n"] == 32
    noise = predict(feats, pd.Series(rng.normal(size=32), index=range(32)), n_permutations=99, n_boot=200)
    assert noise["r2_cv"] < 0.2 and noise["p_permutation"] > 0.05


def test_the_default_path_still_makes_a_bundled_agent_exactly(tmp_path):
    """One seed for everything, as before data seeds existed: zoo yellow-line agent 0's recipe,
    retrained for one update, logs the bundled agent's first update and writes its metadata."""
    import csv

    from gmg.experiments.population import ZOO_DIR
    from gmg.training.config import config_from_dict

    bundled = ZOO_DIR / "yellow-line" / "agent-0000"
    meta = json.loads((bundled / "meta.json").read_text())
    config = config_from_dict(meta["train"]).with_run(threads=1)
    folder = tmp_path / "agent-0000"
    train_agent(config, folder, device="cpu", progress=False, max_iterations=1)
    mine = json.loads((folder / "meta.json").read_text())
    assert mine["seed"] == meta["seed"] == 0 and "data_seed" not in mine and "data_seed" not in mine["train"]
    recipe = {k: v for k, v in meta["train"].items() if k not in ("threads", "checkpoint_every", "compile",
                                                                   "cudnn_benchmark", "cuda_graph", "preset")}
    assert {k: mine["train"][k] for k in recipe} == recipe
    first = [next(csv.DictReader(open(p / "train.csv"))) for p in (bundled, folder)]
    for k in ("global_step", "episodes", "episode_length", "shortest_path", "success", "learning_rate"):
        assert float(first[0][k]) == pytest.approx(float(first[1][k]), rel=1e-6), k
    for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"):
        # the same rollout exactly; the losses up to float rounding (it trained with two threads)
        assert float(first[0][k]) == pytest.approx(float(first[1][k]), rel=5e-3, abs=1e-6), k


def test_a_data_seed_sets_the_data_and_leaves_the_initial_weights_to_the_seed(tmp_path):
    from gmg.training.env import MazeEnv, TrainingLevels

    def start(seed, data_seed):
        cfg = tiny(seed=seed, data_seed=data_seed)
        run = tmp_path / f"{seed}-{data_seed}"
        train(cfg, run, [seed], device="cpu", progress=False, data_seeds=None)
        return cfg, run / "agents" / f"agent-{cfg.agent_id:04d}"

    a_cfg, a = start(1, 7)
    _, b = start(1, 8)
    c_cfg, _ = start(2, 7)
    assert a_cfg.agent_id == 10007 and a.is_dir() and json.loads((a / "meta.json").read_text())["data_seed"] == 7
    levels = [MazeEnv(4, cfg.env_config(), TrainingLevels(cfg.num_levels, cfg.level_seed)).level_ids.tolist()
              for cfg in (a_cfg, c_cfg, tiny(seed=1, data_seed=8))]
    assert levels[0] == levels[1] != levels[2]  # the data seed alone orders the levels
    from gmg.experiments.analysis.before_training import untrained_network
    from gmg.experiments.population import resolve_agents

    ra, rb = resolve_agents(a)[0], resolve_agents(b)[0]
    wa, wb = untrained_network(ra).state_dict(), untrained_network(rb).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # same seed: same initial weights
    assert not torch.equal(load_agent_weights(a / "model.safetensors")["value.weight"],
                           load_agent_weights(b / "model.safetensors")["value.weight"])  # trained on other data


def test_a_grid_of_seeds_and_data_seeds_trains_every_pair_once(tmp_path):
    run = train(tiny(), tmp_path, [0, 1], device="cpu", progress=False, data_seeds=[5, 6])
    ids = sorted(int(p.name.split("-")[1]) for p in (run / "agents").iterdir())
    assert ids == [5, 6, 10005, 10006]
    with pytest.raises(ConfigError, match="one agent per process"):
        train(tiny(), tmp_path, [0], device="cpu", progress=False, data_seeds=[5], stack=2)
    with pytest.raises(ConfigError, match="both seeds must be in"):
        make_config("cpu", {"seed": 10_000, "data_seed": 1})


def test_the_paper_preset_is_the_original_training_code():
    """The five respects in which the paper preset once departed from procgenAISC's PPO."""
    from gmg.training.ppo import initial_model

    paper = make_config("paper")
    assert paper.anneal_lr and paper.clip_vloss and not paper.run.bf16
    assert (paper.init, paper.return_gamma, paper.reward_clip, paper.gamma) == ("xavier", 0.99, 10.0, 0.999)
    assert paper.normaliser_gamma == 0.99 and make_config("cpu").normaliser_gamma == make_config("cpu").gamma
    model = initial_model(dataclasses.replace(paper, widths=(4, 8, 8), hidden=32))
    conv = model.get_submodule(next(n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)))
    fan_in, fan_out = conv.weight[0].numel(), conv.weight.shape[0] * conv.weight[0, 0].numel()
    bound = math.sqrt(6 / (fan_in + fan_out))  # Xavier-uniform's, gain 1
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.8 * bound and not conv.bias.any()
    rows = model.policy.weight @ model.policy.weight.T  # the policy head stays orthogonal, gain 0.01
    assert torch.allclose(rows, 1e-4 * torch.eye(rows.shape[0]), atol=1e-9)
    fc_bound = math.sqrt(6 / sum(model.fc.weight.shape))
    assert model.fc.weight.abs().max() <= fc_bound
    orthogonal = initial_model(dataclasses.replace(paper, widths=(4, 8, 8), hidden=32, init="orthogonal"))
    assert orthogonal.fc.weight.abs().max() > fc_bound  # orthogonal with gain sqrt(2) reaches past it


def test_rewards_scale_by_the_normaliser_discount_and_clip():
    from gmg.training.ppo import RunningMeanStd, scaled_reward

    reward = torch.tensor([0.0, 10.0, 0.0, 1000.0])
    done = torch.tensor([False, True, False, True])

    def run(**over):
        cfg = make_config("cpu", over)
        rms, ret = RunningMeanStd(torch.device("cpu")), torch.full((4,), 5.0, dtype=torch.float64)
        # a long history of std 0.01: one batch barely moves it, the scaled rewards reach ~1000
        rms.load({k: torch.tensor(v, dtype=torch.float64) for k, v in (("mean", 0.0), ("var", 1e-4), ("count", 1e9))})
        scaled, ret = scaled_reward(cfg, reward, done, ret, rms)
        return scaled, ret, rms.var.item()

    _, _, var_gae = run(gamma=0.9)
    scaled, ret, var_own = run(gamma=0.9, return_gamma=0.5)
    assert var_gae != var_own  # the running return discounts by return_gamma, not GAE's gamma
    assert ret.tolist() == [2.5, 0.0, 2.5, 0.0]  # 5 x 0.5 + 0, reset where an episode ended
    clipped, _, _ = run(gamma=0.9, return_gamma=0.5, reward_clip=3)
    assert clipped.tolist() == [0.0, 3.0, 0.0, 3.0] and scaled[1].item() > 100  # unclipped: far past 3


def test_snapshots_keep_the_weights_every_n_updates_and_a_resumed_run_keeps_the_same(tmp_path):
    from gmg.experiments.population import resolve_agents
    from gmg.training.checkpoint import snapshot_dirs

    cfg = tiny(seed=2, total_timesteps=64 * 5, snapshot_every=2)
    whole = train_agent(cfg, tmp_path / "whole", device="cpu", progress=False)
    snaps = snapshot_dirs(whole)
    assert [p.name for p in snaps] == ["update-0002", "update-0004", "update-0005"]  # and the last update
    metas = [json.loads((p / "meta.json").read_text()) for p in snaps]
    assert [m["snapshot"]["update"] for m in metas] == [2, 4, 5] and [m["steps"] for m in metas] == [128, 256, 320]
    final = load_agent(whole)[0].state_dict()
    assert all(torch.equal(final[k], v) for k, v in load_agent(snaps[-1])[0].state_dict().items())
    assert not torch.equal(load_agent(snaps[0])[0].state_dict()["value.weight"], final["value.weight"])
    assert resolve_agents(whole)[0].path == whole  # a snapshot is not one of the run's agents
    part = tmp_path / "part"
    train_agent(cfg, part, device="cpu", progress=False, max_iterations=3)
    assert [p.name for p in snapshot_dirs(part)] == ["update-0002"]
    train_agent(cfg, part, device="cpu", progress=False)
    for a, b in zip(snaps, snapshot_dirs(part), strict=True):
        wa, wb = load_agent(a)[0].state_dict(), load_agent(b)[0].state_dict()
        assert a.name == b.name and all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(ConfigError, match="snapshot"):
        train(tiny(snapshot_every=1), tmp_path / "stacked", [0, 1], device="cpu", progress=False, stack=2)
    with pytest.raises(ConfigError, match="snapshot_every"):
        tiny(snapshot_every=-1).validate()
