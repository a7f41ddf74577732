"""Options: each one declared once, as a parameter of the callable its config node builds.

    def coreset(ctx: Context, *, device: Device = "auto",
                lazy: Annotated[bool, Doc("...")] = True) -> Selection:

The parameter's name is the config key, its annotation the type and the range (the shared types below, pydantic's
`Field`), its default the default and `Doc` its one line of documentation. Everything else follows from it:

- the schema: `model(target)` is the pydantic model `alimb.schema.validate` checks a node against before any work;
- the composed config: alimb's config source (`hydra_plugins/alimb_config`) adds to every node of ours the declared
  options its YAML file does not set (`fill`), so `alimb acquisition=coreset acquisition.lazy=false` works while
  conf/acquisition/coreset.yaml holds its `_target_` and nothing it does not choose;
- the listing: `python -m alimb.options acquisition/coreset` prints each option with its type, default and doc.

A YAML file sets an option only to choose a value other than the declared one (tests/test_options.py proves it).
A parameter annotated with the loop's `Context` (an AF's input) is not an option.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from typing_extensions import Doc

__all__ = ["Doc", "Option", "declared", "model", "fill", "Number", "PositiveNumber", "NonNegativeNumber", "Fraction",
           "Count", "Positive", "Device", "OnBadImage", "RevealWithinBatch"]


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
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$"),
                   Doc("where it computes: auto (cuda when present), cpu, cuda, cuda:N or mps")]
OnBadImage = Annotated[Literal["skip", "fail"], Doc("an unreadable image: skip it (counted) or fail the run")]
RevealWithinBatch = Annotated[bool, Doc("each pick's label counts before the next pick, as published (the simulated "
                                        "oracle); false: the predicted class counts instead")]


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
    import importlib

    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _doc(annotation: Any) -> str:
    docs = [m.documentation for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Doc)]
    return docs[-1] if docs else ""  # nested Annotated flattens: the innermost Doc comes first, the parameter's last


@functools.cache
def declared(fn: Any) -> dict[str, Option]:
    """The options a callable (function or class) declares, in signature order."""
    from alimb.acquisition.base import Context

    hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn, include_extras=True)
    options = {}
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, Any)
        if typing.get_origin(annotation) is Annotated and typing.get_args(annotation)[0] is Context or annotation is Context:
            continue
        options[name] = Option(name, annotation, param.default, _doc(annotation))
    return options


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
    """The annotation as pydantic checks a config node: an AF or a built object (a backbone) is a config dict."""
    from alimb.acquisition.base import AF

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is AF or annotation is Any:
        return Any if annotation is Any else dict
    if origin is Annotated:
        return Annotated[(_for_model(args[0]), *annotation.__metadata__)]
    if origin is dict and args:
        return dict[args[0], _for_model(args[1])]
    return annotation


@functools.cache
def model(target: str) -> type[Node] | None:
    """The pydantic model of the options of one of alimb's `_target_`s (None for a user's own)."""
    if not target.startswith("alimb."):
        return None
    fields = {name: (_for_model(o.annotation), ... if o.required else o.default)
              for name, o in declared(target_callable(target)).items()}
    return create_model(target.rpartition(".")[2], __base__=Node, **fields)


MISSING = "???"


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
    for name, option in _declared_by(target).items():
        if name not in node:
            node[name] = MISSING if option.required else _yaml_value(option.default)
    for key in list(node.keys()):
        fill(node._get_node(key))


def _declared_by(target: Any) -> dict[str, Option]:
    """The options of one of alimb's targets; none for a user's own target or one that names nothing (validation and
    Hydra's instantiate say so in one line)."""
    if not (isinstance(target, str) and target.startswith("alimb.")):
        return {}
    try:
        return declared(target_callable(target))
    except (ImportError, AttributeError):
        return {}


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
            shown = f"{'...' if isinstance(value, dict) else repr(value)} (default: {default})"
        lines.append(f"  {o.name}: {_type_name(o.annotation)} = {shown}" + (f"  # {o.doc}" if o.doc else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    """`python -m alimb.options [OVERRIDE ...]`: the options of every node the composed config builds, e.g.
    `python -m alimb.options scheme=switch acquisition=direct`."""
    import sys

    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    overrides = sys.argv[1:] if argv is None else argv
    with initialize_config_module("alimb.conf", version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=False)

    from alimb.schema import Top

    def walk(node: Any, path: str, model: Any = None) -> None:
        if isinstance(node, dict):
            options = _declared_by(node.get("_target_")) or (declared_by_model(model) if model else {})
            if options:
                print(f"{path or 'top level'} ({node.get('_target_') or f'alimb.schema.{model.__name__}'}):")
                print("\n".join(describe(options, node)))
            for key, value in node.items():
                sub = options[key].annotation if key in options else None
                walk(value, f"{path}.{key}" if path else key,
                     sub if isinstance(sub, type) and issubclass(sub, BaseModel) else None)

    walk(cfg, "", Top)
    return 0



def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is Annotated:
        base = _type_name(typing.get_args(annotation)[0])
        metadata = [m for meta in annotation.__metadata__ for m in [meta, *getattr(meta, "metadata", [])]]
        bounds = [f"{k} {getattr(m, a)}" for m in metadata for a, k in
                  (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if getattr(m, a, None) is not None]
        return base + (f" ({', '.join(bounds)})" if bounds else "")
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if typing.get_origin(annotation) is Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


if __name__ == "__main__":  # run as alimb.options, not __main__: one copy of Node for issubclass
    import os
    import sys

    from alimb.options import main as _main

    try:
        raise SystemExit(_main())
    except BrokenPipeError:  # `python -m alimb.options | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
