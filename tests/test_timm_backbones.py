"""The timm backbones (DINOv2, CLIP, ResNet-50): offline, with random weights, a weights file or the hub's cache."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import alimb.backbone as backbones
from alimb.backbone import TimmBackbone
from alimb.config import build
from alimb.errors import UserError
from alimb.loop import run_experiment
from tests import image_archives

# the published embedding widths: ViT-S 384, ViT-B 768 (CLIP's image tower before its 512-d projection), ResNet-50 2048
WIDTH = {"dinov2_vits14": 384, "dinov2_vitb14": 768, "clip_vitb32_openai": 768, "clip_vitb32_laion": 768,
         "clip_vitb16_openai": 768, "clip_vitb16_laion": 768, "resnet50": 2048}
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # OpenAI's CLIP
IMAGENET_MEAN = (0.485, 0.456, 0.406)


@pytest.mark.parametrize("name", sorted(WIDTH))
def test_each_backbone_gives_its_models_embedding_with_random_weights(make_cfg, name):
    resolution = 28 if "14" in name else 32  # two patches of 14 or one of 32 a side: the smallest that run
    cfg = make_cfg(f"backbone={name}", "backbone.weights=null", f"backbone.resolution={resolution}", "backbone.device=cpu")
    backbone = build(cfg.backbone)
    model = backbone.build()
    images = torch.randint(0, 256, (2, 20, 24, 3), dtype=torch.uint8)
    with torch.no_grad():
        features = model(backbone.preprocess(images))
    assert tuple(features.shape) == (2, WIDTH[name]) and backbone.feature_dim == WIDTH[name]
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("name", sorted(WIDTH))
def test_each_backbone_normalises_as_its_weights_were_trained(make_cfg, name):
    backbone = build(make_cfg(f"backbone={name}", "backbone.device=cpu").backbone)  # no download: timm's config
    expected = (CLIP_MEAN, CLIP_STD) if name.startswith("clip") else (IMAGENET_MEAN, (0.229, 0.224, 0.225))
    np.testing.assert_allclose(backbone.mean, expected[0])
    np.testing.assert_allclose(backbone.std, expected[1])
    assert backbone.resolution == 224
    assert backbone.interpolation == ("bilinear" if name == "resnet50" else "bicubic")  # torchvision's / ViTs'


def small(**kwargs) -> TimmBackbone:
    return TimmBackbone("vit_small_patch14_dinov2", resolution=28, model_kwargs={"img_size": 28}, device="cpu",
                        num_workers=0, batch_size=8, **kwargs)


def features(backbone: TimmBackbone, model: torch.nn.Module | None = None) -> torch.Tensor:
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8))
    with torch.no_grad():
        return (model or backbone.build())(backbone.preprocess(images))


def test_a_weights_file_is_loaded_and_names_the_cache(tmp_path):
    donor = small(init_seed=1)
    model = donor.build()
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    loaded = small(weights="lvd142m", weights_path=str(tmp_path / "model.safetensors"))
    torch.testing.assert_close(features(loaded), features(donor, model), rtol=0, atol=0)
    assert not torch.equal(features(small(init_seed=0)), features(donor, model))
    assert loaded.cache_name.startswith("vit_small_patch14_dinov2-file") and loaded.cache_name.endswith("-28")
    assert small().cache_name == "vit_small_patch14_dinov2-random0-28"


def test_weights_in_the_hubs_cache_load_without_a_network(tmp_path, monkeypatch):
    """The hub's cache layout (models--ORG--NAME/refs/main, snapshots/COMMIT/FILE), as huggingface_hub writes it."""
    from huggingface_hub import constants

    donor = small(init_seed=2)
    model = donor.build()
    repo = tmp_path / "hub" / "models--timm--vit_small_patch14_dinov2.lvd142m"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(model.state_dict(), str(repo / "snapshots" / commit / "model.safetensors"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(backbones, "_hub_resolves", lambda: False)  # no network, whatever this machine has
    torch.testing.assert_close(features(small(weights="lvd142m")), features(donor, model), rtol=0, atol=0)


def test_no_network_and_no_file_is_one_line_naming_the_file_and_the_setting(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(backbones, "_hub_resolves", lambda: False)
    with pytest.raises(UserError) as err:
        small(weights="lvd142m").build()
    message = str(err.value)
    assert "\n" not in message and "vit_small_patch14_dinov2.lvd142m" in message
    assert "model.safetensors" in message and "backbone.weights_path=" in message


@pytest.mark.parametrize("override, says", [
    ("backbone.model=vit_nonexistent", "backbone.model='vit_nonexistent' is invalid"),
    ("backbone.weights=imagenet21k", "backbone.weights='imagenet21k' is invalid: timm has vit_small_patch14_dinov2 with"),
])
def test_unknown_timm_names_are_refused_before_any_work(make_cfg, override, says):
    from alimb.schema import validate

    with pytest.raises(UserError, match=says.replace("(", r"\(")):
        validate(make_cfg("dataset=cifar10", "backbone=dinov2_vits14", override))


def test_a_cs_svm_al_run_on_dinov2_features_of_an_image_folder(make_cfg, tmp_path):
    root = image_archives.image_folder(tmp_path / "imgs")
    records = run_experiment(make_cfg(
        "dataset=image_folder", f"dataset.loader.root={root}", "dataset.loader.test_per_class=3", "imbalance=none",
        "al.iterations=2", "al.per_iteration=4", "backbone=dinov2_vits14", "backbone.weights=null",
        "backbone.resolution=28", "backbone.num_workers=0", "backbone.device=cpu", f"cache_dir={tmp_path / 'cache'}",
    ), tmp_path / "run")
    assert len(records) == 2 and records[-1].n_labeled == 8
    [train] = [p for p in (tmp_path / "cache").rglob("train-*.npy")]
    assert "vit_small_patch14_dinov2-random0-28" in train.name and np.load(train).shape[1] == 384


def test_fine_tuning_trains_a_timm_backbone_with_its_own_normalisation(make_cfg, tmp_path):
    root = image_archives.image_folder(tmp_path / "imgs")
    cfg = make_cfg(
        "dataset=image_folder", f"dataset.loader.root={root}", "dataset.loader.test_per_class=3", "imbalance=none",
        "al.iterations=2", "al.per_iteration=6", "backbone=clip_vitb32_openai", "backbone.weights=null",
        "backbone.resolution=32", "backbone.num_workers=0", "backbone.device=cpu", "scheme=ft", "scheme.epochs=1",
        "scheme.augment=false", "trainer.accelerator=cpu", f"cache_dir={tmp_path / 'cache'}",
    )
    records = run_experiment(cfg, tmp_path / "run")
    assert [r.n_labeled for r in records] == [6, 12] and all(np.isfinite(r.train_loss) for r in records)
    scheme = build(cfg.scheme)
    module = scheme._new_module(3, seed=0)
    torch.testing.assert_close(module.mean.flatten(), torch.tensor(CLIP_MEAN))  # CLIP's, not ImageNet's
