"""Image datasets before feature extraction: the images of each split, their labels, and a cache key.

An `ImageSet` is either in memory (uint8 array, e.g. CIFAR) or a list of files decoded on demand
(Food-101, MIT-67, image folders). `image_folder` loads one sub-folder per class.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
from PIL import Image

from alimb.data.dataset import balanced_split
from alimb.errors import UserError
from alimb.options import Count, Doc, OnBadImage, Place, Positive

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class BadImage(Exception):
    """An image file that cannot be decoded."""


@dataclass
class ImageSet:
    """The images of one split: `arrays` (n, H, W, 3) uint8 in memory, or `paths` decoded on demand."""

    labels: np.ndarray  # (n,) int64; -1: not labeled yet (a person labels the pool)
    arrays: np.ndarray | None = None
    paths: list[Path] | None = None
    ids: list[str] | None = None  # each image's id, e.g. its path relative to the dataset's root; None: its index

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        assert (self.arrays is None) != (self.paths is None), "an image set holds arrays or paths"
        assert len(self) == len(self.labels), "one label per image"

    def __len__(self) -> int:
        return len(self.arrays) if self.arrays is not None else len(self.paths)

    def image(self, i: int) -> np.ndarray:
        """Image i as (H, W, 3) uint8; BadImage if its file cannot be decoded."""
        if self.arrays is not None:
            return self.arrays[i]
        try:
            with Image.open(self.paths[i]) as img:
                return np.asarray(img.convert("RGB"))
        except Exception as err:  # noqa: BLE001 - PIL raises many types for broken files
            raise BadImage(f"{self.paths[i]}: {err}") from None

    def fingerprint(self, version: int = 0) -> str:
        """A short hash of the content: labels, and the pixels in memory or each file's path, size and mtime."""
        digest = hashlib.blake2b(f"v{version}".encode(), digest_size=8)
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        if self.arrays is not None:
            digest.update(str(self.arrays.shape).encode())
            digest.update(np.ascontiguousarray(self.arrays).data)
        else:
            for path in self.paths:
                try:
                    st = os.stat(path)
                    digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                except OSError:
                    digest.update(f"{path}\0missing\n".encode())
        return digest.hexdigest()

    def describe(self, i: int) -> str:
        return str(self.paths[i]) if self.paths is not None else f"image #{i}"

    def sample_ids(self) -> list[str]:
        return list(self.ids) if self.ids is not None else [str(i) for i in range(len(self))]

    def subset(self, idx: np.ndarray) -> "ImageSet":
        ids = None if self.ids is None else [self.ids[i] for i in idx]
        if self.arrays is not None:
            return ImageSet(self.labels[idx], arrays=self.arrays[idx], ids=ids)
        return ImageSet(self.labels[idx], paths=[self.paths[i] for i in idx], ids=ids)


@dataclass
class ImageDataset:
    """Training (pool) and test images, before features; `key` names it in the feature cache."""

    train: ImageSet
    test: ImageSet
    class_names: list[str]
    key: str  # e.g. "cifar100-<hash of root>"
    on_bad_image: str = "skip"  # skip (and count) or fail

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(training labels, test labels), known before any image is decoded."""
        return self.train.labels, self.test.labels


def root_key(name: str, root: Path) -> str:
    """A cache folder for a dataset read from `root`: its name and a short hash of the absolute path."""
    return f"{name}-{hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:10]}"


def relative(paths: list[Path], root: Path) -> list[str]:
    """Each path relative to `root`, with forward slashes: the images' sample ids."""
    return [p.relative_to(root).as_posix() for p in paths]


def list_images(root: Path) -> list[Path]:
    """Every image under `root` (sub-folders too), in the order of their paths."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def list_class_folders(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """(class names, image paths, labels) of a folder with one sub-folder of images per class."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"class folder {root / name} holds no image ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                            "add images or remove the folder")
        paths += files
        labels += [label] * len(files)
    return classes, paths, np.asarray(labels, dtype=np.int64)


def image_folder(
    root: Annotated[Place, Doc("root/<class>/*.jpg: one sub-folder per class")],
    test_root: Annotated[Optional[Place], Doc("a separate test folder (same layout); null: a seeded balanced split "
                                            "of root")] = None,
    test_per_class: Annotated[Positive, Doc("images per class of the split-off test set")] = 10,
    split_seed: Annotated[Count, Doc("seeds the split")] = 0,
    on_bad_image: OnBadImage = "skip",
) -> ImageDataset:
    """`root/<class>/*.jpg`; the test split from `test_root` (same layout) or a seeded balanced split."""
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise UserError(f"image folder not found: {root_path}; set dataset.loader.root to a folder with one sub-folder per class")
    classes, paths, labels = list_class_folders(root_path)
    if len(classes) < 2 or not paths:
        raise UserError(f"{root_path} needs at least two class sub-folders with images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if test_root:
        test_path = Path(test_root).expanduser()
        if not test_path.is_dir():
            raise UserError(f"test image folder not found: {test_path}; set dataset.loader.test_root to a folder "
                            "with one sub-folder per class, or null for a split of root")
        test_classes, test_paths, test_labels = list_class_folders(test_path)
        shared = {p.resolve() for p in paths} & {p.resolve() for p in test_paths}
        if shared:
            raise UserError(f"{len(shared)} image(s) are both in {root_path} and in the test folder {test_path}, e.g. "
                            f"{min(shared)}; a test image must not be in the pool")
        if test_classes != classes:
            raise UserError(f"the class folders of {test_root} differ from those of {root_path}")
        train, test = ImageSet(labels, paths=paths, ids=relative(paths, root_path)), ImageSet(test_labels, paths=test_paths)
    else:
        tr, te = balanced_split(labels, test_per_class, np.random.default_rng(split_seed))
        whole = ImageSet(labels, paths=paths, ids=relative(paths, root_path))
        train, test = whole.subset(tr), whole.subset(te)
    key = root_key("image_folder", root_path) + (f"-t{test_per_class}s{split_seed}" if not test_root else "")
    return ImageDataset(train, test, classes, key, on_bad_image)


def images(
    root: Annotated[Place, Doc("every image under it (sub-folders too) is the pool, without labels: a person labels "
                               "them (oracle=human or label_studio)")],
    test_root: Annotated[Optional[Place], Doc("a labeled test set: one sub-folder of images per class, named as "
                                            "oracle.classes; null: no test set (each round reports estimates)")] = None,
    on_bad_image: OnBadImage = "skip",
) -> ImageDataset:
    """Images without labels (the pool) and an optional labeled test folder; ids are paths relative to `root`."""
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise UserError(f"image folder not found: {root_path}; set dataset.loader.root to the folder of your images")
    paths = list_images(root_path)
    if not paths:
        raise UserError(f"{root_path} holds no image ({', '.join(sorted(IMAGE_SUFFIXES))}); set dataset.loader.root to "
                        "the folder of your images")
    train = ImageSet(np.full(len(paths), -1), paths=paths, ids=relative(paths, root_path))
    classes, test = [], ImageSet(np.empty(0, dtype=np.int64), paths=[])
    if test_root:
        test_path = Path(test_root).expanduser()
        if not test_path.is_dir():
            raise UserError(f"test image folder not found: {test_path}; set dataset.loader.test_root to a folder with "
                            "one sub-folder per class, or null for none")
        classes, test_paths, test_labels = list_class_folders(test_path)
        test = ImageSet(test_labels, paths=test_paths)
    return ImageDataset(train, test, classes, root_key("images", root_path), on_bad_image)


LABEL = re.compile(r"[0-9]+")  # ASCII digits only (str.isdigit also takes '²')


def _list_text(path: Path) -> str:
    """A list file's text: UTF-8 (a BOM dropped) or UTF-16 with its BOM; anything else is one line naming the line."""
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a list file; set dataset.loader.train_list / test_list to files of "
                        "'relative/path label' lines")
    if not path.is_file():
        raise UserError(f"image list not found: {path}; download the benchmark's list files and set "
                        "dataset.loader.train_list / test_list (or data_dir) to where they are")
    raw = path.read_bytes()
    if raw.count(b"\x00") > len(raw) // 4 and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UserError(f"{path} holds NUL bytes: UTF-16 or UTF-32 without a byte-order mark? save the list as UTF-8")
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise UserError(f"line {line} of {path} is not UTF-8 text (byte 0x{raw[err.start]:02x}); save the list as "
                        "UTF-8") from None


def read_image_list(path: Path, root: Path) -> tuple[list[Path], np.ndarray]:
    """(image paths under `root`, labels) of a list file of `relative/path label` lines (blank lines skipped)."""
    lines = [(n, ln) for n, ln in enumerate(_list_text(path).splitlines(), 1) if ln.strip()]
    # a list without labels (a pool a person labels): every line a path, none ending in a class index
    bare = bool(lines) and not any(len(p) == 2 and LABEL.fullmatch(p[1]) for p in (ln.rsplit(maxsplit=1) for _, ln in lines))
    paths, labels, seen = [], [], {}
    for number, line in lines:
        parts = [line.strip(), "-1"] if bare else line.rsplit(maxsplit=1)
        if len(parts) != 2 or not (bare or LABEL.fullmatch(parts[1])):
            raise UserError(f"line {number} of {path} is not 'relative/path label' (the label a class index "
                            f"0, 1, ...): {line.strip()[:80]!r}")
        name = parts[0].strip()
        if "\x00" in name:
            raise UserError(f"line {number} of {path} holds a NUL byte in its path; fix that line")
        name = os.path.normpath(name)  # ./a.png and sub/../a.png name a.png
        if name.startswith(".." + os.sep) or name == ".." or os.path.isabs(name):
            raise UserError(f"line {number} of {path} names {parts[0].strip()!r}, outside dataset.loader.root; list "
                            "paths below the root")
        if name in seen:
            raise UserError(f"lines {seen[name]} and {number} of {path} both name {name}; list each image once")
        seen[name] = number
        paths.append(root / name)
        labels.append(int(parts[1]))
    if not paths:
        raise UserError(f"{path} lists no image; each line is 'relative/path label'")
    if not bare and max(labels) >= len(paths):  # (checked as Python ints: a 30-digit label fits no int64)
        raise UserError(f"{path}: labels go up to {max(labels)} but it lists {len(paths)} images; labels are class "
                        "indices 0..C-1")
    return paths, np.asarray(labels, dtype=np.int64)


def image_list(
    root: Annotated[Place, Doc("the folder the lists' paths are relative to")],
    train_list: Annotated[Place, Doc("the pool: a file of `relative/path label` lines (or of paths alone: a person "
                                     "labels them)")],
    test_list: Annotated[Optional[Place], Doc("the test set: a file of `relative/path label` lines; null: none (a "
                                              "person's pool only)")] = None,
    on_bad_image: OnBadImage = "skip",
) -> ImageDataset:
    """Images under `root` named by list files of `relative/path label` lines: the form in which ImageNet-LT,
    Places-LT and iNaturalist 2018 publish their splits (the training list is the pool, the test list the
    test set). Classes are the labels 0 .. max; images are read when features are extracted, and an unreadable
    one is skipped (counted) or fails the run (`on_bad_image`)."""
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise UserError(f"image root not found: {root_path}; set dataset.loader.root to the folder the list "
                        "files' paths are relative to")
    train_paths, train_labels = read_image_list(Path(train_list).expanduser(), root_path)
    test_paths, test_labels = read_image_list(Path(test_list).expanduser(), root_path) if test_list else \
        ([], np.empty(0, dtype=np.int64))
    if (test_labels < 0).any():
        raise UserError(f"{test_list} has no labels; the test set's lines are 'relative/path label'")
    shared = set(train_paths) & set(test_paths)
    if shared:
        raise UserError(f"{len(shared)} image(s) are in both {train_list} and {test_list}, e.g. {min(shared)}; a test "
                        "image must not be in the pool")
    n_classes = int(max(train_labels.max(), test_labels.max(initial=-1))) + 1
    lists = hashlib.sha1(f"{Path(train_list).expanduser().resolve()}\0{test_list and Path(test_list).expanduser().resolve()}".encode())
    key = root_key("image_list", root_path) + "-" + lists.hexdigest()[:8]
    return ImageDataset(ImageSet(train_labels, paths=train_paths, ids=relative(train_paths, root_path)),
                        ImageSet(test_labels, paths=test_paths), [str(c) for c in range(n_classes)], key, on_bad_image)
