"""Sweeps on Ray: the same agents and rows as in-process, retries of killed workers, resume,
and a one-line install hint without Ray. Ray runs locally with 2 CPUs, started by the tests."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
import torch
from conftest import tiny_config

from gmg.experiments import cluster
from gmg.experiments.cli.main import main
from gmg.experiments.cluster import FAULT_ENV, chunk_runner, connect, play_chunks, seed_runner
from gmg.experiments.evaluate import evaluate
from gmg.experiments.population import resolve_agents
from gmg.experiments.store import ResultsStore
from gmg.training.checkpoint import load_agent
from gmg.training.errors import UserError
from gmg.training.seed_groups import train

SEEDS = [0, 1, 2, 3]
SETTING = ["red_line-vs-yellow_gem"]
EVAL = dict(device="cpu", n_levels=12, batch_envs=24, progress=False)  # 2 agents per chunk


@pytest.fixture
def start_ray():
    """Starts a local Ray with 2 CPUs; ``env`` reaches its worker processes."""
    ray = pytest.importorskip("ray")

    def start(env: dict | None = None):
        ray.shutdown()
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": env or {}})

    yield start
    ray.shutdown()


def _weights(run, seed):
    return load_agent(run / "agents" / f"agent-{seed:04d}")[0].state_dict()


def _same_agents(a, b, seeds):
    for s in seeds:
        wa, wb = _weights(a, s), _weights(b, s)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), f"seed {s} differs"


def _rows(run_dir, table="episodes"):
    with ResultsStore(run_dir) as store:
        df = store.table(table)
    return df.sort_values(["agent", "level"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The reference: the sweep trained and evaluated in this process."""
    root = tmp_path_factory.mktemp("in-process")
    train(tiny_config(threads=1), root / "train", SEEDS, device="cpu", progress=False)
    evaluate(root / "train" / "agents", SETTING, root / "eval", **EVAL)
    evaluate(root / "train" / "agents", SETTING, root / "eval", exact=True, **EVAL)
    return root


def test_a_ray_sweep_gives_the_same_agents_and_rows(start_ray, in_process, tmp_path):
    start_ray()
    train(tiny_config(threads=1), tmp_path / "train", SEEDS, device="cpu", progress=False,
          run_seeds=seed_runner("local"))
    _same_agents(in_process / "train", tmp_path / "train", SEEDS)
    # a group of stacked seeds is one task, its agents those trained alone up to float rounding
    train(tiny_config(threads=1), tmp_path / "stacked", SEEDS[:2], device="cpu", progress=False, stack=2,
          run_seeds=seed_runner("local"))
    for s in SEEDS[:2]:
        a, b = _weights(in_process / "train", s), _weights(tmp_path / "stacked", s)
        assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    evaluate(tmp_path / "train" / "agents", SETTING, tmp_path / "eval", run_chunks=chunk_runner("local"), **EVAL)
    pd.testing.assert_frame_equal(_rows(in_process / "eval"), _rows(tmp_path / "eval"))
    # exact evaluation goes through the same tasks, its chunk function sent with them
    evaluate(tmp_path / "train" / "agents", SETTING, tmp_path / "eval", run_chunks=chunk_runner("local"), exact=True,
             **EVAL)
    pd.testing.assert_frame_equal(_rows(in_process / "eval", "exact"), _rows(tmp_path / "eval", "exact"))


def test_killed_workers_are_retried_with_nothing_lost_or_duplicated(start_ray, in_process, tmp_path):
    faults = tmp_path / "faults"
    start_ray({FAULT_ENV: str(faults)})  # each task's first worker process dies mid-task
    train(tiny_config(threads=1), tmp_path / "train", SEEDS[:2], device="cpu", progress=False,
          run_seeds=seed_runner("local"))
    assert sorted(p.name for p in faults.iterdir()) == ["train-0", "train-1"]  # both died after 1 checkpoint
    _same_agents(in_process / "train", tmp_path / "train", SEEDS[:2])

    evaluate(in_process / "train" / "agents", SETTING, tmp_path / "eval", run_chunks=chunk_runner("local"), **EVAL)
    assert len([p for p in faults.iterdir() if p.name.startswith("eval-")]) == 2  # both chunks died once
    rows = _rows(tmp_path / "eval")
    assert not rows.duplicated(["agent", "setting", "level"]).any()
    pd.testing.assert_frame_equal(_rows(in_process / "eval"), rows)


def test_a_killed_driver_resumes_with_only_the_missing_chunks(start_ray, in_process, tmp_path):
    start_ray()
    refs = resolve_agents(in_process / "train" / "agents")
    evaluate(refs[:2], SETTING, tmp_path, **EVAL)  # what a driver stored before it was killed
    before = len((tmp_path / "evaluate.log").read_text().splitlines())
    evaluate(refs, SETTING, tmp_path, run_chunks=chunk_runner("local"), **EVAL)
    log = (tmp_path / "evaluate.log").read_text().splitlines()[before:]
    assert sorted(int(line.split("agent=")[1].split()[0]) for line in log) == [2, 3]
    pd.testing.assert_frame_equal(_rows(in_process / "eval"), _rows(tmp_path))


def test_without_ray_installed_in_process_works_and_ray_says_how_to_install(monkeypatch, in_process,
                                                                             tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    with pytest.raises(UserError, match=r"pip install 'ray>=2.9'"):
        connect("local")
    agents = str(in_process / "train" / "agents")
    code = main(["evaluate", "--agents", agents, "--settings", SETTING[0], "--n-levels", "4",
                 "--run-dir", str(tmp_path), "--device", "cpu", "--quiet", "--ray", "local"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install 'ray>=2.9'" in err[0]
    df = evaluate(agents, SETTING, tmp_path, device="cpu", n_levels=4, progress=False)
    assert len(df) == 4 * len(SEEDS)
    # a finished sweep has nothing to send, so --ray needs no cluster (nor Ray) to rerun it
    assert len(evaluate(agents, SETTING, tmp_path, device="cpu", n_levels=4, progress=False, run_chunks=chunk_runner("local"))) == len(df)
    train(tiny_config(threads=1), in_process / "train", SEEDS, device="cpu", progress=False,
          run_seeds=seed_runner("local"))


def test_tasks_get_absolute_agent_paths_and_cuda_without_gpus_is_refused(start_ray, in_process, monkeypatch):
    from gmg.experiments.settings import resolve_settings

    start_ray()
    monkeypatch.chdir(in_process)
    refs = resolve_agents("train/agents")
    assert not refs[0].path.is_absolute()
    # what a task on another node receives (a function defined here travels by value)
    monkeypatch.setattr(cluster, "_eval_task", lambda chunk, batch, setting, device, args: [str(r.path) for r in batch])
    jobs = [(resolve_settings(SETTING)[0], refs[:2])]
    [(_, _, paths)] = list(play_chunks("local", jobs, "cpu", {}, 1, None))
    assert paths == [str((in_process / r.path).resolve()) for r in refs[:2]]
    # Ray would keep a task asking for a GPU pending forever on this GPU-less cluster
    with pytest.raises(UserError, match="the Ray cluster has no GPU"):
        list(play_chunks("local", jobs, "cuda", {}, 1, None))
