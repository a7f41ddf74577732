"""The switch (paper §V-A, F): several schemes side by side, by default transfer learning (CS-SVM) and fine
tuning (FT-th), as the paper has it.

The first iteration uses the `start` scheme. After each iteration an 80:20 stratified split of the labeled
set (seeded) scores every scheme by mean per-class accuracy on the 20%; the best one is used from the next
iteration on. Once a scheme other than `start` wins it stays (sticky, configurable: the paper's "once fine
tuning wins") and the cross-validation stops.

The paper's "cross validation using 80:20 split" reads two ways: one stratified 80:20 holdout
(`folds: 1`, the default) or five 80:20 folds whose held-out parts partition the labeled set
(`folds: 5`, stratified; the accuracy is the mean over folds). Classes with a single labeled sample
are never held out.
"""

from __future__ import annotations

import copy
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, Field, ValidationInfo

from alimb.options import Doc, Fraction, Part, Positive
from alimb.metrics import per_class_accuracy
from alimb.schemes import Inputs, Scheme


def stratified_holdout(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) positions: round(fraction * n_c) of every class with 2+ samples held out (at least 1)."""
    held = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if members.size >= 2:
            k = min(members.size - 1, max(1, int(round(fraction * members.size))))
            held.append(rng.choice(members, k, replace=False))
    held = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(y)), held), held


def stratified_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) positions of `folds` stratified folds: each class with 2+ samples dealt over the folds."""
    held: list[list[int]] = [[] for _ in range(folds)]
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        if members.size >= 2:
            start = int(rng.integers(folds))  # small classes do not all land in the first folds
            for i, m in enumerate(members):
                held[(start + i) % folds].append(int(m))
    everything = np.arange(len(y))
    return [(np.setdiff1d(everything, h), np.sort(np.array(h, dtype=np.int64))) for h in held]


def _one_of_the_schemes(value: str, info: ValidationInfo) -> str:
    schemes = info.data.get("schemes") or {}
    if value not in schemes:
        raise ValueError(f"not one of the switch's schemes ({', '.join(schemes)})")
    return value


class SwitchScheme:
    """Uses `start` until another of `schemes` scores better in the 80:20 cross-validation (any two or more)."""

    def __init__(
        self,
        schemes: Annotated[dict[str, Annotated[Scheme, Part("scheme")]], Field(min_length=2),
                           Doc("the schemes side by side, under the names records call them (scheme_used)")],
        start: Annotated[str, AfterValidator(_one_of_the_schemes), Doc("the scheme of the first iteration")],
        sticky: Annotated[bool, Doc("once another scheme wins it stays, and the cross-validation stops")] = True,
        holdout: Annotated[Fraction, Doc("the held-out share of each split (the paper's 80:20)")] = 0.2,
        folds: Annotated[Positive, Doc("1: one stratified holdout (the paper's); k: k folds, mean accuracy")] = 1,
    ):
        self.schemes = dict(schemes)
        self.prototypes = {name: copy.deepcopy(s) for name, s in self.schemes.items()}  # unfitted, for the CV
        self.start = start
        self.sticky, self.holdout, self.folds = sticky, holdout, int(folds)
        self.current = start  # the scheme the next fit uses
        self.active = start  # the scheme of the last fit: it scores and predicts
        self.fits = 0
        self.switch_iteration: int | None = None
        self.needs_images = any(getattr(s, "needs_images", False) for s in self.schemes.values())

    def fit(self, inputs: Inputs, y: np.ndarray, n_classes: int, rng: np.random.Generator) -> dict:
        fit_rng, cv_rng = rng.spawn(2)
        self.active = self.current
        self.schemes[self.active].fit(inputs, y, n_classes, fit_rng)
        record = {"scheme_used": self.active, "cv_accuracy": None, "switch_iteration": self.switch_iteration}
        if not (self.sticky and self.active != self.start):
            record["cv_accuracy"] = self.cross_validate(inputs, y, n_classes, cv_rng)
            best = max(record["cv_accuracy"], key=lambda name: (record["cv_accuracy"][name], name == self.active))
            if best != self.current:
                self.current = best
                if self.switch_iteration is None:
                    self.switch_iteration = self.fits + 1  # the iteration that first uses the new scheme
        self.fits += 1
        record["switch_iteration"] = self.switch_iteration
        return record

    def cross_validate(self, inputs: Inputs, y: np.ndarray, n_classes: int, rng: np.random.Generator) -> dict:
        """Mean per-class accuracy of each scheme on held-out labeled samples: one stratified holdout of
        `holdout` (folds = 1), or the mean over `folds` stratified folds."""
        splits = [stratified_holdout(y, self.holdout, rng)] if self.folds == 1 else stratified_folds(y, self.folds, rng)
        scores: dict[str, list[float]] = {name: [] for name in self.prototypes}
        for train, held in splits:
            for name, prototype in self.prototypes.items():
                scheme = copy.deepcopy(prototype)
                scheme.fit(inputs.subset(train), y[train], n_classes, rng)
                recall = per_class_accuracy(y[held], scheme.predict(inputs.subset(held)), n_classes)
                scores[name].append(float(np.nanmean(recall)) if held.size else float("nan"))
        return {name: float(np.mean(values)) for name, values in scores.items()}

    def score(self, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
        return self.schemes[self.active].score(inputs)

    def head(self) -> tuple[np.ndarray, np.ndarray]:
        return self.schemes[self.active].head()

    def predict(self, inputs: Inputs) -> np.ndarray:
        return self.schemes[self.active].predict(inputs)

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {f"{name}/{k}": v for name, s in self.schemes.items() for k, v in s.state_dict().items()}
        return {**state, "current": np.array(self.current), "active": np.array(self.active), "fits": np.array(self.fits),
                "switch_iteration": np.array(-1 if self.switch_iteration is None else self.switch_iteration)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name, scheme in self.schemes.items():
            scheme.load_state_dict({k.split("/", 1)[1]: v for k, v in state.items() if k.startswith(f"{name}/")})
        self.current, self.active, self.fits = str(state["current"]), str(state["active"]), int(state["fits"])
        self.switch_iteration = None if int(state["switch_iteration"]) < 0 else int(state["switch_iteration"])
