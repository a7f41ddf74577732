"""The `alimb` command: compose the config with Hydra, then run the experiment.

Bad input in a single run: one line on stderr, exit 2. In a multirun a failed job leaves
`error.txt` in its run directory and returns a `JobFailure`, so the other jobs still run; the
sweeper lists the failures at the end. Ctrl-C: one line, exit 130, the state as saved.

The config tree (`conf/` in the repository) ships inside the package as `alimb.conf`, found by Hydra as
`pkg://alimb.conf`, so a wheel works from any directory; users add their own with `--config-dir DIR` (read as
alimb's own are, its options filled; a file named as one of alimb's is refused: alimb's would be found first).
"""

from __future__ import annotations

import atexit
import errno
import gc
import logging
import os
import signal
import sys
from importlib import resources
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from alimb import state
from alimb.cli import check_flags, config_dirs, flags_first, one_line, reach_into_swept_groups, rewrite_parts
from alimb.errors import UserError
from alimb.sweep import JobFailure

CONFIG_DIR = str(resources.files("alimb.conf"))  # the packaged config tree, as a directory (tests)
log = logging.getLogger("alimb")
# At exit Python's final collection walks every object torch and the run made: ~0.4 s of every alimb process (a
# run, a Slurm job). Frozen, they are left to the exit; freezing stops no other atexit handler (logging's flush,
# W&B's finish) from running, before or after it.
atexit.register(gc.freeze)


@hydra.main(version_base="1.3", config_path="pkg://alimb.conf", config_name="config")
def main(cfg: DictConfig) -> float | JobFailure:
    """Run one experiment in the Hydra output directory; returns the final accuracy (a sweeper's objective)."""
    from alimb.devices import threads_for_this_job
    from alimb.identity import variant
    from alimb.loop import run_experiment  # after Hydra parsed the command line: `alimb --help` stays fast

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # its GPU/TPU/tips banner at every fit
    threads = threads_for_this_job()
    if threads:
        log.info("torch's CPU threads: %d, the job's SLURM_CPUS_PER_TASK", threads)
    hydra_cfg = HydraConfig.get()
    run_dir, multirun = Path(hydra_cfg.runtime.output_dir), hydra_cfg.mode == RunMode.MULTIRUN
    if "dir" in cfg.logger and cfg.logger.dir is None:  # every W&B run of an experiment in one folder: one `wandb sync`
        cfg.logger.dir = str(Path(hydra_cfg.sweep.dir) / "wandb")
    try:
        records = run_experiment(cfg, run_dir, variant(hydra_cfg.overrides.task, cfg))
        return records[-1].accuracy if records else None  # a person's run waiting for its first answers: none yet
    except KeyboardInterrupt:
        done = state.RunDir(run_dir).completed_iterations()
        print(f"alimb: interrupted after iteration {done} of {cfg.al.iterations}; run the same command to resume",
              file=sys.stderr)
        sys.exit(130)  # ends a sweep too
    except Exception as err:  # noqa: BLE001 - in a sweep, no job's failure may end the others
        message = str(err).strip().splitlines()[0] if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
        began = state.RunDir(run_dir).config_file.exists()  # a single run refused before it began: the line says it
        if not isinstance(err, state.RunDirBusy) and (multirun or began):  # a busy directory is another process's
            state.RunDir(run_dir).mark_failed(message)
        if multirun:
            if not isinstance(err, UserError):
                log.exception("unexpected error in %s", run_dir)  # a bug: its traceback to the console and alimb.log
            print(f"alimb: error: {run_dir}: {message}", file=sys.stderr)
            return JobFailure(str(run_dir), message)
        if isinstance(err, UserError):
            print(f"alimb: error: {message}", file=sys.stderr)
            sys.exit(2)
        raise


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt


def cli() -> None:
    """The console script: Hydra re-raises composition errors (its documented HYDRA_FULL_ERROR switch), and
    they are reported here in one line, exit 2; HYDRA_FULL_ERROR=1 set by the user keeps the traceback."""
    full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    signal.signal(signal.SIGTERM, _interrupted)  # `timeout`, `kill`: as Ctrl-C (temporary files removed, one line)
    try:
        check_flags(sys.argv[1:])
        sys.argv[1:] = flags_first(reach_into_swept_groups(rewrite_parts(config_dirs(sys.argv[1:]))))
        main()
    except (HydraException, OmegaConfBaseException) as err:
        if full:
            raise
        print(f"alimb: error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except UserError as err:  # before Hydra: a --config-dir that does not exist
        print(f"alimb: error: {err}", file=sys.stderr)
        sys.exit(2)
    except ValueError as err:
        if "Only one of --run" not in str(err):  # Hydra's refusal of two modes at once; anything else is a bug
            raise
        print(f"alimb: error: {err}; drop one of them", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # before the run began (Hydra composing, modules loading): nothing of it was written
        print("alimb: interrupted before the run began; run the same command to start it", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `alimb --help | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except OSError as err:  # the run directory Hydra makes: a name too long, no permission, a file in its way
        hint = "; choose a shorter name= or hydra.run.dir" if err.errno == errno.ENAMETOOLONG else \
            "; choose another folder (hydra.run.dir, hydra.sweep.dir)"
        print(f"alimb: error: {err.strerror or type(err).__name__}: {str(err.filename)[:120]}{hint}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
