"""The contract every acquisition function in conf/acquisition/ must keep, alone and inside the composite AFs."""

from pathlib import Path

import numpy as np
import pytest

from alimb.acquisition import Context, Oracle
from alimb.config import build, expand_parts
from alimb.errors import UserError
from alimb.run import CONFIG_DIR

AFS = sorted(p.stem for p in (Path(CONFIG_DIR) / "acquisition").glob("*.yaml"))
N, C, D = 400, 8, 6


def context(seed=0, n_labeled=60, budget=10, rng_seed=1, **changes):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, N)
    y[:C] = np.arange(C)  # every class exists
    features = rng.normal(size=(N, D)) + y[:, None]
    head = (rng.normal(size=(D, C)), rng.normal(size=C))  # a linear last layer over `features`
    scores = features @ head[0] + head[1] + rng.normal(size=(N, C))
    scores[np.arange(N), y] += 1.5
    labeled = np.zeros(N, dtype=bool)
    labeled[rng.choice(N, n_labeled, replace=False)] = True
    ctx = Context(scores=scores, features=features, head=head, fg=features, labels=np.where(labeled, y, -1),
                  labeled_mask=labeled, n_classes=C, budget=budget, rng=np.random.default_rng(rng_seed),
                  oracle=Oracle(y))
    return ctx.replace(**changes)


@pytest.fixture(params=AFS)
def af(request, make_cfg):
    return build(make_cfg(f"acquisition={request.param}").acquisition)


@pytest.mark.parametrize("budget", [1, 37, 340])
def test_exact_budget_unique_unlabeled(af, budget):
    ctx = context(budget=budget)
    idx = np.asarray(af(ctx).indices)
    assert idx.shape == (budget,)
    assert np.unique(idx).size == budget, "duplicates"
    assert not ctx.labeled_mask[idx].any(), "selected a labeled sample"


def test_same_generator_same_selection(af):
    a = af(context(budget=50, rng_seed=7)).indices
    b = af(context(budget=50, rng_seed=7)).indices
    np.testing.assert_array_equal(a, b)


def test_inputs_are_left_as_they_were(af):
    """The context is read-only: no AF writes into the arrays it was given."""
    ctx = context(budget=50)
    before = {k: np.copy(getattr(ctx, k)) for k in ("scores", "features", "labels", "labeled_mask")}
    af(ctx)
    for k, value in before.items():
        np.testing.assert_array_equal(getattr(ctx, k), value, err_msg=f"the AF wrote into ctx.{k}")


def test_budget_larger_than_unlabeled_pool_is_a_clear_error(af):
    with pytest.raises(UserError, match="exceeds the 340 unlabeled"):
        af(context(budget=341))


def test_non_positive_budget_is_a_clear_error(af):
    with pytest.raises(UserError, match="positive"):
        af(context(budget=0))


def test_no_af_reads_labels_it_was_not_given(af):
    """Garbage as the oracle's answers leaves the picks of every AF that does not reveal within a batch
    unchanged; those that do ask only about samples they select."""
    ctx = context(budget=50, rng_seed=3)
    true = af(ctx)
    garbled = af(ctx.replace(oracle=Oracle(np.random.default_rng(9).integers(0, C, N)), rng=np.random.default_rng(3)))
    if getattr(af, "keywords", {}).get("reveal_within_batch"):
        assert np.isin(ctx.oracle.revealed, true.indices).all()
    else:
        np.testing.assert_array_equal(true.indices, garbled.indices)
        assert ctx.oracle.revealed.size == 0


def test_candidates_and_picks_are_honoured(af):
    """Narrowed as a composite narrows it (a set of candidates, picks already made), an AF picks only what is left;
    an AF that selects over the whole pool refuses a set of candidates in one line instead."""
    unlabeled = np.flatnonzero(~context().labeled_mask)
    candidates, picked = unlabeled[::2], unlabeled[::6]
    ctx = context(budget=20, candidates=candidates, picked=picked)
    if getattr(getattr(af, "func", af), "whole_pool", False):
        with pytest.raises(UserError, match="whole pool"):
            af(ctx)
        ctx = context(budget=20, picked=picked)
        candidates = unlabeled
    idx = np.asarray(af(ctx).indices)
    assert idx.size == 20 and np.unique(idx).size == 20
    assert np.isin(idx, candidates).all() and not np.isin(idx, picked).any()


@pytest.mark.parametrize("inner", AFS)
def test_any_af_serves_as_auxiliary_within_or_arm(make_cfg, inner):
    """`acquisition.auxiliary=NAME`, `acquisition.within=NAME`, an arm of the bandit: every AF of the group, chosen
    by name as on the command line, runs there (or is refused in one line before any work)."""
    for slot, base in (("auxiliary", "dmcs_rand"), ("within", "umcs_rand"), (f"arms.{inner}", "minority_bandit")):
        cfg = make_cfg(f"acquisition={base}", f"++acquisition.{slot}={inner}" if slot.startswith("arms")
                       else f"acquisition.{slot}={inner}")
        try:
            expand_parts(cfg)
        except UserError as err:
            assert slot == "within" and "whole pool" in str(err), err
            continue
        sel = build(cfg.acquisition)(context(budget=60))
        assert len(sel.indices) == 60 and np.unique(sel.indices).size == 60
