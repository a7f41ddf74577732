"""Tiny datasets in the real on-disk formats, written by the tests themselves."""

import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int, size=(12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def into_archive(folder: Path, archive: Path) -> None:
    """Pack `folder` (flat) into a .tar.gz as its downloads come, and remove the folder."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()


def cifar10(root: Path, per_class_train=2, per_class_test=2, archive=False) -> Path:
    """cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}: pickled dicts with bytes keys, `labels`."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    splits = [(f"data_batch_{i}", per_class_train) for i in range(1, 6)] + [("test_batch", per_class_test)]
    for name, per in splits:
        labels = np.repeat(np.arange(10), per).tolist()
        batch = {b"batch_label": name.encode(), b"labels": labels, b"filenames": [b"x.png"] * len(labels),
                 b"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": 10}, f, protocol=2)
    if archive:
        into_archive(folder, root / "cifar-10-python.tar.gz")
    return root


def cifar100(root: Path, per_class_train=3, per_class_test=2, n_classes=100, archive=False) -> Path:
    """cifar-100-python/{train,test,meta}: pickled dicts with bytes keys, data (n, 3072) uint8 channel-first."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, per in (("train", per_class_train), ("test", per_class_test)):
        labels = np.repeat(np.arange(n_classes), per).tolist()
        batch = {
            b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
            b"batch_label": f"{split} batch".encode(),
            b"fine_labels": labels,
            b"coarse_labels": [label // 5 for label in labels],
            b"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8),
        }
        with open(folder / split, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    meta = {b"fine_label_names": [f"class{i}".encode() for i in range(n_classes)], b"coarse_label_names": []}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    if archive:
        into_archive(folder, root / "cifar-100-python.tar.gz")
    return root


def food101(root: Path, classes=("apple_pie", "baby_back_ribs", "ceviche"), train=4, test=2, as_json=False) -> Path:
    base = root / "food-101"
    splits = {"train": {}, "test": {}}
    n = 0
    for c in classes:
        for split, count in (("train", train), ("test", test)):
            for _ in range(count):
                ident = f"{c}/{100000 + n}"
                write_image(base / "images" / f"{ident}.jpg", n)
                splits[split].setdefault(c, []).append(ident)
                n += 1
    meta = base / "meta"
    meta.mkdir(parents=True)
    (meta / "classes.txt").write_text("\n".join(classes) + "\n")
    for split, items in splits.items():
        if as_json:
            (meta / f"{split}.json").write_text(json.dumps(items))
        else:
            (meta / f"{split}.txt").write_text("\n".join(i for v in items.values() for i in v) + "\n")
    return root


def mit67(root: Path, classes=("airport_inside", "bakery", "bar"), per_class=(6, 4, 5), test=2) -> Path:
    base = root / "mit67"
    tests, trains, n = [], [], 0
    for c, count in zip(classes, per_class):
        for i in range(count):
            name = f"{c}/{c}_{i:04d}.jpg"
            write_image(base / "Images" / name, n)
            (tests if i < test else trains).append(name)
            n += 1
    (base / "TestImages.txt").write_text("\n".join(tests) + "\n")
    (base / "TrainImages.txt").write_text("\n".join(trains[:-1]) + "\n")  # one image in neither list
    return root


def image_folder(root: Path, per_class=(12, 8, 6), corrupt: int = 0) -> Path:
    n = 0
    for c, count in enumerate(per_class):
        for i in range(count):
            write_image(root / f"c{c}" / f"{i}.png", n)
            n += 1
    for i in range(corrupt):
        (root / "c0" / f"broken{i}.jpg").write_bytes(b"definitely not a jpeg")
    return root


def image_list(root: Path, train_per_class=(30, 15, 8), test_per_class=4) -> tuple[Path, Path, Path]:
    """(image root, train list, test list) in the long-tail benchmarks' form: `relative/path label` lines."""
    images = root / "images"
    lines = {"train": [], "test": []}
    n = 0
    for c, count in enumerate(train_per_class):
        for split, k in (("train", count), ("test", test_per_class)):
            for i in range(k):
                rel = f"{split}/n{c:03d}/img_{i}.JPEG"
                write_image(images / rel, n)
                lines[split].append(f"{rel} {c}")
                n += 1
    (root / "lists").mkdir(parents=True, exist_ok=True)
    for split in lines:
        (root / "lists" / f"LT_{split}.txt").write_text("\n".join(lines[split]) + "\n")
    return images, root / "lists" / "LT_train.txt", root / "lists" / "LT_test.txt"
