"""Answers from a real server: pulled by sample id, skips, partial batches, drafts, disagreements, and the same
answers read from the project's JSON export file."""

from __future__ import annotations

import json
import random

import pytest

from alimb.errors import UserError
from alimb.oracles.label_studio import SKIP, Suggestion, Task, read_export, write_offline
from tests_labelstudio.annotator import Annotator

CLASSES = ["airplane", "bird", "cat"]


def push(client, title, n=7, classes=CLASSES):
    """A project with n tasks pushed in shuffled order; the true labels by sample id (differing from the suggestions)."""
    project = client.ensure_project(title, classes)
    rng = random.Random(1)
    truth = {f"id-{rng.randrange(10**6):06d}": classes[i % len(classes)] for i in range(n)}
    order = rng.sample(sorted(truth), n)
    client.push_tasks(project, [Task(s, image=f"https://example.invalid/{s}.png",
                                     suggestion=Suggestion(classes[(classes.index(truth[s]) + 1) % len(classes)],
                                                           0.4, "r0")) for s in order])
    return project, truth


def test_answers_are_pulled_by_sample_id_with_skips_and_a_partial_batch(client, annotator, title):
    project, truth = push(client, title)
    ids = sorted(truth)
    done = {s: truth[s] for s in ids[:3]}
    skipped, unsure = ids[3], ids[4]
    annotator.annotate(project.id, {**dict(reversed(done.items())), skipped: None, unsure: None},
                       skip_after_choosing={unsure: truth[unsure]})  # clicked a class, then pressed Skip
    annotator.draft(project.id, ids[5], truth[ids[5]])  # started, not submitted: no answer yet
    assert client.pull_answers(project, truth) == {**done, skipped: SKIP, unsure: SKIP}
    assert client.pull_answers(project, ids[2:4]) == {ids[2]: done[ids[2]], skipped: SKIP}  # only those asked for
    annotator.annotate(project.id, {s: truth[s] for s in ids[5:]})
    assert client.pull_answers(project, truth) == {**truth, skipped: SKIP, unsure: SKIP}


def test_asking_for_samples_never_pushed_is_refused(client, title):
    project, truth = push(client, title, n=2)
    with pytest.raises(UserError, match=r"1 sample\(s\) asked for have no task in .*\['never-pushed'\]"):
        client.pull_answers(project, [*truth, "never-pushed"])


def test_disagreeing_annotators_stop_the_pull_until_resolved(server, client, annotator, title):
    project, truth = push(client, title, n=3)
    a, b, c = sorted(truth)
    other = server.sign_up(f"second-{title[-6:]}@example.com", "second-pass-1")
    second = Annotator(other)
    mine = annotator.annotate(project.id, {a: "cat", b: "bird", c: None})
    second.annotate(project.id, {a: "cat", b: "airplane", c: "bird"})
    # a agrees, c: a class beats a skip, b disagrees
    with pytest.raises(UserError, match=rf"annotators disagree on 1 sample\(s\) \(sample_id \['{b}'\]\): mark one "):
        client.pull_answers(project, truth)
    assert client.pull_answers(project, truth, conflicts="latest") == {a: "cat", b: "airplane", c: "bird"}
    assert client.pull_answers(project, truth, conflicts="skip") == {a: "cat", b: SKIP, c: "bird"}
    annotator.mark_ground_truth(mine[b])
    assert client.pull_answers(project, truth) == {a: "cat", b: "bird", c: "bird"}


def test_the_export_file_gives_the_same_answers(client, annotator, title, tmp_path):
    project, truth = push(client, title)
    ids = sorted(truth)
    annotator.annotate(project.id, {**{s: truth[s] for s in ids[:5]}, ids[5]: None})
    pulled = client.pull_answers(project, truth)
    path = client.export(project, tmp_path / "export.json")
    assert read_export(path, truth, CLASSES, project_id=project.id) == pulled
    by_hand = tmp_path / "by_hand.json"  # the file the Export page downloads
    by_hand.write_bytes(annotator.export(project.id))
    assert read_export(by_hand, truth, CLASSES) == pulled
    assert pulled[ids[5]] is SKIP and len(pulled) == 6
    # the skip as it is stored: a cancelled annotation with no result
    (skip,) = next(t for t in json.loads(by_hand.read_text()) if t["data"]["sample_id"] == ids[5])["annotations"]
    assert skip["was_cancelled"] is True and skip["result"] == []


def test_a_foreign_or_damaged_export_is_refused_in_one_line(client, annotator, title, tmp_path):
    project, truth = push(client, title, n=4)
    annotator.annotate(project.id, {s: truth[s] for s in sorted(truth)[:2]})
    path = client.export(project, tmp_path / "export.json")
    text = path.read_text()

    def refused(content: str | None = None, **kwargs) -> str:
        target = path
        if content is not None:
            target = tmp_path / "damaged.json"
            target.write_text(content)
        with pytest.raises(UserError) as e:
            read_export(target, kwargs.pop("batch", truth), CLASSES, **kwargs)
        assert "\n" not in str(e.value) and str(target) in str(e.value)
        return str(e.value)

    assert f"is of project {project.id}, not of project {project.id + 1000}" in refused(project_id=project.id + 1000)
    other_round = refused(batch=["id-x", "id-y"])
    assert "none of this batch's 2 samples" in other_round and f"project [{project.id}]" in other_round
    assert "is not complete JSON" in refused(text[: len(text) // 2])
    assert "is empty" in refused("")
    assert "holds no tasks" in refused("[]")
    assert "none with a sample_id" in refused(json.dumps([{"data": {"image": "x"}, "annotations": []}]))
    minimal = annotator.export(project.id, "JSON_MIN").decode()
    assert "a JSON-MIN or CSV export?" in refused(minimal)
    with pytest.raises(UserError, match="not found"):
        read_export(tmp_path / "absent.json", truth, CLASSES)


def test_files_written_for_import_by_hand_import_and_read_back(server, annotator, title, tmp_path):
    batch = [Task(f"s{i}", image=f"https://example.invalid/{i}.png", suggestion=Suggestion("cat", .3, "r2"))
             for i in range(4)]
    tasks_file, config_file = write_offline(tmp_path / "offline", batch, CLASSES)
    # what a user does in the web page: a new project with the config pasted in, the tasks file uploaded
    pid = annotator.create_project(title, config_file.read_text())
    assert annotator.import_file(pid, tasks_file.name, tasks_file.read_bytes()) == 4
    assert [t["predictions"][0]["model_version"] for t in annotator.tasks(pid).values()] == ["r2"] * 4
    annotator.annotate(pid, {"s0": "bird", "s1": None, "s2": "airplane"})
    export = tmp_path / "export.json"
    export.write_bytes(annotator.export(pid))
    assert read_export(export, [t.sample_id for t in batch], CLASSES) == {"s0": "bird", "s1": SKIP, "s2": "airplane"}
