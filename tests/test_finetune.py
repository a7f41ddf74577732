"""FT / FT-th in Lightning on CPU with a small randomly initialised backbone, and the switch."""

import numpy as np
import pytest
import torch

from alimb.backbone import TorchvisionBackbone
from alimb.data.digits import load_digits
from alimb.loop import run_experiment
from alimb.schemes import Inputs
from alimb.schemes.finetune import FineTuneScheme, threshold
from alimb.schemes.trainer import inference_setup
from alimb.schemes.switch import SwitchScheme, stratified_folds, stratified_holdout

TINY = ("backbone.weights=null", "scheme.epochs=1", "trainer.enable_progress_bar=false")


def test_thresholding_by_hand():
    np.testing.assert_allclose(threshold(np.array([[0.6, 0.3, 0.1]]), np.array([6, 3, 0])), [[0.5, 0.5, 0.0]])
    # priors .25 .25 .5: 0.5/.25 = 2, 0.25/.25 = 1, 0.25/.5 = 0.5 -> / 3.5
    np.testing.assert_allclose(threshold(np.array([[0.5, 0.25, 0.25]]), np.array([1, 1, 2])), [[4 / 7, 2 / 7, 1 / 7]])
    # all the mass on a class with no labeled sample: the plain probabilities stay
    np.testing.assert_allclose(threshold(np.array([[0.0, 0.0, 1.0]]), np.array([3, 1, 0])), [[0.0, 0.0, 1.0]])


def tiny_scheme(thresholding=True, epochs=2):
    backbone = TorchvisionBackbone(weights=None, resolution=16, num_workers=0, device="cpu")
    return FineTuneScheme(backbone, thresholding=thresholding, epochs=epochs, batch_size=16, image_size=16,
                          trainer={"enable_progress_bar": False, "accelerator": "cpu"})


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return Inputs(data.train_x[:80], data.train_images[:80]), data.train_y[:80], Inputs(data.test_x, data.test_images)


def test_ft_th_trains_scores_and_thresholds(digits):
    inputs, y, test = digits
    scheme = tiny_scheme()
    record = scheme.fit(inputs, y, 10, np.random.default_rng(0))
    assert np.isfinite(record["train_loss"])
    scores, features = scheme.score(test)
    assert scores.shape == (300, 10) and features.shape == (300, 512)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0)
    scheme.thresholding = False
    raw, _ = scheme.score(test)
    np.testing.assert_allclose(scores, threshold(raw, np.bincount(y, minlength=10)), atol=1e-6)
    assert (scheme.predict(test) == raw.argmax(1)).all()


def test_fit_is_deterministic_and_the_state_restores_the_model(digits):
    inputs, y, test = digits
    a, b = tiny_scheme(), tiny_scheme()
    a.fit(inputs, y, 10, np.random.default_rng(3))
    b.fit(inputs, y, 10, np.random.default_rng(3))
    np.testing.assert_array_equal(a.score(test)[0], b.score(test)[0])
    restored = tiny_scheme()
    restored.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(restored.score(test)[0], a.score(test)[0])


def test_alimb_digits_ft_th_runs_end_to_end(make_cfg, tmp_path):
    records = run_experiment(make_cfg("scheme=ft_th", "acquisition=dmcs_rand", "al.iterations=3", *TINY), tmp_path)
    assert [r["n_labeled"] for r in records] == [25, 50, 75]
    assert all(np.isfinite(r["train_loss"]) for r in records), "each iteration fine-tuned (only FT reports a loss)"
    assert [sum(r["class_counts"]) for r in records] == [25, 50, 75]


def test_scoring_runs_in_the_trainers_precision(digits):
    """bf16-mixed scores in bfloat16 (close to, not equal to, float32); 32-true in float32."""
    inputs, y, test = digits
    scheme = tiny_scheme()
    scheme.fit(inputs, y, 10, np.random.default_rng(0))
    full, _ = scheme.score(test)
    scheme.trainer = scheme.trainer.model_copy(update={"precision": "bf16-mixed"})
    low, _ = scheme.score(test)
    assert not np.array_equal(full, low) and np.abs(full - low).max() < 0.05
    assert inference_setup({"accelerator": "cpu", "precision": "16-mixed"}) == (torch.device("cpu"), torch.float16)
    assert inference_setup({"accelerator": "cpu", "precision": "32-true"}) == (torch.device("cpu"), None)


class Fake:
    """A scheme that predicts the true label (kept in feature 0) or always class 0."""

    needs_images = False

    def __init__(self, good: bool):
        self.good = good

    def fit(self, inputs, y, n_classes, rng):
        return {}

    def predict(self, inputs):
        return inputs.features[:, 0].astype(int) if self.good else np.zeros(len(inputs), dtype=int)

    def score(self, inputs):
        return np.eye(3)[self.predict(inputs)], inputs.features

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def run_switch(transfer_good, finetune_good, sticky=True, fits=3):
    y = np.repeat(np.arange(3), 10)
    inputs = Inputs(features=y[:, None].astype(np.float32))
    switch = SwitchScheme({"cs_svm": Fake(transfer_good), "ft_th": Fake(finetune_good)}, "cs_svm", sticky=sticky)
    return switch, [switch.fit(inputs, y, 3, np.random.default_rng(i)) for i in range(fits)]


def test_switch_to_fine_tuning_when_it_wins_and_stay():
    switch, records = run_switch(transfer_good=False, finetune_good=True)
    assert [r["scheme_used"] for r in records] == ["cs_svm", "ft_th", "ft_th"]
    assert records[0]["cv_accuracy"] == {"cs_svm": pytest.approx(1 / 3), "ft_th": 1.0}
    assert records[1]["cv_accuracy"] is None, "sticky: no cross-validation once fine tuning won"
    assert [r["switch_iteration"] for r in records] == [1, 1, 1]
    restored = SwitchScheme({"cs_svm": Fake(False), "ft_th": Fake(True)}, "cs_svm")
    restored.load_state_dict(switch.state_dict())
    assert (restored.current, restored.active, restored.switch_iteration) == ("ft_th", "ft_th", 1)


def test_svm_kept_when_it_wins():
    _, records = run_switch(transfer_good=True, finetune_good=False)
    assert [r["scheme_used"] for r in records] == ["cs_svm"] * 3
    assert all(r["switch_iteration"] is None and r["cv_accuracy"]["cs_svm"] == 1.0 for r in records)


def test_not_sticky_keeps_cross_validating():
    _, records = run_switch(transfer_good=False, finetune_good=True, sticky=False)
    assert all(r["cv_accuracy"] is not None for r in records)


def test_any_number_of_schemes_by_name_the_best_one_wins_and_stays():
    """Three schemes, the start one the worst: the best by cross-validation is used from the next fit on, and stays."""
    y = np.repeat(np.arange(3), 10)
    inputs = Inputs(features=y[:, None].astype(np.float32))
    switch = SwitchScheme({"a": Fake(False), "b": Fake(False), "c": Fake(True)}, "a")
    records = [switch.fit(inputs, y, 3, np.random.default_rng(i)) for i in range(3)]
    assert [r["scheme_used"] for r in records] == ["a", "c", "c"]
    assert records[0]["cv_accuracy"]["c"] == 1.0 and records[0]["cv_accuracy"]["a"] == pytest.approx(1 / 3)
    assert records[1]["cv_accuracy"] is None and records[2]["switch_iteration"] == 1


def test_a_switch_needs_two_schemes_and_starts_with_one_of_them(make_cfg):
    """Checked by validation before any work (the switch's declaration), in one line each."""
    from alimb.errors import UserError
    from alimb.schema import validate

    with pytest.raises(UserError, match=r"^config key scheme.schemes is invalid: .*at least 2 items"):
        validate(make_cfg("scheme=switch", "~scheme@scheme.schemes.ft_th"))
    with pytest.raises(UserError, match=r"^config key scheme.start='svm' is invalid: not one of the switch's "
                                        r"schemes \(cs_svm, ft_th\)$"):
        validate(make_cfg("scheme=switch", "scheme.start=svm"))


def test_stratified_holdout_takes_a_fifth_of_every_class():
    y = np.array([0] * 10 + [1] * 5 + [2])
    train, held = stratified_holdout(y, 0.2, np.random.default_rng(0))
    assert np.bincount(y[held], minlength=3).tolist() == [2, 1, 0]
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(16))


def test_five_folds_partition_the_labeled_set_stratified():
    y = np.array([0] * 10 + [1] * 5 + [2] * 2 + [3])
    splits = stratified_folds(y, 5, np.random.default_rng(0))
    held = np.concatenate([h for _, h in splits])
    assert sorted(held.tolist()) == list(range(17)), "every sample of a class with 2+ held out exactly once"
    for train, h in splits:
        assert np.bincount(y[h], minlength=4)[0] == 2 and np.bincount(y[h], minlength=4)[1] == 1
        assert sorted(np.concatenate([train, h]).tolist()) == list(range(18))
        assert set(y[train]) == {0, 1, 2, 3}, "no class loses all its training samples"


class Noisy(Fake):
    """Right on samples whose feature 1 is set, wrong elsewhere: its held-out accuracy depends on the split."""

    def predict(self, inputs):
        return np.where(inputs.features[:, 1] > 0, inputs.features[:, 0], (inputs.features[:, 0] + 1) % 3).astype(int)


def test_five_fold_cross_validation_is_the_mean_over_folds():
    y = np.repeat(np.arange(3), 10)
    right = np.zeros(30)
    right[::2] = 1  # half of each class predicted right
    inputs = Inputs(features=np.stack([y, right], axis=1).astype(np.float32))
    switch = SwitchScheme({"cs_svm": Noisy(True), "ft_th": Fake(False)}, "cs_svm", folds=5)
    scores = switch.cross_validate(inputs, y, 3, np.random.default_rng(0))
    expected = []
    for _, held in stratified_folds(y, 5, np.random.default_rng(0)):
        hits = right[held] > 0
        expected.append(np.mean([hits[y[held] == c].mean() for c in range(3)]))
    assert scores["cs_svm"] == pytest.approx(np.mean(expected)) and scores["ft_th"] == pytest.approx(1 / 3)


def test_switch_end_to_end_on_digits(make_cfg, tmp_path):
    records = run_experiment(
        make_cfg("scheme=switch", "al.iterations=2", "backbone.weights=null", "scheme.schemes.ft_th.epochs=1",
                 "trainer.enable_progress_bar=false"), tmp_path,
    )
    assert set(records[0]["cv_accuracy"]) == {"cs_svm", "ft_th"}
    assert records[0]["scheme_used"] == "cs_svm"


@pytest.mark.filterwarnings("ignore:.*`srun` command is available")  # a machine with Slurm installed
def test_the_vit_schedule_warms_up_then_decays_by_cosine_per_epoch(digits):
    """4 epochs, 1 of warm-up, lr 3e-5: factors 1 (warm-up (0+1)/1), then (1 + cos(pi k/3))/2 for k = 0, 1, 2:
    1, 0.75, 0.25 (worked by hand); the optimiser AdamW with its decoupled weight decay."""
    import lightning as L

    seen = []

    class Record(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    inputs, y, _ = digits
    scheme = tiny_scheme(thresholding=False, epochs=4)
    scheme.optimizer, scheme.schedule, scheme.warmup_epochs, scheme.lr = "adamw", "cosine", 1, 3e-5
    module = scheme._new_module(10, seed=0)
    trainer = L.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", callbacks=[Record()])
    images, labels = torch.from_numpy(inputs.images[:32]), torch.from_numpy(y[:32])
    trainer.fit(module, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=16))
    np.testing.assert_allclose(seen, [3e-5 * f for f in (1.0, 1.0, 0.75, 0.25)], rtol=1e-9)
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW)
    assert trainer.optimizers[0].param_groups[0]["weight_decay"] == scheme.weight_decay


def _batches_by_rank(n, batch_size, seed, world, monkeypatch):
    import torch.distributed as dist

    from alimb.schemes.finetune_module import _EpochBatches

    out = []
    for rank in range(world):
        monkeypatch.setattr(dist, "is_initialized", lambda: world > 1)
        monkeypatch.setattr(dist, "get_world_size", lambda: world)
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        sampler = _EpochBatches(n, batch_size, seed)
        out.append([[b.tolist() for b in sampler] for _ in range(2)])  # two epochs
        assert len(sampler) == len(out[-1][0])
    return out


def test_one_process_batches_as_batchsampler_over_randomsampler_did(monkeypatch):
    """The batches of one process are what BatchSampler(RandomSampler(seeded), drop_last=n % b == 1) gives, epoch after
    epoch, so single-device runs select as before."""
    for n, b in ((33, 8), (32, 8), (7, 16), (17, 16)):
        gen = torch.Generator().manual_seed(5)
        reference = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(range(n), generator=gen), b,
                                                  drop_last=n % b == 1)
        expected = [list(reference) for _ in range(2)]
        assert _batches_by_rank(n, b, 5, 1, monkeypatch)[0] == expected


def test_two_ranks_take_disjoint_equal_shares_of_one_permutation(monkeypatch):
    """DDP's ranks must take the same number of steps: rank r takes samples r, r + 2, ... of the epoch's permutation
    (the first 2 * (n // 2)), batched; together they cover each sample at most once."""
    n, b = 37, 4
    ranks = _batches_by_rank(n, b, 9, 2, monkeypatch)
    gen = torch.Generator().manual_seed(9)
    for epoch in range(2):
        order = torch.randperm(n, generator=gen).tolist()[: n // 2 * 2]
        torch.randperm(n, generator=gen)  # the one RandomSampler drew and dropped each epoch
        for r in range(2):
            mine = order[r::2]
            assert ranks[r][epoch] == [mine[i:i + b] for i in range(0, len(mine), b) if len(mine[i:i + b]) > 1]
        assert len(ranks[0][epoch]) == len(ranks[1][epoch])


def test_two_cpu_processes_fine_tune_while_one_loop_selects_and_writes(tmp_path):
    """The command of the issue, `trainer.devices=2 trainer.strategy=ddp` on CPU, as users run it (the processes are
    the point): the ranks are processes inside each fit (ddp_fork on CPUs), so the AL loop is one process that alone holds
    the run directory (Lightning's own ddp re-ran the command per rank, and the second loop met the first one's
    lock: exit 137); each fit comes back with rank 0's weights and the loss averaged over the ranks. Run as inside a
    one-task Slurm job (its variables set): Lightning would otherwise make every rank the job's task 0."""
    import json
    import os
    import subprocess
    import sys

    slurm = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "alimb", "SLURM_NODELIST": "n1",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_PROCID": "0", "SLURM_JOB_ID": "5", "SLURM_NNODES": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "alimb.run", "scheme=ft_th", "al.iterations=2", "al.per_iteration=10",
         "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", *TINY, f"hydra.run.dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, **slurm})
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [r["n_labeled"] for r in records] == [10, 20] and [sum(r["class_counts"]) for r in records] == [10, 20]
    assert all(r["train_info"] == {"processes": 2} and np.isfinite(r["train_loss"]) for r in records)
    assert (tmp_path / "summary.json").is_file()
