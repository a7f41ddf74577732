"""alimb's config tree as Hydra loads it, on Hydra's public plugin API (`ConfigSource`, `SearchPathPlugin`).

The files of `alimb.conf` are read as Hydra's `pkg://` source reads them, then every node that builds one of
alimb's `_target_`s gets the options its file does not set, from their one declaration, the callable's signature
(`alimb.declarations.fill`), and the files of the nodes that build nothing (config.yaml, dataset/, trainer/) get theirs
from the models in `alimb.schema` (`complete`). So conf/acquisition/coreset.yaml holds its `_target_` and its choices only, and still
`alimb --cfg job` shows every option and `alimb acquisition=coreset acquisition.lazy=false` overrides without `+`.

The search path plugin puts this source where alimb's tree would be (`pkg://alimb.conf`, `pkg://alimb/conf` or
the tree's folder, whichever way the app or a test named it), and, in alimb's app only, reads every other folder
of the search path (a user's `--config-dir`, `hydra.searchpath`) the same way (`alimbdir://`): a copy of a packaged
YAML file in a user's folder is filled as the original is. A YAML syntax error is one line naming the file.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import List, Optional

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

PACKAGE = "alimb.conf"


_LOADED: dict[tuple[str, str], tuple[dict, dict]] = {}  # (package, file) -> (header, filled content)


def _filled(text: str, config_path: str, where: str = "") -> tuple[dict, dict]:
    """A file's header and its content with the declared options filled in, as plain containers."""
    import yaml

    from alimb.schema import FILE_MODELS, complete

    try:
        cfg = OmegaConf.create(text) if text.strip() else OmegaConf.create({})
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigLoadError(f"{where or config_path}:{line} is not valid YAML "
                              f"({getattr(err, 'problem', None) or type(err).__name__}); fix the file") from None
    group = config_path.rpartition("/")[0] or config_path.removesuffix(".yaml")  # `config`: the primary config
    complete(cfg, FILE_MODELS.get(group))
    return ConfigSource._get_header_dict(text[:512]), OmegaConf.to_container(cfg, resolve=False)


class AlimbConfigSource(ConfigSource):
    """`alimb://alimb.conf`: the packaged YAML files, each filled with the declared options of its targets."""

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path.replace("/", ".").rstrip("."))

    @staticmethod
    def scheme() -> str:
        return "alimb"

    def _files(self):
        return resources.files(self.path)

    def _read(self, config_path: str) -> tuple[dict, dict]:
        key = (self.path, self._normalize_file_name(config_path))
        if key not in _LOADED:  # a sweep composes every job's config again: parse and fill each file once
            res = self._files().joinpath(key[1])
            if not res.is_file():
                raise ConfigLoadError(f"Config not found : {config_path}")
            _LOADED[key] = _filled(res.read_text(encoding="utf-8"), config_path, str(res))
        return _LOADED[key]

    def load_config(self, config_path: str) -> ConfigResult:
        header, content = self._read(config_path)
        return ConfigResult(config=OmegaConf.create(content), path=f"{self.scheme()}://{self.path}",
                            provider=self.provider, header=dict(header))

    def available(self) -> bool:
        try:
            return self._files().joinpath("__init__.py").is_file()
        except (ValueError, ModuleNotFoundError, TypeError):
            return False

    def is_group(self, config_path: str) -> bool:
        return self._files().joinpath(config_path).is_dir()

    def is_config(self, config_path: str) -> bool:
        return self._files().joinpath(self._normalize_file_name(config_path)).is_file()

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        files: List[str] = []
        for file in self._files().joinpath(config_path).iterdir():
            self._list_add_result(files=files, file_path=os.path.join(config_path, file.name), file_name=file.name,
                                  results_filter=results_filter)
        return sorted(set(files))


class AlimbDirConfigSource(AlimbConfigSource):
    """`alimbdir:///path`: a user's config folder, each file filled as alimb's own are (read afresh every time)."""

    def __init__(self, provider: str, path: str) -> None:
        ConfigSource.__init__(self, provider=provider, path=path)

    @staticmethod
    def scheme() -> str:
        return "alimbdir"

    def _files(self):
        from pathlib import Path

        return Path(self.path)

    def _read(self, config_path: str) -> tuple[dict, dict]:
        res = self._files() / self._normalize_file_name(config_path)
        if not res.is_file():
            raise ConfigLoadError(f"Config not found : {config_path}")
        try:
            text = res.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigLoadError(f"{res}: cannot be read ({type(err).__name__}); save it as UTF-8 text") from None
        return _filled(text, config_path, str(res))

    def available(self) -> bool:
        return self._files().is_dir()


def _is_alimb_tree(path: str) -> bool:
    if path.startswith("pkg://"):
        return path[len("pkg://"):].replace("/", ".").rstrip(".") == PACKAGE
    if path.startswith(("file://", "/")):
        here = os.path.realpath(str(resources.files(PACKAGE)))
        return os.path.realpath(path.removeprefix("file://")) == here
    return False


class AlimbSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        elements = search_path.get_path()
        if not any(_is_alimb_tree(e.path) for e in elements):
            return  # another Hydra app: its search path is its own
        for element in elements:
            if _is_alimb_tree(element.path):
                element.path = f"{AlimbConfigSource.scheme()}://{PACKAGE}"
            elif element.path.startswith("file://"):
                element.path = f"{AlimbDirConfigSource.scheme()}://{element.path.removeprefix('file://')}"
