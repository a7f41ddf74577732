"""A digits sweep on a real Slurm cluster: how much of each job is overhead before its first iteration.

    python scripts/bench_slurm_sweep.py [--seeds 10] [--cpus 1]     (root; starts and stops its own cluster when
                                                                      SLURM_CONF is unset: scripts/slurm_cluster.sh)

Runs `alimb -m hydra/launcher=slurm acquisition=random,margin,coreset,badge,dmcs_rand seed=0..S-1` (5 x S jobs, the
default digits experiment) and reads each job's log: Slurm starting the job (submitit's first line), the run's
pool line (its iterations begin), its done line. Per job, the overhead is start -> pool (Python, imports, Hydra
composition, the pool); the sweep's share outside iterations is 1 - (sum of pool -> done) / (sum of start -> done).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from alimb.devices import describe_machine  # noqa: E402

STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
START = re.compile(r"submitit INFO \(" + STAMP + r"\) - Starting with JobEnvironment")
POOL = re.compile(r"^\[" + STAMP + r"\]\[job \d+\]\[alimb\.loop\]\[INFO\] - pool: ", re.M)
DONE = re.compile(r"^\[" + STAMP + r"\]\[job \d+\]\[alimb\.loop\]\[INFO\] - done: ", re.M)
AFS = "random,margin,coreset,badge,dmcs_rand"


def when(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def job_times(log: str) -> tuple[float, float, float] | None:
    """(start, pool, done) of one job's stdout log; None when it lacks one of them (the first attempt of a
    requeued job, a failed job)."""
    start, pool, done = START.findall(log), POOL.findall(log), DONE.findall(log)
    if not (start and pool and done):
        return None
    return when(start[-1]), when(pool[-1]), when(done[-1])


def percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"min": values[0], "median": pick(0.5), "p90": pick(0.9), "max": values[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per AF (5 AFs): 10 gives 50 jobs")
    parser.add_argument("--cpus", type=int, default=1, help="hydra.launcher.cpus_per_task")
    args = parser.parse_args()

    cluster = None
    if not os.environ.get("SLURM_CONF"):
        cluster = tempfile.mkdtemp(prefix="alimb-slurm-bench.")
        os.chmod(cluster, 0o755)
        conf = subprocess.run(["bash", str(ROOT / "scripts/slurm_cluster.sh"), "up", cluster], check=True,
                              capture_output=True, text=True).stdout.strip()
        os.environ["SLURM_CONF"] = conf
    try:
        work = Path(tempfile.mkdtemp(prefix="alimb-slurm-sweep."))
        command = [sys.executable, "-m", "alimb.run", "-m", "hydra/launcher=slurm", f"acquisition={AFS}",
                   "seed=" + ",".join(map(str, range(args.seeds))), f"hydra.launcher.cpus_per_task={args.cpus}",
                   "hydra.launcher.mem_gb=2"]
        began = time.time()
        proc = subprocess.run(command, cwd=work, capture_output=True, text=True, env={**os.environ,
                                                                                        "WANDB_MODE": "disabled"})
        wall = time.time() - began
        if proc.returncode != 0:
            sys.exit(f"the sweep failed ({proc.returncode}): {proc.stderr[-2000:]}")
        jobs = [t for t in map(job_times, (p.read_text() for p in work.glob("outputs/default/.submitit/*/*_log.out")))
                if t is not None]
        overhead = [pool - start for start, pool, _ in jobs]
        iterating = [done - pool for _, pool, done in jobs]
        slurm = subprocess.run(["sinfo", "-V"], capture_output=True, text=True).stdout.strip()
        report = {
            "machine": describe_machine(), "slurm": slurm, "command": " ".join(command[2:]),
            "jobs": len(jobs), "sweep_wall_s": round(wall, 1),
            "per_job_start_to_first_iteration_s": {k: round(v, 2) for k, v in percentiles(overhead).items()},
            "per_job_iterations_s": {k: round(v, 2) for k, v in percentiles(iterating).items()},
            "share_of_job_time_outside_iterations": round(sum(overhead) / (sum(overhead) + sum(iterating)), 3),
            "first_start_to_last_done_s": round(max(j[2] for j in jobs) - min(j[0] for j in jobs), 1),
            "sum_of_job_time_s": round(sum(done - start for start, _, done in jobs), 1),  # / jobs at once: the
            # rest of the span is the scheduler's gaps between one job's end and the next one's start
        }
        print(json.dumps(report, indent=1))
    finally:
        if cluster:
            subprocess.run(["bash", str(ROOT / "scripts/slurm_cluster.sh"), "down", cluster])


if __name__ == "__main__":
    main()
