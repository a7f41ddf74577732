"""Scaling of F_g as the SVM schemes and the AFs working in F_g see it (applied once per run; caches stay raw)."""

from __future__ import annotations

import numpy as np

from alimb.errors import UserError

METHODS = ("none", "l2", "standard")


def normalize(pool: np.ndarray, test: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(pool, test) features scaled by `method`: none; l2 (each row to unit length, zero rows stay zero);
    standard (each dimension by the pool's mean and std, computed once; constant dimensions only centred)."""
    pool, test = np.asarray(pool, dtype=np.float32), np.asarray(test, dtype=np.float32)
    if method == "none":
        return pool, test
    if method == "l2":
        return _unit_rows(pool), _unit_rows(test)
    if method == "standard":
        mean = pool.mean(axis=0, dtype=np.float64)
        std = pool.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        scale = lambda x: ((x - mean) / std).astype(np.float32)  # noqa: E731
        return scale(pool), scale(test)
    raise UserError(f"features.normalize must be one of {', '.join(METHODS)}, got {method!r}")


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
