"""The per-iteration record: one typed definition from which the files, W&B and `alimb.results.load` follow.

A record is written as one JSON line (standard JSON: numpy scalars as numbers, NaN and inf as null).
`alimb.results.load`'s columns are the record's scalar fields (`SCALAR_FIELDS`): a field added here
reaches the results table without any other edit.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np


@dataclass(frozen=True)
class Record:
    """What one AL iteration recorded (README: "What every run records")."""

    iteration: int
    n_labeled: int
    accuracy: Optional[float]  # mean per-class accuracy on the balanced test set (= balanced accuracy)
    macro_f1: Optional[float]
    minority_accuracy: Optional[float]  # over the pool's minority classes (below its mean count); null: none
    majority_accuracy: Optional[float]
    labeled_ir: Optional[float]  # std / mean of the labeled set's class counts (paper Fig. 2)
    class_counts: list  # labeled count per class
    per_class_accuracy: list  # test recall per class (null for a class absent from the test set)
    n_from_quota: int  # picks that filled the MCS family's minority-class quotas (Eq. 3); 0 for other AFs
    n_from_auxiliary: int  # the rest of the batch
    quota_requested: int  # sum of the quotas m_c before the budget capped them
    n_revealed_within_batch: int  # labels the AF read from the oracle during its own batch
    reveal_within_batch: bool  # whether the AF was allowed to (galaxy, cds_bal, minority_bandit by default)
    scheme: str  # the configured scheme
    scheme_used: str  # the scheme that trained this iteration's model (the switch: either of its schemes)
    seconds: dict  # select / train (the fit) / evaluate (the test set) / score (the pool), and the AF's own
    # timings (select_<name>)
    acquisition_info: Optional[dict] = None  # what the AF reports (solver status, fallbacks, arms chosen)
    cv_accuracy: Optional[dict] = None  # the switch: each scheme's cross-validated accuracy
    switch_iteration: Optional[int] = None  # the switch: the first iteration that used the other scheme
    train_loss: Optional[float] = None  # fine tuning: the training loss of the last epoch
    train_info: Optional[dict] = None  # the SVM's torch solvers: iterations (Newton: newton_steps, cg_steps),
    # evaluations (objective-and-gradient equivalents: the columns of its products with X over 2K);
    # fine tuning on several devices: processes (the ranks that trained)
    scheme_info: Optional[dict] = dataclasses.field(default=None, metadata={"omit_if_none": True})  # what a
    # scheme reports beyond the fields above (a scheme's own: `fit`'s keys that are not fields of the record)
    oracle_info: Optional[dict] = dataclasses.field(default=None, metadata={"omit_if_none": True})  # a person's
    # round: answers, skipped, returned to the pool, sub-rounds, the batch's share of minority classes, the
    # predicted class counts over the unlabeled pool, and without a test set a cross-validated balanced accuracy

    @property
    def classes_discovered(self) -> int:
        """Classes with at least one label."""
        return sum(1 for c in self.class_counts if c > 0)

    def __getitem__(self, name: str) -> Any:
        """`record["accuracy"]`, as the JSON line reads (a KeyError for a name that is not a field or derived)."""
        if name not in FIELDS and name not in DERIVED:
            raise KeyError(name)
        return getattr(self, name)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not (f.metadata.get("omit_if_none") and getattr(self, f.name) is None)}

    @classmethod
    def with_scheme_report(cls, report: dict, **fields: Any) -> "Record":
        """A record whose scheme reported `report` (`Scheme.fit`'s dict): its keys that are fields of the record fill
        them, the others are the scheme's own (`scheme_info`)."""
        own = {k: v for k, v in report.items() if k not in FIELDS}
        return cls(**fields, **{k: v for k, v in report.items() if k in FIELDS}, scheme_info=own or None)

    @classmethod
    def from_dict(cls, data: dict) -> "Record":
        """A record from its JSON form; a key that is not a field is an error (a record of another program)."""
        unknown = set(data) - set(FIELDS)
        if unknown:
            raise ValueError(f"not a record field: {', '.join(sorted(unknown))}")
        return cls(**data)

    def without_timings(self) -> "Record":
        """The record less its timings: what an interrupted and resumed run reproduces exactly."""
        return dataclasses.replace(self, seconds={})

    def as_simulated(self) -> "Record":
        """The record less its timings and what only a person's round reports: what the same run with the simulated
        oracle records."""
        return dataclasses.replace(self, seconds={}, oracle_info=None)


FIELDS = {f.name: f for f in dataclasses.fields(Record)}
DERIVED = ("classes_discovered",)  # scalars computed from the fields (columns of alimb.results too)
_HINTS = typing.get_type_hints(Record)
SCALAR_FIELDS = tuple(name for name, hint in _HINTS.items()
                      if all(t in (int, float, str, bool, type(None)) for t in (typing.get_args(hint) or (hint,))))


def jsonable(value: Any) -> Any:
    """A value as standard JSON holds it (numpy scalars as numbers, NaN and inf as None, tuples as lists)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # standard JSON has no NaN: an undefined metric (e.g. no minority class) is null
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Standard JSON of records and summaries (numpy scalars as numbers, NaN and inf as null)."""
    if isinstance(value, Record):
        value = value.to_dict()
    return json.dumps(jsonable(value), allow_nan=False, **kwargs)


def loads(line: str) -> Record:
    return Record.from_dict(json.loads(line))


class NullLogger:
    """Local files only."""

    def start(self, config: dict, name: str, group: str, tags: list[str], id_file=None, job_type: str | None = None,
              default_dir=None) -> None:
        pass

    def log(self, record: Record) -> None:
        pass

    def finish(self, summary: dict | None, records: list[Record] | None = None) -> None:
        pass
