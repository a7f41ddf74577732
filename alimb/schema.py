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
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from alimb.data.imbalance import Preset
from alimb.errors import UserError
from alimb.options import Count, Doc, Node, Positive, PositiveNumber, model, own_fields


def _devices(value: Any) -> Any:
    ok = (isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1)) or value == "auto" \
        or (isinstance(value, list) and value and all(isinstance(v, int) and v >= 0 for v in value))
    if not ok:
        raise ValueError("Input should be a positive number of devices, -1 (all), auto, or a list of device indices")
    return value


# ---- the nodes that build nothing: their keys are declared here, once (the YAML files choose) ----
class Dataset(Node):
    """A dataset option (conf/dataset/*.yaml): its loader and what the run needs to know of it."""

    per_iteration: Annotated[Positive, Doc("al.per_iteration's default: a size the dataset's pool can afford")]
    paper_imbalance: Annotated[Preset, Doc("the dataset's row of the paper's Table I {target_ir, total}, natural "
                                           "(its own imbalance), or null: imbalance=paper is refused")] = None
    image_size: Annotated[Optional[Annotated[int, Field(ge=8)]], Doc(
        "the fine-tuning input size; null: the backbone's resolution")] = None
    class_balanced_lam: Annotated[Optional[PositiveNumber], Field(exclude=True), Doc(  # exclude: only where given
        "Class-Balanced AL's lam in its authors' code for this dataset (absent: they give none)")] = None
    loader: Annotated[dict, Doc("builds the dataset (a `_target_` with its options)")]


class Trainer(Node):
    """Lightning Trainer settings for the fine-tuning schemes (conf/trainer/default.yaml)."""

    accelerator: Annotated[Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"], Doc("auto: gpu when present")] = "auto"
    devices: Annotated[Union[int, str, list], BeforeValidator(_devices), Doc(
        "devices per run: several train data-parallel inside each fit (ddp_spawn on GPUs, ddp_fork on "
        "CPUs; the AL loop stays one process)")] = 1
    strategy: Annotated[str, Doc("Lightning's strategy; auto")] = "auto"
    precision: Annotated[Literal["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "64",
                                 "16", "bf16"], Doc("bf16-mixed on GPUs that support it (H100, A100)")] = "32-true"
    enable_progress_bar: Annotated[bool, Doc("Lightning's progress bar while training")] = True
    deterministic: Annotated[bool, Doc("deterministic CUDA kernels (slower); CPU runs are deterministic "
                                       "anyway")] = False


class Features(Node):
    normalize: Annotated[Literal["none", "l2", "standard"], Doc(
        "how F_g is scaled for the SVM schemes and the AFs in F_g (coreset, DMCS, cds-bal): none, l2, or standard "
        "(per-dimension mean/std of the pool). The paper does not say; its authors' group L2-normalises deep "
        "features before linear SVMs; on raw features the SVM loses 1-3 points and coreset picks majority-class "
        "outliers. Fine tuning is unaffected")] = "l2"


class AL(Node):
    iterations: Annotated[Positive, Doc("AL iterations, the random iteration 0 included (paper: 16)")] = 16
    per_iteration: Annotated[Positive, Doc("labels bought per iteration (paper: 500)")]


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


def _plain_name(value: str) -> str:
    if not value or "/" in value:
        raise ValueError("Input should be a non-empty name without '/'")
    return value


def _folder(value: str) -> str:
    path = Path(value).expanduser()
    for p in [path, *path.parents]:
        if p.exists() and not p.is_dir():
            raise ValueError(f"{p} is a file, not a directory")
        if p.exists():
            break
    return value


class Top(Node):
    """The top level (conf/config.yaml); each group is checked by its own model."""

    name: Annotated[str, AfterValidator(_plain_name), Doc(
        "experiment name: the first level of outputs/, and the W&B group")] = "default"
    seed: Annotated[Count, Doc("AL seed: iteration 0's random set, random AFs, tie-breaks (the pool itself is fixed "
                               "by imbalance.seed)")] = 0
    data_dir: Annotated[str, AfterValidator(_folder), Doc("where datasets are found or downloaded")] = "data"
    cache_dir: Annotated[str, AfterValidator(_folder), Doc("extracted features, shared by every run and "
                                                           "job")] = ".cache/alimb"
    overwrite: Annotated[bool, Doc("true: replace a run directory that holds a different config (else "
                                   "refused)")] = False
    features: Features
    al: AL
    dataset: Dataset
    imbalance: Annotated[dict, Doc("imbalance=NAME: the class-size profile the pool is drawn with (conf/imbalance)")]
    acquisition: Annotated[dict, Doc("acquisition=NAME: the acquisition function (conf/acquisition)")]
    scheme: Annotated[dict, Doc("scheme=NAME: the training scheme (conf/scheme)")]
    backbone: Annotated[dict, Doc("backbone=NAME: M_g, for image datasets (conf/backbone)")]
    trainer: Trainer
    logger: Annotated[dict, Doc("logger=NAME: none or wandb (conf/logger)")]
    report: Annotated[Optional[ReportLayout], Field(exclude=True), Doc(  # exclude: `complete` leaves it out
        "how alimb-report draws the experiment (only experiments that declare their figures)")] = None


# the models of the files that build nothing, by the file's group (or name, for the primary config): alimb's config
# source fills those files from them as it fills targets from their signatures (`complete`)
FILE_MODELS: dict[str, type[Node]] = {"config": Top, "dataset": Dataset, "trainer": Trainer}


def complete(node: Any, model: type[Node] | None = Top) -> None:
    """Fill an OmegaConf node with what `model` declares and it does not set (the defaults), the sub-nodes a model
    types as a model too, then every target inside with its declared options (alimb.options)."""
    from omegaconf import DictConfig

    from alimb.options import fill

    if model is not None and isinstance(node, DictConfig):
        for name, field in own_fields(model).items():
            sub = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, Node) else None
            if name not in node and not field.exclude:
                if sub is not None and not any(f.is_required() for f in own_fields(sub).values()):
                    node[name] = {}  # a node whose every key has a default (features, trainer)
                elif sub is None and not field.is_required():
                    node[name] = field.default
                # else: a group's slot (dataset, scheme, ...): its option's file brings it
            if sub is not None and isinstance(node.get(name), DictConfig):
                complete(node._get_node(name), sub)
        declared_order = [k for k in ["name", *own_fields(model)] if k in node]
        for key in declared_order + [k for k in list(node.keys()) if k not in declared_order]:  # as declared, then the rest
            value = node._get_node(key)
            del node[key]
            node[key] = value
    fill(node)


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
        return f"unknown config key {key}; remove it (known keys: `alimb --cfg job`; with their docs: `python -m alimb.options`)"
    if first["type"] == "missing":
        return f"config key {key} is required; set it, e.g. {key}=..."
    text = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    shown = "" if isinstance(value, (dict, list)) else f"={value!r}"  # a whole subtree is no one-line message
    return f"config key {key}{shown} is invalid: {text}"


def _model(target: str, key: str) -> type[Node] | None:
    """The model of one of alimb's targets, from its declaration (alimb.options); None for a user's own (built as
    Hydra builds it). A target that names nothing is refused here, in one line, whoever's it is."""
    from alimb.options import target_callable

    try:
        target_callable(target)
    except (ImportError, AttributeError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"config key {key}._target_={target!r} is invalid: it names nothing importable ({reason}); "
                        "name a function or class as package.module.name") from None
    return model(target)


def _check(model: type[Node], data: Any, prefix: str) -> None:
    try:
        model.model_validate(data)
    except ValidationError as err:
        raise UserError(_message(err, prefix, data)) from None


def _walk(node: Any, prefix: str) -> None:
    """Check every node with a known `_target_`, nested ones included (a switch's schemes, an AF's parts)."""
    if isinstance(node, dict):
        model = _model(node["_target_"], prefix) if isinstance(node.get("_target_"), str) else None
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
    from alimb.schemes.finetune import IN_FIT_STRATEGIES, lightning_kwargs, several_devices

    if several_devices(trainer["devices"]) and lightning_kwargs(trainer)["strategy"] not in IN_FIT_STRATEGIES:
        raise UserError(
            f"trainer.devices={trainer['devices']} trainer.strategy={strategy} is not supported: its ranks re-run the "
            f"whole command, each a second AL loop; use trainer.strategy=ddp (run as ddp_spawn on GPUs, ddp_fork on CPUs), ddp_spawn or ddp_fork")
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
