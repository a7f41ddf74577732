"""Run-directory concerns: identity, lock, saved state, failure marker. The loop asks; it never reaches into files.

A run directory holds `config.json` (what ran), `state.npz` (the labeled rounds, the records and
the scheme's state after the last completed iteration), `records.jsonl`, once complete
`summary.json`, and after a failure `error.txt` (the one-line message; never with a summary).
Generators need no saving: iteration k draws from its own child of SeedSequence(seed).

A directory is *claimed* by a run once its first iteration completed (a `state.npz` or a
`summary.json` exists): a run that failed before that leaves the directory free for a corrected
config. One process at a time works in a directory (a file lock); a second one stops at once.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from alimb.errors import UserError
from alimb.records import read_records, write_atomic

CONFIG, STATE, SUMMARY, RECORDS, ERROR = "config.json", "state.npz", "summary.json", "records.jsonl", "error.txt"
LOCK, HOLDER = ".alimb.lock", ".alimb.holder"
NOT_COMPARED = ("overwrite", "logger")  # may change between a run and its resumption
RESULT_FILES = (RECORDS, SUMMARY, STATE, ERROR, "labeled_round.npy", "pool_indices.npy", "wandb_id")


class RunDirBusy(UserError):
    """Another process works in the run directory: this one must not touch it (not even a failure marker)."""


class Damaged(UserError):
    """A run file that cannot be read back."""


def comparable(cfg: DictConfig) -> dict:
    """The resolved config, less the keys that do not change what a run computes."""
    spec = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in spec.items() if k not in NOT_COMPARED}


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            keys += _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            keys.append(f"{prefix}{key}")
    return keys


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Damaged(f"{path} is damaged ({type(err).__name__}); pass overwrite=true to run it again") from None


def _records(run_dir: Path) -> list[dict]:
    """The per-iteration records of a run directory (Damaged if records.jsonl cannot be read)."""
    try:
        return read_records(run_dir)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Damaged(f"{run_dir / RECORDS} is damaged ({type(err).__name__}); pass overwrite=true to run it again") from None


def finished(run_dir: Path, cfg: DictConfig) -> list[dict] | None:
    """The records of the completed run of this config in `run_dir`, or None; reads only (read-only directories).

    A damaged completed run raises Damaged, unless `overwrite=true` (then None: it is run again).
    """
    run_dir = Path(run_dir)
    if not (run_dir / SUMMARY).is_file() or not (run_dir / CONFIG).is_file():
        return None
    try:
        if _read_json(run_dir / CONFIG) != comparable(cfg):
            return None
        summary, records = _read_json(run_dir / SUMMARY), _records(run_dir)
        expected = summary.get("n_iterations") if isinstance(summary, dict) else None
        if expected is None or len(records) != expected:
            raise Damaged(f"{run_dir / SUMMARY} describes {expected} iterations but {run_dir / RECORDS} holds "
                          f"{len(records)}; pass overwrite=true to run it again")
    except Damaged:
        if cfg.get("overwrite", False):
            return None
        raise
    return records


@contextmanager
def claim(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock (created if needed); RunDirBusy at once if another process holds it."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(run_dir / LOCK), timeout=0)
        lock.acquire()
    except Timeout:
        holder = (run_dir / HOLDER).read_text().strip() if (run_dir / HOLDER).exists() else "another process"
        raise RunDirBusy(
            f"{run_dir} is in use by {holder}; wait for it to finish, or give this run another directory "
            "(name=... or hydra.run.dir=...)"
        ) from None
    except OSError as err:
        raise UserError(f"cannot use {run_dir} as a run directory: {err.strerror or err}") from None
    try:
        (run_dir / HOLDER).write_text(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}\n")
        yield
    finally:
        (run_dir / HOLDER).unlink(missing_ok=True)
        lock.release()


def _wipe(run_dir: Path) -> None:
    for name in RESULT_FILES:
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "wandb", ignore_errors=True)


def prepare(run_dir: Path, cfg: DictConfig) -> tuple[str, tuple | None]:
    """('fresh' | 'resume' | 'done', the saved state when resuming), under the lock; refuses a directory claimed
    by another config or damaged. `overwrite=true` replaces another config's run and recovers from any damage."""
    run_dir, current = Path(run_dir), comparable(cfg)
    overwrite = bool(cfg.get("overwrite", False))
    saved = None
    if (run_dir / STATE).exists() or (run_dir / SUMMARY).exists():  # claimed by a run
        try:
            if not (run_dir / CONFIG).exists():
                raise Damaged(f"{run_dir} holds run files but no {CONFIG}; pass overwrite=true to run it again")
            stored = _read_json(run_dir / CONFIG)
            if stored != current:
                if not overwrite:
                    changed = ", ".join(_differences(stored, current)[:5]) if isinstance(stored, dict) else "all"
                    raise UserError(
                        f"{run_dir} holds a run with a different config (differs in: {changed}); "
                        "pass overwrite=true to replace it, or name=... for a new experiment"
                    )
                _wipe(run_dir)
            elif (run_dir / SUMMARY).exists():
                if finished(run_dir, cfg) is not None:  # completed meanwhile by the process that held the lock
                    return "done", None
                _wipe(run_dir)  # a damaged summary, and overwrite=true
            else:
                saved = load(run_dir)  # Damaged if the state cannot be read back
        except Damaged:
            if not overwrite:
                raise
            _wipe(run_dir)
    else:  # nothing completed here: whatever a failed attempt left is not a run
        _wipe(run_dir)
    (run_dir / ERROR).unlink(missing_ok=True)
    write_atomic(run_dir / CONFIG, json.dumps(current, indent=2) + "\n")
    return ("resume", saved) if saved is not None else ("fresh", None)


def save(run_dir: Path, labeled_round: np.ndarray, records: list[dict], scheme_state: dict[str, np.ndarray]) -> None:
    """Write the state after a completed iteration: all of it or, if killed, none of it."""
    tmp = run_dir / f".{STATE}.tmp.npz"
    arrays = {f"scheme/{k}": v for k, v in scheme_state.items()}
    np.savez(tmp, labeled_round=labeled_round, records=np.array(json.dumps(records)), **arrays)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, run_dir / STATE)


def load(run_dir: Path) -> tuple[np.ndarray, list[dict], dict[str, np.ndarray]]:
    """(labeled_round, records, scheme_state) of the last completed iteration; Damaged if unreadable."""
    path = Path(run_dir) / STATE
    try:
        with np.load(path) as npz:
            scheme_state = {k.split("/", 1)[1]: npz[k] for k in npz.files if k.startswith("scheme/")}
            return npz["labeled_round"], json.loads(str(npz["records"])), scheme_state
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise Damaged(f"{path} is damaged ({type(err).__name__}); pass overwrite=true to run it again") from None


def completed_iterations(run_dir: Path) -> int:
    """How many iterations the saved state holds (0 when none or unreadable)."""
    try:
        return len(load(run_dir)[1]) if (Path(run_dir) / STATE).exists() else 0
    except Damaged:
        return 0


def mark_failed(run_dir: Path, message: str) -> None:
    """Leave the one-line failure message in the run directory (best effort: it may be read-only or absent)."""
    try:
        if Path(run_dir).is_dir() and not (Path(run_dir) / SUMMARY).exists():
            write_atomic(Path(run_dir) / ERROR, message.strip() + "\n")
    except OSError:
        pass
