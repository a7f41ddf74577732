"""Who answers the labels: the oracle protocol, the simulated oracle, class names, and answers read by sample id.

`oracle=simulated` (the paper's protocol, the default) answers at once: from the dataset's own labels or, for data
without labels, from a file of answers (`oracle.labels`), so a person's run has a simulated twin. `oracle=human`
(files, alimb.oracles.files) and `oracle=label_studio` (alimb.oracles.studio) are a person: the loop stops after
each batch it asks for and goes on when the same command is run again (alimb.person).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated, Optional, Protocol, Sequence, Union

import numpy as np

from alimb.errors import UserError
from alimb.options import PRESENTATION, Doc, Place

SKIP = -2  # an answer: the person skipped the sample ("unsure"); it leaves the pool and is never asked again
SKIP_WORDS = ("skip", "unsure", "?")  # what a person may write in a file for it

ClassNames = Annotated[Optional[Union[list[str], str]], PRESENTATION, Doc(
    "the class names, a list or a file of one name per line; they may grow between rounds (append new names at the "
    "end); null: the dataset's own")]


class Oracles(Protocol):
    """What the loop asks of an oracle before any round: the run's class names and, for the simulated oracle on data
    without labels, every answer at once. A person (`person = True`) also publishes batches and collects answers
    (alimb.oracles.files.FileOracle)."""

    person: bool

    def class_names(self, dataset: list[str] | None) -> list[str]:
        """The run's class names, given the dataset's (None: the data has no labels)."""

    def truth(self, ids: Sequence[str], classes: list[str]) -> np.ndarray | None:
        """Every pool sample's class index, for an oracle that knows them all (None: answers come later)."""


def read_class_names(spec: list[str] | str | None) -> list[str] | None:
    """The names of `oracle.classes` (a list, or a file of one name per line), checked: none empty, none twice."""
    if spec is None:
        return None
    if isinstance(spec, str):
        path = Path(spec).expanduser()
        try:
            names = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"cannot read the class names from {path} ({type(err).__name__}); write one name per line "
                            "(UTF-8), or give oracle.classes=[a,b,c]") from None
    else:
        names = [str(n).strip() for n in spec]
    if len(names) < 2 or any(not n for n in names) or len(set(names)) != len(names):
        raise UserError(f"oracle.classes must name two or more classes, each once and none empty; got {names[:8]}")
    folded = [n.casefold() for n in names]
    twins = sorted({n for n in names if folded.count(n.casefold()) > 1})
    if twins:
        raise UserError(f"oracle.classes names {' and '.join(twins)}, which differ only in case: answers are read "
                        "ignoring case, so name each class in a way that differs in more than case")
    if any(n.lower() in SKIP_WORDS for n in names):
        raise UserError(f"oracle.classes may not name a class {'/'.join(SKIP_WORDS)}: those words answer 'skip'")
    return names


def resolve_class_names(given: list[str] | None, dataset: list[str] | None) -> list[str]:
    """The run's classes: the dataset's (which `oracle.classes`, if given, must repeat) or, for data without
    labels, `oracle.classes`."""
    if dataset is None:
        if given is None:
            raise UserError("the dataset has no labels: name its classes with oracle.classes=[a,b,...] or "
                            "oracle.classes=FILE (one name per line)")
        return given
    if given is not None and given != list(dataset):
        raise UserError(f"oracle.classes {given[:5]} differs from the dataset's classes {list(dataset)[:5]}; leave "
                        "oracle.classes out for a dataset with labels")
    return list(dataset)


def name_test_labels(test_y: np.ndarray, test_names: list[str], classes: list[str]) -> np.ndarray:
    """Test labels as indices into the run's classes: by name when the test set names its classes (a labeled test
    folder), else as given (class indices)."""
    test_y = np.asarray(test_y, dtype=np.int64)
    unnamed = list(test_names) == [str(i) for i in range(len(test_names))]  # labels given as class indices
    if test_y.size == 0 or unnamed or list(test_names) == list(classes[: len(test_names)]):
        if test_y.size and test_y.max() >= len(classes):
            raise UserError(f"the test set's labels go up to {test_y.max()} but there are {len(classes)} classes")
        return test_y
    position = {name: i for i, name in enumerate(classes)}
    unknown = [n for n in test_names if n not in position]
    used = sorted({test_names[i] for i in np.unique(test_y)} & set(unknown))
    if used:
        raise UserError(f"the test set's class {used[0]!r} is not among oracle.classes; name it there (classes may "
                        "only grow: append it at the end)")
    return np.array([position[test_names[i]] for i in test_y], dtype=np.int64)


def delimiter(text: str) -> str:
    """The field separator of a CSV a person saved: a comma, or what a spreadsheet wrote instead (a semicolon where
    the comma is the decimal mark, a tab), whichever splits its header most."""
    header = text.lstrip().partition("\n")[0]
    return max((",", ";", "\t"), key=header.count)


def read_answers_csv(path: Path, classes: list[str], *, column: str = "label", allowed: set[str] | None = None,
                     required: bool = False) -> dict[str, int]:
    """{sample id: class index or SKIP} of a CSV with `sample_id` and `label` columns, by sample id, never by row.
    An empty label is no answer yet. A label not among the classes, an id not in `allowed`, one id with two
    different answers, or a file that is not such a CSV is one line naming the file and the row; nothing is kept."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        if required:
            raise UserError(f"{path} not found; it holds sample_id,label rows") from None
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path} ({type(err).__name__}); save it as UTF-8 CSV with sample_id and "
                        f"{column} columns") from None
    if not text.strip():
        raise UserError(f"{path} is empty; it should keep its header and one row per sample (sample_id,...,{column})")
    rows = csv.DictReader(io.StringIO(text), delimiter=delimiter(text))
    if rows.fieldnames is None or "sample_id" not in rows.fieldnames or column not in rows.fieldnames:
        raise UserError(f"{path} has no sample_id and {column} columns (its header: {rows.fieldnames}); keep the "
                        "header alimb wrote")
    position = {name: i for i, name in enumerate(classes)}
    lowered = {name.lower(): i for i, name in enumerate(classes)}
    answers: dict[str, int] = {}
    for number, row in enumerate(rows, 2):
        if None in row or any(v is None for v in row.values()):
            raise UserError(f"row {number} of {path} does not have the header's columns (a line cut short?); fix "
                            "that row")
        raw, given = row["sample_id"], row[column].strip()
        sample = raw if allowed is not None and raw in allowed else raw.strip()  # an id may begin with a space
        if not given:
            continue
        if allowed is not None and sample not in allowed:
            raise UserError(f"row {number} of {path}: sample {sample!r} is not in the batch asked for; answer only the "
                            "rows alimb wrote")
        if given.lower() in SKIP_WORDS:
            value = SKIP
        elif given in position or given.lower() in lowered:
            value = position.get(given, lowered.get(given.lower()))
        else:
            raise UserError(f"row {number} of {path}: {given!r} is not a class ({', '.join(classes[:8])}"
                            f"{', ...' if len(classes) > 8 else ''}, or skip); write one of them, or add the class to "
                            "oracle.classes")
        if answers.get(sample, value) != value:
            raise UserError(f"row {number} of {path}: sample {sample!r} is answered twice, differently; keep one")
        answers[sample] = value
    return answers


class SimulatedOracle:
    """The paper's oracle: the dataset's own labels answer at once (or, for data without labels, a file of answers,
    the simulated twin of a person's run)."""

    person = False

    def __init__(
        self,
        labels: Annotated[Optional[Place], Doc("for data without labels: a CSV of sample_id,label (class names) "
                                               "answering for every pool sample; null: the dataset's labels")] = None,
        classes: ClassNames = None,
    ):
        self.labels, self.classes = labels, read_class_names(classes)

    def class_names(self, dataset: list[str] | None) -> list[str]:
        return resolve_class_names(self.classes, dataset)

    def truth(self, ids: Sequence[str], classes: list[str]) -> np.ndarray:
        if self.labels is None:
            raise UserError("the dataset has no labels and the simulated oracle none to answer with: give them with "
                            "oracle.labels=FILE (sample_id,label), or let a person answer (oracle=human)")
        answers = read_answers_csv(Path(self.labels).expanduser(), classes, required=True)
        missing = [i for i in ids if i not in answers]
        if missing:
            raise UserError(f"{self.labels} answers no label for {len(missing)} pool sample(s), e.g. {missing[0]!r}; "
                            "it must label every sample")
        skipped = [i for i in ids if answers[i] == SKIP]
        if skipped:
            raise UserError(f"{self.labels} skips {skipped[0]!r}; the simulated oracle answers every sample")
        return np.array([answers[i] for i in ids], dtype=np.int64)
