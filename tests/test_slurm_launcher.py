"""The Slurm launcher's decisions that need no cluster (tests_slurm/ runs it on a real one: make test-slurm)."""

import subprocess

import pytest
from omegaconf import OmegaConf

import hydra_plugins.alimb_launcher as launcher
from hydra_plugins.alimb_launcher import refusal, trains_images


@pytest.mark.parametrize("scheme, fine_tunes", [
    ("cs_svm", False), ("svm", False), ("ft", True), ("ft_th", True), ("switch", True),  # the switch holds ft_th
])
def test_a_job_asks_for_a_gpu_exactly_when_its_scheme_fine_tunes(make_cfg, scheme, fine_tunes):
    cfg = make_cfg(f"scheme={scheme}")
    assert trains_images(OmegaConf.to_container(cfg.scheme, resolve=False)) is fine_tunes


def test_a_switch_without_fine_tuning_asks_for_no_gpu(make_cfg):
    cfg = make_cfg("scheme=switch", "~scheme@scheme.schemes.ft_th", "+scheme@scheme.schemes.svm=svm",
                   "scheme.start=cs_svm")
    assert trains_images(OmegaConf.to_container(cfg.scheme, resolve=False)) is False


# sbatch's own words (Slurm 22.05), as a user meets them
PARAMS = {"partition": "gpu", "gpus_per_node": 1, "gres": None, "mem_gb": 512, "cpus_per_task": 4, "timeout_min": 240,
          "account": "x", "qos": "high", "constraint": "v100"}


@pytest.mark.parametrize("stderr, names", [
    ("sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification\n",
     "hydra.launcher.gpus_per_node=1, hydra.launcher.gres=None;"),
    ("sbatch: error: invalid partition specified: gpu\nsbatch: error: Batch job submission failed: Invalid partition "
     "name specified\n", "hydra.launcher.partition=gpu;"),
    ("sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: "
     "Requested node configuration is not available\n", "hydra.launcher.mem_gb=512;"),
    ("sbatch: error: Batch job submission failed: Requested node configuration is not available\n",
     "hydra.launcher.gpus_per_node=1, hydra.launcher.cpus_per_task=4, hydra.launcher.mem_gb=512;"),
    ("sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)\n",
     "hydra.launcher.timeout_min=240;"),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n",
     "hydra.launcher.account=x;"),
    ("sbatch: error: Batch job submission failed: Invalid qos specification\n", "hydra.launcher.qos=high;"),
    ("sbatch: error: Batch job submission failed: Invalid feature specification\n", "hydra.launcher.constraint=v100;"),
])
def test_an_sbatch_refusal_names_the_launcher_setting_that_decides_it(stderr, names):
    line = refusal(stderr, PARAMS)
    assert "\n" not in line and names in line and line.startswith("sbatch refused the sweep's jobs (")


def test_an_unknown_refusal_still_quotes_sbatch_in_one_line():
    line = refusal("sbatch: error: Something new\nsbatch: error: Batch job submission failed: Odd\n", PARAMS)
    assert line == "sbatch refused the sweep's jobs (Something new); check the hydra.launcher.* settings"


def test_queue_states_reads_squeue_per_array_task(monkeypatch):
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "12_0|RUNNING|None\n12_1|PENDING|PartitionConfig\n"
                                                       "13|COMPLETED|None\n", "")

    monkeypatch.setattr(launcher.subprocess, "run", fake_run)
    states = launcher.queue_states(["12_0", "12_1", "13"])
    assert states == {"12_0": ("RUNNING", "None"), "12_1": ("PENDING", "PartitionConfig"), "13": ("COMPLETED", "None")}
    assert calls[0][calls[0].index("-j") + 1] == "12,13" and "-r" in calls[0] and "all" in calls[0]


def test_queue_states_after_every_job_left_the_queue_is_empty_and_a_dead_squeue_is_none(monkeypatch):
    answers = iter([subprocess.CompletedProcess([], 1, "", "slurm_load_jobs error: Invalid job id specified\n"),
                    subprocess.CompletedProcess([], 1, "", "slurm_load_jobs error: Unable to contact slurm controller\n")])
    monkeypatch.setattr(launcher.subprocess, "run", lambda *a, **k: next(answers))
    assert launcher.queue_states(["7"]) == {}
    assert launcher.queue_states(["7"]) is None
