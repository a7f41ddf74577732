"""Every option of every config group composes and instantiates."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from alimb.config import build
from alimb.run import CONFIG_DIR

GROUPS = ["dataset", "imbalance", "acquisition", "scheme", "backbone", "logger"]  # trainer: see below


def options(group):
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_builds(make_cfg, group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if option == "embeddings":
        overrides.append(f"dataset.loader.path={tmp_path / 'x.npz'}")  # built lazily by the loader; path only
    if option == "image_folder":
        overrides.append(f"dataset.loader.root={tmp_path}")
    if group == "imbalance" and option == "paper":
        overrides.append("dataset=synthetic")
    if group == "imbalance" and option == "counts":
        overrides.append("imbalance.counts=[1,2,3]")
    cfg = make_cfg(*overrides)
    node = cfg[group]
    if group == "dataset":
        assert callable(instantiate(node.loader, _partial_=True))
        assert node.per_iteration > 0
    elif group == "imbalance":
        assert hasattr(build(node, drop=("name", "seed")), "counts")
    elif group == "acquisition":
        assert callable(build(node))
    else:
        assert build(node) is not None


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group}/ is empty"


def test_scheme_objects_match_their_config(make_cfg):
    ft = build(make_cfg("scheme=ft_th", "trainer.devices=4", "trainer.strategy=ddp").scheme)
    assert ft.thresholding and ft.epochs == 60 and ft.batch_size == 32 and ft.lr == 0.01
    assert ft.trainer_kwargs["devices"] == 4 and ft.trainer_kwargs["strategy"] == "ddp"
    assert ft.backbone.arch == "resnet18" and ft.image_size == 32  # digits' fine-tuning size
    assert not build(make_cfg("scheme=ft").scheme).thresholding
    assert build(make_cfg("scheme=cs_svm").scheme).class_weight == "balanced"


@pytest.mark.parametrize("dataset", ["cifar100", "food101", "mit67"])
def test_paper_experiments_are_the_papers_protocol(dataset):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment=paper_{dataset}"], return_hydra_config=True)
    assert cfg.dataset.name == dataset and cfg.imbalance.name == "paper" and cfg.scheme.name == "cs_svm"
    assert (cfg.al.iterations, cfg.al.per_iteration) == (16, 500)
    assert cfg.backbone.name == "resnet18" and cfg.name == f"paper_{dataset}"
    params = cfg.hydra.sweeper.params
    assert params.seed == "0,1,2,3,4"
    assert {"random", "margin", "coreset", "dmcs_rand", "dmcs_marg"} <= set(params.acquisition.split(","))
    assert set(params.acquisition.split(",")) <= set(options("acquisition"))
