"""The AL loop end to end, called directly (no subprocess)."""

import json

import numpy as np
import pytest

from alimb.errors import UserError
from alimb.loop import run_experiment
from alimb.records import dumps
from alimb.state import RunDir
from tests.conftest import SMALL


def run(make_cfg, tmp_path, *overrides, name="run"):
    cfg = make_cfg(*SMALL, *overrides)
    records = run_experiment(cfg, tmp_path / name)
    return records, tmp_path / name


def test_records_and_summary(make_cfg, tmp_path):
    records, run_dir = run(make_cfg, tmp_path)
    assert [r["n_labeled"] for r in records] == [20, 40, 60, 80, 100, 120]
    assert [dumps(r) for r in RunDir(run_dir).records()] == [dumps(r) for r in records]
    first = records[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    pool_counts = np.array(summary["pool"]["counts"])
    minority = pool_counts < pool_counts.mean()  # the pool's minority classes, by the paper's rule, computed here
    for r in records:  # each derived metric recomputed by hand from what the record holds
        counts, recall = np.array(r["class_counts"], dtype=float), np.array(r["per_class_accuracy"], dtype=float)
        assert r["labeled_ir"] == pytest.approx(counts.std() / counts.mean())
        assert r["accuracy"] == pytest.approx(np.nanmean(recall))
        assert r["minority_accuracy"] == pytest.approx(np.nanmean(recall[minority]))
        assert r["majority_accuracy"] == pytest.approx(np.nanmean(recall[~minority]))
        assert 0 <= r["macro_f1"] <= 1
    assert sum(first["class_counts"]) == 20 and len(first["class_counts"]) == 10
    assert set(first["seconds"]) == {"select", "train", "evaluate", "score"}
    assert summary["final_accuracy"] == records[-1]["accuracy"]
    accs = [r["accuracy"] for r in records]
    assert min(accs) <= summary["auc"] <= max(accs)
    assert summary["config"]["acquisition"]["name"] == "dmcs_rand"
    rounds = np.load(run_dir / "labeled_round.npy")
    assert np.bincount(rounds[rounds >= 0]).tolist() == [20] * 6


def test_same_seed_same_selections_other_seed_differs(make_cfg, tmp_path):
    run(make_cfg, tmp_path, "seed=5", name="a")
    run(make_cfg, tmp_path, "seed=5", name="b")
    run(make_cfg, tmp_path, "seed=6", name="c")
    a, b, c = (np.load(tmp_path / n / "labeled_round.npy") for n in "abc")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    strip = lambda rs: [r.without_timings() for r in rs]  # noqa: E731
    assert strip(RunDir(tmp_path / "a").records()) == strip(RunDir(tmp_path / "b").records())


def test_the_pool_does_not_depend_on_the_al_seed(make_cfg, tmp_path):
    run(make_cfg, tmp_path, "seed=1", name="a")
    run(make_cfg, tmp_path, "seed=2", name="b")
    np.testing.assert_array_equal(np.load(tmp_path / "a/pool_indices.npy"), np.load(tmp_path / "b/pool_indices.npy"))


def test_accuracy_improves_with_labels(make_cfg, tmp_path):
    records, _ = run(make_cfg, tmp_path, "acquisition=margin")
    assert records[-1]["accuracy"] > records[0]["accuracy"]


def test_budget_larger_than_pool_fails_before_writing(make_cfg, tmp_path):
    with pytest.raises(UserError, match="exceeds the pool"):
        run(make_cfg, tmp_path, "al.per_iteration=200")
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_iteration_size(make_cfg, tmp_path, value):
    with pytest.raises(UserError, match=r"config key al.per_iteration=-?\d is invalid: Input should be greater than or equal to 1"):
        run(make_cfg, tmp_path, f"al.per_iteration={value}")


def test_feature_normalisation_reaches_scheme_and_afs_and_is_recorded(make_cfg, tmp_path, monkeypatch):
    from alimb import loop
    from alimb.normalize import normalize

    seen = {}
    original = loop.load_data

    def spy(cfg, needs_images, oracle=None):
        out = original(cfg, needs_images, oracle)
        seen[cfg.features.normalize] = out.pool_in.features
        return out

    monkeypatch.setattr(loop, "load_data", spy)
    for method in ("none", "l2", "standard"):
        run(make_cfg, tmp_path / method, f"features.normalize={method}")
        summary = json.loads((tmp_path / method / "run" / "summary.json").read_text())
        assert summary["features_normalize"] == method and summary["config"]["features"]["normalize"] == method
    np.testing.assert_allclose(np.linalg.norm(seen["l2"], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(seen["standard"].mean(axis=0), 0.0, atol=1e-5)
    raw = seen["none"]
    np.testing.assert_allclose(seen["l2"], raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5)
    pool, test = normalize(np.array([[3.0, 4.0], [0.0, 0.0]]), np.array([[0.0, 2.0]]), "l2")
    np.testing.assert_allclose(pool, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(test, [[0.0, 1.0]])


@pytest.mark.parametrize("overrides, reveals", [
    (("acquisition=dmcs_rand",), False),
    (("acquisition=dmcs_rand", "acquisition.auxiliary=galaxy"), True),  # GALAXY reads labels, inside DMCS too
    (("acquisition=dmcs_rand", "acquisition.auxiliary=galaxy", "acquisition.auxiliary.reveal_within_batch=false"),
     False),
    # the bandit's arms propose without the oracle: a revealing arm does not make the bandit reveal
    (("acquisition=minority_bandit", "acquisition.reveal_within_batch=false", "+acquisition@acquisition.arms.galaxy=galaxy"),
     False),
])
def test_records_say_whether_labels_were_read_within_the_batch(make_cfg, tmp_path, overrides, reveals):
    records, _ = run(make_cfg, tmp_path, *overrides, "al.iterations=3")
    assert [r.reveal_within_batch for r in records] == [False, reveals, reveals]
    assert all((r.n_revealed_within_batch > 0) == reveals for r in records[1:])  # what the oracle was asked agrees
