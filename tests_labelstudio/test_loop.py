"""alimb's loop against a real Label Studio server: a scripted annotator labels each batch through Label Studio's REST
API from the digits' true labels, and the run's selections and records equal those of the same run with
oracle=simulated. The API token appears in no file alimb writes."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from alimb.cli import rewrite_parts
from alimb.data.digits import load_digits
from alimb.loop import run_experiment
from alimb.run import CONFIG_DIR
from alimb.state import RunDir

TRUTH = {str(i): str(int(c)) for i, c in enumerate(load_digits().train_y)}


def cfg(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=rewrite_parts(list(overrides)))


def studio(server, title, *more):
    return ("oracle=label_studio", f"oracle.url={server.url}", f"oracle.project={title}", *more)


def answer_open_tasks(annotator, client, title) -> int:
    """Every task of the project without an annotation answered from the true labels; how many."""
    project = client.ensure_project(title, [str(c) for c in range(10)], "text")
    open_tasks = [s for s, t in annotator.tasks(project.id).items() if not t["annotations"]]
    annotator.annotate(project.id, {s: TRUTH[s] for s in open_tasks}, to_name="text")
    return len(open_tasks)


@pytest.mark.parametrize("af", ["dmcs_rand", "badge", "direct"])
def test_a_run_answered_in_label_studio_equals_the_simulated_run(server, token, client, annotator, title, tmp_path,
                                                                monkeypatch, af):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    overrides = ("al.iterations=3", f"acquisition={af}")
    simulated = run_experiment(cfg(*overrides), tmp_path / "simulated")
    run_dir = tmp_path / "person"
    for _ in range(80):
        run_experiment(cfg(*overrides, *studio(server, title)), run_dir)
        if (run_dir / "summary.json").exists():
            break
        assert answer_open_tasks(annotator, client, title) > 0, "a round asked for nothing"
    assert [r.as_simulated() for r in RunDir(run_dir).records()] == [r.as_simulated() for r in simulated]
    np.testing.assert_array_equal(np.load(run_dir / "labeled_round.npy"), np.load(tmp_path / "simulated/labeled_round.npy"))
    project = client.ensure_project(title, [str(c) for c in range(10)], "text")
    tasks = annotator.tasks(project.id)
    assert len(tasks) == 75  # no sample pushed twice
    first = set(json.loads((run_dir / "rounds/00/batch.json").read_text())["ids"])  # random: no model to suggest
    assert all(t["predictions"] for s, t in tasks.items() if s not in first) and len(first) == 25
    written = b"".join(p.read_bytes() for p in run_dir.rglob("*") if p.is_file())
    assert token.encode() not in written  # nor in config.json, records, logs, the batches' files


def test_waiting_for_answers_goes_on_as_they_come(server, token, client, annotator, title, tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    overrides = ("al.iterations=2", *studio(server, title, "oracle.wait=true", "oracle.poll_seconds=0.5",
                                            "oracle.wait_minutes=5"))
    done = []
    worker = threading.Thread(target=lambda: done.append(run_experiment(cfg(*overrides), tmp_path / "run")),
                              daemon=True)
    worker.start()
    answered, deadline = 0, time.monotonic() + 300  # a stuck run fails the test, never hangs the session
    while worker.is_alive() and answered < 50 and time.monotonic() < deadline:
        try:
            answered += answer_open_tasks(annotator, client, title)
        except Exception as err:  # noqa: BLE001 - the project may not exist yet
            last = err
        worker.join(0.5)
    worker.join(120)
    assert done and len(done[0]) == 2 and answered == 50, (answered, repr(locals().get("last")))  # one invocation, both rounds answered while it waited


def test_no_token_is_one_line(server, title, tmp_path, monkeypatch):
    from alimb.errors import UserError

    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(UserError, match=r"needs your Label Studio personal access token in the environment variable "
                                        r"LABEL_STUDIO_API_KEY"):
        run_experiment(cfg("al.iterations=2", *studio(server, title)), tmp_path / "run")


def test_images_reach_label_studio_through_its_local_files_storage(server, token, client, admin, annotator, title,
                                                                   tmp_path, monkeypatch):
    """An unlabeled image folder under the server's document root: tasks point at the files, the server serves
    them to the annotator, the suggestions are pre-selected; the answers train the next round."""
    from PIL import Image

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    folder = server.document_root / title
    colours = {"red": (220, 20, 20), "blue": (20, 20, 220)}
    truth = {}
    for name, rgb in colours.items():
        for i in range(12):
            path = folder / f"{name}_{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), tuple(min(255, c + 3 * i) for c in rgb)).save(path)
            truth[path.name] = name
    overrides = ("dataset=images", f"dataset.loader.root={folder}", "imbalance=none", "al.iterations=2",
                 "al.per_iteration=4", "backbone=pixels", "backbone.resolution=8", f"cache_dir={tmp_path / 'cache'}",
                 *studio(server, title, f"oracle.document_root={server.document_root}", "oracle.classes=[red,blue]"))
    run_experiment(cfg(*overrides), tmp_path / "run")
    project = client.ensure_project(title, ["red", "blue"], "image")
    tasks = annotator.tasks(project.id)
    assert len(tasks) == 4
    for task in tasks.values():
        assert task["data"]["image"].startswith("/data/local-files/?d=")
        assert admin.get(task["data"]["image"]).status_code == 200  # the annotator's browser gets the image
    annotator.annotate(project.id, {s: truth[s] for s in tasks}, to_name="image")
    run_experiment(cfg(*overrides), tmp_path / "run")
    tasks = annotator.tasks(project.id)
    second = [t for s, t in tasks.items() if not t["annotations"]]
    assert len(tasks) == 8 and len(second) == 4
    assert all(t["predictions"] and t["predictions"][0]["result"][0]["value"]["choices"][0] in colours for t in second)


def test_a_batch_saved_while_the_server_was_down_is_pushed_when_it_is_up(server, token, client, annotator, title,
                                                                         tmp_path, monkeypatch):
    from alimb.errors import UserError

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    overrides = ("al.iterations=2",)
    with pytest.raises(UserError):  # nothing listens there: the batch is saved, not pushed
        run_experiment(cfg(*overrides, "oracle=label_studio", "oracle.url=http://127.0.0.1:9", f"oracle.project={title}"),
                       tmp_path / "run")
    assert (tmp_path / "run/rounds/00/batch.json").exists()
    run_experiment(cfg(*overrides, *studio(server, title)), tmp_path / "run")  # the server's address now: pushed
    assert answer_open_tasks(annotator, client, title) == 25
    records = run_experiment(cfg(*overrides, *studio(server, title)), tmp_path / "run")
    assert len(records) == 1 and records[0].n_labeled == 25
