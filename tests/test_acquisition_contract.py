"""The contract every acquisition function in conf/acquisition/ must keep."""

from pathlib import Path

import numpy as np
import pytest

from alimb.acquisition import Oracle
from alimb.config import build
from alimb.errors import UserError
from alimb.run import CONFIG_DIR

AFS = sorted(p.stem for p in (Path(CONFIG_DIR) / "acquisition").glob("*.yaml"))
N, C, D = 400, 8, 6


def inputs(seed=0, n_labeled=60):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, N)
    y[:C] = np.arange(C)  # every class exists
    features = rng.normal(size=(N, D)) + y[:, None]
    head = (rng.normal(size=(D, C)), rng.normal(size=C))  # a linear last layer over `features`
    scores = features @ head[0] + head[1] + rng.normal(size=(N, C))
    scores[np.arange(N), y] += 1.5
    labeled = np.zeros(N, dtype=bool)
    labeled[rng.choice(N, n_labeled, replace=False)] = True
    return dict(scores=scores, features=features, head=head, fg=features, labels=np.where(labeled, y, -1), labeled_mask=labeled,
                n_classes=C, oracle=Oracle(y))


@pytest.fixture(params=AFS)
def af(request, make_cfg):
    return build(make_cfg(f"acquisition={request.param}").acquisition)


@pytest.mark.parametrize("budget", [1, 37, 340])
def test_exact_budget_unique_unlabeled(af, budget):
    x = inputs()
    sel = af(**x, budget=budget, rng=np.random.default_rng(1))
    idx = np.asarray(sel.indices)
    assert idx.shape == (budget,)
    assert np.unique(idx).size == budget, "duplicates"
    assert not x["labeled_mask"][idx].any(), "selected a labeled sample"
    assert 0 <= sel.n_quota <= budget


def test_same_generator_same_selection(af):
    x = inputs()
    a = af(**x, budget=50, rng=np.random.default_rng(7)).indices
    b = af(**x, budget=50, rng=np.random.default_rng(7)).indices
    np.testing.assert_array_equal(a, b)


def test_budget_larger_than_unlabeled_pool_is_a_clear_error(af):
    x = inputs()
    with pytest.raises(UserError, match="exceeds the 340 unlabeled"):
        af(**x, budget=341, rng=np.random.default_rng(0))


def test_non_positive_budget_is_a_clear_error(af):
    with pytest.raises(UserError, match="positive"):
        af(**inputs(), budget=0, rng=np.random.default_rng(0))


def test_no_af_reads_labels_it_was_not_given(af):
    """Garbage as the labels of unlabeled samples (and as the oracle's answers) leaves the picks of every AF
    that does not reveal within a batch unchanged; those that do ask only about samples they select."""
    x = inputs()
    true = af(**x, budget=50, rng=np.random.default_rng(3))
    garbage = dict(x, oracle=Oracle(np.random.default_rng(9).integers(0, C, N)))
    garbled = af(**garbage, budget=50, rng=np.random.default_rng(3))
    if getattr(af, "keywords", {}).get("reveal_within_batch"):
        assert np.isin(x["oracle"].revealed, true.indices).all()
    else:
        np.testing.assert_array_equal(true.indices, garbled.indices)
        assert x["oracle"].revealed.size == 0
