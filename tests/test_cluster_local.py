"""Evaluation in local worker processes (``--workers N`` without ``--ray``): the rows of the
in-process run, sampled and exact, also when workers die; a chunk that raises is one line, the
others are stored."""

from __future__ import annotations

import contextlib
import os

import pandas as pd
import pytest

from gmg.experiments.cli.main import main
from gmg.experiments.cluster import FAULT_ENV, chunk_runner
from gmg.experiments.evaluate import evaluate, play_chunk
from gmg.experiments.population import population
from gmg.interp.interventions import parse_intervention
from gmg.training.errors import UserError

SETTING = ["red_line-vs-yellow_gem"]
# one agent per chunk (batch_envs // n_levels), so 3 chunks over 2 workers; a short timeout keeps it small
EVAL = dict(device="cpu", n_levels=4, timeout=40, batch_envs=4, progress=False)
LOCAL = "isolate:r@obj1"  # an object-local intervention: its masks and its object travel to the workers


def agents():
    return population("zoo:yellow-line", [0, 1, 2])


def failing_chunk(refs, setting, device, **args):
    """``play_chunk``, except that the chunk of agent 1 raises (naming the process it ran in)."""
    if any(r.agent_id == 1 for r in refs):
        raise RuntimeError(f"agent 1 broke in process {os.getpid()}")
    return play_chunk(refs, setting, device, **args)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The in-process rows (the suite runs with one torch thread, as each worker does)."""
    run = tmp_path_factory.mktemp("in-process")
    sampled = evaluate(agents(), SETTING, run, **EVAL)
    exact = evaluate(agents(), SETTING, run, exact=True, intervention=parse_intervention(LOCAL), **EVAL)
    return sampled, exact


def test_two_workers_store_the_in_process_rows_sampled_and_exact(reference, tmp_path, monkeypatch):
    faults = tmp_path / "faults"
    monkeypatch.setenv(FAULT_ENV, str(faults))  # each chunk's first worker dies with its rows unreturned
    sampled = evaluate(agents(), SETTING, tmp_path, run_chunks=chunk_runner(None, 2), **EVAL)
    assert len(list(faults.iterdir())) == 3  # every chunk died once, and its rerun in a fresh pool stored it
    monkeypatch.delenv(FAULT_ENV)
    exact = evaluate(agents(), SETTING, tmp_path, exact=True, intervention=parse_intervention(LOCAL),
                     run_chunks=chunk_runner(None, 2), **EVAL)
    assert len(sampled) == 3 * 4 and len(exact) == 3 * 4
    pd.testing.assert_frame_equal(reference[0], sampled)
    pd.testing.assert_frame_equal(reference[1], exact)
    assert set(exact["intervention"]) == {LOCAL}


def test_a_failing_chunk_is_one_line_and_the_others_are_stored(reference, tmp_path, capsys):
    runner = chunk_runner(None, 2)
    with pytest.raises(UserError) as e:
        evaluate(agents(), SETTING, tmp_path, run_chunks=lambda jobs, device, args, chunk: runner(
            jobs, device, args, failing_chunk), **EVAL)
    message = str(e.value)
    assert "\n" not in message and message.startswith("1 of 3 evaluation chunks failed in worker processes "
                                                      "(red_line-vs-yellow_gem agents 1: agent 1 broke in process ")
    assert f"in process {os.getpid()})" not in message  # it ran in a worker
    stored = evaluate(agents()[::2], SETTING, tmp_path, **EVAL)  # agents 0 and 2: stored, so nothing is played
    pd.testing.assert_frame_equal(reference[0][reference[0]["agent"] != 1].reset_index(drop=True), stored)
    # a rerun plays only the missing chunk and completes the store
    before = len((tmp_path / "evaluate.log").read_text().splitlines())
    rerun = evaluate(agents(), SETTING, tmp_path, run_chunks=runner, **EVAL)
    log = (tmp_path / "evaluate.log").read_text().splitlines()[before:]
    assert [line.split()[1] for line in log] == ["agent=1"]
    pd.testing.assert_frame_equal(reference[0], rerun)

    # what cannot reach a worker, and a worker count below 1, are one line each
    with pytest.raises(UserError, match="cannot be sent to worker processes"):
        evaluate(agents(), SETTING, tmp_path / "lambda", intervention=lambda m: contextlib.nullcontext(),
                 intervention_name="nothing", run_chunks=runner, **EVAL)
    code = main(["evaluate", "--agents", "zoo:yellow-line", "--ids", "0", "--settings", SETTING[0], "--n-levels", "4",
                 "--run-dir", str(tmp_path / "cli"), "--device", "cpu", "--quiet", "--workers", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["gmg evaluate: --workers must be at least 1, got 0"], err
