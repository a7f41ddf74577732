"""Backbone features of an image dataset, extracted once per (dataset, split, backbone, resolution).

Stored in the cache directory as `.npy` written atomically; a file lock makes parallel jobs that
need the same features extract them once, and later runs memory-map them without the model.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from PIL import Image

from alimb.data.dataset import ArrayDataset
from alimb.data.images import BadImage, ImageDataset, ImageSet
from alimb.errors import UserError

log = logging.getLogger(__name__)


class _Images(torch.utils.data.Dataset):
    """Images of a set as uint8 (H, W, 3) tensors; files resized to `size` while decoding; bad ones flagged."""

    def __init__(self, images: ImageSet, size: int):
        self.images, self.size = images, size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, bool]:
        try:
            image = self.images.image(i)
        except BadImage:
            return torch.zeros(self.size, self.size, 3, dtype=torch.uint8), False
        if self.images.paths is not None and image.shape[:2] != (self.size, self.size):
            image = np.asarray(Image.fromarray(image).resize((self.size, self.size), Image.BILINEAR))
        return torch.from_numpy(np.array(image, order="C")), True  # a writable copy (PIL arrays are read-only)


@torch.inference_mode()
def extract(images: ImageSet, backbone, model: torch.nn.Module, label: str = "") -> tuple[np.ndarray, list[int]]:
    """(features (n, d) float32, indices of undecodable images) for every image of the set."""
    loader = torch.utils.data.DataLoader(
        _Images(images, backbone.resolution), batch_size=backbone.batch_size, num_workers=backbone.num_workers,
        pin_memory=backbone.device.type == "cuda",
    )
    chunks, bad, done, t0, last = [], [], 0, time.perf_counter(), 0.0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=backbone.device.type == "cuda")
    for batch, ok in loader:
        with autocast:
            out = model(backbone.preprocess(batch))
        chunks.append(out.float().flatten(1).cpu().numpy())
        bad += (done + np.flatnonzero(~ok.numpy())).tolist()
        done += len(batch)
        if time.perf_counter() - last > 10 or done == len(images):
            last = time.perf_counter()
            log.info("%s features: %d/%d images (%.0f/s)", label, done, len(images), done / (last - t0))
    return np.concatenate(chunks).astype(np.float32), bad


def cached_array(path: Path, compute) -> tuple[np.ndarray, list]:
    """(array, bad images) from `path` (memory-mapped), computing it under a file lock if missing.

    `compute() -> (array, bad)`; the .npy appears whole and last, so its presence marks completion.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    bad_path = path.with_suffix(".bad.json")
    if not path.exists():
        with FileLock(str(path) + ".lock"):
            if not path.exists():  # not computed meanwhile by another job
                array, bad = compute()
                bad_path.write_text(json.dumps(bad))
                tmp = path.with_name(f".{path.name}.tmp.npy")
                np.save(tmp, array)
                os.replace(tmp, path)
    return np.load(path, mmap_mode="r"), [tuple(b) for b in json.loads(bad_path.read_text())]


def decode(images: ImageSet, size: int, workers: int, label: str = "") -> tuple[np.ndarray, list[int]]:
    """Every image decoded once to uint8 (n, size, size, 3) (files resized); indices of undecodable ones."""
    loader = torch.utils.data.DataLoader(_Images(images, size), batch_size=256, num_workers=workers)
    chunks, bad, done = [], [], 0
    for batch, ok in loader:
        chunks.append(batch.numpy())
        bad += (done + np.flatnonzero(~ok.numpy())).tolist()
        done += len(batch)
    log.info("%s: decoded %d images at %d px", label, done, size)
    return np.concatenate(chunks), bad


def featurize(
    data: ArrayDataset | ImageDataset, backbone, cache_dir: str | Path, images: bool = False
) -> ArrayDataset:
    """The dataset as arrays: image datasets through the (cached) backbone, feature datasets as they are.

    With `images`, the uint8 images come too (in-memory ones as they are, files decoded once at the
    backbone's resolution and cached), for schemes that fine-tune.
    """
    if isinstance(data, ArrayDataset):
        if images and data.train_images is None:
            raise UserError("this scheme fine-tunes on images, but the dataset provides features only; "
                            "use an image dataset (digits, cifar100, food101, mit67, image_folder)")
        return data
    folder = Path(cache_dir).expanduser() / data.key
    model_box: dict = {}  # the model is built at most once, and only if some split must be extracted
    splits = {}
    for split in ("train", "test"):
        image_set = getattr(data, split)

        def extract_split():
            if "model" not in model_box:
                model_box["model"] = backbone.build()
            log.info("extracting %s %s features with %s", data.key, split, backbone.cache_name)
            features, bad = extract(image_set, backbone, model_box["model"], f"{data.key} {split}")
            return features, [[i, image_set.describe(i)] for i in bad]

        features, bad = cached_array(folder / f"{split}-{backbone.cache_name}.npy", extract_split)
        if bad and data.on_bad_image == "fail":
            raise UserError(
                f"cannot decode {bad[0][1]} ({len(bad)} unreadable {split} images); fix or remove them, "
                "or set dataset.loader.on_bad_image=skip"
            )
        if bad:
            log.warning("skipped %d unreadable %s images, e.g. %s", len(bad), split, bad[0][1])
        keep = np.setdiff1d(np.arange(len(image_set)), [i for i, _ in bad])
        def decode_split():
            pixels, bad = decode(image_set, backbone.resolution, backbone.num_workers, f"{data.key} {split}")
            return pixels, [[i, image_set.describe(i)] for i in bad]

        pixels = None
        if images and image_set.arrays is not None:
            pixels = image_set.arrays[keep]
        elif images:
            pixels = cached_array(folder / f"{split}-images{backbone.resolution}.npy", decode_split)[0][keep]
        splits[split] = (np.asarray(features[keep]), image_set.labels[keep], pixels)
    (train_x, train_y, train_img), (test_x, test_y, test_img) = splits["train"], splits["test"]
    return ArrayDataset(train_x, train_y, test_x, test_y, list(data.class_names), train_img, test_img)
