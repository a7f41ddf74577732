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
    if option == "image_list":
        overrides += [f"dataset.loader.root={tmp_path}", f"dataset.loader.train_list={tmp_path / 'a.txt'}",
                      f"dataset.loader.test_list={tmp_path / 'b.txt'}"]
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
    assert ft.trainer.devices == 4 and ft.trainer.strategy == "ddp"
    assert ft.backbone.arch == "resnet18" and ft.image_size == 32  # digits' fine-tuning size
    assert not build(make_cfg("scheme=ft").scheme).thresholding
    assert build(make_cfg("scheme=cs_svm").scheme).class_weight == "balanced"


def sweep_jobs(*overrides):
    """The jobs a multirun of these overrides runs, as alimb's sweeper expands them."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.alimb_sweeper import AlimbSweeper

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    params = [f"{k}={v}" for k, v in sweeper.params.items()]
    parsed = OverridesParser.create().parse_overrides(params)
    batches = AlimbSweeper(max_batch_size=None, exclude=sweeper.exclude).split_arguments(parsed, None)
    return cfg, [dict(o.split("=", 1) for o in job) for batch in batches for job in batch]


@pytest.mark.parametrize("dataset", ["cifar100", "food101", "mit67"])
def test_paper_figure_sweeps_are_the_papers_protocol(dataset):
    cfg, fig1 = sweep_jobs("experiment=paper/fig1", f"dataset={dataset}")
    assert cfg.dataset.name == dataset and cfg.imbalance.name == "paper" and cfg.scheme.name == "switch"
    assert (cfg.al.iterations, cfg.al.per_iteration) == (16, 500) and cfg.backbone.name == "resnet18"
    assert len(fig1) == 30 and {j["seed"] for j in fig1} == {"0", "1", "2", "3", "4"}
    assert {j["acquisition"] for j in fig1} == {"random", "margin", "coreset", "cds_bal", "dmcs_rand", "dmcs_marg"}
    cfg, fig3 = sweep_jobs("experiment=paper/fig3", f"dataset={dataset}")
    assert cfg.scheme.name == "switch" and len(fig3) == 15
    assert {j["acquisition"] for j in fig3} == {"cmcs_rand", "umcs_rand", "dmcs_rand"}
    cfg, fig5 = sweep_jobs("experiment=paper/fig5", f"dataset={dataset}")
    pairs = {(j["scheme"], j["acquisition"]) for j in fig5}
    assert len(fig5) == 40 and pairs == {("svm", "random"), ("ft", "random")} | {
        (s, a) for s in ("cs_svm", "ft_th") for a in ("random", "margin", "dmcs_rand")}
    for jobs in (fig1, fig3, fig5):
        assert all(set(j.get("acquisition", "").split(",")) <= set(options("acquisition")) for j in jobs)


@pytest.mark.parametrize("experiment, dataset, per_iteration", [("lt/cifar10_lt", "cifar10", 100),
                                                                 ("lt/cifar100_lt", "cifar100", 250)])
def test_long_tail_sweeps_compose_to_their_stated_jobs(experiment, dataset, per_iteration):
    cfg, jobs = sweep_jobs(f"experiment={experiment}")
    assert cfg.dataset.name == dataset and cfg.imbalance.name == "lt100" and cfg.imbalance.rho == 100
    assert cfg.backbone.name == "dinov2_vits14" and cfg.scheme.name == "cs_svm"
    assert (cfg.al.iterations, cfg.al.per_iteration) == (10, per_iteration)
    afs = {"random", "margin", "coreset", "badge", "base", "galaxy", "direct", "cds_bal", "dmcs_rand"}
    assert len(jobs) == 45 and {j["acquisition"] for j in jobs} == afs and {j["seed"] for j in jobs} == set("01234")
    assert afs <= set(options("acquisition"))
