"""A person's rounds in a run directory: the batches asked for, the answers given, the class names.

    rounds/03/batch.json      the batch of iteration 3 (its samples, the AF's selection, the model's suggestions)
    rounds/03/to_label.csv    what a person fills in (the `label` column), or import tasks.json into Label Studio
    rounds/03-1/ ...          a sub-round: an AF that reads labels within its batch (DIRECT) asked these first
    answers.jsonl             every answer read, by sample id, stored before anything else happens
    classes.json              the class names so far (they may only grow)

Answers are facts about samples, not about a run: `overwrite=true` keeps them, so a sample is never asked twice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alimb.atomic import append_line, write_atomic
from alimb.errors import UserError


@dataclass
class Batch:
    """The samples asked for in a round (or a sub-round: `sub` > 0, asked by an AF within its batch)."""

    round: int
    sub: int  # 0: the round's own batch (`final`); 1, 2, ...: the sub-rounds before it
    final: bool
    indices: list[int]  # pool indices to label now
    ids: list[str]
    suggestions: list[tuple[str, float] | None] = field(default_factory=list)  # the model's class and score
    reasons: list[str] = field(default_factory=list)  # why each sample was picked
    selection: dict = field(default_factory=dict)  # final: indices (all picks), n_quota, quota_requested, info,
    # revealed (labels read within the batch), select_seconds

    @property
    def name(self) -> str:
        return f"{self.round:02d}" + (f"-{self.sub}" if self.sub else "")


@dataclass(frozen=True)
class Answer:
    """A person's answer: a class name, or a skip."""

    id: str
    label: str | None  # None: skipped
    round: int
    source: str  # files, label_studio, initial

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def read_answers(path: Path) -> dict[str, Answer]:
    """The answers of an answers.jsonl, by sample id, the latest where a person changed one (a line cut short by a
    kill is ignored: its answer is read again)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read the answers in {path} ({type(err).__name__}); name a run's answers.jsonl") from None
    stored = {}
    for line in text.splitlines():
        try:
            answer = Answer(**json.loads(line))
        except (ValueError, TypeError):
            continue
        stored[answer.id] = answer
    return stored


class Rounds:
    """The rounds of a person's run (see the module docstring); alimb.state.RunDir owns the rest of the directory."""

    def __init__(self, run_path: str | Path):
        self.path = Path(run_path)
        self.folder, self.answers_file = self.path / "rounds", self.path / "answers.jsonl"
        self.classes_file = self.path / "classes.json"

    def batch_dir(self, batch: Batch) -> Path:
        return self.folder / batch.name

    def batches(self, k: int) -> list[Batch]:
        """The batches of round k saved so far: its sub-rounds in order, then its own batch (if made)."""
        found = []
        for folder in sorted(self.folder.glob(f"{k:02d}*")):
            file = folder / "batch.json"
            if file.is_file():
                try:
                    found.append(Batch(**json.loads(file.read_text())))
                except (OSError, ValueError, TypeError) as err:
                    raise UserError(f"{file} is damaged ({type(err).__name__}); pass overwrite=true to start the run "
                                    "again (the answers given so far are kept)") from None
        return sorted((b for b in found if b.round == k), key=lambda b: (b.final, b.sub))

    def save(self, batch: Batch) -> Path:
        folder = self.batch_dir(batch)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "batch.json", json.dumps(asdict(batch), indent=1) + "\n")
        return folder

    def answers(self) -> dict[str, Answer]:
        """Every answer stored, by sample id, the latest where a person changed one (a line cut short by a kill is
        ignored: its answer is read again)."""
        return read_answers(self.answers_file) if self.answers_file.is_file() else {}

    def store(self, answers: list[Answer]) -> None:
        """Append answers durably, before anything uses them."""
        if answers:
            self.path.mkdir(parents=True, exist_ok=True)
            append_line(self.answers_file, "".join(a.to_json() + "\n" for a in answers))

    def check_classes(self, classes: list[str], answers: dict[str, Answer]) -> list[str]:
        """The run's classes now, after checking they only grew (appended at the end) since the last round and name
        every stored answer."""
        try:
            before = json.loads(self.classes_file.read_text()) if self.classes_file.is_file() else []
        except (OSError, ValueError):
            before = None
        if not isinstance(before, list) or not all(isinstance(c, str) for c in before):
            raise UserError(f"{self.classes_file} is damaged; write the run's class names there as a JSON list "
                            "(\"a\", \"b\", ... in brackets), or pass overwrite=true to start the run again (the "
                            "answers are kept)")
        if classes[: len(before)] != before:
            raise UserError(f"oracle.classes changed from {before} to {classes}: within a run classes may only grow, "
                            "new names appended at the end (pass overwrite=true to start the run again with these "
                            "classes; the answers are kept)")
        unknown = sorted({a.label for a in answers.values() if a.label is not None} - set(classes))
        if unknown:
            raise UserError(f"{self.answers_file} holds answers of class {unknown[0]!r}, which oracle.classes "
                            f"{classes[:8]} lacks; name it there")
        if classes != before:
            self.path.mkdir(parents=True, exist_ok=True)
            write_atomic(self.classes_file, json.dumps(classes) + "\n")
        return classes
