"""The run directory's one owner: its files, their readers and writers, the run's identity and the lock.

Nothing else spells a file name of a run directory: the loop, `alimb.results`, the report, W&B and the
sweeper ask a `RunDir`. A run directory holds

- `config.json`: what ran (the resolved config; its identity, what `alimb.identity` compares, decides whether a later
  command is the same run);
- `records.jsonl`: one `Record` per completed iteration (the only copy of the records);
- `state.npz`: after the last completed iteration, the labeled rounds, the scheme's state, how many records belong
  to it and the fingerprint of the data the run works on (generators need no saving: iteration k draws from its
  own child of SeedSequence(seed)); a resumed run refuses data whose content changed, wherever it now lives;
- `summary.json`, once complete; `labeled_round.npy`, `pool_indices.npy`; `error.txt` after a failure
  (the one-line message; never beside a summary); `wandb_id` and `wandb/` when W&B logs the run.

Crash consistency with records stored once: an iteration appends its record to `records.jsonl` first, then
replaces `state.npz` atomically. A process killed in between leaves one record (or part of a line) more than
the state counts; resuming keeps the first `n_records` lines and rewrites the file, so the extra iteration runs
again and writes the same record.

A directory is *claimed* by a run once its first iteration completed (a `state.npz` or a `summary.json`
exists): a run that failed before that leaves the directory free for a corrected config. One process at a
time works in a directory (a file lock); a second one stops at once.

Nothing in a directory is written before the run is known to be able to start: `plan` only reads (it refuses
another config's run or a damaged one, unless `overwrite=true`), the loop then loads and checks the data, and
`begin` makes the first write, just before the first iteration: a run that `overwrite=true` replaces stays whole
until its replacement has started.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from filelock import FileLock, Timeout
from omegaconf import DictConfig

from alimb.atomic import append_line, save_npy_atomic, write_atomic, writing
from alimb.errors import UserError
from alimb.identity import resolved, same_run
from alimb.records import Record, dumps, loads
from alimb.rounds import Rounds


class RunDirBusy(UserError):
    """Another process works in the run directory: this one must not touch it (not even a failure marker)."""


class Damaged(UserError):
    """A run file that cannot be read back."""


@dataclass(frozen=True)
class Saved:
    """The state after the last completed iteration."""

    labeled_round: np.ndarray  # (n_pool,) iteration each sample was labeled in, -1 = never
    records: list[Record]
    scheme_state: dict[str, np.ndarray]
    data: str | None = None  # the fingerprint of the data (None: a state saved before fingerprints)


@dataclass(frozen=True)
class Plan:
    """What a command will do in a run directory, decided by reading only: `fresh`, `resume` (from `saved`) or `done`;
    `replaces`: a run is there that `overwrite=true` replaces once this one starts."""

    status: str
    saved: Saved | None = None
    replaces: bool = False


class RunDir:
    """A run directory (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_file = self.path / "config.json"
        self.state_file = self.path / "state.npz"
        self.summary_file = self.path / "summary.json"
        self.records_file = self.path / "records.jsonl"
        self.error_file = self.path / "error.txt"
        self.labeled_round_file = self.path / "labeled_round.npy"
        self.pool_indices_file = self.path / "pool_indices.npy"
        self.wandb_id_file = self.path / "wandb_id"  # a resumed run continues its own W&B run
        self.wandb_dir = self.path / "wandb"
        self._lock, self._holder = self.path / ".alimb.lock", self.path / ".alimb.holder"

    def __str__(self) -> str:
        return str(self.path)

    # ---- reading (no lock needed: a finished run in a read-only directory is fine) ----
    def _json(self, path: Path):
        try:
            return json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise Damaged(f"{path} is damaged ({type(err).__name__}); pass overwrite=true to run it again") from None

    def has_records(self) -> bool:
        """Whether a run completed an iteration here (a directory without records is not a run)."""
        return self.records_file.is_file()

    def is_complete(self) -> bool:
        return self.summary_file.is_file()

    def config(self) -> dict:
        return self._json(self.config_file)

    def summary(self) -> dict:
        return self._json(self.summary_file)

    def records(self, limit: int | None = None) -> list[Record]:
        """The per-iteration records (the first `limit` of them); Damaged if they cannot be read."""
        try:
            with open(self.records_file) as f:
                lines = [line for line in f if line.strip()]
            return [loads(line) for line in lines[:limit]]
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
            raise Damaged(f"{self.records_file} is damaged ({type(err).__name__}); pass overwrite=true to run it "
                          "again") from None

    def complete_records(self) -> list[Record]:
        """The records of a completed run, checked against its summary; Damaged if they disagree."""
        summary, records = self.summary(), self.records()
        expected = summary.get("n_iterations") if isinstance(summary, dict) else None
        if expected is None or len(records) != expected:
            raise Damaged(f"{self.summary_file} describes {expected} iterations but {self.records_file} holds "
                          f"{len(records)}; pass overwrite=true to run it again")
        return records

    def finished(self, cfg: DictConfig) -> list[Record] | None:
        """The records of the completed run of this config here, or None (`overwrite=true`: always None, the run is
        run again); reads only. A damaged completed run raises Damaged."""
        if cfg.get("overwrite", False) or not self.summary_file.is_file() or not self.config_file.is_file():
            return None
        if same_run(self.config(), resolved(cfg)):
            return None
        return self.complete_records()

    def load(self) -> Saved:
        """The state of the last completed iteration; Damaged if unreadable."""
        try:
            with np.load(self.state_file) as npz:
                scheme_state = {k.split("/", 1)[1]: npz[k] for k in npz.files if k.startswith("scheme/")}
                labeled_round, n_records = npz["labeled_round"], int(npz["n_records"])
                data = str(npz["data"]) if "data" in npz.files else None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise Damaged(f"{self.state_file} is damaged ({type(err).__name__}); pass overwrite=true to run it "
                          "again") from None
        records = self.records(n_records) if n_records else []
        if len(records) != n_records:
            raise Damaged(f"{self.records_file} holds {len(records)} records, {self.state_file} {n_records}; "
                          "pass overwrite=true to run it again")
        return Saved(labeled_round, records, scheme_state, data)

    def completed_iterations(self) -> int:
        """How many iterations the saved state holds (0 when none or unreadable)."""
        try:
            return len(self.load().records) if self.state_file.exists() else 0
        except Damaged:
            return 0

    # ---- claiming and preparing (under the lock) ----
    @contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the directory's lock (created if needed); RunDirBusy at once if another process holds it."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self._lock), timeout=0)
            lock.acquire()
        except Timeout:
            holder = self._holder.read_text().strip() if self._holder.exists() else "another process"
            raise RunDirBusy(
                f"{self.path} is in use by {holder}; wait for it to finish, or give this run another directory "
                "(name=... or hydra.run.dir=...)"
            ) from None
        except OSError as err:
            raise UserError(f"cannot use {self.path} as a run directory: {err.strerror or err}") from None
        try:
            holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}\n"
            with writing(self._holder, len(holder), self._holder):
                self._holder.write_text(holder)
            yield
        finally:
            self._holder.unlink(missing_ok=True)
            lock.release()

    def _run_files(self) -> list[Path]:
        return [self.config_file, self.records_file, self.summary_file, self.state_file, self.error_file,
                self.labeled_round_file, self.pool_indices_file, self.wandb_id_file, self.wandb_dir]

    def _foreign(self) -> list[str]:
        """The run files' names here that a failed attempt of alimb's cannot have left: any, when config.json is
        missing or not a config of alimb's (a folder of the user's, an experiment's wandb/)."""
        present = [p.name for p in self._run_files() if p.exists() and p not in (self.error_file, self.config_file)]
        if not present:
            return []
        try:
            config = json.loads(self.config_file.read_text())
        except (OSError, ValueError):
            config = None
        ours = isinstance(config, dict) and {"seed", "acquisition", "scheme", "dataset"} <= set(config)
        return [] if ours else present

    def _wipe(self) -> None:
        for path in self._run_files():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path != self.config_file:
                path.unlink(missing_ok=True)

    @property
    def replaced_dir(self) -> Path:
        """Where a run `overwrite=true` replaces waits until its replacement has completed an iteration."""
        return self.path / ".replaced"

    def recover(self) -> bool:
        """Put back a replaced run whose replacement never completed an iteration (it failed, or was killed); whether
        one was put back."""
        if not self.replaced_dir.is_dir() or self.state_file.exists():
            return False
        self._wipe()
        for path in self.replaced_dir.iterdir():
            if (self.path / path.name).is_dir():
                shutil.rmtree(self.path / path.name)  # a person's rounds the replacement began
            os.replace(path, self.path / path.name)
        self.replaced_dir.rmdir()
        return True

    def plan(self, cfg: DictConfig) -> Plan:
        """What this command will do here (reads only, under the lock): refuses a directory holding another config's
        run or a damaged one, unless `overwrite=true`, which replaces any run once the new one starts."""
        self.recover()
        if not (self.state_file.exists() or self.summary_file.exists()):
            foreign = self._foreign()
            if foreign and not cfg.get("overwrite", False):
                raise UserError(f"{self.path} holds files alimb did not write ({', '.join(foreign[:4])}); choose an "
                                "empty or new folder, or pass overwrite=true to replace them")
            return Plan("fresh", replaces=bool(foreign))  # else what a failed attempt left: not a run
        if cfg.get("overwrite", False):
            return Plan("fresh", replaces=True)
        if not self.config_file.exists():
            raise Damaged(f"{self.path} holds run files but no {self.config_file.name}; pass overwrite=true to run it "
                          "again")
        stored = self.config()
        changed = same_run(stored, resolved(cfg))
        if changed:
            raise UserError(
                f"{self.path} holds a run with a different config (differs in: {', '.join(changed[:5])}); "
                "pass overwrite=true to replace it, or name=... for a new experiment"
            )
        if self.summary_file.exists():
            self.complete_records()  # Damaged if the summary and the records disagree
            return Plan("done")  # completed meanwhile by the process that held the lock
        return Plan("resume", self.load())  # Damaged if the state cannot be read back

    def check_data(self, plan: Plan, fingerprint: str) -> None:
        """A resumed run goes on only over the same data (its content; where it lives may change)."""
        if plan.saved is not None and plan.saved.data is not None and plan.saved.data != fingerprint:
            raise UserError(f"{self.path} holds a run over other data: the dataset's content changed since it started "
                            "(moving it is fine, changing it is not); pass overwrite=true to start it again on these "
                            "data, or name=... for a new experiment")

    def begin(self, cfg: DictConfig, plan: Plan) -> None:
        """The first write of a run that starts or resumes: what a replaced run or a failed attempt left is removed,
        then its config is written (the records trimmed to the state's when resuming). A run `overwrite=true`
        replaces is set aside, whole, until the new one completes its first iteration (`recover` puts it back)."""
        if plan.replaces:
            shutil.rmtree(self.replaced_dir, ignore_errors=True)
            self.replaced_dir.mkdir()
            rounds = Rounds(self.path)  # a person's batches and class order are the run's (the answers are kept)
            for path in (*self._run_files(), rounds.folder, rounds.classes_file):
                if path.exists():
                    os.replace(path, self.replaced_dir / path.name)
        if plan.saved is None:
            self._wipe()
        self.error_file.unlink(missing_ok=True)
        write_atomic(self.config_file, json.dumps(resolved(cfg), indent=2) + "\n")
        if plan.saved is not None and plan.saved.records:  # drop what an iteration killed after its record left behind
            write_atomic(self.records_file, "".join(dumps(r) + "\n" for r in plan.saved.records))
        elif plan.saved is None:  # the first record creates the file: a run that never completed an iteration leaves none
            self.records_file.unlink(missing_ok=True)

    # ---- writing (under the lock) ----
    def save_iteration(self, record: Record, n_records: int, labeled_round: np.ndarray,
                       scheme_state: dict[str, np.ndarray], data: str) -> None:
        """Append the iteration's record, then replace the state (all of it or, if killed, none of it)."""
        append_line(self.records_file, dumps(record) + "\n")
        tmp = self.path / f".{self.state_file.name}.tmp.npz"
        arrays = {f"scheme/{k}": v for k, v in scheme_state.items()}
        needed = labeled_round.nbytes + sum(np.asarray(v).nbytes for v in arrays.values()) + 4096
        with writing(self.state_file, needed, tmp):
            np.savez(tmp, labeled_round=labeled_round, n_records=np.array(n_records), data=np.array(data), **arrays)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.state_file)
        self.settle()  # the replacement completed an iteration: it is the run

    def settle(self) -> None:
        """The run here is the run: a run it replaced is gone for good."""
        if self.replaced_dir.exists():
            shutil.rmtree(self.replaced_dir, ignore_errors=True)

    def save_pool_indices(self, indices: np.ndarray) -> None:
        save_npy_atomic(self.pool_indices_file, indices)

    def finish(self, labeled_round: np.ndarray, summary: dict) -> None:
        """The completed run: its labeled rounds, then its summary (written last: it marks completion)."""
        save_npy_atomic(self.labeled_round_file, labeled_round)
        write_atomic(self.summary_file, dumps(summary, indent=2) + "\n")

    def mark_failed(self, message: str) -> None:
        """Leave the one-line failure message (best effort: the directory may be read-only or absent)."""
        try:
            if self.path.is_dir() and not self.summary_file.exists():
                write_atomic(self.error_file, message.strip() + "\n")
        except (OSError, UserError):  # a full disk too: the message is on stderr
            pass


def find(top: str | Path) -> Iterator[RunDir]:
    """Every run directory below `top` (those holding a config), in sorted order."""
    for config in sorted(Path(top).rglob("config.json")):
        yield RunDir(config.parent)
