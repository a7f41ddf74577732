"""The config schema, checked in one place before any work: types and ranges of every key.

pydantic models, one per config group option (keyed by its `_target_`), with unknown keys refused.
An option whose `_target_` is not ours (a user's own class) is passed through unchecked. The first
problem is reported in one line that names the key, the value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, ValidationInfo

from alimb.errors import UserError


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not a boolean")
    return value


Number = Annotated[float, BeforeValidator(_not_bool), Field(strict=False, allow_inf_nan=False)]
PositiveNumber = Annotated[Number, Field(gt=0)]
NonNegativeNumber = Annotated[Number, Field(ge=0)]
Fraction = Annotated[Number, Field(gt=0, lt=1)]
Count = Annotated[int, Field(ge=0)]  # strict: no bool, float or string
Positive = Annotated[int, Field(ge=1)]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")]
Order = Literal["random", "natural"]
OnBadImage = Literal["skip", "fail"]


class Node(BaseModel):
    """A config node: strict types, unknown keys refused; `name`, `_target_`, `_partial_` allowed."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    name: Optional[str] = None
    target: Optional[str] = Field(None, alias="_target_")
    partial: Optional[bool] = Field(None, alias="_partial_")


# ---- datasets (the loader node) ----
class Digits(Node):
    test_per_class: Positive
    split_seed: Count


class Synthetic(Node):
    n_classes: Annotated[int, Field(ge=2)]
    n_per_class: Positive
    test_per_class: Positive
    dim: Positive
    separation: NonNegativeNumber
    seed: Count


class Embeddings(Node):
    path: str


class Archive(Node):
    root: str
    download: bool


class ImageArchive(Archive):
    on_bad_image: OnBadImage = "skip"


class ImageFolder(Node):
    root: str
    test_root: Optional[str] = None
    test_per_class: Positive
    split_seed: Count
    on_bad_image: OnBadImage


class ImageList(Node):
    root: str
    train_list: str
    test_list: str
    on_bad_image: OnBadImage


class PaperImbalance(Node):
    target_ir: PositiveNumber
    total: Positive


class Dataset(Node):
    per_iteration: Positive
    paper_imbalance: Optional[Union[PaperImbalance, Literal["natural"]]] = None
    image_size: Optional[Annotated[int, Field(ge=8)]] = None
    class_balanced_lam: Optional[PositiveNumber] = None  # the authors' lam of Class-Balanced AL for this dataset
    loader: dict


# ---- imbalance ----
class Exponential(Node):
    target_ir: PositiveNumber
    total: Optional[Positive] = None
    order: Order
    min_count: Positive
    seed: Count


class Step(Node):
    minority_fraction: Fraction
    rho: Annotated[Number, Field(ge=1)]
    order: Order
    seed: Count


class LongTail(Node):
    rho: Annotated[Number, Field(ge=1)]
    order: Literal["index", "random", "natural"]
    seed: Count


class Counts(Node):
    counts: Optional[list[Count]] = None
    path: Optional[str] = None
    seed: Count


class Seeded(Node):
    seed: Count
    preset: Optional[Union[PaperImbalance, Literal["natural"]]] = None


# ---- acquisition ----
class Plain(Node):
    pass


class OnDevice(Node):
    device: Device = "auto"


class Coreset(OnDevice):
    lazy: bool = True


class CdsBal(OnDevice):
    reveal_within_batch: bool


class MinoritySampling(Node):
    within: dict
    auxiliary: dict


class Reveals(Node):
    reveal_within_batch: bool


class Direct(Reveals):
    parallel_annotators: Positive
    min_budget_per_class: Positive


class ClassBalanced(Node):
    lam: NonNegativeNumber
    node_limit: Positive
    time_limit: PositiveNumber


class Flqmi(Node):
    eta: NonNegativeNumber
    embedding: Literal["fg", "gradient"]


class TypiClust(Node):
    max_clusters: Positive
    min_cluster_size: Count
    k_nn: Positive


class ProbCover(Node):
    delta: Optional[PositiveNumber] = None
    purity: Fraction
    purity_sample: Positive


class MinorityBandit(Reveals):
    arms: Annotated[dict[str, dict], Field(min_length=1)]


# ---- schemes ----
class LinearSVM(Node):
    C: PositiveNumber
    class_weight: Optional[Literal["balanced"]]
    solver: Literal["auto", "newton", "lbfgs", "liblinear"]
    tol: PositiveNumber
    max_iter: Positive
    warm_start: bool
    device: Device


class FineTune(Node):
    backbone: dict
    thresholding: bool
    epochs: Positive
    lr: PositiveNumber
    momentum: NonNegativeNumber
    weight_decay: NonNegativeNumber
    batch_size: Annotated[int, Field(ge=2)]  # BatchNorm needs two samples
    plateau_patience: Count
    plateau_factor: Annotated[Number, Field(gt=0, le=1)]
    image_size: Optional[Annotated[int, Field(ge=8)]]
    augment: bool
    inference_batch_size: Positive
    trainer: dict
    optimizer: Literal["sgd", "adamw"]
    schedule: Literal["plateau", "cosine"]
    warmup_epochs: Count


class Switch(Node):
    schemes: Annotated[dict[str, dict], Field(min_length=2)]
    start: str
    sticky: bool
    holdout: Fraction
    folds: Positive

    @field_validator("start")
    @classmethod
    def _one_of_them(cls, value: str, info: ValidationInfo) -> str:
        schemes = info.data.get("schemes") or {}
        if value not in schemes:
            raise ValueError(f"not one of the switch's schemes ({', '.join(schemes)})")
        return value


# ---- backbone, trainer, logger ----
class Pretrained(Node):
    """What every pretrained backbone takes: its weights (a name or a file), resolution and how it runs."""

    weights: Optional[str]
    weights_path: Optional[str]
    resolution: Annotated[int, Field(ge=8)]
    batch_size: Positive
    num_workers: Count
    device: Device
    init_seed: Count

    @field_validator("weights_path")
    @classmethod
    def _exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(f"no such file: {Path(value).expanduser()} (the backbone's weights: a .pth state dict "
                             "for torchvision, e.g. model.safetensors for timm)")
        return value


class Backbone(Pretrained):
    arch: str  # torchvision's name


class TimmBackbone(Pretrained):
    model: str  # timm's name
    model_kwargs: dict


class Pixels(Node):
    resolution: Annotated[int, Field(ge=1)]
    batch_size: Positive
    num_workers: Count
    device: Device


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


class Wandb(Node):
    project: str
    entity: Optional[str] = None
    mode: Optional[Literal["online", "offline", "disabled"]] = None
    dir: Optional[str] = None
    timeout: PositiveNumber = 15


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


A = "alimb.acquisition."
MODELS: dict[str, type[Node]] = {
    "alimb.data.digits.load_digits": Digits,
    "alimb.data.synthetic.make_synthetic": Synthetic,
    "alimb.data.embeddings.load_embeddings": Embeddings,
    "alimb.data.cifar.load_cifar100": Archive,
    "alimb.data.cifar.load_cifar10": Archive,
    "alimb.data.food101.load_food101": ImageArchive,
    "alimb.data.mit67.load_mit67": ImageArchive,
    "alimb.data.images.image_folder": ImageFolder,
    "alimb.data.images.image_list": ImageList,
    "alimb.data.imbalance.Exponential": Exponential,
    "alimb.data.imbalance.Step": Step,
    "alimb.data.imbalance.Counts": Counts,
    "alimb.data.imbalance.LongTail": LongTail,
    "alimb.data.imbalance.NoImbalance": Seeded,
    "alimb.data.imbalance.paper_preset": Seeded,
    **{f"{A}uncertainty.{n}": Plain for n in ("random", "margin", "certain", "entropy", "least_confidence")},
    f"{A}kcenter.coreset": Coreset,
    f"{A}cds.cds_bal": CdsBal,
    f"{A}minority.minority_sampling": MinoritySampling,
    f"{A}gradients.badge": Plain,
    f"{A}boundary.base": Plain,
    f"{A}graphs.galaxy": Reveals,
    f"{A}thresholds.direct": Direct,
    f"{A}balanced_mip.class_balanced": ClassBalanced,
    f"{A}submodular.flqmi": Flqmi,
    f"{A}lowbudget.typiclust": TypiClust,
    f"{A}lowbudget.probcover": ProbCover,
    f"{A}bandit.minority_bandit": MinorityBandit,
    "alimb.schemes.svm.LinearSVMScheme": LinearSVM,
    "alimb.schemes.finetune.FineTuneScheme": FineTune,
    "alimb.schemes.switch.SwitchScheme": Switch,
    "alimb.backbone.TorchvisionBackbone": Backbone,
    "alimb.backbone.TimmBackbone": TimmBackbone,
    "alimb.backbone.Pixels": Pixels,
    "alimb.records.NullLogger": Node,
    "alimb.wandb_logger.WandbLogger": Wandb,
}


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


def _check(model: type[Node], data: Any, prefix: str) -> None:
    try:
        model.model_validate(data)
    except ValidationError as err:
        raise UserError(_message(err, prefix, data)) from None


def _walk(node: Any, prefix: str) -> None:
    """Check every node with a known `_target_`, nested ones included (a switch's schemes, an AF's parts)."""
    if isinstance(node, dict):
        model = MODELS.get(node.get("_target_")) if "_target_" in node else None
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

    from alimb.config import target_callable
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
