"""Sweeps on a real single-node Slurm cluster (`make test-slurm` starts one; scripts/slurm_cluster.sh), run as users
run them: `alimb -m hydra/launcher=slurm ...` in a subprocess, jobs submitted with sbatch and run by slurmd."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alimb.state import RunDir
from alimb.sweep import variant
from tests.conftest import SMALL, without_timings
from tests.helpers import ROOT, pause_after

if not os.environ.get("SLURM_CONF"):
    pytest.skip("needs a Slurm cluster: make test-slurm starts one", allow_module_level=True)

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}  # jobs import tests.helpers (PauseAfter)
BASE = "outputs/default/synthetic/exp0.75"


def run_dir(root: Path, af: str = "dmcs_rand", seed: int = 0, overrides=SMALL) -> Path:
    """Where a multirun job of these overrides keeps its run."""
    return root / BASE / af / "cs_svm" / f"{variant(list(overrides))}seed{seed}"


def alimb(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alimb.run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def start(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "alimb.run", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def queue() -> list[str]:
    """The job ids squeue lists (pending, running, completing, ...: every job not yet gone)."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def wait_for(flag: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not flag.exists():
        assert proc.poll() is None, f"the sweep ended before its job paused: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the job never reached its pause"
        time.sleep(0.1)


def job_logs(sweep: Path) -> str:
    return "".join(p.read_text() for p in sorted(sweep.glob(".submitit/*/*_log.*")))


def drained(timeout: float = 60) -> list[str]:
    """The jobs still in the queue once it empties or `timeout` passes: a finished job stays listed as COMPLETING
    for a few seconds after its result (and the sweep) came back."""
    deadline = time.monotonic() + timeout
    while (left := queue()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture(autouse=True)
def empty_queue():
    """Every test starts and ends with no job of ours in the queue."""
    assert drained() == [], "jobs left in the queue by an earlier test"
    yield
    leftover = drained()
    if leftover:
        subprocess.run(["scancel", *leftover])
    assert leftover == []


def test_a_sweep_runs_as_one_job_array_and_again_finds_nothing_to_do(tmp_path):
    args = ("-m", "hydra/launcher=slurm", "acquisition=random,margin", "seed=0,1,2", *SMALL)
    proc = alimb(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(tmp_path.glob(f"{BASE}/*/cs_svm/*/*/summary.json"))
    assert len(runs) == 6 and all(len(RunDir(r.parent).records()) == 6 for r in runs)
    results = sorted((tmp_path / "outputs/default/.submitit").glob("*/*_result.pkl"))
    assert len(results) == 6 and len({r.name.split("_")[0] for r in results}) == 1  # one array: ID_0 ... ID_5
    assert "sacct" not in proc.stdout + proc.stderr  # no accounting here: nothing is asked of sacct

    # the same selections as the basic launcher's (another process model, the same config and seeds)
    (tmp_path / "basic").mkdir()
    reference = alimb(tmp_path / "basic", "-m", "acquisition=random,margin", "seed=1", *SMALL)
    assert reference.returncode == 0, reference.stderr[-2000:]
    for af in ("random", "margin"):
        ours, theirs = RunDir(run_dir(tmp_path, af, 1)), RunDir(run_dir(tmp_path / "basic", af, 1))
        assert without_timings(ours.records()) == without_timings(theirs.records())

    stamps = [r.stat().st_mtime_ns for r in runs]
    again = alimb(tmp_path, *args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert job_logs(tmp_path / "outputs/default").count("nothing to do") == 6
    assert [r.stat().st_mtime_ns for r in runs] == stamps


def test_a_failing_job_is_listed_and_the_others_complete(tmp_path):
    tiny = (*SMALL[:-2], "al.iterations=3")
    proc = alimb(tmp_path, "-m", "hydra/launcher=slurm", "al.per_iteration=20,100000", *tiny)
    assert proc.returncode == 1, proc.stderr[-2000:]
    base = tmp_path / BASE / "dmcs_rand/cs_svm"
    good, bad = (base / f"{variant([*tiny, f'al.per_iteration={n}'])}seed0" for n in (20, 100000))
    assert len(RunDir(good).records()) == 3 and (good / "summary.json").exists()
    assert not (bad / "summary.json").exists()
    failed = [line for line in proc.stderr.splitlines() if line.startswith("alimb: failed:")]
    assert failed == [f"alimb: failed: {bad}: {(bad / 'error.txt').read_text().strip()}"]
    assert "Traceback" not in proc.stderr


def test_a_job_given_fewer_cpus_than_the_node_has_uses_that_many_torch_threads(tmp_path):
    """This cluster binds no task to CPUs (TaskPlugin=task/none), so torch would start a thread per core of the
    node; a job of --cpus-per-task=1 uses one (jobs sharing the node otherwise fight over the cores)."""
    proc = alimb(tmp_path, "-m", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "seed=0", *SMALL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    logs = list(tmp_path.glob(f"{BASE}/**/alimb.log"))
    assert len(logs) == 1 and "torch's CPU threads: 1, the job's SLURM_CPUS_PER_TASK" in logs[0].read_text()


def test_a_requeued_job_resumes_and_ends_identical_to_an_uninterrupted_run(tmp_path):
    reference = alimb(tmp_path, *SMALL, f"hydra.run.dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference.stderr[-2000:]
    flag = tmp_path / "paused"
    proc = start(tmp_path, "-m", "hydra/launcher=slurm", *SMALL, *pause_after(2, flag))
    wait_for(flag, proc)
    [job] = queue()
    subprocess.run(["scontrol", "requeue", job], check=True)  # Slurm kills the job and queues it again
    for _ in range(600):  # a requeued job waits ~2 min before it may start again; let it start at once
        if subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True).returncode == 0 \
                and "PENDING" in subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True,
                                                text=True).stdout:
            break
        time.sleep(0.1)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    run = RunDir(run_dir(tmp_path))
    assert "resuming after iteration 3 of 6" in job_logs(tmp_path / "outputs/default")
    assert without_timings(run.records()) == without_timings(RunDir(tmp_path / "reference").records())
    np.testing.assert_array_equal(np.load(run.labeled_round_file),
                                  np.load(RunDir(tmp_path / "reference").labeled_round_file))


def test_a_job_slurm_kills_is_a_failed_job_not_a_hang(tmp_path):
    flag = tmp_path / "paused"
    proc = start(tmp_path, "-m", "hydra/launcher=slurm", *SMALL, *pause_after(1, flag))
    wait_for(flag, proc)
    [job] = queue()
    subprocess.run(["scancel", job], check=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    [failed] = [line for line in err.splitlines() if line.startswith("alimb: failed:")]
    assert failed.startswith(f"alimb: failed: {run_dir(tmp_path)}: slurm job {job} ended CANCELLED without a result; its log: ")


@pytest.mark.parametrize("args, says", [
    (("hydra.launcher.partition=nope",), "hydra.launcher.partition=nope;"),
    (("scheme=cs_svm,ft",), "hydra.launcher.gpus_per_node=1,"),  # the ft job asks for a GPU; this node has none
    (("hydra.launcher.resources.cpu.mem_gb=100000",), "hydra.launcher.mem_gb=100000;"),
    (("hydra.launcher.cpus_per_task=64",), "hydra.launcher.cpus_per_task=64,"),  # accepted, can never start
])
def test_what_the_cluster_cannot_give_is_one_line_exit_2_and_nothing_left_queued(tmp_path, args, says):
    proc = alimb(tmp_path, "-m", "hydra/launcher=slurm", "seed=0,1", *SMALL, *args, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("alimb: error: ") and says in line, line
    assert not list(tmp_path.glob("outputs/**/summary.json"))


def test_the_cpu_preset_runs_fine_tuning_without_a_gpu(tmp_path):
    proc = alimb(tmp_path, "-m", "hydra/launcher=slurm_cpu", "hydra.launcher.resources.gpu.mem_gb=4",
                 "hydra.launcher.resources.gpu.cpus_per_task=2",
                 "scheme=ft", "backbone.weights=null", "scheme.epochs=1", "al.iterations=2", "al.per_iteration=10",
                 "acquisition=random,margin")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(tmp_path.glob("outputs/default/digits/*/*/ft/*/*/summary.json"))
    assert [r.parent.parent.parent.parent.name for r in runs] == ["margin", "random"]
    assert "[cpus_per_task=2, gpus_per_node=0, mem_gb=4]" in proc.stdout + proc.stderr  # the ft job's request


def test_fine_tuning_on_two_devices_inside_a_slurm_job(tmp_path):
    """A one-task Slurm job that fine-tunes on two CPU devices (trainer.strategy=ddp, run as ddp_fork): the ranks are
    the fit's own processes on the job's node, not Slurm tasks (with Slurm's environment each rank was task 0 and
    both listened on one port), and forked (a spawned rank imported submitit's main module, not alimb, and died
    on torchvision's CPU import); the job completes and records that two processes trained."""
    import json

    proc = alimb(tmp_path, "-m", "hydra/launcher=slurm_cpu", "hydra.launcher.resources.gpu.mem_gb=4",
                 "hydra.launcher.resources.gpu.cpus_per_task=2", "scheme=ft_th", "backbone.weights=null",
                 "scheme.epochs=1", "al.iterations=2", "al.per_iteration=10", "trainer.accelerator=cpu",
                 "trainer.devices=2", "trainer.strategy=ddp", "trainer.enable_progress_bar=false")
    assert proc.returncode == 0, proc.stderr[-3000:] + job_logs(tmp_path / "outputs" / "default")[-3000:]
    [records] = list(tmp_path.glob("outputs/default/digits/*/*/ft_th/**/records.jsonl"))
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert [r["train_info"] for r in lines] == [{"processes": 2}] * 2 and all(np.isfinite(r["train_loss"]) for r in lines)
