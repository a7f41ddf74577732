"""The iteration's metrics against scikit-learn's (an independent implementation) and hand computations."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from alimb.metrics import evaluate, macro_f1


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_and_accuracy_equal_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 8, 200)
    y_true[y_true == 7] = 6  # class 7 never in the test set, sometimes predicted
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 8, 200))
    present = np.unique(y_true)
    assert macro_f1(y_true, y_pred, 8) == pytest.approx(
        f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
    assert evaluate(y_true, y_pred, 8, np.zeros(8, dtype=bool))["accuracy"] == pytest.approx(
        balanced_accuracy_score(y_true, y_pred))


def test_macro_f1_by_hand():
    # class 0: TP 1, FN 1, FP 0 -> 2/3; class 1: TP 1, FP 1 -> 2/3; class 2 absent from y_true: not averaged
    assert macro_f1(np.array([0, 0, 1]), np.array([0, 1, 1]), 3) == pytest.approx(2 / 3)
    assert macro_f1(np.array([0, 1]), np.array([2, 2]), 3) == 0.0


def test_digits_read_without_scikit_learn_equal_its_loader():
    from sklearn.datasets import load_digits as reference

    from alimb.data.digits import load_digits

    ours, theirs = load_digits(), reference()
    x = np.concatenate([ours.train_x, ours.test_x])
    y = np.concatenate([ours.train_y, ours.test_y])
    order = np.lexsort(np.c_[x, y].T)
    expected = np.c_[(theirs.data / 16.0).astype(np.float32), theirs.target]
    np.testing.assert_array_equal(np.c_[x, y][order], expected[np.lexsort(expected.T)])
    assert ours.train_images.shape[1:] == (8, 8, 3) and len(x) == 1797
