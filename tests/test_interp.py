"""interp: hooks, channel interventions, patching, attributions, reliance (tiny random nets)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_agent_dir

from gmg.interp.attribution import attribute, cell_attribution, channel_shares
from gmg.interp.hooks import HookNameError, hooks, run_with_cache, run_with_hooks
from gmg.interp.interventions import (
    Ablate,
    Greyscale,
    Identity,
    InterventionError,
    Isolate,
    Permute,
    parse_channels,
    parse_intervention,
)
from gmg.interp.patching import PatchError, ablate_channels, patch_activations, replace_hook
from gmg.interp.reliance import CONDITIONS, green_vs_red, policy_sensitivity, profile_row, summarise_episodes
from gmg.training.errors import UserError
from gmg.training.model import ImpalaAgent, ModelConfig


def tiny(seed: int = 0, dtype=torch.float32) -> ImpalaAgent:
    torch.manual_seed(seed)
    model = ImpalaAgent(ModelConfig(widths=(4, 8, 8), hidden=32)).eval().to(dtype)
    with torch.no_grad():  # a policy head with some gain, so the policy reacts to its input
        model.policy.weight.mul_(100.0)
    return model


def green_only(seed: int = 0) -> ImpalaAgent:
    model = tiny(seed)
    with torch.no_grad():
        model.blocks[0].conv.weight[:, 0] = 0.0
        model.blocks[0].conv.weight[:, 2] = 0.0
    return model


def frames(n: int = 6, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 64, 64, 3), dtype=torch.uint8, generator=g)


def attached(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


# ------------------------------------------------------------------ hooks
def test_isolate_r_leaves_g_and_b_exactly_zero_in_first_conv_input():
    model, obs = tiny(), frames()
    seen = {}
    handle = model.blocks[0].conv.register_forward_pre_hook(lambda m, inp: seen.setdefault("x", inp[0].clone()))
    try:
        with Isolate("R")(model):
            model(obs)
    finally:
        handle.remove()
    x = seen["x"]
    assert torch.count_nonzero(x[:, 1:]) == 0
    assert torch.equal(x[:, 0], obs[..., 0].float() / 255)
    assert torch.count_nonzero(x[:, 0]) > 0


def test_hooks_removed_after_context_and_after_exception():
    model, obs = tiny(), frames(2)
    clean = model(obs)[0]
    with hooks(model, fwd_hooks=[("hook_obs", lambda a, *, hook: a * 0), ("blocks.1.hook_pool", lambda a, *, hook: None)]):
        assert attached(model) == 2
        assert not torch.equal(model(obs)[0], clean)
    assert attached(model) == 0

    def boom(a, *, hook):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        run_with_hooks(model, obs, hooks=[("hook_obs", lambda a, *, hook: a * 0), ("hook_hidden", boom)])
    assert attached(model) == 0
    with pytest.raises(KeyError):
        with hooks(model, bwd_hooks=[("hook_fc", lambda g, *, hook: None)]):
            raise KeyError("body failed")
    assert attached(model) == 0
    assert torch.equal(model(obs)[0], clean)


def test_backward_hook_sees_and_edits_gradients():
    model = tiny()
    x = frames(2).permute(0, 3, 1, 2).float().div(255).requires_grad_(True)
    grads = {}

    def record(g, *, hook):
        grads[hook.name] = g.clone()

    with hooks(model, bwd_hooks=[("hook_logits", record), ("hook_obs", lambda g, *, hook: torch.zeros_like(g))]):
        model(x)[0][:, 3].sum().backward()
    assert attached(model) == 0
    expected = torch.zeros(2, 15)
    expected[:, 3] = 1
    assert torch.equal(grads["hook_logits"], expected)
    assert torch.count_nonzero(x.grad) == 0  # the edit at hook_obs zeroed the input gradient


def test_cache_equals_manual_forward_pass():
    model, obs = tiny(), frames(3)
    (logits, value), cache = run_with_cache(model, obs)
    assert set(cache) == set(model.hook_points)
    with torch.no_grad():
        x = obs.permute(0, 3, 1, 2).float() / 255
        assert torch.equal(cache["hook_obs"], x)
        for i, block in enumerate(model.blocks):
            conv = block.conv(x)
            assert torch.equal(cache[f"blocks.{i}.hook_conv"], conv)
            x = block.pool(conv)
            assert torch.equal(cache[f"blocks.{i}.hook_pool"], x)
            for j, res in enumerate((block.res0, block.res1)):
                r0 = torch.relu(x)
                assert torch.equal(cache[f"blocks.{i}.res{j}.hook_relu0"], r0)
                h = res.conv1(torch.relu(res.conv0(r0)))
                x = x + h
                assert torch.allclose(cache[f"blocks.{i}.res{j}.hook_out"], x, atol=1e-6)
        hidden = torch.relu(model.fc(torch.relu(x).flatten(1)))
        assert torch.allclose(cache["hook_hidden"], hidden, atol=1e-5)
        assert torch.allclose(cache["hook_logits"], model.policy(hidden), atol=1e-5)
    assert torch.equal(cache["hook_logits"], logits)
    assert torch.equal(cache["hook_value"], value)
    _, some = run_with_cache(model, obs, names=lambda n: n.endswith("hook_conv"))
    assert list(some) == ["blocks.0.hook_conv", "blocks.1.hook_conv", "blocks.2.hook_conv"]


def test_cache_sees_edits_of_hooks():
    model, obs = tiny(), frames(2)
    _, cache = run_with_cache(model, obs, names="hook_obs", hooks=Isolate("b").fwd_hooks())
    assert torch.count_nonzero(cache["hook_obs"][:, :2]) == 0


def test_unknown_hook_name_fails_listing_valid_names():
    model, obs = tiny(), frames(1)
    with pytest.raises(HookNameError) as err:
        run_with_hooks(model, obs, hooks=[("hook_obs", lambda a, *, hook: None), ("blocks.7.hook_conv", lambda a, *, hook: None)])
    msg = str(err.value)
    assert "blocks.7.hook_conv" in msg
    for name in ("hook_obs", "blocks.2.res1.hook_out", "hook_hidden", "hook_value"):
        assert name in msg
    assert "\n" not in msg  # the CLI prints it as one line
    assert attached(model) == 0  # nothing attached before the bad name was found
    with pytest.raises(HookNameError):
        run_with_cache(model, obs, names=["hook_nope"])


# ------------------------------------------------------------------ interventions
def test_interventions_edit_channels_as_named():
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(Ablate("g").edit(x)[:, 1], torch.zeros(2, 8, 8))
    assert torch.equal(Ablate("g").edit(x)[:, [0, 2]], x[:, [0, 2]])
    assert torch.allclose(Ablate(0, 0.5).edit(x)[:, 0], torch.full((2, 8, 8), 0.5))
    ref = torch.rand(5, 3, 8, 8)
    assert torch.allclose(Ablate("b", "mean", reference=ref).edit(x)[:, 2], ref[:, 2].mean(0).expand(2, 8, 8))
    p = Permute("grb").edit(x)
    assert torch.equal(p[:, 0], x[:, 1]) and torch.equal(p[:, 1], x[:, 0]) and torch.equal(p[:, 2], x[:, 2])
    g = Greyscale().edit(x)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.allclose(g[:, 0], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    assert torch.equal(Isolate("rg").edit(x)[:, 2], torch.zeros(2, 8, 8))
    assert torch.equal(Identity().edit(x), x)
    assert parse_channels("all") == (0, 1, 2) and parse_channels("B") == (2,) and parse_channels(["r", 2]) == (0, 2)


def test_parse_intervention_and_clear_errors():
    assert isinstance(parse_intervention("isolate:G"), Isolate) and parse_intervention("isolate:G").channels == (1,)
    assert parse_intervention("ablate:r=0.5").fill == 0.5
    assert parse_intervention("permute:grb").order == (1, 0, 2)
    assert isinstance(parse_intervention("grey"), Greyscale) and isinstance(parse_intervention("none"), Identity)
    assert [parse_intervention(c).name for c in CONDITIONS] == list(CONDITIONS)
    with pytest.raises(InterventionError, match="'r', 'g', 'b'"):
        Isolate("y")
    with pytest.raises(InterventionError, match="'r', 'g', 'b'"):
        Ablate(-1)
    for bad in ("isolate", "blur:r", "permute:rgg", "ablate:r=3", "ablate:r=mean"):
        with pytest.raises(InterventionError):
            parse_intervention(bad)


# ------------------------------------------------------------------ patching
@pytest.mark.parametrize("layer", ["hook_obs", "blocks.0.hook_conv", "blocks.1.res0.hook_relu1", "hook_hidden"])
def test_patching_with_own_activations_changes_nothing(layer):
    model, obs, other = tiny(), frames(4), frames(4, seed=9)
    same = patch_activations(model, obs, obs, layer)
    assert torch.equal(same.patched_logits, same.clean_logits)
    assert torch.equal(same.patched_value, same.clean_value)
    assert float(same.tv.max()) == 0.0 and float(same.kl.max()) == 0.0
    moved = patch_activations(model, other, obs, layer)
    assert float(moved.tv.mean()) > 0
    full = patch_activations(model, other, obs, "hook_obs")  # patching the whole input = running the source
    assert torch.allclose(full.patched_logits, model(other)[0], atol=1e-6)
    assert attached(model) == 0


def test_patch_chosen_channels_and_ablate_conv_channels():
    model, obs, other = tiny(), frames(4), frames(4, seed=9)
    _, cache = run_with_cache(model, obs, names="blocks.0.hook_conv")
    seen = {}
    spy = ("blocks.0.hook_conv", lambda a, *, hook: seen.__setitem__("a", a))
    _, src = run_with_cache(model, other, names="blocks.0.hook_conv")
    run_with_hooks(model, obs, hooks=[("blocks.0.hook_conv", replace_hook(src["blocks.0.hook_conv"], [1, 3])), spy])
    a = seen["a"]
    assert torch.equal(a[:, [1, 3]], src["blocks.0.hook_conv"][:, [1, 3]])
    assert torch.equal(a[:, [0, 2]], cache["blocks.0.hook_conv"][:, [0, 2]])
    res = ablate_channels(model, obs, "blocks.0.hook_conv", [0, 1, 2, 3])
    assert float(res.tv.mean()) > 0
    mean = ablate_channels(model, obs[:1], "blocks.0.hook_conv", [2], value="mean")  # mean over one obs = itself
    assert torch.allclose(mean.patched_logits, mean.clean_logits, atol=1e-6)
    with pytest.raises(PatchError, match="0-3"):
        ablate_channels(model, obs, "blocks.0.hook_conv", [4])
    with pytest.raises(HookNameError):
        ablate_channels(model, obs, "blocks.0.conv", [0])


# ------------------------------------------------------------------ attribution
def test_integrated_gradients_completeness():
    model = tiny(dtype=torch.float64)
    x = frames(2).permute(0, 3, 1, 2).double() / 255
    res = attribute(model, x, method="ig", n_steps=100)
    with torch.no_grad():
        fx = model(x)[0].gather(1, res.target[:, None]).squeeze(1)
        fb = model(torch.zeros_like(x))[0].gather(1, res.target[:, None]).squeeze(1)
    total = res.attributions.flatten(1).sum(1)
    gap = (fx - fb).abs()
    assert float(gap.min()) > 1e-3  # a non-trivial check
    assert torch.all((total - (fx - fb)).abs() <= 0.02 * gap + 1e-6)
    assert torch.allclose(res.delta.abs(), (total - (fx - fb)).abs(), atol=1e-6)
    assert torch.equal(res.target, model(x)[0].argmax(-1))


def test_cell_attribution_and_channel_shares():
    a = torch.zeros(2, 3, 64, 64)
    a[0, 1, 0, 0] = 2.0  # top-left cell, green
    a[0, 0, 63, 63] = -1.0  # bottom-right cell, red (absolute value counts)
    a[1, 2, 30, 30] = 5.0  # centre cell, blue
    cells = cell_attribution(a, 5)
    assert cells.shape == (2, 5, 5)
    assert cells[0, 0, 0] == 2.0 and cells[0, 4, 4] == 1.0 and cells[1, 2, 2] == 5.0
    assert torch.allclose(cells.flatten(1).sum(1), a.abs().flatten(1).sum(1))
    shares = channel_shares(a)
    assert torch.allclose(shares[0], torch.tensor([1 / 3, 2 / 3, 0.0]))
    assert torch.allclose(shares[1], torch.tensor([0.0, 0.0, 1.0]))


# ------------------------------------------------------------------ green-only network
def test_green_only_network_relies_and_attributes_only_on_green():
    model, obs = green_only(), frames(4)
    for method in ("ig", "saliency", "deeplift"):
        res = attribute(model, obs, method=method, n_steps=16)
        assert torch.count_nonzero(res.attributions[:, [0, 2]]) == 0, method
        assert torch.allclose(channel_shares(res.attributions)[:, 1], torch.ones(4)), method
    tv = policy_sensitivity(model, obs)
    assert tv[0] == 0.0 and tv[2] == 0.0 and tv[1] > 1e-3
    clean = model(obs)[0]
    for spec in ("ablate:r", "ablate:b", "isolate:g", "permute:rgb"):
        with parse_intervention(spec)(model):
            assert torch.equal(model(obs)[0], clean), spec
    with Isolate("r")(model):
        assert not torch.equal(model(obs)[0], clean)


def test_green_only_agent_behaviour_and_profile(tmp_path):
    from gmg.experiments.population import TrainedOn
    from gmg.experiments.reliance import play_conditions

    folder = make_agent_dir(tmp_path / "agents", 0)
    from gmg.training.checkpoint import load_agent

    model, meta = load_agent(folder)
    with torch.no_grad():
        model.blocks[0].conv.weight[:, [0, 2]] = 0.0
        model.policy.weight.mul_(100.0)
    eps = play_conditions(model, 0, TrainedOn.from_meta(meta), {c: parse_intervention(c) for c in CONDITIONS}, n_levels=6, timeout=30)
    for same in ("ablate:r", "ablate:b", "isolate:g"):
        pd.testing.assert_frame_equal(eps[same], eps["none"])
    behaviour = {c: summarise_episodes(d["reached"], d["steps"], d["path_len"]) for c, d in eps.items()}
    row = profile_row(behaviour, policy_sensitivity(model, frames(4)), [0.0, 3.0, 0.0])
    assert row["tv_share_g"] == 1.0 and row["attr_share_g"] == 1.0
    assert row["tv_share_r"] == 0.0 and row["tv_share_b"] == 0.0
    if behaviour["none"]["efficiency"] > 0:
        assert row["drop_r"] == 0.0 and row["drop_b"] == 0.0


def test_summary_score_definition():
    assert green_vs_red(0.8, 0.0) == 1.0
    assert green_vs_red(0.0, 0.5) == -1.0
    assert green_vs_red(0.3, 0.3) == 0.0
    assert green_vs_red(0.6, 0.2) == pytest.approx(0.5)
    assert math.isnan(green_vs_red(0.0, 0.0))
    with pytest.raises(ValueError):
        green_vs_red(-0.1, 0.2)
    s = summarise_episodes(np.array([1, 1, 0, 1]), np.array([4, 8, 500, 10]), np.array([4, 4, 6, 5]))
    assert s["success"] == 0.75 and s["timeout"] == 0.25
    assert s["efficiency"] == pytest.approx((1.0 + 0.5 + 0.0 + 0.5) / 4)
    assert s["mean_length"] == pytest.approx(130.5)


# ------------------------------------------------------------------ evaluation, store, CLI
def test_identity_intervention_gives_exactly_the_plain_evaluation(tmp_path):
    from gmg.experiments.evaluate import evaluate
    from gmg.training.checkpoint import load_agent, read_meta, save_weights, write_meta

    for seed in (0, 1):
        folder = make_agent_dir(tmp_path / "agents", seed)
        meta = read_meta(folder)
        meta["env"]["timeout"] = 40  # random agents: keep the episodes short
        write_meta(folder, meta)
        model, _ = load_agent(folder)
        with torch.no_grad():  # a decisive policy, so an input edit shows in the actions
            model.policy.weight.mul_(100.0)
        save_weights(model, folder / "model.safetensors")
    agents, setting = str(tmp_path), ["train:yellow_line"]
    plain = evaluate(agents, setting, tmp_path / "a", "cpu", n_levels=6, progress=False)
    same = evaluate(agents, setting, tmp_path / "b", "cpu", n_levels=6, intervention=Identity(),
                    intervention_name="none", progress=False)
    pd.testing.assert_frame_equal(plain, same)
    other = evaluate(agents, setting, tmp_path / "b", "cpu", n_levels=6, intervention=Isolate("b"),
                     intervention_name="isolate:b", progress=False)
    assert not other["steps"].reset_index(drop=True).equals(plain["steps"].reset_index(drop=True))


def test_reliance_runner_store_and_cli(tiny_population, capsys):
    from gmg.experiments.cli.main import main
    from gmg.experiments.store import ResultsStore

    run = tiny_population / "rel"
    args = ["reliance", "--agents", str(tiny_population), "--ids", "0,1", "--run-dir", str(run), "--n-levels", "4",
            "--n-attr", "2", "--timeout", "20", "--device", "cpu", "--plot", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "green_vs_red" in out
    with ResultsStore(run) as store:
        table = store.table("reliance")
    assert sorted(table["agent"]) == [0, 1]
    for col in ("none_success", "isolate_g_efficiency", "attr_share_g", "tv_share_r", "drop_b", "green_vs_red"):
        assert col in table.columns
    shares = table[["attr_share_r", "attr_share_g", "attr_share_b"]].sum(axis=1)
    assert np.allclose(shares, 1.0)
    assert (run / "plots" / "reliance_agent0.png").is_file()
    assert main(args) == 0  # second run: resumes, nothing recomputed
    with ResultsStore(run) as store:
        again = store.table("reliance")
    assert list(again["seconds"]) == list(table["seconds"])
    capsys.readouterr()
    other = list(args)
    other[other.index("--n-levels") + 1] = "8"  # another kind of profile
    assert main(other) == 2
    assert "holds reliance profiles with n_levels=4 (asked 8)" in capsys.readouterr().err


def test_cli_ablate_attribute_and_one_line_errors(tiny_population, capsys):
    from gmg.experiments.cli.main import main

    base = ["--agents", str(tiny_population), "--ids", "0", "--device", "cpu"]
    assert main(["ablate", *base, "--layer", "hook_obs", "--channels", "g", "--n-obs", "2"]) == 0
    assert main(["ablate", *base, "--layer", "blocks.1.hook_conv", "--patch-from", "red_line", "--n-obs", "2"]) == 0
    assert main(["attribute", *base, "--method", "saliency", "--n-obs", "2"]) == 0
    capsys.readouterr()
    assert main(["ablate", *base, "--layer", "blocks.9.hook_conv", "--n-obs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hook_obs" in err
    assert main(["ablate", *base, "--layer", "hook_obs", "--channels", "y", "--n-obs", "2"]) == 2
    assert main(["attribute", *base, "--method", "shap", "--n-obs", "2"]) == 2
    assert main(["ablate", *base, "--layer", "hook_obs", "--channels", "r,g", "--n-obs", "2"]) == 0
    capsys.readouterr()
    assert main(["ablate", *base, "--layer", "hook_obs", "--value", "lots", "--n-obs", "2"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_reliance_scatter_plot(tmp_path):
    from gmg.experiments.plots.interp import plot_reliance_scatter

    rel = pd.DataFrame({"agent": [0, 1, 2, 3], "green_vs_red": [0.9, -0.5, 0.1, np.nan]})
    prefs = pd.DataFrame({"agent": [0, 1, 2, 5], "preference": [0.8, 0.1, 0.5, 0.3]})
    path = plot_reliance_scatter(rel, prefs, tmp_path / "s.png")
    assert path.is_file() and path.stat().st_size > 1000


# ------------------------------------------------------------------ object-local interventions
def _two_object_frames(background: str = "textured", n: int = 6):
    from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv

    env = MazeEnv(n, EnvConfig(objects=("red_line", "yellow_gem"), background=background), EvaluationLevels(n=n))
    return env.reset(torch.arange(n)), env.object_masks()


@pytest.mark.parametrize("target, k", [("obj1", 0), ("obj2", 1), ("goal", 0)])
@pytest.mark.parametrize("channel", ["r", "g", "b"])
@pytest.mark.parametrize("kind", ["ablate", "isolate", "scale"])
def test_an_object_local_intervention_changes_only_that_objects_pixels(kind, channel, target, k):
    from gmg.interp.interventions import ObjectLocal, as_float_obs

    obs, masks = _two_object_frames()
    assert masks.shape == (6, 64, 64, 2) and masks.any(dim=(1, 2)).all()  # every frame shows both objects
    c = "rgb".index(channel)
    iv = ObjectLocal(kind, channel, target, 0.5 if kind == "scale" else None)
    before, after = as_float_obs(obs), iv.edit(obs, masks)
    inside = masks[..., k][:, None].expand_as(before)
    assert torch.equal(after[~inside], before[~inside])  # bit-identical everywhere else
    chan = torch.zeros(3, dtype=torch.bool)
    chan[c] = True
    sel = inside & chan[None, :, None, None]
    rest = inside & ~chan[None, :, None, None]
    if kind == "ablate":
        assert (after[sel] == 0).all() and torch.equal(after[rest], before[rest])
    elif kind == "isolate":
        assert (after[rest] == 0).all() and torch.equal(after[sel], before[sel])
    else:
        assert torch.equal(after[sel], before[sel] * 0.5) and torch.equal(after[rest], before[rest])
    assert not torch.equal(after, before) or not before[sel if kind != "isolate" else rest].any()


def test_object_masks_are_the_objects_drawn_pixels():
    obs, masks = _two_object_frames("black")
    red = (obs[..., 0] > 0) & (obs[..., 1] == 0) & (obs[..., 2] == 0)  # only the red line is pure red on black
    assert torch.equal(masks[..., 0], red)
    assert not (masks[..., 0] & masks[..., 1]).any()


def test_object_local_grammar_names_and_bad_specs():
    iv = parse_intervention("Ablate:R@Obj1")
    assert iv.name == "ablate:r@obj1" and parse_intervention("scale:g=0.5@goal").name == "scale:g=0.5@goal"
    assert parse_intervention("isolate:rg@obj2").name == "isolate:rg@obj2"
    for bad, message in (("ablate:r@obj3", "unknown object"), ("scale:r@goal", "needs a factor"),
                         ("isolate:g=0.3@goal", "takes no value"), ("ablate:r=2@goal", "outside"),
                         ("permute:grb@obj1", "unknown intervention"), ("ablate:r=x@goal", "not a number")):
        with pytest.raises(InterventionError, match=message):
            parse_intervention(bad)
    with pytest.raises(InterventionError, match="needs the frames' object masks"):
        iv.edit(frames(2))


def test_object_local_interventions_in_evaluation_and_the_hooks_api(tmp_path):
    from gmg.experiments.evaluate import evaluate, metrics

    obs, masks = _two_object_frames()
    model = tiny()
    iv = parse_intervention("ablate:rgb@obj2")
    with iv.masked(masks), iv(model):
        edited = model(obs)[0]
    with torch.no_grad():
        by_hand = model(torch.where(masks[..., 1:2], torch.zeros_like(obs), obs))[0]
    assert torch.allclose(edited, by_hand)  # the hook edits exactly the object's pixels
    make_agent_dir(tmp_path / "agents", 0)
    eps = evaluate(tmp_path, ["red_line-vs-yellow_gem"], tmp_path / "run", "cpu", n_levels=8, timeout=30,
                   intervention=iv, progress=False)
    assert set(eps["intervention"]) == {"ablate:rgb@obj2"} and len(metrics(eps)) == 1


def test_reliance_plays_object_local_conditions_beside_whole_frame_ones(tmp_path):
    from gmg.experiments.population import TrainedOn
    from gmg.experiments.reliance import play_conditions

    model = tiny()
    conditions = {c: parse_intervention(c) for c in ("none", "ablate:rgb@goal", "isolate:r")}
    eps = play_conditions(model, 0, TrainedOn(), conditions, n_levels=6, timeout=30)
    assert set(eps) == set(conditions) and all(len(d) == 6 for d in eps.values())


def test_reliance_plays_a_procgen_agent_on_procgen_levels_in_procgen_frames():
    from gmg.experiments.population import TrainedOn
    from gmg.experiments.reliance import play_conditions
    from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv

    n, model, seen = 6, tiny(), []
    source = {"levels": "procgen", "render": "procgen"}
    handle = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    try:
        eps = play_conditions(model, 0, TrainedOn(**source), {"none": parse_intervention("none")}, n_levels=n,
                              timeout=30)["none"]
    finally:
        handle.remove()
    env = MazeEnv(n, EnvConfig(**source), EvaluationLevels(n=n, levels="procgen"))
    assert torch.equal(seen[0], env.observe())  # the first frames the agent saw are the env's
    assert eps["path_len"].tolist() == env.bank.path_len[:, 0].tolist()
    hashed = MazeEnv(n, EnvConfig(), EvaluationLevels(n=n))
    assert hashed.bank.path_len[:, 0].tolist() != eps["path_len"].tolist()  # the sources' levels differ


# ------------------------------------------------------------------ vector fields
def test_vector_field_of_a_policy_that_always_goes_right(tmp_path):
    from gmg.experiments.settings import parse_setting
    from gmg.experiments.vfield import level_frames, moves
    from gmg.training.env import action_deltas

    model = tiny()
    right = int((action_deltas() == torch.tensor([0, 1])).all(1).nonzero()[0])
    with torch.no_grad():
        model.policy.weight.zero_()
        model.policy.bias.fill_(-20.0)
        model.policy.bias[right] = 20.0
    view = level_frames(parse_setting("red_line-vs-yellow_gem"), level=3)
    field = moves(model, view)
    assert (field["delta"] == [0, 1]).all() and (field["prob"] > 0.99).all()
    n_free = int(view["frames"].shape[0])
    assert n_free == len(view["cells"]) and view["masks"].shape[-1] == 2
    # under an intervention that cannot change the logits, nothing changes
    same = moves(model, view, parse_intervention("isolate:g"))
    assert (same["delta"] == field["delta"]).all()


def test_vector_fields_with_a_custom_placement_and_bad_cells(tmp_path):
    from gmg.experiments.settings import parse_setting
    from gmg.experiments.vfield import level_frames, parse_place, vector_fields

    s = parse_setting("red_line-vs-yellow_gem")
    view = level_frames(s, level=0)
    free = [int(c) for c in view["cells"]]  # free cells with the mouse; objects elsewhere
    a, b = divmod(free[0], 5), divmod(free[1], 5)
    placed = level_frames(s, level=0, place=[a, b])
    assert placed["masks"][0, ..., 0].any() and free[0] not in placed["cells"].tolist()
    with pytest.raises(UserError, match="not a free cell"):
        level_frames(s, level=0, place=[(9, 9), b])
    with pytest.raises(UserError, match="ROW,COL"):
        parse_place("0;4")
    for seed in range(3):
        make_agent_dir(tmp_path / "agents", seed)
    out = vector_fields(tmp_path, "red_line-vs-yellow_gem", level=0, out_dir=tmp_path / "vf", place=[a, b],
                        occupancy=True)
    assert out["clean"].is_file() and out["intervened"].is_file() and set(out["changed"]) == {0, 1, 2}
    # the shared level bank is not edited by a custom placement
    assert torch.equal(level_frames(s, level=0)["frame"], view["frame"])
    # expected visits, clean and under isolate:g, solved on the placed objects: each object's cell holds
    # the probability of reaching it first, the walls none, the cells E[steps] + 1
    assert len(out["occupancy"]) == 2 and all(path.is_file() for path in out["occupancy"])
    assert set(out["visits"]) == {"clean", "isolate:g"}
    for occ in [*out["visits"]["clean"].values(), *out["visits"]["isolate:g"].values()]:
        visits = occ["visits"]
        assert np.isclose(visits[a], occ["p_obj1"]) and np.isclose(visits[b], occ["p_obj2"])
        assert (visits[~view["free"].numpy()] == 0).all()
        assert np.isclose(visits.sum(), occ["e_steps"] + 1, rtol=1e-3)  # up to the unresolved mass (eps)


def test_vfield_occupancy_command_draws_the_expected_visits(tmp_path, capsys):
    from PIL import Image

    from gmg.experiments.cli.main import main

    make_agent_dir(tmp_path / "agents", 0)
    assert main(["vfield", "--agents", str(tmp_path), "--setting", "train:red_line", "--intervention", "none",
                 "--occupancy", "--out", str(tmp_path / "vf"), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1].endswith("occupancy-train-red_line-level0.png")  # only the clean map: no intervention
    pixels = np.asarray(Image.open(printed[-1]).convert("RGB"))
    # the heat colours are drawn: the start cell is always visited, a panel cell is ~40 px square
    from matplotlib.colors import LinearSegmentedColormap

    from gmg.experiments.vfield import OCCUPANCY_COLOURS

    ramp = LinearSegmentedColormap.from_list("o", OCCUPANCY_COLOURS)(np.linspace(0, 1, 256))[:, :3] * 255
    panel = pixels[: int(pixels.shape[0] * 0.9), : int(pixels.shape[1] * 0.75)]  # the colour bar left out
    near = np.abs(panel[:, :, None, :].astype(float) - ramp[None, None]).max(-1).min(-1) < 3
    assert near.sum() > 600, near.sum()


def test_goal_pixel_attribution_shares_count_only_the_objects_pixels():
    from gmg.interp.attribution import masked_channel_shares

    _, masks = _two_object_frames("black", n=2)
    attr = torch.zeros(2, 3, 64, 64)
    attr[:, 0] = 5.0  # red attribution everywhere (walls dominate a whole-frame share)
    goal = masks[..., 0]
    attr[:, 1][goal] = 1.0  # on the goal's pixels: green only
    attr[:, 0][goal] = 0.0
    shares = masked_channel_shares(attr, goal)
    assert torch.allclose(shares, torch.tensor([[0.0, 1.0, 0.0]] * 2))
    with pytest.raises(Exception, match="do not fit"):
        masked_channel_shares(attr, goal[:1])
