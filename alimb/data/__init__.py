"""Datasets as arrays, plus the imbalance induction applied to their training split."""

from alimb.data.dataset import ArrayDataset, balanced_split

__all__ = ["ArrayDataset", "balanced_split"]
