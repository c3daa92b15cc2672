"""The dossier's channels, shape and mixing section (gmg.experiments.report.channels): the numbers
when the run holds the tables, one line naming the command when it does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gmg.experiments.report.channels import mixed_pulls
from gmg.experiments.report.dossier import explain
from gmg.experiments.store import ResultsStore

SHAPE = "yellow_line-vs-yellow_gem"


def make_run(root, settings=(SHAPE, "red_line-vs-green_line"), n_agents: int = 6, n_levels: int = 50):
    """Episodes only; agent a reaches obj1 first in the shape contest on (50 + 5a)% of levels."""
    rows = []
    for a in range(n_agents):
        for s in settings:
            first = np.arange(n_levels) < round(n_levels * (0.5 + 0.05 * a))
            rows.append(pd.DataFrame({"agent": a, "setting": s, "intervention": "none", "level": np.arange(n_levels),
                                      "outcome": np.where(first, "obj1", "obj2").astype("<U7"), "steps": 10,
                                      "path_len_obj1": 5, "path_len_obj2": pd.array([6] * n_levels, dtype="Int64")}))
    with ResultsStore(root) as store:
        store.write_chunk("episodes", pd.concat(rows, ignore_index=True), {})
    return root


def profile(n_agents: int = 6) -> pd.DataFrame:
    """Pulls: floor 0.1, red 1.0 / green 0.5 / blue 0 above it; the white line measured alone
    halfway between its best channel (1.0) and the sum (1.5) for agent 2, at the max elsewhere."""
    a = np.arange(n_agents)
    return pd.DataFrame({"agent": a, "b_red": 1.1, "b_green": 0.6, "b_blue": 0.1, "b_goal": 2.1 + 0.1 * a,
                         "b_gem": 1.1, "b0": 0.1, "b_white_line": np.where(a == 2, 1.35, 1.1),
                         "b_yellow_gem": 9.9})  # not a mixed line: left out


def test_mixed_pulls_sit_between_the_channel_rules():
    m = mixed_pulls(profile(), "yellow_line")
    assert set(m["object"]) == {"white_line"}
    two = m[m["agent"] == 2].iloc[0]
    assert two["measured"] == pytest.approx(1.25) and two["max"] == pytest.approx(1.0)
    assert two["add"] == pytest.approx(1.5) and two["position"] == pytest.approx(0.5)
    assert m[m["agent"] == 0]["position"].iloc[0] == pytest.approx(0.0)


def test_the_section_says_the_numbers_when_the_tables_exist(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "analysis").mkdir()
    profile().to_csv(run / "analysis" / "predict_profile.csv", index=False)
    pd.DataFrame({"agent": range(6), "b_line": 1.0, "b_gem": 0.5, "shape_pull": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}).to_csv(
        run / "analysis" / "shape_agents.csv", index=False)
    page = explain(2, run).read_text()
    section = page[page.index('id="channels"'):].split("Not shown")[0]
    assert "red line 1.00, green line 0.50, blue line 0.00, yellow line 2.20, yellow gem 1.00" in section
    assert "reads red most" in section
    assert "white line pulls 1.25 alone against 1.00 from its best channel and 1.50 from their sum (position 0.50" in section
    assert "in 60% of levels" in section  # agent 2: 30 of 50 levels line first
    assert "+0.30 more than toward the gem" in section
    assert 'src="channels.png"' in section and (run / "dossiers" / "agent-0002" / "channels.png").is_file()
    assert "gmg predict" not in section and "shape_probes.py" not in section


def test_the_section_names_the_command_for_each_missing_table(tmp_path):
    run = make_run(tmp_path / "run", settings=("red_line-vs-green_line",))
    page = explain(1, run).read_text()
    section = page[page.index('id="channels"'):].split("Not shown")[0]
    assert f"run `gmg predict --run-dir {run}`" in section
    assert f"run `gmg evaluate --settings {SHAPE} --run-dir {run}`" in section
    assert "scripts/shape_probes.py --population" in section
    assert "channels.png" not in section  # nothing to draw, and the dossier is still written
    (run / "analysis").mkdir()
    profile().drop(columns=["b_white_line", "b_yellow_gem"]).to_csv(run / "analysis" / "predict_profile_network.csv",
                                                                    index=False)
    section = explain(1, run).read_text().split('id="channels"')[1].split("Not shown")[0]
    assert "predict_profile_network.csv" in section and "mixed colours not measured alone" in section
