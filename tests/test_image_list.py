"""dataset=image_list and the long-tail presets (ImageNet-LT, Places-LT, iNaturalist 2018): list files of
`relative/path label` lines, written by the test in that form."""

import numpy as np
import pytest

from alimb.data.images import image_list
from alimb.errors import UserError
from alimb.loop import run_experiment
from tests import image_archives


def test_the_lists_give_the_pool_and_the_test_set(tmp_path):
    root, train, test = image_archives.image_list(tmp_path)
    data = image_list(str(root), str(train), str(test))
    assert data.n_classes == 3 and np.bincount(data.train.labels).tolist() == [30, 15, 8]
    assert np.bincount(data.test.labels).tolist() == [4, 4, 4]
    assert data.train.paths[0] == root / "train/n000/img_0.JPEG" and data.train.image(0).shape[2] == 3


def test_bad_lists_are_one_line_each(tmp_path):
    root, train, test = image_archives.image_list(tmp_path)
    with pytest.raises(UserError, match=r"image list not found: .*nope.txt; download the benchmark's list files"):
        image_list(str(root), str(tmp_path / "nope.txt"), str(test))
    train.write_text(train.read_text() + "a/path/without/label\n")
    with pytest.raises(UserError, match=r"line 54 of .*LT_train.txt is not 'relative/path label'"):
        image_list(str(root), str(train), str(test))


@pytest.mark.parametrize("preset,files", [
    ("imagenet_lt", ("ImageNet", "ImageNet_LT/ImageNet_LT_train.txt", "ImageNet_LT/ImageNet_LT_test.txt")),
    ("places_lt", ("Places365", "Places_LT/Places_LT_train.txt", "Places_LT/Places_LT_test.txt")),
    ("inat2018", ("iNaturalist2018", "iNaturalist18/iNaturalist18_train.txt", "iNaturalist18/iNaturalist18_val.txt")),
])
def test_the_presets_name_the_official_lists_and_keep_the_pool_as_it_is(make_cfg, preset, files):
    cfg = make_cfg(f"dataset={preset}", "data_dir=/d")
    loader = cfg.dataset.loader
    assert (loader.root, loader.train_list, loader.test_list) == tuple(f"/d/{f}" for f in files)
    assert cfg.imbalance.name == "none"  # already long-tailed
    assert make_cfg(f"dataset={preset}", "imbalance=longtail").imbalance.name == "lt100"  # the command line wins


def test_a_run_on_an_image_list(make_cfg, tmp_path):
    root, train, test = image_archives.image_list(tmp_path / "data")
    cfg = make_cfg("dataset=image_list", f"dataset.loader.root={root}", f"dataset.loader.train_list={train}",
                   f"dataset.loader.test_list={test}", "imbalance=none", "backbone=pixels", "backbone.resolution=8",
                   "al.iterations=2", "al.per_iteration=5", f"cache_dir={tmp_path / 'cache'}")
    records = run_experiment(cfg, tmp_path / "run")
    assert [r.n_labeled for r in records] == [5, 10] and len(records[0].class_counts) == 3
