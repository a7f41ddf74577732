"""Every bad input is one clear line before any work: the config schema and the checks of the labels."""

import subprocess
import sys

import numpy as np
import pytest

from alimb.errors import UserError
from alimb.loop import run_experiment
from alimb.schema import validate
from tests import image_archives
from tests.conftest import SMALL


@pytest.mark.parametrize(
    "override,message",
    [
        ("seed=abc", "seed='abc' is invalid: Input should be a valid integer"),
        ("seed=-1", "seed=-1 is invalid: Input should be greater than or equal to 0"),
        ("seed=null", "seed=None is invalid"),
        ("scheme.C=-1", "scheme.C=-1 is invalid: Input should be greater than 0"),
        ("scheme.C=0", "scheme.C=0 is invalid"),
        ("scheme.C=true", "scheme.C=True is invalid: Input should be a number, not a boolean"),
        ("scheme.tol=0", "scheme.tol=0 is invalid"),
        ("scheme.max_iter=0", "scheme.max_iter=0 is invalid"),
        ("scheme.solver=sgd", "scheme.solver='sgd' is invalid: Input should be 'auto', 'newton', 'lbfgs' or 'liblinear'"),
        ("imbalance.min_count=0", "imbalance.min_count=0 is invalid"),
        ("imbalance.total=0", "imbalance.total=0 is invalid"),
        ("imbalance.target_ir=inf", "imbalance.target_ir=inf is invalid: Input should be a finite number"),
        ("dataset.loader.test_per_class=0", "dataset.loader.test_per_class=0 is invalid"),
        ("backbone.batch_size=0", "backbone.batch_size=0 is invalid"),
        ("backbone.weights=BOGUS_V9", "backbone.weights='BOGUS_V9' is invalid: resnet18 has IMAGENET1K_V1"),
        ("backbone.arch=resnet9000", "backbone.arch='resnet9000' is invalid"),
        ("backbone.weights_path=/no/such.pth", "backbone.weights_path='/no/such.pth' is invalid: no such file"),
        ("trainer.precision=bf17", "trainer.precision='bf17' is invalid"),
        ("trainer.devices=0", "trainer.devices=0 is invalid"),
        ("scheme.device=cuda:0", "scheme.device='cuda:0' is invalid: torch sees no CUDA GPU"),
        ("+foo=1", "unknown config key foo"),
        ("+scheme.gamma=1", "unknown config key scheme.gamma"),
        ("name=a/b", "name='a/b' is invalid"),
        ("overwrite=perhaps", "overwrite='perhaps' is invalid"),
        ("al.iterations=1.5", "al.iterations=1.5 is invalid"),
    ],
)
def test_bad_values_name_the_key_in_one_line(make_cfg, override, message):
    if "cuda" in override:
        pytest.importorskip("torch").cuda.is_available() and pytest.skip("a GPU is present")
    images = ("dataset=cifar100",) if override.startswith("backbone.") else ()  # a dataset the backbone runs on
    with pytest.raises(UserError) as err:
        validate(make_cfg(override, *images))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_backbone_names_are_checked_where_a_backbone_runs_and_cost_nothing_elsewhere(make_cfg):
    with pytest.raises(UserError, match="backbone.arch='resnet9000' is invalid"):  # fine tuning trains it, on digits
        validate(make_cfg("scheme=ft", "backbone.arch=resnet9000"))
    script = ("import sys; from hydra import compose, initialize_config_dir; from alimb.run import CONFIG_DIR; "
              "from alimb.schema import validate\n"
              "with initialize_config_dir(config_dir=CONFIG_DIR, version_base='1.3'):\n"
              "    validate(compose('config', overrides=['backbone.arch=resnet9000']))\n"
              "print(sorted(m for m in ('torchvision', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]  # digits' features: no backbone


def test_the_default_config_and_every_nested_scheme_validate(make_cfg):
    for overrides in ((), ("scheme=switch",), ("scheme=ft_th",), ("logger=wandb",), ("imbalance=paper", "dataset=cifar100")):
        validate(make_cfg(*overrides))
    with pytest.raises(UserError, match=r"scheme\.schemes\.ft_th\.epochs=0"):
        validate(make_cfg("scheme=switch", "scheme.schemes.ft_th.epochs=0"))


def test_a_cache_dir_that_is_a_file_is_refused(make_cfg, tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match="is a file, not a directory"):
        validate(make_cfg(f"cache_dir={tmp_path / 'f' / 'sub'}"))


def embeddings(tmp_path, train_y, test_y, dim=4, **extra):
    rng = np.random.default_rng(0)
    path = tmp_path / "e.npz"
    np.savez(path, train_features=rng.normal(size=(len(train_y), dim)), train_labels=np.asarray(train_y),
             test_features=rng.normal(size=(len(test_y), dim)), test_labels=np.asarray(test_y), **extra)
    return ("dataset=embeddings", f"dataset.loader.path={path}", "imbalance=none", "al.iterations=2", "al.per_iteration=2")


@pytest.mark.parametrize(
    "train_y,test_y,dim,message",
    [
        ([0] * 20, [0] * 4, 4, "the training split has 1 class"),
        ([0, 1, 5] * 10, [0, 1, 5] * 2, 4, "class(es) 2, 3, 4 have no training sample"),
        ([0, 1] * 10, [0, 1, 2] * 2, 4, "class(es) 2 have no training sample (class(es) 2 appear in the test split)"),
        ([0, 1] * 10 + [10**6], [0, 1] * 2, 4, "labels go up to 1000000 but there are only 21 training samples"),
        ([0, 1] * 10, [0, 1] * 2, 0, "train_features must be (n, d)"),
    ],
)
def test_meaningless_labels_or_features_are_refused(make_cfg, tmp_path, train_y, test_y, dim, message):
    with pytest.raises(UserError) as err:
        run_experiment(make_cfg(*embeddings(tmp_path, train_y, test_y, dim)), tmp_path / "run")
    assert message in str(err.value)
    assert not (tmp_path / "run" / "summary.json").exists()


def test_the_imbalance_is_checked_before_features_are_extracted(make_cfg, tmp_path, monkeypatch):
    from alimb import iteration

    root = image_archives.image_folder(tmp_path / "imgs")
    monkeypatch.setattr(iteration, "featurize", lambda *a, **k: pytest.fail("features extracted before the checks"))
    with pytest.raises(UserError, match="imbalance cannot reach ir 50"):
        run_experiment(make_cfg("dataset=image_folder", f"dataset.loader.root={root}", "dataset.loader.test_per_class=2",
                                "imbalance.target_ir=50"), tmp_path / "r")
    with pytest.raises(UserError, match="exceeds the pool"):
        run_experiment(make_cfg("dataset=image_folder", f"dataset.loader.root={root}", "dataset.loader.test_per_class=2",
                                "imbalance=none", "al.per_iteration=100"), tmp_path / "r")


def test_image_folder_messages_name_the_folder(tmp_path):
    from alimb.data.images import image_folder

    root = image_archives.image_folder(tmp_path / "imgs")
    (root / "empty_class").mkdir()
    with pytest.raises(UserError, match=r"class folder .*empty_class holds no image"):
        image_folder(str(root))
    (root / "empty_class").rmdir()
    with pytest.raises(UserError, match=r"test image folder not found: .*nowhere"):
        image_folder(str(root), test_root=str(tmp_path / "nowhere"))


@pytest.mark.parametrize(
    "args,message",
    [
        (("seed=-1",), "alimb: error: config key seed=-1 is invalid"),
        (("acquisition=nope",), "alimb: error: no acquisition option named 'nope'; choose one of alfamix"),
        (("al.iteratoins=3",), "alimb: error: unknown config key al.iteratoins"),
        (("seed=[1",), "alimb: error: no viable alternative at input '[1'"),
        (("experiment=nope",), "alimb: error: no experiment option named 'nope'; choose one of digits_afs, digits_recent, lt/cifar100_lt"),
    ],
)
def test_the_command_line_reports_each_in_one_line_with_exit_2(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "alimb.run", *args, *SMALL], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(message), proc.stderr


def test_an_output_path_blocked_by_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("")
    proc = subprocess.run([sys.executable, "-m", "alimb.run", f"hydra.run.dir={tmp_path / 'afile' / 'run'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert f"{tmp_path / 'afile'} is a file, not a directory" in proc.stderr


def test_paper_imbalance_outside_table_one_is_refused_and_mit67_keeps_its_own(make_cfg, tmp_path):
    from alimb.config import build
    from alimb.data.imbalance import NoImbalance

    with pytest.raises(UserError, match="not in the paper's Table I"):
        run_experiment(make_cfg("imbalance=paper"), tmp_path / "run")  # digits
    assert isinstance(build(make_cfg("dataset=mit67", "imbalance=paper").imbalance, drop=("name", "seed")), NoImbalance)


def test_an_empty_counts_file_is_one_clear_error(make_cfg, tmp_path):
    (tmp_path / "counts.txt").write_text("")
    with pytest.raises(UserError, match="holds no per-class counts"):
        run_experiment(make_cfg("imbalance=counts", f"imbalance.path={tmp_path / 'counts.txt'}"), tmp_path / "run")


@pytest.mark.parametrize("override,message", [
    ("trainer.strategy=bogus", "trainer.strategy='bogus' is invalid: Lightning knows auto, ddp"),
    ("trainer.accelerator=tpu", "trainer.accelerator='tpu' is invalid: no such device here"),
])
def test_trainer_settings_are_checked_when_a_scheme_fine_tunes(make_cfg, override, message):
    validate(make_cfg(override))  # CS-SVM does not use the trainer
    for scheme in ("ft_th", "switch"):
        with pytest.raises(UserError, match=message.replace("(", r"\(")):
            validate(make_cfg(f"scheme={scheme}", override))


def test_several_devices_need_a_strategy_whose_ranks_live_inside_the_fit(make_cfg):
    """ddp (and auto) on several devices run as ddp_spawn; a strategy whose ranks re-run the command is refused in one
    line before any work (each rank would be a second AL loop)."""
    validate(make_cfg("scheme=ft_th", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"))
    validate(make_cfg("scheme=ft_th", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp_fork"))
    with pytest.raises(UserError, match=r"^trainer.devices=2 trainer.strategy=ddp_find_unused_parameters_true is not "
                                        r"supported: its ranks re-run the whole command, each a second AL loop; use "
                                        r"trainer.strategy=ddp"):
        validate(make_cfg("scheme=ft_th", "trainer.accelerator=cpu", "trainer.devices=2",
                          "trainer.strategy=ddp_find_unused_parameters_true"))


@pytest.mark.parametrize("override, message", [
    ("trainer.strategy=fsdp", r"^config key trainer.strategy='fsdp' is invalid: it needs GPUs"),
    ("trainer.devices=-1", r"^config key trainer.devices=-1 is invalid on CPUs"),
    ("trainer.devices=[0,1]", r"^config key trainer.devices=\[0, 1\] is invalid: this machine has CPUs as a count"),
])
def test_devices_and_strategies_a_cpu_machine_cannot_give_are_one_line(make_cfg, override, message):
    """On a machine without a GPU (this one: the test asks only when torch sees none)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU machine can give them")
    with pytest.raises(UserError, match=message):
        validate(make_cfg("scheme=ft_th", override))


@pytest.mark.parametrize("target, reason", [("alimb.acquisition.nope", "module 'alimb.acquisition' has no attribute 'nope'"),
                                            ("mypkg_that_is_not_installed.af", "No module named 'mypkg_that_is_not_installed'")])
def test_a_target_that_names_nothing_is_one_line_before_any_work(make_cfg, target, reason):
    """Ours or a user's: Hydra's instantiate would say it in two lines, after the pool was built."""
    with pytest.raises(UserError, match=rf"^config key acquisition.auxiliary._target_='{target}' is invalid: it names "
                                        rf"nothing importable \({reason}\)"):
        validate(make_cfg("acquisition=dmcs_rand", f"acquisition.auxiliary._target_={target}"))
