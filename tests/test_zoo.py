"""The bundled zoo: every agent loads, matches the cpu-zoo preset, and solves held-out levels."""

from __future__ import annotations

import pytest
import torch

from gmg.experiments.population import ZOO_DIR, resolve_agents, zoo_names
from gmg.training.config import MISSING_MEANS, RUN_FIELDS_IGNORED_ON_RESUME, make_config
from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv

# name -> (goal, background, the preset whose fields it was trained with)
POPULATIONS = {"yellow-line": ("yellow_line", "black", "cpu-zoo"), "white-line": ("white_line", "black", "cpu-zoo"),
               "yellow-line-textured": ("yellow_line", "textured", "cpu-textured"),
               "seed-grid": ("yellow_line", "black", "cpu")}


def _zoo(name):
    assert name in zoo_names(), f"zoo:{name} is not bundled (bundled: {zoo_names()})"
    return resolve_agents(f"zoo:{name}")


@pytest.mark.parametrize("name", sorted(POPULATIONS))
def test_zoo_metadata_matches_its_preset(name):
    goal, background, recipe = POPULATIONS[name]
    # the zoo predates the render option: its files have none, which means the box renderer
    preset = make_config(recipe, {"goal": goal, "render": "box"}).to_dict()
    for ref in _zoo(name):
        assert "render" not in ref.meta["train"] and ref.trained_on.render == "box"
        train = {**MISSING_MEANS, **ref.meta["train"]}
        # trained as `--preset cpu` (the black zoo before the one-epoch recipe took that name;
        # the textured one with --background textured --steps 200000 before cpu-textured named it)
        assert ref.meta["finished"] and ref.meta["preset"] == train["preset"] == "cpu"
        assert ref.meta["env"]["objects"] == [goal] and ref.meta["env"]["background"] == background
        # an agent that missed the bar is retrained with more steps: only the length may grow;
        # how a run runs (threads, checkpoints, GPU switches added since) is not the recipe
        longer = ("total_timesteps", "num_iterations")
        same = {k: v for k, v in preset.items() if k not in ("seed", *longer, *RUN_FIELDS_IGNORED_ON_RESUME)}
        assert {k: train[k] for k in same} == same, ref.path.name
        assert all(train[k] >= preset[k] for k in longer), ref.path.name
        # a grid agent's id combines its two seeds (initialisation x 10000 + data order)
        assert ref.path.name == f"agent-{ref.agent_id:04d}"
        assert train["seed"] * 10_000 + train["data_seed"] == ref.agent_id if "data_seed" in train else train["seed"] == ref.agent_id
        assert (ref.path / "train.csv").stat().st_size > 0


@pytest.mark.parametrize("name", sorted(POPULATIONS))
def test_zoo_agents_solve_held_out_levels(name):
    refs = _zoo(name)
    n = 32
    goal, background, _ = POPULATIONS[name]
    env_cfg = EnvConfig(objects=(goal,), background=background)
    for ref in refs:
        model = ref.load("cpu")
        env = MazeEnv(n, env_cfg, EvaluationLevels(n=n), "cpu")
        obs, done = env.observe(), torch.zeros(n, dtype=torch.bool)
        success, length = torch.zeros(n, dtype=torch.bool), torch.zeros(n)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for _ in range(100):
                probs = torch.softmax(model(obs)[0], -1)
                obs, _, term, trunc, info = env.step(torch.multinomial(probs, 1, generator=gen)[:, 0])
                new = (term | trunc) & ~done
                success |= new & (info["reached"] == 1)
                length[new] = info["length"][new].float()
                done |= new
                if done.all():
                    break
        path = env.bank.path_len[:n, 0].float()
        assert success.float().mean() >= 0.9, (ref.path.name, success.float().mean())
        assert length[success].mean() <= 2.0 * path[success].mean(), ref.path.name


def test_the_seed_grid_is_every_initialisation_with_every_data_order_and_ships_its_trajectory():
    import pandas as pd

    from gmg.experiments.analysis.seed_anatomy import TRAJECTORY_FILE, grid_of

    grid = grid_of(_zoo("seed-grid"))
    assert grid["init_seed"].nunique() * grid["data_seed"].nunique() == len(grid) >= 18
    traj = pd.read_csv(ZOO_DIR / "seed-grid" / TRAJECTORY_FILE)
    assert set(traj["agent"]) == set(grid["agent"]) and traj.groupby("agent")["fraction"].max().eq(1.0).all()
    assert traj.groupby("agent").size().min() >= 5  # several kept points per agent


def test_every_listed_population_resolves():
    # the zoo folder is also a package: its __pycache__ is not a population
    assert all(len(resolve_agents(f"zoo:{name}")) >= 16 for name in zoo_names())


def test_zoo_is_small():
    size = sum(p.stat().st_size for p in ZOO_DIR.rglob("*") if p.is_file())
    assert 0 < size < 60 * 2**20


def test_heldout_table_applies_the_zoo_bar_per_agent():
    import pandas as pd

    from gmg.experiments.zoo.export import heldout_table

    def episodes(agent, n, fails, steps, shortest=4):
        return pd.DataFrame({"agent": agent, "level": range(n), "outcome": ["obj1"] * (n - fails) + ["timeout"] * fails,
                             "steps": steps, "path_len_obj1": shortest})

    table = heldout_table(pd.concat([
        episodes(0, 1000, 10, 5),   # 99.0% success, 1.25x: passes
        episodes(1, 1000, 11, 5),   # 98.9%: fails on success
        episodes(2, 1000, 0, 7),    # 1.75x the shortest path: fails on length
    ])).set_index("agent")
    assert table.loc[0, "success"] == pytest.approx(0.99) and table.loc[0, "ratio"] == pytest.approx(1.25)
    assert table["passes"].tolist() == [True, False, False]
    assert table["levels"].tolist() == [1000, 1000, 1000]


@pytest.mark.parametrize("spec", ["zoo:", "zoo:nope", "zoo:../zoo"])
def test_unknown_zoo_names_list_the_bundled_ones(spec):
    from gmg.training.errors import UserError

    with pytest.raises(UserError, match="no zoo population .*; bundled: "):
        resolve_agents(spec)


def test_zoo_check_keeps_each_population_in_its_own_default_folder(tmp_path, monkeypatch, capsys):
    from gmg.experiments.cli.main import main

    names = list(POPULATIONS)
    assert set(names) <= set(zoo_names())
    monkeypatch.chdir(tmp_path)
    for name in names:  # agent ids repeat across populations; one shared store would refuse the second
        assert main(["zoo", "check", "--agents", f"zoo:{name}", "--n-levels", "2", "--device", "cpu", "--quiet"]) == 0
        assert (tmp_path / "runs" / "zoo-check" / name / "heldout.csv").is_file()


def test_export_writes_16_bit_agents_of_the_chosen_seeds_and_drops_the_rest(tmp_path):
    from conftest import make_agent_dir
    from safetensors.torch import load_file

    from gmg.experiments.zoo.export import export_zoo

    for seed in range(3):
        make_agent_dir(tmp_path / "run" / "agents", seed)
        (tmp_path / "run" / "agents" / f"agent-{seed:04d}" / "train.csv").write_text("iteration\n1\n")
    zoo = tmp_path / "zoo" / "tiny"
    assert [p.name for p in export_zoo(tmp_path / "run", zoo, seeds=[0, 2])] == ["agent-0000", "agent-0002"]
    assert sorted(p.name for p in zoo.iterdir()) == ["agent-0000", "agent-0002"]
    assert all(t.dtype == torch.float16 for t in load_file(str(zoo / "agent-0000" / "model.safetensors")).values())
    assert len(resolve_agents(zoo)) == 2
    export_zoo(tmp_path / "run", zoo, seeds=[1])  # a re-export replaces the population
    assert sorted(p.name for p in zoo.iterdir()) == ["agent-0001"]
