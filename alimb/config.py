"""Building objects from the config groups, and the parts chosen by name inside them.

A part (an option declared with `alimb.options.Part`: the MCS family's `within`, the bandit's arms, a scheme's
backbone, the switch's schemes) is a node of another group. Chosen by name on the command line
(`acquisition.within=coreset`), it is replaced by that option's config, filled with its declared options
(`expand_parts`), and an AF that selects over the whole pool is refused where a part narrows the candidates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from alimb.declarations import parts, target_callable
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


def _parts_of(target: Any) -> dict:
    try:
        return parts(target_callable(target)) if isinstance(target, str) else {}
    except Exception:  # noqa: BLE001 - a user's target we cannot inspect (it names nothing: validation says so)
        return {}


def _searchpath(config_dir: str | Path | None) -> list[str]:
    """The folders a composition searches besides alimb's tree: the running app's (a user's --config-dir, as
    `hydra.searchpath`) and `config_dir`."""
    paths = [f"alimbdir://{Path(config_dir).expanduser().absolute()}"] if config_dir else []
    try:
        from hydra.core.hydra_config import HydraConfig

        paths += [p for p in HydraConfig.get().searchpath if p not in paths]
    except ValueError:  # outside a running app
        pass
    return paths


def compose_option(group: str, name: str, config_dir: str | Path | None = None) -> dict:
    """The config of option `name` of `group`, filled with its declared options, from alimb's tree and the user's
    folders: the running app's (--config-dir) and, when given, `config_dir` (laid out as a --config-dir)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    paths = _searchpath(config_dir)

    def load() -> dict:
        # as a run composes it: through the primary config (a preset's own defaults list, the user's folders)
        overrides = [f"{group}={name}", *([f"hydra.searchpath=[{','.join(paths)}]"] if paths else [])]
        return OmegaConf.to_container(compose("config", overrides=overrides)[group], resolve=False)

    try:
        if GlobalHydra.instance().is_initialized():
            return load()
        with initialize_config_module("alimb.conf", version_base="1.3"):
            return load()
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - Hydra's MissingConfigException and friends
        if not any(text in str(err) for text in ("Config not found", "Could not load", "Could not find",
                                                  "Cannot find primary config", "In 'config'")):
            raise UserError(f"{group}/{name}: {str(err).splitlines()[0]}") from None
        raise UserError(f"no {group} option named {name!r}; choose one of conf/{group} "
                        f"(alimb --help lists them)") from None


def load_option(group: str, name: str, config_dir: str | Path | None = None) -> DictConfig:
    """Any of alimb's YAML files, or a user's (in `config_dir`, laid out as a --config-dir), as a run sees it: composed
    (its defaults list) and filled with every declared option. What scripts use instead of reading the file."""
    return OmegaConf.create(compose_option(group, name, config_dir))


def expand_parts(cfg: DictConfig) -> None:
    """Replace a part chosen by name (`acquisition.auxiliary=badge`) by that option's config, and refuse a part
    that cannot serve where it was put, before any work."""

    narrowed: list[tuple[Any, Any, str]] = []  # checked once every part below them is expanded too

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, DictConfig):
            return
        for key, (part, kind) in _parts_of(node.get("_target_") if "_target_" in node else None).items():
            if key not in node or node[key] is None:
                continue
            slots = [(key, node, f"{path}.{key}")] if kind == "one" else \
                [(k, node[key], f"{path}.{key}.{k}") for k in node[key]] if isinstance(node[key], DictConfig) else []
            for k, parent, where in slots:
                if isinstance(parent[k], str):
                    parent[k] = OmegaConf.create(compose_option(part.group, parent[k]))
                if part.narrows:
                    narrowed.append((parent, k, where))
        for key in list(node.keys()):
            if key != "hydra":
                walk(node._get_node(key), f"{path}.{key}" if path else str(key))

    with open_dict(cfg):
        walk(cfg, "")
    for parent, k, where in narrowed:
        _check_narrowing(parent[k], where)


def _check_narrowing(node: Any, path: str) -> None:
    """An AF that selects over the whole pool cannot choose inside narrowed candidates: not in a part that narrows,
    nor in any AF below it (a composite passes its context on, narrowing included)."""
    from alimb.acquisition.base import selects_whole_pool

    if not isinstance(node, DictConfig):
        return
    target = node.get("_target_") if "_target_" in node else None
    if isinstance(target, str):
        try:
            fn = target_callable(target)
        except (ImportError, AttributeError):
            fn = None  # a target that does not exist: validation names it
        if fn is not None and selects_whole_pool(fn):
            raise UserError(f"config key {path}={node.get('name', target)} is invalid: it selects over the whole pool "
                            "and cannot choose inside the candidates it is handed there (a class's, a subpool's); "
                            "choose another AF for it")
    for key in node.keys():
        _check_narrowing(node._get_node(key), f"{path}.{key}")
