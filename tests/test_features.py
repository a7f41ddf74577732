"""Feature extraction and its cache, end to end on a tiny image folder with a random small backbone."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from alimb.backbone import TorchvisionBackbone
from alimb.data.images import image_folder
from alimb.errors import UserError
from alimb.features import featurize
from alimb.loop import run_experiment
from tests import image_archives

TINY_BACKBONE = ("backbone.weights=null", "backbone.resolution=32", "backbone.num_workers=0", "backbone.batch_size=8")


def small_backbone():
    return TorchvisionBackbone(weights=None, resolution=32, num_workers=0, batch_size=8, device="cpu")


def test_al_run_on_an_image_folder_twice_second_reads_the_cache(make_cfg, tmp_path, monkeypatch):
    root = image_archives.image_folder(tmp_path / "imgs")
    overrides = (
        "dataset=image_folder", f"dataset.loader.root={root}", "dataset.loader.test_per_class=3",
        "imbalance=none", "al.iterations=3", "al.per_iteration=4", "acquisition=dmcs_rand",
        f"cache_dir={tmp_path / 'cache'}", *TINY_BACKBONE,
    )
    first = run_experiment(make_cfg(*overrides), tmp_path / "run1")
    assert len(first) == 3 and len(list((tmp_path / "cache").rglob("*.npy"))) == 2  # train and test

    def no_model(self):
        raise AssertionError("the model was built although the features are cached")

    monkeypatch.setattr(TorchvisionBackbone, "build", no_model)
    second = run_experiment(make_cfg(*overrides), tmp_path / "run2")
    strip = lambda rs: [r.without_timings() for r in rs]  # noqa: E731
    assert strip(second) == strip(first)


def test_features_are_512d_and_deterministic(tmp_path):
    data = image_folder(str(image_archives.image_folder(tmp_path / "imgs")), test_per_class=3)
    a = featurize(data, small_backbone(), tmp_path / "c1")
    b = featurize(data, small_backbone(), tmp_path / "c2")
    assert a.train_x.shape == (17, 512) and np.isfinite(a.train_x).all()
    np.testing.assert_array_equal(a.train_x, b.train_x)


def test_corrupt_images_are_skipped_and_counted_or_fail(tmp_path, caplog):
    root = image_archives.image_folder(tmp_path / "imgs", corrupt=2)
    data = image_folder(str(root), test_per_class=3)
    n_train = len(data.train)
    broken_in_train = sum("broken" in str(p) for p in data.train.paths)
    with caplog.at_level("WARNING"):
        features = featurize(data, small_backbone(), tmp_path / "cache")
    assert len(features.train_y) == n_train - broken_in_train
    assert "unreadable" in caplog.text and "broken" in caplog.text
    failing = image_folder(str(root), test_per_class=3, on_bad_image="fail")
    with pytest.raises(UserError, match=r"cannot decode .*broken\d\.jpg .*on_bad_image=skip"):
        featurize(failing, small_backbone(), tmp_path / "cache")


def test_a_pool_drawn_after_images_were_skipped_indexes_the_images_kept(make_cfg, tmp_path):
    """The imbalance is planned on the dataset's labels before extraction; when extraction skips unreadable images
    the pool is drawn again on the labels kept, so its indices point at the kept images' features and labels."""
    from alimb.loop import load_data

    root = image_archives.image_folder(tmp_path / "imgs", corrupt=2)
    cfg = make_cfg("dataset=image_folder", f"dataset.loader.root={root}", "dataset.loader.test_per_class=3",
                   "dataset.loader.on_bad_image=skip", "imbalance=none", "al.iterations=2", "al.per_iteration=3",
                   f"cache_dir={tmp_path / 'cache'}",
                   *TINY_BACKBONE)
    data = image_folder(str(root), test_per_class=3, on_bad_image="skip")
    kept = [p for p in data.train.paths if "broken" not in str(p)]
    assert len(kept) < len(data.train.paths)  # the split holds broken images, which extraction skips
    loaded = load_data(cfg, needs_images=False)
    np.testing.assert_array_equal(loaded.keep, np.arange(len(kept)))  # imbalance=none: every image kept, in order
    assert len(loaded.pool.labels) == len(loaded.pool_in.features) == len(kept)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="backbone weights not found"):
        TorchvisionBackbone(weights_path=str(tmp_path / "none.pth"), device="cpu").build()


def test_two_processes_on_one_cache_extract_once(tmp_path):
    root = image_archives.image_folder(tmp_path / "imgs", per_class=(30, 30, 30))
    script = textwrap.dedent(f"""
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stdout)
        from alimb.backbone import TorchvisionBackbone
        from alimb.data.images import image_folder
        from alimb.features import featurize
        data = image_folder({str(root)!r}, test_per_class=3)
        out = featurize(data, TorchvisionBackbone(weights=None, resolution=64, num_workers=0, device="cpu"), {str(tmp_path / 'cache')!r})
        print("train", out.train_x.shape)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sum(o.count("extracting") for o in outputs) == 2  # train and test, each by one process only
    assert all("train (81, 512)" in o for o in outputs)
