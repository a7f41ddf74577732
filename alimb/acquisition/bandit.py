"""A Thompson-sampling bandit over configured AFs, rewarded by minority-class picks (`minority_bandit`).

Inspired by TAILOR (Zhang et al., NeurIPS 2023), and deliberately not named after it: the authors' code
(jifanz/TAILOR, strategy/meta/thompson_meta.py) differs in ways that change picks. There the posterior is updated
only after the batch, as if its labels were revealed then; it is kept across rounds, decayed by 0.9; each arm has
a Dirichlet over classes and the reward is theta . v with v_c = 1 / max(1, n_c) (negative for a class holding over
half the labels); and its arms are per-class sub-procedures. Here:

The arms are AFs from conf/acquisition (`arms`: name -> AF). Each arm first proposes a full
batch (its own picks, in its order; arms never reveal labels: their context has no oracle, so an
arm that would reveal counts the predicted class instead). Then, slot by slot: every arm with proposals left draws
theta ~ Beta(1 + wins, 1 + losses) from the generator, the largest theta wins the slot (ties: the arm
listed first), and its next proposal not yet in the batch is taken. The reward is 1 when the pick's class
is a minority class of the labeled set at that moment (labeled count below the mean, the paper's Eq. 3
rule), else 0; the pick then counts for its class. The label is read from the simulated oracle
(`reveal_within_batch: true`: each label as it comes, unlike TAILOR; with a person answering, a sub-round of one
sample per pick, alimb.person) or, with `false`, taken as the predicted
class. The posteriors start afresh at every iteration (the AF is a pure function of its inputs; a run resumed
after any iteration makes the same choices). The arms' picks and rewards are recorded per iteration
(`acquisition_info`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from alimb.options import Doc, Part, RevealWithinBatch

import numpy as np

from alimb.acquisition.base import AF, Context, Selection


def minority_bandit(
    ctx: Context, *,
    arms: Annotated[dict[str, Annotated[AF, Part("acquisition", oracle=False)]], Field(min_length=1), Doc(
        "the arms (one or more): AFs of conf/acquisition under their names; +acquisition@acquisition.arms.NAME=NAME "
        "adds one")],
    reveal_within_batch: RevealWithinBatch = True,
) -> Selection:
    """Thompson sampling over `arms`, rewarded by picks of minority classes (see the module docstring: not TAILOR)."""
    ctx.pool()
    if not ctx.reveals(reveal_within_batch):
        ctx.need("minority_bandit", "scores")
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
