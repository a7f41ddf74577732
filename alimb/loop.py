"""run_experiment(cfg): the active-learning loop, top to bottom.

    check the config -> plan the run directory (reads only) -> load and check the data -> begin (the first write)
    -> per iteration: select (the AF; iteration 0 random), label, fit, evaluate, score the pool, record and save
    -> summary
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from alimb.acquisition import Context, Oracle, Selection
from alimb.acquisition import random as random_af
from alimb.acquisition.base import reveals_within_batch
from alimb.config import build, expand_parts
from alimb.data.dataset import check_labels, check_test
from alimb.data.imbalance import induce
from alimb.errors import UserError
from alimb.features import featurize
from alimb.identity import labels as run_labels
from alimb.identity import resolved
from alimb.metrics import area_under_curve, evaluate
from alimb.normalize import normalize
from alimb.pool import Pool, imbalance_ratio, minority_classes
from alimb.records import Record
from alimb.schema import validate
from alimb.schemes import Inputs, Scheme
from alimb.state import Plan, RunDir

log = logging.getLogger(__name__)


@dataclass
class Data:
    """What a run works on: the pool (its labels are the simulated oracle's), the inputs schemes and AFs see, the
    test set, the pool's indices into the training split, and a fingerprint of all of it (content, not location)."""

    pool: Pool
    pool_in: Inputs
    test_in: Inputs
    test_y: np.ndarray
    keep: np.ndarray
    fingerprint: str


def check_al(al: DictConfig, pool_size: int) -> tuple[int, int]:
    """(iterations, per_iteration), after checking the budget fits in the pool (the schema checked they are positive)."""
    iterations, per_iteration = al.iterations, al.per_iteration
    if iterations * per_iteration > pool_size:
        raise UserError(
            f"budget {iterations} x {per_iteration} = {iterations * per_iteration} exceeds the pool of {pool_size} "
            "samples; lower al.iterations or al.per_iteration"
        )
    return iterations, per_iteration


def check_selection(selection: Selection, labeled_mask: np.ndarray, budget: int, oracle: Oracle) -> None:
    """The invariants every AF must keep."""
    idx = selection.indices
    assert idx.size == budget, f"AF selected {idx.size} samples, the budget is {budget}"
    assert np.unique(idx).size == idx.size, "AF selected a sample twice"
    assert not labeled_mask[idx].any(), "AF selected an already labeled sample"
    assert np.isin(oracle.revealed, idx).all(), "AF asked the oracle about a sample it did not select"


def fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of the arrays' shapes, types and bytes."""
    digest = hashlib.blake2b(digest_size=12)
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.shape}{a.dtype}".encode())
        digest.update(a.data)
    return digest.hexdigest()


def load_data(cfg: DictConfig, needs_images: bool) -> Data:
    """The config's data. The labels, the imbalance and the budget are checked before any feature is extracted, the
    extracted splits again (images that could not be read may have emptied a class or the test set)."""
    raw = build(cfg.dataset.loader)
    check_labels(*raw.labels(), raw.n_classes)
    profile = build(cfg.imbalance)
    labels = raw.labels()[0]
    planned = induce(labels, raw.n_classes, profile, profile.seed)
    check_al(cfg.al, planned.size)
    data = featurize(raw, build(cfg.backbone), cfg.cache_dir, images=needs_images)
    same = np.array_equal(data.train_y, labels)  # unless extraction dropped images, the pool planned is the pool
    if not same:
        lost = np.setdiff1d(np.unique(labels), data.train_y)
        if lost.size:
            raise UserError(f"no training image of class {data.class_names[lost[0]]!r} could be read ({lost.size} "
                            "class(es) lost every image); fix or replace its images, or remove the class")
        check_labels(data.train_y, data.test_y, data.n_classes)
    check_test(data.test_y)
    keep = planned if same else induce(data.train_y, data.n_classes, profile, profile.seed)  # into the training split
    check_al(cfg.al, keep.size)
    pool = Pool(data.train_y[keep], data.n_classes)
    pool_x, test_x = normalize(data.train_x[keep], data.test_x, cfg.features.normalize)
    pool_in = Inputs(pool_x, None if data.train_images is None else data.train_images[keep])
    return Data(pool, pool_in, Inputs(test_x, data.test_images), data.test_y, keep,
                fingerprint(pool.labels, keep, pool_x, test_x, data.test_y))


def summarize(records: list[Record], data: Data, cfg: DictConfig) -> dict:
    """The run's summary: final metrics, area under the accuracy curve, the pool, the config."""
    last, n_labeled, pool = records[-1], [r.n_labeled for r in records], data.pool
    return {
        "final_accuracy": last.accuracy,
        "final_macro_f1": last.macro_f1,
        "final_labeled_ir": last.labeled_ir,
        "auc": area_under_curve(n_labeled, [r.accuracy for r in records]),
        "minority_auc": area_under_curve(n_labeled, [r.minority_accuracy for r in records]),
        "final_classes_discovered": last.classes_discovered,
        "switch_iteration": last.switch_iteration,
        "features_normalize": cfg.features.normalize,
        "n_iterations": len(records),
        "pool": {"size": len(pool), "ir": imbalance_ratio(pool.pool_counts()), "counts": pool.pool_counts().tolist(),
                 "fingerprint": data.fingerprint},
        "config": resolved(cfg),
    }


def run_experiment(cfg: DictConfig, run_dir: str | Path, variant: str = "") -> list[Record]:
    """Run (or resume) one AL experiment in `run_dir` (alimb.state.RunDir: records, summary, state); `variant` is
    the run directory's variant level (alimb.identity), for W&B's names."""
    expand_parts(cfg)
    validate(cfg)
    run_dir = RunDir(run_dir)
    records = run_dir.finished(cfg)  # reads only: a finished run in a read-only directory is fine
    if records is not None:
        log.info("%s already holds this completed run: nothing to do (overwrite=true runs it again)", run_dir)
        return records
    with run_dir.claim():  # one process per run directory
        plan = run_dir.plan(cfg)
        if plan.status == "done":  # completed by another process while this one waited to look
            return run_dir.complete_records()
        scheme, acquire = build(cfg.scheme), build(cfg.acquisition)
        data = load_data(cfg, scheme.needs_images)
        run_dir.check_data(plan, data.fingerprint)
        run_dir.begin(cfg, plan)  # the first write: a run that overwrite=true replaces stays whole until here
        return _iterate(cfg, run_dir, plan, scheme, acquire, data, variant)


def _iterate(cfg: DictConfig, run_dir: RunDir, plan: Plan, scheme: Scheme, acquire, data: Data,
             variant: str) -> list[Record]:
    """The iterations of a run whose directory this process holds, from the plan's saved state when resuming."""
    pool, iterations = data.pool, cfg.al.iterations
    seeds = np.random.SeedSequence(cfg.seed).spawn(iterations)  # iteration k: its own (AF, scheme) generators
    records: list[Record] = []
    if plan.saved is not None:
        records = list(plan.saved.records)
        pool.labeled_round[:] = plan.saved.labeled_round
        scheme.load_state_dict(plan.saved.scheme_state)
        log.info("resuming after iteration %d of %d", len(records), iterations)
    run_dir.save_pool_indices(data.keep)
    logger = build(cfg.logger)
    logger.start(resolved(cfg), **run_labels(resolved(cfg), variant), id_file=run_dir.wandb_id_file,
                 default_dir=run_dir.path)
    log.info("pool: %d samples, %d classes, ir %.3f; test: %d; %d iterations x %d", len(pool), pool.n_classes,
             imbalance_ratio(pool.pool_counts()), len(data.test_y), iterations, cfg.al.per_iteration)
    summary = None
    model = _scored(scheme, data.pool_in) if 0 < len(records) < iterations else None  # the restored model, as then
    try:
        bar = tqdm(total=iterations, initial=len(records), desc=f"AL {cfg.acquisition.name}/{cfg.scheme.name}",
                   unit="iteration", disable=None, leave=False)  # disable=None: no bar when not on a terminal
        for k in range(len(records), iterations):
            record, model = _iteration(k, cfg, scheme, acquire, data, model, seeds[k])
            records.append(record)
            run_dir.save_iteration(record, len(records), pool.labeled_round, scheme.state_dict(), data.fingerprint)
            logger.log(record)
            bar.update()
            _progress(record, iterations)
        bar.close()
        summary = summarize(records, data, cfg)
        run_dir.finish(pool.labeled_round, summary)
        log.info("done: final accuracy %.4f, AUC %.4f -> %s", summary["final_accuracy"], summary["auc"], run_dir)
    finally:
        logger.finish(summary, records)
    return records


def _scored(scheme: Scheme, pool_in: Inputs) -> dict:
    """What the next selection reads of the model just trained: its scores and features over the pool, its head."""
    scores, features = scheme.score(pool_in)
    return {"scores": scores, "features": features, "head": scheme.head()}


def _iteration(k: int, cfg: DictConfig, scheme: Scheme, acquire, data: Data, model: dict | None,
               seed: np.random.SeedSequence) -> tuple[Record, dict | None]:
    """Iteration k: select (random at k = 0, paper §III), label, fit, evaluate, score; its record and the scored
    model for the next iteration (None after the last)."""
    pool, per_iteration = data.pool, cfg.al.per_iteration
    rng, scheme_rng = (np.random.default_rng(s) for s in seed.spawn(2))
    t0 = time.perf_counter()
    af = random_af if k == 0 else acquire
    oracle = Oracle(pool.labels)
    selection = af(Context(**(model or {}), fg=data.pool_in.features, labels=pool.known_labels(),
                           labeled_mask=pool.labeled_mask.copy(), n_classes=pool.n_classes, budget=per_iteration,
                           rng=rng, oracle=oracle))
    check_selection(selection, pool.labeled_mask, per_iteration, oracle)
    pool.label(selection.indices, k)
    t1 = time.perf_counter()
    labeled = pool.labeled_idx
    fitted = scheme.fit(data.pool_in.subset(labeled), pool.labels[labeled], pool.n_classes, scheme_rng)
    t2 = time.perf_counter()
    metrics = evaluate(data.test_y, scheme.predict(data.test_in), pool.n_classes, minority_classes(pool.pool_counts()))
    t3 = time.perf_counter()
    model = _scored(scheme, data.pool_in) if k < cfg.al.iterations - 1 else None  # model k drives selection k + 1
    t4 = time.perf_counter()
    counts = pool.class_counts()
    info = {key: v for key, v in selection.info.items() if not key.endswith("_seconds")}
    select_timings = {f"select_{key.removesuffix('_seconds')}": v for key, v in selection.info.items()
                      if key.endswith("_seconds")}  # timings go with the others: resumed records compare equal
    record = Record.with_scheme_report(
        {"scheme_used": cfg.scheme.name, **fitted},  # the scheme's report (the switch: the scheme used, its CV)
        iteration=k,
        n_labeled=int(labeled.size),
        **metrics,
        labeled_ir=imbalance_ratio(counts),
        class_counts=counts.tolist(),
        n_from_quota=selection.n_quota,
        n_from_auxiliary=selection.n_auxiliary,
        quota_requested=selection.quota_requested,
        n_revealed_within_batch=int(np.unique(oracle.revealed).size),
        reveal_within_batch=bool(k > 0 and reveals_within_batch(acquire)),
        acquisition_info=info or None,
        scheme=cfg.scheme.name,
        seconds={"select": t1 - t0, "train": t2 - t1, "evaluate": t3 - t2, "score": t4 - t3, **select_timings},
    )
    return record, model


def _progress(record: Record, iterations: int) -> None:
    s = record.seconds
    log.info("iteration %2d/%d  labeled %5d  acc %.4f  f1 %.4f  ir %.3f  %s  "
             "(select %.2fs train %.2fs evaluate %.2fs score %.2fs)", record.iteration + 1, iterations,
             record.n_labeled, record.accuracy, record.macro_f1, record.labeled_ir, record.scheme_used,
             s["select"], s["train"], s["evaluate"], s["score"])
