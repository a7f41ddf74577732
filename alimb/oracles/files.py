"""A person answering through files (`oracle=human`): each batch is written to its round's folder as

    to_label.csv          sample_id, path (the image file, if any), the model's suggested class and score, why it was picked,
                          and an empty `label` column for the person (a class name, or skip / unsure / ?)
    tasks.json            the same batch as a Label Studio import, the suggestions as predictions, with
    labeling_config.xml   the project's labeling config for the class names

and read back from the filled `to_label.csv` or from a Label Studio JSON export saved there as `export.json`, by
sample id, never by row order. Bad answers are one line naming the file and the row, and nothing of them is kept.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated, Optional, Sequence

from alimb.atomic import write_atomic
from alimb.errors import UserError
from alimb.options import PRESENTATION, Doc, Place
from alimb.oracles.label_studio_answers import SKIP as LS_SKIP
from alimb.oracles.label_studio_answers import read_export
from alimb.oracles.label_studio_tasks import Suggestion, Task, data_uri, local_files_url, write_offline
from alimb.oracles.oracle import SKIP, ClassNames, delimiter, read_answers_csv, read_class_names, resolve_class_names
from alimb.rounds import Batch

CSV_FILE, EXPORT_FILE = "to_label.csv", "export.json"
InitialLabels = Annotated[Optional[str], PRESENTATION, Doc(
    "a CSV of sample_id,label a person already answered: the first round's batch (else a random one); answers like "
    "any other, stored in the run when read, so the file may move")]
Answered = Annotated[Optional[Place], Doc(
    "answers a person gave before, reused wherever this run asks for those samples (never asked twice): another "
    "run's answers.jsonl (to label more rounds: al.iterations=N with the finished run's), or a CSV of sample_id,label")]
AcceptPartial = Annotated[bool, PRESENTATION, Doc(
    "a batch answered in part: train on the answers and put the rest back in the pool (false: wait for all); the "
    "person's call for a round, like the answers themselves, so switching it continues the same run")]
COLUMNS = ("sample_id", "path", "suggested", "score", "reason", "label")  # path: the image file, where there is one


class FileOracle:
    """A person answering through files (see the module docstring)."""

    person = True

    def __init__(
        self,
        classes: ClassNames = None,
        initial_labels: InitialLabels = None,
        answered: Answered = None,
        accept_partial: AcceptPartial = False,
        document_root: Annotated[Optional[Place], PRESENTATION, Doc(
            "Label Studio's local-files document root (LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT): tasks.json points "
            "there; null: images go inline in tasks.json")] = None,
        model_version: Annotated[str, PRESENTATION, Doc("names the suggestions in Label Studio")] = "alimb",
    ):
        self.classes, self.initial_labels, self.accept_partial = read_class_names(classes), initial_labels, accept_partial
        self.answered = answered
        self.document_root, self.model_version = document_root, model_version

    def class_names(self, dataset: list[str] | None) -> list[str]:
        return resolve_class_names(self.classes, dataset)

    def truth(self, ids: Sequence[str], classes: list[str]) -> None:
        return None  # a person answers, batch by batch

    def initial(self, classes: list[str], ids: set[str]) -> dict[str, int]:
        """The answers of `initial_labels` (sample id -> class index or SKIP), for samples of the pool."""
        if self.initial_labels is None:
            return {}
        path = Path(self.initial_labels).expanduser()
        answers = read_answers_csv(path, classes, required=True)
        unknown = sorted(set(answers) - ids)
        if unknown:
            raise UserError(f"{path} answers sample {unknown[0]!r}, which is not in the pool ({len(unknown)} such); "
                            "name samples by the ids alimb uses (paths relative to the dataset's root)")
        if not answers:
            raise UserError(f"{path} answers no sample; fill its label column, or leave oracle.initial_labels out")
        return answers

    def earlier(self, classes: list[str], ids: set[str]) -> dict[str, int]:
        """The answers of `answered` (sample id -> class index or SKIP) for samples of the pool."""
        if self.answered is None:
            return {}
        path = Path(self.answered).expanduser()
        if path.suffix != ".jsonl":
            answers = read_answers_csv(path, classes, required=True)
        else:
            from alimb.rounds import read_answers

            position = {name: i for i, name in enumerate(classes)}
            stored = read_answers(path)
            unknown = sorted({a.label for a in stored.values() if a.label is not None} - set(position))
            if unknown:
                raise UserError(f"{path} answers class {unknown[0]!r}, which oracle.classes lacks; name it there")
            answers = {s: SKIP if a.label is None else position[a.label] for s, a in stored.items()}
        return {s: v for s, v in answers.items() if s in ids}

    # ---- a batch's files ----
    def task(self, batch: Batch, j: int, path: str | None, kind: str) -> Task:
        suggestion = batch.suggestions[j] if batch.suggestions else None
        image = None
        if kind == "image" and path is not None:
            image = local_files_url(path, self.document_root) if self.document_root else data_uri(path)
        text = None if kind == "image" else f"{batch.ids[j]}: {batch.reasons[j] if batch.reasons else ''}"
        return Task(batch.ids[j], image=image, text=text, suggestion=None if suggestion is None else Suggestion(
            suggestion[0], float(suggestion[1]), f"{self.model_version} round {batch.round}"))

    def _rows(self, batch: Batch, paths: Sequence[str] | None, only: set[str] | None = None) -> list[list[str]]:
        """The batch's rows of `to_label.csv` (those of the samples in `only`, if given), the label left empty."""
        rows = []
        for j, (i, sample) in enumerate(zip(batch.indices, batch.ids)):
            if only is not None and sample not in only:
                continue
            suggestion = batch.suggestions[j] if batch.suggestions else None
            rows.append([sample, paths[i] if paths is not None else "", "" if suggestion is None else suggestion[0],
                         "" if suggestion is None else f"{suggestion[1]:.3f}",
                         batch.reasons[j] if batch.reasons else "", ""])
        return rows

    def publish(self, batch: Batch, folder: Path, paths: Sequence[str] | None, classes: list[str]) -> None:
        """Write the batch's files (a `to_label.csv` a person has begun to fill is never written over)."""
        csv_file = folder / CSV_FILE
        if not csv_file.exists():
            out = io.StringIO()
            csv.writer(out).writerows([COLUMNS, *self._rows(batch, paths)])
            write_atomic(csv_file, out.getvalue())
        kind = "image" if paths is not None else "text"
        write_offline(folder, [self.task(batch, j, None if paths is None else paths[i], kind)
                               for j, i in enumerate(batch.indices)], classes, kind)

    def restore(self, batch: Batch, folder: Path, paths: Sequence[str] | None, unanswered: Sequence[str], *,
                rows: bool = True) -> bool:
        """The rows of the samples still to label, written again where the person deleted `to_label.csv` or (`rows`:
        only on a file `collect` has read) removed them from it, their other rows kept as they are; whether anything
        was written. An empty file is left for `collect` to refuse."""
        csv_file = folder / CSV_FILE
        try:
            text = csv_file.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            out = io.StringIO()
            csv.writer(out).writerows([COLUMNS, *self._rows(batch, paths, set(unanswered))])
            write_atomic(csv_file, out.getvalue())
            return True
        if not rows or not text.strip():
            return False
        sep = delimiter(text)
        present = {row.get("sample_id", "").strip() for row in csv.DictReader(io.StringIO(text), delimiter=sep)}
        absent = {s for s in unanswered if s not in present}
        if not absent:
            return False
        header = next(csv.reader(io.StringIO(text), delimiter=sep))
        out = io.StringIO()
        writer = csv.writer(out, delimiter=sep)
        for row in self._rows(batch, paths, absent):
            writer.writerow([dict(zip(COLUMNS, row)).get(name.strip(), "") for name in header])
        write_atomic(csv_file, text + ("" if text.endswith("\n") else "\n") + out.getvalue())
        return True

    def collect(self, batch: Batch, folder: Path, classes: list[str]) -> dict[str, int]:
        """The answers given so far for the batch (sample id -> class index or SKIP), from its files."""
        return self.written(batch, folder, classes)

    def written(self, batch: Batch, folder: Path, classes: list[str]) -> dict[str, int]:
        """The answers to the batch in its folder's files (sample id -> class index or SKIP)."""
        ids = set(batch.ids)
        answers = read_answers_csv(folder / CSV_FILE, classes, allowed=ids)
        export = folder / EXPORT_FILE
        if export.exists():
            position = {name: i for i, name in enumerate(classes)}
            for sample, given in read_export(export, batch.ids, classes).items():
                value = SKIP if given is LS_SKIP else position[given]
                if answers.get(sample, value) != value:
                    raise UserError(f"{export} and {folder / CSV_FILE} answer sample {sample!r} differently; keep one")
                answers[sample] = value
        return answers

