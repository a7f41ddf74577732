"""PCB (Bae et al., CVPR 2024, "Active Prompt Learning in Vision Language Models"): a base AF proposes candidates,
then the batch is filled one pick at a time from the class least labeled so far, counted by the predicted class.

Our reading of the authors' code (kaist-dmlab/pcb at 7f32a1b8, `trainers/alvlm.py` lines 441-469 and
`trainers/active_learning/pcb.py` lines 43-66):

1. The base AF proposes n_cand = int(γ · |training set|) samples of the unlabeled pool (`share` = γ, their
   `TRAINER.COOPAL.GAMMA 0.1` in `scripts/alvlm/main.sh`; the training set counts the labeled samples too, as their
   `len(unlabeled_dst)` never shrinks). The proposals keep the base's order.
2. statistics_c = the labeled count of class c (true labels); every proposal's class is the model's predicted class
   (argmax of the scores).
3. Until the budget is filled: c = argmin statistics (the first on ties, as `torch.argmin`); the positions of the
   proposals predicted as c (in the base's order, those already picked included) are shuffled and the first not
   yet picked is taken; statistics_c += 1 (the predicted class counts, not the label).

Generator calls, in this order per pick (the authors' `random.shuffle` and `random.randint`): `rng.permutation`
of class c's proposals, or for a random pick `rng.integers(n_cand)` until an unpicked position comes up.

Where we differ, and why:

- **Exhausted class** (their `pcb.py` lines 48-53 and 60-64): when class c has no proposal left (none predicted as
  c, or all picked), their code takes a uniformly random proposal and leaves statistics alone, so c stays the
  argmin and every later pick of the batch is random. A class with few labels that the model never predicts (the
  usual state of the rarest classes) turns the whole batch random: a bug, not a choice. By default
  (`exhausted: next_class`) c is the least-labeled class among those with a proposal left; until the first
  exhaustion the picks are theirs, generator calls included. `exhausted: random` is their code.
- **Fewer proposals than the budget**: their loop never ends (the random fallback waits for an unpicked position
  that cannot come). The base proposes at least the budget (and at most the samples available).
- **Proposal count**: their share of the whole training set is the default; `multiple` makes it a multiple of the
  budget instead (the paper's framing of a first stage that over-proposes).
- Inside a composite, the samples an enclosing AF picked earlier in the batch count for their predicted class.

The base proposes without the oracle (`oracle=None`): most proposals are not selected, so none may have its label
revealed; a base that reveals within a batch counts its predicted class instead (as the bandit's arms).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import numpy as np
from pydantic import Field

from alimb.acquisition.base import AF, Context, Selection, per_row
from alimb.options import Doc, Number, Part, PositiveNumber


def pcb(
    ctx: Context, *,
    base: Annotated[AF, Part("acquisition", oracle=False), Doc(
        "proposes the candidates PCB balances (an AF of conf/acquisition)")],
    share: Annotated[Number, Field(gt=0, le=1), Doc(
        "the base proposes this share of the whole pool, labeled samples included (the authors' gamma 0.1)")] = 0.1,
    multiple: Annotated[Optional[PositiveNumber], Doc(
        "if set, the base proposes this multiple of the budget instead of `share`")] = None,
    exhausted: Annotated[Literal["next_class", "random"], Doc(
        "when the least-labeled class has no proposal left: the next least-labeled class that has one, or (the "
        "authors' code) random proposals for the rest of the batch")] = "next_class",
) -> Selection:
    """PCB over the base's proposals: each pick from the class least labeled so far (see the module docstring)."""
    ctx.need("pcb", "scores")
    available = ctx.pool()
    wanted = int(multiple * ctx.budget) if multiple is not None else int(share * ctx.n_pool)
    n_propose = min(max(wanted, ctx.budget), available.size)
    proposal = base(ctx.replace(budget=n_propose, oracle=None))
    proposed = np.asarray(proposal.indices, dtype=np.int64)
    argmax = lambda s: np.argmax(s, axis=1)  # noqa: E731
    predicted = per_row(argmax, ctx.scores, proposed)
    counts = ctx.class_counts()
    if ctx.picked is not None and len(ctx.picked):
        counts += np.bincount(per_row(argmax, ctx.scores, np.asarray(ctx.picked, dtype=np.int64)),
                              minlength=ctx.n_classes)
    positions, n_random = balance(predicted, counts, ctx.budget, ctx.rng, faithful=exhausted == "random")
    info = {**proposal.info, "pcb_proposed": int(proposed.size), "pcb_random_picks": n_random}
    return Selection(proposed[positions], info=info)


def balance(predicted: np.ndarray, counts: np.ndarray, budget: int, rng: np.random.Generator,
            faithful: bool = False) -> tuple[np.ndarray, int]:
    """Positions into the proposals (predicted: (n,) their predicted classes) picked one at a time for the class of
    least count; `faithful`: the authors' random picks once that class has no proposal left. Returns the positions
    in pick order and how many were random."""
    n = predicted.size
    assert budget <= n, "PCB needs at least `budget` proposals"
    counts = np.asarray(counts, dtype=np.int64).copy()
    members = [np.flatnonzero(predicted == c) for c in range(counts.size)]  # positions in the base's order
    left = np.array([m.size for m in members], dtype=np.int64)  # proposals of each class not picked yet
    taken = np.zeros(n, dtype=bool)
    picks, n_random = [], 0
    while len(picks) < budget:
        c = int(np.argmin(counts)) if faithful else int(np.argmin(np.where(left > 0, counts, np.iinfo(np.int64).max)))
        j = -1
        if members[c].size:
            order = members[c][rng.permutation(members[c].size)]
            free = order[~taken[order]]
            j = int(free[0]) if free.size else -1
        if j < 0:  # only when faithful: class c is exhausted
            j = int(rng.integers(n))
            while taken[j]:
                j = int(rng.integers(n))
            n_random += 1
        else:
            counts[c] += 1
        left[predicted[j]] -= 1
        taken[j] = True
        picks.append(j)
    return np.array(picks, dtype=np.int64), n_random
