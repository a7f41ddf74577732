"""Every option of every config group composes, builds, and does its job."""

from pathlib import Path

import numpy as np
import pytest

from alimb.config import build
from alimb.run import CONFIG_DIR
from tests import image_archives

GROUPS = ["dataset", "imbalance", "acquisition", "scheme", "backbone", "logger", "oracle"]  # trainer: see below


def options(group):
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def _dataset_overrides(option: str, tmp_path: Path) -> list[str]:
    """Small data in the dataset's real format where the tests can write it; elsewhere an empty folder."""
    if option == "embeddings":
        rng = np.random.default_rng(0)
        path = tmp_path / "x.npz"
        np.savez(path, train_features=rng.normal(size=(12, 4)), train_labels=np.repeat([0, 1, 2], 4),
                 test_features=rng.normal(size=(6, 4)), test_labels=np.repeat([0, 1, 2], 2))
        return [f"dataset.loader.path={path}"]
    if option == "images":
        return [f"dataset.loader.root={image_archives.image_folder(tmp_path / 'imgs')}"]
    if option == "image_folder":
        return [f"dataset.loader.root={image_archives.image_folder(tmp_path / 'imgs')}", "dataset.loader.test_per_class=2"]
    if option == "image_list":
        root, train, test = image_archives.image_list(tmp_path / "list")
        return [f"dataset.loader.root={root}", f"dataset.loader.train_list={train}", f"dataset.loader.test_list={test}"]
    return [f"data_dir={tmp_path / 'empty'}"]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_builds_and_works(make_cfg, group, option, tmp_path, monkeypatch):
    """Each option built and used: a loader loads (or, for an archive the tests cannot hold, refuses the empty
    folder in one line naming what it expected), a profile counts, an AF selects, a scheme, a backbone and a
    logger keep their protocols."""
    from alimb.acquisition import Context
    from alimb.backbone import Backbone
    from alimb.data.dataset import ArrayDataset
    from alimb.data.images import ImageDataset
    from alimb.errors import UserError
    from alimb.schemes import Scheme

    overrides = [f"{group}={option}", *(_dataset_overrides(option, tmp_path) if group == "dataset" else [])]
    if group == "imbalance" and option == "paper":
        overrides.append("dataset=synthetic")
    if group == "imbalance" and option == "counts":
        overrides.append("imbalance.counts=[1,2,3]")
    cfg = make_cfg(*overrides)
    if group == "dataset" and "download" in cfg.dataset.loader:
        cfg = make_cfg(*overrides, "dataset.loader.download=false")  # the network is not the test's
    node = cfg[group]
    if group == "dataset":
        assert node.per_iteration > 0
        try:
            data = build(node.loader)
        except UserError as err:  # an archive or list the tests do not write: the loader says what it expected
            assert option not in ("digits", "synthetic", "embeddings", "image_folder", "image_list", "images")
            assert "not found" in str(err) and str(tmp_path / "empty") in str(err)
            return
        assert isinstance(data, (ArrayDataset, ImageDataset))
        train, test = data.labels()
        if option == "images":  # no labels: a person gives them (and no test set was named)
            assert (train == -1).all() and len(train) == 26 and len(test) == 0
            return
        assert len(train) and len(test) and data.n_classes == max(train.max(), test.max()) + 1
    elif group == "imbalance":
        available = {"counts": np.array([1, 2, 3]), "paper": np.full(100, 500)}.get(
            option, np.array([500, 400, 300, 200, 100] * 2))
        counts = build(node, drop=("name", "seed")).counts(available, np.random.default_rng(0))
        assert counts.shape == available.shape and (counts <= available).all() and (counts >= 0).all()
        if option == "paper":  # CIFAR-100's row of the paper's Table I: 17 168 images at ir 0.740
            assert abs(counts.sum() - 17168) <= 0.01 * 17168 and abs(counts.std() / counts.mean() - 0.740) <= 0.005
    elif group == "acquisition":
        rng = np.random.default_rng(0)
        y = np.arange(200) % 4
        features = rng.normal(size=(200, 3)) + y[:, None]
        head = (rng.normal(size=(3, 4)), np.zeros(4))
        labeled = np.zeros(200, dtype=bool)
        labeled[:40] = True
        from alimb.acquisition import Oracle

        ctx = Context(scores=features @ head[0], features=features, fg=features, head=head,
                      labels=np.where(labeled, y, -1), labeled_mask=labeled, n_classes=4, budget=7, rng=rng,
                      oracle=Oracle(y))
        picked = build(node)(ctx).indices
        assert len(picked) == 7 and len(set(picked.tolist())) == 7 and not labeled[picked].any()
    elif group == "scheme":
        assert isinstance(build(node), Scheme)
    elif group == "backbone":
        assert isinstance(build(node), Backbone)
    elif group == "oracle":
        from alimb.oracles.oracle import Oracles

        monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a-token")  # label_studio checks it is there before any work
        oracle = build(node)
        assert isinstance(oracle.person, bool) and oracle.class_names(["a", "b"]) == ["a", "b"]
        assert set(dir(Oracles)) & {"class_names", "truth"} <= set(dir(oracle))
    else:
        logger = build(node)
        assert all(callable(getattr(logger, m, None)) for m in ("start", "log", "finish"))


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
    afs = {"random", "margin", "coreset", "badge", "base", "galaxy", "direct", "cds_bal", "dmcs_rand", "dropquery",
           "alfamix", "pcb", "anchoral"}
    assert len(jobs) == 65 and {j["acquisition"] for j in jobs} == afs and {j["seed"] for j in jobs} == set("01234")
    assert afs <= set(options("acquisition"))
