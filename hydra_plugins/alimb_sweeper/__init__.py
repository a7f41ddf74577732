"""alimb's sweeper: Hydra's basic sweeper, except that one job's failure never stops the others,
and that combinations of the cartesian product can be left out.

A failed job (one that returned `alimb.sweep.JobFailure`, or raised) is collected; once every job
ran, one line per failed job goes to stderr and the sweep exits with status 1.

`hydra.sweeper.exclude`: a list of rules `{key: value or [values], ...}`; a job matching every key of a
rule is not run (e.g. Fig. 5 runs the plain schemes with random only).
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import Container, OmegaConf

from alimb.sweep import JobFailure


def _failure(job: JobReturn) -> JobFailure | None:
    """The job's failure, if it failed; a job that raised becomes a completed one returning its JobFailure."""
    run_dir = str(job.hydra_cfg.hydra.runtime.output_dir) if job.hydra_cfg is not None else "?"
    if job.status == JobStatus.FAILED:
        err = job._return_value
        job.status, job.return_value = JobStatus.COMPLETED, JobFailure(run_dir, f"{type(err).__name__}: {err}")
    return job.return_value if isinstance(job.return_value, JobFailure) else None


def _matches(job: List[str], rule: Dict[str, Any]) -> bool:
    """Whether a job (its `key=value` overrides) matches every key of an exclude rule."""
    values = dict(override.split("=", 1) for override in job)
    return all(
        key in values and values[key] in [str(v) for v in (allowed if isinstance(allowed, (list, tuple)) else [allowed])]
        for key, allowed in rule.items()
    )


class AlimbSweeper(BasicSweeper):
    """Every job runs, whatever the others do; the failed ones are listed at the end (exit status 1)."""

    def __init__(self, max_batch_size: Optional[int], params: Optional[Dict[str, str]] = None,
                 exclude: Optional[List[Dict[str, Any]]] = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        rules = OmegaConf.to_container(exclude) if isinstance(exclude, Container) else exclude  # Hydra passes its own
        self.exclude = [dict(rule) for rule in (rules or [])]

    def split_arguments(self, overrides: Any, max_batch_size: Optional[int]) -> List[List[List[str]]]:
        """Hydra's cartesian product in batches, less the jobs an exclude rule matches."""
        batches = BasicSweeper.split_arguments(overrides, max_batch_size)
        kept = [[job for job in batch if not any(_matches(job, rule) for rule in self.exclude)] for batch in batches]
        return [batch for batch in kept if batch]

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.failures: List[JobFailure] = []
        self.n_jobs = 0
        launch = self.launcher.launch

        def launch_collecting(job_overrides, initial_job_idx):
            results = launch(job_overrides, initial_job_idx=initial_job_idx)
            self.n_jobs += len(results)
            self.failures += [f for f in map(_failure, results) if f is not None]
            return results

        self.launcher.launch = launch_collecting

    def sweep(self, arguments: List[str]) -> Any:
        returns = super().sweep(arguments)
        if self.failures:
            print(f"alimb: {len(self.failures)} of {self.n_jobs} jobs failed:", file=sys.stderr)
            for failure in self.failures:
                print(f"alimb: failed: {failure.run_dir}: {failure.message}", file=sys.stderr)
            sys.exit(1)
        return returns
