"""Projects on a real server: created or reused by title or id, class names that grow, projects alimb must not use."""

from __future__ import annotations

import pytest

from alimb.errors import UserError
from alimb.oracles.label_studio import LabelStudio, Suggestion, Task, labeling_config


def test_a_project_is_created_once_and_reused_by_title_or_id(client, annotator, title):
    made = client.ensure_project(title, ["cat", "dog"])
    assert made.class_names == ("cat", "dog") and made.kind == "image" and made.title == title
    assert client.ensure_project(title, ["cat", "dog"]) == made
    assert client.ensure_project(made.id, ["cat", "dog"]) == made
    settings = annotator.browser.get(f"/api/projects/{made.id}").json()
    assert settings["show_skip_button"] and settings["skip_queue"] == "IGNORE_SKIPPED"
    assert "Skip" in settings["expert_instruction"]
    assert settings["parsed_label_config"]["label"]["labels"] == ["cat", "dog"]


def test_a_title_is_matched_whole_and_an_ambiguous_one_is_refused(client, annotator, title):
    longer = client.ensure_project(title + "-longer", ["a", "b"])
    exact = client.ensure_project(title, ["a", "b"])  # Label Studio's title filter matches substrings
    assert exact.id != longer.id
    annotator.create_project(title, labeling_config(["a", "b"]))
    with pytest.raises(UserError, match=f"2 projects titled '{title}' \\(ids \\[{exact.id}, \\d+\\]\\)"):
        client.ensure_project(title, ["a", "b"])


def test_a_missing_project_id_is_one_line(client):
    with pytest.raises(UserError, match=r"^Label Studio at http://127\.0\.0\.1:\d+ has no project 99999 "):
        client.ensure_project(99999, ["a", "b"])


def test_new_classes_are_added_while_labels_are_in_use(client, annotator, title):
    project = client.ensure_project(title, ["cat", "dog"])
    client.push_tasks(project, [Task("s1", image="https://example.invalid/1.png", suggestion=Suggestion("dog", .6, "r0"))])
    annotator.annotate(project.id, {"s1": "dog"})
    grown = client.ensure_project(title, ["cat", "dog", "bird & <fish>"])
    assert grown.id == project.id and grown.class_names == ("cat", "dog", "bird & <fish>")
    stored = annotator.browser.get(f"/api/projects/{project.id}").json()["parsed_label_config"]["label"]["labels"]
    assert stored == ["cat", "dog", "bird & <fish>"]
    client.push_tasks(grown, [Task("s2", image="https://example.invalid/2.png",
                                   suggestion=Suggestion("bird & <fish>", .4, "r1"))])
    annotator.annotate(project.id, {"s2": "bird & <fish>"})
    assert client.pull_answers(grown, ["s1", "s2"]) == {"s1": "dog", "s2": "bird & <fish>"}
    # the order a caller lists them in does not matter; the project keeps its own
    assert client.ensure_project(title, ["bird & <fish>", "dog", "cat"]).class_names == grown.class_names


def test_a_project_with_classes_the_run_lacks_or_another_kind_is_refused(client, title):
    client.ensure_project(title, ["cat", "dog"])
    with pytest.raises(UserError, match=r"has classes this run does not \(\['dog'\]\)"):
        client.ensure_project(title, ["cat"])
    with pytest.raises(UserError, match="labels images, not texts"):
        client.ensure_project(title, ["cat", "dog"], kind="text")


def test_a_project_alimb_did_not_make_is_refused(client, annotator, title):
    pid = annotator.create_project(title, '<View><Image name="img" value="$image"/>'
                                          '<RectangleLabels name="box" toName="img"><Label value="a"/>'
                                          '</RectangleLabels></View>')
    with pytest.raises(UserError, match='no <Choices name="label">: it is not one alimb made'):
        client.ensure_project(pid, ["a"])


def test_bad_class_names_or_titles_are_refused_before_any_request():
    client = LabelStudio("http://127.0.0.1:1", "never-sent")  # nothing listens there: any request would fail
    with pytest.raises(UserError, match="a Label Studio project title has 3 to 50 characters, 'x' has 1"):
        client.ensure_project("x", ["a", "b"])
    with pytest.raises(UserError, match="distinct"):
        client.ensure_project("xyz", ["a", "a"])
    with pytest.raises(UserError, match="non-empty"):
        client.ensure_project("xyz", ["a", " "])
