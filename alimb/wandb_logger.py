"""W&B logging: one W&B run per job, labeled count as the x-axis, always finished."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Annotated, Literal, Optional

from alimb.options import Doc, PositiveNumber
from alimb.records import Record

log = logging.getLogger(__name__)
_unreachable: str | None = None  # why W&B failed to start in this process: its later jobs do not try again


def flatten(record: dict, prefix: str = "", sep: str = "/") -> dict:
    """Scalars of a record, nested dicts as `a/b` (`a.b` for configs); lists (per-class values) are left out."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}{sep}", sep))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[f"{prefix}{key}"] = value
    return out


def per_class_table(records: list[Record]):
    """A W&B Table, one row per (iteration, class): labeled count and test accuracy."""
    import wandb

    table = wandb.Table(columns=["iteration", "n_labeled", "class", "labeled_count", "accuracy"])
    for r in records:
        accuracy = r.per_class_accuracy or [None] * len(r.class_counts)
        for c, (count, acc) in enumerate(zip(r.class_counts, accuracy)):
            table.add_data(r.iteration, r.n_labeled, c, count, acc)
    return table


class WandbLogger:
    """Logs each iteration's record; if W&B can't start, warns once and the run goes on with local records."""

    def __init__(
        self,
        project: Annotated[str, Doc("the W&B project")] = "alimb",
        entity: Annotated[Optional[str], Doc("the W&B entity (team or user); null: yours")] = None,
        mode: Annotated[Optional[Literal["online", "offline", "disabled"]], Doc("null: from WANDB_MODE")] = None,
        dir: Annotated[Optional[str], Doc("null: outputs/<name>/wandb (the sweep directory's): every run of an "
                                          "experiment syncs with one `wandb sync`")] = None,
        timeout: Annotated[PositiveNumber, Doc("seconds to wait for the W&B service; after one failure a process "
                                               "stops trying (later jobs too)")] = 15,
    ):
        self.project, self.entity, self.mode, self.dir, self.timeout = project, entity, mode, dir, float(timeout)
        self.run = None

    def start(self, config: dict, name: str, group: str, tags: list[str], id_file: Path | None = None,
              job_type: str | None = None, default_dir: Path | None = None) -> None:
        """One W&B run: `name` says what ran, `group` the experiment/dataset/imbalance, `job_type` the AF/scheme, so
        W&B's grouping shows mean ± std per AF; the config flattened (`scheme.C`) so every key filters in the UI."""
        global _unreachable
        if _unreachable is not None:
            log.warning("W&B could not start earlier in this process (%s); local records only", _unreachable)
            return
        import wandb

        if self.dir:
            Path(self.dir).mkdir(parents=True, exist_ok=True)
        if (self.mode or os.environ.get("WANDB_MODE", "online")) == "online":
            log.info("connecting to W&B (waiting up to %g s: logger.timeout)", self.timeout)
        id_file = Path(id_file or "wandb_id")  # the run directory's: a resumed run continues its own W&B run
        resuming = id_file.exists()
        run_id = id_file.read_text().strip() if resuming else uuid.uuid4().hex[:8]
        id_file.write_text(run_id)
        try:
            self.run = wandb.init(
                project=self.project, entity=self.entity, mode=self.mode, config=flatten(config, sep="."), name=name,
                group=group, job_type=job_type, tags=tags, dir=str(self.dir or default_dir or "."),
                reinit="finish_previous", id=run_id,
                resume="allow" if resuming else None,  # asking the server about a resume has a wait of its own
                settings=wandb.Settings(  # bound every wait: the service's own retries outlast init_timeout
                    init_timeout=self.timeout, login_timeout=self.timeout, x_graphql_timeout_seconds=self.timeout,
                    x_graphql_retry_max=1, x_graphql_retry_wait_min_seconds=0.5, x_graphql_retry_wait_max_seconds=1.0,
                ),
            )
        except Exception as err:  # noqa: BLE001 - any failure to reach W&B must not end the experiment
            _unreachable = (str(err).strip().splitlines() or [type(err).__name__])[0]
            log.warning("W&B could not start (%s); continuing with local records only", _unreachable)
            self.run = None
            return
        self.run.define_metric("n_labeled")
        self.run.define_metric("*", step_metric="n_labeled")

    def log(self, record: Record) -> None:
        if self.run is not None:
            self.run.log(flatten(record.to_dict()))

    def finish(self, summary: dict | None, records: list[Record] | None = None) -> None:
        if self.run is None:
            return
        if summary is not None:
            self.run.summary.update(flatten({k: v for k, v in summary.items() if k != "config"}))
        if records:
            self.run.log({"per_class": per_class_table(records)})
        self.run.finish(exit_code=0 if summary is not None else 1)
        self.run = None


def log_report(written: dict, out: Path, project: str) -> None:
    """The report's figures and results table into one W&B run (job type `report`; WANDB_MODE=offline works)."""
    import pandas as pd
    import wandb

    logger = WandbLogger(project=project, dir=str(out / "wandb"))
    logger.start({"report": str(out)}, name=f"report/{out.name}", group="report", tags=["report"],
                 id_file=out / "wandb_id", job_type="report", default_dir=out)
    if logger.run is not None:
        logger.run.log({f.stem: wandb.Image(str(f)) for f in written["figures"] if f.suffix == ".png"})
        logger.run.log({"results": wandb.Table(dataframe=pd.read_csv(out / "results.csv"))})
    logger.finish({"runs": written["runs"], "unfinished": written["unfinished"]})

