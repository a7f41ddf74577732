"""Run directories: who claims them, damage, the lock, failure markers, read-only reruns, standard JSON."""

import json
import logging

import pytest

from alimb import state
from alimb.errors import UserError
from alimb.loop import run_experiment
from alimb.state import RunDir
from alimb.schemes.svm import LinearSVMScheme
from alimb.sweep import RunLogFile
from tests.conftest import SMALL, without_timings


def snapshot(run_dir):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(run_dir.rglob("*"))}


def test_a_run_that_failed_before_its_first_iteration_does_not_claim_its_directory(make_cfg, tmp_path, monkeypatch):
    def broken_fit(self, *args, **kwargs):
        raise UserError("backbone weights missing")

    monkeypatch.setattr(LinearSVMScheme, "fit", broken_fit)
    with pytest.raises(UserError, match="weights missing"):
        run_experiment(make_cfg(*SMALL), tmp_path)
    assert not (tmp_path / "state.npz").exists() and not (tmp_path / "records.jsonl").exists()
    monkeypatch.undo()
    records = run_experiment(make_cfg(*SMALL, "scheme.C=2.0"), tmp_path)  # a corrected config just runs
    assert len(records) == 6 and json.loads((tmp_path / "config.json").read_text())["scheme"]["C"] == 2.0


@pytest.mark.parametrize(
    "damage,named",
    [
        (lambda d: (d / "config.json").write_text('{"seed": 0, "al'), "config.json"),
        (lambda d: (d / "state.npz").write_bytes((d / "state.npz").read_bytes()[:100]), "state.npz"),
        (lambda d: (d / "state.npz").write_bytes(b""), "state.npz"),
        (lambda d: (d / "records.jsonl").write_text(""), "records.jsonl"),  # a summary without records
        (lambda d: (d / "summary.json").write_text("{"), "summary.json"),
        (lambda d: (d / "config.json").unlink(), "config.json"),
    ],
)
def test_damaged_run_directories_name_the_file_and_overwrite_recovers(make_cfg, tmp_path, damage, named):
    reference = run_experiment(make_cfg(*SMALL), tmp_path / "reference")
    run_dir = tmp_path / "run"
    run_experiment(make_cfg(*SMALL, "al.iterations=3"), run_dir)  # a finished shorter run...
    if named == "state.npz" or named == "config.json":  # ...or, for these, one killed after iteration 3 of 6
        stored = json.loads((run_dir / "config.json").read_text())
        stored["al"]["iterations"] = 6
        (run_dir / "config.json").write_text(json.dumps(stored))
        (run_dir / "summary.json").unlink()
        cfg = make_cfg(*SMALL)
    else:
        cfg = make_cfg(*SMALL, "al.iterations=3")
    damage(run_dir)
    with pytest.raises(UserError) as err:
        run_experiment(cfg, run_dir)
    assert named in str(err.value) and "overwrite=true" in str(err.value) and "\n" not in str(err.value)
    recovered = run_experiment(make_cfg(*SMALL, "overwrite=true", *([] if cfg.al.iterations == 6 else ["al.iterations=3"])),
                               run_dir)
    assert without_timings(recovered) == without_timings(reference[:len(recovered)])
    assert (run_dir / "summary.json").exists() and len(RunDir(run_dir).records()) == len(recovered)


def test_rerunning_a_finished_run_writes_nothing(make_cfg, tmp_path):
    run_experiment(make_cfg(*SMALL), tmp_path)
    before = snapshot(tmp_path)
    run_experiment(make_cfg(*SMALL), tmp_path)
    assert snapshot(tmp_path) == before


def test_the_run_log_gives_up_quietly_where_it_cannot_be_written(tmp_path, capsys):
    handler = RunLogFile(str(tmp_path / "missing" / "alimb.log"))  # as in a read-only directory: open fails
    logger = logging.getLogger("alimb.test_run_log")
    logger.addHandler(handler)
    try:
        logger.warning("one")
        logger.warning("two")
    finally:
        logger.removeHandler(handler)
    assert capsys.readouterr().err == ""


def test_a_held_directory_is_refused_at_once_and_left_untouched(make_cfg, tmp_path):
    with state.RunDir(tmp_path).claim():
        before = snapshot(tmp_path)
        with pytest.raises(state.RunDirBusy, match=r"is in use by pid \d+ on .*; wait for it"):
            run_experiment(make_cfg(*SMALL), tmp_path)
        assert snapshot(tmp_path) == before
    assert len(run_experiment(make_cfg(*SMALL), tmp_path)) == 6  # released: the run proceeds


def test_records_are_standard_json_with_null_for_undefined_metrics(make_cfg, tmp_path):
    run_experiment(make_cfg(*SMALL, "imbalance=none"), tmp_path)  # a balanced pool has no minority class

    def refuse(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    records = [json.loads(line, parse_constant=refuse) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert all(r["minority_accuracy"] is None for r in records)
    json.loads((tmp_path / "summary.json").read_text(), parse_constant=refuse)


def test_a_failure_marker_never_sits_beside_a_summary(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    state.RunDir(tmp_path).mark_failed("boom")
    assert not (tmp_path / "error.txt").exists()
    (tmp_path / "summary.json").unlink()
    state.RunDir(tmp_path).mark_failed("boom\n")
    assert (tmp_path / "error.txt").read_text() == "boom\n"
