"""alimb: minority-class oriented active learning for imbalanced image datasets."""

from alimb._torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()

__version__ = "0.1.0"
