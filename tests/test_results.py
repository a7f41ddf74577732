"""Results as data and correct aggregation: duplicates once, differing configs apart, damage skipped, numbers exact."""

import json
import shutil

import numpy as np
import pytest
from scipy import stats

from alimb.errors import UserError
from alimb.loop import run_experiment
from alimb.state import RunDir
from alimb.report import report
from alimb.summary import holm
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
    records = RunDir(sweep / "outputs/margin/seed1").records()
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

    margin = np.array([aubc(sweep, "margin", s) for s in range(3)])
    random = np.array([aubc(sweep, "random", s) for s in range(3)])
    assert rows.loc["margin", "aubc_mean"] == pytest.approx(margin.mean(), abs=1e-6)
    assert rows.loc["margin", "aubc_std"] == pytest.approx(margin.std(ddof=1), abs=1e-6)
    assert rows.loc["random", "aubc_mean"] == pytest.approx(random.mean(), abs=1e-6)
    assert rows.loc["margin", "vs_random_t_p"] == pytest.approx(stats.ttest_rel(margin, random).pvalue, abs=1e-6)
    assert rows.loc["margin", "vs_random_wilcoxon_p"] == pytest.approx(stats.wilcoxon(margin, random).pvalue, abs=1e-6)
    assert rows.loc["random", "best_baseline"] == "margin" and rows.loc["margin", "best_baseline"] == "random"
    assert rows.loc["random", "vs_best_baseline_t_p"] == pytest.approx(stats.ttest_rel(random, margin).pvalue, abs=1e-6)
    minority = np.array([aubc(sweep, "margin", s, "minority_accuracy") for s in range(3)])
    assert rows.loc["margin", "minority_aubc_mean"] == pytest.approx(minority.mean(), abs=1e-6)


def aubc(root, af, seed, metric="accuracy"):
    """Area under `metric` vs labeled count over the labeled range (trapezoids), from the run's records."""
    records = RunDir(root / f"outputs/{af}/seed{seed}").records()
    x = np.array([r["n_labeled"] for r in records], dtype=float)
    y = np.array([r[metric] for r in records], dtype=float)
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def test_the_baseline_is_a_setting(sweep, tmp_path):
    """--baseline margin: every AF is compared with margin, the columns and the table say so."""
    report([sweep / "outputs"], tmp_path / "report", baseline="margin")
    import pandas as pd

    rows = pd.read_csv(tmp_path / "report/results.csv").set_index("acquisition")
    assert "vs_random_t_p" not in rows.columns and "labels_saved_vs_margin" in rows.columns
    margin = np.array([aubc(sweep, "margin", s) for s in range(3)])
    random = np.array([aubc(sweep, "random", s) for s in range(3)])
    assert rows.loc["random", "vs_margin_t_p"] == pytest.approx(stats.ttest_rel(random, margin).pvalue, abs=1e-6)
    assert np.isnan(rows.loc["margin", "vs_margin_t_p"])
    md = (tmp_path / "report/results.md").read_text()
    assert "labels saved vs margin" in md
    assert "(baseline)" in next(line for line in md.splitlines() if "| margin |" in line)


def test_an_experiment_declares_its_figures(make_cfg, tmp_path):
    """`report.figures` in the config (as conf/experiment/paper/fig1.yaml has) draws that figure, whatever the
    experiment's name; the layout is not part of the run's identity (the same run, drawn otherwise, resumes)."""
    layout = "+report={figures: [{file: my_accuracy, metric: accuracy, ylabel: acc}]}"
    run_experiment(make_cfg(*SMALL, "name=mine", layout, "al.iterations=2"), tmp_path / "runs/mine")
    written = report([tmp_path / "runs"], tmp_path / "report")
    assert tmp_path / "report/my_accuracy.png" in written["figures"]
    again = run_experiment(make_cfg(*SMALL, "name=mine", "al.iterations=2"), tmp_path / "runs/mine")  # no layout
    assert len(again) == 2  # found done: the same run
    with pytest.raises(UserError, match=r"report.figures\[0\].metric=.nope. is invalid: not a metric"):
        run_experiment(make_cfg(*SMALL, "name=mine", "+report={figures: [{file: f, metric: nope, ylabel: y}]}"),
                       tmp_path / "runs/bad")


def test_holm_by_hand():
    # sorted p: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04); NaN untouched
    assert holm([0.04, 0.01, float("nan"), 0.02]) == pytest.approx([0.04, 0.03, float("nan"), 0.04], nan_ok=True)
    assert holm([0.5, 0.6]) == [1.0, 1.0]


def fake_group(af, curves, setting="s"):
    """A group of complete runs with the given accuracy curves (one per seed) at 10, 20, 30 labels."""
    import pandas as pd

    from alimb.summary import Group

    runs = [pd.DataFrame({"seed": seed, "n_labeled": [10, 20, 30], "accuracy": curve, "scheme_used": "cs_svm"})
            for seed, curve in enumerate(curves)]
    return Group(("x", "d", "exp0.75", af, "cs_svm", ""), runs, 0, setting)


def test_labels_saved_interpolates_on_randoms_mean_curve():
    from alimb.summary import labels_saved

    random = fake_group("random", [[0.2, 0.4, 0.6], [0.2, 0.4, 0.6]])
    good = fake_group("margin", [[0.3, 0.5, 0.5], [0.3, 0.5, 0.5]])  # final 0.5: random needs 25 labels
    assert labels_saved(good, random) == pytest.approx(25 - 30)
    best = fake_group("dmcs_rand", [[0.3, 0.5, 0.7], [0.3, 0.5, 0.7]])  # random never reaches 0.7
    assert np.isnan(labels_saved(best, random)) and np.isnan(labels_saved(random, random))


def test_penalty_matrix_by_hand():
    from alimb.summary import penalty_matrix

    a = fake_group("a", [[0.5, 0.6, 0.7], [0.52, 0.61, 0.69], [0.49, 0.62, 0.70]])
    b = fake_group("b", [[0.4, 0.6, 0.7], [0.41, 0.61, 0.69], [0.40, 0.62, 0.70]])  # a wins at 10 labels only
    matrix = penalty_matrix([a, b])
    p = stats.ttest_rel([0.5, 0.52, 0.49], [0.4, 0.41, 0.40]).pvalue
    assert p < 0.05 and matrix.tolist() == [[0.0, 1 / 3], [0.0, 0.0]]


def test_figures_come_as_pdf_and_png_with_a_penalty_matrix(sweep, tmp_path):
    written = report([sweep / "outputs"], tmp_path / "report")
    names = {p.name for p in written["figures"]}
    for stem in ("accuracy", "minority_recall", "labeled_ir", "class_discovery"):
        assert {f"{stem}_synthetic_exp0.75.pdf", f"{stem}_synthetic_exp0.75.png"} <= names
    assert "penalty_synthetic_exp0.75_cs_svm.png" in names
    assert (tmp_path / "report/penalty_synthetic_exp0.75_cs_svm.csv").exists()
    assert (tmp_path / "report/accuracy_synthetic_exp0.75.pdf").read_bytes()[:4] == b"%PDF"


def test_a_run_that_never_completed_an_iteration_is_not_a_run_and_not_damage(sweep, tmp_path, caplog):
    shutil.copytree(sweep / "outputs", tmp_path / "outputs")
    failed = tmp_path / "outputs/margin/failed"  # what a run that failed before its first iteration leaves
    failed.mkdir()
    shutil.copy(tmp_path / "outputs/margin/seed0/config.json", failed / "config.json")
    (failed / "error.txt").write_text("backbone weights missing\n")
    with caplog.at_level("WARNING"):
        df = load([tmp_path / "outputs"])
    assert df["run"].nunique() == 6 and "failed" not in caplog.text


def test_the_report_shows_how_often_an_af_fell_back(make_cfg, tmp_path):
    """class_balanced with no time to search: its greedy batch runs; the share comes from the records' info."""
    for seed in (0, 1):
        run_experiment(make_cfg(*SMALL, "acquisition=class_balanced", "acquisition.time_limit=1e-9", f"seed={seed}",
                                "al.iterations=3"), tmp_path / f"runs/cb{seed}")
        run_experiment(make_cfg(*SMALL, "acquisition=random", f"seed={seed}", "al.iterations=3"), tmp_path / f"runs/r{seed}")
    records = [r for s in (0, 1) for r in RunDir(tmp_path / f"runs/cb{s}").records() if r.iteration > 0]
    share = np.mean([bool(r.acquisition_info and r.acquisition_info.get("fallback")) for r in records])
    assert share > 0
    report([tmp_path / "runs"], tmp_path / "report")
    import pandas as pd

    rows = pd.read_csv(tmp_path / "report/results.csv").set_index("acquisition")
    assert rows.loc["class_balanced", "fallback_share"] == pytest.approx(share) and rows.loc["random", "fallback_share"] == 0
    md = (tmp_path / "report/results.md").read_text()
    assert f"class_balanced (fallback in {share:.0%} of iterations)" in md and "random (fallback" not in md


def test_a_sweep_over_a_part_is_labeled_by_its_choices():
    """`-m acquisition=pcb acquisition.base=dropquery,random`: the runs differ in every key of two different bases;
    their labels say base=dropquery and base=random, and a plain option drops its axis (share=0.2)."""
    from alimb.results import _variants

    def run(fp, base, share):
        return {"axes": ["x", "digits", "exp", "pcb", "cs_svm"], "fingerprint": fp, "config": {
            "seed": 0, "acquisition": {"name": "pcb", "share": share, "base": base}}}

    dropquery = {"name": "dropquery", "_target_": "alimb.acquisition.dropout.dropquery", "passes": 3}
    random = {"name": "random", "_target_": "alimb.acquisition.uncertainty.random"}
    labels = _variants([run("a", dropquery, 0.1), run("b", random, 0.1), run("c", random, 0.2)])
    assert labels == {"a": "base=dropquery,share=0.1", "b": "base=random,share=0.1", "c": "base=random,share=0.2"}


def test_the_report_lists_the_runs_that_failed(tmp_path):
    from alimb.report import failed

    (tmp_path / "a/seed0").mkdir(parents=True)
    (tmp_path / "a/seed0/error.txt").write_text("ValueError: boom\nmore\n")
    (tmp_path / "b/seed0/.replaced").mkdir(parents=True)
    (tmp_path / "b/seed0/.replaced/error.txt").write_text("old\n")  # a replaced run's: not this run's
    assert failed([tmp_path]) == [(tmp_path / "a/seed0", "ValueError: boom")]
