"""Seeded Gaussian classes of any size, for tests and benchmarks."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from alimb.data.dataset import ArrayDataset
from alimb.options import Count, Doc, NonNegativeNumber, Positive


def make_synthetic(
    n_classes: Annotated[int, Field(ge=2), Doc("classes")] = 20,
    n_per_class: Annotated[Positive, Doc("training samples per class (before imbalance)")] = 200,
    test_per_class: Annotated[Positive, Doc("test samples per class")] = 20,
    dim: Annotated[Positive, Doc("feature dimensions")] = 32,
    separation: Annotated[NonNegativeNumber, Doc("expected distance between class means, in noise standard "
                                                 "deviations")] = 3.0,
    seed: Annotated[Count, Doc("seeds the means and the samples")] = 0,
) -> ArrayDataset:
    """Class c ~ N(mu_c, I) in `dim` dims; E||mu_a - mu_b|| = `separation` noise standard deviations."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((n_classes, dim), dtype=np.float32) * np.float32(separation / np.sqrt(2 * dim))

    def draw(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(n_classes), per_class)
        x = rng.standard_normal((y.size, dim), dtype=np.float32)
        x += means[y]
        return x, y

    train_x, train_y = draw(n_per_class)
    test_x, test_y = draw(test_per_class)
    return ArrayDataset(train_x, train_y, test_x, test_y, [f"class{c}" for c in range(n_classes)])
