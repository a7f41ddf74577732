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


def cached_features(
    dataset: ImageDataset, split: str, backbone, cache_dir: Path, model_box: dict
) -> tuple[np.ndarray, list[int]]:
    """Features of one split from the cache (memory-mapped), extracting them under a lock if missing."""
    folder = Path(cache_dir).expanduser() / dataset.key
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}-{backbone.cache_name}.npy"
    bad_path = path.with_suffix(".bad.json")
    if not path.exists():
        with FileLock(str(path) + ".lock"):
            if not path.exists():  # not extracted meanwhile by another job
                if "model" not in model_box:
                    model_box["model"] = backbone.build()
                log.info("extracting %s %s features with %s into %s", dataset.key, split, backbone.cache_name, path)
                images = getattr(dataset, split)
                features, bad = extract(images, backbone, model_box["model"], f"{dataset.key} {split}")
                bad_path.write_text(json.dumps([[i, images.describe(i)] for i in bad]))
                tmp = path.with_name(f".{path.name}.tmp.npy")
                np.save(tmp, features)
                os.replace(tmp, path)  # the .npy appears whole, last: it marks a complete extraction
    return np.load(path, mmap_mode="r"), [tuple(b) for b in json.loads(bad_path.read_text())]


def featurize(data: ArrayDataset | ImageDataset, backbone, cache_dir: str | Path) -> ArrayDataset:
    """The dataset as feature arrays: image datasets through the (cached) backbone, arrays as they are."""
    if isinstance(data, ArrayDataset):
        return data
    model_box: dict = {}  # the model is built at most once, and only if some split must be extracted
    splits = {}
    for split in ("train", "test"):
        features, bad = cached_features(data, split, backbone, cache_dir, model_box)
        labels = getattr(data, split).labels
        if bad and data.on_bad_image == "fail":
            raise UserError(
                f"cannot decode {bad[0][1]} ({len(bad)} unreadable {split} images); fix or remove them, "
                "or set dataset.loader.on_bad_image=skip"
            )
        if bad:
            log.warning("skipped %d unreadable %s images, e.g. %s", len(bad), split, bad[0][1])
        keep = np.setdiff1d(np.arange(len(labels)), [i for i, _ in bad])
        splits[split] = (np.asarray(features[keep]), labels[keep])
    return ArrayDataset(*splits["train"], *splits["test"], list(data.class_names))
