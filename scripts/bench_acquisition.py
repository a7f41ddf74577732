"""Acquisition speed and memory, each measured against a reference in the same run.

    .venv/bin/python scripts/bench_acquisition.py [--pool 50000] [--dim 512] [--labeled 4000] [--picks 500]
    .venv/bin/python scripts/bench_acquisition.py --every-af        # every conf/acquisition option, paper size
    .venv/bin/python scripts/bench_acquisition.py --every-af --afs dropquery,alfamix --labeled 8000 --repeats 3
    .venv/bin/python scripts/bench_acquisition.py --imagenet        # 1.28 M x 512, 1000 classes, 10 000 picks
    .venv/bin/python scripts/bench_acquisition.py --small-kcenter   # the lazy vs the plain loop on small problems

Default (k-center, what coreset and DMCS run on):
1. coreset on pool x dim, `labeled` initial centers, `picks` picks: the call as users run it (lazy picks)
   vs the plain algorithm (every pick one GEMV over all candidates; its loop vs the memory-bandwidth
   bound: bytes it must read / read bandwidth measured here) vs a per-pick torch.cdist implementation
   (the common one in peer libraries); how much a coreset call raises the peak memory, vs the pool's size.
2. DMCS-rand for one iteration of that pool with 100 classes vs plain coreset.
3. A paper-size run: synthetic 17168 x 512, 100 classes at ir 0.74, cs_svm + dmcs_rand, 16 x 500.

--every-af: each option of conf/acquisition, built from its config as `alimb acquisition=NAME` builds it,
on the paper's size (17 169 x 512, 100 classes, `--labeled` (4 000) labeled, CS-SVM scores and head, 500 picks);
time as a ratio to coreset's in the same run (coreset first; with `--repeats R` every AF, coreset included, runs R
times in turn and keeps its best time, on a shared machine).

--imagenet: a synthetic pool of 1.28 M x 512 with 1 000 classes, 10 000 labeled, scores (none with `--no-scores`,
for AFs that do not read them) and head of a nearest-class-mean linear classifier of the labeled part; one selection of 10 000 by random, margin,
coreset, dmcs_rand, badge, base and galaxy: time and peak memory growth vs the features' size; coreset's
10 000 picks vs reading every candidate at every pick (the plain loop's per-pick work, one GEMV over the
feature-major candidates and a minimum, timed over `--plain-picks` picks, times 10 000).

--afs wrappers (with --every-af or --imagenet): PCB over margin and AnchorAL around coreset (and margin) against
coreset in the same run (WRAPPERS, WRAPPERS_IMAGENET below); any AF can be given as NAME:OVERRIDE:OVERRIDE.

--small-kcenter: k-center's lazy loop vs its plain one (the same picks) on problems from DMCS's per-class size
(170 candidates, 80 centers, 6 picks) to coreset's on a pool of thousands, 512-d unit vectors; what sets
kcenter.PLAIN_PAIRS, the candidates x (centers + picks) up to which calls take the plain loop.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from functools import partial

from alimb.acquisition import Context, Oracle, coreset, margin, minority_sampling, random
from alimb.acquisition.kcenter import kcenter_greedy
from alimb.devices import describe_machine, peak_memory_growth


def context(seed: int = 0, **inputs) -> Context:
    """The AF context of one selection, with a fresh generator."""
    return Context(rng=np.random.default_rng(seed), **inputs)


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
    phases = {p: sum(r["seconds"][p] for r in records) for p in ("select", "train", "evaluate", "score")}
    return {
        "command": "alimb " + " ".join(overrides), "seconds_total": seconds, "seconds_by_phase": phases,
        "final_accuracy": records[-1]["accuracy"], "final_labeled_ir": records[-1]["labeled_ir"],
    }


def build_af(spec: str):
    """The AF as `alimb acquisition=NAME [OVERRIDE ...]` builds it, from `NAME` or `NAME:OVERRIDE:OVERRIDE`
    (`pcb:acquisition.base=margin`); its `device: auto` finds CUDA where there is one."""
    from hydra import compose, initialize_config_dir

    from alimb.cli import rewrite_parts
    from alimb.config import build, expand_parts
    from alimb.run import CONFIG_DIR

    name, *overrides = spec.split(":")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=rewrite_parts([f"acquisition={name}", *overrides]))
        expand_parts(cfg)
    return build(cfg.acquisition)


def without_timings(info: dict) -> dict:
    return {k: v for k, v in info.items() if not k.endswith("_seconds")}


def every_af(only: list[str] | None = None, labeled: int = 4000, repeats: int = 1) -> dict:
    """Every conf/acquisition option on the paper's size; time vs coreset's (best of `repeats`, taken in turn)."""
    from alimb.run import CONFIG_DIR
    from alimb.schemes.svm import LinearSVMScheme

    n, d, c, picks = 17_169, 512, 100, 500
    x, y = pool_data(n, d, c)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(0).choice(n, labeled, replace=False)] = True
    svm = LinearSVMScheme(class_weight="balanced")
    svm.fit_arrays(x[mask], y[mask], c)
    inputs = dict(scores=svm.scores(x), features=x, fg=x, head=svm.head(), labels=np.where(mask, y, -1),
                  labeled_mask=mask, n_classes=c, budget=picks)
    names = only or sorted(p.stem for p in (Path(CONFIG_DIR) / "acquisition").glob("*.yaml"))
    times = {}
    order = ["coreset", *[m for m in names if m != "coreset"]]
    afs = {name: build_af(name) for name in order}
    for _ in range(repeats):
        for name in order:
            sel, seconds = timed(afs[name], context(**inputs, oracle=Oracle(y)))
            if name not in times or seconds < times[name]["seconds"]:
                times[name] = {"seconds": seconds, **({"info": sel.info} if sel.info else {})}
        print(name, json.dumps(times[name], default=str), flush=True)
    for name in times:
        times[name]["ratio_to_coreset"] = times[name]["seconds"] / times["coreset"]["seconds"]
    return {"pool": [n, d], "classes": c, "labeled": labeled, "picks": picks, "afs": times}


def nearest_mean_head(x: np.ndarray, y: np.ndarray, mask: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """A linear classifier from the labeled part: class means as weights, -||mean||²/2 as biases."""
    sums = np.zeros((c, x.shape[1]), dtype=np.float64)
    np.add.at(sums, y[mask], x[mask])
    means = (sums / np.maximum(np.bincount(y[mask], minlength=c), 1)[:, None]).astype(np.float32)
    return means.T.copy(), -0.5 * (means * means).sum(axis=1)


def imagenet(device: torch.device, plain_picks: int, names: list[str], n: int = 1_281_167, labeled: int = 10_000,
             picks: int = 10_000, with_scores: bool = True) -> dict:
    d, c = 512, 1000
    x, y = pool_data(n, d, c)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(0).choice(n, labeled, replace=False)] = True
    head = nearest_mean_head(x, y, mask, c)
    scores = np.empty((n, c) if with_scores else (0, c), dtype=np.float32)
    for s in range(0, n if with_scores else 0, 65536):
        scores[s:s + 65536] = x[s:s + 65536] @ head[0] + head[1]
    if not with_scores:
        scores = None  # AFs that read only the features and the head; 5.12 GB less on a shared machine
    inputs = dict(scores=scores, features=x, fg=x, head=head, labels=np.where(mask, y, -1), labeled_mask=mask,
                  n_classes=c, budget=picks)
    report: dict = {"pool": [n, d], "classes": c, "labeled": labeled, "picks": picks,
                    "features_bytes": x.nbytes, "scores_bytes": 0 if scores is None else scores.nbytes, "afs": {}}
    for name in names:
        af = build_af(name)
        box = {}

        def call():
            box["sel"], box["seconds"] = timed(af, context(**inputs, oracle=Oracle(y)))

        grew = peak_memory_growth(call)
        report["afs"][name] = {"seconds": box["seconds"], "peak_rss_growth_bytes": grew,
                               "growth_over_features": grew / x.nbytes,
                               **({"info": box["sel"].info} if box["sel"].info else {})}
        print(name, json.dumps(report["afs"][name], default=str), flush=True)
    # k-center: the plain loop's per-pick work (one GEMV over every candidate, feature-major, and a minimum),
    # timed on its own over `plain_picks` picks
    cand = np.flatnonzero(~mask)
    xc = torch.from_numpy(x)[torch.as_tensor(cand)].to(device).T.contiguous()  # (d, m)
    del inputs, scores
    norms = (xc * xc).sum(dim=0)
    nearest = torch.full_like(norms, float("inf"))
    t0 = time.perf_counter()
    for j in range(plain_picks):
        distance = torch.addmv(norms, xc.T, xc[:, j], alpha=-2.0).add_(norms[j])
        torch.minimum(nearest, distance, out=nearest)
    per_pick = (time.perf_counter() - t0) / plain_picks
    report["kcenter_full_read"] = {"seconds_per_pick": per_pick, "seconds_for_all_picks": per_pick * picks,
                                   "measured_picks": plain_picks, "gb_read_per_pick": xc.numel() * 4 / 1e9}
    if "coreset" in report["afs"]:
        report["kcenter_full_read"]["coreset_over_full_read"] = report["afs"]["coreset"]["seconds"] / (per_pick * picks)
    return report


DEFAULT_AFS = "random,margin,coreset,dmcs_rand,badge,base,galaxy"
# the wrapper AFs against coreset (--every-af --afs WRAPPERS; --imagenet --afs WRAPPERS_IMAGENET): PCB over margin,
# AnchorAL around coreset (a slow AF) and margin; at ImageNet size the subpool is 10x the budget of 10 000 (at the
# authors' 10 000 it would be the budget itself), with the authors' 10 anchors per class and with 2
WRAPPERS = "coreset,pcb:acquisition.base=margin,anchoral:acquisition.inner=coreset,anchoral:acquisition.inner=margin"
WRAPPERS_IMAGENET = ("coreset,pcb:acquisition.base=margin,"
                     "anchoral:acquisition.inner=coreset:acquisition.subpool_size=100000,"
                     "anchoral:acquisition.inner=coreset:acquisition.subpool_size=100000:acquisition.num_anchors=2")
SMALL_KCENTER = [(170, 80, 6), (600, 400, 25), (1000, 100, 100), (2000, 500, 100), (8000, 200, 20), (4000, 1000, 500),
                 (16000, 4000, 500)]  # (candidates, centers, picks)


def small_kcenter(repeats: int = 3) -> list[dict]:
    """Best-of-`repeats` seconds of the lazy and the plain loop per size, forced either way, and their picks."""
    import alimb.acquisition.kcenter as kc

    rng = np.random.default_rng(0)
    features = rng.standard_normal((40_000, 512), dtype=np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    rows, saved = [], kc.PLAIN_PAIRS
    try:
        for m, c, k in SMALL_KCENTER:
            order = rng.permutation(len(features))
            cand, cent = order[:m], order[m:m + c]
            kc.PLAIN_PAIRS = 0  # the lazy loop at any size
            lazy = [timed(kcenter_greedy, features, cand, cent, k, np.random.default_rng(1)) for _ in range(repeats)]
            plain = [timed(kcenter_greedy, features, cand, cent, k, np.random.default_rng(1), lazy=False)
                     for _ in range(repeats)]
            t_lazy, t_plain = min(t for _, t in lazy), min(t for _, t in plain)
            rows.append({"candidates": m, "centers": c, "picks": k, "pairs": m * (c + k), "lazy_seconds": t_lazy,
                         "plain_seconds": t_plain, "plain_speedup": t_lazy / t_plain,
                         "same_picks": bool(np.array_equal(lazy[0][0], plain[0][0]))})
    finally:
        kc.PLAIN_PAIRS = saved
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--labeled", type=int, default=4000)
    parser.add_argument("--picks", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=1, help="--every-af: best of this many calls of each AF")
    parser.add_argument("--cdist-picks", type=int, default=500, help="picks timed for the cdist implementation")
    parser.add_argument("--skip-run", action="store_true", help="skip the paper-size AL run")
    parser.add_argument("--every-af", action="store_true", help="every conf/acquisition option at the paper's size")
    parser.add_argument("--imagenet", action="store_true", help="the ImageNet-size selections")
    parser.add_argument("--afs", default=DEFAULT_AFS, help="the AFs to run (--imagenet; --every-af: all by default), "
                        "each NAME or NAME:OVERRIDE:... (pcb:acquisition.base=margin); 'wrappers': PCB and AnchorAL "
                        "against coreset")
    parser.add_argument("--plain-picks", type=int, default=50, help="--imagenet: picks timed for the plain loop")
    parser.add_argument("--no-scores", action="store_true", help="--imagenet: no score matrix (for AFs that read "
                        "only features and head: coreset, dropquery, alfamix), 5.12 GB less in the process")
    parser.add_argument("--imagenet-size", type=int, nargs=3, default=[1_281_167, 10_000, 10_000],
                        metavar=("POOL", "LABELED", "PICKS"), help="--imagenet: a smaller pool for a quick try")
    parser.add_argument("--small-kcenter", action="store_true", help="k-center's lazy vs plain loop on small problems")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report: dict = {"machine": describe_machine(), "device": str(device)}
    if args.small_kcenter:
        report["small_kcenter"] = small_kcenter()
        print(json.dumps(report, indent=2, default=str))
        return
    if args.afs == "wrappers":
        args.afs = WRAPPERS_IMAGENET if args.imagenet else WRAPPERS
    if args.every_af:
        report["every_af"] = every_af(args.afs.split(",") if args.afs != DEFAULT_AFS else None, args.labeled,
                                      args.repeats)
        print(json.dumps(report, indent=2, default=str))
        return
    if args.imagenet:
        report["imagenet"] = imagenet(device, args.plain_picks, args.afs.split(","), *args.imagenet_size,
                                      with_scores=not args.no_scores)
        print(json.dumps(report, indent=2, default=str))
        return
    n, d = args.pool, args.dim
    x, y = pool_data(n, d, 100)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(0).choice(n, args.labeled, replace=False)] = True
    m = n - args.labeled
    report.update(pool=[n, d], labeled=args.labeled)
    cand, centers = np.flatnonzero(~mask), np.flatnonzero(mask)

    # 1. coreset as users run it (lazy), and the plain algorithm; the plain pick loop alone is a
    #    `picks`-pick call minus a 1-pick call
    kw = dict(features=x, labeled_mask=mask, labels=np.where(mask, y, -1), n_classes=100)
    run_coreset = partial(coreset, device=str(device))
    run_coreset(context(**kw, budget=1))  # warm-up
    plain = dict(lazy=False)
    _, t_one_plain = timed(kcenter_greedy, x, cand, centers, 1, np.random.default_rng(0), device, **plain)
    plain_picks, t_all_plain = timed(kcenter_greedy, x, cand, centers, args.picks, np.random.default_rng(0), device,
                                     **plain)
    loop_seconds = (t_all_plain - t_one_plain) * args.picks / (args.picks - 1)
    loop_bytes = args.picks * m * (d + 2) * 4  # every pick reads the (d, m) candidates, their norms, the minima
    bandwidth = read_bandwidth(m * d * 4, device)
    bound = loop_bytes / bandwidth
    sel, t_all = timed(run_coreset, context(**kw, budget=args.picks))
    lazy_picks = kcenter_greedy(x, cand, centers, args.picks, np.random.default_rng(0), device)
    report["coreset"] = {
        "seconds_total": t_all, "plain_seconds_total": t_all_plain, "plain_seconds_setup": t_one_plain,
        "lazy_speedup_over_plain": t_all_plain / t_all,
        "same_picks_as_plain": bool(np.array_equal(lazy_picks, plain_picks)),
        "seconds_loop": loop_seconds, "loop_gb_read": loop_bytes / 1e9, "read_bandwidth_gb_s": bandwidth / 1e9,
        "seconds_bandwidth_bound": bound, "loop_vs_bound": loop_seconds / bound,
        "lazy_total_vs_plain_loop_bound": t_all / bound,
    }

    # the per-pick cdist implementation, on the same problem
    feats = torch.from_numpy(x)
    k = min(args.cdist_picks, args.picks)
    _, t_cdist = timed(cdist_kcenter, feats, cand, centers, k)
    report["cdist"] = {"seconds": t_cdist, "picks": k}
    if k == args.picks:
        report["cdist"]["coreset_speedup"] = t_cdist / t_all
        report["cdist"]["plain_coreset_speedup"] = t_cdist / t_all_plain

    # peak memory
    if device.type == "cpu":
        grew = peak_memory_growth(lambda: run_coreset(context(**kw, budget=args.picks)))
    else:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run_coreset(context(**kw, budget=args.picks))
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
    dm, t_dmcs = timed(minority_sampling, context(**args_af), within=coreset, auxiliary=random)
    _, t_core = timed(coreset, context(**args_af))
    _, t_margin = timed(margin, context(**args_af))
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
