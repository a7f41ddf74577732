"""Acquisition functions: pure functions of one read-only context.

    af(ctx: Context) -> Selection

`Context` (alimb.acquisition.base) holds everything the loop knows: scores, the scheme's features, F_g,
the head, the known labels, the labeled mask, the budget, the generator, the oracle, and for composite
AFs the narrowing (candidates, picks already made, centers). An AF's own settings are keyword arguments
bound from its config (`_partial_: true`); a composite (the MCS family, the bandit, PCB, AnchorAL) passes the context on
whole, so any AF serves inside another.

BASE is `alimb.acquisition.boundary.base`: not re-exported here, where `base` names the shared module.
"""

from alimb.acquisition.mixing import alfamix
from alimb.acquisition.anchors import anchoral
from alimb.acquisition.balanced_mip import class_balanced
from alimb.acquisition.bandit import minority_bandit
from alimb.acquisition.base import AF, Context, Oracle, Selection
from alimb.acquisition.graphs import galaxy
from alimb.acquisition.gradients import badge
from alimb.acquisition.lowbudget import probcover, typiclust
from alimb.acquisition.submodular import flqmi
from alimb.acquisition.cds import cds_bal
from alimb.acquisition.dropout import dropquery
from alimb.acquisition.thresholds import direct
from alimb.acquisition.kcenter import coreset, kcenter_greedy
from alimb.acquisition.minority import minority_quotas, minority_sampling
from alimb.acquisition.balancing import pcb
from alimb.acquisition.uncertainty import certain, entropy, least_confidence, margin, random

__all__ = [
    "AF", "Context", "Oracle", "Selection", "badge", "random", "margin", "entropy", "least_confidence", "coreset", "kcenter_greedy",
    "cds_bal",
    "minority_sampling", "minority_quotas", "certain",
    "galaxy", "direct", "class_balanced", "flqmi", "typiclust", "probcover", "minority_bandit", "dropquery", "alfamix", "pcb", "anchoral",
]
