"""Pushing a batch to a real server: images served through local-files storage, suggestions as predictions,
feature-only tasks, and no duplicates when the same batch is pushed again."""

from __future__ import annotations

import random
from urllib.parse import quote

import pytest

from alimb.errors import UserError
from alimb.oracles.label_studio import SKIP, Suggestion, Task, data_uri, local_files_url


def image_batch(server, images, model_version="round0") -> list[Task]:
    """One task per image (its address under the server's document root, or a folder's), suggesting a or b."""
    root = getattr(server, "document_root", server)
    return [Task(f"pool-{i}", image=local_files_url(p, root),
                 suggestion=Suggestion("ab"[i % 2], 0.5 + i / 100, model_version)) for i, p in enumerate(images)]


def test_images_are_served_through_the_local_files_storage(server, client, annotator, title, images):
    project = client.ensure_project(title, ["a", "b"])
    storage = client.connect_local_files(project, images[0].parent)
    assert client.connect_local_files(project, images[0].parent) == storage  # connected once
    assert client.push_tasks(project, image_batch(server, images)).created == len(images)
    tasks = annotator.tasks(project.id)
    for i, path in enumerate(images):
        url = tasks[f"pool-{i}"]["data"]["image"]
        assert url == f"/data/local-files/?d={quote(title)}/" + (f"img_{i}.png" if i < 7 else "img%207%20%C3%A9.png")
        served = annotator.browser.get(url)
        assert served.status_code == 200 and served.content == path.read_bytes()
    # a folder of the document root that no storage covers is not served: the storage is what allows it
    other = server.document_root / f"{title}-unconnected"
    other.mkdir()
    (other / "x.png").write_bytes(images[0].read_bytes())
    assert annotator.browser.get(local_files_url(other / "x.png", server.document_root)).status_code == 404


def test_images_the_server_cannot_serve_are_refused_before_anything_is_pushed(server, client, title, images,
                                                                              tmp_path):
    project = client.ensure_project(title, ["a", "b"])
    with pytest.raises(UserError) as e:  # the folder is not connected as a storage yet
        client.push_tasks(project, image_batch(server, images))
    message = str(e.value)
    assert message.startswith(f"Label Studio at {server.url} cannot serve the image of sample 'pool-0' (")
    assert "HTTP 404" in message and "connect_local_files" in message and "\n" not in message
    client.connect_local_files(project, images[0].parent)
    wrong_root = image_batch(tmp_path, [tmp_path / p.name for p in images])  # oracle.document_root is not the server's
    with pytest.raises(UserError, match="is oracle.document_root its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"):
        client.push_tasks(project, wrong_root)
    assert client.tasks(project) == []
    assert client.push_tasks(project, image_batch(server, images)).created == len(images)


def test_a_folder_outside_the_document_root_is_refused_in_one_line(server, client, title, tmp_path):
    project = client.ensure_project(title, ["a", "b"])
    with pytest.raises(UserError) as e:
        client.connect_local_files(project, tmp_path)
    assert "must be a subdirectory of LOCAL_FILES_DOCUMENT_ROOT" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="is not under the Label Studio document root"):
        local_files_url(tmp_path / "x.png", server.document_root)


def test_suggestions_are_predictions_of_this_rounds_model_version(server, client, annotator, title, images):
    project = client.ensure_project(title, ["a", "b"])
    client.connect_local_files(project, images[0].parent)
    client.push_tasks(project, image_batch(server, images[:4], "round0"))
    client.push_tasks(project, image_batch(server, images, "round1")[4:])
    tasks = annotator.tasks(project.id)
    for i in range(len(images)):
        (prediction,) = tasks[f"pool-{i}"]["predictions"]
        assert prediction["model_version"] == ("round0" if i < 4 else "round1")
        assert prediction["score"] == pytest.approx(0.5 + i / 100)
        assert prediction["result"] == annotator.result("ab"[i % 2])
    # the labeling page pre-selects the predictions of the project's model version: this round's
    assert annotator.browser.get(f"/api/projects/{project.id}").json()["model_version"] == "round1"
    shown = annotator.browser.get(f"/api/tasks/{tasks['pool-5']['id']}/").json()["predictions"]
    assert [p["model_version"] for p in shown] == ["round1"]


def test_pushing_a_batch_again_duplicates_nothing(server, client, annotator, title, images):
    project = client.ensure_project(title, ["a", "b"])
    client.connect_local_files(project, images[0].parent)
    batch = image_batch(server, images)
    first = client.push_tasks(project, batch[:5])  # a run that crashed after pushing part of the batch
    assert (first.created, first.existing) == (5, 0)
    again = client.push_tasks(project, random.Random(0).sample(batch, len(batch)))  # the re-run pushes all of it
    assert (again.created, again.existing) == (3, 5)
    assert client.push_tasks(project, batch) == type(again)(created=0, existing=8)
    assert sorted(annotator.tasks(project.id)) == sorted(t.sample_id for t in batch)
    assert len(client.tasks(project)) == 8  # page by page (3 a page), no task listed twice


def test_a_batch_with_a_foreign_suggestion_is_refused_before_anything_is_pushed(server, client, title, images):
    project = client.ensure_project(title, ["a", "b"])
    client.connect_local_files(project, images[0].parent)
    batch = image_batch(server, images)
    batch[-1] = Task("pool-7", image=batch[-1].image, suggestion=Suggestion("zebra", 0.9, "r0"))
    with pytest.raises(UserError, match="the suggestion 'zebra' for sample 'pool-7' is not one of"):
        client.push_tasks(project, batch)
    with pytest.raises(UserError, match="sample 'x' has no image"):
        client.push_tasks(project, [Task("x", text="only text")])
    assert client.tasks(project) == []


def test_feature_only_tasks_show_the_sample_id_and_any_text(client, annotator, title):
    project = client.ensure_project(title, ["neg", "pos"], kind="text")
    assert project.kind == "text"
    client.push_tasks(project, [Task("17", text="a great film", suggestion=Suggestion("pos", .8, "r0")),
                                Task("18")])
    tasks = annotator.tasks(project.id)
    assert tasks["17"]["data"] == {"sample_id": "17", "text": "a great film"}
    assert tasks["18"]["data"] == {"sample_id": "18", "text": ""}
    assert tasks["17"]["predictions"][0]["result"][0]["to_name"] == "text"
    annotator.annotate(project.id, {"17": "pos", "18": None}, to_name="text")
    assert client.pull_answers(project, ["17", "18"]) == {"17": "pos", "18": SKIP}


def test_inline_images_need_no_storage(client, annotator, title, images):
    project = client.ensure_project(title, ["a", "b"])
    client.push_tasks(project, [Task("inline", image=data_uri(images[0]))])
    assert annotator.tasks(project.id)["inline"]["data"]["image"].startswith("data:image/png;base64,iVBOR")

