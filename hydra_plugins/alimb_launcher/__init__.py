"""alimb's Slurm launcher (a Hydra plugin, so it lives here): submitit's, with what a cluster user needs around it.

`hydra/launcher=slurm` (and `slurm_cpu`) instantiate `SlurmLauncher`, Hydra's submitit Slurm launcher with:

- **Resources per job.** `gpus_per_node`, `cpus_per_task` and `mem_gb` may be `auto`: a job whose scheme
  trains a network on images (a scheme class with `needs_images = True`: FT, FT-th, a switch holding one)
  gets the preset's `resources.gpu`, every other job (the SVMs on features) `resources.cpu`. Jobs are
  grouped by what they get, one job array per group. A number given on the command line applies to all.
- **sbatch refusals in one line.** A rejected submission (a partition, gres, memory or time the cluster does
  not have) prints `alimb: error: sbatch refused ...` naming the `hydra.launcher.*` setting to change, cancels
  the arrays this sweep already submitted, and exits with status 2.
- **Jobs that end without a result are failures, not a hang.** submitit learns a job's state from `sacct`;
  on a cluster without accounting it cannot, and waits forever for a job killed by Slurm (out of memory,
  cancelled, node failure). Here job states come from `squeue` (the jobs it lists, finished ones included
  for `MinJobAge`); a job Slurm no longer runs and that left no result is a failed job of the sweep
  (`alimb: failed: RUN_DIR: slurm job ID ended STATE without a result; its log: FILE`). sacct is never called,
  so its warnings never appear.

A requeued job (a time limit reached: submitit requeues it up to `max_num_timeout` times; `scontrol requeue`)
keeps its job id and runs the same command again, which resumes from the run's last completed iteration.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import OmegaConf

from alimb.sweep import JobFailure

log = logging.getLogger(__name__)

AUTO = "auto"
PER_JOB = ("gpus_per_node", "cpus_per_task", "mem_gb")  # what `auto` may stand for
EXECUTOR_INIT = ("submitit_folder", "max_num_timeout")  # submitit takes these when the executor is built
# squeue states of a job that may still write its result; every other state (or none: gone) means it ended
ALIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING", "SUSPENDED",
         "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "SPECIAL_EXIT", "STOPPED"}
POLL_S = (1.0, 10.0)  # squeue every 1 s at first, backing off to every 10 s
RESULT_GRACE_S = 10.0  # a result written just before the job ended may reach a shared file system late

# sbatch's messages -> the settings that decide them (first match; 'account' before 'partition': sbatch says
# 'Invalid account or account/partition combination')
HINTS = (
    ("generic resource", ("gpus_per_node", "gres"),
     "this cluster has no such GPUs; set hydra.launcher.gpus_per_node=0 or use hydra/launcher=slurm_cpu"),
    ("account", ("account",), "name an account you belong to (`sacctmgr show assoc user=$USER`)"),
    ("partition", ("partition",), "name one of the partitions `sinfo` lists"),
    ("memory", ("mem_gb",), "ask for less memory"),
    ("node configuration is not available", ("gpus_per_node", "cpus_per_task", "mem_gb"),
     "no node has that many CPUs, that much memory or those GPUs; ask for less"),
    ("time limit", ("timeout_min",), "ask for less time (the partition's limit: `sinfo -o %l`)"),
    ("qos", ("qos",), "name a QOS you may use"),
    ("feature", ("constraint",), "name a feature the nodes have (`sinfo -o %f`)"),
)
# squeue reasons of a pending job that can never start (the partition's nodes or limits cannot give it what it
# asks for; with EnforcePartLimits=NO, Slurm's default, sbatch accepts such jobs): the sweep stops as if refused
NEVER = {
    "PartitionConfig": "no node of the partition has that many CPUs, that much memory or those GPUs",
    "PartitionNodeLimit": "the partition allows fewer nodes",
    "PartitionTimeLimit": "the partition's time limit is shorter",
    "BadConstraints": "no node of the partition has that many CPUs, that much memory or those GPUs",
    "InvalidAccount": "that account is not valid",
    "InvalidQOS": "that QOS is not valid",
}
NEVER_KEYS = {"PartitionConfig": ("gpus_per_node", "cpus_per_task", "mem_gb"), "PartitionNodeLimit": ("nodes",),
              "PartitionTimeLimit": ("timeout_min",), "BadConstraints": ("gpus_per_node", "cpus_per_task", "mem_gb"),
              "InvalidAccount": ("account",), "InvalidQOS": ("qos",)}


def trains_images(scheme: Any) -> bool:
    """Whether a scheme config (or any scheme inside it) builds a class that trains on images (fine tuning)."""
    from alimb.declarations import target_callable

    if isinstance(scheme, dict):
        target = scheme.get("_target_")
        if isinstance(target, str):
            try:
                if getattr(target_callable(target), "needs_images", False) is True:
                    return True
            except (ImportError, AttributeError):  # the job itself will say so, in its own line
                pass
        return any(trains_images(value) for value in scheme.values())
    if isinstance(scheme, list):
        return any(trains_images(value) for value in scheme)
    return False


def refusal(message: str, params: dict[str, Any]) -> str:
    """One line for an sbatch rejection: sbatch's words, the launcher settings that decide it, what to do."""
    text = " ".join(line.strip() for line in message.strip().splitlines() if line.strip())
    said = next((line.split("error:", 1)[1].strip() for line in message.splitlines() if "error:" in line), text)
    for needle, keys, advice in HINTS:
        if needle in said.lower():
            settings = ", ".join(f"hydra.launcher.{k}={params.get(k)}" for k in keys)
            return f"sbatch refused the sweep's jobs ({said}): {settings}; {advice}"
    return f"sbatch refused the sweep's jobs ({said}); check the hydra.launcher.* settings"


def queue_states(job_ids: Sequence[str]) -> Optional[dict[str, tuple[str, str]]]:
    """{job id: (state, reason)} of the jobs squeue lists (array tasks as ID_INDEX); None when squeue cannot answer."""
    ids = sorted({job_id.split("_")[0] for job_id in job_ids})
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j", ",".join(ids)],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        if "Invalid job id" in out.stderr:  # every job already left the queue
            return {}
        return None
    states = {}
    for line in out.stdout.splitlines():
        job_id, state, reason = (line.strip().split("|") + ["", ""])[:3]
        states[job_id] = (state, reason)
    return states


class SlurmLauncher(SubmititSlurmLauncher):
    """submitit's Slurm launcher with per-job resources, one-line sbatch refusals and lost jobs as failures."""

    def __init__(self, resources: Optional[dict] = None, **params: Any) -> None:
        super().__init__(**params)
        self.asked: dict[str, dict[str, Any]] = {}  # job id -> the launcher settings it was submitted with
        self.resources = OmegaConf.to_container(resources, resolve=True) if OmegaConf.is_config(resources) \
            else dict(resources or {})

    # ---- what each job asks for ----
    def _kind(self, overrides: Sequence[str]) -> str:
        """'gpu' for a job whose scheme fine-tunes, 'cpu' otherwise."""
        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        return "gpu" if trains_images(OmegaConf.to_container(cfg.get("scheme", {}), resolve=False)) else "cpu"

    def _job_resources(self, job_overrides: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
        """Per job, the values of `PER_JOB` (auto resolved from the preset's `resources`)."""
        auto = [key for key in PER_JOB if self.params.get(key) == AUTO]
        if not auto:
            return [{} for _ in job_overrides]
        kinds: dict[tuple, str] = {}  # jobs that differ only outside the scheme need not be composed again
        out = []
        for overrides in job_overrides:
            key = tuple(o for o in overrides if o.lstrip("+~").split("=")[0].split("@")[0].split(".")[0]
                        in ("scheme", "experiment"))
            if key not in kinds:
                kinds[key] = self._kind(overrides)
            table = self.resources.get(kinds[key]) or {}
            missing = [k for k in auto if k not in table]
            if missing:
                raise ValueError(f"hydra.launcher.{missing[0]}=auto needs hydra.launcher.resources.{kinds[key]}."
                                 f"{missing[0]}")
            out.append({k: table[k] for k in auto})
        return out

    # ---- submitting and waiting ----
    def _executor(self) -> tuple[Any, dict[str, Any]]:
        """The submitit executor and the parameters every job shares (as Hydra's launcher builds them)."""
        import submitit

        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
                                         **{f"{self._EXECUTOR}_max_num_timeout": self.params["max_num_timeout"]})
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        shared = {key if key in generic else f"{self._EXECUTOR}_{key}": value
                  for key, value in self.params.items() if key not in EXECUTOR_INIT}
        return executor, shared

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError

        assert self.config is not None and len(job_overrides) > 0
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {self.config.hydra.sweep.dir}")

        per_job = self._job_resources(job_overrides)
        groups: dict[tuple, list[int]] = {}
        for i, resources in enumerate(per_job):
            groups.setdefault(tuple(sorted(resources.items())), []).append(i)
        executor, shared = self._executor()
        jobs: list[Any] = [None] * len(job_overrides)
        submitted: list[Any] = []
        for group, members in groups.items():
            params = {**shared, **dict(group)}
            executor.update_parameters(**params)
            described = ", ".join(f"{k}={v}" for k, v in group)
            for i in members:
                line = " ".join(filter_overrides(job_overrides[i]))
                log.info(f"\t#{initial_job_idx + i} : {line}" + (f"  [{described}]" if described else ""))
            args = [(list(job_overrides[i]), "hydra.sweep.dir", initial_job_idx + i, f"job_id_for_{initial_job_idx + i}",
                     Singleton.get_state()) for i in members]
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's stderr; we say it once
                    array = executor.map_array(self, *zip(*args))
            except FailedJobError as err:
                self._refuse(submitted, refusal(str(err), {**self.params, **dict(group)}))
            submitted += array
            for i, job in zip(members, array):
                jobs[i] = job
                self.asked[job.job_id] = {**self.params, **dict(group)}
        return self._wait(jobs, job_overrides)

    @staticmethod
    def _refuse(submitted: list[Any], message: str) -> None:
        """Cancel what this sweep submitted, say why in one line, exit 2."""
        for job in submitted:
            job.cancel(check=False)
        print(f"alimb: error: {message}", file=sys.stderr)
        sys.exit(2)

    def _result(self, job: Any, overrides: Sequence[str]) -> JobReturn:
        """The job's JobReturn from its result file; a job that failed outside Hydra's job (submitit itself) too."""
        try:
            return job.results()[0]
        except Exception as err:  # noqa: BLE001 - submitit's FailedJobError carries the job's traceback
            last = [line for line in str(err).strip().splitlines() if line.strip()][-1:] or [type(err).__name__]
            return self._failed(overrides, f"slurm job {job.job_id} failed: {last[0].strip()}; its log: {job.paths.stderr}")

    def _failed(self, overrides: Sequence[str], message: str) -> JobReturn:
        """A failed job of the sweep, as alimb's sweeper lists them (its run directory, one line)."""
        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            run_dir = str(Path(cfg.hydra.sweep.dir).absolute() / cfg.hydra.sweep.subdir)
        except Exception:  # noqa: BLE001 - the message matters more than the path
            run_dir = " ".join(overrides)
        return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=JobFailure(run_dir, message))

    def _lost(self, job: Any, overrides: Sequence[str], state: str) -> JobReturn:
        what = f"ended {state}" if state else "left the queue"
        return self._failed(overrides, f"slurm job {job.job_id} {what} without a result; its log: {job.paths.stderr}")

    def _wait(self, jobs: list[Any], job_overrides: Sequence[Sequence[str]]) -> list[JobReturn]:
        results: list[Optional[JobReturn]] = [None] * len(jobs)
        ended_at: dict[int, float] = {}  # when squeue first said a job ended without a result
        delay, warned = POLL_S[0], False
        while any(r is None for r in results):
            for i, job in enumerate(jobs):
                if results[i] is None and job.paths.result_pickle.exists():
                    results[i] = self._result(job, job_overrides[i])
            waiting = [i for i, r in enumerate(results) if r is None]
            if not waiting:
                break
            states = queue_states([jobs[i].job_id for i in waiting])
            if states is None:
                if not warned:
                    log.warning("squeue does not answer; waiting for the jobs' result files")
                    warned = True
            else:
                now = time.monotonic()
                for i in waiting:
                    state, reason = states.get(jobs[i].job_id, ("", ""))
                    if state == "PENDING" and reason in NEVER:
                        asked = self.asked.get(jobs[i].job_id, self.params)
                        settings = ", ".join(f"hydra.launcher.{k}={asked.get(k)}" for k in NEVER_KEYS[reason])
                        self._refuse(jobs, f"slurm job {jobs[i].job_id} can never start ({reason}: {NEVER[reason]}): "
                                           f"{settings}; ask for less (`sinfo -o '%P %c %m %G %l'` shows what "
                                           f"the nodes have)")
                    if state in ALIVE:
                        ended_at.pop(i, None)
                    elif now - ended_at.setdefault(i, now) >= RESULT_GRACE_S:
                        if not jobs[i].paths.result_pickle.exists():
                            results[i] = self._lost(jobs[i], job_overrides[i], state)
            time.sleep(delay)
            delay = min(POLL_S[1], delay * 1.5)
        return results  # type: ignore[return-value]
