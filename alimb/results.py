"""Results as data: every run below some directories -> a pandas DataFrame, one row per (run, iteration).

    >>> from alimb.results import load
    >>> df = load(["outputs/digits_afs"])          # doctest: +SKIP
    >>> df.groupby(["acquisition", "seed"]).accuracy.mean()   # doctest: +SKIP

A run is identified by its resolved config (seed included): found under two directories, it counts
once. Runs are grouped by their config *less the seed* (`fingerprint`; `setting`: less the AF too, what
AFs are compared under); runs that differ in anything
else are never averaged together, and `variant` names how a group differs from the others of the
same (experiment, dataset, imbalance, acquisition, scheme), e.g. `features.normalize=none`. Damaged
run directories are skipped with a warning naming them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd


from alimb.errors import UserError
from alimb.identity import AXES as RUN_AXES
from alimb.identity import axes, identity, titles
from alimb.records import DERIVED, SCALAR_FIELDS
from alimb.state import RunDir, find

log = logging.getLogger(__name__)
AXES = ("name", *RUN_AXES)  # name: the experiment
# every scalar field of alimb.records.Record is a column; `scheme` is already one of the axes (the same value)
SCALARS = tuple(name for name in SCALAR_FIELDS if name not in AXES)


def _flatten(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _digest(value) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _read_run(run_dir: RunDir) -> dict | None:
    """A run's config, records and completeness; None (with a warning) when its files cannot be read, and None
    (quietly) for a directory whose run never completed an iteration (no records: not a run, see alimb.state)."""
    if not run_dir.has_records():
        return None
    try:
        config = run_dir.config()
        complete = run_dir.is_complete()
        records = run_dir.complete_records() if complete else run_dir.records()
        run_axes = axes(config)
        int(config["seed"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("skipping %s: %s", run_dir, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None
    except UserError as err:
        log.warning("skipping %s: %s", run_dir, str(err).splitlines()[0])
        return None
    if not records:
        return None
    return {"dir": run_dir.path, "config": config, "records": records, "complete": complete, "axes": run_axes}


def _variants(runs: list[dict]) -> dict[str, str]:
    """fingerprint -> the settings that tell apart the configs sharing the same axes ('' when they agree)."""
    by_axes: dict[tuple, dict[str, dict]] = {}
    for run in runs:
        by_axes.setdefault(tuple(run["axes"]), {})[run["fingerprint"]] = _flatten(run["config"])
    labels = {}
    for fingerprints in by_axes.values():
        keys = sorted({k for flat in fingerprints.values() for k in flat
                       if k != "seed" and len({json.dumps(f.get(k), default=str) for f in fingerprints.values()}) > 1})
        # a part chosen differently (acquisition.base=dropquery or =random) is named by its choice, not by every key
        # of every choice; an option of the AF or scheme itself without its axis (share=0.5, not acquisition.share)
        parts = sorted({k.rsplit(".", 1)[0] for k in keys if k.endswith((".name", "._target_")) and k.count(".") > 1},
                       key=len)
        parts = [p for p in parts if not any(p.startswith(q + ".") for q in parts if q != p)]
        shown = [(p, f"{p}.name") for p in parts] + [(k, k) for k in keys
                                                     if not any(k.startswith(p + ".") for p in parts)]
        for fingerprint, flat in fingerprints.items():
            labels[fingerprint] = ",".join(f"{_short(label)}={flat.get(key)}" for label, key in shown)
    return labels


def _short(key: str) -> str:
    """A variant's key as a label shows it: without the AF's or the scheme's axis (their name is the label's)."""
    head, _, rest = key.partition(".")
    return rest if head in ("acquisition", "scheme") and rest else key


def load(dirs: list[str | Path]) -> pd.DataFrame:
    """One row per (run, iteration) of the runs below `dirs`, with the config axes, seed, fingerprint and variant."""
    found: dict[str, dict] = {}
    for top in dirs:
        for run_dir in find(top):
            run = _read_run(run_dir)
            if run is None:
                continue
            run["layout"], run["titles"] = run["config"].get("report"), titles(run["config"])
            # what it ran (not how it is named, logged or drawn), within its experiment: the same computation in two
            # experiments is a run of each
            run["config"] = {**identity(run["config"]), "name": run["axes"][0]}
            run["identity"] = _digest(run["config"])
            run["fingerprint"] = _digest({k: v for k, v in run["config"].items() if k != "seed"})
            run["setting"] = _digest({k: v for k, v in run["config"].items() if k not in ("seed", "acquisition")})
            kept = found.get(run["identity"])
            if kept is None or (run["complete"] and not kept["complete"]):  # the same run twice: keep one
                found[run["identity"]] = run
    runs = list(found.values())
    variants = _variants(runs)
    rows, own = [], {}
    for run in runs:
        base = dict(zip(AXES, run["axes"]), seed=int(run["config"]["seed"]), variant=variants[run["fingerprint"]],
                    fingerprint=run["fingerprint"], setting=run["setting"], run=str(run["dir"]), complete=run["complete"],
                    **run["titles"])
        for record in run["records"]:
            counts = record.class_counts or []
            reported = {f"scheme_info.{k}": v for k, v in (record.scheme_info or {}).items()
                        if isinstance(v, (int, float, str, bool)) or v is None}  # a scheme's own numbers
            own.update(dict.fromkeys(reported))
            rows.append({**base, **{k: getattr(record, k) for k in (*SCALARS, *DERIVED)}, "n_classes": len(counts),
                         "fallback": bool((record.acquisition_info or {}).get("fallback")),
                         "class_counts": counts, "per_class_accuracy": record.per_class_accuracy, **reported})
    columns = [*AXES, "seed", "variant", "fingerprint", "setting", "run", "complete", "paper_method", "dataset_title",
               "imbalance_title", *SCALARS, *DERIVED, "n_classes",
               "fallback", "class_counts", "per_class_accuracy", *sorted(own)]
    df = pd.DataFrame(rows, columns=columns)
    df.attrs["layouts"] = {run["axes"][0]: run["layout"] for run in runs if run["layout"]}  # experiment -> figures
    return df
