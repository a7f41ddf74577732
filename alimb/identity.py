"""What a run is, said once: a composed config split into its identity (what it computes) and its presentation (how it
is named, logged and shown, and where its inputs are found), the directory that names it, and the comparison that
decides whether a run directory holds the same run.

An option is presentation when its declaration says so (`alimb.options.PRESENTATION`: the experiment's `name`,
`data_dir`, `cache_dir`, `overwrite`, the `logger`, a loader's folders and files, progress bars...). Everything else
is identity. Moving the data or the feature cache therefore resumes a run; whether the data's *content* is the same
is the pool's fingerprint's to say (`alimb.state`). Hydra's directory settings (the `alimb.variant` resolver), the
run directory's comparison, W&B's names and groups and the report's labels all ask this module; nothing parses a
directory name.

A run directory is `<name>/<dataset>/<imbalance>/<acquisition>/<scheme>/[<variant>/]seed<seed>`: the four axes are
the names of the groups' options, and every other override that changes what a run computes adds the variant level
(sorted; a hash ends names too long for a directory), so the jobs of `-m al.per_iteration=10,20` never share one.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from alimb.declarations import Node, declared_by, declared_by_model
from alimb.options import Presentation, markers

AXES = ("dataset", "imbalance", "acquisition", "scheme")  # the directory's levels between the name and the seed
GROUPS_NAMED = {*AXES, "seed", "name", "experiment"}  # overrides the path already names
READABLE = 80  # longer variant names end in a hash
SAFE = re.compile(r"[^A-Za-z0-9._=,+-]")
REFERENCE = re.compile(r"\$\{\.([A-Za-z_]\w*)\}")  # an axis name's reference to one of its own options


def _top():
    from alimb.schema import Top  # the top level's declarations

    return Top


def _options_at(node: Any, model: Any) -> dict:
    """The declarations of a node: its target's options, else those of the model that types it."""
    target = node.get("_target_") if isinstance(node, (dict, DictConfig)) else None
    return declared_by(target) or (declared_by_model(model) if model is not None else {})


def _sub_model(option: Any) -> Any:
    annotation = getattr(option, "annotation", None)
    return annotation if inspect.isclass(annotation) and issubclass(annotation, Node) else None


def is_presentation(config: Any, key: str) -> bool:
    """Whether the dotted `key` of a config (composed or stored) is presentation, or lies inside one."""
    node, model = config, _top()
    path = key.split(".")
    for depth, part in enumerate(path):
        option = _options_at(node, model).get(part)
        if option is not None and markers(option.annotation, Presentation):
            return True
        if depth == len(path) - 1 or not isinstance(node, (dict, DictConfig)) or part not in node:
            return False
        node, model = node[part], _sub_model(option)
    return False


def _strip(node: Any, model: Any) -> Any:
    """The node less its presentation options (recursively)."""
    if not isinstance(node, dict):
        return node
    options = _options_at(node, model)
    out = {}
    for key, value in node.items():
        option = options.get(key)
        if option is not None and markers(option.annotation, Presentation):
            continue
        out[key] = _strip(value, _sub_model(option)) if isinstance(value, dict) else value
    return out


def identity(config: dict) -> dict:
    """What a run computes: its config (resolved, or as a run directory stored it) less its presentation, with every
    declared option in full (alimb.schema.complete): a run stored before an option was declared, or by a version
    whose YAML left it out, is the same run as one that states its default."""
    if not isinstance(config, dict):
        return config
    from alimb.schema import complete

    full = OmegaConf.create(copy.deepcopy(config))
    complete(full)
    return _strip(OmegaConf.to_container(full), _top())


def resolved(cfg: DictConfig) -> dict:
    """The composed config as a run directory stores it (resolved; presentation included, for the record)."""
    return OmegaConf.to_container(cfg, resolve=True)


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys where two identities differ."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [prefix.rstrip(".") or "all"] if a != b else []
    keys = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            keys += differences(x, y, f"{prefix}{key}.")
        elif x != y:
            keys.append(f"{prefix}{key}")
    return keys


def same_run(stored: dict, current: dict) -> list[str]:
    """[] when a stored config and the current one are the same run, else the keys where they differ."""
    return differences(identity(stored), identity(current))


# ---- names ----
def _override_key(override: str) -> str:
    """`a.b` of `+a.b=1`, `~a.b`, `acquisition@acquisition.within=x` (a part chosen in the defaults list)."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[1] if "@" in key else key


FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)")  # a float as typed: .5, 5., 1e-3


def _canonical(override: str) -> str:
    """An override as the directory names it: `+`/`++` dropped (they set the key as `=` does; `~` deletes it), a
    float written one way (`.5` and `0.5` are one run)."""
    key, sep, value = override.partition("=")
    prefix = "~" if key.startswith("~") else ""
    if FLOAT.fullmatch(value.strip()):
        value = repr(float(value))
    return f"{prefix}{_override_key(override)}{sep}{value}"


def _named_by_axes(root: Any) -> set[str]:
    """The options an axis's name refers to (`imbalance.name: lt${.rho}` names `imbalance.rho`)."""
    named = set()
    for axis in AXES:
        node = root.get(axis) if isinstance(root, (dict, DictConfig)) else None
        if isinstance(node, DictConfig) and "name" in node:
            text = node._get_node("name")._value()
        else:
            text = node.get("name") if isinstance(node, dict) else None
        if isinstance(text, str):
            named |= {f"{axis}.{ref}" for ref in REFERENCE.findall(text)}
    return named


def variant(task_overrides: Any, root: Any = None) -> str:
    """'' or 'k1=v1,k2=v2/' for the overrides that change what a run computes and that the path does not already name
    (sorted); `root` is the composed config, whose declarations say what is presentation."""
    named = _named_by_axes(root) if root is not None else set()
    kept = []
    for override in task_overrides or []:
        key = _override_key(str(override))
        if key in GROUPS_NAMED or key in named or key.split(".")[0] == "hydra":
            continue
        if is_presentation({} if root is None else root, key):  # without the config: what the top level declares
            continue
        kept.append(_canonical(str(override)))
    if not kept:
        return ""
    text = ",".join(sorted(kept))
    name = SAFE.sub("_", text)
    if name != text or len(name) > READABLE:  # lossy or too long: keep it readable, and distinct by a hash
        name = f"{name[:READABLE - 9]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return name + "/"


def axes(config: dict) -> list[str]:
    """[name, dataset, imbalance, acquisition, scheme] of a config (the names of the axes' options)."""
    return [str(config["name"]), *(str(config[axis]["name"]) for axis in AXES)]


def labels(config: dict, variant_level: str = "") -> dict:
    """How W&B shows a run: its name (what ran, the variant, the seed), its group (experiment/dataset/imbalance, so W&B's
    grouping shows mean ± std per AF), its job type and tags."""
    name, dataset, imbalance, acquisition, scheme = axes(config)
    what = f"{acquisition}/{scheme}"
    return {"name": f"{what}/{variant_level}seed{config['seed']}", "group": f"{name}/{dataset}/{imbalance}",
            "job_type": what, "tags": [acquisition, scheme]}


def titles(config: dict) -> dict:
    """How figures and tables show a run, from its config and the declarations: whether its AF is the paper's method
    (declared on the function: `paper_method`), the dataset's title (its YAML's `title`) and the imbalance's (the
    profile's own `title(options)`)."""
    from alimb.declarations import target_callable

    def declared_attr(node: Any, attribute: str) -> Any:
        target = node.get("_target_") if isinstance(node, dict) else None
        try:
            return getattr(target_callable(target), attribute, None) if isinstance(target, str) else None
        except (ImportError, AttributeError, ValueError):
            return None

    imbalance = config.get("imbalance") or {}
    describe = declared_attr(imbalance, "title")
    dataset = config.get("dataset") or {}
    return {"paper_method": bool(declared_attr(config.get("acquisition"), "paper_method")),
            "dataset_title": str(dataset.get("title") or dataset.get("name", "")),
            "imbalance_title": describe(imbalance) if callable(describe) else str(imbalance.get("name", ""))}
