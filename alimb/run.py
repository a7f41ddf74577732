"""The `alimb` command: compose the config with Hydra, then run the experiment."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from alimb.errors import UserError

# the config tree lives at the repository top level (conf/); the project is installed editable
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one experiment in the Hydra output directory; bad input is one line on stderr and exit 2."""
    from alimb.loop import run_experiment  # after Hydra parsed the command line: `alimb --help` stays fast

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # its GPU/TPU/tips banner at every fit

    try:
        records = run_experiment(cfg, HydraConfig.get().runtime.output_dir)
    except UserError as err:
        print(f"alimb: error: {err}", file=sys.stderr)
        sys.exit(2)
    return records[-1]["accuracy"]  # the objective a Hydra sweeper maximises


if __name__ == "__main__":
    main()
