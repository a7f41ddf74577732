import numpy as np
import pytest

from alimb.pool import Pool, minority_classes


def test_labeled_round_counts_and_known_labels():
    pool = Pool(np.array([0, 1, 1, 2, 2, 2]), n_classes=4)
    pool.label(np.array([0, 3]), 0)
    pool.label(np.array([4]), 1)
    assert pool.labeled_round.tolist() == [0, -1, -1, 0, 1, -1]
    assert pool.class_counts().tolist() == [1, 0, 2, 0]
    assert pool.class_counts(upto=0).tolist() == [1, 0, 1, 0]
    assert pool.known_labels().tolist() == [0, -1, -1, 2, 2, -1]
    assert pool.unlabeled_idx.tolist() == [1, 2, 5]


def test_labeling_twice_is_refused():
    pool = Pool(np.array([0, 1]), 2)
    pool.label(np.array([0]), 0)
    with pytest.raises(AssertionError, match="already labeled"):
        pool.label(np.array([0]), 1)


def test_minority_is_below_the_mean_count():
    assert minority_classes(np.array([5, 1, 3, 0])).tolist() == [False, True, False, True]
