"""A user's own precomputed features (CLIP or any other embeddings) in one `.npz` file."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Annotated

import numpy as np

from alimb.data.dataset import ArrayDataset
from alimb.errors import UserError
from alimb.options import Doc, Place

REQUIRED = ("train_features", "train_labels", "test_features", "test_labels")


def load_embeddings(path: Annotated[Place, Doc("an .npz of train_features, train_labels, test_features, test_labels "
                                            "[, class_names, ids]; without train_labels (and, optionally, without "
                                            "a test set) a person labels the pool")]) -> ArrayDataset:
    """Load `train_features, train_labels, test_features, test_labels[, class_names, ids]` from an .npz; a pool
    without labels (`train_features` [, `ids`], an optional labeled test set) is for a person to label."""
    if not path:
        raise UserError("dataset=embeddings needs a file: add dataset.loader.path=/path/to/features.npz")
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"embeddings file not found: {file}; set dataset.loader.path to an .npz with keys {', '.join(REQUIRED)}")
    try:
        with np.load(file, allow_pickle=False) as npz:
            unlabeled = "train_features" in npz.files and "train_labels" not in npz.files
            needed = ("train_features",) if unlabeled else REQUIRED
            missing = [k for k in needed if k not in npz.files]
            if missing:
                raise UserError(f"{file} lacks {', '.join(missing)}; an embeddings .npz needs {', '.join(REQUIRED)} "
                                "(or train_features alone, for a person to label)")
            arrays = {k: npz[k] for k in REQUIRED if k in npz.files}
            names = [str(n) for n in npz["class_names"]] if "class_names" in npz.files else []
            ids = [str(i) for i in npz["ids"]] if "ids" in npz.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"cannot read {file} as an .npz archive ({type(err).__name__}: {err}); save it with numpy.savez") from None
    if unlabeled:
        n, d = arrays["train_features"].shape if arrays["train_features"].ndim == 2 else (0, 0)
        arrays["train_labels"] = np.full(n, -1)
        arrays.setdefault("test_features", np.empty((0, d), dtype=np.float32))
        arrays.setdefault("test_labels", np.empty(0, dtype=np.int64))
    if ids is not None and (len(ids) != len(arrays["train_features"]) or len(set(ids)) != len(ids)):
        raise UserError(f"{file}: ids must name each training sample once ({len(ids)} ids, "
                        f"{len(set(ids))} distinct, {len(arrays['train_features'])} samples)")
    dataset = _validated(file, arrays, names, unlabeled)
    dataset.train_ids = ids
    return dataset


def _validated(file: Path, a: dict[str, np.ndarray], names: list[str], unlabeled: bool = False) -> ArrayDataset:
    for split in ("train", "test"):
        x, y = a[f"{split}_features"], a[f"{split}_labels"]
        empty_test = split == "test" and unlabeled and len(x) == 0
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or (len(x) == 0 and not empty_test) or x.shape[1] == 0:
            raise UserError(
                f"{file}: {split}_features must be (n, d) and {split}_labels (n,), got {x.shape} and {y.shape}"
            )
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise UserError(f"{file}: {split}_features must be finite numbers (found NaN/inf or non-numeric values)")
        if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0 and not (unlabeled and split == "train")):
            raise UserError(f"{file}: {split}_labels must be non-negative integers (class indices)")
    if a["train_features"].shape[1] != a["test_features"].shape[1]:
        raise UserError(f"{file}: train and test features differ in dimension")
    n_classes = int(max(a["train_labels"].max(initial=-1), a["test_labels"].max(initial=-1))) + 1
    if names and len(names) < n_classes:
        raise UserError(f"{file}: class_names has {len(names)} names but labels go up to {n_classes - 1}")
    return ArrayDataset(
        a["train_features"].astype(np.float32),
        a["train_labels"],
        a["test_features"].astype(np.float32),
        a["test_labels"],
        names or [str(c) for c in range(n_classes)],
    )
