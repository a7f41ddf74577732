"""The config schema, checked in one place before any work: types and ranges of every key.

A node that builds one of alimb's `_target_`s is checked against the model its callable's signature declares
(alimb.options: every target of ours is covered, none can be forgotten); the nodes that build nothing (the top
level, dataset, al, features, trainer) have their models here. Unknown keys are refused; a `_target_` that is not
ours (a user's own class) is passed through unchecked. The first problem is reported in one line that names the
key, the value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alimb.data.imbalance import Preset
from alimb.errors import UserError
from alimb.options import Count, Node, Positive, PositiveNumber, model


# ---- the nodes that build nothing: their keys are declared here ----
class Dataset(Node):
    per_iteration: Positive
    paper_imbalance: Preset = None
    image_size: Optional[Annotated[int, Field(ge=8)]] = None
    class_balanced_lam: Optional[PositiveNumber] = None  # the authors' lam of Class-Balanced AL for this dataset
    loader: dict


class Trainer(Node):
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"]
    devices: Union[int, str, list]
    strategy: str
    precision: Literal["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "64", "16", "bf16"]
    enable_progress_bar: bool
    deterministic: bool

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        ok = (isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1)) or value == "auto" \
            or (isinstance(value, list) and value and all(isinstance(v, int) and v >= 0 for v in value))
        if not ok:
            raise ValueError("Input should be a positive number of devices, -1 (all), auto, or a list of device indices")
        return value


class Features(Node):
    normalize: Literal["none", "l2", "standard"]


class AL(Node):
    iterations: Positive
    per_iteration: Positive


class Figure(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    file: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]  # the stem of the .pdf / .png
    metric: str
    ylabel: str

    @field_validator("metric")
    @classmethod
    def _a_metric(cls, value: str) -> str:
        from alimb.records import SCALAR_FIELDS

        known = [*SCALAR_FIELDS, "classes_discovered"]
        if value not in known:
            raise ValueError(f"not a metric of the records; one of {', '.join(known)}")
        return value


class ReportLayout(BaseModel):
    """How alimb-report draws an experiment (its YAML's `report:`): figures, and whether lines follow the scheme."""

    model_config = ConfigDict(extra="forbid", strict=True)
    figures: list[Figure] = []
    lines: Optional[Literal["scheme"]] = None


class Top(Node):
    """The top level: the groups are checked by their own models."""

    seed: Count
    data_dir: str
    cache_dir: str
    overwrite: bool
    features: Features
    al: AL
    dataset: Dataset
    imbalance: dict
    acquisition: dict
    scheme: dict
    backbone: dict
    trainer: Trainer
    logger: dict
    report: Optional[ReportLayout] = None  # only experiments that declare their figures have one

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if not value or "/" in value:
            raise ValueError("Input should be a non-empty name without '/'")
        return value

    @field_validator("data_dir", "cache_dir")
    @classmethod
    def _folder(cls, value: str) -> str:
        path = Path(value).expanduser()
        for p in [path, *path.parents]:
            if p.exists() and not p.is_dir():
                raise ValueError(f"{p} is a file, not a directory")
            if p.exists():
                break
        return value


def _message(err: ValidationError, prefix: str, data: Any) -> str:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    node = data
    keys = []
    for part in loc:  # keep the part of the location that names keys (unions add their member's name)
        if isinstance(node, dict) and part in node:
            keys.append(part)
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            keys.append(f"[{part}]")
            node = node[int(part)]
        else:
            if first["type"] in ("extra_forbidden", "missing"):
                keys.append(part)
            break
    key = ".".join([prefix, *keys]).strip(".").replace(".[", "[")
    if first["type"] == "extra_forbidden":
        return f"unknown config key {key}; remove it (known keys are listed by `alimb --cfg job`)"
    if first["type"] == "missing":
        return f"config key {key} is required; set it, e.g. {key}=..."
    text = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    shown = "" if isinstance(value, (dict, list)) else f"={value!r}"  # a whole subtree is no one-line message
    return f"config key {key}{shown} is invalid: {text}"


def _model(target: str) -> type[Node] | None:
    """The model of one of alimb's targets, from its declaration (alimb.options); a target that names nothing is
    left to Hydra's instantiate, which names it."""
    try:
        return model(target)
    except (ImportError, AttributeError):
        return None


def _check(model: type[Node], data: Any, prefix: str) -> None:
    try:
        model.model_validate(data)
    except ValidationError as err:
        raise UserError(_message(err, prefix, data)) from None


def _walk(node: Any, prefix: str) -> None:
    """Check every node with a known `_target_`, nested ones included (a switch's schemes, an AF's parts)."""
    if isinstance(node, dict):
        model = _model(node["_target_"]) if isinstance(node.get("_target_"), str) else None
        if model is not None:
            _check(model, node, prefix)
        for key, value in node.items():
            _walk(value, f"{prefix}.{key}" if prefix else key)


def validate(cfg: DictConfig) -> None:
    """UserError naming the first key whose value is missing, of the wrong type or out of range."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(f"missing required value: {', '.join(missing)}; set it on the command line, e.g. {missing[0]}=...")
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise UserError(f"the config does not resolve: {str(err).splitlines()[0]}") from None
    _check(Top, data, "")
    _walk(data, "")
    # the library names (importing torchvision or timm costs a second or two) only of the backbones that will run:
    # the dataset's, where it loads images, and those a fine-tuning scheme trains
    for backbone in ([data["backbone"]] if _loads_images(data["dataset"]) else []) + list(_backbones(data["scheme"])):
        _check_backbone_names(backbone)
    _check_devices(data)
    if _uses(data["scheme"], "alimb.schemes.finetune.FineTuneScheme"):
        _check_trainer(data["trainer"])


def _loads_images(dataset: dict) -> bool:
    """Whether the dataset's loader returns images (which the backbone turns into features) rather than an
    ArrayDataset of features, by its return annotation; an unknown loader counts as images."""
    import typing

    from alimb.options import target_callable
    from alimb.data.dataset import ArrayDataset

    try:
        return typing.get_type_hints(target_callable(dataset["loader"]["_target_"])).get("return") is not ArrayDataset
    except Exception:  # noqa: BLE001 - a user's loader we cannot inspect: check the backbone as for images
        return True


def _backbones(node: Any):
    """The backbone nodes inside a config subtree."""
    if isinstance(node, dict):
        if node.get("_target_") in ("alimb.backbone.TorchvisionBackbone", "alimb.backbone.TimmBackbone"):
            yield node
        for value in node.values():
            yield from _backbones(value)


def _uses(node: Any, target: str) -> bool:
    """Whether a config subtree builds `target` anywhere."""
    if isinstance(node, dict):
        return node.get("_target_") == target or any(_uses(v, target) for v in node.values())
    return False


def _check_trainer(trainer: dict) -> None:
    """An accelerator this machine has and a strategy Lightning knows, before a model is built."""
    import torch
    from lightning.pytorch.strategies import StrategyRegistry

    accelerator, strategy = trainer["accelerator"], trainer["strategy"]
    available = {"gpu": torch.cuda.is_available(), "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available(), "tpu": False}
    if not available.get(accelerator, True):
        raise UserError(f"config key trainer.accelerator={accelerator!r} is invalid: no such device here; use auto or cpu")
    devices = trainer["devices"]
    several = (isinstance(devices, int) and devices != 1) or (isinstance(devices, list) and len(devices) > 1)
    if several or strategy.startswith(("ddp", "fsdp", "deepspeed")):
        raise UserError(
            f"trainer.devices={devices} trainer.strategy={strategy} is not supported yet: Lightning's launcher runs "
            "the whole command again per rank, and alimb's loop is not rank-aware; use trainer.devices=1 "
            "trainer.strategy=auto")
    known = ["auto", *sorted(StrategyRegistry.available_strategies())]
    if strategy not in known:
        raise UserError(f"config key trainer.strategy={strategy!r} is invalid: Lightning knows {', '.join(known[:8])}, ...")


def _check_backbone_names(backbone: dict) -> None:
    """A torchvision or timm model and weights name known to the installed library (checked offline)."""
    if backbone.get("_target_") == "alimb.backbone.TimmBackbone":
        _check_timm_names(backbone)
    if backbone.get("_target_") != "alimb.backbone.TorchvisionBackbone":
        return
    import torchvision

    arch, weights = backbone["arch"], backbone["weights"]
    if arch not in torchvision.models.list_models():
        raise UserError(f"config key backbone.arch={arch!r} is invalid: not a torchvision model (e.g. resnet18, resnet50)")
    if weights is not None:
        known = list(torchvision.models.get_model_weights(arch).__members__)
        if weights not in known:
            raise UserError(f"config key backbone.weights={weights!r} is invalid: {arch} has {', '.join(known)} (or null)")


def _check_timm_names(backbone: dict) -> None:
    import timm

    model, weights = backbone["model"], backbone["weights"]
    if model not in timm.list_models():
        raise UserError(f"config key backbone.model={model!r} is invalid: not a timm model (e.g. vit_small_patch14_dinov2)")
    if weights is not None and f"{model}.{weights}" not in timm.list_pretrained(model):
        known = [name.split(".", 1)[1] for name in timm.list_pretrained(model) if "." in name]
        raise UserError(f"config key backbone.weights={weights!r} is invalid: timm has {model} with "
                        f"{', '.join(known) or 'no pretrained weights'} (or null)")


def _check_devices(node: Any, prefix: str = "") -> None:
    """A `device: cuda...` where torch sees no GPU is refused before any work."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_devices(value, f"{prefix}.{key}" if prefix else key)
    elif prefix.endswith("device") and isinstance(node, str) and node.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"config key {prefix}={node!r} is invalid: torch sees no CUDA GPU here; use auto or cpu")
