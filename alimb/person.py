"""A person in the loop: the AL loop with a person answering (`oracle=human`, `oracle=label_studio`), one round per
invocation.

Each invocation does all it can and stops: it reads the answers to the open batch (stored in the run directory
before anything else), trains on them and evaluates (when there is a test set), selects the next batch with the
run's AF, writes it for the person (alimb.oracles.files) and says in one line how many samples to label, where, and
that the same command continues. The iterations are the simulated loop's (alimb.iteration: the same generators,
the same selection, the same training), so a person answering as the dataset's labels would gives the records of
the simulated run.

An AF that reads labels within its batch (`reveal_within_batch`: DIRECT, GALAXY, cds-bal, the bandit) asks in
sub-rounds: it runs until it needs a label nobody gave, those samples are a sub-round's batch, and when they are
answered it runs again from the start on the same generator, the stored answers replayed, one step further. With
`reveal_within_batch=false` it counts the predicted class instead and asks nothing within its batch.

A skipped sample ("unsure") leaves the pool and is never asked again; its class stands in as predicted where an AF
asked for it within its batch. With `oracle.accept_partial=true` a batch answered in part trains on its answers and
puts the rest back in the pool.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
from omegaconf import DictConfig

from alimb.acquisition import Oracle, Selection
from alimb.acquisition.base import NeedLabels, as_probabilities
from alimb.config import build
from alimb.errors import UserError
from alimb.identity import labels as run_labels
from alimb.identity import resolved
from alimb.iteration import Data, generators, learn, progress, scored, select, summarize
from alimb.oracles.files import CSV_FILE
from alimb.oracles.oracle import SKIP
from alimb.records import Record, jsonable
from alimb.rounds import Answer, Batch, Rounds
from alimb.schemes import Scheme
from alimb.state import Plan, RunDir

log = logging.getLogger("alimb.loop")


class Replayed(Oracle):
    """The oracle an AF reads within its batch in a person's round: the answers stored so far (a skip counts as the
    predicted class); a sample nobody answered yet stops the AF (`NeedLabels`): it is asked in a sub-round."""

    def __init__(self, known: dict[int, int], predicted: np.ndarray | None):
        super().__init__(np.empty(0, dtype=np.int64))
        self.known, self.predicted = known, predicted

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        missing = [int(i) for i in idx if int(i) not in self.known]
        if missing:
            raise NeedLabels(missing)
        self._asked.append(idx.copy())
        return np.array([self.known[int(i)] if self.known[int(i)] >= 0 else int(self.predicted[i]) for i in idx])


class Round:
    """What one invocation knows of a person's run: the data, the stored answers, the class names."""

    def __init__(self, cfg: DictConfig, run_dir: RunDir, data: Data, oracle):
        self.cfg, self.data, self.oracle = cfg, data, oracle
        self.rounds = Rounds(run_dir.path)
        self.answers = self.rounds.answers()
        self.classes = self.rounds.check_classes(data.classes, self.answers)
        self.position = {sample: i for i, sample in enumerate(data.ids)}  # sample id -> pool index
        self.restored = False  # the open batch's to_label.csv was written again (alimb.oracles.files.restore)

    def label_of(self, sample: str) -> int:
        answer = self.answers.get(sample)
        if answer is None:
            raise UserError(f"{self.rounds.answers_file} lacks the answer to sample {sample!r}, which a round already "
                            "trained on (was the file edited?); put its line back, or pass overwrite=true to start the "
                            "run again (the answers kept, the missing ones asked again)")
        return SKIP if answer.label is None else self.classes.index(answer.label)

    def known(self) -> dict[int, int]:
        """Pool index -> class index or SKIP, for every stored answer of a pool sample."""
        return {self.position[s]: self.label_of(s) for s in self.answers if s in self.position}

    def store(self, given: dict[str, int], k: int, source: str) -> int:
        """Store the answers of an open batch not stored yet, and those the person changed since they were stored
        (nothing has used them yet: a batch is used once every answer is in), before anything uses them; how many
        were new or changed."""
        new = [Answer(s, None if v == SKIP else self.classes[v], k, source) for s, v in given.items()
               if s not in self.answers or self.label_of(s) != v]
        for a in new:
            if a.id in self.answers:
                before = self.answers[a.id].label or "skip"
                print(f"alimb: sample {a.id}: the answer changed from {before} to {a.label or 'skip'}; the new one "
                      "counts (its batch was still open)", flush=True)
        self.rounds.store(new)
        self.answers.update({a.id: a for a in new})
        return len(new)

    def batch(self, k: int, sub: int, final: bool, indices: list[int], model: dict | None, reasons: list[str],
              selection: dict | None = None) -> Batch:
        """A new batch of round k, saved, and published for the person (when it asks for anything)."""
        ids = [self.data.ids[i] for i in indices]
        suggested = []
        if model is not None and indices:
            p = as_probabilities(np.asarray(model["scores"])[indices])
            suggested = [(self.classes[int(np.argmax(row))], float(np.max(row))) for row in p]
        batch = Batch(k, sub, final, [int(i) for i in indices], ids, suggested, reasons, selection or {})
        folder = self.rounds.save(batch)
        if indices:
            self.oracle.publish(batch, folder, self.data.paths, self.classes)
        return batch


def _reasons(selection: Selection, predicted: np.ndarray | None, classes: list[str], af: str) -> list[str]:
    """Why each sample was picked: the minority class whose quota it fills (the MCS family), else the AF."""
    out = []
    for j, i in enumerate(selection.indices):
        if j < selection.n_quota and predicted is not None:
            out.append(f"quota of minority class {classes[int(predicted[i])]}")
        else:
            out.append(f"{af} (the budget left)" if selection.n_quota else af)
    return out


def _info(selection: Selection) -> dict:
    return {"indices": [int(i) for i in selection.indices], "n_quota": selection.n_quota,
            "quota_requested": selection.quota_requested, "info": jsonable(selection.info)}


def _select_round(k: int, r: Round, acquire, model: dict | None, initial: dict[str, int]) -> Batch:
    """Round k's selection (replaying the stored answers): the round's batch, or a sub-round's when the AF stopped
    for a label nobody gave yet."""
    cfg, data, pool = r.cfg, r.data, r.data.pool
    subs = [b for b in r.rounds.batches(k) if not b.final]
    if k == 0 and initial:  # a first batch the person already labeled
        picks = [r.position[s] for s in initial]
        selection = Selection(np.array(picks, dtype=np.int64))
        return r.batch(k, 0, True, [], None, [], {**_info(selection), "revealed": 0, "select_seconds": 0.0})
    rng, _ = generators(cfg.seed, k)
    predicted = None if model is None else np.argmax(np.asarray(model["scores"]), axis=1)
    oracle = Replayed(r.known(), predicted)
    t0 = time.perf_counter()
    try:
        selection = select(k, acquire, data, model, cfg.al.per_iteration, rng, oracle, excluded=pool.skipped_idx)
    except NeedLabels as need:
        asked = sorted(set(need.indices))
        return r.batch(k, len(subs) + 1, False, asked, model, [f"asked by {cfg.acquisition.name} within its batch"] *
                       len(asked))
    revealed = int(np.unique(oracle.revealed).size)
    todo = [int(i) for i in selection.indices if data.ids[int(i)] not in r.answers]
    reasons = _reasons(selection, predicted, r.classes, "random" if k == 0 else cfg.acquisition.name)
    reasons = [reasons[j] for j, i in enumerate(selection.indices) if int(i) in set(todo)]
    return r.batch(k, 0, True, todo, model, reasons,
                   {**_info(selection), "revealed": revealed, "select_seconds": time.perf_counter() - t0})


def _learn_round(k: int, r: Round, batch: Batch, scheme: Scheme, acquire) -> tuple[Record, dict | None]:
    """Round k once its batch is answered (or, accepting part of it, partly): label, learn, and the round's report."""
    cfg, data, pool = r.cfg, r.data, r.data.pool
    picks = np.array(batch.selection["indices"], dtype=np.int64)
    before = pool.class_counts()
    answered = [int(i) for i in picks if data.ids[i] in r.answers]
    values = np.array([r.label_of(data.ids[i]) for i in answered], dtype=np.int64)
    labeled, skipped = np.array(answered, dtype=np.int64)[values >= 0], np.array(answered, dtype=np.int64)[values < 0]
    pool.labels[labeled] = values[values >= 0]
    pool.label(labeled, k)
    pool.skip(skipped)
    selection = Selection(picks, batch.selection["n_quota"], batch.selection["quota_requested"],
                          batch.selection["info"])
    _, scheme_rng = generators(cfg.seed, k)
    record, model = learn(k, cfg, scheme, acquire, data, selection, batch.selection["revealed"],
                          batch.selection["select_seconds"], scheme_rng, data.minority)
    minority = before * max(1, len(before)) < before.sum()  # minority before the batch (Eq. 3's rule)
    share = float(minority[pool.labels[labeled]].mean()) if labeled.size and before.sum() else None
    info = {"answered": len(answered), "skipped": int(skipped.size), "returned": int(picks.size - len(answered)),
            "sub_rounds": len(r.rounds.batches(k)) - 1, "minority_share": share}
    if model is not None:
        unlabeled = pool.unlabeled_idx
        info["predicted_counts"] = np.bincount(np.argmax(model["scores"][unlabeled], axis=1),
                                               minlength=pool.n_classes).tolist()
    if data.test_y.size == 0:
        info["cv_balanced_accuracy"] = estimate(cfg, data, np.random.default_rng(np.random.SeedSequence(
            cfg.seed, spawn_key=(k, 2))))
    return dataclasses.replace(record, oracle_info=info), model


def estimate(cfg: DictConfig, data: Data, rng: np.random.Generator, folds: int = 5) -> float | None:
    """Without a test set: the mean per-class accuracy (balanced accuracy) of the run's scheme in stratified
    `folds`-fold cross-validation on the labeled set, an estimate (classes with one label are never held out)."""
    from alimb.metrics import per_class_accuracy
    from alimb.schemes.switch import stratified_folds

    pool = data.pool
    labeled = pool.labeled_idx
    y = pool.labels[labeled]
    if np.count_nonzero(np.bincount(y) >= 2) < 2:
        return None
    scores = []
    for train, held in stratified_folds(y, folds, rng):
        if held.size == 0:
            continue
        scheme = build(cfg.scheme)
        scheme.fit(data.pool_in.subset(labeled[train]), y[train], pool.n_classes, rng)
        recall = per_class_accuracy(y[held], scheme.predict(data.pool_in.subset(labeled[held])), pool.n_classes)
        scores.append(float(np.nanmean(recall)))
    return float(np.mean(scores)) if scores else None


def _collect(batch: Batch, r: Round, k: int) -> None:
    """The person's answers to a batch, stored before anything uses them."""
    if any(s not in r.answers for s in batch.ids):
        r.store(r.oracle.collect(batch, r.rounds.batch_dir(batch), r.classes), k, type(r.oracle).__name__)


def _late_changes(r: Round, k: int) -> None:
    """One line when a person changed, in a batch's files, an answer already used (a round trained on it, or an AF
    replayed it): it stays as first read, and they are told so."""
    changed = []
    for j in range(k + 1):
        for batch in r.rounds.batches(j):
            if not batch.ids or any(s not in r.answers for s in batch.ids):
                continue  # an open batch: its changes count (Round.store)
            try:
                given = r.oracle.written(batch, r.rounds.batch_dir(batch), r.classes)
            except UserError:
                continue  # a used batch's file damaged since: its answers are stored
            changed += [(batch, s, v) for s, v in given.items() if r.label_of(s) != v]
    if changed:
        batch, sample, value = changed[0]
        now = "skip" if value == SKIP else r.classes[value]
        print(f"alimb: {r.rounds.batch_dir(batch) / CSV_FILE} changes {len(changed)} answer(s) already used "
              f"(sample {sample}: {r.answers[sample].label or 'skip'} -> {now}); they stay as first read, since rounds "
              "were trained on them (overwrite=true does not change them either: answers are kept)", flush=True)


def _republish(batch: Batch, r: Round) -> None:
    """An open batch published again (nothing is duplicated): a kill, a server down or a missing token may have come
    between saving it and the person getting it, or the person deleted its file or rows of it."""
    unanswered = [s for s in batch.ids if s not in r.answers]
    if unanswered:
        folder = r.rounds.batch_dir(batch)
        r.restored = r.oracle.restore(batch, folder, r.data.paths, unanswered, rows=False)  # rows: once read (_ask)
        r.oracle.publish(batch, folder, r.data.paths, r.classes)


def _ask(batch: Batch, r: Round, k: int) -> None:
    """The one line a person reads: how many samples to label, where, and that the same command continues."""
    folder = r.rounds.batch_dir(batch)
    where = f"{folder / CSV_FILE} (the label column: a class, or skip)"
    if getattr(r.oracle, "url", None):
        where = f"Label Studio ({r.oracle.url}, project {r.oracle.project})"
    what = f"round {k + 1} of {r.cfg.al.iterations}" + (f", sub-round {batch.sub}" if batch.sub else "")
    missing = [s for s in batch.ids if s not in r.answers]
    if r.oracle.restore(batch, folder, r.data.paths, missing) or r.restored:  # rows removed (the file was read)
        where += ", written again for the samples missing from it"
    missing = len(missing)
    print(f"alimb: {what}: label {missing} sample(s) in {where}, then run the same command again", flush=True)


def run_rounds(cfg: DictConfig, run_dir: RunDir, plan: Plan, scheme: Scheme, acquire, data: Data, oracle,
               variant: str) -> list[Record]:
    """A person's run in `run_dir`: the rounds it can do now (see the module docstring); its records so far."""
    r = Round(cfg, run_dir, data, oracle)
    pool, iterations = data.pool, cfg.al.iterations
    records: list[Record] = []
    if plan.saved is not None:
        records = list(plan.saved.records)
        pool.labeled_round[:] = plan.saved.labeled_round
        for i in pool.labeled_idx:
            pool.labels[i] = r.label_of(data.ids[i])
        scheme.load_state_dict(plan.saved.scheme_state)
    initial = oracle.initial(r.classes, set(data.ids)) if not records else {}
    r.store(initial, 0, "initial")
    r.store({s: v for s, v in oracle.earlier(r.classes, set(data.ids)).items() if s not in r.answers}, 0, "answered")
    run_dir.save_pool_indices(data.keep)
    logger = build(cfg.logger)
    config = resolved(cfg)
    logger.start(config, **run_labels(config, variant), id_file=run_dir.wandb_id_file, default_dir=run_dir.path)
    model = scored(scheme, data.pool_in) if 0 < len(records) < iterations else None
    if model is not None and model["scores"].shape[1] < pool.n_classes:  # classes joined since the last round
        scores = model["scores"]
        pad = np.full((len(scores), pool.n_classes - scores.shape[1]), scores.min() - 1.0)
        model["scores"] = np.hstack([scores, pad])
    summary = None
    try:
        k = len(records)
        _late_changes(r, k)
        run_dir.settle()  # a person's replacement has started (its data checked, its rounds under way)
        while k < iterations:
            made = r.rounds.batches(k)
            batch = made[-1] if made else None
            if batch is not None:
                _republish(batch, r)
                _collect(batch, r, k)
            if batch is None or (not batch.final and all(s in r.answers for s in batch.ids)):
                batch = _select_round(k, r, acquire, model, initial)  # the AF (again), one step further
                _collect(batch, r, k)
            missing = [s for s in batch.ids if s not in r.answers]
            if missing and not (batch.final and oracle.accept_partial and len(missing) < len(batch.ids)):
                _ask(batch, r, k)
                return records
            if not batch.final:
                continue  # a sub-round answered: the AF runs again, one step further
            record, model = _learn_round(k, r, batch, scheme, acquire)
            records.append(record)
            run_dir.save_iteration(record, len(records), pool.labeled_round, scheme.state_dict(), data.fingerprint)
            logger.log(record)
            progress(record, iterations)
            k += 1
        summary = summarize(records, data, cfg)
        run_dir.finish(pool.labeled_round, summary)
        print(f"alimb: done: {len(records)} rounds, {pool.labeled_idx.size} labels in {run_dir.path}; to label more "
              f"rounds, the same command with al.iterations=N oracle.answered={r.rounds.answers_file} (nothing is "
              "asked twice)", flush=True)
    finally:
        logger.finish(summary, records)
    return records
