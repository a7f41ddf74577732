"""Every GPU path in one command: correctness on CUDA vs CPU, alimb runs on CUDA, and the benchmarks as ratios.

    bash scripts/gpu_check.sh                  # on a GPU machine (make gpu-check); <= 8 min on one H100
    bash scripts/gpu_check.sh --cpu --quick    # the same checks on CPU at small sizes (the test suite runs it)

Writes OUT/gpu_check.json (machine-readable, rewritten after every check, so a run cut short keeps
what it measured) and OUT/gpu_check.txt (one line per check). Exit status 1 when a check fails.
On the GPU the comparisons are CUDA vs CPU; with --cpu they compare the CPU path with an
independent one (k-center and DMCS: lazy vs plain; CS-SVM: torch vs liblinear).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from functools import partial
from pathlib import Path

import numpy as np
import torch

import alimb  # noqa: F401 - registers torchvision's op schemas before anything imports torchvision
from alimb.acquisition import Context, coreset, kcenter, minority_sampling
from alimb.acquisition.uncertainty import random as random_af
from alimb.devices import describe_machine
from alimb.state import RunDir
from alimb.schemes.linear_svm import balanced_class_weights, svm_objective
from alimb.schemes.svm import LinearSVMScheme

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {  # benchmark ratios and their targets (issue #13)
    "features_fraction_of_bound": (">=", 0.70),
    "finetune_fraction_of_bound": (">=", 0.80),
    "coreset_loop_vs_bandwidth_bound": ("<=", 1.50),
}


class Check:
    """Runs named checks, keeps their results, rewrites the results file after each one."""

    def __init__(self, out: Path, mode: dict):
        self.out, self.results = out, {"machine": describe_machine(), "mode": mode, "checks": {}, "benchmarks": {}}
        out.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, fn, section: str = "checks") -> None:
        t0 = time.perf_counter()
        try:
            detail = fn()
            ok = bool(detail.pop("ok", True))
        except Exception as err:  # noqa: BLE001 - a failing check is a result, not the end of the run
            ok, detail = False, {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
        self.results[section][name] = {"ok": ok, "seconds": round(time.perf_counter() - t0, 2), **detail}
        print(f"{'ok  ' if ok else 'FAIL'} {name} ({time.perf_counter() - t0:.1f} s)", flush=True)
        self.write()

    def write(self) -> None:
        (self.out / "gpu_check.json").write_text(json.dumps(self.results, indent=2, default=str) + "\n")

    def summary(self) -> bool:
        lines = [f"machine: {json.dumps(self.results['machine'])}", f"mode: {json.dumps(self.results['mode'])}"]
        ok = True
        for section in ("checks", "benchmarks"):
            for name, r in self.results[section].items():
                ok &= r["ok"]
                shown = {k: v for k, v in r.items() if k not in ("ok", "traceback", "report", "stderr_tail")}
                lines.append(f"{'ok  ' if r['ok'] else 'FAIL'} {section[:-1]} {name}: {json.dumps(shown, default=str)}")
        (self.out / "gpu_check.txt").write_text("\n".join(lines) + "\n")
        return ok


# ---- 1. correctness on the device vs a second path ----
@contextlib.contextmanager
def lazy_loop_forced():
    """k-center's lazy loop even where kcenter_greedy takes the plain one (small problems, the quick sizes)."""
    saved, kcenter.PLAIN_PAIRS = kcenter.PLAIN_PAIRS, 0
    try:
        yield
    finally:
        kcenter.PLAIN_PAIRS = saved


def kcenter_picks(device: str, quick: bool, eager: bool) -> np.ndarray:
    n, d, labeled, k = (3000, 64, 300, 60) if quick else (50_000, 512, 4000, 500)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    centers = rng.choice(n, labeled, replace=False)
    candidates = np.setdiff1d(np.arange(n), centers)
    return kcenter.kcenter_greedy(x, candidates, centers, k, np.random.default_rng(1), device, lazy=not eager)


def check_kcenter(device: str, quick: bool) -> dict:
    with lazy_loop_forced():
        picks = kcenter_picks(device, quick, eager=False)
    reference = kcenter_picks("cpu", quick, eager=device == "cpu")
    same = picks == reference
    return {"ok": bool(same.all()), "picks": int(picks.size), "against": "cpu" if device != "cpu" else "cpu plain",
            "first_difference": None if same.all() else int(np.argmin(same))}


def svm_problem(quick: bool):
    n, d, c = (600, 32, 10) if quick else (8000, 512, 100)
    rng = np.random.default_rng(0)
    means = rng.standard_normal((c, d)).astype(np.float32) * 0.6
    y = rng.integers(0, c, n)
    x = rng.standard_normal((n, d)).astype(np.float32) + means[y]
    return x / np.linalg.norm(x, axis=1, keepdims=True), y, c  # L2-normalised, as runs train


def check_cs_svm(device: str, quick: bool) -> dict:
    """Both torch solvers (L-BFGS, what runs use, and Newton) on the device against the same solver on the CPU
    (against liblinear with --cpu)."""
    x, y, c = svm_problem(quick)
    weights = balanced_class_weights(y, c)
    results = {}
    for solver in ("lbfgs", "newton"):
        objective = {}
        for name, used, dev in (("device", solver, device), ("reference", "liblinear" if device == "cpu" else solver, "cpu")):
            scheme = LinearSVMScheme(class_weight="balanced", solver=used, device=dev)
            scheme.fit_arrays(x, y, c)
            objective[name] = svm_objective(scheme.coef.T.astype(np.float64), scheme.intercept.astype(np.float64), x, y,
                                            1.0, weights)
        gap = (objective["device"] - objective["reference"]) / objective["reference"]
        results[solver] = {"ok": bool(gap <= 1e-4), "objective": objective["device"],
                           "reference_objective": objective["reference"], "relative_gap": gap}
    return {"ok": all(r["ok"] for r in results.values()), **results,
            "against": "liblinear" if device == "cpu" else "the same solver on cpu"}


def check_dmcs(device: str, quick: bool) -> dict:
    n, d, c, labeled, budget = (2000, 32, 10, 200, 100) if quick else (17_000, 512, 100, 4000, 500)
    rng = np.random.default_rng(0)
    y = rng.integers(0, c, n)
    features = rng.standard_normal((n, d)).astype(np.float32) + y[:, None] * 0.1
    scores = rng.standard_normal((n, c)) + 2 * np.eye(c)[y]
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, labeled, replace=False)] = True

    def run(dev: str) -> np.ndarray:
        ctx = Context(scores=scores, features=features, labels=np.where(mask, y, -1), labeled_mask=mask, n_classes=c,
                      budget=budget, rng=np.random.default_rng(2))
        sel = minority_sampling(ctx, within=partial(coreset, device=dev), auxiliary=random_af)
        return sel.indices

    picks = run(device)  # as runs pick: each class's problem is small, so the plain loop
    with lazy_loop_forced():
        reference = run("cpu")
    return {"ok": bool(np.array_equal(picks, reference)), "picks": int(picks.size), "against": "cpu lazy loop"}


# ---- 2. alimb runs ----
def alimb(out: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "alimb.run", *args], cwd=out, capture_output=True, text=True,
                          timeout=timeout, env=env)


def records(run_dir: Path) -> list[dict]:
    """The run's records less their timings (what must be identical across a resume)."""
    return [r.without_timings().to_dict() for r in RunDir(run_dir).records()]


def run_check(out: Path, name: str, *args: str) -> dict:
    run_dir = out / "runs" / name
    proc = alimb(out, *args, f"hydra.run.dir={run_dir}", "overwrite=true")
    done = (run_dir / "summary.json").exists()
    detail = {"ok": proc.returncode == 0 and done, "command": "alimb " + " ".join(args)}
    if done:
        summary = json.loads((run_dir / "summary.json").read_text())
        detail.update(final_accuracy=summary["final_accuracy"], auc=summary["auc"],
                      switch_iteration=summary.get("switch_iteration"),
                      train_seconds=sum(r.seconds["train"] for r in RunDir(run_dir).records()))
    else:
        detail["stderr_tail"] = proc.stderr[-1500:]
    return detail


def sweep_check(out: Path, *args: str) -> dict:
    sweep_dir = out / "runs" / "sweep"
    proc = alimb(out, "-m", *args, f"hydra.sweep.dir={sweep_dir}", "overwrite=true")
    done = len(list(sweep_dir.rglob("summary.json")))
    return {"ok": proc.returncode == 0 and done == 2, "jobs_completed": done, "stderr_tail": proc.stderr[-800:]}


def resume_check(out: Path, name: str, *args: str) -> dict:
    """Kill -9 after 3 completed iterations, run the same command again; compare with an uninterrupted run."""
    reference, killed = out / "runs" / f"{name}_reference", out / "runs" / f"{name}_killed"
    for d in (reference, killed):
        subprocess.run(["rm", "-rf", str(d)])
    ref = alimb(out, *args, f"hydra.run.dir={reference}")
    if ref.returncode != 0:
        return {"ok": False, "stderr_tail": ref.stderr[-1500:]}
    command = [sys.executable, "-m", "alimb.run", *args, f"hydra.run.dir={killed}"]
    proc = subprocess.Popen(command, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "WANDB_MODE": "disabled"})
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if (killed / "records.jsonl").exists() and (killed / "records.jsonl").read_text().count("\n") >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cut_after = len(records(killed)) if (killed / "records.jsonl").exists() else 0
    again = alimb(out, *args, f"hydra.run.dir={killed}")
    if again.returncode != 0:
        return {"ok": False, "killed_after": cut_after, "stderr_tail": again.stderr[-1500:]}
    a, b = records(reference), records(killed)
    differing = sorted({k for ra, rb in zip(a, b) for k in ra if ra.get(k) != rb.get(k)})
    same_picks = np.array_equal(np.load(reference / "labeled_round.npy"), np.load(killed / "labeled_round.npy"))
    return {"ok": same_picks and not differing and len(a) == len(b), "killed_after_iteration": cut_after,
            "identical_selections": bool(same_picks), "differing_record_fields": differing}


# ---- 3. benchmarks ----
def bench(out: Path, script: str, *args: str, timeout: float = 600) -> dict:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], cwd=out, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} exited {proc.returncode}: {proc.stderr[-1500:]}")
    return json.loads(proc.stdout[proc.stdout.index("\n{") + 1 if not proc.stdout.startswith("{") else 0:])


def against_target(name: str, value: float) -> dict:
    op, target = TARGETS[name]
    met = value >= target if op == ">=" else value <= target
    return {"value": value, "target": f"{op} {target}", "target_met": bool(met)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (no GPU needed)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of every path")
    parser.add_argument("--out", type=Path, default=Path("gpu_check_out"))
    parser.add_argument("--skip-benchmarks", action="store_true")
    args = parser.parse_args()
    device = "cpu" if args.cpu else "cuda"
    out = args.out.resolve()
    check = Check(out, {"device": device, "quick": args.quick})
    if device == "cuda" and not torch.cuda.is_available():
        check.results["error"] = "no CUDA device: run with --cpu, or on a machine with a GPU"
        check.write()
        sys.exit("gpu_check: no CUDA device here; use --cpu --quick for the CPU smoke test")
    q = args.quick
    precision = "32-true" if device == "cpu" else "bf16-mixed"
    dev = f"scheme.device={device}"

    check("kcenter_picks_identical", lambda: check_kcenter(device, q))
    check("cs_svm_objective_within_1e-4", lambda: check_cs_svm(device, q))
    check("dmcs_picks_identical", lambda: check_dmcs(device, q))

    synthetic = (["dataset=synthetic", "dataset.loader.n_classes=10", "dataset.loader.n_per_class=60",
                  "dataset.loader.test_per_class=10", "dataset.loader.dim=16", "al.iterations=4", "al.per_iteration=20"] if q else
                 ["dataset=synthetic", "imbalance=paper", "dataset.loader.n_classes=100", "dataset.loader.n_per_class=500",
                  "dataset.loader.test_per_class=100", "dataset.loader.dim=512", "al.iterations=16", "al.per_iteration=500"])
    ft = ["dataset=digits", "backbone.weights=null", f"trainer.precision={precision}", "trainer.enable_progress_bar=false"]
    ft_size = ["al.iterations=2", "scheme.epochs=1"] if q else ["al.iterations=4", "scheme.epochs=10"]
    check("run_synthetic_cs_svm", lambda: run_check(out, "synthetic_cs_svm", *synthetic, "scheme=cs_svm", dev,
                                                    "acquisition=dmcs_rand"))  # DMCS's k-center: device auto
    check("run_digits_ft_th", lambda: run_check(out, "digits_ft_th", *ft, "scheme=ft_th", *ft_size))
    check("run_digits_switch", lambda: run_check(out, "digits_switch", *ft, "scheme=switch", "al.iterations=3",
                                                 f"scheme.schemes.ft_th.epochs={1 if q else 5}", f"scheme.schemes.cs_svm.device={device}"))
    check("sweep_two_jobs", lambda: sweep_check(out, "seed=0,1", *synthetic[:5], "al.iterations=3", "al.per_iteration=20", dev))
    slower = ["dataset=synthetic", "dataset.loader.n_classes=30", "dataset.loader.n_per_class=300", "dataset.loader.dim=128",
              "al.iterations=8", "al.per_iteration=100", "acquisition=dmcs_marg", dev]
    check("resume_after_kill_cs_svm", lambda: resume_check(out, "resume_cs_svm", *slower))
    check("resume_after_kill_ft_th_deterministic", lambda: resume_check(
        out, "resume_ft_th", *ft, "scheme=ft_th", "trainer.deterministic=true", f"al.iterations={4 if q else 5}",
        f"scheme.epochs={1 if q else 3}"))
    if device == "cuda":  # ddp runs as ddp_spawn: the ranks live inside each fit (CUDA already initialised by then)
        gpus = min(2, torch.cuda.device_count())
        check(f"ddp_spawn_{gpus}_gpu", lambda: run_check(out, "ddp_spawn", *ft, "scheme=ft_th", "trainer.strategy=ddp_spawn",
                                                          f"trainer.devices={gpus}", "al.iterations=2", "scheme.epochs=2"))
    if not args.skip_benchmarks:
        def features():
            report = bench(out, "bench_features.py", "--n", "32" if q else "2048", "--workers", "2" if q else "8")
            return {**against_target("features_fraction_of_bound", report["cifar_32px"]["fraction_of_bound"]),
                    "jpeg_fraction_of_bound": report["jpeg_256px_to_224"]["fraction_of_bound"], "report": report}

        def finetune():
            size = ["--size", "32", "--n", "128", "--epochs", "1"] if q else ["--size", "224", "--n", "1024", "--epochs", "2",
                                                                              "--paper-iteration"]
            report = bench(out, "bench_finetune.py", *size)
            return {**against_target("finetune_fraction_of_bound", report["fraction_of_bound"]),
                    "paper_iteration_seconds": report.get("paper_iteration_seconds"), "report": report}

        def acquisition():
            size = ["--pool", "5000", "--dim", "64", "--labeled", "500", "--picks", "100"] if q else []
            report = bench(out, "bench_acquisition.py", *size, "--skip-run")
            return {**against_target("coreset_loop_vs_bandwidth_bound", report["coreset"]["loop_vs_bound"]),
                    "cdist_speedup": report["cdist"].get("coreset_speedup"), "report": report}

        def svm():
            report = bench(out, "bench_svm.py", "--device", device, "--reference", "cpu", *(["--labeled", "1000"] if q else []))
            # where Newton and L-BFGS cross on this device: solver=auto's SIZE was measured on a CPU
            sizes = bench(out, "bench_svm.py", "--crossover", "--device", device, *(["--quick"] if q else []))["sizes"]
            return {"speedup_vs_cpu": report["speedup"], "objective_relative_gap": report["objective_relative_gap"],
                    "lbfgs_over_newton_by_size": {r["multiply_adds_per_product"]: r["lbfgs_over_newton"] for r in sizes},
                    "report": {**report, "crossover": sizes}}

        for name, fn in (("features", features), ("finetune", finetune), ("coreset", acquisition), ("cs_svm", svm)):
            check(name, fn, section="benchmarks")
    ok = check.summary()
    print((out / "gpu_check.txt").read_text())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
