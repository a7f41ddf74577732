"""What alimb puts into Label Studio: the labeling config, tasks with the model's suggestions, files to import by hand.

A task's `data` carries alimb's `sample_id` (a string, the only key answers are matched by) and what the annotator
sees: `image`, a URL the browser opens (a file under the server's local-files document root, `local_files_url`, or
the file itself inline, `data_uri`), or for feature-only pools `text` (any text given, else empty; the header
shows the sample id in both kinds). The model's suggestion becomes a prediction (`model_version`, `score`, a
`choices` result), which Label Studio pre-selects for the annotator.

The labeling config is one `<Choices name="label">` over that object. "Unsure" is Label Studio's own Skip
button, which saves a cancelled annotation (`was_cancelled: true`): the project's instructions say so, and no
class name is reserved for it. Class names only ever grow: `with_classes` appends the missing ones to a project's
config and leaves everything else in it (hand edits included) as it was.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence
from urllib.parse import quote

from alimb.atomic import write_atomic
from alimb.errors import UserError

Kind = Literal["image", "text"]
FROM_NAME = "label"  # the Choices control; answers are read from results with this from_name
OBJECT_TAGS: dict[str, str] = {"image": "Image", "text": "Text"}  # kind -> the object tag named after the kind
INSTRUCTIONS = ("<p>Choose the class this sample belongs to. Not sure, or none of them? Press <b>Skip</b>: "
                "alimb counts the sample as skipped and does not ask for it again.</p>")
TASKS_FILE, CONFIG_FILE = "tasks.json", "labeling_config.xml"
LOCAL_FILES = "/data/local-files/?d="  # where Label Studio serves a file under its document root


@dataclass(frozen=True)
class Suggestion:
    """The model's guess for a sample, shown to the annotator as a pre-selected choice."""

    label: str
    score: float
    model_version: str


@dataclass(frozen=True)
class Task:
    """One sample to label: alimb's id, what the annotator sees, and the model's suggestion."""

    sample_id: str
    image: str | None = None  # a URL: local_files_url(...), data_uri(...) or any address the browser can open
    text: str | None = None
    suggestion: Suggestion | None = None


def check_class_names(class_names: Sequence[str]) -> list[str]:
    """The class names as a list, refused when one is empty or repeated."""
    names = [str(c) for c in class_names]
    if not names or any(not n.strip() for n in names):
        raise UserError(f"Label Studio needs non-empty class names, got {names[:10]}")
    if len(set(names)) < len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise UserError(f"class names must be distinct for Label Studio, repeated: {repeated[:10]}")
    return names


def labeling_config(class_names: Sequence[str], kind: Kind = "image") -> str:
    """The labeling config XML: the sample id as a header, the image or text, one choice per class."""
    if kind not in OBJECT_TAGS:
        raise UserError(f"Label Studio task kind must be one of {sorted(OBJECT_TAGS)}, not {kind!r}")
    view = ET.Element("View")
    ET.SubElement(view, "Header", value="Sample $sample_id")
    ET.SubElement(view, OBJECT_TAGS[kind], name=kind, value=f"${kind}")
    choices = ET.SubElement(view, "Choices", name=FROM_NAME, toName=kind, choice="single-radio", showInLine="true",
                            required="true")
    for name in check_class_names(class_names):
        ET.SubElement(choices, "Choice", value=name)
    ET.indent(view)
    return ET.tostring(view, encoding="unicode")


def _parse(config: str) -> tuple[ET.Element, ET.Element, Kind]:
    """The config's root, its `label` Choices element and the kind of object they label."""
    try:
        root = ET.fromstring(config, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    except ET.ParseError as e:
        raise UserError(f"the project's labeling config is not XML ({e})") from None
    choices = next((el for el in root.iter("Choices") if el.get("name") == FROM_NAME), None)
    if choices is None:
        raise UserError(f'the project\'s labeling config has no <Choices name="{FROM_NAME}">: it is not one alimb '
                        "made; give oracle.project a new title to let alimb create its own")
    target = choices.get("toName")
    kind = next((k for k, tag in OBJECT_TAGS.items()
                 for el in root.iter(tag) if el.get("name") == target == k), None)
    if kind is None:
        raise UserError(f'the project\'s <Choices name="{FROM_NAME}"> labels {target!r}, not alimb\'s '
                        f"<Image name=\"image\"> or <Text name=\"text\">: give oracle.project a new title")
    return root, choices, kind


def config_classes(config: str) -> tuple[Kind, list[str]]:
    """The kind of task and the class names (in order) of a labeling config alimb made."""
    _, choices, kind = _parse(config)
    return kind, [el.get("value", "") for el in choices.iter("Choice")]


def with_classes(config: str, class_names: Sequence[str]) -> str:
    """The config with the class names it lacks appended to its choices; the rest of it unchanged."""
    root, choices, _ = _parse(config)
    have = {el.get("value") for el in choices.iter("Choice")}
    for name in check_class_names(class_names):
        if name not in have:
            ET.SubElement(choices, "Choice", value=name)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def task_json(task: Task, kind: Kind, class_names: Sequence[str]) -> dict:
    """The task in Label Studio's import format, with the suggestion as a prediction."""
    data: dict[str, str] = {"sample_id": str(task.sample_id)}
    if kind == "image":
        if not task.image:
            raise UserError(f"sample {task.sample_id!r} has no image for the Label Studio image project")
        data["image"] = task.image
        if task.text is not None:
            data["text"] = task.text
    else:
        data["text"] = task.text or ""
    out: dict = {"data": data}
    if (s := task.suggestion) is not None:
        if s.label not in class_names:
            raise UserError(f"the suggestion {s.label!r} for sample {task.sample_id!r} is not one of the project's "
                            f"classes {list(class_names)[:10]}")
        result = {"from_name": FROM_NAME, "to_name": kind, "type": "choices", "value": {"choices": [s.label]}}
        out["predictions"] = [{"model_version": s.model_version, "score": float(s.score), "result": [result]}]
    return out


def local_files_url(path: str | os.PathLike, document_root: str | os.PathLike) -> str:
    """The address Label Studio serves a file under its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT at."""
    # abspath, not resolve: the server joins the relative path to its root without following links either
    full, root = Path(os.path.abspath(path)), Path(os.path.abspath(document_root))
    if root not in full.parents:
        raise UserError(f"image {full} is not under the Label Studio document root {root}: set oracle.document_root "
                        "to a folder above the images (the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
    return LOCAL_FILES + quote(full.relative_to(root).as_posix())


def data_uri(path: str | os.PathLike) -> str:
    """The image file itself as a `data:` URL, for a server that cannot read alimb's files (kept in its database)."""
    mime = mimetypes.guess_type(str(path))[0]
    if mime is None or not mime.startswith("image/"):
        raise UserError(f"{path} is not an image file Label Studio can show (by its name)")
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def write_offline(directory: str | os.PathLike, tasks: Sequence[Task], class_names: Sequence[str],
                  kind: Kind = "image") -> tuple[Path, Path]:
    """Write `tasks.json` (Label Studio's import format) and `labeling_config.xml` for importing by hand."""
    names = check_class_names(class_names)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tasks_path, config_path = out / TASKS_FILE, out / CONFIG_FILE
    write_atomic(tasks_path, json.dumps([task_json(t, kind, names) for t in tasks], indent=1) + "\n")
    write_atomic(config_path, labeling_config(names, kind) + "\n")
    return tasks_path, config_path
