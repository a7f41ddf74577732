"""Food-101: `food-101/images/<class>/<id>.jpg` with `meta/{train,test}.txt` (or `.json`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alimb.data.download import Download, Root, fetch_or_explain
from alimb.data.images import ImageDataset, ImageSet, root_key
from alimb.errors import UserError
from alimb.options import OnBadImage

URL = "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz"
MD5 = "85eeb15f3717b99a5da872d97d918f87"


def _read_split(meta: Path, split: str) -> list[str]:
    """Image ids ("apple_pie/1005649") of a split, from meta/<split>.txt or meta/<split>.json."""
    txt, js = meta / f"{split}.txt", meta / f"{split}.json"
    if txt.exists():
        return [line.strip() for line in txt.read_text().splitlines() if line.strip()]
    if js.exists():
        return [item for items in json.loads(js.read_text()).values() for item in items]
    raise UserError(f"Food-101 split list missing: expected {txt} or {js}")


def load_food101(root: Root = "data", download: Download = True, on_bad_image: OnBadImage = "skip") -> ImageDataset:
    """Food-101 train (750/class, the pool source) and test (250/class)."""
    base = Path(root).expanduser()
    folder = base / "food-101"
    fetch_or_explain("Food-101", folder, URL, base / "food-101.tar.gz", MD5, download)
    meta = folder / "meta"
    classes_file = meta / "classes.txt"
    splits = {s: _read_split(meta, s) for s in ("train", "test")}
    if classes_file.exists():
        classes = [c.strip() for c in classes_file.read_text().splitlines() if c.strip()]
    else:
        classes = sorted({item.split("/")[0] for item in splits["train"]})
    index = {c: i for i, c in enumerate(classes)}

    def image_set(items: list[str]) -> ImageSet:
        labels = np.array([index[item.split("/")[0]] for item in items])
        return ImageSet(labels, paths=[folder / "images" / f"{item}.jpg" for item in items])

    return ImageDataset(image_set(splits["train"]), image_set(splits["test"]), classes, root_key("food101", folder), on_bad_image)
