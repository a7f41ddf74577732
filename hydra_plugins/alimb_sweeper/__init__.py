"""alimb's sweeper, on Hydra's public plugin API (`hydra.plugins.sweeper.Sweeper`): the cartesian product of
the sweep overrides (as Hydra's basic sweeper), except that one job's failure never stops the others, and that
combinations can be left out.

A failed job (one that returned `alimb.sweep.JobFailure`, or raised) is collected; once every job ran, one
line per failed job goes to stderr and the sweep exits with status 1.

`hydra.sweeper.exclude`: a list of rules `{key: value or [values], ...}`; a job matching every key of a
rule is not run (e.g. Fig. 5 runs the plain schemes with random only).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from omegaconf import Container, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from alimb.sweep import JobFailure


def _failure(job: JobReturn) -> JobFailure | None:
    """The job's failure, if it failed (returned a JobFailure, or raised)."""
    if job.status == JobStatus.FAILED:
        run_dir = str(job.hydra_cfg.hydra.runtime.output_dir) if job.hydra_cfg is not None else "?"
        try:
            job.return_value  # raises the job's exception: the public way to read it
        except Exception as err:  # noqa: BLE001
            return JobFailure(run_dir, f"{type(err).__name__}: {err}")
    return job.return_value if isinstance(job.return_value, JobFailure) else None


def _matches(job: List[str], rule: Dict[str, Any]) -> bool:
    """Whether a job (its `key=value` overrides) matches every key of an exclude rule."""
    values = dict(override.split("=", 1) for override in job)
    return all(
        key in values and values[key] in [str(v) for v in (allowed if isinstance(allowed, (list, tuple)) else [allowed])]
        for key, allowed in rule.items()
    )


def cartesian(overrides: List[Override]) -> List[List[str]]:
    """Every job of the sweep: one `key=value` per override key, the product of the sweep overrides' values."""
    per_key: Dict[str, List[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise HydraException(f"alimb's sweeper takes lists of values (a,b,c), not {override.input_line}")
            per_key[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            per_key[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*per_key.values())]


def covering(jobs: List[List[str]]) -> List[List[str]]:
    """The jobs, in order, that bring a `key=value` no earlier one had: every value of every key appears."""
    seen: set = set()
    kept = []
    for job in jobs:
        if not seen.issuperset(job):
            kept.append(job)
            seen.update(job)
    return kept


class AlimbSweeper(Sweeper):
    """Every job runs, whatever the others do; the failed ones are listed at the end (exit status 1)."""

    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None,
                 exclude: Optional[List[Dict[str, Any]]] = None) -> None:
        super().__init__()
        rules = OmegaConf.to_container(exclude) if isinstance(exclude, Container) else exclude  # Hydra passes its own
        self.exclude = [dict(rule) for rule in (rules or [])]
        self.max_batch_size, self.params = max_batch_size, dict(params or {})

    def split_arguments(self, overrides: List[Override], max_batch_size: Optional[int]) -> List[List[List[str]]]:
        """The cartesian product in batches of `max_batch_size`, less the jobs an exclude rule matches."""
        jobs = [job for job in cartesian(overrides) if not any(_matches(job, rule) for rule in self.exclude)]
        size = max_batch_size if max_batch_size and max_batch_size > 0 else max(1, len(jobs))
        return [jobs[i:i + size] for i in range(0, len(jobs), size)]

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.hydra_context, self.config = hydra_context, config
        n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs", default=None)
        if isinstance(n_jobs, int) and n_jobs == 0:  # joblib: "no meaning"; -1 is every core, -2 all but one
            print("alimb: error: hydra.launcher.n_jobs=0 runs nothing; use a number of processes, or -1 (every core)",
                  file=sys.stderr)
            sys.exit(2)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        failures: List[JobFailure] = []
        returns, n_jobs = [], 0
        for batch in self.split_arguments(overrides, self.max_batch_size):
            # composition errors (an unknown option or key) before any job of the batch runs: composing costs
            # ~0.1 s a job, so only the jobs that first bring each key=value are composed; an error that only a
            # pair of swept values makes still stops that job alone, listed with the failures at the end
            for job in covering(batch):
                try:
                    self.validate_batch_is_legal([job])
                except (HydraException, OmegaConfBaseException) as err:  # say which job: the key may be another's
                    from alimb.cli import one_line

                    raise HydraException(f"the sweep's job {' '.join(job)}: {one_line(err)}; no job ran") from None
            results = self.launcher.launch(batch, initial_job_idx=n_jobs)
            n_jobs += len(results)
            failures += [f for f in map(_failure, results) if f is not None]
            returns.append(results)
        if failures:
            print(f"alimb: {len(failures)} of {n_jobs} jobs failed:", file=sys.stderr)
            for failure in failures:
                print(f"alimb: failed: {failure.run_dir}: {failure.message}", file=sys.stderr)
            sys.exit(1)
        return returns
