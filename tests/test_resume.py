"""Runs survive interruption: resume from the last completed iteration, identical results."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from alimb.errors import UserError
from alimb.loop import run_experiment
from alimb.records import dumps
from alimb.state import RunDir
from tests.conftest import SMALL, without_timings
from tests.helpers import ROOT, pause_after, wait_for

# slow enough per iteration (~0.1-0.2 s) that a kill lands in the middle of the run
SLOWER = (
    "dataset=synthetic", "dataset.loader.n_classes=30", "dataset.loader.n_per_class=300",
    "dataset.loader.test_per_class=10", "dataset.loader.dim=128", "al.iterations=12", "al.per_iteration=100",
    "acquisition=dmcs_marg",
)


def test_rerunning_a_finished_run_does_nothing(make_cfg, tmp_path, caplog):
    first = run_experiment(make_cfg(*SMALL), tmp_path)
    stamp = (tmp_path / "summary.json").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        again = run_experiment(make_cfg(*SMALL), tmp_path)
    assert "nothing to do" in caplog.text
    assert (tmp_path / "summary.json").stat().st_mtime_ns == stamp
    assert [dumps(r) for r in without_timings(again)] == [dumps(r) for r in without_timings(first)]


def test_a_directory_with_another_config_is_refused_unless_overwrite(make_cfg, tmp_path):
    run_experiment(make_cfg(*SMALL), tmp_path)
    with pytest.raises(UserError, match="different config \\(differs in: seed\\).*overwrite=true"):
        run_experiment(make_cfg(*SMALL, "seed=9"), tmp_path)
    records = run_experiment(make_cfg(*SMALL, "seed=9", "overwrite=true"), tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["seed"] == 9
    assert len(RunDir(tmp_path).records()) == len(records)


@pytest.mark.parametrize("af", [(), ("acquisition=base",), ("acquisition=class_balanced",), ("acquisition=minority_bandit",),
                                ("acquisition=dropquery",), ("acquisition=alfamix",), ("acquisition=pcb",),
                                ("acquisition=anchoral",)])
def test_resume_from_a_saved_state_matches_an_uninterrupted_run(make_cfg, tmp_path, af):
    """Interrupt by hand after 3 iterations (state file of iteration 2 and partial records kept); with the AFs
    that read the scheme's head, record solver information and timings, or reveal within a batch too."""
    full = run_experiment(make_cfg(*SMALL, *af), tmp_path / "full")
    run_experiment(make_cfg(*SMALL, *af, "al.iterations=3"), tmp_path / "cut")  # same seeds for iterations 0-2
    state = json.loads((tmp_path / "cut" / "config.json").read_text())
    state["al"]["iterations"] = 6  # make the directory hold the 6-iteration config, as if killed after iteration 2
    (tmp_path / "cut" / "config.json").write_text(json.dumps(state))
    (tmp_path / "cut" / "summary.json").unlink()
    resumed = run_experiment(make_cfg(*SMALL, *af), tmp_path / "cut")
    assert without_timings(resumed) == without_timings(full)
    np.testing.assert_array_equal(
        np.load(tmp_path / "cut" / "labeled_round.npy"), np.load(tmp_path / "full" / "labeled_round.npy")
    )


def test_sigkill_mid_run_then_resume_is_identical_to_an_uninterrupted_run(tmp_path):
    def command(run_dir):
        return [sys.executable, "-m", "alimb.run", *SLOWER, f"hydra.run.dir={run_dir}"]

    reference = subprocess.run(command(tmp_path / "reference"), cwd=tmp_path, capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr

    run_dir, flag = tmp_path / "killed", tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the pausing logger lives in tests/
    proc = subprocess.Popen([*command(run_dir), *pause_after(3, flag)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    wait_for(flag, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists() and RunDir(run_dir).completed_iterations() == 4

    resumed = subprocess.run(command(run_dir), cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after iteration 4 of 12" in resumed.stdout + resumed.stderr
    assert without_timings(RunDir(run_dir).records()) == without_timings(RunDir(tmp_path / "reference").records())
    np.testing.assert_array_equal(
        np.load(run_dir / "labeled_round.npy"), np.load(tmp_path / "reference" / "labeled_round.npy")
    )
