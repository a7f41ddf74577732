"""Real dataset formats, read through the same loaders users run, on tiny archives written here."""

import http.server
import threading

import numpy as np
import pytest

from alimb.data import cifar, download
from alimb.data.cifar import load_cifar10, load_cifar100
from alimb.data.food101 import load_food101
from alimb.data.images import image_folder
from alimb.data.mit67 import load_mit67
from alimb.errors import UserError
from tests import image_archives


def test_cifar100_pickles(tmp_path):
    data = load_cifar100(str(image_archives.cifar100(tmp_path)), download=False)
    assert data.n_classes == 100 and data.class_names[7] == "class7"
    assert data.train.arrays.shape == (300, 32, 32, 3) and data.train.arrays.dtype == np.uint8
    assert np.bincount(data.test.labels).tolist() == [2] * 100
    # channel-first rows become HWC images: pixel (0, 0) of image 0 is (R, G, B) = row[0], row[1024], row[2048]
    import pickle

    with open(tmp_path / "cifar-100-python" / "train", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][0]
    assert data.train.image(0)[0, 0].tolist() == [raw[0], raw[1024], raw[2048]]


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_batches_in_order(tmp_path, archive):
    """The five training batches concatenated in order (the long-tail benchmarks take each class's first images)."""
    data = load_cifar10(str(image_archives.cifar10(tmp_path, archive=archive)), download=False)
    assert data.n_classes == 10 and data.class_names[3] == "c3" and len(data.train) == 100 and len(data.test) == 20
    import pickle

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][0]
    assert data.train.image(20)[0, 0].tolist() == [raw[0], raw[1024], raw[2048]]  # batch 2 starts at image 20


def test_cifar10_missing_names_the_file_and_where(tmp_path):
    with pytest.raises(UserError, match=r"CIFAR-10 not found: expected .*cifar-10-batches-py .*put it at .*cifar-10-python.tar.gz"):
        load_cifar10(str(tmp_path), download=False)


def test_cifar100_from_the_tar_archive(tmp_path):
    data = load_cifar100(str(image_archives.cifar100(tmp_path, archive=True)), download=False)
    assert len(data.train) == 300 and (tmp_path / "cifar-100-python" / "meta").exists()


def test_cifar100_missing_names_the_file_and_where(tmp_path):
    with pytest.raises(UserError, match=r"CIFAR-100 not found: expected .*cifar-100-python .*put it at .*cifar-100-python.tar.gz"):
        load_cifar100(str(tmp_path), download=False)


def test_cifar100_offline_download_fails_with_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "URL", "http://127.0.0.1:9/cifar-100-python.tar.gz")  # nothing listens there
    with pytest.raises(UserError, match="download failed"):
        load_cifar100(str(tmp_path), download=True)
    assert not list(tmp_path.glob("*.tar.gz")), "a failed download left a file looking complete"


@pytest.mark.parametrize("as_json", [False, True])
def test_food101(tmp_path, as_json):
    data = load_food101(str(image_archives.food101(tmp_path, as_json=as_json)), download=False)
    assert data.class_names == ["apple_pie", "baby_back_ribs", "ceviche"]
    assert np.bincount(data.train.labels).tolist() == [4, 4, 4] and np.bincount(data.test.labels).tolist() == [2, 2, 2]
    assert data.train.image(0).shape == (10, 12, 3)
    assert data.train.paths[0].as_posix().endswith("food-101/images/apple_pie/100000.jpg")


def test_mit67_pool_is_every_non_test_image(tmp_path):
    data = load_mit67(str(image_archives.mit67(tmp_path)), download=False)
    assert data.class_names == ["airport_inside", "bakery", "bar"]
    assert np.bincount(data.test.labels).tolist() == [2, 2, 2]
    assert np.bincount(data.train.labels).tolist() == [4, 2, 3]  # includes the image in neither list
    assert not set(map(str, data.train.paths)) & set(map(str, data.test.paths))


def test_mit67_missing(tmp_path):
    with pytest.raises(UserError, match="MIT-67 not found: expected .*mit67/Images"):
        load_mit67(str(tmp_path), download=False)


def test_image_folder_split_and_test_folder(tmp_path):
    data = image_folder(str(image_archives.image_folder(tmp_path / "imgs")), test_per_class=3)
    assert data.class_names == ["c0", "c1", "c2"]
    assert np.bincount(data.test.labels).tolist() == [3, 3, 3] and len(data.train) == 26 - 9
    image_archives.image_folder(tmp_path / "test", per_class=(2, 2, 2))
    data = image_folder(str(tmp_path / "imgs"), test_root=str(tmp_path / "test"))
    assert len(data.train) == 26 and len(data.test) == 6


def test_image_folder_missing(tmp_path):
    with pytest.raises(UserError, match="image folder not found"):
        image_folder(str(tmp_path / "nope"))


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_is_checked_and_atomic(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "a.bin").write_bytes(b"x" * 5000)
    handler = lambda *a, **k: _Files(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/a.bin"
    try:
        dest = tmp_path / "got" / "a.bin"
        dest.parent.mkdir()
        dest.with_name("a.bin.part").write_bytes(b"stale")  # a previous attempt; the server ignores Range
        download.download(url, dest, md5=download.md5sum(served / "a.bin"))
        assert dest.read_bytes() == b"x" * 5000 and not dest.with_name("a.bin.part").exists()
        with pytest.raises(UserError, match="wrong checksum"):
            download.download(url, tmp_path / "got" / "b.bin", md5="0" * 32)
        assert not (tmp_path / "got" / "b.bin").exists()
    finally:
        server.shutdown()
