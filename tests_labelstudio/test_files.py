"""What needs no server: the labeling config, the answer rules on hand-made tasks, token kinds, URLs, offline files."""

from __future__ import annotations

import base64
import json

import pytest

from alimb.errors import UserError
from alimb.oracles.label_studio import (SKIP, Suggestion, Task, labeling_config, local_files_url, token_kind,
                                        write_offline)
from alimb.oracles.label_studio_answers import answers_from_tasks
from alimb.oracles.label_studio_tasks import config_classes, with_classes


def test_the_config_round_trips_names_xml_would_break():
    names = ["a & b", 'say "hi"', "<tag>", "été"]
    config = labeling_config(names, "text")
    assert config_classes(config) == ("text", names)
    assert '<Text name="text" value="$text" />' in config and '<Header value="Sample $sample_id" />' in config


def test_new_classes_are_appended_and_hand_edits_kept():
    config = ('<View><!-- our team\'s notes --><Header value="Look closely"/><Image name="image" value="$image"/>'
              '<Choices name="label" toName="image"><Choice value="b"/><Choice value="a"/></Choices></View>')
    grown = with_classes(config, ["a", "b", "c"])
    assert config_classes(grown) == ("image", ["b", "a", "c"])
    assert "<!-- our team's notes -->" in grown and '<Header value="Look closely" />' in grown
    assert with_classes(grown, ["c"]) == grown


@pytest.mark.parametrize("config, message", [
    ("<View><Image", "is not XML"),
    ('<View><Image name="image" value="$image"/><Choices name="cls" toName="image"/></View>', "no <Choices"),
    ('<View><Image name="img" value="$image"/><Choices name="label" toName="img"/></View>', "labels 'img'"),
])
def test_configs_alimb_did_not_make_are_refused(config, message):
    with pytest.raises(UserError, match=message):
        config_classes(config)


def annotation(id_, label=None, *, cancelled=False, updated="2026-01-01T00:00:00Z", truth=False):
    result = [] if label is None else [{"from_name": "label", "to_name": "image", "type": "choices",
                                        "value": {"choices": label if isinstance(label, list) else [label]}}]
    return {"id": id_, "result": result, "was_cancelled": cancelled, "updated_at": updated, "ground_truth": truth}


def task(sample_id, *annotations, **data):
    return {"data": {"sample_id": sample_id, **data} if sample_id is not None else data,
            "annotations": list(annotations)}


def test_answer_rules():
    tasks = [
        task("agree", annotation(1, "a"), annotation(2, "a")),
        task("class-beats-skip", annotation(3, cancelled=True), annotation(4, "b")),
        task("skip-with-choice", annotation(5, "a", cancelled=True)),
        task("submitted-without-choice", annotation(6)),
        task("pending"),
        task("split", annotation(7, "a")), task("split", annotation(8, "a")),  # one sample in two tasks
        task(None, annotation(9, "a")),  # a task not made by alimb
        task("not-asked", annotation(10, "a")),
    ]
    wanted = ["agree", "class-beats-skip", "skip-with-choice", "submitted-without-choice", "pending", "split"]
    assert answers_from_tasks(tasks, ["a", "b"], wanted) == {
        "agree": "a", "class-beats-skip": "b", "skip-with-choice": SKIP, "submitted-without-choice": SKIP,
        "split": "a"}
    assert "not-asked" in answers_from_tasks(tasks, ["a", "b"])


def test_disagreement():
    later_first = [task("s", annotation(2, "b", updated="2026-01-02T00:00:00Z"),
                        annotation(1, "a", updated="2026-01-03T00:00:00.5Z"))]
    with pytest.raises(UserError, match=r"disagree on 1 sample\(s\) \(sample_id \['s'\]\)"):
        answers_from_tasks(later_first, ["a", "b"])
    assert answers_from_tasks(later_first, ["a", "b"], conflicts="latest") == {"s": "a"}  # by time, not id
    assert answers_from_tasks(later_first, ["a", "b"], conflicts="skip") == {"s": SKIP}
    starred = [task("s", annotation(1, "a"), annotation(2, "b", truth=True))]
    assert answers_from_tasks(starred, ["a", "b"]) == {"s": "b"}


def test_answers_outside_the_classes_or_with_several_choices_are_refused():
    with pytest.raises(UserError, match="sample 's' was labeled 'zebra', which is not one of the classes"):
        answers_from_tasks([task("s", annotation(1, "zebra"))], ["a", "b"], source="here")
    with pytest.raises(UserError, match=r"chooses several classes \['a', 'b'\]"):
        answers_from_tasks([task("s", annotation(1, ["a", "b"]))], ["a", "b"])


def jwt(claims: dict) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{part}.c2lnbmF0dXJl"


def test_token_kinds():
    assert token_kind(jwt({"token_type": "refresh", "user_id": "1"})) == "personal"
    assert token_kind(jwt({"token_type": "access"})) == "access"
    assert token_kind("fa7b0c96633abec0446a22b823d4f8b68ae80c91") == "legacy"
    assert token_kind("a.b.c") == "legacy"  # three parts, but no JSON in the middle


def test_local_files_urls_are_relative_to_the_document_root_and_quoted(tmp_path):
    assert local_files_url(tmp_path / "pool" / "a b é.png", tmp_path) == "/data/local-files/?d=pool/a%20b%20%C3%A9.png"
    with pytest.raises(UserError, match="is not under the Label Studio document root"):
        local_files_url(tmp_path / "x.png", tmp_path / "pool")


def test_the_offline_files(tmp_path):
    batch = [Task("3", image="/data/local-files/?d=p/3.png", suggestion=Suggestion("b", 0.25, "round4")),
             Task("9", image="/data/local-files/?d=p/9.png")]
    tasks_file, config_file = write_offline(tmp_path / "round4", batch, ["a", "b"])
    assert json.loads(tasks_file.read_text()) == [
        {"data": {"sample_id": "3", "image": "/data/local-files/?d=p/3.png"},
         "predictions": [{"model_version": "round4", "score": 0.25, "result": [
             {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["b"]}}]}]},
        {"data": {"sample_id": "9", "image": "/data/local-files/?d=p/9.png"}}]
    assert config_classes(config_file.read_text()) == ("image", ["a", "b"])
