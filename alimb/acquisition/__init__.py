"""Acquisition functions: pure functions over arrays.

Every AF is called with keyword arguments and ignores the ones it does not need:

    af(scores=..., features=..., labels=..., labeled_mask=..., n_classes=..., budget=..., rng=...) -> Selection

- scores: (n_pool, n_classes) model outputs (probabilities or SVM decision values)
- features: (n_pool, d) the scheme's feature space (F_g for the SVM schemes, M_{k-1}'s penultimate layer for fine tuning)
- fg: (n_pool, d) F_g, the pretrained backbone's features (normalised as configured), whatever the scheme
- labels: (n_pool,) true label where labeled, -1 elsewhere (an AF never sees unlabeled labels)
- labeled_mask: (n_pool,) bool
- n_classes: number of classes (a class may have no labeled sample yet)
- budget: how many unlabeled samples to select
- rng: numpy.random.Generator, the only source of randomness (ties included)
- head: (W (d, n_classes), b (n_classes,)), the scheme's linear last layer over `features` (None at iteration 0)
- oracle: callable, absolute indices -> true labels, only for AFs that reveal within a batch
  (`reveal_within_batch`); it may be asked only about samples the AF selects

BASE is `alimb.acquisition.boundary.base`: not re-exported here, where `base` names the shared module.
"""

from alimb.acquisition.balanced_mip import class_balanced
from alimb.acquisition.bandit import tailor
from alimb.acquisition.base import Oracle, Selection
from alimb.acquisition.graphs import galaxy
from alimb.acquisition.gradients import badge
from alimb.acquisition.lowbudget import probcover, typiclust
from alimb.acquisition.submodular import flqmi
from alimb.acquisition.cds import cds_bal
from alimb.acquisition.kcenter import coreset, kcenter_greedy
from alimb.acquisition.minority import certain, diverse, minority_quotas, minority_sampling, uncertain
from alimb.acquisition.uncertainty import entropy, least_confidence, margin, random

__all__ = [
    "Oracle", "Selection", "badge", "random", "margin", "entropy", "least_confidence", "coreset", "kcenter_greedy",
    "cds_bal",
    "minority_sampling", "minority_quotas", "certain", "uncertain", "diverse",
    "galaxy", "class_balanced", "flqmi", "typiclust", "probcover", "tailor",
]
