"""What the annotators answered: Label Studio tasks (from the API or a JSON export file) to {sample_id: class or SKIP}.

Tasks are matched by `data.sample_id`, never by position; several tasks with one sample id (a batch also imported
by hand) pool their annotations. Per sample, only saved annotations count (drafts do not):

- a cancelled annotation (Label Studio's Skip button: `was_cancelled: true`, `result: []`) is a skip, and so is
  one submitted with no class chosen;
- annotations naming a class are the answer when they agree; a class beats a skip (one annotator skipped,
  another knew);
- when they disagree, the ones marked ground truth (the star in Label Studio) decide; if those disagree too, or
  none is marked, `conflicts` says what happens: "error" (default) stops with the samples to resolve, "latest"
  takes the most recently updated annotation, "skip" counts the sample as skipped;
- a sample without annotations has no answer yet and is left out.
"""

from __future__ import annotations

import enum
import json
import os
from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal

from alimb.errors import UserError
from alimb.oracles.label_studio_tasks import FROM_NAME


class Skip(enum.Enum):
    """The answer of an annotator who skipped the sample."""

    SKIP = "skip"

    def __repr__(self) -> str:
        return "SKIP"


SKIP = Skip.SKIP
Answer = str | Skip
Conflicts = Literal["error", "latest", "skip"]
EXPORT_HINT = "download it again from the project's Export page, format JSON"


def _vote(annotation: dict, sample_id: str, class_names: Collection[str], source: str) -> Answer:
    """One annotation's answer: its class, or SKIP when it was cancelled or names none."""
    if annotation.get("was_cancelled"):
        return SKIP
    chosen = [c for r in annotation.get("result") or [] if r.get("from_name") == FROM_NAME and r.get("type") == "choices"
              for c in (r.get("value") or {}).get("choices") or []]
    if not chosen:
        other = sorted({str(r.get("from_name")) for r in annotation.get("result") or [] if r.get("type") == "choices"})
        if other:
            raise UserError(f"{source}: annotation {annotation.get('id')} of sample {sample_id!r} answers with the "
                            f"control {other[0]!r}, not {FROM_NAME!r}: label with the labeling config alimb wrote "
                            "(labeling_config.xml), whose choices are named label")
        return SKIP
    if len(set(chosen)) > 1:
        raise UserError(f"{source}: annotation {annotation.get('id')} of sample {sample_id!r} chooses several "
                        f"classes {sorted(set(chosen))}: keep one in Label Studio")
    if chosen[0] not in class_names:
        raise UserError(f"{source}: sample {sample_id!r} was labeled {chosen[0]!r}, which is not one of the classes "
                        f"{sorted(class_names)[:10]}")
    return chosen[0]


def _when(annotation: dict) -> tuple[datetime, int]:
    """When an annotation was last saved (its id breaks ties)."""
    stamp = annotation.get("updated_at") or annotation.get("created_at") or "1970-01-01T00:00:00Z"
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")), int(annotation.get("id") or 0)


def answers_from_tasks(tasks: Iterable[dict], class_names: Collection[str], sample_ids: Collection[str] | None = None,
                       *, conflicts: Conflicts = "error", source: str = "Label Studio") -> dict[str, Answer]:
    """{sample_id: class or SKIP} for the samples (all, or those in `sample_ids`) with a saved annotation."""
    if conflicts not in ("error", "latest", "skip"):
        raise ValueError(f"conflicts must be 'error', 'latest' or 'skip', not {conflicts!r}")
    wanted = None if sample_ids is None else {str(s) for s in sample_ids}
    annotations: dict[str, list[dict]] = defaultdict(list)
    for task in tasks:
        sid = (task.get("data") or {}).get("sample_id")
        if sid is not None and (wanted is None or str(sid) in wanted):
            annotations[str(sid)].extend(a for a in task.get("annotations") or [] if isinstance(a, dict))
    answers: dict[str, Answer] = {}
    disputed: list[str] = []
    for sid, anns in annotations.items():
        votes = [(a, _vote(a, sid, class_names, source)) for a in anns]
        labeled = [(a, v) for a, v in votes if v is not SKIP]
        deciding = [(a, v) for a, v in labeled if a.get("ground_truth")] or labeled
        classes = {v for _, v in deciding}
        if len(classes) == 1:
            answers[sid] = classes.pop()
        elif len(classes) > 1:
            if conflicts == "latest":
                answers[sid] = max(deciding, key=lambda av: _when(av[0]))[1]
            elif conflicts == "skip":
                answers[sid] = SKIP
            else:
                disputed.append(sid)
        elif votes:
            answers[sid] = SKIP
    if disputed:
        raise UserError(f"{source}: annotators disagree on {len(disputed)} sample(s) (sample_id {disputed[:5]}): mark "
                        "one annotation of each as ground truth in Label Studio, or delete the wrong ones")
    return answers


def _load(path: Path) -> list:
    """The export file's tasks, refused in one line when missing, empty, truncated or not a task list."""
    if not path.is_file():
        raise UserError(f"Label Studio export {path} not found")
    if path.stat().st_size == 0:
        raise UserError(f"Label Studio export {path} is empty: {EXPORT_HINT}")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))  # an editor's save may add a BOM
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"Label Studio export {path} is not complete JSON ({e}; truncated?): {EXPORT_HINT}") from None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise UserError(f"Label Studio export {path} is not a list of tasks: {EXPORT_HINT}")
    if not tasks:
        raise UserError(f"Label Studio export {path} holds no tasks (nothing was annotated when it was exported)")
    if not any("annotations" in t and "data" in t for t in tasks):
        raise UserError(f"Label Studio export {path} has no tasks with annotations (a JSON-MIN or CSV export?): "
                        f"{EXPORT_HINT}")
    return tasks


def read_export(path: str | os.PathLike, sample_ids: Collection[str], class_names: Collection[str], *,
                project_id: int | None = None, conflicts: Conflicts = "error") -> dict[str, Answer]:
    """The answers in a Label Studio JSON export file for the batch `sample_ids` (see `answers_from_tasks`)."""
    path = Path(path)
    tasks = _load(path)
    projects = sorted({t["project"] for t in tasks if isinstance(t.get("project"), int)})
    if project_id is not None and projects and projects != [project_id]:
        raise UserError(f"Label Studio export {path} is of project {', '.join(map(str, projects))}, not of project "
                        f"{project_id}: export project {project_id}")
    ids = [str(t["data"]["sample_id"]) for t in tasks if isinstance(t.get("data"), dict) and "sample_id" in t["data"]]
    if not ids:
        raise UserError(f"Label Studio export {path} holds {len(tasks)} task(s), none with a sample_id: it is not an "
                        "export of a project alimb filled")
    batch = {str(s) for s in sample_ids}
    if not batch.intersection(ids):
        raise UserError(f"Label Studio export {path} holds {len(ids)} task(s) of alimb (sample_id {sorted(ids)[:5]}, "
                        f"project {projects or '?'}) and none of this batch's {len(batch)} samples: another project's "
                        "or another round's export?")
    return answers_from_tasks(tasks, class_names, batch, conflicts=conflicts, source=f"Label Studio export {path}")
