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
from alimb.declarations import Node, model, own_fields, parts, target_callable
from alimb.errors import UserError
from alimb.options import PRESENTATION, Count, Doc, ImageSize, Positive, PositiveNumber
from alimb.schemes.trainer import Trainer


# ---- the nodes that build nothing: their keys are declared here, once (the YAML files choose) ----
class Dataset(Node):
    """A dataset option (conf/dataset/*.yaml): its loader and what the run needs to know of it."""

    title: Annotated[Optional[str], PRESENTATION, Doc("how figures and tables name the dataset; null: its name")] = None
    per_iteration: Annotated[Positive, Doc("al.per_iteration's default: a size the dataset's pool can afford")]
    paper_imbalance: Annotated[Preset, Doc("the dataset's row of the paper's Table I {target_ir, total}, natural "
                                           "(its own imbalance), or null: imbalance=paper is refused")] = None
    image_size: ImageSize = None
    class_balanced_lam: Annotated[Optional[PositiveNumber], Field(exclude=True), Doc(  # exclude: only where given
        "Class-Balanced AL's lam in its authors' code for this dataset (absent: they give none)")] = None
    loader: Annotated[dict, Doc("builds the dataset (a `_target_` with its options)")]


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
        from alimb.records import DERIVED, SCALAR_FIELDS

        known = [*SCALAR_FIELDS, *DERIVED]
        if value not in known:
            raise ValueError(f"not a metric of the records; one of {', '.join(known)}")
        return value


class ReportLayout(BaseModel):
    """How alimb-report draws an experiment (its YAML's `report:`): figures, and whether lines follow the scheme."""

    model_config = ConfigDict(extra="forbid", strict=True)
    figures: list[Figure] = []
    lines: Optional[Literal["scheme"]] = None


def _plain_name(value: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError("Input should be a non-empty name without '/' (and not . or ..)")
    if len(value.encode()) > 100:  # a directory's name: file systems stop at 255 bytes
        raise ValueError(f"Input should be a name of at most 100 bytes, not {len(value.encode())}")
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

    name: Annotated[str, PRESENTATION, AfterValidator(_plain_name), Doc(
        "experiment name: the first level of outputs/, and the W&B group")] = "default"
    seed: Annotated[Count, Doc("AL seed: iteration 0's random set, random AFs, tie-breaks (the pool itself is fixed "
                               "by imbalance.seed)")] = 0
    data_dir: Annotated[str, PRESENTATION, AfterValidator(_folder), Doc("where datasets are found or "
                                                                        "downloaded")] = "data"
    cache_dir: Annotated[str, PRESENTATION, AfterValidator(_folder), Doc("extracted features, shared by every run "
                                                                         "and job")] = ".cache/alimb"
    overwrite: Annotated[bool, PRESENTATION, Doc(
        "true: run again in a run directory that holds a run (completed or not, this config or another); the old "
        "one is replaced once the new one starts its first iteration")] = False
    features: Features
    al: AL
    dataset: Dataset
    imbalance: Annotated[dict, Doc("imbalance=NAME: the class-size profile the pool is drawn with (conf/imbalance)")]
    acquisition: Annotated[dict, Doc("acquisition=NAME: the acquisition function (conf/acquisition)")]
    scheme: Annotated[dict, Doc("scheme=NAME: the training scheme (conf/scheme)")]
    backbone: Annotated[dict, Doc("backbone=NAME: M_g, for image datasets (conf/backbone)")]
    trainer: Trainer
    logger: Annotated[dict, PRESENTATION, Doc("logger=NAME: none or wandb (conf/logger)")]
    oracle: Annotated[dict, Doc("oracle=NAME: who answers the labels: simulated (the dataset's), human (files), "
                                "label_studio (conf/oracle)")]
    report: Annotated[Optional[ReportLayout], PRESENTATION, Field(exclude=True), Doc(  # exclude: `complete` leaves it out
        "how alimb-report draws the experiment (only experiments that declare their figures)")] = None


# the models of the files that build nothing, by the file's group (or name, for the primary config): alimb's config
# source fills those files from them as it fills targets from their signatures (`complete`)
FILE_MODELS: dict[str, type[Node]] = {"config": Top, "dataset": Dataset, "trainer": Trainer}


def complete(node: Any, model: type[Node] | None = Top) -> None:
    """Fill an OmegaConf node with what `model` declares and it does not set (the defaults), the sub-nodes a model
    types as a model too, then every target inside with its declared options (alimb.options)."""
    from omegaconf import DictConfig

    from alimb.declarations import fill

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


def _is_member_name(part: str) -> bool:
    """A location part pydantic adds for a union's member (`PaperImbalance`, `literal['natural']`), not a key."""
    return part[:1].isupper() or part.startswith(("literal[", "function-", "nullable[", "union["))


def _message(err: ValidationError, prefix: str, data: Any, parts: dict | None = None) -> str:
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
        elif _is_member_name(part):
            continue
        else:
            if first["type"] in ("extra_forbidden", "missing"):
                keys.append(part)
            break
    key = ".".join([prefix, *keys]).strip(".").replace(".[", "[")
    if first["type"] == "extra_forbidden":
        if key in ("experiment", "hydra"):  # an experiment file without its header lands under `experiment`
            return (f"unknown config key {key}: an experiment file's first line must be `# @package _global_` (its keys "
                    "then set the run's own), as in conf/experiment/digits_afs.yaml")
        return f"unknown config key {key}; remove it (known keys: `alimb --cfg job`; with their docs: `alimb-options`)"
    if first["type"] == "missing":
        part = (parts or {}).get(keys[0] if keys else "")
        if part is not None and part[1] == "many":  # a dict of parts (the bandit's arms, the switch's schemes)
            return (f"config key {key} needs at least one {part[0].group}; add one with "
                    f"+{part[0].group}@{key}.NAME=NAME")
        return f"config key {key} is required; set it, e.g. {key}=..."
    text = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    shown = "" if isinstance(value, (dict, list)) else f"={value!r}"  # a whole subtree is no one-line message
    return f"config key {key}{shown} is invalid: {text}"


def _model(target: str, key: str) -> type[Node] | None:
    """The model of one of alimb's targets, from its declaration (alimb.options); None for a user's own (built as
    Hydra builds it). A target that names nothing is refused here, in one line, whoever's it is."""
    try:
        target_callable(target)
    except (ImportError, AttributeError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"config key {key}._target_={target!r} is invalid: it names nothing importable ({reason}); "
                        "name a function or class as package.module.name") from None
    return model(target)


def _check(model: type[Node], data: Any, prefix: str, parts: dict | None = None) -> None:
    try:
        model.model_validate(data)
    except ValidationError as err:
        raise UserError(_message(err, prefix, data, parts)) from None


BUILT = ("dataset.loader", "imbalance", "acquisition", "scheme", "backbone", "logger", "oracle")  # each builds an object


def _require_targets(data: dict) -> None:
    """Every node that is built, the parts inside them included, names what it builds (a user's YAML without
    `_target_` would fail only when first called, after a run it replaces is gone)."""
    def need(node: Any, key: str) -> None:
        if not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
            raise UserError(f"{key} names nothing to build (no _target_); give its YAML `_target_: package.module.name`"
                            ", as alimb's own in conf/ do")
        try:
            declared = parts(target_callable(node["_target_"])) if node["_target_"].startswith("alimb.") else {}
        except (ImportError, AttributeError, ValueError):
            return  # the walk names a target that cannot be imported
        for name, (_, kind) in declared.items():
            value = node.get(name)
            if value is None:
                continue
            for sub, inner in ([(name, value)] if kind == "one" else
                               [(f"{name}.{k}", v) for k, v in value.items()] if isinstance(value, dict) else []):
                need(inner, f"{key}.{sub}")

    for key in BUILT:
        node = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            need(node, key)


def _walk(node: Any, prefix: str) -> None:
    """Check every node with a known `_target_`, nested ones included (a switch's schemes, an AF's parts)."""
    if isinstance(node, dict):
        model = _model(node["_target_"], prefix) if isinstance(node.get("_target_"), str) else None
        if model is not None:
            _check(model, node, prefix, parts(target_callable(node["_target_"])))
        for key, value in node.items():
            _walk(value, f"{prefix}.{key}" if prefix else key)


def validate(cfg: DictConfig, complete: bool = True) -> None:
    """UserError naming the first key whose value is missing (unless `complete` is false: a listing of the options
    shows what is left to set), of the wrong type or out of range, or that this machine cannot run."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing and complete:
        raise UserError(f"missing required value: {', '.join(missing)}; set it on the command line, e.g. {missing[0]}=...")
    try:
        data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as err:
        raise UserError(f"the config does not resolve: {str(err).splitlines()[0]}") from None
    if missing:
        return  # the types of a config with holes: each value as far as it is set (its own model cannot tell)
    _check(Top, data, "")
    _require_targets(data)
    _walk(data, "")
    # the checks a class declares on itself (`check(options)`: library names, weights files, devices) of the nodes
    # that will run: the backbone only where the dataset loads images (importing torchvision or timm costs a second
    # or two), and every node the scheme and the AF build
    running = {k: v for k, v in data.items() if k != "backbone" or _loads_images(data["dataset"])}
    _declared_checks(running, "")
    _check_devices(data)


def _declared_checks(node: Any, prefix: str) -> None:
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str) and target.startswith("alimb."):
            check = getattr(target_callable(target), "check", None)
            if callable(check):
                check(node)
        for key, value in node.items():
            _declared_checks(value, f"{prefix}.{key}" if prefix else key)


def _loads_images(dataset: dict) -> bool:
    """Whether the dataset's loader returns images (which the backbone turns into features) rather than an
    ArrayDataset of features, by its return annotation; an unknown loader counts as images."""
    import typing

    from alimb.data.dataset import ArrayDataset

    try:
        return typing.get_type_hints(target_callable(dataset["loader"]["_target_"])).get("return") is not ArrayDataset
    except Exception:  # noqa: BLE001 - a user's loader we cannot inspect: check the backbone as for images
        return True


def _check_devices(node: Any, prefix: str = "") -> None:
    """A `device: cuda...` where torch sees no GPU, or `mps` where it sees no Apple GPU, is refused before any work."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_devices(value, f"{prefix}.{key}" if prefix else key)
    elif prefix.endswith("device") and isinstance(node, str) and node.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"config key {prefix}={node!r} is invalid: torch sees no CUDA GPU here; use auto or cpu")
    elif prefix.endswith("device") and node == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise UserError(f"config key {prefix}='mps' is invalid: torch sees no Apple GPU (MPS) here; use auto or cpu")
