"""DIRECT (Nuggehalli et al., "DIRECT: Deep Active Learning under Imbalance and Label Noise", 2023; ICML 2025).

Our reading of the paper and of the authors' implementation (EfficientTraining/LabelBench,
`LabelBench/strategy/strategy_impl/direct.py`, read for this; this code is our own). For each class k the pool is
a 1-D path sorted by the class-k margin q_k = p_k - max_j p_j + 1e-8 max_j p_j (most class-k-like first; the same
ordering as GALAXY; with two classes the authors add 1e-8 p_0 instead), where p are the model's probabilities:
the scores where they are probabilities (fine tuning), their softmax otherwise (SVM decision values). A threshold
t on the path says "the first t are class k"; its score is acc(t) = sum_{i<t} w_i - sum_{i>=t} w_i with w_i = +1
for a labeled sample of class k, -1 for another label, 0 unlabeled. One call:

1. **Split of the budget** (the authors' rule): with b_c = budget // n_classes // 2, if b_c < `min_budget_per_class`
   every class gets B2 = b_c version-space labels, else the budget // (2 min_budget_per_class) least-labeled
   classes get B2 = `min_budget_per_class` each. Classes are taken from the more to the least labeled of those
   (numpy's argsort of minus the labeled counts, as the authors).
2. **Version-space reduction**, per such class: the uncertain interval [I, J] runs from the last class-k label
   before the first other label (0 if none) to the first other label after the last class-k label (the path's
   end if none). Rounds of min(B1, B2 left) labels (B1 = `parallel_annotators`, the annotators labeling in
   parallel) are drawn uniformly without replacement from the unlabeled samples in [I, J]; their labels are read
   at once; then, with d the unlabeled count left in [I, J], the endpoint whose threshold scores lower moves
   inwards (ties: a coin) until at most ceil(d / d^(1/(B2 // B1))) unlabeled remain (no move when B2 // B1 <= 1).
   B2 shrinks to the unlabeled count of the pool once it is smaller and stays so for later classes (as the
   authors' variable does).
3. **Labels around the best threshold**: the rest of the budget, split over all classes in a random order
   (class i of the permutation gets rem (i+1) // C - rem i // C), is spent per class by walking out from the
   best threshold argmax_t acc(t) (the first maximum), alternately one unlabeled sample to its left and one to
   its right, skipping labeled ones. Labels read earlier in the call count for every later class.

Labels are read within the call (`reveal_within_batch: true`, DIRECT's setting: the simulated oracle answers each
round) or, with `false`, the predicted class stands in for them. With a person answering (`oracle=human`,
`label_studio`) each question is a sub-round: the B1 annotators' labels of a version-space round together, then a
class's labels around its threshold together (alimb.person). Samples an enclosing AF already picked in this
batch (`ctx.picked`) count as labeled with their predicted class.

Randomness comes from `ctx.rng` in the authors' order of calls: `choice(n, size, replace=False, p)` per round,
`integers(0, 2)` per tied comparison, `permutation(n_classes)` for step 3. Where we differ from that code:
- the sampling weights of a round are the indicator of [I, J]'s unlabeled samples divided by its sum with numpy
  (the authors divide 1/(J-I+1) values by Python's running sum): the same distribution, rounding aside;
- we stop walking a class in step 3 once every sample is labeled (the authors' loop does too, by flags);
- paths are sorted one class at a time (numpy's argsort of -q_k, as the authors), never all at once, so memory
  stays one column of the pool whatever the number of classes.
"""

from __future__ import annotations

from typing import Annotated

from alimb.options import Doc, Positive, RevealWithinBatch

import math

import numpy as np

from alimb.acquisition.base import Context, Selection, as_probabilities, whole_pool
from alimb.errors import UserError


def class_margin(p: np.ndarray, top: np.ndarray, k: int) -> np.ndarray:
    """q_k of every sample: p_k - max_j p_j + 1e-8 max_j p_j, with two classes + 1e-8 p_0 (the authors' expression,
    evaluated in their order)."""
    return p[:, k] - top + 1e-8 * (top if p.shape[1] > 2 else p[:, 0])


def threshold_scores(w: np.ndarray) -> np.ndarray:
    """acc(t) for t = 0..n: sum(w[:t]) - sum(w[t:]) (exact in integers)."""
    prefix = np.concatenate(([0], np.cumsum(w)))
    return 2 * prefix - prefix[-1]


class _Round:
    """The labels known so far (the pool's, then this call's), and the picks of this call in order."""

    def __init__(self, ctx: Context, p: np.ndarray, reveal: bool):
        self.known = np.where(ctx.labeled_mask, ctx.labels, -1).astype(np.int64)
        self.predicted = np.argmax(p, axis=1)
        aside = ctx.set_aside()  # picked by an enclosing AF (or skipped by a person): counted as predicted
        if aside.size:
            self.known[aside] = self.predicted[aside]
        self.ctx, self.reveal, self.picks = ctx, reveal, []

    def label(self, indices: list[int]) -> list[int]:
        """Pick `indices` and read their labels together (one question to the oracle: B1 parallel annotators, or a
        class's labels around its threshold), or take their predicted classes."""
        if not indices:
            return []
        ys = self.ctx.oracle(np.array(indices, dtype=np.int64)) if self.reveal else self.predicted[indices]
        ys = [int(y) for y in ys]
        self.known[indices] = ys
        self.picks.extend(indices)
        return ys

    def path(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(the pool sorted by -q_k, w along it)."""
        order = np.argsort(-q)
        lab = self.known[order]
        return order, np.where(lab < 0, 0, np.where(lab == k, 1, -1)).astype(np.int64)


def _interval(w: np.ndarray) -> tuple[int, int]:
    """[I, J]: the last +label before the first -label (0 if none), the last -label after the last +label
    (len - 1 if none), as positions on the path."""
    pos = np.flatnonzero(w != 0)
    plus = w[pos] > 0
    first_minus = int(np.argmin(plus)) if (~plus).any() else pos.size
    i = int(pos[first_minus - 1]) if first_minus > 0 else 0
    from_end = plus[::-1]
    first_plus = int(np.argmax(from_end)) if from_end.any() else pos.size
    j = int(pos[::-1][first_plus - 1]) if first_plus > 0 else len(w) - 1
    return i, j


def _reduce(state: _Round, order: np.ndarray, w: np.ndarray, k: int, lo: int, hi: int, b1: int, b2: int,
            rng: np.random.Generator) -> int:
    """Step 2 for one class; returns how many labels it spent."""
    n, spent = len(order), 0
    while b2 > 0:
        batch = min(b1, b2)
        free = np.zeros(n)
        if lo <= hi:
            free[lo:hi + 1] = state.known[order[lo:hi + 1]] < 0
        count = int(free.sum())
        if count == 0:
            break
        drawn = rng.choice(n, size=min(batch, count), replace=False, p=free / free.sum())
        for idx, y in zip(drawn, state.label([int(order[idx]) for idx in drawn])):  # the B1 annotators at once
            w[idx] = 1 if y == k else -1
            spent += 1
        diam = int((state.known[order[lo:hi + 1]] < 0).sum()) if lo <= hi else 0
        if diam > 0:
            base = b2 // b1
            shrink = 1 if base <= 1 else diam ** (1 / base)
            target = math.ceil(diam / shrink)
            acc = threshold_scores(w)
            while diam > target:
                left = acc[lo] < acc[hi] or (acc[lo] == acc[hi] and rng.integers(0, 2) == 0)
                if left:
                    diam -= int(state.known[order[lo]] < 0)
                    lo += 1
                else:
                    diam -= int(state.known[order[hi]] < 0)
                    hi -= 1
        b2 -= batch
    return spent


def _around(state: _Round, order: np.ndarray, w: np.ndarray, budget: int) -> None:
    """Step 3 for one class: `budget` unlabeled samples, alternately left and right of the best threshold."""
    n = len(order)
    right = int(np.argmax(threshold_scores(w)))
    left = right - 1
    chosen: list[int] = []  # the class's picks depend on positions only: their labels are read together
    while budget > 0 and (left >= 0 or right < n):
        if left >= 0:
            if state.known[order[left]] < 0:
                chosen.append(int(order[left]))
                budget -= 1
            left -= 1
            if budget == 0:
                break
        if right < n:
            if state.known[order[right]] < 0:
                chosen.append(int(order[right]))
                budget -= 1
            right += 1
    state.label(chosen)


@whole_pool
def direct(
    ctx: Context, *,
    parallel_annotators: Annotated[Positive, Doc("B1: labels drawn per version-space round (the authors': 20)")] = 20,
    min_budget_per_class: Annotated[Positive, Doc("version-space labels per class when the budget allows, else "
                                                  "budget // classes // 2 (the authors': 60)")] = 60,
    reveal_within_batch: RevealWithinBatch = True,
) -> Selection:
    """`budget` DIRECT labels; see the module docstring."""
    ctx.need("direct", "scores")
    ctx.pool()
    if ctx.candidates is not None:
        raise UserError("direct sorts the whole pool per class and cannot choose inside a set of candidates")
    p = as_probabilities(ctx.scores)
    top = p.max(axis=1)
    n_classes, budget, rng = ctx.n_classes, ctx.budget, ctx.rng
    state = _Round(ctx, p, ctx.reveals(reveal_within_batch))

    counts = np.bincount(state.known[state.known >= 0], minlength=n_classes)
    rank = np.argsort(-counts)
    per_class = budget // n_classes // 2
    if per_class < min_budget_per_class:
        n_eff, b2 = n_classes, per_class
    else:
        n_eff, b2 = budget // (2 * min_budget_per_class), min_budget_per_class
    spent = 0
    for k in rank[-n_eff:] if n_eff > 0 else []:
        order, w = state.path(class_margin(p, top, int(k)), int(k))
        lo, hi = _interval(w)
        b2 = min(b2, int((state.known < 0).sum()))
        spent += _reduce(state, order, w, int(k), lo, hi, parallel_annotators, b2, rng)

    rest = budget - spent
    for i, k in enumerate(rng.permutation(n_classes)):
        share = rest * (i + 1) // n_classes - rest * i // n_classes
        if share > 0:
            order, w = state.path(class_margin(p, top, int(k)), int(k))
            _around(state, order, w, share)
    return Selection(np.array(state.picks, dtype=np.int64), info={"n_version_space": spent})
