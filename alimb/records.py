"""Where every run's records go: JSON lines and a summary in the run directory, and a logger (W&B or none)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # standard JSON has no NaN: an undefined metric (e.g. no minority class) is null
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Standard JSON of records and summaries (numpy scalars as numbers, NaN and inf as null)."""
    return json.dumps(_jsonable(value), allow_nan=False, **kwargs)


class RunRecorder:
    """`records.jsonl` (one line per iteration) and, once the run completes, `summary.json`."""

    def __init__(self, run_dir: Path, records: list[dict] = ()):
        """Start `records.jsonl` over with `records` (those of the iterations already completed)."""
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.records_path = self.run_dir / "records.jsonl"
        self.summary_path = self.run_dir / "summary.json"
        self.summary_path.unlink(missing_ok=True)  # a summary only ever describes a completed run
        if records:
            write_atomic(self.records_path, "".join(dumps(r) + "\n" for r in records))
        else:  # the first record creates the file: a run that never completed an iteration leaves none
            self.records_path.unlink(missing_ok=True)

    def write(self, record: dict) -> None:
        with open(self.records_path, "a") as f:
            f.write(dumps(record) + "\n")

    def finish(self, summary: dict) -> None:
        write_atomic(self.summary_path, dumps(summary, indent=2) + "\n")


def read_records(run_dir: Path) -> list[dict]:
    """The per-iteration records of a run directory."""
    with open(Path(run_dir) / "records.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


class NullLogger:
    """Local files only."""

    def start(self, config: dict, name: str, group: str, tags: list[str], run_dir: Path | None = None,
              job_type: str | None = None) -> None:
        pass

    def log(self, record: dict) -> None:
        pass

    def finish(self, summary: dict | None, records: list[dict] | None = None) -> None:
        pass
