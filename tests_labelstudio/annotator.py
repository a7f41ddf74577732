"""A scripted annotator: a person who labels in Label Studio, logged in as a browser is, saving what the
labeling page saves (POST /api/tasks/<id>/annotations/), from the true labels.

It shares no code with the client under test (`alimb.oracles.label_studio`): it authenticates with a session
cookie, not a token, and finds tasks through the API itself.
"""

from __future__ import annotations

import json

from tests_labelstudio.server import Browser


class Annotator:
    """Annotates, skips or drafts tasks of a project by sample id."""

    def __init__(self, browser: Browser):
        self.browser = browser

    def tasks(self, project_id: int) -> dict[str, dict]:
        """The project's tasks (with annotations and predictions) by sample id."""
        out: dict[str, dict] = {}
        page = 1
        while True:
            r = self.browser.get("/api/tasks/", params={"project": project_id, "fields": "all", "page": page,
                                                         "page_size": 100})
            r.raise_for_status()
            body = r.json()
            for task in body["tasks"]:
                out[task["data"]["sample_id"]] = task
            if len(out) >= body["total"] or not body["tasks"]:
                return out
            page += 1

    @staticmethod
    def result(label: str, to_name: str = "image") -> list[dict]:
        return [{"from_name": "label", "to_name": to_name, "type": "choices", "value": {"choices": [label]}}]

    def annotate(self, project_id: int, answers: dict[str, str | None], to_name: str = "image",
                 skip_after_choosing: dict[str, str] | None = None) -> dict[str, int]:
        """Submit each sample's class (None: press Skip); the annotation ids by sample id.

        `skip_after_choosing`: samples whose class the annotator clicked before pressing Skip (the page then saves
        the clicked choice with the cancelled annotation)."""
        tasks = self.tasks(project_id)
        ids = {}
        for sample_id, label in answers.items():
            task_id = tasks[sample_id]["id"]
            if label is None:  # the Skip button: a cancelled annotation
                chosen = (skip_after_choosing or {}).get(sample_id)
                result = self.result(chosen, to_name) if chosen else []
                r = self.browser.post(f"/api/tasks/{task_id}/annotations/", params={"was_cancelled": 1},
                                      json={"result": result, "was_cancelled": True, "lead_time": 1.5})
            else:
                r = self.browser.post(f"/api/tasks/{task_id}/annotations/",
                                      json={"result": self.result(label, to_name), "lead_time": 2.5})
            assert r.status_code == 201, f"annotating {sample_id}: {r.status_code} {r.text[:300]}"
            ids[sample_id] = r.json()["id"]
        return ids

    def draft(self, project_id: int, sample_id: str, label: str) -> None:
        """Leave a draft (started, not submitted) on a sample's task."""
        task_id = self.tasks(project_id)[sample_id]["id"]
        r = self.browser.post(f"/api/tasks/{task_id}/drafts", json={"result": self.result(label), "lead_time": 1.0})
        assert r.status_code == 201, f"drafting {sample_id}: {r.status_code} {r.text[:300]}"

    def mark_ground_truth(self, annotation_id: int) -> None:
        r = self.browser.patch(f"/api/annotations/{annotation_id}/", json={"ground_truth": True})
        assert r.status_code == 200, f"ground truth {annotation_id}: {r.status_code} {r.text[:300]}"

    def export(self, project_id: int, export_type: str = "JSON") -> bytes:
        """The project's export file, as the Export page downloads it."""
        r = self.browser.get(f"/api/projects/{project_id}/export", params={"exportType": export_type})
        r.raise_for_status()
        return r.content

    def create_project(self, title: str, label_config: str) -> int:
        """A project made by hand in the web page (not by alimb)."""
        r = self.browser.post("/api/projects", json={"title": title, "label_config": label_config})
        assert r.status_code == 201, f"creating {title}: {r.status_code} {r.text[:300]}"
        return r.json()["id"]

    def import_file(self, project_id: int, name: str, content: bytes) -> int:
        """Upload a tasks file on the project's Import page; the number of tasks it made."""
        r = self.browser.post(f"/api/projects/{project_id}/import", files={"file": (name, content,
                                                                                    "application/json")})
        assert r.status_code == 201, f"importing {name}: {r.status_code} {r.text[:300]}"
        return json.loads(r.text)["task_count"]
