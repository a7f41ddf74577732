"""How much of a small sweep's wall time is its work: `experiment=digits_afs` (45 jobs) on the basic and the parallel
launchers, against Hydra's own floor (a multirun of a task that does nothing, over the same config tree and launcher).

    .venv/bin/python scripts/bench_sweep.py [--launchers basic,parallel] [--experiment digits_afs] [--repeats 1]

Work = the iterations' seconds as the records time them (select, train, evaluate, score), summed over the jobs and
divided by the launcher's processes; outside = 1 - work / wall. Per-job overhead = (wall - work) / jobs, and the
floor's per-job cost the same for the no-op task. Prints one JSON object (with the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOOP = '''
import hydra
import alimb.sweep  # the resolvers the config tree names


@hydra.main(version_base="1.3", config_path="pkg://alimb.conf", config_name="config")
def main(cfg):
    return 0.0


if __name__ == "__main__":
    main()
'''


def launcher_args(launcher: str) -> list[str]:
    return [] if launcher == "basic" else [f"hydra/launcher={launcher}"]


def processes(launcher: str) -> int:
    return 1 if launcher == "basic" else min(2, os.cpu_count() or 1)  # parallel.yaml's n_jobs


def sweep(launcher: str, experiment: str, folder: Path, extra: list[str]) -> dict:
    out = folder / f"{experiment.replace('/', '_')}_{launcher}"
    command = [str(Path(sys.executable).with_name("alimb")), "-m", f"experiment={experiment}", *launcher_args(launcher),
               f"hydra.sweep.dir={out}", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    from alimb.state import find

    runs = [r for r in find(out) if r.is_complete()]
    work = sum(sum(v for k, v in r.seconds.items() if k in ("select", "train", "evaluate", "score"))
               for run in runs for r in run.records())
    share = work / processes(launcher)
    return {"jobs": len(runs), "wall_s": wall, "work_s": work, "processes": processes(launcher),
            "outside_share": 1 - share / wall, "per_job_overhead_s": (wall - share) / len(runs) * processes(launcher),
            "run_dir": str(out)}


def floor(launcher: str, experiment: str, folder: Path, jobs: int) -> dict:
    app = folder / "noop_app.py"
    app.write_text(NOOP)
    command = [sys.executable, str(app), "-m", f"experiment={experiment}", *launcher_args(launcher),
               f"hydra.sweep.dir={folder / 'noop'}"]
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return {"wall_s": wall, "per_job_s": wall / jobs * processes(launcher)}


def main() -> None:
    from alimb.devices import describe_machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launchers", default="basic,parallel")
    parser.add_argument("--experiment", default="digits_afs")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="keep the sweeps' folders here (records to compare)")
    parser.add_argument("extra", nargs="*", help="overrides for the sweep (e.g. dataset=synthetic)")
    args = parser.parse_args()
    report = {"machine": describe_machine(), "experiment": args.experiment, "launchers": {}}
    for launcher in args.launchers.split(","):
        best = None
        for _ in range(args.repeats):
            folder = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
            measured = sweep(launcher, args.experiment, folder, args.extra)
            measured["floor"] = floor(launcher, args.experiment, folder, measured["jobs"])
            measured["overhead_over_floor"] = measured["per_job_overhead_s"] / measured["floor"]["per_job_s"]
            if args.keep is not None:
                shutil.copytree(folder / Path(measured["run_dir"]).name, args.keep / Path(measured["run_dir"]).name,
                                dirs_exist_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
            if best is None or measured["wall_s"] < best["wall_s"]:
                best = measured
        report["launchers"][launcher] = best
        print(launcher, json.dumps(best), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
