"""A person in the loop through Label Studio's public REST API (plain `requests`, not the SDK).

Each round: `LabelStudio.from_env(url)` (the API token comes from the environment only, `LABEL_STUDIO_API_KEY`);
`ensure_project(title or id, class_names, kind)` creates the project or reuses it, adding class names that are new
since the last round to its labeling config; for images under the server's local-files document root,
`connect_local_files(project, folder)` once, and `local_files_url(path, document_root)` per image;
`push_tasks(project, tasks)` imports the batch with the model's suggestions (tasks already there, by sample id, are
not imported again, so a re-run after a crash duplicates nothing); on a later call, `pull_answers(project,
sample_ids)` returns {sample_id: class or SKIP} for the samples with a saved annotation. Without a server, the same
answers come from an export file (`read_export`), and `write_offline` leaves the files a user imports by hand.

Tokens: a personal access token (Label Studio >= 1.14, a JWT refresh token) is exchanged at `/api/token/refresh`
for an access token (5 minutes on 1.23) sent as `Authorization: Bearer ...`, exchanged again before it expires or
when the server answers 401; a legacy token is sent as `Authorization: Token ...` (refused by servers whose
organization disabled legacy tokens, the default since 1.14). The token appears in no message, log or repr.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import requests

from alimb.errors import UserError
from alimb.oracles.label_studio_answers import SKIP, Answer, Conflicts, Skip, answers_from_tasks, read_export
from alimb.oracles.label_studio_tasks import (INSTRUCTIONS, LOCAL_FILES, Kind, Suggestion, Task, check_class_names,
                                              config_classes, data_uri, labeling_config, local_files_url, task_json,
                                              with_classes, write_offline)

__all__ = ["SKIP", "Answer", "Conflicts", "Kind", "LabelStudio", "Project", "PushReport", "Skip", "Suggestion",
           "TOKEN_ENV", "Task", "data_uri", "labeling_config", "local_files_url", "read_export", "token_kind",
           "write_offline"]

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
TokenKind = Literal["personal", "access", "legacy"]
REFRESH_EARLY_S = 30  # exchange the access token this long before it expires (clock skew, slow requests)
IMPORT_CHUNK = 500  # tasks per import request


def token_kind(token: str) -> TokenKind:
    """Whether a token is a personal access token (JWT refresh), a JWT access token or a legacy token."""
    claims = _jwt_claims(token)
    if claims is None:
        return "legacy"
    return "access" if claims.get("token_type") == "access" else "personal"


def _jwt_claims(token: str) -> dict | None:
    """A JWT's payload (unverified), or None when the token is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


@dataclass(frozen=True)
class Project:
    """A Label Studio project alimb labels in: its id, title, kind of task and class names (in the config's order)."""

    id: int
    title: str
    kind: Kind
    class_names: tuple[str, ...]
    url: str  # the project's page, for messages to the user


@dataclass(frozen=True)
class PushReport:
    """What `push_tasks` did: tasks imported now, and tasks of the batch that were already in the project."""

    created: int
    existing: int


class LabelStudio:
    """A Label Studio server reached with one API token."""

    def __init__(self, url: str, token: str, *, token_env: str = TOKEN_ENV, timeout: float = 30.0,
                 page_size: int = 100, session: requests.Session | None = None):
        if not url.startswith(("http://", "https://")):
            raise UserError(f"the Label Studio URL must start with http:// or https://, not {url!r} (oracle.url)")
        if not token or not token.strip():
            raise UserError(f"no Label Studio API token: {_how_to_get_token(token_env)}")
        self.url = url.rstrip("/")
        self.timeout, self.page_size = timeout, page_size
        self._token, self._token_env = token.strip(), token_env
        self._kind: TokenKind = token_kind(self._token)
        self._access: str | None = None  # the current access token, exchanged from a personal access token
        self._access_expires = 0.0
        self._session = session or requests.Session()

    @classmethod
    def from_env(cls, url: str, env: str = TOKEN_ENV, **kwargs: Any) -> LabelStudio:
        """A client with the token in environment variable `env`."""
        return cls(url, os.environ.get(env, ""), token_env=env, **kwargs)

    def __repr__(self) -> str:
        return f"LabelStudio({self.url!r}, {self._kind} token)"

    # -- authentication and requests --------------------------------------------------------------------------------

    def _refused(self, detail: str) -> UserError:
        what = {"personal": "personal access token", "access": "access token", "legacy": "legacy API token"}[self._kind]
        if "legacy token authentication has been disabled" in detail:
            detail = "legacy tokens are disabled on this server"
        elif self._kind == "access":
            detail += "; access tokens expire after minutes, use the personal access token itself"
        return UserError(f"Label Studio at {self.url} refused the {what} in {self._token_env} ({self._scrub(detail)}): "
                         f"{_how_to_get_token(self._token_env)}")

    def _scrub(self, text: str) -> str:
        """The text without the token in it, on one line, at most 300 characters."""
        for secret in (self._token, self._access):
            if secret:
                text = text.replace(secret, "***")
        return " ".join(text.split())[:400]

    def _send(self, method: str, path: str, what: str, headers: dict, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, self.url + path, headers=headers, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise UserError(f"Label Studio at {self.url} did not answer within {self.timeout:g} s ({what})") from None
        except requests.RequestException as e:
            reason = "connection failed" if type(e) is requests.ConnectionError else type(e).__name__
            raise UserError(f"cannot reach Label Studio at {self.url} ({what}: {reason}): start the server or set "
                            "oracle.url to its address") from None

    def _refresh(self) -> None:
        """Exchange the personal access token for a new access token."""
        r = self._send("POST", "/api/token/refresh", "exchanging the personal access token", {},
                       json={"refresh": self._token})
        if r.status_code in (400, 401):
            raise self._refused(_detail(r))
        body = self._json(r, "exchanging the personal access token")
        if not isinstance(body, dict) or "access" not in body:
            raise UserError(f"{self.url} answered /api/token/refresh without an access token: is it Label Studio "
                            ">= 1.14? (oracle.url)")
        self._access = str(body["access"])
        claims = _jwt_claims(self._access) or {}
        self._access_expires = float(claims.get("exp", time.time() + 60))

    def _authorization(self) -> str:
        if self._kind == "legacy":
            return f"Token {self._token}"
        if self._kind == "access":
            return f"Bearer {self._token}"
        if self._access is None or time.time() > self._access_expires - REFRESH_EARLY_S:
            self._refresh()
        return f"Bearer {self._access}"

    def _json(self, r: requests.Response, what: str) -> Any:
        try:
            return r.json()
        except ValueError:
            raise UserError(f"{self.url} did not answer as Label Studio's API ({what}: HTTP {r.status_code}, "
                            f"{r.headers.get('content-type', 'no content type')}): check oracle.url") from None

    def _call(self, method: str, path: str, what: str, *, missing: str | None = None, **kwargs: Any) -> Any:
        """The JSON answer to an API request; one-line UserErrors for every failure (`missing`: the 404 message)."""
        for attempt in range(2):
            r = self._send(method, path, what, {"Authorization": self._authorization()}, **kwargs)
            if r.status_code == 401 and attempt == 0 and self._kind == "personal":
                self._access = None  # expired or revoked early: exchange once more, then give up
                continue
            break
        if r.status_code == 401:
            raise self._refused(_detail(r))
        if r.status_code == 404 and missing is not None:
            raise UserError(missing)
        if r.status_code == 204:
            return None
        body = self._json(r, what)
        if r.status_code >= 400:
            raise UserError(f"Label Studio at {self.url} refused {what} (HTTP {r.status_code}: "
                            f"{self._scrub(_detail(r))})")
        return body

    # -- the API alimb uses -----------------------------------------------------------------------------------------

    def whoami(self) -> dict:
        """The user the token belongs to (id, email, ...): checks the URL and the token."""
        return self._call("GET", "/api/current-user/whoami", "checking the token")

    def ensure_project(self, project: int | str, class_names: Sequence[str], kind: Kind = "image") -> Project:
        """Project `project` (an id, or a title: created when no project has it) with every class in `class_names`."""
        names = check_class_names(class_names)
        if isinstance(project, int):
            data = self._call("GET", f"/api/projects/{project}", "reading the project",
                              missing=f"Label Studio at {self.url} has no project {project} (oracle.project: an id "
                                      "from the project's address /projects/<id>, or a title to create one)")
        else:
            if not 3 <= len(project) <= 50:  # Label Studio's limits (PROJECT_TITLE_MIN_LEN, _MAX_LEN)
                raise UserError(f"a Label Studio project title has 3 to 50 characters, {project!r} has "
                                f"{len(project)} (oracle.project)")
            found = [p for p in self._pages("/api/projects", "finding the project", {"title": project})
                     if p.get("title") == project]
            if len(found) > 1:
                raise UserError(f"Label Studio at {self.url} has {len(found)} projects titled {project!r} "
                                f"(ids {sorted(p['id'] for p in found)}): set oracle.project to one id")
            data = found[0] if found else self._call("POST", "/api/projects", "creating the project", json={
                "title": project, "label_config": labeling_config(names, kind), "expert_instruction": INSTRUCTIONS,
                "show_instruction": True, "show_skip_button": True,
                "skip_queue": "IGNORE_SKIPPED"})  # a skip is an answer: the task does not come back
        have_kind, have = config_classes(data["label_config"])
        label = f"Label Studio project {data['id']} ({data['title']!r})"
        if have_kind != kind:
            raise UserError(f"{label} labels {have_kind}s, not {kind}s: give oracle.project another title")
        if extra := [c for c in have if c not in names]:
            raise UserError(f"{label} has classes this run does not ({extra[:10]}): give oracle.project another title")
        if missing := [c for c in names if c not in have]:
            data = self._call("PATCH", f"/api/projects/{data['id']}", "adding classes to the labeling config",
                              json={"label_config": with_classes(data["label_config"], missing)})
            _, have = config_classes(data["label_config"])
        return Project(int(data["id"]), data["title"], kind, tuple(have), f"{self.url}/projects/{data['id']}")

    def connect_local_files(self, project: Project, folder: str | os.PathLike) -> int:
        """Connect a local-files storage for `folder` (below the server's document root) to the project: its id."""
        path = os.path.abspath(folder)
        for storage in self._call("GET", "/api/storages/localfiles", "listing local-files storages",
                                  params={"project": project.id}):
            have = storage.get("path") or ""
            if path == have or path.startswith(have.rstrip("/") + "/"):
                return int(storage["id"])
        body = {"project": project.id, "path": path, "title": "alimb", "use_blob_urls": False, "regex_filter": ""}
        try:
            storage = self._call("POST", "/api/storages/localfiles", "connecting a local-files storage", json=body)
        except UserError as e:
            raise UserError(f"{e}; start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
                            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to a folder above this one") from None
        return int(storage["id"])

    def tasks(self, project: Project | int, *, full: bool = True) -> list[dict]:
        """Every task of the project, page by page (with annotations and predictions when `full`)."""
        pid = project.id if isinstance(project, Project) else project
        params: dict[str, Any] = {"project": pid, "query": json.dumps({"ordering": ["tasks:id"]})}
        params.update({"fields": "all"} if full else {"include": "id,data"})
        return list(self._pages("/api/tasks/", "listing the project's tasks", params, key="tasks"))

    def _pages(self, path: str, what: str, params: dict, key: str = "results"):
        """The items of a paginated list, page by page until the total is reached."""
        seen, page = 0, 1
        while True:
            body = self._call("GET", path, what, params={**params, "page": page, "page_size": self.page_size})
            items = body.get(key) or []
            yield from items
            seen += len(items)
            total = body.get("total", body.get("count", 0))
            if not items or seen >= total:
                return
            page += 1

    def push_tasks(self, project: Project, tasks: Sequence[Task]) -> PushReport:
        """Import the batch's tasks not yet in the project (by sample id); show this round's suggestions."""
        ids = [str(t.sample_id) for t in tasks]
        if len(set(ids)) < len(ids):
            raise ValueError("a batch names a sample twice")
        bodies = [task_json(t, project.kind, project.class_names) for t in tasks]  # everything checked before pushing
        have = {str((t.get("data") or {}).get("sample_id")) for t in self.tasks(project, full=False)}
        new = [b for b in bodies if b["data"]["sample_id"] not in have]
        local = [b["data"] for b in new if b["data"].get("image", "").startswith(LOCAL_FILES)]
        if local:  # one image tells whether the server serves the batch's files, before anything is imported
            self._check_served(local[0])
        for start in range(0, len(new), IMPORT_CHUNK):
            chunk = new[start:start + IMPORT_CHUNK]
            done = self._call("POST", f"/api/projects/{project.id}/import", "importing tasks", json=chunk)
            if "task_count" not in done and "import" in done:  # Enterprise editions import in a background job
                raise UserError(f"Label Studio at {self.url} imports tasks in the background (import "
                                f"{done['import']}), which this client does not follow: wait for them in "
                                f"{project.url}, then run again (tasks already there are not pushed twice)")
            if done.get("task_count") != len(chunk):
                raise UserError(f"Label Studio imported {done.get('task_count')} of {len(chunk)} tasks into "
                                f"{project.url}: look at the project")
        versions = [t.suggestion.model_version for t in tasks if t.suggestion is not None]
        if versions:  # Label Studio pre-selects only the predictions of the project's model_version
            self._call("PATCH", f"/api/projects/{project.id}", "selecting the suggestions' model version",
                       json={"model_version": versions[-1]})
        return PushReport(created=len(new), existing=len(bodies) - len(new))

    def _check_served(self, data: dict) -> None:
        """Refuse in one line when Label Studio would not show the task's local-files image to the annotator."""
        r = self._send("GET", data["image"], "reading an image", {"Authorization": self._authorization()},
                       stream=True)
        r.close()
        if r.status_code != 200:
            reason = ("local files serving is off: start it with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true"
                      if r.status_code == 403 else
                      "is oracle.document_root its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, and is the folder "
                      "connected as local-files storage (connect_local_files)?")
            raise UserError(f"Label Studio at {self.url} cannot serve the image of sample {data['sample_id']!r} "
                            f"({data['image']}: HTTP {r.status_code}): {reason}")

    def pull_answers(self, project: Project, sample_ids: Collection[str], *,
                     conflicts: Conflicts = "error") -> dict[str, Answer]:
        """{sample_id: class or SKIP} for the samples of `sample_ids` with a saved annotation (the rest wait)."""
        tasks = self.tasks(project, full=True)
        present = {str((t.get("data") or {}).get("sample_id")) for t in tasks}
        if absent := sorted({str(s) for s in sample_ids} - present):
            raise UserError(f"{len(absent)} sample(s) asked for have no task in {project.url} (sample_id "
                            f"{absent[:5]}): push the batch again (or were the tasks deleted?)")
        return answers_from_tasks(tasks, project.class_names, sample_ids, conflicts=conflicts,
                                  source=f"Label Studio project {project.id}")

    def export(self, project: Project | int, path: str | os.PathLike) -> Path:
        """Save the project's JSON export (its annotated tasks, as the Export page gives it) to `path`."""
        pid = project.id if isinstance(project, Project) else project
        tasks = self._call("GET", f"/api/projects/{pid}/export", "exporting the project",
                           params={"exportType": "JSON"}, missing=f"Label Studio at {self.url} has no project {pid}")
        path = Path(path)
        path.write_text(json.dumps(tasks), encoding="utf-8")
        return path


def _detail(r: requests.Response) -> str:
    """The server's reason for refusing a request, as one string."""
    try:
        body = r.json()
    except ValueError:
        return f"HTTP {r.status_code}"
    if not isinstance(body, dict):
        return str(body)
    errors = body.get("validation_errors")
    return "; ".join(_strings(errors)) if errors else str(body.get("detail") or body)


def _strings(value: Any) -> list[str]:
    """The non-empty strings nested in a JSON value (Label Studio's validation errors)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [str(value)] if value is not None and str(value).strip() else []


def _how_to_get_token(env: str) -> str:
    return (f"in Label Studio open Account & Settings, create a Personal Access Token, and set {env} to it "
            "(never in a config file)")
