"""One AL iteration's parts, shared by the simulated loop (alimb.loop) and a person's rounds (alimb.person): the data
a run works on, the selection, and what follows once its batch is labeled (fit, evaluate, score, the record)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from omegaconf import DictConfig

from alimb.acquisition import Context, Oracle, Selection
from alimb.acquisition import random as random_af
from alimb.acquisition.base import reveals_within_batch
from alimb.config import build
from alimb.data.dataset import ArrayDataset, check_labels, check_test, is_unlabeled
from alimb.data.imbalance import NoImbalance, induce
from alimb.errors import UserError
from alimb.features import featurize
from alimb.identity import resolved
from alimb.metrics import area_under_curve, evaluate
from alimb.normalize import normalize
from alimb.oracles.oracle import Oracles, SimulatedOracle, name_test_labels
from alimb.pool import Pool, imbalance_ratio, minority_classes
from alimb.records import Record
from alimb.schemes import Inputs, Scheme

log = logging.getLogger("alimb.loop")


@dataclass
class Data:
    """What a run works on: the pool (its labels the oracle's answers: all known to the simulated oracle, -1 until a
    person answers), the inputs schemes and AFs see, the test set, the pool's indices into the training split and its
    samples' ids, the class names, the pool's class counts where the dataset has labels (None: unknown; minority
    accuracy is then over the labeled set's minority classes at each iteration), and a fingerprint of all of it
    (content, not location)."""

    pool: Pool
    pool_in: Inputs
    test_in: Inputs
    test_y: np.ndarray
    keep: np.ndarray
    fingerprint: str
    ids: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    counts: np.ndarray | None = None
    paths: list[str] | None = None  # the pool's image files, where it has them (shown to a person)

    @property
    def minority(self) -> np.ndarray | None:
        """The pool's minority classes (below its mean count, paper Eq. 3), where its class counts are known."""
        return None if self.counts is None else minority_classes(self.counts)


def _area(n_labeled: list[int], values: list) -> float | None:
    """The area under a metric's curve; None without a test set."""
    return None if any(v is None or v != v for v in values) else area_under_curve(n_labeled, values)


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


def folded(raw, mapping: np.ndarray, names: list[str]):
    """The dataset with class c relabeled mapping[c] in both splits, and the new class names."""
    if isinstance(raw, ArrayDataset):
        return dataclasses.replace(raw, train_y=mapping[raw.train_y], test_y=mapping[raw.test_y], class_names=names)
    return dataclasses.replace(raw, train=dataclasses.replace(raw.train, labels=mapping[raw.train.labels]),
                               test=dataclasses.replace(raw.test, labels=mapping[raw.test.labels]), class_names=names)


def load_data(cfg: DictConfig, needs_images: bool, oracle: Oracles | None = None) -> Data:
    """The config's data, as `oracle` answers it (simulated by default). The labels, the imbalance and the budget are
    checked before any feature is extracted, the extracted splits again (images that could not be read may have
    emptied a class or the test set). A pool without labels is drawn whole (imbalance=none); a person's pool hides
    its labels, if it has any, from everything but the evaluation."""
    oracle = oracle or SimulatedOracle()
    raw = build(cfg.dataset.loader)
    profile = build(cfg.imbalance)
    if getattr(profile, "fold", None) is not None:  # a profile that folds classes together (LabelBench's)
        raw = folded(raw, *profile.fold(list(raw.class_names)))
    labels, test_labels = raw.labels()
    unlabeled = is_unlabeled(labels)
    classes = oracle.class_names(None if unlabeled else list(raw.class_names))
    if unlabeled:
        if not isinstance(profile, NoImbalance):
            raise UserError("the dataset has no labels, so no imbalance can be drawn from them; use imbalance=none (the "
                            "pool is every sample)")
        planned = np.arange(labels.size)
    else:
        check_labels(labels, test_labels, raw.n_classes)
        planned = induce(labels, raw.n_classes, profile, profile.seed)
    check_al(cfg.al, planned.size)
    data = featurize(raw, build(cfg.backbone), cfg.cache_dir, images=needs_images)
    same = np.array_equal(data.train_y, labels)  # unless extraction dropped images, the pool planned is the pool
    if not unlabeled and same and len(data.test_y) != len(test_labels):  # test images dropped: a class may be gone
        check_labels(data.train_y, data.test_y, data.n_classes)
    if not same and not unlabeled:
        lost = np.setdiff1d(np.unique(labels), data.train_y)
        if lost.size:
            raise UserError(f"no training image of class {data.class_names[lost[0]]!r} could be read ({lost.size} "
                            "class(es) lost every image); fix or replace its images, or remove the class")
        check_labels(data.train_y, data.test_y, data.n_classes)
    test_y = name_test_labels(data.test_y, list(raw.class_names), classes)
    if not (unlabeled or oracle.person):  # a run of the paper's protocol measures itself on its test set
        check_test(test_y)
    keep = planned if same or unlabeled else induce(data.train_y, data.n_classes, profile, profile.seed)
    keep = np.arange(len(data.train_y)) if unlabeled else keep
    check_al(cfg.al, keep.size)
    every_id = data.sample_ids()
    ids = [every_id[i] for i in keep]
    truth = data.train_y[keep] if not unlabeled else oracle.truth(ids, classes)  # None: a person answers
    pool = Pool(np.full(keep.size, -1) if oracle.person or truth is None else truth, len(classes))
    counts = None if unlabeled else np.bincount(data.train_y[keep], minlength=len(classes))
    pool_x, test_x = normalize(data.train_x[keep], data.test_x, cfg.features.normalize)
    pool_in = Inputs(pool_x, None if data.train_images is None else data.train_images[keep])
    return Data(pool, pool_in, Inputs(test_x, data.test_images), test_y, keep,
                fingerprint(pool.labels, keep, pool_x, test_x, test_y), ids, classes, counts,
                None if data.train_paths is None else [data.train_paths[i] for i in keep])


def summarize(records: list[Record], data: Data, cfg: DictConfig) -> dict:
    """The run's summary: final metrics, area under the accuracy curve, the pool, the config."""
    last, n_labeled, pool = records[-1], [r.n_labeled for r in records], data.pool
    return {
        "final_accuracy": last.accuracy,
        "final_macro_f1": last.macro_f1,
        "final_labeled_ir": last.labeled_ir,
        "auc": _area(n_labeled, [r.accuracy for r in records]),
        "minority_auc": _area(n_labeled, [r.minority_accuracy for r in records]),
        "final_classes_discovered": last.classes_discovered,
        "switch_iteration": last.switch_iteration,
        "features_normalize": cfg.features.normalize,
        "n_iterations": len(records),
        "pool": {"size": len(pool), "fingerprint": data.fingerprint,
                 **({"ir": imbalance_ratio(data.counts), "counts": data.counts.tolist()}
                    if data.counts is not None else {})},  # a pool without labels: its classes' sizes unknown
        "config": resolved(cfg),
    }


def scored(scheme: Scheme, pool_in: Inputs) -> dict:
    """What the next selection reads of the model just trained: its scores and features over the pool, its head."""
    scores, features = scheme.score(pool_in)
    return {"scores": scores, "features": features, "head": scheme.head()}


def generators(seed: int, k: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Iteration k's (AF, scheme) generators: the children (k, 0) and (k, 1) of SeedSequence(seed), derived without
    state, so a selection and its training may run in two processes (a person answering in between)."""
    return tuple(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k, j))) for j in (0, 1))


def select(k: int, acquire, data: Data, model: dict | None, budget: int, rng: np.random.Generator,
           oracle: Oracle, excluded: np.ndarray | None = None) -> Selection:
    """Iteration k's selection: random at k = 0 (paper §III), else the AF on the last model's scores."""
    pool = data.pool
    af = random_af if k == 0 else acquire
    selection = af(Context(**(model or {}), fg=data.pool_in.features, labels=pool.known_labels(),
                           labeled_mask=pool.labeled_mask.copy(), n_classes=pool.n_classes, budget=budget, rng=rng,
                           oracle=oracle, excluded=excluded))
    check_selection(selection, pool.labeled_mask, budget, oracle)
    return selection


def learn(k: int, cfg: DictConfig, scheme: Scheme, acquire, data: Data, selection: Selection, revealed: int,
          select_seconds: float, scheme_rng: np.random.Generator,
          minority: np.ndarray | None = None) -> tuple[Record, dict | None]:
    """Iteration k after its batch was labeled: fit, evaluate (when there is a test set), score the pool; its record
    and the scored model for the next iteration (None after the last). `minority`: the classes minority accuracy is
    over (default: the pool's, by its labels)."""
    pool = data.pool
    t1 = time.perf_counter()
    labeled = pool.labeled_idx
    fitted = scheme.fit(data.pool_in.subset(labeled), pool.labels[labeled], pool.n_classes, scheme_rng)
    t2 = time.perf_counter()
    minority = minority_classes(pool.class_counts()) if minority is None else minority  # none known: the labeled set's
    metrics = evaluate(data.test_y, scheme.predict(data.test_in), pool.n_classes, minority)
    t3 = time.perf_counter()
    model = scored(scheme, data.pool_in) if k < cfg.al.iterations - 1 else None  # model k drives selection k + 1
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
        n_revealed_within_batch=revealed,
        reveal_within_batch=bool(k > 0 and reveals_within_batch(acquire)),
        acquisition_info=info or None,
        scheme=cfg.scheme.name,
        seconds={"select": select_seconds, "train": t2 - t1, "evaluate": t3 - t2, "score": t4 - t3, **select_timings},
    )
    return record, model


def progress(record: Record, iterations: int) -> None:
    s = record.seconds
    tested = record.accuracy is not None and record.accuracy == record.accuracy  # NaN: no test set
    measured = "acc %.4f  f1 %.4f" % (record.accuracy, record.macro_f1) if tested else "no test set"
    log.info("iteration %2d/%d  labeled %5d  %s  ir %.3f  %s  (select %.2fs train %.2fs evaluate %.2fs score %.2fs)",
             record.iteration + 1, iterations, record.n_labeled, measured, record.labeled_ir, record.scheme_used,
             s["select"], s["train"], s["evaluate"], s["score"])
