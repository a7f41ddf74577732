"""A meta AF in the spirit of TAILOR (Zhang et al., NeurIPS 2023): a Thompson-sampling bandit over configured AFs.

Our reading. The arms are AFs from conf/acquisition (`arms`: name -> AF). Each arm first proposes a full
batch (its own picks, in its order; arms never reveal labels: their context has no oracle, so an
arm that would reveal counts the predicted class instead). Then, slot by slot: every arm with proposals left draws
theta ~ Beta(1 + wins, 1 + losses) from the generator, the largest theta wins the slot (ties: the arm
listed first), and its next proposal not yet in the batch is taken. The reward is 1 when the pick's class
is a minority class of the labeled set at that moment (labeled count below the mean, the paper's Eq. 3
rule), else 0; the pick then counts for its class. The label is read from the simulated oracle
(`reveal_within_batch: true`, as TAILOR reads each label as it comes) or, with `false`, taken as the
predicted class. TAILOR's own reward is a class-balancing score over a multi-label setting; this one is
its single-label, minority-class form. The posteriors start afresh at every iteration (the AF is a pure
function of its inputs; a run resumed after any iteration makes the same choices). The arms' picks and
rewards are recorded per iteration (`acquisition_info`).
"""

from __future__ import annotations

import numpy as np

from alimb.acquisition.base import AF, Context, Selection
from alimb.errors import UserError


def tailor(ctx: Context, *, arms: dict[str, AF], reveal_within_batch: bool = True) -> Selection:
    """Thompson sampling over `arms`, rewarded by picks of minority classes (see the module docstring)."""
    ctx.pool()
    if not arms:
        raise UserError("tailor needs at least one arm; add one with +acquisition@acquisition.arms.NAME=NAME")
    if not ctx.reveals(reveal_within_batch):
        ctx.need("tailor", "scores")
    rng, budget, n_classes, scores = ctx.rng, ctx.budget, ctx.n_classes, ctx.scores
    names = list(arms)
    children = rng.spawn(len(names))
    proposals = [np.asarray(arms[name](ctx.replace(rng=child, oracle=None)).indices)
                 for name, child in zip(names, children)]
    cursor = np.zeros(len(names), dtype=np.int64)
    wins, losses = np.zeros(len(names)), np.zeros(len(names))
    counts = ctx.class_counts()
    taken: set[int] = set()
    picks, chosen_arm = [], []
    for _ in range(budget):
        live = []
        for a, proposal in enumerate(proposals):
            while cursor[a] < proposal.size and int(proposal[cursor[a]]) in taken:
                cursor[a] += 1
            if cursor[a] < proposal.size:
                live.append(a)
        theta = rng.beta(1 + wins[live], 1 + losses[live])
        a = live[int(np.argmax(theta))]
        i = int(proposals[a][cursor[a]])
        y = ctx.reveal(i) if ctx.reveals(reveal_within_batch) else int(np.argmax(scores[i]))
        reward = counts[y] * n_classes < counts.sum()  # below the mean count: a minority class
        wins[a] += reward
        losses[a] += 1 - reward
        counts[y] += 1
        taken.add(i)
        picks.append(i)
        chosen_arm.append(a)
    chosen = np.bincount(chosen_arm, minlength=len(names))
    info = {"arm_picks": dict(zip(names, chosen.tolist())), "arm_rewards": dict(zip(names, wins.astype(int).tolist()))}
    return Selection(np.array(picks, dtype=np.int64), info=info)
