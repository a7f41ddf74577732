"""Training schemes: what is trained each iteration, and the scores and features AFs receive.

`Scheme` is the protocol every scheme keeps (tests/test_scheme_contract.py checks each of conf/scheme/*);
a new scheme is its module and its YAML under conf/scheme/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class Scheme(Protocol):
    """What the loop asks of a scheme."""

    needs_images: bool  # whether it trains on images (fine tuning) rather than on the features F_g

    def fit(self, inputs: Inputs, y: np.ndarray, n_classes: int, rng: np.random.Generator) -> dict:
        """Train on the labeled samples; returns fields of the iteration's record (alimb.records.Record), e.g.
        the switch's `scheme_used` and `cv_accuracy`, fine tuning's `train_loss`; {} when none. Its randomness
        comes from `rng` only."""

    def predict(self, inputs: Inputs) -> np.ndarray:
        """(n,) class predictions (the test set)."""

    def score(self, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """(scores (n, n_classes): probabilities or decision values, features (n, d)): what the next AF gets."""

    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """(W (d, n_classes), b (n_classes,)): the linear last layer over `score`'s features (the SVMs
        themselves; fine tuning's classification head), for AFs that measure distances to decision boundaries."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """numpy arrays from which `load_state_dict` continues exactly (a resumed run)."""

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...
