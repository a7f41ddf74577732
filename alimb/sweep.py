"""What a sweep needs around each job: a failure value, a distinct run directory per variant, a sane output path.

- `JobFailure`: what a failed job of a multirun returns instead of ending the sweep; the sweeper
  (`hydra_plugins.alimb_sweeper`) lists them at the end and exits non-zero.
- `variant`: the `${alimb.variant:...}` resolver. Run directories name dataset/imbalance/AF/
  scheme/seed; every other override that changes what a run computes adds a level, so
  `-m al.per_iteration=10,20` gives two directories, and the same command finds them again.
- `CheckOutputDir`: a Hydra callback that refuses an output path blocked by a file in one line,
  before Hydra tries to create it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

# overrides already named by the path, or that do not change what a run computes
NAMED = {"dataset", "imbalance", "acquisition", "scheme", "seed", "name", "experiment", "imbalance.target_ir", "imbalance.rho"}
NEUTRAL = {"overwrite", "data_dir", "cache_dir", "logger"}
READABLE = 80  # longer variant names end in a hash
SAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


@dataclass(frozen=True)
class JobFailure:
    """A multirun job that failed: its run directory and the one-line message."""

    run_dir: str
    message: str


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def variant(task_overrides: Any) -> str:
    """'' or 'k1=v1,k2=v2/' for the overrides that are neither named by the path nor neutral (sorted)."""
    overrides = sorted(
        str(o) for o in (task_overrides or [])
        if _key(str(o)) not in NAMED and _key(str(o)).split(".")[0] not in NEUTRAL
    )
    if not overrides:
        return ""
    text = ",".join(overrides)
    name = SAFE.sub("_", text)
    if name != text or len(name) > READABLE:  # lossy or too long: keep it readable, and distinct by a hash
        name = f"{name[:READABLE - 9]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return name + "/"


def job_tag(num: Any) -> str:
    """'[job N]' in a multirun's log lines, '' in a single run (where Hydra leaves job.num unset)."""
    return f"[job {num}]" if num not in (None, "") else ""


for _name, _fn in (("alimb.variant", variant), ("alimb.job_tag", job_tag)):
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
        blocked = _blocked(Path(path).expanduser().absolute())
        if blocked is not None:
            print(f"alimb: error: {key}={path}: {blocked} is a file, not a directory; choose another path",
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
