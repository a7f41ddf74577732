"""A person answering in Label Studio, live (`oracle=label_studio`): each batch is pushed to the project as tasks with
the model's suggestions as predictions (and written to its round's folder, as `oracle=human` writes it), and the
finished annotations are pulled on the next invocation, or as they come with `oracle.wait=true`. The API token is
read from the environment only (`oracle.token_env`), never written into the config, records, logs or W&B."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Optional, Sequence, Union

from alimb.errors import UserError
from alimb.options import PRESENTATION, Doc, Place, PositiveNumber
from alimb.oracles.files import AcceptPartial, Answered, FileOracle, InitialLabels
from alimb.oracles.label_studio import LabelStudio, Project
from alimb.oracles.label_studio_answers import SKIP as LS_SKIP
from alimb.oracles.oracle import SKIP, ClassNames
from alimb.rounds import Batch

TOKEN_ENV = "LABEL_STUDIO_API_KEY"


class LabelStudioOracle(FileOracle):
    """A person answering in a Label Studio project (see the module docstring)."""

    def __init__(
        self,
        url: Annotated[str, PRESENTATION, Doc("the Label Studio server")] = "http://localhost:8080",
        project: Annotated[Union[int, str], PRESENTATION, Doc(
            "the project: its id, or its title (created with the class names when absent)")] = "alimb",
        token_env: Annotated[str, PRESENTATION, Doc(
            "the environment variable holding your personal access token (Label Studio: Account & Settings -> "
            "Personal Access Token); the token itself is never written anywhere")] = TOKEN_ENV,
        wait: Annotated[bool, PRESENTATION, Doc("wait for the batch's answers (polling, with a progress bar) and go "
                                                "on; false: stop, and the same command continues")] = False,
        poll_seconds: Annotated[PositiveNumber, PRESENTATION, Doc("seconds between two looks while waiting")] = 10,
        wait_minutes: Annotated[PositiveNumber, PRESENTATION, Doc("how long to wait before stopping (the same command "
                                                                  "continues)")] = 24 * 60,
        classes: ClassNames = None,
        initial_labels: InitialLabels = None,
        answered: Answered = None,
        accept_partial: AcceptPartial = False,
        document_root: Annotated[Optional[Place], PRESENTATION, Doc(
            "the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, above the images: tasks point there (a local-files "
            "storage is connected); null: images go inline")] = None,
    ):
        super().__init__(classes, initial_labels, answered, accept_partial, document_root)
        self.url, self.token_env, self.wait = url, token_env, wait
        self.project = int(project) if isinstance(project, str) and project.isdigit() else project
        self.poll_seconds, self.wait_minutes = float(poll_seconds), float(wait_minutes)
        self._client: LabelStudio | None = None
        self._project: Project | None = None

    def class_names(self, dataset: list[str] | None) -> list[str]:
        self._token()  # before the run writes anything
        return super().class_names(dataset)

    def _token(self) -> None:
        if not os.environ.get(self.token_env):
            raise UserError(f"oracle=label_studio needs your Label Studio personal access token in the environment "
                            f"variable {self.token_env} (Label Studio: Account & Settings -> Personal Access Token)")

    def _connect(self, classes: list[str], kind: str) -> tuple[LabelStudio, Project]:
        if self._client is None:
            self._token()
            self._client = LabelStudio.from_env(self.url, env=self.token_env)
        if self._project is None or list(self._project.class_names) != classes:
            self._project = self._client.ensure_project(self.project, classes, kind)
        return self._client, self._project

    def publish(self, batch: Batch, folder: Path, paths: Sequence[str] | None, classes: list[str]) -> None:
        """The batch's files, then its tasks in the project (a batch pushed twice is not duplicated)."""
        super().publish(batch, folder, paths, classes)
        kind = "image" if paths is not None else "text"
        client, project = self._connect(classes, kind)
        if kind == "image" and self.document_root:
            folders = sorted({str(Path(paths[i]).resolve().parent) for i in batch.indices})
            common = os.path.commonpath(folders) if folders else None
            root = str(Path(self.document_root).expanduser().resolve())
            for f in (folders if common in (None, root) else [common]):  # one storage above them all, if not the root
                client.connect_local_files(project, f)
        client.push_tasks(project, [self.task(batch, j, None if paths is None else paths[i], kind)
                                    for j, i in enumerate(batch.indices)])

    def collect(self, batch: Batch, folder: Path, classes: list[str]) -> dict[str, int]:
        """The batch's answers from the project (and from its folder's files, should a person use them)."""
        answers = super().collect(batch, folder, classes)
        client, project = self._connect(classes, _kind(folder))
        position = {name: i for i, name in enumerate(classes)}
        deadline = time.monotonic() + 60 * self.wait_minutes
        bar = None
        while True:
            for sample, given in client.pull_answers(project, batch.ids).items():
                answers.setdefault(sample, SKIP if given is LS_SKIP else position[given])
            missing = len(set(batch.ids) - set(answers))
            if not (self.wait and missing and time.monotonic() < deadline):
                break
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=len(batch.ids), desc=f"answers in Label Studio (round {batch.name})", unit="sample")
            bar.n = len(batch.ids) - missing
            bar.refresh()
            time.sleep(self.poll_seconds)
        if bar is not None:
            bar.close()
        return answers


def _kind(folder: Path) -> str:
    """The kind of tasks a batch's folder holds (its tasks.json, as published): image or text."""
    import json

    try:
        tasks = json.loads((folder / "tasks.json").read_text())
    except (OSError, ValueError):
        return "text"
    return "image" if tasks and "image" in tasks[0].get("data", {}) else "text"
