"""Sweeps as users run them (subprocesses): failing jobs, distinct run directories, concurrent processes, Ctrl-C."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alimb.state import RunDir
from alimb.sweep import variant
from tests.conftest import SMALL, without_timings
from tests.helpers import ROOT, pause_after, wait_for

TINY = (*SMALL[:-2], "al.iterations=3")  # synthetic, 3 iterations; al.per_iteration swept


def alimb(cwd: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alimb.run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, **kwargs)


@pytest.mark.parametrize("launcher", ["basic", "parallel", "slurm_local"])
def test_a_failing_job_never_stops_the_others(tmp_path, launcher):
    """One job asks for more than the pool (UserError); the other completes; the failure is listed, exit 1."""
    proc = alimb(tmp_path, "-m", f"hydra/launcher={launcher}", "al.per_iteration=20,100000", *TINY)
    assert proc.returncode == 1, proc.stderr[-2000:]
    base = tmp_path / "outputs/default/synthetic/exp0.75/dmcs_rand/cs_svm"
    good, bad = (base / f"{variant([*TINY, f'al.per_iteration={n}'])}seed0" for n in (20, 100000))
    assert len(RunDir(good).records()) == 3 and (good / "summary.json").exists()
    assert not (bad / "summary.json").exists()
    assert (bad / "error.txt").read_text().startswith("budget 3 x 100000 = 300000 exceeds the pool")
    failed = [line for line in proc.stderr.splitlines() if line.startswith("alimb: failed:")]
    assert failed == [f"alimb: failed: {bad}: {(bad / 'error.txt').read_text().strip()}"]
    assert "alimb: 1 of 2 jobs failed:" in proc.stderr and "Traceback" not in proc.stderr


def test_jobs_differing_outside_the_axes_get_their_own_directories_and_resume_there(tmp_path):
    args = ("-m", "al.per_iteration=10,20", *TINY)
    first = alimb(tmp_path, *args)
    assert first.returncode == 0, first.stderr[-2000:]
    summaries = sorted(tmp_path.glob("outputs/default/**/summary.json"))
    assert len(summaries) == 2 and summaries[0].parent != summaries[1].parent
    assert sorted(len(RunDir(s.parent).records()) for s in summaries) == [3, 3]
    stamps = [s.stat().st_mtime_ns for s in summaries]
    again = alimb(tmp_path, *args)  # the same command finds the same directories
    assert again.returncode == 0 and (again.stdout + again.stderr).count("nothing to do") == 2
    assert [s.stat().st_mtime_ns for s in summaries] == stamps


def test_variant_names_are_readable_stable_and_distinct():
    assert variant(["seed=3", "acquisition=margin", "name=x", "logger.mode=offline", "overwrite=true"]) == ""
    assert variant(["al.per_iteration=10", "al.iterations=3"]) == "al.iterations=3,al.per_iteration=10/"
    assert variant(["al.iterations=3", "al.per_iteration=10"]) == variant(["al.per_iteration=10", "al.iterations=3"])
    paths = [variant([f"dataset.loader.path=/data/{n}/feats.npz"]) for n in ("a", "b")]
    assert paths[0] != paths[1] and all("/" not in p[:-1] for p in paths)  # one directory level each
    long = variant([f"scheme.key{i}=value{i}" for i in range(20)])
    assert len(long) <= 81 and long != variant([f"scheme.key{i}=value{i}" for i in range(19)])


# slow enough per iteration that other processes start while the first works
SLOWER = (
    "dataset=synthetic", "dataset.loader.n_classes=30", "dataset.loader.n_per_class=300",
    "dataset.loader.test_per_class=10", "dataset.loader.dim=128", "al.iterations=10", "al.per_iteration=100",
    "acquisition=dmcs_marg",
)


def test_three_processes_on_one_run_directory_one_works_the_others_stop_in_one_line(tmp_path):
    """Three processes started together race for the lock: one runs, the others stop at once in one line (or,
    arriving after it finished, find nothing to do); the records are those of an uninterrupted run."""
    reference = alimb(tmp_path, *SLOWER, f"hydra.run.dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference.stderr[-2000:]
    run_dir = tmp_path / "shared"
    command = [sys.executable, "-m", "alimb.run", *SLOWER, f"hydra.run.dir={run_dir}"]
    procs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    ran = [r for r in results if r[0] == 0 and "done: final accuracy" in r[1] + r[2]]
    refused = [r for r in results if r[0] == 2]
    assert len(ran) == 1 and refused, [r[0] for r in results]
    for rc, out, err in results:
        if rc == 2:
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and "is in use by pid" in lines[0], err
        else:
            assert rc == 0 and ("done: final accuracy" in out + err or "nothing to do" in out + err)
        assert "Traceback" not in err
    assert without_timings(RunDir(run_dir).records()) == without_timings(RunDir(tmp_path / "reference").records())
    assert not (run_dir / "error.txt").exists()
    np.testing.assert_array_equal(np.load(run_dir / "labeled_round.npy"), np.load(tmp_path / "reference/labeled_round.npy"))


def test_ctrl_c_is_one_line_and_the_same_command_resumes_exactly(tmp_path):
    reference = alimb(tmp_path, *SLOWER, f"hydra.run.dir={tmp_path / 'reference'}")
    assert reference.returncode == 0
    run_dir, flag = tmp_path / "interrupted", tmp_path / "paused"
    command = [sys.executable, "-m", "alimb.run", *SLOWER, f"hydra.run.dir={run_dir}", *pause_after(2, flag)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the pausing logger lives in tests/
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(flag, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and len(lines) == 1, err
    assert lines[0] == "alimb: interrupted after iteration 3 of 10; run the same command to resume"
    assert RunDir(run_dir).completed_iterations() == 3 and not (run_dir / "summary.json").exists()
    resumed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert without_timings(RunDir(run_dir).records()) == without_timings(RunDir(tmp_path / "reference").records())


def test_composition_is_checked_on_jobs_that_cover_every_value_before_any_job_runs(tmp_path):
    from hydra_plugins.alimb_sweeper import covering

    jobs = [[f"acquisition={a}", f"seed={s}"] for a in ("random", "margin", "coreset") for s in (0, 1)]
    # random,0 (both new); random,1 (seed=1 new); margin,0 (margin new); margin,1 (nothing new) ...
    assert covering(jobs) == [jobs[0], jobs[1], jobs[2], jobs[4]]
    proc = alimb(tmp_path, "-m", "seed=0,1,2", "acquisition=random,nope", *TINY, "al.per_iteration=10")
    assert proc.returncode != 0 and "no acquisition option named 'nope'; choose one of" in proc.stderr
    assert not list(tmp_path.glob("outputs/**/records.jsonl"))  # the bad value is in the 4th job: none ran


def test_a_sweep_over_afs_sets_an_option_they_share_and_a_job_lacking_it_fails_alone(tmp_path):
    """Hydra composes a sweep's own config with the group's default AF, which lacks `kmeans_iterations`: the jobs that
    have it run with it; a job whose AF lacks it fails alone, named."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "alimb.run", "-m", "acquisition=dropquery,alfamix,margin",
                           "acquisition.kmeans_iterations=7", "al.iterations=1", f"hydra.sweep.dir={tmp_path}"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1 and "1 of 3 jobs failed" in proc.stderr
    assert "margin/cs_svm/acquisition.kmeans_iterations=7,al.iterations=1/seed0: unknown config key " \
           "acquisition.kmeans_iterations" in proc.stderr
    for af in ("dropquery", "alfamix"):
        run = tmp_path / f"digits/exp0.75/{af}/cs_svm/acquisition.kmeans_iterations=7,al.iterations=1/seed0"
        assert json.loads((run / "config.json").read_text())["acquisition"]["kmeans_iterations"] == 7
        assert (run / "summary.json").exists()


def test_one_run_one_directory_however_the_override_is_typed():
    assert variant(["acquisition.share=.5"]) == variant(["acquisition.share=0.5"]) == variant(["++acquisition.share=0.5"])
    assert variant(["acquisition.share=0.5"]) != variant(["acquisition.share=0.25"])
    assert variant(["~acquisition.share"]) != variant(["acquisition.share=0.5"])
