"""What a sweep needs around each job: a failure value, a distinct run directory per variant, a sane output path.

- `JobFailure`: what a failed job of a multirun returns instead of ending the sweep; the sweeper
  (`hydra_plugins.alimb_sweeper`) lists them at the end and exits non-zero.
- `variant`: the `${alimb.variant:...}` resolver: the run directory's variant level, from `alimb.identity` (every
  override that changes what a run computes and that the path does not name adds it, so `-m
  al.per_iteration=10,20` gives two directories, and the same command finds them again).
- `CheckOutputDir`: a Hydra callback that refuses an output path blocked by a file in one line,
  before Hydra tries to create it.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class JobFailure:
    """A multirun job that failed: its run directory and the one-line message."""

    run_dir: str
    message: str


def variant(task_overrides: Any, *, _root_: Any = None) -> str:
    """The `${alimb.variant:${hydra.overrides.task}}` resolver: the run directory's variant level (alimb.identity)."""
    from alimb.identity import variant as named_variant

    return named_variant(task_overrides, _root_)


def job_tag(num: Any) -> str:
    """'[job N]' in a multirun's log lines, '' in a single run (where Hydra leaves job.num unset)."""
    return f"[job {num}]" if num not in (None, "") else ""


def choices(group: str) -> str:
    """The `${alimb.choices:GROUP}` resolver (the help's footer): the options of a group of alimb's config tree, so the
    list grows with the tree and never by hand."""
    from importlib import resources

    folder = Path(str(resources.files("alimb.conf").joinpath(group)))
    return ", ".join(sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml")))


def declared_default(target: str, option: str) -> Any:
    """The `${alimb.default:TARGET,OPTION}` resolver: an option's declared default, where a YAML must name a value
    that falls back to it (a dataset's own value or else the callable's), so the default is written once."""
    from alimb.declarations import declared, target_callable

    return declared(target_callable(target))[option].default


for _name, _fn in (("alimb.variant", variant), ("alimb.job_tag", job_tag), ("alimb.choices", choices),
                   ("alimb.default", declared_default)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)


def _blocked(path: Path) -> Path | None:
    """The first existing non-directory on the way to `path`, if any."""
    for p in [path, *path.parents]:
        if p.exists():
            return None if p.is_dir() else p
    return None


class CheckOutputDir(Callback):
    """One line and exit 2 when the run or sweep directory cannot be a directory (a file is in the way)."""

    def _check(self, path: str, key: str) -> None:
        folder = Path(path).expanduser().absolute()
        blocked = _blocked(folder)
        if blocked is not None:
            print(f"alimb: error: {key}={path}: {blocked} is a file, not a directory; choose another path",
                  file=sys.stderr)
            sys.exit(2)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            print(f"alimb: error: {key}={path}: cannot make that folder ({err.strerror or err}); choose another path",
                  file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")


class RunLogFile(logging.FileHandler):
    """The job's log file, opened at the first record; a run directory that cannot take it (read-only) goes without."""

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = None, delay: bool = True):
        super().__init__(filename, mode, encoding, delay=True)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)  # opening the file (at the first record) happens outside logging's own guard
        except OSError:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.setLevel(logging.CRITICAL + 1)  # stop trying: the console still shows everything
