"""Results as data and correct aggregation: duplicates once, differing configs apart, damage skipped, numbers exact."""

import json
import shutil

import numpy as np
import pytest
from scipy import stats

from alimb.loop import run_experiment
from alimb.records import read_records
from alimb.report import holm, report
from alimb.results import load
from tests.conftest import SMALL


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """random and margin, seeds 0-2, under outputs/<af>/seed<s> (as a sweep would lay them out)."""
    from hydra import compose, initialize_config_dir

    from alimb.run import CONFIG_DIR

    root = tmp_path_factory.mktemp("sweep")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for af in ("random", "margin"):
            for seed in range(3):
                cfg = compose("config", overrides=[*SMALL, f"acquisition={af}", f"seed={seed}"])
                run_experiment(cfg, root / "outputs" / af / f"seed{seed}")
    return root


def test_one_row_per_run_and_iteration_with_axes_and_seed(sweep):
    df = load([sweep / "outputs"])
    assert len(df) == 6 * 6 and df["run"].nunique() == 6
    assert set(df["acquisition"]) == {"random", "margin"} and set(df["seed"]) == {0, 1, 2}
    assert (df["variant"] == "").all() and df["complete"].all()
    run = df[(df.acquisition == "margin") & (df.seed == 1)].sort_values("iteration")
    records = read_records(sweep / "outputs/margin/seed1")
    assert run["accuracy"].tolist() == [r["accuracy"] for r in records]
    assert run["classes_discovered"].tolist() == [sum(c > 0 for c in r["class_counts"]) for r in records]
    assert run["per_class_accuracy"].iloc[-1] == records[-1]["per_class_accuracy"]


def test_a_run_found_twice_counts_once(sweep, tmp_path):
    shutil.copytree(sweep / "outputs/random/seed0", tmp_path / "copy/seed0")
    df = load([sweep / "outputs", tmp_path / "copy"])
    assert df["run"].nunique() == 6
    written = report([sweep / "outputs", tmp_path / "copy"], tmp_path / "report")
    assert written["runs"] == 6
    import pandas as pd

    rows = pd.read_csv(tmp_path / "report/results.csv").set_index("acquisition")
    assert rows.loc["random", "seeds"] == 3 and rows.loc["margin", "seeds"] == 3


def test_runs_differing_in_anything_but_the_seed_are_never_averaged(sweep, tmp_path, make_cfg):
    run_experiment(make_cfg(*SMALL, "acquisition=random", "seed=0", "features.normalize=none"), tmp_path / "none/seed0")
    df = load([sweep / "outputs", tmp_path / "none"])
    random = df[df.acquisition == "random"].drop_duplicates("run")
    assert sorted(random["variant"]) == ["features.normalize=l2"] * 3 + ["features.normalize=none"]
    assert random.groupby("fingerprint")["run"].nunique().sort_values().tolist() == [1, 3]


def test_damaged_run_directories_are_skipped_with_a_warning(sweep, tmp_path, caplog):
    shutil.copytree(sweep / "outputs", tmp_path / "outputs")
    (tmp_path / "outputs/margin/seed2/config.json").write_text("{")
    (tmp_path / "outputs/random/seed1/summary.json").write_text(json.dumps({"n_iterations": 99}))
    with caplog.at_level("WARNING"):
        df = load([tmp_path / "outputs"])
    assert df["run"].nunique() == 4
    assert "margin/seed2" in caplog.text and "random/seed1" in caplog.text


def test_aubc_and_paired_tests_match_a_computation_from_the_records(sweep, tmp_path):
    report([sweep / "outputs"], tmp_path / "report")
    import pandas as pd

    rows = pd.read_csv(tmp_path / "report/results.csv").set_index("acquisition")

    def aubc(af, seed, metric="accuracy"):
        records = read_records(sweep / f"outputs/{af}/seed{seed}")
        x = np.array([r["n_labeled"] for r in records], dtype=float)
        y = np.array([r[metric] for r in records], dtype=float)
        return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))

    margin = np.array([aubc("margin", s) for s in range(3)])
    random = np.array([aubc("random", s) for s in range(3)])
    assert rows.loc["margin", "aubc_mean"] == pytest.approx(margin.mean(), abs=1e-6)
    assert rows.loc["margin", "aubc_std"] == pytest.approx(margin.std(ddof=1), abs=1e-6)
    assert rows.loc["random", "aubc_mean"] == pytest.approx(random.mean(), abs=1e-6)
    assert rows.loc["margin", "vs_random_t_p"] == pytest.approx(stats.ttest_rel(margin, random).pvalue, abs=1e-6)
    assert rows.loc["margin", "vs_random_wilcoxon_p"] == pytest.approx(stats.wilcoxon(margin, random).pvalue, abs=1e-6)
    minority = np.array([aubc("margin", s, "minority_accuracy") for s in range(3)])
    assert rows.loc["margin", "minority_aubc_mean"] == pytest.approx(minority.mean(), abs=1e-6)


def test_holm_by_hand():
    # sorted p: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04); NaN untouched
    assert holm([0.04, 0.01, float("nan"), 0.02]) == pytest.approx([0.04, 0.03, float("nan"), 0.04], nan_ok=True)
    assert holm([0.5, 0.6]) == [1.0, 1.0]
