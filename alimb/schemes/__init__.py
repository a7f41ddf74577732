"""Training schemes: what is trained each iteration, and the scores and features AFs receive.

A scheme has
- `fit(x: Inputs, y, n_classes, rng) -> dict`: train on the labeled samples; returns extra record fields
- `predict(x: Inputs) -> (n,)` class predictions (the test set)
- `score(x: Inputs) -> (scores (n, n_classes), features (n, d))`: what the AFs of the next iteration get
- `head() -> (W (d, n_classes), b (n_classes,))`: the linear last layer over those features (the SVMs
  themselves; fine tuning's classification head), for AFs that measure distances to decision boundaries
- `state_dict()` / `load_state_dict(state)`: numpy arrays that let a resumed run continue exactly
- `needs_images`: whether it trains on images (fine tuning) rather than on the features F_g
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Inputs:
    """Samples as schemes see them: features F_g and, for fine tuning, uint8 images."""

    features: np.ndarray | None = None  # (n, d) float32
    images: np.ndarray | None = None  # (n, H, W, 3) uint8

    def __len__(self) -> int:
        return len(self.features) if self.features is not None else len(self.images)

    def subset(self, idx: np.ndarray) -> "Inputs":
        return Inputs(
            None if self.features is None else self.features[idx], None if self.images is None else self.images[idx]
        )
