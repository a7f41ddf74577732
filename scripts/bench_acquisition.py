"""Coreset and DMCS speed and memory, and a whole paper-size AL run, in one run.

    .venv/bin/python scripts/bench_acquisition.py [--pool 50000] [--dim 512] [--labeled 4000] [--picks 500]

1. coreset (k-center greedy) on pool x dim, `labeled` initial centers, `picks` picks: the greedy
   loop's time (initial centers evaluated eagerly, so the loop is its GEMVs alone) vs the
   memory-bandwidth bound (bytes the loop must read / read bandwidth measured here); the whole
   call as users run it (lazy initial distances) vs a per-pick torch.cdist implementation (the
   common one in peer libraries);
   how much a coreset call raises the peak memory, vs the pool's own size.
2. DMCS-rand for one iteration of that pool with 100 classes vs plain coreset.
3. A paper-size run: synthetic 17168 x 512, 100 classes at ir 0.74, cs_svm + dmcs_rand, 16 x 500.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from alimb.acquisition import coreset, margin, minority_sampling, random
from alimb.acquisition.minority import diverse
from alimb.devices import describe_machine


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def read_bandwidth(nbytes: int, device: torch.device, repeats: int = 10) -> float:
    """Bytes per second of a streaming read (a sum) over a buffer of `nbytes`, best of `repeats`."""
    buf = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    best = min(timed(torch.sum, buf)[1] for _ in range(repeats))
    return buf.numel() * 4 / best


def cdist_kcenter(features: torch.Tensor, candidates: np.ndarray, centers: np.ndarray, k: int, chunk: int = 512):
    """The common implementation: torch.cdist of the pool to the centers, then per pick to the new center."""
    x = features[torch.as_tensor(candidates)]
    nearest = torch.full((x.shape[0],), float("inf"))
    for s in range(0, centers.size, chunk):
        nearest = torch.minimum(nearest, torch.cdist(x, features[torch.as_tensor(centers[s:s + chunk])]).min(1).values)
    picks = []
    for _ in range(k):
        j = int(torch.argmax(nearest))
        picks.append(int(candidates[j]))
        nearest = torch.minimum(nearest, torch.cdist(x, x[j:j + 1]).squeeze(1))
    return picks


def pool_data(n: int, d: int, n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    means = rng.standard_normal((n_classes, d), dtype=np.float32) * np.float32(6 / np.sqrt(2 * d))
    x = rng.standard_normal((n, d), dtype=np.float32) + means[y]
    return x, y


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_memory_growth(fn) -> int:
    """Bytes the process's peak RSS rose above its RSS at the call (Linux: clear_refs resets the peak)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) * 1024


def paper_size_run() -> dict:
    from hydra import compose, initialize_config_dir

    from alimb.loop import run_experiment
    from alimb.run import CONFIG_DIR
    import tempfile

    overrides = [
        "dataset=synthetic", "dataset.loader.n_classes=100", "dataset.loader.n_per_class=500",
        "dataset.loader.test_per_class=100", "dataset.loader.dim=512", "dataset.loader.separation=6",
        "imbalance=paper", "scheme=cs_svm", "acquisition=dmcs_rand", "al.iterations=16", "al.per_iteration=500",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        records = run_experiment(cfg, tmp)
        seconds = time.perf_counter() - t0
    phases = {p: sum(r["seconds"][p] for r in records) for p in ("select", "train", "score")}
    return {
        "command": "alimb " + " ".join(overrides), "seconds_total": seconds, "seconds_by_phase": phases,
        "final_accuracy": records[-1]["accuracy"], "final_labeled_ir": records[-1]["labeled_ir"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--labeled", type=int, default=4000)
    parser.add_argument("--picks", type=int, default=500)
    parser.add_argument("--cdist-picks", type=int, default=500, help="picks timed for the cdist implementation")
    parser.add_argument("--skip-run", action="store_true", help="skip the paper-size AL run")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n, d = args.pool, args.dim
    x, y = pool_data(n, d, 100)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(0).choice(n, args.labeled, replace=False)] = True
    m = n - args.labeled
    report: dict = {"machine": describe_machine(), "device": str(device), "torch_threads": torch.get_num_threads(), "pool": [n, d], "labeled": args.labeled}

    # 1. coreset. The pick loop alone (one GEMV + minimum per pick) is timed with every initial
    #    center evaluated up front (no lazy evaluation): a 500-pick call minus a 1-pick call.
    import alimb.acquisition.kcenter as kc

    kw = dict(features=x, labeled_mask=mask, device=str(device))
    coreset(**kw, rng=np.random.default_rng(0), budget=1)  # warm-up
    lazy_subset = kc.LAZY_SUBSET
    kc.LAZY_SUBSET = args.labeled  # eager: the loop does nothing but its GEMVs
    _, t_one_eager = timed(coreset, **kw, rng=np.random.default_rng(0), budget=1)
    _, t_all_eager = timed(coreset, **kw, rng=np.random.default_rng(0), budget=args.picks)
    kc.LAZY_SUBSET = lazy_subset
    loop_seconds = (t_all_eager - t_one_eager) * args.picks / (args.picks - 1)
    loop_bytes = args.picks * m * (d + 2) * 4  # every pick reads the (d, m) candidates, their norms, the minima
    bandwidth = read_bandwidth(m * d * 4, device)
    bound = loop_bytes / bandwidth
    # the default (lazy) coreset as users run it
    _, t_one = timed(coreset, **kw, rng=np.random.default_rng(0), budget=1)
    sel, t_all = timed(coreset, **kw, rng=np.random.default_rng(0), budget=args.picks)
    report["coreset"] = {
        "seconds_total": t_all, "seconds_setup_and_first_pick": t_one, "seconds_picks_incl_lazy_evaluations": t_all - t_one,
        "eager_seconds_total": t_all_eager, "eager_seconds_setup": t_one_eager,
        "seconds_loop": loop_seconds, "loop_gb_read": loop_bytes / 1e9, "read_bandwidth_gb_s": bandwidth / 1e9,
        "seconds_bandwidth_bound": bound, "loop_vs_bound": loop_seconds / bound,
        "picks_incl_lazy_vs_bound": (t_all - t_one) / bound,
    }

    # the per-pick cdist implementation, on the same problem
    feats = torch.from_numpy(x)
    cand, centers = np.flatnonzero(~mask), np.flatnonzero(mask)
    k = min(args.cdist_picks, args.picks)
    _, t_cdist = timed(cdist_kcenter, feats, cand, centers, k)
    t_cdist_full = t_cdist if k == args.picks else None
    report["cdist"] = {"seconds": t_cdist, "picks": k}
    if t_cdist_full is not None:
        report["cdist"]["coreset_speedup"] = t_cdist / t_all
        report["cdist"]["eager_coreset_speedup"] = t_cdist / t_all_eager

    # peak memory
    if device.type == "cpu":
        grew = peak_memory_growth(lambda: coreset(**kw, rng=np.random.default_rng(0), budget=args.picks))
    else:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        coreset(**kw, rng=np.random.default_rng(0), budget=args.picks)
        grew = torch.cuda.max_memory_allocated() - base
    report["memory"] = {
        "pool_bytes": n * d * 4, "coreset_peak_rss_growth_bytes": grew,
        "growth_over_pool": grew / (n * d * 4),
        "pool_x_labeled_matrix_bytes": m * args.labeled * 4,
    }

    # 2. DMCS-rand, one iteration: predictions of a linear model trained on the labeled part
    from alimb.schemes.svm import LinearSVMScheme

    svm = LinearSVMScheme(class_weight="balanced")
    svm.fit_arrays(x[mask], y[mask], 100)
    scores = svm.scores(x)
    known = np.where(mask, y, -1)
    args_af = dict(scores=scores, features=x, labels=known, labeled_mask=mask, n_classes=100, budget=args.picks)
    dm, t_dmcs = timed(minority_sampling, **args_af, rng=np.random.default_rng(0), within=diverse, auxiliary=random)
    _, t_core = timed(coreset, **args_af, rng=np.random.default_rng(0))
    _, t_margin = timed(margin, **args_af, rng=np.random.default_rng(0))
    report["dmcs_rand"] = {
        "seconds": t_dmcs, "coreset_seconds": t_core, "ratio_to_coreset": t_dmcs / t_core,
        "n_quota": dm.n_quota, "n_auxiliary": dm.n_auxiliary, "margin_seconds": t_margin,
    }

    # 3. the paper-size run
    if not args.skip_run:
        report["paper_size_run"] = paper_size_run()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
