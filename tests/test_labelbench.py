"""LabelBench's imbalance profile: classes 0..N-2 kept and the rest folded into class N-1 ("others"), nothing
subsampled, in both splits (LabelBench's target_transform: min(y, N-1))."""

import numpy as np
import pytest

from alimb.data.imbalance import LabelBench
from alimb.errors import UserError
from alimb.iteration import load_data
from tests import image_archives


@pytest.mark.parametrize("classes, per_class, n, expected", [
    (10, 5000, 2, [5000, 45000]),  # CIFAR-10 imb_2, as LabelBench, GALAXY and DIRECT state it
    (10, 5000, 3, [5000, 5000, 40000]),
    (100, 500, 2, [500, 49500]),  # CIFAR-100 imb_2
    (100, 500, 10, [500] * 9 + [45500]),
])
def test_the_fold_gives_the_class_counts_those_papers_state(classes, per_class, n, expected):
    labels = np.repeat(np.arange(classes), per_class)  # CIFAR's training labels: balanced
    mapping, names = LabelBench(n).fold([f"c{i}" for i in range(classes)])
    counts = np.bincount(mapping[labels], minlength=n)
    assert counts.tolist() == expected and LabelBench(n).counts(counts, None).tolist() == expected
    assert names[-1] == "others" and names[:-1] == [f"c{i}" for i in range(n - 1)]


def test_cifar10_imb_2_from_its_archive_folds_both_splits(make_cfg, tmp_path):
    image_archives.cifar10(tmp_path, per_class_train=4, per_class_test=3)
    data = load_data(make_cfg("dataset=cifar10", f"data_dir={tmp_path}", "imbalance=labelbench", "backbone=pixels",
                              "backbone.resolution=8", "al.iterations=2", "al.per_iteration=5",
                              f"cache_dir={tmp_path / 'cache'}"), needs_images=False)
    assert data.counts.tolist() == [20, 180] and data.classes == ["c0", "others"]  # 5 batches of 4 per class
    assert np.bincount(data.test_y).tolist() == [3, 27]  # the test set folded the same way (not balanced)


def test_more_folded_classes_than_the_dataset_has_is_one_line():
    with pytest.raises(UserError, match=r"imbalance.n=12 folds into more classes than the dataset's 10"):
        LabelBench(12).fold([str(i) for i in range(10)])
