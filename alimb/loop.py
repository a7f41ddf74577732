"""run_experiment(cfg): the active-learning loop, top to bottom.

    check the config -> plan the run directory (reads only) -> load and check the data -> begin (the first write)
    -> per iteration: select (the AF; iteration 0 random), label, fit, evaluate, score the pool, record and save
    -> summary

With a person answering (`oracle=human`, `oracle=label_studio`), the iterations are a person's rounds, one per
invocation (alimb.person); the simulated oracle (the paper's) answers at once, here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from alimb.acquisition import Oracle
from alimb.config import build, expand_parts
from alimb.identity import labels as run_labels
from alimb.identity import resolved
from alimb.iteration import Data, generators, learn, load_data, progress, scored, select, summarize
from alimb.person import run_rounds
from alimb.pool import imbalance_ratio
from alimb.records import Record
from alimb.schema import validate
from alimb.schemes import Scheme
from alimb.errors import UserError
from alimb.state import Plan, RunDir

log = logging.getLogger(__name__)


def run_experiment(cfg: DictConfig, run_dir: str | Path, variant: str = "") -> list[Record]:
    """Run (or resume) one AL experiment in `run_dir` (alimb.state.RunDir: records, summary, state); `variant` is
    the run directory's variant level (alimb.identity), for W&B's names."""
    expand_parts(cfg)
    validate(cfg)
    run_dir = RunDir(run_dir)
    records = run_dir.finished(cfg)  # reads only: a finished run in a read-only directory is fine
    if records is not None:
        _same_data(cfg, run_dir)
        log.info("%s already holds this completed run: nothing to do (overwrite=true runs it again)", run_dir)
        return records
    with run_dir.claim():  # one process per run directory
        plan = run_dir.plan(cfg)
        if plan.status == "done":  # completed by another process while this one waited to look
            return run_dir.complete_records()
        scheme, acquire, oracle = build(cfg.scheme), build(cfg.acquisition), build(cfg.oracle)
        data = load_data(cfg, scheme.needs_images, oracle)
        run_dir.check_data(plan, data.fingerprint)
        run_dir.begin(cfg, plan)  # the first write: a run that overwrite=true replaces is set aside, whole
        try:
            if oracle.person:
                return run_rounds(cfg, run_dir, plan, scheme, acquire, data, oracle, variant)
            return _iterate(cfg, run_dir, plan, scheme, acquire, data, variant)
        except BaseException:
            run_dir.recover()  # the replacement failed before its first iteration: the replaced run is back
            raise


def _same_data(cfg: DictConfig, run_dir: RunDir) -> None:
    """A completed run answers "nothing to do" only over the data it ran on (their content: a counts file, an image
    folder changed since, or another folder given in the same place, is another run's data)."""
    stored = (run_dir.summary().get("pool") or {}).get("fingerprint")
    if stored is None:
        return  # a run completed before summaries named their data
    data = load_data(cfg, build(cfg.scheme).needs_images, build(cfg.oracle))
    if data.fingerprint != stored:
        raise UserError(f"{run_dir.path} holds a completed run over other data: the dataset's content differs from "
                        "the one it ran on (moving it is fine, changing it is not); pass overwrite=true to run it "
                        "again on these data, or name=... for a new experiment")


def _iterate(cfg: DictConfig, run_dir: RunDir, plan: Plan, scheme: Scheme, acquire, data: Data,
             variant: str) -> list[Record]:
    """The iterations of a run whose directory this process holds, from the plan's saved state when resuming."""
    pool, iterations = data.pool, cfg.al.iterations
    records: list[Record] = []
    if plan.saved is not None:
        records = list(plan.saved.records)
        pool.labeled_round[:] = plan.saved.labeled_round
        scheme.load_state_dict(plan.saved.scheme_state)
        log.info("resuming after iteration %d of %d", len(records), iterations)
    run_dir.save_pool_indices(data.keep)
    logger = build(cfg.logger)
    config = resolved(cfg)
    logger.start(config, **run_labels(config, variant), id_file=run_dir.wandb_id_file, default_dir=run_dir.path)
    log.info("pool: %d samples, %d classes%s; test: %d; %d iterations x %d", len(pool), pool.n_classes,
             f", ir {imbalance_ratio(data.counts):.3f}" if data.counts is not None else "",
             len(data.test_y), iterations, cfg.al.per_iteration)
    summary = None
    model = scored(scheme, data.pool_in) if 0 < len(records) < iterations else None  # the restored model, as then
    try:
        bar = tqdm(total=iterations, initial=len(records), desc=f"AL {cfg.acquisition.name}/{cfg.scheme.name}",
                   unit="iteration", disable=None, leave=False)  # disable=None: no bar when not on a terminal
        for k in range(len(records), iterations):
            record, model = _iteration(k, cfg, scheme, acquire, data, model)
            records.append(record)
            run_dir.save_iteration(record, len(records), pool.labeled_round, scheme.state_dict(), data.fingerprint)
            logger.log(record)
            bar.update()
            progress(record, iterations)
        bar.close()
        summary = summarize(records, data, cfg)
        run_dir.finish(pool.labeled_round, summary)
        log.info("done: final accuracy %.4f, AUC %.4f -> %s", summary["final_accuracy"], summary["auc"], run_dir)
    finally:
        logger.finish(summary, records)
    return records


def _iteration(k: int, cfg: DictConfig, scheme: Scheme, acquire, data: Data,
               model: dict | None) -> tuple[Record, dict | None]:
    """Iteration k with the simulated oracle: select, label (the pool's labels answer at once), learn."""
    rng, scheme_rng = generators(cfg.seed, k)
    t0 = time.perf_counter()
    oracle = Oracle(data.pool.labels)
    selection = select(k, acquire, data, model, cfg.al.per_iteration, rng, oracle)
    data.pool.label(selection.indices, k)
    revealed = int(np.unique(oracle.revealed).size)
    return learn(k, cfg, scheme, acquire, data, selection, revealed, time.perf_counter() - t0, scheme_rng,
                 data.minority)


