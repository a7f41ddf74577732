"""Building objects from the config groups."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def build(node: DictConfig, drop: tuple[str, ...] = ("name",), **kwargs: Any) -> Any:
    """Instantiate a config group node (`_target_`) without the keys in `drop` (names for run directories)."""
    spec = OmegaConf.to_container(node, resolve=True)
    for key in drop:
        spec.pop(key, None)
    return instantiate(spec, **kwargs)
