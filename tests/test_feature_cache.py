"""The feature cache is never silently wrong: keyed on content, damage detected and re-extracted, parallel-safe."""

import os
import subprocess
import sys

import numpy as np
import pytest

from alimb.backbone import Pixels
from alimb.data.images import image_folder
from alimb.features import featurize
from tests import image_archives


def pixels():
    return Pixels(resolution=8, num_workers=0)


def extract(root, cache, caplog=None):
    return featurize(image_folder(str(root), test_per_class=2), pixels(), cache)


def test_replacing_a_class_s_images_re_extracts(tmp_path, caplog):
    root = image_archives.image_folder(tmp_path / "imgs")
    first = extract(root, tmp_path / "cache")
    for i, path in enumerate(sorted((root / "c1").iterdir())):  # same names, other pictures
        image_archives.write_image(path, 1000 + i)
        os.utime(path, ns=(1, 1_000_000_000 + i))  # a different mtime, as any rewrite gives
    with caplog.at_level("INFO"):
        second = extract(root, tmp_path / "cache")
    assert "extracting" in caplog.text
    fresh = extract(root, tmp_path / "fresh")
    np.testing.assert_array_equal(second.train_x, fresh.train_x)
    assert not np.array_equal(second.train_x, first.train_x)


def test_adding_images_re_extracts_with_the_new_count(tmp_path):
    root = image_archives.image_folder(tmp_path / "imgs")
    before = extract(root, tmp_path / "cache")
    for i in range(5):
        image_archives.write_image(root / "c2" / f"new{i}.png", 500 + i)
    after = extract(root, tmp_path / "cache")
    assert len(after.train_y) == len(before.train_y) + 5 and after.train_x.shape[0] == len(after.train_y)


DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
    "zero bytes": lambda p: p.write_bytes(b""),
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
    "wrong shape": lambda p: np.save(p, np.zeros((3, 64), dtype=np.float32)),
    "missing companion": lambda p: p.with_suffix(".bad.json").unlink(),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_cache_file_is_reported_in_one_line_and_re_extracted(tmp_path, caplog, kind):
    root = image_archives.image_folder(tmp_path / "imgs")
    reference = extract(root, tmp_path / "cache")
    (train_file,) = (tmp_path / "cache").rglob("train-*.npy")
    DAMAGE[kind](train_file)
    with caplog.at_level("WARNING"):
        again = extract(root, tmp_path / "cache")
    damaged = [r.getMessage() for r in caplog.records if "damaged feature cache" in r.getMessage()]
    assert len(damaged) == 1 and str(train_file) in damaged[0] and "\n" not in damaged[0]
    np.testing.assert_array_equal(again.train_x, reference.train_x)
    assert extract(root, tmp_path / "cache").train_x.shape == reference.train_x.shape  # and sound afterwards


def test_parallel_jobs_with_loader_workers_and_an_empty_cache_extract_once(tmp_path):
    root = image_archives.image_folder(tmp_path / "imgs", per_class=(20, 20, 20))
    proc = subprocess.run(
        [sys.executable, "-m", "alimb.run", "-m", "hydra/launcher=parallel", "dataset=image_folder",
         f"dataset.loader.root={root}", "dataset.loader.test_per_class=3", "imbalance=none", "al.iterations=2",
         "al.per_iteration=4", "backbone=pixels", "backbone.num_workers=2", "seed=0,1", f"cache_dir={tmp_path / 'cache'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert out.count("extracting") == 2  # train and test, once each for both jobs
    assert len(list(tmp_path.glob("outputs/**/summary.json"))) == 2
