"""The paper's claim at small scale: minority-class sampling ends with a less imbalanced labeled set."""

import numpy as np

from alimb.loop import run_experiment

MCS = ["cmcs_rand", "cmcs_marg", "umcs_rand", "umcs_marg", "dmcs_rand", "dmcs_marg"]
SEEDS = range(5)
SETUP = (
    "dataset=synthetic", "dataset.loader.n_classes=20", "dataset.loader.n_per_class=150",
    "dataset.loader.test_per_class=10", "dataset.loader.dim=16", "dataset.loader.separation=5",
    "imbalance.target_ir=0.75", "al.iterations=6", "al.per_iteration=60",
)


def final_ir(make_cfg, tmp_path, af):
    irs = []
    for seed in SEEDS:
        records = run_experiment(make_cfg(*SETUP, f"acquisition={af}", f"seed={seed}"), tmp_path / f"{af}{seed}")
        irs.append(records[-1]["labeled_ir"])
        assert sum(r["n_from_quota"] for r in records[1:]) > 0 or af == "random"
    return float(np.mean(irs))


def test_every_mcs_variant_ends_less_imbalanced_than_random(make_cfg, tmp_path):
    baseline = final_ir(make_cfg, tmp_path, "random")
    assert baseline > 0.5, "the pool should be clearly imbalanced"
    for af in MCS:
        ir = final_ir(make_cfg, tmp_path, af)
        assert ir < baseline, f"{af}: labeled ir {ir:.3f} not below random's {baseline:.3f}"
