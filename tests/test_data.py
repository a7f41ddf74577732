import numpy as np
import pytest

from alimb.data.digits import load_digits
from alimb.data.embeddings import load_embeddings
from alimb.data.synthetic import make_synthetic
from alimb.errors import UserError


def test_digits_has_a_balanced_test_split():
    data = load_digits(test_per_class=30, split_seed=0)
    assert data.n_classes == 10
    assert np.bincount(data.test_y).tolist() == [30] * 10
    assert len(data.train_y) + len(data.test_y) == 1797
    assert data.train_x.shape[1] == 64 and 0 <= data.train_x.min() and data.train_x.max() <= 1


def test_synthetic_is_seeded():
    a, b, c = make_synthetic(seed=1), make_synthetic(seed=1), make_synthetic(seed=2)
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert not np.array_equal(a.train_x, c.train_x)
    assert np.bincount(a.test_y).tolist() == [20] * 20


def save(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def good_arrays():
    rng = np.random.default_rng(0)
    return dict(
        train_features=rng.normal(size=(30, 4)), train_labels=np.arange(30) % 3,
        test_features=rng.normal(size=(9, 4)), test_labels=np.arange(9) % 3,
    )


def test_embeddings_round_trip(tmp_path):
    data = load_embeddings(save(tmp_path / "e.npz", **good_arrays(), class_names=np.array(["a", "b", "c"])))
    assert data.class_names == ["a", "b", "c"] and data.train_x.dtype == np.float32 and data.n_classes == 3


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda a: a.pop("test_labels"), "lacks test_labels"),
        (lambda a: a.update(train_labels=np.arange(29)), "must be \\(n, d\\)"),
        (lambda a: a["train_features"].__setitem__((0, 0), np.nan), "finite"),
        (lambda a: a.update(test_labels=-np.ones(9, dtype=int)), "non-negative integers"),
        (lambda a: a.update(test_features=np.zeros((9, 5))), "differ in dimension"),
    ],
)
def test_malformed_embeddings_are_clear_errors(tmp_path, change, message):
    arrays = good_arrays()
    change(arrays)
    with pytest.raises(UserError, match=message):
        load_embeddings(save(tmp_path / "e.npz", **arrays))


def test_missing_or_unreadable_embeddings(tmp_path):
    with pytest.raises(UserError, match="not found.*dataset.loader.path"):
        load_embeddings(str(tmp_path / "nope.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(UserError, match="cannot read"):
        load_embeddings(str(bad))
