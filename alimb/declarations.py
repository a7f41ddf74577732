"""What the declarations say: the options a callable declares (alimb.options), the pydantic model that checks them,
and the config node filled with them.

- `declared(fn)`: the options of a callable (function or class), in signature order;
- `model(target)`: the pydantic model `alimb.schema.validate` checks a node of one of alimb's `_target_`s against;
- `fill(node)`: every node of ours gets the declared options its YAML file does not set (alimb's config source does
  it as Hydra loads a file, so `alimb acquisition=coreset acquisition.lazy=false` works without `+`);
- `parts(fn)`: the options that take a node of another group (`Part`), e.g. the MCS family's `within`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from typing_extensions import Doc

from alimb.options import Input, Part, markers

MISSING = "???"


class Node(BaseModel):
    """A config node: strict types, unknown keys refused; `name`, `_target_`, `_partial_` allowed."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    name: typing.Optional[str] = None
    target: typing.Optional[str] = Field(None, alias="_target_")
    partial: typing.Optional[bool] = Field(None, alias="_partial_")


@dataclass(frozen=True)
class Option:
    name: str
    annotation: Any  # as declared (Annotated[...] with its Field and Doc)
    default: Any  # inspect.Parameter.empty: required
    doc: str

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


def target_callable(target: str) -> Any:
    """The callable a `_target_` string names (ImportError or AttributeError when it names nothing)."""
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _doc(annotation: Any) -> str:
    docs = markers(annotation, Doc)
    return docs[-1].documentation if docs else ""  # nested Annotated flattens: the parameter's own Doc comes last


def _is_input(annotation: Any) -> bool:
    base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation
    return inspect.isclass(base) and issubclass(base, Input)


@functools.cache
def declared(fn: Any) -> dict[str, Option]:
    """The options a callable (function or class) declares, in signature order."""
    hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn, include_extras=True)
    options = {}
    for name, param in inspect.signature(fn).parameters.items():
        annotation = hints.get(name, Any)
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or _is_input(annotation):
            continue
        options[name] = Option(name, annotation, param.default, _doc(annotation))
    return options


def declared_by(target: Any) -> dict[str, Option]:
    """The options of one of alimb's targets; none for a user's own target or one that names nothing (validation and
    Hydra's instantiate say so in one line)."""
    if not (isinstance(target, str) and target.startswith("alimb.")):
        return {}
    try:
        return declared(target_callable(target))
    except (ImportError, AttributeError):
        return {}


def part_of(annotation: Any) -> tuple[Part, str] | None:
    """(the Part, 'one' | 'many') when an option takes a node of another group (`dict[str, ...]` of them: many)."""
    own = markers(annotation, Part)
    if own:
        return own[-1], "one"  # the parameter's own Part (e.g. narrows=True) comes after its type's
    base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation
    if typing.get_origin(base) is dict and len(typing.get_args(base)) == 2:
        inner = markers(typing.get_args(base)[1], Part)
        if inner:
            return inner[-1], "many"
    return None


def parts(fn: Any) -> dict[str, tuple[Part, str]]:
    """The options of `fn` that take nodes of another group: {name: (Part, 'one' | 'many')}."""
    return {name: found for name, o in declared(fn).items() if (found := part_of(o.annotation)) is not None}


def own_fields(model: type[BaseModel]) -> dict:
    """The pydantic fields a config model declares itself (not Node's name/_target_/_partial_, unless it redeclares
    them), in declaration order."""
    own = {n for cls in model.__mro__ if cls is not Node and issubclass(cls, Node) for n in cls.__annotations__}
    return {n: f for n, f in model.model_fields.items() if n in own}


def declared_by_model(model: type[BaseModel]) -> dict[str, Option]:
    """The options a config model of alimb.schema declares itself (a node that builds nothing: the top level, al,
    features, dataset, trainer), as `declared` gives a callable's."""
    hints = typing.get_type_hints(model, include_extras=True)
    return {n: Option(n, hints[n], inspect.Parameter.empty if f.is_required() else f.default, _doc(hints[n]))
            for n, f in own_fields(model).items()}


def _for_model(annotation: Any) -> Any:
    """The annotation as pydantic checks a config node: a part (an AF, a backbone, a scheme) is a config dict."""
    if typing.get_origin(annotation) is Annotated:
        base = typing.get_args(annotation)[0]
        inner = dict if markers(annotation, Part) else _for_model(base)
        return Annotated[(inner, *annotation.__metadata__)]
    if typing.get_origin(annotation) is dict and len(typing.get_args(annotation)) == 2:
        key, value = typing.get_args(annotation)
        return dict[key, _for_model(value)]
    return annotation


@functools.cache
def model(target: str) -> type[Node] | None:
    """The pydantic model of the options of one of alimb's `_target_`s (None for a user's own)."""
    if not target.startswith("alimb."):
        return None
    fields = {name: (_for_model(o.annotation), ... if o.required else o.default)
              for name, o in declared(target_callable(target)).items()}
    return create_model(target.rpartition(".")[2], __base__=Node, **fields)


def fill(node: Any) -> None:
    """Add to every node of `node` (an OmegaConf container, nested ones included) that names one of alimb's
    `_target_`s each declared option it does not set: the default, or `???` (required). A YAML file loaded this way
    shows its option in full (`alimb --cfg job`) and any option overrides without `+`. A required option filled as
    `???` never replaces what the file's defaults list composed there (OmegaConf merges keep a value over `???`)."""
    from omegaconf import DictConfig, ListConfig

    if isinstance(node, ListConfig):
        for value in node:
            fill(value)
        return
    if not isinstance(node, DictConfig):
        return
    target = node._get_node("_target_")._value() if "_target_" in node else None
    for name, option in declared_by(target).items():
        if name not in node:
            node[name] = MISSING if option.required else _yaml_value(option.default)
    for key in list(node.keys()):
        fill(node._get_node(key))


def _yaml_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def describe(options: dict[str, Option], values: dict | None = None) -> list[str]:
    """One line per option: `name: type = value  # doc`, the value marked when it is not the declared default."""
    lines = []
    for o in options.values():
        if isinstance(o.annotation, type) and issubclass(o.annotation, BaseModel):
            continue  # a sub-node: listed on its own
        default = "required" if o.required else repr(o.default)
        shown = default
        if values is not None and o.name in values and (o.required or values[o.name] != o.default):
            value = values[o.name]
            if part_of(o.annotation) is not None and isinstance(value, dict):  # a part: what is chosen there
                names = [value.get("name")] if "name" in value else [v.get("name", k) if isinstance(v, dict) else k
                                                                     for k, v in value.items()]
                shown = ", ".join(map(str, names)) or "none"
            else:
                shown = f"{'...' if isinstance(value, dict) else repr(value)} (default: {default})"
        lines.append(f"  {o.name}: {type_name(o.annotation)} = {shown}" + (f"  # {o.doc}" if o.doc else ""))
    return lines


def type_name(annotation: Any) -> str:
    """An annotation as a reader wants it: `int (>= 1)`, `skip | fail`, `acquisition` for a part."""
    found = part_of(annotation)
    if found is not None:
        return found[0].group if found[1] == "one" else f"{{name: {found[0].group}}}"
    if typing.get_origin(annotation) is Annotated:
        base = type_name(typing.get_args(annotation)[0])
        metadata = [m for meta in annotation.__metadata__ for m in [meta, *getattr(meta, "metadata", [])]]
        bounds = [f"{k} {getattr(m, a)}" for m in metadata for a, k in
                  (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if getattr(m, a, None) is not None]
        return base + (f" ({', '.join(bounds)})" if bounds else "")
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if typing.get_origin(annotation) is Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))
