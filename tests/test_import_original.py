"""``gmg import original`` / ``original-results`` on stand-ins of the original's archive.

The stand-in is written here from the facts of the original's format (train-procgen's
``ImpalaModel`` + ``CategoricalPolicy`` with their module names, ``torch.save`` of
``{'model_state_dict', 'optimizer_state_dict'}`` from a GPU, ``logs/train/<env>/<run>/<date>__seed_<s>/
model_<t>.pth``; results ``<run>/<c>-<s>-<c>-<s>-final-model/<run folder>/model_<t>.csv``), not
from gmg's code, so that a wrong mapping shows up as a wrong forward pass.
"""

from __future__ import annotations

import contextlib
import copy
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gmg.experiments.cli.main import main

STEPS_5M = (1_048_576, 2_031_616, 3_014_656, 4_063_232, 5_046_272)


# ---------------------------------------------------------------- the original's network, written anew

class OrigResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x):
        out = self.conv2(F.relu(self.conv1(F.relu(x))))
        return out + x


class OrigImpalaBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.res1 = OrigResidualBlock(cout)
        self.res2 = OrigResidualBlock(cout)

    def forward(self, x):
        return self.res2(self.res1(self.maxpool(self.conv(x))))


class OrigImpalaModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1, self.block2, self.block3 = OrigImpalaBlock(3, 16), OrigImpalaBlock(16, 32), OrigImpalaBlock(32, 32)
        self.fc = nn.Linear(32 * 8 * 8, 256)

    def forward(self, x):
        x = F.relu(self.block3(self.block2(self.block1(x))))
        return F.relu(self.fc(torch.flatten(x, 1)))


class OrigPolicy(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedder = OrigImpalaModel()
        self.fc_policy = nn.Linear(256, 15)
        self.fc_value = nn.Linear(256, 1)

    def forward(self, x):
        h = self.embedder(x)
        return self.fc_policy(h), self.fc_value(h).reshape(-1)


def original_input(frames: np.ndarray) -> torch.Tensor:
    """The original's preprocessing: uint8 HWC -> float32 / 255 -> CHW (a contiguous copy)."""
    return torch.FloatTensor(np.transpose(frames.astype(np.float32) / 255.0, (0, 3, 1, 2)))


@contextlib.contextmanager
def saved_as_from_cuda():
    """torch.save records every storage at cuda:0, as the original's GPU runs did: loading then
    needs map_location="cpu" on a machine without CUDA."""
    import torch.serialization as ser

    entry = (-100, lambda obj: "cuda:0", lambda obj, location: None)
    ser._package_registry.append(entry)
    ser._package_registry.sort(key=lambda e: e[0])
    try:
        yield
    finally:
        ser._package_registry.remove(entry)


def original_policy(seed: int) -> OrigPolicy:
    torch.manual_seed(seed)
    net = OrigPolicy()
    with torch.no_grad():  # weights large enough that a swapped block changes every output
        for p in net.parameters():
            p.mul_(3.0)
    return net


def save_original(path: Path, net: OrigPolicy, state: dict | None = None) -> None:
    """``net``'s weights (or a raw ``state``) as train-procgen saves them, with the state of an Adam
    that took one step (on a copy: the saved weights stay ``net``'s)."""
    state = state if state is not None else {k: v.clone() for k, v in net.state_dict().items()}
    net = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=5e-4, eps=1e-5)
    net(torch.rand(2, 3, 64, 64))[0].sum().backward()
    opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    with saved_as_from_cuda():
        torch.save({"model_state_dict": state,
                    "optimizer_state_dict": opt.state_dict()}, path)


def make_archive(root: Path, seeds=(3, 11), run_name: str = "maze-5x5", steps=STEPS_5M,
                 env_name: str = "maze_pure_yellowline", states=None) -> list[Path]:
    """``root/logs/train/<env>/<run>/<date>__seed_<s>/model_<t>.pth``, one network per checkpoint:
    random ones, or ``states(k, i)`` (run k, checkpoint i) as original state dicts."""
    folders = []
    for k, seed in enumerate(seeds):
        folder = root / "logs" / "train" / env_name / run_name / f"2023-01-{10 + k:02d}__09-00-00__seed_{seed}"
        for i, t in enumerate(steps):
            net = original_policy(1000 * seed + i)
            save_original(folder / f"model_{t}.pth", net, None if states is None else states(k, i))
        (folder / "log-append.csv").write_text("timesteps,wall_time\n65536,1.0\n")
        folders.append(folder)
    return folders


def widened_original_state(agent_dir: Path) -> dict[str, torch.Tensor]:
    """A trained gmg agent of narrower widths (the zoo's 8, 16, 16) as an original state dict
    (16, 32, 32) computing the same function: its weights in the first channels, zeros elsewhere, so
    the extra channels are zero after every conv, pool, ReLU and skip. A stand-in that plays
    like a trained agent (random networks wander to the timeout)."""
    from safetensors.torch import load_file

    from gmg.experiments.original.agents import state_dict_names

    narrow = load_file(agent_dir / "model.safetensors")
    wide = {k: torch.zeros_like(v) for k, v in OrigPolicy().state_dict().items()}
    for theirs, ours in state_dict_names().items():
        # NCHW flatten puts channel c at fc inputs c x 64 ...: the first channels are the first inputs
        w = narrow[ours]
        wide[theirs][tuple(slice(0, n) for n in w.shape)] = w
    return wide


def make_results(root: Path, run_name: str, folders: list[str], setting_folders=("red-line-yellow-gem",),
                 n_levels: int = 1000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for s in setting_folders:
        for k, folder in enumerate(folders):
            d = root / "experiments" / "results-1000" / run_name / f"{s}-final-model" / folder
            d.mkdir(parents=True, exist_ok=True)
            a = (0.2, 0.75, 0.3, 0.7, 0.25, 0.8, 0.35, 0.65)[k % 8]  # each agent its own preference, none even
            reward = rng.choice([10, -10, 0], size=n_levels, p=[a, 0.95 - a, 0.05])
            steps = np.where(reward == 0, 500, rng.integers(1, 40, n_levels))
            lines = ["seed,steps,reward"] + [f"{100000 + i},{steps[i]},{reward[i]}" for i in range(n_levels)]
            (d / f"model_{STEPS_5M[-1]}.csv").write_text("\n".join(lines) + "\n")


def outputs(model, x):
    with torch.no_grad():
        return model(x)


# ---------------------------------------------------------------- the network, bit for bit

def test_stand_in_is_the_original_shape_and_needs_map_location(tmp_path):
    net = original_policy(0)
    assert len(net.state_dict()) == 36 and sum(p.numel() for p in net.parameters()) == 626_256
    save_original(tmp_path / "model_0.pth", net)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="(?i)cuda"):
            torch.load(tmp_path / "model_0.pth", weights_only=True)
    blob = torch.load(tmp_path / "model_0.pth", map_location="cpu", weights_only=True)
    assert blob["optimizer_state_dict"]["state"][0]["exp_avg"].device.type == "cpu"


def test_imported_agent_computes_the_originals_logits_and_value_bit_for_bit(tmp_path):
    from gmg.experiments.original.agents import import_original
    from gmg.training.checkpoint import load_agent

    make_archive(tmp_path / "archive", seeds=(5,))
    out = import_original(tmp_path / "archive", tmp_path / "runs")
    assert out.problems == [] and len(out.imported) == 1
    model, meta = load_agent(out.imported[0])
    reference = original_policy(1000 * 5 + 4).eval()  # the last checkpoint is the agent
    frames = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    x = original_input(frames)
    (ref_logits, ref_value), (logits, value) = outputs(reference, x), outputs(model, x)
    assert torch.equal(logits, ref_logits) and torch.equal(value, ref_value)
    # from uint8 frames gmg keeps its channels-last layout (2.5x faster convs on a CPU): equal to rounding
    logits8, value8 = outputs(model, torch.from_numpy(frames))
    tol = 50 * torch.finfo(torch.float32).eps * float(ref_logits.abs().max())
    assert torch.allclose(logits8, ref_logits, rtol=0, atol=tol) and torch.allclose(value8, ref_value, rtol=0, atol=tol)
    assert meta["model"]["widths"] == [16, 32, 32] and meta["model"]["hidden"] == 256
    assert meta["env"]["render"] == "procgen" and meta["env"]["levels"] == "procgen"
    assert meta["env"]["objects"] == ["yellow_line"] and meta["env"]["background"] == "black"
    assert meta["origin"]["seed"] == 5 and meta["origin"]["run_name"] == "maze-5x5" and meta["steps"] == STEPS_5M[-1]


def test_a_zoo_agent_widened_into_the_originals_shape_imports_as_the_same_policy(tmp_path):
    """The stand-ins of scripts/original_standin.py: trained zoo agents in the original's format."""
    from gmg.experiments.original.agents import import_original
    from gmg.training.checkpoint import load_agent

    zoo = Path(__file__).resolve().parents[1] / "experiments" / "zoo" / "yellow-line" / "agent-0003"
    make_archive(tmp_path / "archive", seeds=(7,), steps=STEPS_5M[-1:], states=lambda k, i: widened_original_state(zoo))
    out = import_original(tmp_path / "archive", tmp_path / "runs")
    (imported, _), (narrow, _) = load_agent(out.imported[0]), load_agent(zoo)
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (32, 64, 64, 3), dtype=np.uint8))
    (logits, value), (ref_logits, ref_value) = outputs(imported.eval(), frames), outputs(narrow.eval(), frames)
    assert sum(p.numel() for p in imported.parameters()) == 626_256
    assert torch.allclose(logits, ref_logits, rtol=0, atol=1e-4) and torch.allclose(value, ref_value, rtol=0, atol=1e-4)
    assert not torch.allclose(logits, outputs(load_agent(zoo.parent / "agent-0004")[0].eval(), frames)[0], atol=1e-2)


def test_swapped_residual_blocks_do_not_import_as_the_same_network(tmp_path):
    """The naming trap: res1/conv1 exist on both sides with different meanings."""
    from gmg.experiments.original.agents import convert_state_dict, state_dict_names
    from gmg.training.model import ImpalaAgent, ModelConfig

    names = state_dict_names()
    assert len(names) == 36
    assert names["embedder.block1.res1.conv1.weight"] == "blocks.0.res0.conv0.weight"
    assert names["embedder.block3.res2.conv2.bias"] == "blocks.2.res1.conv1.bias"
    ref = original_policy(7).eval()
    state = ref.state_dict()
    swapped = {k.replace(".res1.", ".tmp.").replace(".res2.", ".res1.").replace(".tmp.", ".res2."): v
               for k, v in state.items()}
    x = original_input(np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8))
    want = outputs(ref, x)[0]

    def imported(sd):
        weights, config = convert_state_dict(sd)
        model = ImpalaAgent(config).eval()
        model.load_state_dict(weights)
        return outputs(model, x)[0]

    assert torch.equal(imported(state), want)
    assert not torch.allclose(imported(swapped), want, atol=1e-3)
    # a suffix-matching importer (names kept, blocks renumbered) loads silently and is caught here
    naive = ImpalaAgent(ModelConfig()).eval()
    ours = naive.state_dict()
    for k, v in state.items():
        key = k.replace("embedder.", "").replace("fc_policy", "policy").replace("fc_value", "value")
        for i in (1, 2, 3):
            key = key.replace(f"block{i}.", f"blocks.{i - 1}.")
        if key in ours:
            ours[key] = v
    naive.load_state_dict(ours)
    assert not torch.allclose(outputs(naive, x)[0], want, atol=1e-3)


# ---------------------------------------------------------------- folders, snapshots, bad files

def test_import_writes_gmg_folders_with_snapshots_and_resumes(tmp_path):
    from gmg.experiments.analysis.seed_anatomy import snapshot_population
    from gmg.experiments.original.agents import import_original
    from gmg.experiments.population import population
    from gmg.training.checkpoint import snapshot_dirs

    folders = make_archive(tmp_path / "archive", seeds=(3, 11))
    save_original(folders[0] / "model_0.pth", original_policy(99))
    out = import_original(tmp_path / "archive", tmp_path / "runs")
    assert len(out.imported) == 2 and out.problems == []
    pop = population(tmp_path / "runs" / "maze-5x5")
    assert pop.ids == [3, 11] and pop.trained_on.goal == "yellow_line"
    snaps = snapshot_dirs(pop[0].path)
    metas = [json.loads((p / "meta.json").read_text()) for p in snaps]
    assert [m["snapshot"]["steps"] for m in metas] == list(STEPS_5M)
    assert [m["snapshot"]["update"] for m in metas] == [16, 31, 46, 62, 77]
    assert (pop[0].path / "initial" / "model.safetensors").is_file() and not (pop[1].path / "initial").exists()
    assert len(snapshot_population(pop)) == 10
    assert (pop[0].path / "original-log-append.csv").is_file()
    stamp = (pop[0].path / "model.safetensors").stat().st_mtime_ns
    again = import_original(tmp_path / "archive", tmp_path / "runs")
    assert again.imported == [] and len(again.skipped) == 2
    assert (pop[0].path / "model.safetensors").stat().st_mtime_ns == stamp


def test_before_training_uses_the_imported_model_0_or_refuses(tmp_path):
    from gmg.experiments.analysis.before_training import untrained_network
    from gmg.experiments.original.agents import import_original
    from gmg.experiments.population import population
    from gmg.training.errors import UserError

    folders = make_archive(tmp_path / "archive", seeds=(3, 11), steps=STEPS_5M[-1:])
    save_original(folders[0] / "model_0.pth", original_policy(99))
    import_original(tmp_path / "archive", tmp_path / "runs")
    pop = population(tmp_path / "runs" / "maze-5x5")
    x = original_input(np.random.default_rng(2).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8))
    assert torch.equal(outputs(untrained_network(pop[0]), x)[0], outputs(original_policy(99).eval(), x)[0])
    with pytest.raises(UserError, match="model_0.pth"):
        untrained_network(pop[1])


def test_bad_files_are_one_line_each_and_nothing_half_written(tmp_path, capsys):
    archive = tmp_path / "archive"
    good = make_archive(archive, seeds=(1,), steps=STEPS_5M[-2:])[0]
    base = archive / "logs" / "train" / "maze_pure_yellowline" / "maze-5x5"

    def run(seed: int, state) -> None:
        save_original(base / f"2023-02-01__00-00-00__seed_{seed}" / f"model_{STEPS_5M[-1]}.pth", OrigPolicy(), state)

    recurrent = OrigPolicy().state_dict()
    recurrent["gru.weight_ih_l0"] = torch.zeros(768, 256)
    run(20, recurrent)
    missing = OrigPolicy().state_dict()
    del missing["embedder.block2.res2.conv1.weight"]
    run(21, missing)
    run(22, None)
    truncated = base / "2023-02-01__00-00-00__seed_22" / f"model_{STEPS_5M[-1]}.pth"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    # a middle checkpoint that is not a zip: the agent imports without that snapshot
    (good / f"model_{STEPS_5M[-2]}.pth").write_bytes(b"not a checkpoint")
    unknown = make_archive(tmp_path / "other", seeds=(4,), run_name="maze-7x7-blue", steps=STEPS_5M[-1:])[0]
    (archive / "extra").mkdir()
    unknown.rename(archive / "extra" / unknown.name)
    (archive / "extra").rename(archive / "maze-7x7-blue")

    assert main(["import", "original", str(archive), "--run-dir", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 6, err  # five problems, then the summary line
    text = "\n".join(err)
    for needle in ("recurrent", "block2.res2.conv1.weight", "truncated", "unknown run name 'maze-7x7-blue'",
                   "imported without it"):
        assert needle in text, (needle, text)
    agents = tmp_path / "runs" / "maze-5x5" / "agents"
    assert sorted(p.name for p in agents.iterdir()) == ["agent-0001"]
    assert not (tmp_path / "runs" / "maze-7x7-blue").exists()
    assert not list((tmp_path / "runs").rglob("*.tmp")) and not (tmp_path / "runs" / "maze-5x5" / ".importing").exists()
    assert [p.name for p in (agents / "agent-0001" / "snapshots").iterdir()] == ["update-0077"]
    # the unknown run name imports once it is said what it was trained on
    assert main(["import", "original", str(archive / "maze-7x7-blue"), "--run-dir", str(tmp_path / "runs"),
                 "--goal", "blue_line", "--background", "grey", "--quiet"]) == 0
    meta = json.loads((tmp_path / "runs" / "maze-7x7-blue" / "agents" / "agent-0004" / "meta.json").read_text())
    assert meta["env"]["objects"] == ["blue_line"] and meta["env"]["background"] == "grey"


def test_repeated_seeds_get_distinct_ids_and_the_blacklisted_run_a_note(tmp_path):
    from gmg.experiments.original.agents import import_original
    from gmg.experiments.population import population

    base = tmp_path / "archive" / "maze-5x5"
    for stamp in ("2023-02-10__09-48-21", "2023-03-01__10-00-00"):
        save_original(base / f"{stamp}__seed_8998" / f"model_{STEPS_5M[-1]}.pth", original_policy(1))
    import_original(tmp_path / "archive", tmp_path / "runs")
    pop = population(tmp_path / "runs" / "maze-5x5")
    assert pop.ids == [8998, 18998]
    assert "much longer" in pop[0].meta["origin"]["note"] and "note" not in pop[1].meta["origin"]


def test_a_recurrent_checkpoint_file_is_recognised_before_any_write(tmp_path):
    from gmg.experiments.original.agents import OriginalFormatError, read_checkpoint

    path = tmp_path / "model_1.pth"
    torch.save({"model_state_dict": {"gru.weight_hh_l0": torch.zeros(3)}}, path)
    with pytest.raises(OriginalFormatError, match="recurrent"):
        read_checkpoint(path)
    assert zipfile.is_zipfile(path)


# ---------------------------------------------------------------- the original's results

def test_results_import_maps_settings_and_refuses_unknown_folders(tmp_path, capsys):
    from gmg.experiments.evaluate import episodes, metrics
    from gmg.experiments.original.results import setting_of_folder
    from gmg.experiments.store import ResultsStore

    assert setting_of_folder("red-line-yellow-gem-final-model", "textured").name == "red_line-vs-yellow_gem@textured"
    assert setting_of_folder("black-gem-black-gem-final-model", "black").name == "black_gem-vs-black_gem"
    folders = ["2023-01-10__09-00-00__seed_3", "2023-01-11__09-00-00__seed_11"]
    make_results(tmp_path / "archive", "maze-5x5", folders, ("red-line-yellow-gem", "green-line-red-line",
                                                             "red-line-yellow-star"))
    run = tmp_path / "runs"
    assert main(["import", "original-results", str(tmp_path / "archive"), "--run-dir", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all("star" in line for line in err[:2]), err
    with ResultsStore(run / "maze-5x5" / "original", read_only=True) as store:
        eps = episodes(store)
    assert len(eps) == 2 * 2 * 1000 and set(eps["agent"]) == {3, 11}
    m = metrics(eps).set_index(["agent", "setting"])
    raw = np.loadtxt(tmp_path / "archive" / "experiments" / "results-1000" / "maze-5x5" /
                     "red-line-yellow-gem-final-model" / folders[0] / f"model_{STEPS_5M[-1]}.csv",
                     delimiter=",", skiprows=1)
    n1, n2 = (raw[:, 2] == 10).sum(), (raw[:, 2] == -10).sum()
    assert m.loc[(3, "red_line-vs-yellow_gem"), "preference"] == pytest.approx(n1 / (n1 + n2))
    assert m.loc[(3, "red_line-vs-yellow_gem"), "capability"] == pytest.approx(raw[:, 1].mean())
    assert eps["path_len_obj2"].notna().all() and (eps["path_len_obj1"] > 0).all()
    # a rerun writes nothing new
    capsys.readouterr()
    main(["import", "original-results", str(tmp_path / "archive"), "--run-dir", str(run), "--quiet"])
    assert "0 episodes written" in capsys.readouterr().out


def test_comparison_says_when_the_worlds_agree_and_when_not(tmp_path):
    from gmg.experiments.evaluate import EPISODES
    from gmg.experiments.original.results import compare_with_original, import_original_results
    from gmg.experiments.store import ResultsStore

    folders = ["2023-01-10__09-00-00__seed_3", "2023-01-11__09-00-00__seed_11"]
    make_results(tmp_path / "archive", "maze-5x5", folders)
    orig = import_original_results(tmp_path / "archive", tmp_path / "runs")["runs"][0]
    with ResultsStore(orig, read_only=True) as s:
        rows = s.table(EPISODES)
    same, other = tmp_path / "same", tmp_path / "other"
    with ResultsStore(same) as s:  # gmg's world = the original's: the same episodes
        s.write_chunk(EPISODES, rows, {})
    flipped = rows.assign(outcome=rows["outcome"].map({"obj1": "obj2", "obj2": "obj1", "timeout": "timeout"}))
    with ResultsStore(other) as s:  # another world: preferences reversed
        s.write_chunk(EPISODES, flipped, {})
    a = compare_with_original(orig, same, replayed=True)
    assert (a["agents"]["preference_diff"] == 0).all() and (a["agents"]["level_agreement"] == 1).all()
    assert bool(a["settings"]["same_world"].iloc[0]) and a["settings"]["agents_differing"].iloc[0] == 0
    b = compare_with_original(orig, other, replayed=True)
    assert b["agents"]["preference_differs"].all() and not bool(b["settings"]["same_world"].iloc[0])
    assert (b["agents"]["kappa"] < 0).all()
    assert "level_agreement" not in compare_with_original(orig, same, replayed=False)["agents"]


# ---------------------------------------------------------------- every command on imported agents

def test_an_imported_population_goes_through_check_evaluate_predict_report_and_the_comparison(tmp_path, capsys):
    archive, run = tmp_path / "archive", tmp_path / "runs"
    folders = make_archive(archive, seeds=(3, 11, 12), steps=STEPS_5M[-1:])
    make_results(archive, "maze-5x5", [f.name for f in folders], ("red-line-yellow-gem",))
    assert main(["import", "original", str(archive), "--run-dir", str(run), "--quiet"]) == 0
    pop = run / "maze-5x5"
    cpu = ["--device", "cpu", "--quiet"]
    assert main(["zoo", "check", "--agents", str(pop), "--run-dir", str(tmp_path / "check"), "--n-levels", "3", *cpu]) == 0
    assert main(["evaluate", "--agents", str(pop), "--run-dir", str(pop), "--n-levels", "6",
                 "--settings", "red_line-vs-yellow_gem", "train:yellow_line", *cpu]) == 0
    assert main(["predict", "--agents", str(pop), "--run-dir", str(pop), "--n-levels", "6", "--no-attributions",
                 "--settings", "red_line-vs-yellow_gem", "--readout-levels", "2", *cpu]) == 0
    assert main(["report", "--run-dir", str(pop), "--device", "cpu", "--top", "1"]) == 0
    assert (pop / "report" / "index.html").is_file()
    capsys.readouterr()
    assert main(["import", "original-results", str(archive), "--run-dir", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "the original against gmg" in out and "red_line-vs-yellow_gem" in out
    import pandas as pd

    per_agent = pd.read_csv(pop / "original" / "comparison.csv")
    assert sorted(per_agent["agent"]) == [3, 11, 12] and (per_agent["n_gmg"] == 6).all()
    assert (per_agent["n_orig"] == 6).all()  # compared on the levels both played
    assert main(["report", "--run-dir", str(pop / "original"), "--device", "cpu", "--top", "1"]) == 0


def test_probe_reliance_explain_and_vfield_run_on_imported_agents(tmp_path):
    """Issue 36, item 3: the commands beyond the study's stages take an imported population."""
    import duckdb

    archive, run = tmp_path / "archive", tmp_path / "runs"
    make_archive(archive, seeds=(3, 11), steps=STEPS_5M[-1:])
    assert main(["import", "original", str(archive), "--run-dir", str(run), "--quiet"]) == 0
    pop, cpu = run / "maze-5x5", ["--device", "cpu", "--quiet"]
    assert main(["probe", "--agents", str(pop), "--run-dir", str(pop), "--layers", "hook_fc", "--scenes", "8",
                 "--probes", "cell_logistic", "--jobs", "1", *cpu]) == 0
    assert main(["reliance", "--agents", str(pop), "--run-dir", str(pop), "--n-levels", "2", "--n-attr", "2",
                 "--timeout", "20", *cpu]) == 0
    with duckdb.connect(str(pop / "results.duckdb"), read_only=True) as db:
        tables = {t for (t,) in db.execute("show tables").fetchall()}
        for table in ("probes", "reliance"):
            assert table in tables
            assert {a for (a,) in db.execute(f"select distinct agent from {table}").fetchall()} == {3, 11}
    assert main(["evaluate", "--agents", str(pop), "--run-dir", str(pop), "--n-levels", "3", "--timeout", "20",
                 "--settings", "red_line-vs-yellow_gem", *cpu]) == 0
    assert main(["explain", "3", "--run-dir", str(pop), "--device", "cpu"]) == 0
    assert any((pop / "dossiers" / "agent-0003").iterdir())
    assert main(["vfield", "--agents", str(pop), "--setting", "red_line-vs-yellow_gem", "--occupancy",
                 "--out", str(tmp_path / "vfield"), "--device", "cpu"]) == 0
    drawn = sorted(p.name for p in (tmp_path / "vfield").glob("*.png"))
    assert len(drawn) == 4 and any(n.startswith("occupancy-") for n in drawn)
