"""Building objects from the config groups."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from alimb.errors import UserError


def _without_names(spec: Any) -> Any:
    """Nested objects to build (dicts with `_target_`) without their `name` (it names the option)."""
    if isinstance(spec, dict):
        return {k: _without_names(v) for k, v in spec.items() if not (k == "name" and "_target_" in spec)}
    if isinstance(spec, list):
        return [_without_names(v) for v in spec]
    return spec


def build(node: DictConfig, drop: tuple[str, ...] = ("name",), **kwargs: Any) -> Any:
    """Instantiate a config group node (`_target_`) without the keys in `drop` (names for run directories)."""
    spec = _without_names(OmegaConf.to_container(node, resolve=True))
    for key in drop:
        spec.pop(key, None)
    try:
        return instantiate(spec, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, UserError):  # the target refused its arguments: report it, not Hydra's wrapper
            raise err.__cause__ from None
        raise
