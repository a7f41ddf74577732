"""Torch CS-SVM vs scikit-learn's LinearSVC(class_weight='balanced'), in one run.

Paper-size final iteration: a CIFAR-100-like pool (100 classes x 500, made imbalanced to Table I's
17168 samples at ir 0.74), 8000 of it labeled at random, 512-d features; both solvers train on
the labeled set and score the whole pool. Reports the objective gap, accuracy and the speed-up.
`--reference liblinear-dual` takes `LinearSVC(dual=True)` (liblinear's dual coordinate descent; `LinearSVC`'s
default, `dual='auto'`, takes liblinear's primal Newton solver here, as n > d). `--reference cpu` compares the
torch solver on `--device` with the same solver on the CPU instead (the GPU check: CS-SVM on CUDA vs CPU);
`--reference newton` or `lbfgs` with that alimb solver (like for like).
`--normalize l2` trains on L2-normalised features, as runs do by default (`features.normalize=l2`); the
default (none) is the raw Gaussian features, a harder, nearly separable problem.

    .venv/bin/python scripts/bench_svm.py [--solver lbfgs|newton] [--normalize none|l2] [--threads 2]
                                          [--device cuda --reference cpu|newton|lbfgs|liblinear|liblinear-dual]
    .venv/bin/python scripts/bench_svm.py --crossover [--device cuda]

`--crossover` times both torch solvers (best of 3 cold fits, L2-normalised Gaussian classes) over problem sizes
from digits' to the paper's: where `solver=auto` switches from Newton to L-BFGS (`AutoSolver.SIZE`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from sklearn.svm import LinearSVC

from alimb.data.imbalance import Exponential, induce
from alimb.devices import describe_machine
from alimb.data.synthetic import make_synthetic
from alimb.metrics import evaluate
from alimb.pool import imbalance_ratio, minority_classes
from alimb.schemes.linear_svm import balanced_class_weights, svm_objective
from alimb.schemes.svm import AutoSolver, LinearSVMScheme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--separation", type=float, default=6.0, help="class-mean distance in noise stds (6: ~50%% acc)")
    parser.add_argument("--labeled", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--reference", choices=("liblinear", "liblinear-dual", "cpu", "newton", "lbfgs"),
                        default="liblinear", help="liblinear: scikit-learn's LinearSVC (its default solver; -dual: "
                        "dual=True); cpu: the same torch solver on the CPU; newton, lbfgs: that alimb solver on --device")
    parser.add_argument("--solver", choices=("lbfgs", "newton"), default="lbfgs", help="lbfgs: what runs use")
    parser.add_argument("--normalize", choices=("none", "l2"), default="none")
    parser.add_argument("--crossover", action="store_true", help="both solvers over problem sizes (see above)")
    parser.add_argument("--quick", action="store_true", help="with --crossover: its two smallest sizes (a smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.crossover:
        print(json.dumps({"machine": describe_machine(), "device": args.device, "threads": args.threads,
                          "auto_switches_at": AutoSolver.SIZE, "sizes": crossover(args.device, args.quick)}, indent=2))
        return

    data = make_synthetic(n_classes=100, n_per_class=500, test_per_class=100, dim=512, separation=args.separation)
    if args.normalize == "l2":
        data.train_x /= np.linalg.norm(data.train_x, axis=1, keepdims=True)
        data.test_x /= np.linalg.norm(data.test_x, axis=1, keepdims=True)
    pool = induce(data.train_y, 100, Exponential(0.740, total=17168), seed=0)
    x_pool, y_pool = data.train_x[pool], data.train_y[pool]
    labeled = np.sort(np.random.default_rng(0).choice(len(pool), args.labeled, replace=False))
    x, y = x_pool[labeled], y_pool[labeled]
    weights = balanced_class_weights(y, 100)
    minority = minority_classes(np.bincount(y_pool, minlength=100))

    def run(fit_and_score):
        t0 = time.perf_counter()
        coef, intercept, pool_scores = fit_and_score()
        seconds = time.perf_counter() - t0
        assert pool_scores.shape == (len(pool), 100)
        pred = np.argmax(data.test_x @ coef.T + intercept, axis=1)
        return {
            "seconds": seconds,
            "objective": svm_objective(coef.astype(np.float64), intercept.astype(np.float64), x, y, 1.0, weights),
            "test_accuracy": evaluate(data.test_y, pred, 100, minority)["accuracy"],
        }

    work = {}

    def torch_solver(device, solver):
        def fit_and_score():
            scheme = LinearSVMScheme(class_weight="balanced", device=device, solver=solver)
            work[solver] = scheme.fit_arrays(x, y, 100)
            scores = scheme.scores(x_pool)
            if scheme.device.type == "cuda":
                torch.cuda.synchronize()
            return scheme.coef.T, scheme.intercept, scores

        return fit_and_score

    def liblinear(name, dual):
        def fit_and_score():
            svc = LinearSVC(C=1.0, class_weight="balanced", dual=dual).fit(x, y)
            work[name] = {"iterations": int(svc.n_iter_), "max_iter": svc.max_iter}  # equal: not converged
            return svc.coef_, svc.intercept_, svc.decision_function(x_pool)

        return fit_and_score

    ours = torch_solver(args.device, args.solver)
    reference = {"liblinear": liblinear("liblinear", "auto"), "liblinear-dual": liblinear("liblinear-dual", True),
                 "cpu": torch_solver("cpu", args.solver), "newton": torch_solver(args.device, "newton"),
                 "lbfgs": torch_solver(args.device, "lbfgs")}[args.reference]
    ours()  # warm-up: first-call costs of torch (thread pools, allocator), not the solver
    result_ours, result_ref = run(ours), run(reference)
    report = {
        "machine": describe_machine(),
        "device": str(LinearSVMScheme(device=args.device).device),
        "solver": args.solver, "normalize": args.normalize,
        "reference_solver": {"cpu": f"{args.solver} on cpu"}.get(args.reference, args.reference),
        "work": work.get(args.solver),  # iterations (Newton: steps, CG steps), evaluation-equivalents
        "reference_work": work.get(args.reference),
        "problem": {
            "labeled": int(len(y)), "features": int(x.shape[1]), "classes": 100, "pool": int(len(pool)),
            "labeled_ir": round(imbalance_ratio(np.bincount(y, minlength=100)), 3),
        },
        "torch": result_ours,
        "reference": result_ref,
        "objective_relative_gap": (result_ours["objective"] - result_ref["objective"]) / result_ref["objective"],
        "accuracy_difference_points": 100 * (result_ours["test_accuracy"] - result_ref["test_accuracy"]),
        "speedup": result_ref["seconds"] / result_ours["seconds"],
    }
    print(json.dumps(report, indent=2))


def crossover(device: str, quick: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    sizes = [(400, 64, 10), (2000, 64, 10), (8000, 64, 10), (2000, 384, 10), (1000, 128, 100), (500, 512, 100),
             (8000, 384, 10), (1000, 512, 100), (4000, 128, 100), (2000, 512, 100), (8000, 512, 100)]
    for n, d, k in sizes[:2] if quick else sizes:
        y = rng.integers(0, k, n)
        x = rng.normal(size=(n, d)) + 1.5 * rng.normal(size=(k, d))[y]
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        weights = balanced_class_weights(y, k)
        seconds = {}
        for solver in ("newton", "lbfgs"):
            scheme = LinearSVMScheme(class_weight="balanced", device=device, solver=solver, warm_start=False)
            scheme.fit_arrays(x, y, k)  # warm-up
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                scheme.fit_arrays(x, y, k)
                times.append(time.perf_counter() - t0)
            seconds[solver] = min(times)
        rows.append({"n": n, "d": d, "classes": k, "multiply_adds_per_product": n * (d + 1) * k,
                     "newton_ms": round(1000 * seconds["newton"], 1), "lbfgs_ms": round(1000 * seconds["lbfgs"], 1),
                     "lbfgs_over_newton": round(seconds["lbfgs"] / seconds["newton"], 2)})
        print(rows[-1], file=sys.stderr, flush=True)  # progress; the report is stdout's JSON
    return rows


if __name__ == "__main__":
    main()
