"""A person in the loop (oracle=human): one round per invocation, answers by sample id, never lost, never asked
twice, bad files in one line; a scripted person answering as the labels would gives the simulated run's records."""

import csv
import io
import json

import numpy as np
import pytest

from alimb.data.digits import load_digits
from alimb.errors import UserError
from alimb.loop import run_experiment
from alimb.state import RunDir

DIGITS = ("al.iterations=3",)


def open_csvs(run_dir):
    """The to_label.csv files with an empty label column."""
    out = []
    for f in sorted((run_dir / "rounds").glob("*/to_label.csv")):
        rows = list(csv.DictReader(io.StringIO(f.read_text())))
        if any(not r["label"] for r in rows):
            out.append((f, rows))
    return out


def write_rows(f, rows):
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    f.write_text(out.getvalue())


def answer(run_dir, truth, names=None, skip=()):
    """A scripted person: every open to_label.csv filled from `truth` (sample id -> class index)."""
    for f, rows in open_csvs(run_dir):
        for r in rows:
            if not r["label"]:
                r["label"] = "skip" if r["sample_id"] in skip else (names or str)(truth[r["sample_id"]])
        write_rows(f, rows)


def digits_truth():
    y = load_digits().train_y
    return {str(i): int(c) for i, c in enumerate(y)}


def until_done(make_cfg, run_dir, overrides, truth, limit=100, **kw):
    """Invocations, each followed by the person's answers, until the run completes; how many it took."""
    for n in range(1, limit + 1):
        run_experiment(make_cfg(*overrides), run_dir)
        if (run_dir / "summary.json").exists():
            return n
        answer(run_dir, truth, **kw)
    raise AssertionError("the run never completed")


@pytest.mark.parametrize("af", ["dmcs_rand", "badge", "direct"])
def test_a_person_answering_as_the_labels_gives_the_simulated_runs_records(make_cfg, tmp_path, af):
    """DIRECT reads labels within its batch: it asks in sub-rounds (its B1 annotators, a class's labels around its
    threshold), and its picks are the simulated run's all the same."""
    simulated = run_experiment(make_cfg(*DIGITS, f"acquisition={af}"), tmp_path / "simulated")
    n = until_done(make_cfg, tmp_path / "person", (*DIGITS, f"acquisition={af}", "oracle=human"), digits_truth())
    person = RunDir(tmp_path / "person").records()
    assert [r.as_simulated() for r in person] == [r.as_simulated() for r in RunDir(tmp_path / "simulated").records()]
    assert len(simulated) == 3
    np.testing.assert_array_equal(np.load(tmp_path / "person/labeled_round.npy"),
                                  np.load(tmp_path / "simulated/labeled_round.npy"))
    if af == "direct":
        assert n > 4 and person[1].oracle_info["sub_rounds"] > 0  # one invocation per sub-round
    else:
        assert n == 4  # one invocation per round, and the last completes


def test_features_without_labels_and_their_simulated_twin(make_cfg, tmp_path):
    """An .npz of features with ids and no labels: the person labels it; `oracle=simulated oracle.labels=FILE` is
    the same run with the answers known in advance."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), [60, 30, 15])
    x = rng.normal(size=(y.size, 8)) + 3 * np.eye(8)[y]
    ids = np.array([f"s{i:03d}" for i in range(y.size)])
    np.savez(tmp_path / "pool.npz", train_features=x, ids=ids)
    names = ["cat", "dog", "eel"]
    (tmp_path / "answers.csv").write_text("sample_id,label\n" + "".join(f"{i},{names[c]}\n" for i, c in zip(ids, y)))
    base = ("dataset=embeddings", f"dataset.loader.path={tmp_path / 'pool.npz'}", "imbalance=none", "al.iterations=3",
            "al.per_iteration=10", "oracle.classes=[cat,dog,eel]")
    twin = run_experiment(make_cfg(*base, f"oracle.labels={tmp_path / 'answers.csv'}"), tmp_path / "twin")
    until_done(make_cfg, tmp_path / "person", (*base, "oracle=human"), dict(zip(ids, y)), names=names.__getitem__)
    person = RunDir(tmp_path / "person").records()
    assert [r.as_simulated() for r in person] == [r.as_simulated() for r in RunDir(tmp_path / "twin").records()]
    assert twin[-1].accuracy != twin[-1].accuracy  # no test set: no accuracy...
    assert all(r.oracle_info["cv_balanced_accuracy"] is None or 0 <= r.oracle_info["cv_balanced_accuracy"] <= 1
               for r in person)  # ...an estimate instead
    assert person[-1].oracle_info["cv_balanced_accuracy"] is not None


def test_answers_survive_a_kill_and_no_sample_is_asked_twice(make_cfg, tmp_path, monkeypatch):
    from alimb.schemes.svm import LinearSVMScheme

    run_dir, truth = tmp_path / "run", digits_truth()
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    answer(run_dir, truth)
    real = LinearSVMScheme.fit

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies while training on the answers it read

    monkeypatch.setattr(LinearSVMScheme, "fit", killed)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    monkeypatch.setattr(LinearSVMScheme, "fit", real)
    (run_dir / "rounds/00/to_label.csv").unlink()  # the person's file is gone: the answers were stored already
    assert len((run_dir / "answers.jsonl").read_text().splitlines()) == 25
    until_done(make_cfg, run_dir, (*DIGITS, "oracle=human"), truth)
    asked = [s for f in (run_dir / "rounds").glob("*/batch.json") for s in json.loads(f.read_text())["ids"]]
    assert len(asked) == len(set(asked)) == 75
    reference = run_experiment(make_cfg(*DIGITS), tmp_path / "simulated")
    assert [r.as_simulated() for r in RunDir(run_dir).records()] == [r.as_simulated() for r in reference]


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows[0].update(label="seven"), r"row 2 of .*to_label.csv: 'seven' is not a class"),
    (lambda rows: rows.append({**rows[0], "sample_id": "99999", "label": "1"}),
     r"row 27 of .*: sample '99999' is not in the batch asked for"),
    (lambda rows: rows.append({**rows[0], "label": "1" if rows[0]["label"] != "1" else "2"}),
     r"row 27 of .*: sample '\d+' is answered twice, differently"),
])
def test_bad_answers_are_one_line_and_nothing_of_them_is_kept(make_cfg, tmp_path, edit, message):
    run_dir = tmp_path / "run"
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    answer(run_dir, digits_truth())
    f = run_dir / "rounds/00/to_label.csv"
    rows = list(csv.DictReader(io.StringIO(f.read_text())))
    edit(rows)
    write_rows(f, rows)
    with pytest.raises(UserError, match=message):
        run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    assert not (run_dir / "answers.jsonl").exists() and not (run_dir / "records.jsonl").exists()


@pytest.mark.parametrize("content, message", [
    ("", r"to_label.csv is empty"),
    ("sample_id,path,suggested,score,reason,label\n812,,,", r"row 2 of .* does not have the header's columns"),
    ("id,answer\n1,2\n", r"has no sample_id and label columns"),
])
def test_an_empty_truncated_or_foreign_file_is_one_line(make_cfg, tmp_path, content, message):
    run_dir = tmp_path / "run"
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    (run_dir / "rounds/00/to_label.csv").write_text(content)
    with pytest.raises(UserError, match=message):
        run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)


def test_an_export_of_another_project_is_refused(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    other = [{"id": 1, "project": 7, "data": {"sample_id": "nope"}, "annotations": []}]
    (run_dir / "rounds/00/export.json").write_text(json.dumps(other))
    with pytest.raises(UserError, match=r"none of this batch's 25 samples: another project's or another round's"):
        run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)


def test_a_batch_answered_in_part_waits_unless_partial_answers_are_accepted(make_cfg, tmp_path, capsys):
    run_dir, truth = tmp_path / "run", digits_truth()
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    f = run_dir / "rounds/00/to_label.csv"
    rows = list(csv.DictReader(io.StringIO(f.read_text())))
    for r in rows[:20]:
        r["label"] = str(truth[r["sample_id"]])
    write_rows(f, rows)
    capsys.readouterr()
    assert run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir) == []
    assert "label 5 sample(s) in" in capsys.readouterr().out  # the count still missing
    records = run_experiment(make_cfg(*DIGITS, "oracle=human", "oracle.accept_partial=true"), run_dir)
    assert records[0].n_labeled == 20 and records[0].oracle_info["returned"] == 5


def test_skipped_samples_leave_the_pool_and_are_never_asked_again(make_cfg, tmp_path):
    run_dir, truth = tmp_path / "run", digits_truth()
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    first = [r["sample_id"] for r in open_csvs(run_dir)[0][1]][:3]
    until_done(make_cfg, run_dir, (*DIGITS, "oracle=human"), truth, skip=set(first))
    records = RunDir(run_dir).records()
    assert records[0].n_labeled == 22 and records[0].oracle_info["skipped"] == 3
    asked = [s for f in (run_dir / "rounds").glob("*/batch.json") for s in json.loads(f.read_text())["ids"]]
    assert len(asked) == len(set(asked))


def test_classes_may_grow_between_rounds_and_never_shrink(make_cfg, tmp_path):
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), [40, 40, 40])
    np.savez(tmp_path / "pool.npz", train_features=rng.normal(size=(120, 4)) + 3 * np.eye(4)[y][:, :4])
    truth = {str(i): int(c) for i, c in enumerate(y)}
    base = ("dataset=embeddings", f"dataset.loader.path={tmp_path / 'pool.npz'}", "imbalance=none", "al.iterations=3",
            "al.per_iteration=10", "oracle=human")
    names = ["a", "b", "c"]
    run_experiment(make_cfg(*base, "oracle.classes=[a,b]"), tmp_path / "run")
    answer(tmp_path / "run", {k: min(v, 1) for k, v in truth.items()}, names=names.__getitem__)  # no c yet
    run_experiment(make_cfg(*base, "oracle.classes=[a,b]"), tmp_path / "run")
    answer(tmp_path / "run", truth, names=names.__getitem__)
    with pytest.raises(UserError, match=r"classes may only grow, new names appended at the end"):
        run_experiment(make_cfg(*base, "oracle.classes=[b,a,c]"), tmp_path / "run")
    records = run_experiment(make_cfg(*base, "oracle.classes=[a,b,c]"), tmp_path / "run")
    assert len(records[0].class_counts) == 2 and len(records[1].class_counts) == 3


def test_the_files_a_person_gets(make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    answer(run_dir, digits_truth())
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    rows = list(csv.DictReader(io.StringIO((run_dir / "rounds/01/to_label.csv").read_text())))
    assert len(rows) == 25 and {r["suggested"] for r in rows} <= {str(c) for c in range(10)}
    assert all(0 <= float(r["score"]) <= 1 for r in rows) and any(r["reason"].startswith("quota of minority class")
                                                                  for r in rows)
    tasks = json.loads((run_dir / "rounds/01/tasks.json").read_text())
    prediction = tasks[0]["predictions"][0]
    assert tasks[0]["data"]["sample_id"] == rows[0]["sample_id"]
    assert prediction["model_version"] == "alimb round 1" and 0 <= prediction["score"] <= 1
    assert prediction["result"][0]["value"]["choices"] == [rows[0]["suggested"]]
    assert "<Choices" in (run_dir / "rounds/01/labeling_config.xml").read_text()


def test_a_spreadsheets_semicolons_read_as_the_commas(make_cfg, tmp_path):
    """Excel where the comma is the decimal mark saves `;`-separated: the same answers, the same run."""
    truth = digits_truth()
    runs = {}
    for sep in (",", ";"):
        run_dir = tmp_path / f"run{sep == ';'}"
        run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
        f = run_dir / "rounds/00/to_label.csv"
        rows = list(csv.DictReader(io.StringIO(f.read_text())))
        f.write_text(sep.join(["sample_id", "label"]) + "\n" +
                     "\n".join(sep.join([r["sample_id"], str(truth[r["sample_id"]])]) for r in rows) + "\n")
        runs[sep] = run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    assert len(runs[","]) == 1 and [r.as_simulated() for r in runs[";"]] == [r.as_simulated() for r in runs[","]]


@pytest.mark.parametrize("damage", ["delete", "header only", "rows removed"])
def test_a_deleted_file_or_rows_are_written_again_for_what_is_still_to_label(make_cfg, tmp_path, capsys, damage):
    run_dir, truth = tmp_path / "run", digits_truth()
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    f = run_dir / "rounds/00/to_label.csv"
    rows = list(csv.DictReader(io.StringIO(f.read_text())))
    asked = [r["sample_id"] for r in rows]
    for r in rows[:10]:
        r["label"] = str(truth[r["sample_id"]])
    if damage == "delete":
        write_rows(f, rows)
        run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)  # the ten answers are stored
        f.unlink()
        (f.parent / "tasks.json").unlink()  # as a kill between saving the batch and publishing it leaves it
    elif damage == "header only":
        f.write_text(f.read_text().splitlines()[0] + "\n")
    else:
        write_rows(f, rows[:12])  # ten answered, two open, thirteen rows gone
    capsys.readouterr()
    assert run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir) == []
    out = capsys.readouterr().out
    todo = 25 if damage == "header only" else 15
    assert f"label {todo} sample(s) in" in out and "written again" in out
    again = list(csv.DictReader(io.StringIO(f.read_text())))
    assert sorted(r["sample_id"] for r in again if not r["label"]) == sorted(asked[25 - todo:] if todo == 15 else asked)
    assert len(json.loads((f.parent / "tasks.json").read_text())) == 25
    answer(run_dir, truth)
    assert len(run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)) == 1


def test_an_answer_changed_while_its_batch_is_open_counts_and_is_said(make_cfg, tmp_path, capsys):
    run_dir, truth = tmp_path / "run", digits_truth()
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    f = run_dir / "rounds/00/to_label.csv"
    rows = list(csv.DictReader(io.StringIO(f.read_text())))
    first = rows[0]["sample_id"]
    wrong = (truth[first] + 1) % 10
    for r in rows[:10]:
        r["label"] = str(truth[r["sample_id"]] if r["sample_id"] != first else wrong)
    write_rows(f, rows)
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)  # ten stored, the first one wrong
    for r in rows:
        r["label"] = str(truth[r["sample_id"]])  # corrected, and the rest answered
    write_rows(f, rows)
    capsys.readouterr()
    record = run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)[0]
    assert f"sample {first}: the answer changed from {wrong} to {truth[first]}" in capsys.readouterr().out
    expected = np.bincount([truth[r["sample_id"]] for r in rows], minlength=10)  # by hand: the true labels
    assert list(record.class_counts) == expected.tolist()


def test_a_persons_calls_and_file_locations_continue_the_same_run(make_cfg):
    """`oracle.accept_partial`, where the initial answers or the images' document root are: the person's calls and
    places, not what the run computes; switching them keeps the run's identity (its directory, its resume)."""
    from alimb.identity import identity, resolved

    base = (*DIGITS, "oracle=human")
    for switch in ("oracle.accept_partial=true", "oracle.document_root=/somewhere", "oracle.initial_labels=a.csv"):
        assert identity(resolved(make_cfg(*base, switch))) == identity(resolved(make_cfg(*base)))
    assert identity(resolved(make_cfg(*base, "acquisition=badge"))) != identity(resolved(make_cfg(*base)))


def test_an_answer_changed_after_it_was_used_is_said_and_stays(make_cfg, tmp_path, capsys):
    run_dir, truth = tmp_path / "run", digits_truth()
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    answer(run_dir, truth)
    first = run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)[0]  # round 1 trained on them
    f = run_dir / "rounds/00/to_label.csv"
    rows = list(csv.DictReader(io.StringIO(f.read_text())))
    sample, was = rows[3]["sample_id"], rows[3]["label"]
    rows[3]["label"] = "skip"
    write_rows(f, rows)
    capsys.readouterr()
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    out = capsys.readouterr().out
    assert f"changes 1 answer(s) already used (sample {sample}: {was} -> skip); they stay as first read" in out
    assert RunDir(run_dir).records()[0] == first


def test_classes_differing_only_in_case_are_refused(make_cfg, tmp_path):
    with pytest.raises(UserError, match=r"oracle.classes names Cat and cat, which differ only in case"):
        run_experiment(make_cfg(*DIGITS, "oracle=human", "oracle.classes=[cat,Cat,dog]"), tmp_path / "run")


def test_overwrite_starts_again_with_reordered_classes_and_keeps_the_answers(make_cfg, tmp_path):
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(2), [40, 40])
    np.savez(tmp_path / "pool.npz", train_features=rng.normal(size=(80, 4)) + 3 * np.eye(4)[y])
    base = ("dataset=embeddings", f"dataset.loader.path={tmp_path / 'pool.npz'}", "imbalance=none", "al.iterations=2",
            "al.per_iteration=10", "oracle=human")
    names = ["a", "b"]
    run_dir = tmp_path / "run"
    run_experiment(make_cfg(*base, "oracle.classes=[a,b]"), run_dir)
    answer(run_dir, {str(i): int(c) for i, c in enumerate(y)}, names=names.__getitem__)
    run_experiment(make_cfg(*base, "oracle.classes=[a,b]"), run_dir)  # round 1 trained, round 2 asked
    with pytest.raises(UserError, match=r"classes may only grow.*pass overwrite=true to start the run again"):
        run_experiment(make_cfg(*base, "oracle.classes=[b,a]"), run_dir)
    records = run_experiment(make_cfg(*base, "oracle.classes=[b,a]", "overwrite=true"), run_dir)
    counts = np.bincount(y[[int(s) for s in json.loads((run_dir / "rounds/00/batch.json").read_text())["selection"]
                                                     ["indices"]]], minlength=2)
    assert len(records) == 1 and list(records[0].class_counts) == [counts[1], counts[0]]  # the answers, by name
    with pytest.raises(UserError, match=r"answers of class 'a', which oracle.classes \['b', 'c'\] lacks"):
        run_experiment(make_cfg(*base, "oracle.classes=[b,c]", "overwrite=true"), run_dir)


def export_of(run_dir, truth, from_name="label"):
    """A Label Studio JSON export of round 0's batch, each task answered from `truth` by a control `from_name`."""
    ids = json.loads((run_dir / "rounds/00/batch.json").read_text())["ids"]
    return [{"id": n, "project": 1, "data": {"sample_id": s}, "annotations": [
        {"id": n, "was_cancelled": False, "result": [{"from_name": from_name, "to_name": "text", "type": "choices",
                                                      "value": {"choices": [str(truth[s])]}}]}]}
            for n, s in enumerate(ids)]


def test_an_export_saved_with_a_bom_is_read(make_cfg, tmp_path):
    run_dir, truth = tmp_path / "run", digits_truth()
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    (run_dir / "rounds/00/export.json").write_text("\ufeff" + json.dumps(export_of(run_dir, truth)), encoding="utf-8")
    record = run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)[0]
    ids = json.loads((run_dir / "rounds/00/batch.json").read_text())["ids"]
    assert list(record.class_counts) == np.bincount([truth[s] for s in ids], minlength=10).tolist()


def test_an_export_answered_through_another_control_is_refused_not_skipped(make_cfg, tmp_path):
    """A person's own labeling config names its choices otherwise: their classes are not read as skips."""
    run_dir, truth = tmp_path / "run", digits_truth()
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    (run_dir / "rounds/00/export.json").write_text(json.dumps(export_of(run_dir, truth, from_name="digit")))
    with pytest.raises(UserError, match=r"answers with the control 'digit', not 'label'"):
        run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    assert not (run_dir / "answers.jsonl").exists()


@pytest.mark.parametrize("group, option", [("dataset=images", "dataset.loader.test_root"),
                                           ("oracle=simulated", "oracle.labels")])
def test_an_optional_place_is_where_not_what(make_cfg, group, option):
    """`Optional[Place]` options (a labeled test folder, the simulated twin's answers file) are places like any other:
    moving them keeps the run's identity, as `data_dir` does (their content is the fingerprint's)."""
    from alimb.identity import identity, resolved

    a, b = (identity(resolved(make_cfg(group, f"{option}={where}"))) for where in ("/here", "/there"))
    assert a == b and identity(resolved(make_cfg(group, "seed=1"))) != a


def test_an_id_with_spaces_around_it_is_answered_as_written(make_cfg, tmp_path):
    """A file named ' lead.png': its row, as alimb wrote it, is its answer."""
    from PIL import Image

    root = tmp_path / "images"
    root.mkdir()
    names = [" lead.png", *(f"img{i}.png" for i in range(9))]
    for i, name in enumerate(names):
        Image.new("RGB", (8, 8), (25 * i, 0, 0)).save(root / name)
    base = ("dataset=images", f"dataset.loader.root={root}", "imbalance=none", "al.iterations=1",
            "al.per_iteration=10", "backbone=pixels", "backbone.resolution=4", f"cache_dir={tmp_path / 'cache'}",
            "oracle=human", "oracle.classes=[a,b]")
    run_experiment(make_cfg(*base), tmp_path / "run")
    f = tmp_path / "run/rounds/00/to_label.csv"
    rows = list(csv.DictReader(io.StringIO(f.read_text())))
    assert " lead.png" in {r["sample_id"] for r in rows}
    for j, r in enumerate(rows):
        r["label"] = "ab"[j % 2]
    write_rows(f, rows)
    records = run_experiment(make_cfg(*base), tmp_path / "run")
    assert records[0].n_labeled == 10


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "answers.jsonl").unlink(), r"answers.jsonl lacks the answer to sample '\d+', which a round"),
    (lambda run: (run / "classes.json").write_text('["0", "1"'), r"classes.json is damaged"),
])
def test_a_damaged_answers_or_classes_file_is_one_line_and_overwrite_starts_again(make_cfg, tmp_path, damage,
                                                                                   message):
    run_dir, truth = tmp_path / "run", digits_truth()
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    answer(run_dir, truth)
    run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)  # round 1 trained, round 2 asked
    damage(run_dir)
    with pytest.raises(UserError, match=message):
        run_experiment(make_cfg(*DIGITS, "oracle=human"), run_dir)
    run_experiment(make_cfg(*DIGITS, "oracle=human", "overwrite=true"), run_dir)
    answer(run_dir, truth)
    until_done(make_cfg, run_dir, (*DIGITS, "oracle=human"), truth)
    reference = run_experiment(make_cfg(*DIGITS), tmp_path / "simulated")
    assert [r.as_simulated() for r in RunDir(run_dir).records()] == [r.as_simulated() for r in reference]


def test_more_rounds_reuse_a_finished_runs_answers_and_ask_only_the_new_ones(make_cfg, tmp_path, capsys):
    truth = digits_truth()
    first = tmp_path / "first"
    until_done(make_cfg, first, ("al.iterations=2", "oracle=human"), truth)
    assert "oracle.answered=" in capsys.readouterr().out  # the done line says how to go on
    more = ("al.iterations=3", "oracle=human", f"oracle.answered={first / 'answers.jsonl'}")
    run_experiment(make_cfg(*more), tmp_path / "more")
    assert len(RunDir(tmp_path / "more").records()) == 2  # the two rounds answered before: replayed, not asked
    assert [f.parent.name for f in (tmp_path / "more/rounds").glob("*/to_label.csv")] == ["02"]
    until_done(make_cfg, tmp_path / "more", more, truth)
    reference = run_experiment(make_cfg("al.iterations=3"), tmp_path / "simulated")
    assert [r.as_simulated() for r in RunDir(tmp_path / "more").records()] == [r.as_simulated() for r in reference]
