"""imbalance=longtail: CIFAR-10/100-LT's counts as Cui et al. / Cao et al. build them."""

import numpy as np
import pytest

from alimb.config import build
from alimb.data.imbalance import LongTail, induce
from alimb.errors import UserError
from alimb.schema import validate


def published(n_max, n_classes, rho):
    """The benchmarks' rule, transcribed: img_max * (1 / rho) ** (i / (C - 1)), truncated to int."""
    return [int(n_max * (1 / rho) ** (i / (n_classes - 1.0))) for i in range(n_classes)]


def test_cifar_lt_counts_are_the_papers():
    assert LongTail(100).counts(np.full(10, 5000), None).tolist() == \
        [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # CIFAR-10-LT, rho = 100
    assert LongTail(100).counts(np.full(10, 5000), None).sum() == 12406
    assert LongTail(100).counts(np.full(100, 500), None).sum() == 10847  # CIFAR-100-LT, rho = 100
    for rho in (10, 50, 100):
        for n_max, c in ((5000, 10), (500, 100)):
            assert LongTail(rho).counts(np.full(c, n_max), None).tolist() == published(n_max, c, rho)


def test_each_class_keeps_its_first_samples_in_dataset_order(make_cfg):
    labels = np.tile(np.arange(10), 50)  # 50 per class, interleaved
    kept = induce(labels, 10, build(make_cfg("imbalance=longtail", "imbalance.rho=10").imbalance,
                                    drop=("name", "seed")), seed=3)
    for c, n in enumerate(published(50, 10, 10)):
        np.testing.assert_array_equal(kept[labels[kept] == c], np.flatnonzero(labels == c)[:n])


def test_longtail_runs_and_names_its_rho(make_cfg, tmp_path):
    from alimb.loop import run_experiment

    cfg = make_cfg("imbalance=longtail", "imbalance.rho=10", "al.iterations=2", "al.per_iteration=20")
    assert cfg.imbalance.name == "lt10"
    records = run_experiment(cfg, tmp_path)
    assert len(records) == 2
    with pytest.raises(UserError, match=r"imbalance.rho=0.5 is invalid"):
        validate(make_cfg("imbalance=longtail", "imbalance.rho=0.5"))
