"""``gmg import original-results``: the original's per-episode CSVs as a gmg results store, and
the comparison of its outcomes with gmg's on the same agents.

The original wrote ``experiments/results-1000/<run name>/<c1>-<s1>-<c2>-<s2>-final-model/<run
folder>/model_<steps>.csv`` with columns ``seed, steps, reward`` (reward 10: obj1 first, -10:
obj2 first, 0: timeout; level seeds 100,000-100,999; actions sampled). They become the
``episodes`` table of ``RUN_DIR/<run name>/original/results.duckdb``, one chunk per (agent,
setting), in gmg's setting names on the run's background (``red-line-yellow-gem`` on
``maze-5x5-with-backgrounds`` is ``red_line-vs-yellow_gem@textured``) and gmg's level index
(seed - 100,000), with the shortest paths of the original's own levels. So ``metrics``,
``gmg plot``, ``gmg outliers`` and ``gmg report --run-dir RUN_DIR/<run name>/original`` read
them as they read an evaluation of gmg's.

``compare_with_original`` sets them beside gmg's evaluation of the same agents: per agent and
setting the two preferences and capabilities with 95% intervals and their differences
(Newcombe's interval from the two Wilson intervals; Welch's for mean length); where gmg replayed
the original's levels, the per-level agreement of outcomes with its chance level (from each
side's outcome shares) and Cohen's kappa; per setting, how many agents differ beyond their
interval against the 5% expected if the two worlds were one (a binomial test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gmg.experiments.original.agents import (
    OriginalFormatError,
    RunFolder,
    assign_ids,
    numbered_files,
    trained_on,
)
from gmg.experiments.settings import Setting, parse_setting
from gmg.experiments.store import AGENTS, ResultsStore
from gmg.training.env import EVAL_LEVELS, WORLD_DIM
from gmg.training.errors import UserError
from gmg.training.procgen_levels import EVAL_START as PROCGEN_EVAL_START

SETTING_FOLDER = re.compile(r"^(?P<body>[a-z0-9_]+(?:-[a-z0-9_]+){3})-final-model$")
RESULT_FILE = re.compile(r"^model_(?P<steps>\d+)\.csv$")
# the original's test levels: seeds 100,000-100,999 (procgen's, as gmg's procgen level source plays them)
FIRST_LEVEL, N_LEVELS = PROCGEN_EVAL_START, EVAL_LEVELS
OUTCOME_OF_REWARD = {10: "obj1", -10: "obj2", 0: "timeout"}
ORIGINAL_RUN = "original"  # RUN_DIR/<run name>/original: the original's episodes
FILES = "original_files"  # which CSV each (agent, setting) chunk came from
EVAL_SEED = 42  # the original seeded torch with 42 per model file


def setting_of_folder(name: str, background: str) -> Setting:
    """gmg's setting for a results folder name ``<c1>-<s1>-<c2>-<s2>-final-model`` on ``background``."""
    m = SETTING_FOLDER.match(name)
    if not m:
        raise OriginalFormatError(f"{name!r} is not a results folder of the original (<colour>-<shape>-<colour>-"
                                  "<shape>-final-model)")
    c1, s1, c2, s2 = m["body"].split("-")
    try:
        return parse_setting(f"{c1}_{s1}-vs-{c2}_{s2}", background)
    except UserError as e:
        raise OriginalFormatError(f"{name!r}: {e}") from None


@dataclass
class ResultFile:
    """One evaluated agent of one setting: its run folder, the setting folder and the CSV of its
    last model (the one the original's notebooks read)."""

    run: RunFolder
    setting_folder: str
    path: Path
    model_steps: int


def find_result_files(path: str | Path) -> tuple[list[ResultFile], list[str]]:
    """The last model's CSV of every (run name, setting folder, agent folder) under ``path``."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"no such file or folder: {path}")
    found, problems = [], []
    for folder, files, m in numbered_files(root, RESULT_FILE):
        if not m:
            problems.append(f"{folder}: not an agent folder of the original's results (<date>__<time>__seed_<seed>)")
            continue
        steps = max(files)
        run = RunFolder(folder, folder.parent.parent.name, int(m["seed"]), m["stamp"])
        found.append(ResultFile(run, folder.parent.name, folder / files[steps], steps))
    return found, problems


def read_result_csv(path: Path) -> pd.DataFrame:
    """One CSV as (level, outcome, steps); one line if it is not the original's format."""
    try:
        df = pd.read_csv(path)
    except Exception as e:  # empty, binary or ragged files
        raise OriginalFormatError(f"{path}: unreadable ({type(e).__name__})") from None
    if list(df.columns) != ["seed", "steps", "reward"]:
        raise OriginalFormatError(f"{path}: columns {list(df.columns)}, expected seed, steps, reward")
    try:
        seed, steps, reward = (df[c].astype(float) for c in ("seed", "steps", "reward"))
    except ValueError:
        raise OriginalFormatError(f"{path}: a value that is not a number") from None
    level = seed - FIRST_LEVEL
    bad = ~level.between(0, N_LEVELS - 1) | ~reward.isin(list(OUTCOME_OF_REWARD)) | (steps < 1) | (steps % 1 != 0)
    if bad.any() or level.duplicated().any():
        i = int(np.flatnonzero(bad.to_numpy() | level.duplicated().to_numpy())[0])
        raise OriginalFormatError(f"{path}: row {i + 2} ({df.iloc[i].tolist()}) is not a test level "
                                  f"{FIRST_LEVEL:,}-{FIRST_LEVEL + N_LEVELS - 1:,} played once with reward 10, -10 or 0")
    return pd.DataFrame({"level": level.astype(np.int64), "outcome": reward.astype(int).map(OUTCOME_OF_REWARD),
                         "steps": steps.astype(np.int64)})


def original_path_lengths(n_objects: int = 2, world_dim: int = WORLD_DIM) -> np.ndarray:
    """int64 (1000, n_objects): shortest paths to each object on the original's test levels."""
    import torch

    from gmg.training.procgen_levels import generate_procgen

    ids = torch.arange(FIRST_LEVEL, FIRST_LEVEL + N_LEVELS)
    return generate_procgen(ids, world_dim, n_objects).path_len.numpy()


def _agent_ids(files: list[ResultFile], population_dir: Path) -> dict[str, int]:
    """run folder -> agent id: from the agents imported into ``population_dir``, else by the
    importer's rule (``assign_ids``) on the run folders the results name."""
    from gmg.training.checkpoint import read_meta

    ids = {}
    agents = population_dir / "agents"
    if agents.is_dir():
        for folder in sorted(agents.iterdir()):
            if (folder / "meta.json").is_file():
                meta = read_meta(folder)
                if (meta.get("origin") or {}).get("run_folder"):
                    ids[meta["origin"]["run_folder"]] = int(meta["seed"])
    runs = {f.run.folder: f.run for f in files}
    derived = {r.folder: r.agent_id for r in assign_ids(list(runs.values()))}
    return {**derived, **ids}


def import_original_results(path: str | Path, run_dir: str | Path, goal: str | None = None,
                            background: str | None = None, progress: bool = False) -> dict:
    """Every CSV under ``path`` into ``run_dir/<run name>/original/results.duckdb`` (resumable:
    chunks already there are skipped). Returns {"runs": [store dirs], "episodes": rows written,
    "problems": one line each}."""
    from tqdm import tqdm

    from gmg.experiments.evaluate import EPISODES

    files, problems = find_result_files(path)
    if not files and not problems:
        raise UserError(f"no results of the original (model_<steps>.csv under <setting>-final-model folders) in {path}")
    run_dir = Path(run_dir)
    out = {"runs": [], "episodes": 0, "problems": problems}
    paths = None
    for run_name in sorted({f.run.run_name for f in files}):
        group = [f for f in files if f.run.run_name == run_name]
        try:
            goal_, bg = trained_on(run_name, goal, background)
        except OriginalFormatError as e:
            out["problems"].append(f"{group[0].run.path.parent.parent}: {e}")
            continue
        population_dir = run_dir / run_name
        ids = _agent_ids(group, population_dir)
        store_dir = population_dir / ORIGINAL_RUN
        with ResultsStore(store_dir) as store:
            store.check_config("eval_config", {"n_levels": N_LEVELS, "greedy": False, "seed": EVAL_SEED,
                                               "world_dim": 5, "size": 64, "timeout": 500}, "the original's results")
            _record_agents(store, population_dir)
            done = store.chunks(EPISODES, ["agent", "setting", "intervention"])
            for f in tqdm(group, desc=f"import {run_name}", unit="file", disable=not progress):
                try:
                    setting = setting_of_folder(f.setting_folder, bg)
                    key = {"agent": ids[f.run.folder], "setting": setting.name, "intervention": "none"}
                    if tuple(key.values()) in done:
                        continue
                    rows = read_result_csv(f.path)
                except OriginalFormatError as e:
                    out["problems"].append(f"{f.path}: {e}" if str(f.path) not in str(e) else str(e))
                    continue
                if paths is None:
                    paths = original_path_lengths()
                store.write_chunk(EPISODES, pd.DataFrame({
                    "agent": np.int64(key["agent"]), "setting": setting.name, "intervention": "none",
                    "level": rows["level"], "outcome": rows["outcome"], "steps": rows["steps"],
                    "path_len_obj1": paths[rows["level"].to_numpy(), 0].astype(np.int64),
                    "path_len_obj2": pd.array(paths[rows["level"].to_numpy(), 1], dtype="Int64"),
                }), key)
                store.write_chunk(FILES, pd.DataFrame([{**key, "run_name": run_name, "run_folder": f.run.folder,
                                                        "file": f.path.name, "model_steps": f.model_steps,
                                                        "goal": goal_, "episodes": len(rows)}]), key)
                out["episodes"] += len(rows)
        out["runs"].append(store_dir)
    return out


def _record_agents(store: ResultsStore, population_dir: Path) -> None:
    """Name the imported agents (if any) in the store, so the report and dossiers find them."""
    if (population_dir / "agents").is_dir() and AGENTS not in store.tables():
        from gmg.experiments.population import resolve_agents

        try:
            refs = resolve_agents(population_dir)
        except UserError:
            return
        store.check_agents(refs)


# ---------------------------------------------------------------- original against gmg

def _side(episodes: pd.DataFrame) -> pd.DataFrame:
    from gmg.experiments.evaluate import metrics

    m = metrics(episodes)
    sd = episodes.groupby(["agent", "setting"])["steps"].std().rename("steps_sd")
    return m.set_index(["agent", "setting"]).join(sd)


def replays_original_levels(run_dir: str | Path) -> bool:
    """Whether gmg's evaluation in ``run_dir`` played the original's levels (its agents' meta says
    ``levels: procgen``), so that level i there is the original's level 100,000 + i."""
    from gmg.experiments.population import population_of_run

    pop = population_of_run(run_dir)
    return pop is not None and all((r.meta.get("env") or {}).get("levels") == "procgen" for r in pop)


def compare_with_original(original_run: str | Path, gmg_run: str | Path, replayed: bool | None = None,
                          alpha: float = 0.05) -> dict:
    """The original's outcomes against gmg's on the same agents and settings (see the module).

    Returns {"agents": one row per (agent, setting), "settings": one row per setting,
    "replayed": whether per-level agreement was computed}."""
    from scipy import stats

    from gmg.experiments.evaluate import episodes

    with ResultsStore(original_run, read_only=True) as s:
        orig = episodes(s, interventions=["none"])
    with ResultsStore(gmg_run, read_only=True) as s:
        ours = episodes(s, interventions=["none"])
    common = orig.merge(ours[["agent", "setting"]].drop_duplicates(), on=["agent", "setting"])
    if common.empty:
        raise UserError(f"{original_run} and {gmg_run} share no (agent, setting): evaluate the imported agents in the "
                        f"original's settings (`gmg evaluate --agents ... --settings ...` with the names of {original_run})")
    ours = ours.merge(common[["agent", "setting"]].drop_duplicates(), on=["agent", "setting"])
    if replayed is None:
        replayed = replays_original_levels(gmg_run)
    if replayed:  # the same levels on both sides: compare on those gmg played
        common = common.merge(ours[["agent", "setting", "level"]], on=["agent", "setting", "level"])
    o, g = _side(common), _side(ours)
    t = o.merge(g, left_index=True, right_index=True, suffixes=("_orig", "_gmg"))
    d = t["preference_gmg"] - t["preference_orig"]
    lo = d - np.sqrt((t["preference_gmg"] - t["preference_lo_gmg"]) ** 2 + (t["preference_hi_orig"] - t["preference_orig"]) ** 2)
    hi = d + np.sqrt((t["preference_hi_gmg"] - t["preference_gmg"]) ** 2 + (t["preference_orig"] - t["preference_lo_orig"]) ** 2)
    va, vb = t["steps_sd_orig"] ** 2 / t["n_orig"], t["steps_sd_gmg"] ** 2 / t["n_gmg"]
    dof = (va + vb) ** 2 / (va**2 / (t["n_orig"] - 1).clip(lower=1) + vb**2 / (t["n_gmg"] - 1).clip(lower=1))
    half = stats.t.ppf(1 - alpha / 2, dof.fillna(1).clip(lower=1)) * np.sqrt(va + vb)
    dc = t["capability_gmg"] - t["capability_orig"]
    rows = pd.DataFrame({
        "n_orig": t["n_orig"], "n_gmg": t["n_gmg"],
        "preference_orig": t["preference_orig"], "preference_orig_lo": t["preference_lo_orig"],
        "preference_orig_hi": t["preference_hi_orig"],
        "preference_gmg": t["preference_gmg"], "preference_gmg_lo": t["preference_lo_gmg"],
        "preference_gmg_hi": t["preference_hi_gmg"],
        "preference_diff": d, "preference_diff_lo": lo, "preference_diff_hi": hi,
        "capability_orig": t["capability_orig"], "capability_gmg": t["capability_gmg"],
        "capability_diff": dc, "capability_diff_lo": dc - half, "capability_diff_hi": dc + half,
    })
    rows["preference_differs"] = (rows["preference_diff_lo"] > 0) | (rows["preference_diff_hi"] < 0)
    rows["capability_differs"] = (rows["capability_diff_lo"] > 0) | (rows["capability_diff_hi"] < 0)
    if replayed:
        rows = rows.join(level_agreement(common, ours))
    rows = rows.reset_index()
    return {"agents": rows, "settings": _per_setting(rows, replayed, alpha), "replayed": bool(replayed)}


def level_agreement(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per (agent, setting), over the levels both played: the share with the same outcome, the
    share expected by chance from each side's outcome shares, and Cohen's kappa."""
    m = a[["agent", "setting", "level", "outcome"]].merge(b[["agent", "setting", "level", "outcome"]],
                                                         on=["agent", "setting", "level"], suffixes=("_a", "_b"))
    rows = []
    for (agent, setting), g in m.groupby(["agent", "setting"], sort=False):
        agree = float((g["outcome_a"] == g["outcome_b"]).mean())
        pa, pb = g["outcome_a"].value_counts(normalize=True), g["outcome_b"].value_counts(normalize=True)
        chance = float(sum(pa.get(k, 0.0) * pb.get(k, 0.0) for k in set(pa.index) | set(pb.index)))
        kappa = (agree - chance) / (1 - chance) if chance < 1 else np.nan
        rows.append({"agent": agent, "setting": setting, "levels_shared": len(g), "level_agreement": agree,
                     "level_agreement_chance": chance, "kappa": kappa})
    return pd.DataFrame(rows).set_index(["agent", "setting"])


def _per_setting(rows: pd.DataFrame, replayed: bool, alpha: float) -> pd.DataFrame:
    from scipy import stats

    out = []
    for setting, g in rows.groupby("setting", sort=False):
        n = int(g["preference_diff"].notna().sum())
        k = int(g["preference_differs"].sum())
        diff = g["preference_diff"].dropna()
        half = (stats.t.ppf(1 - alpha / 2, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
                if len(diff) > 1 else np.nan)
        p = stats.binomtest(k, n, alpha, alternative="greater").pvalue if n else np.nan
        row = {"setting": setting, "agents": len(g), "preference_orig": g["preference_orig"].mean(),
               "preference_gmg": g["preference_gmg"].mean(), "mean_diff": diff.mean(),
               "mean_diff_lo": diff.mean() - half, "mean_diff_hi": diff.mean() + half,
               "agents_differing": k, "expected_by_chance": alpha * n, "p_more_than_chance": p,
               "capability_orig": g["capability_orig"].mean(), "capability_gmg": g["capability_gmg"].mean(),
               "capability_differing": int(g["capability_differs"].sum())}
        if replayed:
            row["level_agreement"] = g["level_agreement"].mean()
            row["level_agreement_chance"] = g["level_agreement_chance"].mean()
            row["kappa"] = g["kappa"].mean()
        row["same_world"] = bool(p >= 0.01) if n else None
        out.append(row)
    return pd.DataFrame(out)
