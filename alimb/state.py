"""Run state saved atomically after every iteration, so that a killed run resumes where it stopped.

The run directory holds `config.json` (what ran), `state.npz` (the labeled rounds, the records and
the scheme's state after the last completed iteration) and, once complete, `summary.json`.
Generators need no saving: iteration k draws from its own child of SeedSequence(seed).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from alimb.errors import UserError
from alimb.records import write_atomic

CONFIG, STATE, SUMMARY = "config.json", "state.npz", "summary.json"
NOT_COMPARED = ("overwrite", "logger")  # may change between a run and its resumption
RESULT_FILES = ("records.jsonl", SUMMARY, STATE, "labeled_round.npy", "pool_indices.npy", "wandb_id")


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


def prepare(run_dir: Path, cfg: DictConfig) -> str:
    """'fresh', 'resume' or 'done' for this run directory; refuses one holding another config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path, current = run_dir / CONFIG, comparable(cfg)
    if config_path.exists():
        stored = json.loads(config_path.read_text())
        if stored != current:
            if not cfg.get("overwrite", False):
                changed = ", ".join(_differences(stored, current)[:5])
                raise UserError(
                    f"{run_dir} holds a run with a different config (differs in: {changed}); "
                    "pass overwrite=true to replace it, or name=... for a new experiment"
                )
            for name in RESULT_FILES:
                (run_dir / name).unlink(missing_ok=True)
            shutil.rmtree(run_dir / "wandb", ignore_errors=True)
    write_atomic(config_path, json.dumps(current, indent=2) + "\n")
    if (run_dir / SUMMARY).exists():
        return "done"
    return "resume" if (run_dir / STATE).exists() else "fresh"


def save(run_dir: Path, labeled_round: np.ndarray, records: list[dict], scheme_state: dict[str, np.ndarray]) -> None:
    """Write the state after a completed iteration: all of it or, if killed, none of it."""
    tmp = run_dir / f".{STATE}.tmp.npz"
    arrays = {f"scheme/{k}": v for k, v in scheme_state.items()}
    np.savez(tmp, labeled_round=labeled_round, records=np.array(json.dumps(records)), **arrays)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, run_dir / STATE)


def load(run_dir: Path) -> tuple[np.ndarray, list[dict], dict[str, np.ndarray]]:
    """(labeled_round, records, scheme_state) of the last completed iteration."""
    with np.load(run_dir / STATE) as npz:
        scheme_state = {k.split("/", 1)[1]: npz[k] for k in npz.files if k.startswith("scheme/")}
        return npz["labeled_round"], json.loads(str(npz["records"])), scheme_state
