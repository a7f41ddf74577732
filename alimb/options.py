"""The vocabulary options are declared in: one line of documentation (`Doc`), the shared types and ranges, and the
markers that tell the rest of alimb what an option is.

An option is a parameter of the callable its config node builds, declared once:

    def coreset(ctx: Context, *, device: Device = "auto",
                lazy: Annotated[bool, Doc("...")] = True) -> Selection:

Its name is the config key, its annotation the type and the range (the shared types below, pydantic's `Field`),
its default the default and `Doc` its one line of documentation. `alimb.declarations` reads the declarations
(the schema, the filled config, the listing); this module only names things and imports nothing of alimb.

Markers, in an option's `Annotated[...]`:
- `Part(group)`: the option takes a node of another config group (an AF inside an AF, a scheme's backbone, the
  switch's schemes), chosen on the command line by name like the group itself (`acquisition.within=coreset`).
- `PRESENTATION`: where a run's inputs are found or how it is shown (a data folder, a logger), not what it
  computes: moving the data or changing the logger resumes the same run (`alimb.identity`).
- `Reveals()`: a bool that lets an AF read the oracle's labels of its own picks within its batch.
A parameter typed with an `Input` (an AF's `Context`) is the callable's input, not an option.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

from pydantic import BeforeValidator, Field
from typing_extensions import Doc

__all__ = ["Doc", "Part", "Presentation", "PRESENTATION", "Reveals", "Input", "Number", "PositiveNumber",
           "NonNegativeNumber", "Fraction", "Count", "Positive", "Device", "OnBadImage", "RevealWithinBatch", "ImageSize", "Place",
           "markers"]


@dataclass(frozen=True)
class Part:
    """The option takes a node of config group `group` (built by Hydra; chosen by name on the command line).

    `narrows`: the callable hands the part a narrowed set of candidates (an AF that selects over the whole pool
    cannot serve there). `oracle`: the part receives the oracle (false: it proposes without reading labels)."""

    group: str
    narrows: bool = False
    oracle: bool = True


@dataclass(frozen=True)
class Presentation:
    """The option says where a run's inputs are or how the run is shown, not what it computes."""


PRESENTATION = Presentation()


@dataclass(frozen=True)
class Reveals:
    """A bool option that lets an AF read the oracle's labels of its own picks within its batch."""


class Input:
    """A type that is a callable's input rather than an option (an AF's `Context`)."""


def markers(annotation: Any, kind: type) -> list:
    """The markers of type `kind` in an annotation's `Annotated` metadata (nested ones flattened), also those of the
    types an `Optional[...]` or `Union[...]` admits (`Optional[Place]` is a place too)."""
    found = [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, kind)]
    inner = typing.get_origin(annotation) is Annotated and annotation.__origin__ or annotation
    if typing.get_origin(inner) in (typing.Union, types.UnionType):
        found += [m for arg in typing.get_args(inner) for m in markers(arg, kind) if m not in found]
    return found


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not a boolean")
    if isinstance(value, str):  # '0.5' quoted on the command line: the AF would get the string, not the number
        raise ValueError("Input should be a number, not a string (drop the quotes)")
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
RevealWithinBatch = Annotated[bool, Reveals(), Doc(
    "each pick's label counts before the next pick, as published (the oracle answers); false: the predicted class "
    "counts instead")]
ImageSize = Annotated[Optional[Annotated[int, Field(ge=8)]], Doc("the fine-tuning input size; null: the backbone's "
                                                                 "resolution")]
Place = Annotated[str, PRESENTATION]  # a file or folder the data is read from: where, not what
