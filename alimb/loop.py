"""run_experiment(cfg): the active-learning loop, top to bottom."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from alimb.acquisition import Context, Oracle, Selection
from alimb.acquisition import random as random_af
from alimb.config import build, expand_af_names
from alimb.data.dataset import check_labels
from alimb.data.imbalance import induce
from alimb.errors import UserError
from alimb.features import featurize
from alimb.metrics import area_under_curve, evaluate
from alimb.normalize import normalize
from alimb.pool import Pool, imbalance_ratio, minority_classes
from alimb.records import Record
from alimb.schemes import Inputs
from alimb.schema import validate
from alimb.state import RunDir, Saved

log = logging.getLogger(__name__)


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


def load_pool(cfg: DictConfig, needs_images: bool) -> tuple[Pool, Inputs, Inputs, np.ndarray, np.ndarray]:
    """(pool, its inputs, test inputs, test labels, pool indices into the training split) of the config.

    The labels, the imbalance and the budget are checked before any feature is extracted.
    """
    raw = build(cfg.dataset.loader)
    check_labels(*raw.labels(), raw.n_classes)
    profile = build(cfg.imbalance)
    labels = raw.labels()[0]
    planned = induce(labels, raw.n_classes, profile, profile.seed)
    check_al(cfg.al, planned.size)
    data = featurize(raw, build(cfg.backbone), cfg.cache_dir, images=needs_images)
    same = np.array_equal(data.train_y, labels)  # unless extraction dropped images, the pool planned is the pool
    keep = planned if same else induce(data.train_y, data.n_classes, profile, profile.seed)  # into the training split
    pool = Pool(data.train_y[keep], data.n_classes)
    pool_x, test_x = normalize(data.train_x[keep], data.test_x, cfg.features.normalize)
    pool_in = Inputs(pool_x, None if data.train_images is None else data.train_images[keep])
    return pool, pool_in, Inputs(test_x, data.test_images), data.test_y, keep


def summarize(records: list[Record], pool: Pool, cfg: DictConfig) -> dict:
    """The run's summary: final metrics, area under the accuracy curve, the pool, the config."""
    last, n_labeled = records[-1], [r.n_labeled for r in records]
    return {
        "final_accuracy": last.accuracy,
        "final_macro_f1": last.macro_f1,
        "final_labeled_ir": last.labeled_ir,
        "auc": area_under_curve(n_labeled, [r.accuracy for r in records]),
        "minority_auc": area_under_curve(n_labeled, [r.minority_accuracy for r in records]),
        "final_classes_discovered": int(np.count_nonzero(last.class_counts)),
        "switch_iteration": last.switch_iteration,
        "features_normalize": cfg.features.normalize,
        "n_iterations": len(records),
        "pool": {"size": len(pool), "ir": imbalance_ratio(pool.pool_counts()), "counts": pool.pool_counts().tolist()},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def run_experiment(cfg: DictConfig, run_dir: str | Path) -> list[Record]:
    """Run (or resume) one AL experiment in `run_dir` (alimb.state.RunDir: records, summary, state)."""
    expand_af_names(cfg)
    validate(cfg)
    run_dir = RunDir(run_dir)
    records = run_dir.finished(cfg)  # reads only: a finished run in a read-only directory is fine
    if records is None:
        with run_dir.claim():  # one process per run directory
            status, saved = run_dir.prepare(cfg)
            if status != "done":
                return _run(cfg, run_dir, saved)
            records = run_dir.complete_records()  # completed by another process while this one waited to look
    log.info("%s already holds this completed run: nothing to do (overwrite=true runs it again)", run_dir)
    return records


def _run(cfg: DictConfig, run_dir: RunDir, saved: Saved | None) -> list[Record]:
    """The iterations of a run whose directory this process holds, from `saved` when resuming."""
    scheme, acquire = build(cfg.scheme), build(cfg.acquisition)
    pool, pool_in, test_in, test_y, keep = load_pool(cfg, scheme.needs_images)
    n_classes = pool.n_classes
    iterations, per_iteration = check_al(cfg.al, len(pool))
    pool_minority = minority_classes(pool.pool_counts())
    seeds = np.random.SeedSequence(cfg.seed).spawn(iterations)  # iteration k: its own (AF, scheme) generators

    records: list[Record] = []
    if saved is not None:
        records = list(saved.records)
        pool.labeled_round[:] = saved.labeled_round
        scheme.load_state_dict(saved.scheme_state)
        log.info("resuming after iteration %d of %d", len(records), iterations)
    run_dir.save_pool_indices(keep)
    logger = build(cfg.logger)
    what = f"{cfg.acquisition.name}/{cfg.scheme.name}"
    level = run_dir.path.parent.name
    variant = "" if level == cfg.scheme.name else f"{level}/"  # the overrides' level
    logger.start(
        OmegaConf.to_container(cfg, resolve=True), name=f"{what}/{variant}seed{cfg.seed}",
        group=f"{cfg.name}/{cfg.dataset.name}/{cfg.imbalance.name}", job_type=what,
        tags=[cfg.acquisition.name, cfg.scheme.name], id_file=run_dir.wandb_id_file, default_dir=run_dir.path,
    )
    log.info(
        "pool: %d samples, %d classes, ir %.3f; test: %d; %d iterations x %d",
        len(pool), n_classes, imbalance_ratio(pool.pool_counts()), len(test_y), iterations, per_iteration,
    )
    summary = None
    scores = features = head = None
    if 0 < len(records) < iterations:  # the model restored from the state scores the pool, as it did then
        scores, features = scheme.score(pool_in)
        head = scheme.head()
    try:
        bar = tqdm(total=iterations, initial=len(records), desc=f"AL {cfg.acquisition.name}/{cfg.scheme.name}",
                   unit="iteration", disable=None, leave=False)  # disable=None: no bar when not on a terminal
        for k in range(len(records), iterations):
            rng, scheme_rng = (np.random.default_rng(s) for s in seeds[k].spawn(2))
            t0 = time.perf_counter()
            af = random_af if k == 0 else acquire  # iteration 0 is random (paper §III)
            oracle = Oracle(pool.labels)
            selection = af(Context(
                scores=scores, features=features, head=head, fg=pool_in.features, labels=pool.known_labels(),
                labeled_mask=pool.labeled_mask.copy(), n_classes=n_classes, budget=per_iteration, rng=rng,
                oracle=oracle,
            ))
            check_selection(selection, pool.labeled_mask, per_iteration, oracle)
            pool.label(selection.indices, k)
            t1 = time.perf_counter()
            labeled = pool.labeled_idx
            fitted = scheme.fit(pool_in.subset(labeled), pool.labels[labeled], n_classes, scheme_rng)
            t2 = time.perf_counter()
            metrics = evaluate(test_y, scheme.predict(test_in), n_classes, pool_minority)
            t3 = time.perf_counter()
            if k < iterations - 1:  # scores and features of model k drive the selection of iteration k + 1
                scores, features = scheme.score(pool_in)
                head = scheme.head()
            t4 = time.perf_counter()
            counts = pool.class_counts()
            info = {k: v for k, v in selection.info.items() if not k.endswith("_seconds")}
            select_timings = {f"select_{k.removesuffix('_seconds')}": v for k, v in selection.info.items()
                              if k.endswith("_seconds")}  # timings go with the others: resumed records compare equal
            record = Record(
                iteration=k,
                n_labeled=int(labeled.size),
                **metrics,
                labeled_ir=imbalance_ratio(counts),
                class_counts=counts.tolist(),
                n_from_quota=selection.n_quota,
                n_from_auxiliary=selection.n_auxiliary,
                quota_requested=selection.quota_requested,
                n_revealed_within_batch=int(np.unique(oracle.revealed).size),
                reveal_within_batch=bool(k > 0 and cfg.acquisition.get("reveal_within_batch", False)),
                acquisition_info=info or None,
                scheme=cfg.scheme.name,
                **{"scheme_used": cfg.scheme.name, **fitted},  # the scheme's report (the switch: scheme used, CV)
                seconds={"select": t1 - t0, "train": t2 - t1, "evaluate": t3 - t2, "score": t4 - t3, **select_timings},
            )
            records.append(record)
            run_dir.save_iteration(record, len(records), pool.labeled_round, scheme.state_dict())
            logger.log(record)
            bar.update()
            log.info(
                "iteration %2d/%d  labeled %5d  acc %.4f  f1 %.4f  ir %.3f  %s  "
                "(select %.2fs train %.2fs evaluate %.2fs score %.2fs)",
                k + 1, iterations, labeled.size, record.accuracy, record.macro_f1, record.labeled_ir,
                record.scheme_used, t1 - t0, t2 - t1, t3 - t2, t4 - t3,
            )
        bar.close()
        summary = summarize(records, pool, cfg)
        run_dir.finish(pool.labeled_round, summary)
        log.info("done: final accuracy %.4f, AUC %.4f -> %s", summary["final_accuracy"], summary["auc"], run_dir)
    finally:
        logger.finish(summary, records)
    return records
