import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from alimb.cli import rewrite_parts  # noqa: E402
from alimb.run import CONFIG_DIR  # noqa: E402


@pytest.fixture
def make_cfg():
    """Compose the real config tree with overrides, as the command line would."""

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name="config", overrides=rewrite_parts(list(overrides)))

    return _compose


# a small, fast experiment: 10 Gaussian classes, 6 iterations of 20
SMALL = (
    "dataset=synthetic", "dataset.loader.n_classes=10", "dataset.loader.n_per_class=60",
    "dataset.loader.test_per_class=10", "dataset.loader.dim=16", "al.iterations=6", "al.per_iteration=20",
)


def without_timings(records):
    """Records less their timings: what an interrupted and resumed run must reproduce exactly."""
    return [r.without_timings() for r in records]
