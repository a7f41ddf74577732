"""Imbalance induction (SPEC §2), including the paper's Table I from the original class sizes."""

import numpy as np
import pytest

from alimb.data.imbalance import Counts, Exponential, NoImbalance, Step, induce
from alimb.errors import UserError
from alimb.pool import imbalance_ratio


@pytest.mark.parametrize(
    "n_classes,per_class,ir,total",
    [(100, 500, 0.740, 17168), (101, 750, 0.793, 22956)],  # CIFAR-100, Food-101 (Table I)
)
def test_table_one_is_reproduced(n_classes, per_class, ir, total):
    counts = Exponential(ir, total).counts(np.full(n_classes, per_class), np.random.default_rng(0))
    assert abs(counts.sum() - total) <= 0.01 * total
    assert abs(imbalance_ratio(counts) - ir) <= 0.005
    assert (counts >= 1).all() and (counts <= per_class).all()


def test_imbalance_ratio_is_population_std_over_mean():
    assert imbalance_ratio(np.array([1, 3])) == pytest.approx(0.5)


def test_without_total_the_largest_class_keeps_everything():
    counts = Exponential(0.75).counts(np.full(10, 150), np.random.default_rng(0))
    assert counts.max() == 150
    assert abs(imbalance_ratio(counts) - 0.75) <= 0.005


def test_counts_follow_the_class_order():
    natural = Exponential(0.5, order="natural").counts(np.array([100, 300, 200, 400]), np.random.default_rng(0))
    assert np.argsort(-natural).tolist() == [3, 1, 2, 0]


def test_induce_is_seeded_and_keeps_the_counts():
    labels = np.repeat(np.arange(10), 100)
    a = induce(labels, 10, Exponential(0.6), seed=3)
    b = induce(labels, 10, Exponential(0.6), seed=3)
    c = induce(labels, 10, Exponential(0.6), seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.diff(a) > 0), "sorted absolute indices, no duplicates"
    assert abs(imbalance_ratio(np.bincount(labels[a], minlength=10)) - 0.6) <= 0.005


def test_unreachable_ir_is_a_clear_error():
    with pytest.raises(UserError, match="cannot reach ir 5.0.*lower imbalance.target_ir"):
        Exponential(5.0).counts(np.full(5, 100), np.random.default_rng(0))


def test_unreachable_total_is_a_clear_error():
    with pytest.raises(UserError, match="cannot reach total 9000"):
        Exponential(0.7, total=9000).counts(np.full(20, 500), np.random.default_rng(0))


def test_step_none_and_counts_profiles():
    rng = np.random.default_rng(0)
    step = Step(minority_fraction=0.5, rho=10).counts(np.full(6, 100), rng)
    assert sorted(step.tolist()) == [10, 10, 10, 100, 100, 100]
    np.testing.assert_array_equal(NoImbalance().counts(np.array([3, 4]), rng), [3, 4])
    np.testing.assert_array_equal(Counts([2, 0, 5]).counts(np.array([3, 4, 5]), rng), [2, 0, 5])


def test_counts_from_a_file(tmp_path):
    path = tmp_path / "counts.txt"
    path.write_text("3\n1\n2\n")
    np.testing.assert_array_equal(Counts(path=str(path)).counts(np.array([5, 5, 5]), None), [3, 1, 2])


@pytest.mark.parametrize("counts,message", [([1, 2], "has 2 entries"), ([1, 9, 1], "asks 9 samples of class 1")])
def test_bad_counts_are_clear_errors(counts, message):
    with pytest.raises(UserError, match=message):
        Counts(counts).counts(np.array([5, 5, 5]), None)
