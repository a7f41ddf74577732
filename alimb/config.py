"""Building objects from the config groups."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from alimb.errors import UserError
from alimb.options import target_callable


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


def _af_slots(target: str) -> dict[str, str]:
    """{parameter: 'one' | 'many'} of a target's parameters that take AFs (`AF`, `dict[str, AF]`)."""
    import typing

    from alimb.acquisition.base import AF

    try:
        hints = typing.get_type_hints(target_callable(target))
    except Exception:  # noqa: BLE001 - a user's target we cannot inspect: nothing to expand
        return {}
    slots = {}
    for param, hint in hints.items():
        if hint == AF:
            slots[param] = "one"
        elif typing.get_origin(hint) is dict and typing.get_args(hint)[1:] == (AF,):
            slots[param] = "many"
    return slots


def _compose_af(name: str) -> dict:
    """The config of option `name` of the acquisition group, from the running app's search path (or ours)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    def load() -> dict:
        node = OmegaConf.to_container(compose(config_name=f"acquisition/{name}"), resolve=False)
        return node.get("acquisition", node)  # the option's own package: acquisition

    try:
        if GlobalHydra.instance().is_initialized():
            return load()
        with initialize_config_module("alimb.conf", version_base="1.3"):
            return load()
    except Exception:  # noqa: BLE001 - Hydra's MissingConfigException and friends
        raise UserError(f"no acquisition function named {name!r}; choose one of conf/acquisition "
                        "(alimb --help lists them)") from None


def expand_af_names(cfg: DictConfig) -> None:
    """Replace an AF chosen by name where an AF is expected (`acquisition.auxiliary=badge`) by that option's config,
    and refuse an AF that cannot serve where it was put, before any work."""

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, DictConfig):
            return
        target = node.get("_target_") if "_target_" in node else None
        for key, kind in (_af_slots(target) if isinstance(target, str) else {}).items():
            if key not in node:
                continue
            children = [(key, node)] if kind == "one" else [(k, node[key]) for k in node[key]]
            for k, parent in children:
                if isinstance(parent[k], str):
                    parent[k] = OmegaConf.create(_compose_af(parent[k]))
        for key in list(node.keys()):
            walk(node[key], f"{path}.{key}" if path else str(key))

    def check(node: Any, path: str) -> None:  # once every name is expanded, nested ones included
        if not isinstance(node, DictConfig):
            return
        target = node.get("_target_") if "_target_" in node else None
        for key in _narrowed_slots(target) if isinstance(target, str) else ():
            if key in node:
                _check_narrowed(node._get_node(key), f"{path}.{key}")
        for key in node.keys():
            check(node._get_node(key), f"{path}.{key}")

    with open_dict(cfg):
        walk(cfg.acquisition, "acquisition")
    check(cfg.acquisition, "acquisition")


def _narrowed_slots(target: str) -> tuple[str, ...]:
    """The AF slots a composite hands a narrowed set of candidates (`@narrows` in alimb.acquisition.base)."""
    try:
        return tuple(getattr(target_callable(target), "narrows", ()))
    except (ImportError, AttributeError):
        return ()


def _check_narrowed(node: Any, path: str) -> None:
    """Refuse an AF that selects over the whole pool where it would get a narrowed set of candidates: in a narrowed
    slot, or in any AF slot below it (a composite passes its context on, narrowing included)."""
    if not isinstance(node, DictConfig):
        return
    target = node.get("_target_") if "_target_" in node else None
    if isinstance(target, str):
        try:
            fn = target_callable(target)
        except (ImportError, AttributeError):
            fn = None  # a target that does not exist: Hydra's instantiate names it
        if getattr(fn, "whole_pool", False):
            raise UserError(f"config key {path}={node.get('name', target)} is invalid: it selects over the whole "
                            "pool and cannot choose inside the candidates it is handed there (a class's, a "
                            "subpool's); choose another AF for it")
    for key in node.keys():
        _check_narrowed(node._get_node(key), f"{path}.{key}")
