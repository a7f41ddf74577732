"""Backbone features of an image dataset, extracted once per (dataset content, split, backbone, resolution).

Stored in the cache directory as `.npy` written atomically; a file lock makes parallel jobs that
need the same features extract them once, and later runs memory-map them without the model.
The file name carries a fingerprint of the split's content (its files' names, sizes and mtimes,
or its in-memory pixels, and its labels): a changed dataset is extracted again, never read stale.
A cache file that cannot be read back whole (truncated, foreign, wrong shape, companion missing)
is reported in one line and extracted again.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from PIL import Image
from tqdm import tqdm

from alimb.data.dataset import ArrayDataset
from alimb.data.images import BadImage, ImageDataset, ImageSet
from alimb.errors import UserError
from alimb.atomic import write_atomic, writing

log = logging.getLogger(__name__)
FORMAT = 1  # bump when extraction or preprocessing changes what a cached file holds


def image_loader(images: torch.utils.data.Dataset, batch_size: int, workers: int, pin_memory: bool = False):
    """Batches of decoded images; worker processes are forked explicitly (Linux), since the start method
    inherited inside joblib's (loky) workers cannot start them."""
    context = "fork" if workers > 0 and sys.platform.startswith("linux") else None
    return torch.utils.data.DataLoader(
        images, batch_size=batch_size, num_workers=workers, pin_memory=pin_memory, multiprocessing_context=context
    )


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


class NpyRows:
    """A .npy file of `rows` rows written batch by batch (row shape and dtype from the first batch), or, without a
    path, the batches kept in memory: a cache file is filled with one batch in memory at a time, not the array."""

    def __init__(self, rows: int, path: Path | None = None):
        self.rows, self.path, self.done, self._file, self._chunks = rows, path, 0, None, []

    def append(self, chunk: np.ndarray) -> None:
        chunk = np.ascontiguousarray(chunk)
        if self.path is None:
            self._chunks.append(chunk)
        else:
            if self._file is None:
                self._file = open(self.path, "wb")
                np.lib.format.write_array_header_1_0(self._file, {
                    "descr": np.lib.format.dtype_to_descr(chunk.dtype), "fortran_order": False,
                    "shape": (self.rows, *chunk.shape[1:])})
            self._file.write(chunk.tobytes())
        self.done += len(chunk)

    def close(self) -> np.ndarray | None:
        """The array (in memory) or None (written to `path`, which is complete)."""
        if self.done != self.rows:
            raise RuntimeError(f"{self.done} rows written, {self.rows} expected")
        if self.path is None:
            return np.concatenate(self._chunks) if self._chunks else np.empty((0, 0), dtype=np.float32)
        if self._file is None:
            np.save(self.path, np.empty((0, 0), dtype=np.float32))
        else:
            self._file.close()
        return None


@torch.inference_mode()
def extract(images: ImageSet, backbone, model: torch.nn.Module, label: str = "",
            into: Path | None = None) -> tuple[np.ndarray | None, list[int]]:
    """(features (n, d) float32, indices of undecodable images) for every image of the set; with `into`, the
    features go to that .npy file batch by batch and None comes back in their place."""
    loader = image_loader(_Images(images, backbone.resolution), backbone.batch_size, backbone.num_workers,
                          pin_memory=backbone.device.type == "cuda")
    out, bad, t0 = NpyRows(len(images), into), [], time.perf_counter()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=backbone.device.type == "cuda")
    with tqdm(total=len(images), desc=f"{label} features", unit="img", disable=None, leave=False) as bar:
        for batch, ok in loader:
            with autocast:
                features = model(backbone.preprocess(batch))
            bad += (out.done + np.flatnonzero(~ok.numpy())).tolist()
            out.append(features.float().flatten(1).cpu().numpy())
            bar.update(len(batch))
    log.info("%s features: %d images (%.0f/s)", label, out.done, out.done / (time.perf_counter() - t0))
    return out.close(), bad


def _read_cached(path: Path, rows: int) -> tuple[np.ndarray, list] | None:
    """(array, bad images) of a complete cache file, None if absent; a damaged one is reported and removed."""
    if not path.exists():
        return None
    bad_path = path.with_suffix(".bad.json")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        if array.ndim < 2 or array.shape[0] != rows:
            raise ValueError(f"shape {array.shape}, expected {rows} rows")
        bad = json.loads(bad_path.read_text())
        if not isinstance(bad, list):
            raise ValueError(f"{bad_path.name} is not a list")
        return array, [tuple(b) for b in bad]
    except (OSError, ValueError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as err:
        log.warning("damaged feature cache %s (%s); extracting again", path, str(err).splitlines()[0] if str(err) else type(err).__name__)
        path.unlink(missing_ok=True)
        return None


def cached_array(path: Path, compute, rows: int) -> tuple[np.ndarray, list]:
    """(array, bad images) from `path` (memory-mapped), computing it under a file lock if missing or damaged.

    `compute(tmp) -> bad` writes the .npy to `tmp` (streamed: `NpyRows`); the companion list is written first and
    the .npy renamed into place last, so the .npy's presence marks completion.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot make the feature cache {path.parent} ({err.strerror or err}); set cache_dir to a "
                        "folder you can write") from None
    cached = _read_cached(path, rows)
    if cached is not None:
        return cached
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire()
    except OSError as err:
        raise UserError(f"cannot write in the feature cache {path.parent} ({err.strerror or err}); set cache_dir to "
                        "a folder you can write") from None
    try:
        cached = _read_cached(path, rows)  # computed meanwhile by another job?
        if cached is None:
            tmp = path.with_name(f".{path.name}.tmp.npy")
            try:
                with writing(path, rows * 4096, tmp):  # a full disk: one line, the temporary file removed
                    bad = compute(tmp)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            write_atomic(path.with_suffix(".bad.json"), json.dumps(bad))
            os.replace(tmp, path)
            cached = _read_cached(path, rows)
    finally:
        lock.release()
    return cached


def decode(images: ImageSet, size: int, workers: int, label: str = "",
           into: Path | None = None) -> tuple[np.ndarray | None, list[int]]:
    """Every image decoded once to uint8 (n, size, size, 3) (files resized); indices of undecodable ones. With
    `into`, written there batch by batch (None in place of the array)."""
    loader = image_loader(_Images(images, size), 256, workers)
    out, bad = NpyRows(len(images), into), []
    for batch, ok in loader:
        bad += (out.done + np.flatnonzero(~ok.numpy())).tolist()
        out.append(batch.numpy())
    log.info("%s: decoded %d images at %d px", label, out.done, size)
    return out.close(), bad


def in_memory(cached: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The rows `keep` of a memory-mapped cache file, in memory. All rows (the usual case) are read with plain
    reads, so the process holds them once (copying from the mapping would also count the mapped pages)."""
    if isinstance(cached, np.memmap) and len(keep) == len(cached) and cached.filename:
        return np.load(cached.filename, allow_pickle=False)
    return np.asarray(cached[keep])


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
                            "use a dataset that loads images (alimb --help lists the datasets)")
        return data
    folder = Path(cache_dir).expanduser() / data.key
    model_box: dict = {}  # the model is built at most once, and only if some split must be extracted
    splits = {}
    for split in ("train", "test"):
        image_set = getattr(data, split)
        if len(image_set) == 0:  # no test set (a person's pool): nothing to extract
            splits[split] = (None, image_set.labels, None, [], None)
            continue

        def extract_split(tmp: Path) -> list:
            if "model" not in model_box:
                model_box["model"] = backbone.build()
            log.info("extracting %s %s features with %s", data.key, split, backbone.cache_name)
            _, bad = extract(image_set, backbone, model_box["model"], f"{data.key} {split}", into=tmp)
            return [[i, image_set.describe(i)] for i in bad]

        content = image_set.fingerprint(FORMAT)
        features, bad = cached_array(folder / f"{split}-{backbone.cache_name}-{content}.npy", extract_split, len(image_set))
        if bad and len(bad) == len(image_set):
            raise UserError(f"none of the {len(image_set)} {split} images could be read (e.g. {bad[0][1]}); check "
                            "that the images exist under the dataset's root (dataset.loader.root, data_dir) and "
                            "that they are images")
        if bad and data.on_bad_image == "fail":
            raise UserError(
                f"cannot decode {bad[0][1]} ({len(bad)} unreadable {split} images); fix or remove them, "
                "or set dataset.loader.on_bad_image=skip"
            )
        if bad:
            log.warning("skipped %d unreadable %s images, e.g. %s", len(bad), split, bad[0][1])
        keep = np.setdiff1d(np.arange(len(image_set)), [i for i, _ in bad])
        def decode_split(tmp: Path) -> list:
            _, bad = decode(image_set, backbone.resolution, backbone.num_workers, f"{data.key} {split}", into=tmp)
            return [[i, image_set.describe(i)] for i in bad]

        pixels = None
        if images and image_set.arrays is not None:
            pixels = image_set.arrays[keep]
        elif images:
            pixels = in_memory(cached_array(folder / f"{split}-images{backbone.resolution}-{content}.npy",
                                            decode_split, len(image_set))[0], keep)
        ids = image_set.sample_ids()
        splits[split] = (in_memory(features, keep), image_set.labels[keep], pixels, [ids[i] for i in keep],
                         None if image_set.paths is None else [str(image_set.paths[i]) for i in keep])
    (train_x, train_y, train_img, train_ids, train_paths), (test_x, test_y, test_img, _, _) = splits["train"], \
        splits["test"]
    if test_x is None:
        test_x = np.empty((0, *train_x.shape[1:]), dtype=train_x.dtype)
        test_img = None if train_img is None else np.empty((0, *train_img.shape[1:]), dtype=train_img.dtype)
    return ArrayDataset(train_x, train_y, test_x, test_y, list(data.class_names), train_img, test_img, train_ids,
                        train_paths)
