"""Nothing lost, nothing silent: each input of issue #31's findings ends in a run or in one line naming what to change,
with nothing half-written and no completed run touched."""

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from alimb.errors import UserError
from alimb.loop import run_experiment
from alimb.schema import validate
from alimb.state import RunDir
from tests import image_archives
from tests.conftest import SMALL, without_timings

TINY_BACKBONE = ("backbone.weights=null", "backbone.resolution=32", "backbone.num_workers=0", "backbone.batch_size=8")


def snapshot(run_dir):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(run_dir.iterdir())
            if p.is_file() and not p.name.startswith(".alimb")}


def leftovers(run_dir):
    """Temporary files a write left behind."""
    return [p.name for p in run_dir.rglob("*") if ".tmp" in p.name]


# ---- a completed run is never lost to bad input; overwrite=true always reruns ----
@pytest.mark.parametrize("bad", ["al.per_iteration=100000", "imbalance=longtail", "imbalance.target_ir=9"])
def test_overwrite_with_bad_input_leaves_a_completed_run_whole(make_cfg, tmp_path, bad):
    run_experiment(make_cfg(*SMALL), tmp_path)
    before = snapshot(tmp_path)
    overrides = [*SMALL, "overwrite=true", bad] + (["imbalance.rho=1e9"] if bad == "imbalance=longtail" else [])
    with pytest.raises(UserError):
        run_experiment(make_cfg(*overrides), tmp_path)
    assert snapshot(tmp_path) == before and not leftovers(tmp_path)


def test_overwrite_with_bad_input_leaves_a_resumable_run_resumable(make_cfg, tmp_path):
    reference = run_experiment(make_cfg(*SMALL), tmp_path / "reference")
    with pytest.raises(KeyboardInterrupt):
        run_experiment(make_cfg(*SMALL, "logger._target_=tests.helpers.StopAfter", "+logger.iteration=2"), tmp_path / "r")
    with pytest.raises(UserError, match="exceeds the pool"):
        run_experiment(make_cfg(*SMALL, "overwrite=true", "al.per_iteration=100000"), tmp_path / "r")
    assert without_timings(run_experiment(make_cfg(*SMALL), tmp_path / "r")) == without_timings(reference)


def test_overwrite_true_reruns_a_completed_run_of_the_same_config(make_cfg, tmp_path, caplog):
    first = run_experiment(make_cfg(*SMALL), tmp_path)
    stamp = (tmp_path / "summary.json").stat().st_mtime_ns
    again = run_experiment(make_cfg(*SMALL, "overwrite=true"), tmp_path)
    assert (tmp_path / "summary.json").stat().st_mtime_ns != stamp  # run again, as the "nothing to do" line says
    assert without_timings(again) == without_timings(first)


# ---- classes silently emptied, results silently missing ----
@pytest.mark.parametrize("overrides", [
    ("imbalance=longtail", "imbalance.rho=200"),  # digits: the smallest class keeps int(148 / 200) = 0
    ("imbalance=longtail", "imbalance.rho=1e9"),
    ("dataset=synthetic", "dataset.loader.n_per_class=10", "imbalance=longtail", "imbalance.rho=50"),
    ("imbalance=counts", "imbalance.counts=[0,100,100,100,100,100,100,100,100,100]"),
])
def test_an_imbalance_that_empties_a_class_is_refused_before_any_work(make_cfg, tmp_path, overrides):
    with pytest.raises(UserError, match=r"^the imbalance leaves \d+ class\(es\) without a pool sample \(class \d+ keeps "
                                        r"0 of its \d+\); "):
        run_experiment(make_cfg(*overrides), tmp_path)
    assert not (tmp_path / "config.json").exists() and not (tmp_path / "records.jsonl").exists()


def test_a_long_tail_that_keeps_every_class_runs(make_cfg, tmp_path):
    """The boundary: at rho = n_max every class keeps int(n_max / rho) = 1."""
    records = run_experiment(make_cfg("imbalance=longtail", "imbalance.rho=148", "al.iterations=2",
                                      "al.per_iteration=5"), tmp_path)
    assert len(records) == 2 and min(json.loads((tmp_path / "summary.json").read_text())["pool"]["counts"]) >= 1


def _lists(tmp_path, train_lines, test_lines, encoding="utf-8", prefix=b""):
    root, train, test = image_archives.image_list(tmp_path / "lt", train_per_class=(6, 4, 3), test_per_class=2)
    if train_lines is not None:
        train.write_bytes(prefix + "\n".join(train_lines).encode(encoding))
    if test_lines is not None:
        test.write_bytes("\n".join(test_lines).encode(encoding))
    return root, train, test


def _image_list_cfg(make_cfg, root, train, test, *more):
    return make_cfg("dataset=image_list", f"dataset.loader.root={root}", f"dataset.loader.train_list={train}",
                    f"dataset.loader.test_list={test}", "imbalance=none", "al.iterations=2", "al.per_iteration=3",
                    *TINY_BACKBONE, *more)


def test_a_list_with_a_byte_order_mark_or_in_utf_16_keeps_its_first_image(make_cfg, tmp_path):
    from alimb.data.images import image_list

    root, train, test = image_archives.image_list(tmp_path / "lt", train_per_class=(6, 4, 3), test_per_class=2)
    lines = train.read_text().splitlines()
    for name, data in (("bom", b"\xef\xbb\xbf" + train.read_bytes()), ("utf16", train.read_text().encode("utf-16"))):
        listed = tmp_path / f"{name}.txt"
        listed.write_bytes(data)
        loaded = image_list(str(root), str(listed), str(test))
        assert len(loaded.train) == len(lines) and loaded.train.paths[0] == root / lines[0].rsplit(maxsplit=1)[0]


@pytest.mark.parametrize("line, message", [
    ("train/n000/img_0.JPEG ²", r"line 1 of .* is not 'relative/path label'"),
    ("train/n000/img_0.JPEG 1e29", r"line 1 of .* is not 'relative/path label'"),
    ("train/n000/img_0.JPEG -1", r"line 1 of .* is not 'relative/path label'"),
    ("train/n000/img_0.JPEG 2000000000", r"labels go up to 2000000000 but it lists 13 images"),
    ("train/n000/img_1.JPEG 2", r"lines 1 and 2 of .* both name train/n000/img_1.JPEG; list each image once"),
])
def test_bad_labels_and_repeated_paths_are_one_line(tmp_path, line, message):
    from alimb.data.images import image_list

    root, train, test = image_archives.image_list(tmp_path / "lt", train_per_class=(6, 4, 3), test_per_class=2)
    lines = train.read_text().splitlines()
    train.write_text("\n".join([line, *lines[1:]]) + "\n")
    with pytest.raises(UserError, match=message):
        image_list(str(root), str(train), str(test))


def test_a_list_not_in_utf_8_names_its_line_and_a_shared_image_is_refused(tmp_path):
    from alimb.data.images import image_list

    root, train, test = image_archives.image_list(tmp_path / "lt", train_per_class=(6, 4, 3), test_per_class=2)
    lines = train.read_text().splitlines()
    latin = tmp_path / "latin.txt"
    latin.write_bytes("\n".join([*lines[:3], "train/n000/caf\u00e9.JPEG 0"]).encode("latin-1"))
    with pytest.raises(UserError, match=r"^line 4 of .*latin.txt is not UTF-8 text \(byte 0xe9\); save the list as UTF-8"):
        image_list(str(root), str(latin), str(test))
    test.write_text(test.read_text() + lines[0] + "\n")
    with pytest.raises(UserError, match=r"in both .* e.g. .*img_0.JPEG; a test image must not be in the pool"):
        image_list(str(root), str(train), str(test))


def test_missing_test_images_or_a_class_without_readable_images_are_refused(make_cfg, tmp_path):
    root, train, test = image_archives.image_list(tmp_path / "lt", train_per_class=(6, 4, 3), test_per_class=2)
    shutil.rmtree(root / "test")
    with pytest.raises(UserError, match=r"^none of the 6 test images could be read"):
        run_experiment(_image_list_cfg(make_cfg, root, train, test, f"cache_dir={tmp_path / 'c1'}"), tmp_path / "a")
    assert not (tmp_path / "a" / "summary.json").exists()
    root, train, test = image_archives.image_list(tmp_path / "lt2", train_per_class=(6, 4, 3), test_per_class=2)
    for image in (root / "train" / "n002").iterdir():
        image.write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"^no training image of class '2' could be read"):
        run_experiment(_image_list_cfg(make_cfg, root, train, test, f"cache_dir={tmp_path / 'c2'}"), tmp_path / "b")


def test_a_damaged_cifar_archive_is_one_line(tmp_path):
    from alimb.data.cifar import load_cifar10

    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 100)
    with pytest.raises(UserError, match=r"^the archive .*cifar-10-python.tar.gz is damaged .*; delete it and download"):
        load_cifar10(str(tmp_path), download=False)


# ---- weights files ----
@pytest.mark.parametrize("backbone", ["resnet18", "dinov2_vits14"])
def test_a_truncated_weights_file_is_named_in_one_line_before_any_work(make_cfg, tmp_path, backbone):
    import torch

    path = tmp_path / ("w.pth" if backbone == "resnet18" else "model.safetensors")
    if backbone == "resnet18":
        torch.save({"w": torch.zeros(1000)}, path)
    else:
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(1000)}, str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    root = image_archives.image_folder(tmp_path / "imgs")
    cfg = make_cfg("dataset=image_folder", f"dataset.loader.root={root}", f"backbone={backbone}",
                   f"backbone.weights_path={path}")
    with pytest.raises(UserError, match=rf"^backbone weights {path} cannot be read .*; download it again"):
        validate(cfg)


def test_weights_of_another_model_are_named_in_one_line(tmp_path):
    import torch
    import torchvision

    from alimb.backbone import TorchvisionBackbone

    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(UserError, match=rf"^backbone weights {path} do not load into resnet18"):
        TorchvisionBackbone(weights_path=str(path), device="cpu").build()


# ---- a full disk ----
def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["records", "state", "lock"])
def test_a_full_disk_is_one_line_leaves_no_temporary_file_and_the_rerun_ends_identical(make_cfg, tmp_path, monkeypatch,
                                                                                        where):
    import pathlib

    from alimb import atomic, state

    reference = run_experiment(make_cfg(*SMALL), tmp_path / "reference")
    run_dir = tmp_path / "run"
    if where == "records":
        real_fsync = os.fsync
        monkeypatch.setattr(atomic.os, "fsync", lambda fd: _full() if os.readlink(f"/proc/self/fd/{fd}").endswith(
            "records.jsonl") else real_fsync(fd))
    elif where == "state":
        monkeypatch.setattr(state.np, "savez", _full)
    else:
        real = pathlib.Path.write_text
        monkeypatch.setattr(pathlib.Path, "write_text",
                            lambda self, *a, **k: _full() if self.name == ".alimb.holder" else real(self, *a, **k))
    with pytest.raises(UserError, match=r"^no space left to write .*(records.jsonl|state.npz|\.alimb\.holder) \(it needs "
                                        r"about [0-9.]+ (bytes|kB|MB), [0-9.]+ (kB|MB|GB) are free\); make room"):
        run_experiment(make_cfg(*SMALL), run_dir)
    assert not leftovers(run_dir)
    monkeypatch.undo()
    assert without_timings(run_experiment(make_cfg(*SMALL), run_dir)) == without_timings(reference)


# ---- the options listing and composition ----
@pytest.mark.parametrize("overrides", [
    ["acquisition=nope"], ["al.iteratoins=3"], ["al.iterations=abc"], ["acquisition.within=nope"], ["seed=-1"],
    ["acquisition=umcs_rand", "acquisition.within=galaxy"], ["scheme.C=-1"], ["dataset.loader.nope=1"],
    ["=3"], ["acquisition=dmcs_rand", "acquisition.within.lazy=maybe"],
])
def test_the_options_listing_refuses_bad_overrides_in_one_line(capsys, overrides):
    from alimb.options_cli import main

    assert main(overrides) == 2
    err = capsys.readouterr().err
    assert err.startswith("alimb-options: error: ") and err.count("\n") == 1, err


def test_a_part_chosen_by_name_takes_its_options_with_or_without_plus(make_cfg):
    from alimb.config import build, expand_parts

    for extra in ("acquisition.within.lazy=false", "+acquisition.within.lazy=false"):
        cfg = make_cfg("acquisition=umcs_rand", "acquisition.within=coreset", extra)
        expand_parts(cfg)
        validate(cfg)
        assert cfg.acquisition.within.name == "coreset" and cfg.acquisition.within.lazy is False
        assert build(cfg.acquisition).keywords["within"].keywords["lazy"] is False


def test_a_yaml_syntax_error_in_a_users_folder_is_one_line(tmp_path):
    (tmp_path / "myconf/acquisition").mkdir(parents=True)
    (tmp_path / "myconf/acquisition/mine.yaml").write_text("name: mine\n_target_: [unclosed\n")
    proc = subprocess.run([sys.executable, "-m", "alimb.run", "--config-dir", "myconf", "acquisition=mine"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("alimb: error: ") and "mine.yaml: line 3 is not valid YAML" in proc.stderr


@pytest.mark.parametrize("yaml", sorted(p.relative_to(p.parents[1]).as_posix() for p in
                                        __import__("pathlib").Path(__import__("alimb.run").run.CONFIG_DIR).glob("*/*.yaml")
                                        if p.parent.name in ("acquisition", "backbone", "scheme", "imbalance")))
def test_every_packaged_yaml_copied_into_a_users_folder_composes_as_the_original(tmp_path, yaml):
    """Under another name (a copy of the same name is the packaged one): filled with the same options."""
    from alimb.config import load_option
    from alimb.run import CONFIG_DIR

    group, name = yaml.rsplit("/", 1)
    (tmp_path / group).mkdir(parents=True)
    shutil.copy(os.path.join(CONFIG_DIR, yaml), tmp_path / group / f"copy_{name}")
    copied = load_option(group, f"copy_{name[:-5]}", tmp_path)
    assert copied == load_option(group, name[:-5])


# ---- moving the data and the cache resumes; changing the data does not ----
def test_moving_the_data_and_the_cache_between_two_halves_ends_as_an_uninterrupted_run(make_cfg, tmp_path):
    def cfg(root, cache, *more):
        return make_cfg("dataset=image_folder", f"dataset.loader.root={root}", "dataset.loader.test_per_class=2",
                        "imbalance=none", "al.iterations=4", "al.per_iteration=3", f"cache_dir={cache}", *TINY_BACKBONE,
                        *more)

    first = image_archives.image_folder(tmp_path / "data1" / "imgs")
    reference = run_experiment(cfg(first, tmp_path / "cache_ref"), tmp_path / "reference")
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg(first, tmp_path / "cache1", "logger._target_=tests.helpers.StopAfter", "+logger.iteration=1"),
                       tmp_path / "run")
    assert RunDir(tmp_path / "run").completed_iterations() == 2
    shutil.move(str(tmp_path / "data1"), str(tmp_path / "data2"))
    shutil.move(str(tmp_path / "cache1"), str(tmp_path / "cache2"))
    resumed = run_experiment(cfg(tmp_path / "data2" / "imgs", tmp_path / "cache2"), tmp_path / "run")
    assert without_timings(resumed) == without_timings(reference)
    np.testing.assert_array_equal(np.load(tmp_path / "run/labeled_round.npy"),
                                  np.load(tmp_path / "reference/labeled_round.npy"))

    # the same run over changed data: refused, and nothing of it touched
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg(tmp_path / "data2" / "imgs", tmp_path / "cache3", "logger._target_=tests.helpers.StopAfter",
                           "+logger.iteration=1"), tmp_path / "run2")
    image_archives.write_image(tmp_path / "data2" / "imgs" / "c0" / "0.png", 999)
    before = snapshot(tmp_path / "run2")
    with pytest.raises(UserError, match=r"holds a run over other data: the dataset's content changed"):
        run_experiment(cfg(tmp_path / "data2" / "imgs", tmp_path / "cache3"), tmp_path / "run2")
    assert snapshot(tmp_path / "run2") == before


# ---- what a red-team pass over these surfaces found (each input as it was tried) ----
def test_a_replacement_that_fails_in_its_first_iteration_puts_the_completed_run_back(make_cfg, tmp_path, monkeypatch):
    from alimb.schemes.svm import LinearSVMScheme

    run_experiment(make_cfg(*SMALL), tmp_path)
    before = snapshot(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("the new run's training fails")

    monkeypatch.setattr(LinearSVMScheme, "fit", broken)
    with pytest.raises(RuntimeError):
        run_experiment(make_cfg(*SMALL, "overwrite=true"), tmp_path)
    after = snapshot(tmp_path)
    assert {k: v[2] for k, v in after.items()} == {k: v[2] for k, v in before.items()}  # every file, byte for byte
    assert not (tmp_path / ".replaced").exists()


@pytest.mark.parametrize("kind", ["tensor", "pickle", "header_list", "missing_keys"])
def test_weights_files_that_pass_the_header_but_do_not_load_are_one_line(make_cfg, tmp_path, kind):
    import pickle
    import struct

    import torch

    from alimb.backbone import TimmBackbone, TorchvisionBackbone

    path = tmp_path / ("w.pth" if kind in ("tensor", "pickle") else "model.safetensors")
    if kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    else:
        header = [1, 2] if kind == "header_list" else {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
        text = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(text)) + text + b"\0" * 8)
    with pytest.raises(UserError, match=rf"^backbone weights {path} (do not load into|cannot be read)"):
        if kind == "header_list":
            TimmBackbone.check({"model": "resnet50", "weights": "tv_in1k", "weights_path": str(path)})
        elif kind == "missing_keys":
            TimmBackbone("resnet50", "tv_in1k", weights_path=str(path), device="cpu").build()
        else:
            TorchvisionBackbone(weights_path=str(path), device="cpu").build()


def _alimb(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "alimb.run", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.parametrize("args, message", [
    (("hydra.run.dir=/proc/nope",), r"^alimb: error: hydra.run.dir=/proc/nope: cannot make that folder"),
    (("--bogus",), r"^alimb: error: unknown flag --bogus"),
    (("name=..",), r"^alimb: error: config key name='\.\.' is invalid"),
    (("-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=0", "seed=0,1"),
     r"^alimb: error: hydra.launcher.n_jobs=0 runs nothing"),
    (("trainer.precision=16", "scheme=ft_th"), r"^alimb: error: config key trainer.precision='16' is invalid on CPUs"),
])
def test_command_lines_a_new_user_tried_are_one_line(tmp_path, args, message):
    proc = _alimb(tmp_path, "al.iterations=2", *args)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and re.match(message, proc.stderr), proc.stderr[-800:]


def test_a_users_file_named_as_alimbs_own_is_refused(tmp_path):
    (tmp_path / "myconf/dataset").mkdir(parents=True)
    (tmp_path / "myconf/dataset/digits.yaml").write_text("name: digits\nper_iteration: 7\n")
    proc = _alimb(tmp_path, "--config-dir", "myconf", "al.iterations=2")
    assert proc.returncode == 2 and "has the name of alimb's own dataset/digits, which is found first" in proc.stderr


def test_an_experiment_file_without_its_package_header_says_so(tmp_path):
    (tmp_path / "myconf/experiment").mkdir(parents=True)
    (tmp_path / "myconf/experiment/mine.yaml").write_text("al:\n  iterations: 2\n")
    proc = _alimb(tmp_path, "--config-dir", "myconf", "experiment=mine")
    assert proc.returncode == 2 and "first line must be `# @package _global_`" in proc.stderr


def test_sigterm_is_an_interruption_that_leaves_no_temporary_file(tmp_path):
    import signal

    from tests.helpers import ROOT, pause_after, wait_for

    flag = tmp_path / "paused"
    proc = subprocess.Popen([sys.executable, "-m", "alimb.run", *SMALL, "hydra.run.dir=run", *pause_after(2, flag)],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wait_for(flag, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted after iteration 3 of 6; run the same command to resume" in err
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("content, message", [
    (np.array([50.7] * 9 + [10.2]), r"float64; save a 1-D array of integers"),
    (np.arange(10).reshape(2, 5), r"2-D array"),
    ("\ufeff50\r\n40\r\n30\r\n20\r\n10\r\n50\r\n40\r\n30\r\n20\r\n-1\r\n", r"gives class 9 a negative count \(-1\)"),
])
def test_count_files_are_read_whole_or_refused(make_cfg, tmp_path, content, message):
    path = tmp_path / ("counts.npy" if isinstance(content, np.ndarray) else "counts.txt")
    np.save(path, content) if isinstance(content, np.ndarray) else path.write_text(content)
    with pytest.raises(UserError, match=message):
        run_experiment(make_cfg("imbalance=counts", f"imbalance.path={path}", "al.iterations=2"), tmp_path / "r")


@pytest.mark.parametrize("line, message", [
    ("./c0_0.png 0", r"lines \d+ and \d+ of .* both name"),
    ("sub/../c0_8.png 0", r"in both .*; a test image must not be in the pool"),
    ("../outside.png 0", r"outside dataset.loader.root"),
    ("c0_\x000.png 0", r"holds a NUL byte in its path"),
])
def test_list_paths_are_compared_as_the_files_they_name(tmp_path, line, message):
    from alimb.data.images import image_list

    images = tmp_path / "il"
    images.mkdir()
    (images / "sub").mkdir()
    train = tmp_path / "train.txt"
    train.write_text("".join(f"c{c}_{i}.png {c}\n" for c in range(3) for i in range(8)) + line + "\n")
    test = tmp_path / "test.txt"
    test.write_text("".join(f"c{c}_{i}.png {c}\n" for c in range(3) for i in range(8, 12)))
    with pytest.raises(UserError, match=message):
        image_list(str(images), str(train), str(test))


def test_a_test_folder_that_is_the_pool_is_refused(tmp_path):
    from alimb.data.images import image_folder

    root = image_archives.image_folder(tmp_path / "imgs")
    with pytest.raises(UserError, match=r"both in .* and in the test folder .*; a test image must not be in the pool"):
        image_folder(str(root), test_root=str(root))


def test_the_report_refuses_a_baseline_no_run_has(make_cfg, tmp_path):
    run_experiment(make_cfg(*SMALL), tmp_path / "runs" / "one")
    proc = subprocess.run([sys.executable, "-m", "alimb.report", str(tmp_path / "runs"), "--baseline", "nosuch"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no run of 'nosuch'" in proc.stderr and proc.stderr.count("\n") == 1


def test_a_folder_of_the_users_is_never_wiped(tmp_path, make_cfg):
    """`hydra.run.dir` naming a folder that holds files alimb did not write (a user's, an experiment's wandb/): refused
    in one line, nothing touched; overwrite=true sets them aside until the run completes an iteration."""
    from alimb.errors import UserError
    from alimb.loop import run_experiment

    folder = tmp_path / "mine"
    (folder / "wandb/run").mkdir(parents=True)
    (folder / "wandb/run/data").write_text("x")
    (folder / "records.jsonl").write_text("mine\n")
    (folder / "config.json").write_text('{"my": 1}')
    with pytest.raises(UserError, match=r"holds files alimb did not write \(records.jsonl, wandb\); choose an empty"):
        run_experiment(make_cfg("al.iterations=2"), folder)
    assert (folder / "wandb/run/data").read_text() == "x" and (folder / "records.jsonl").read_text() == "mine\n"
    assert (folder / "config.json").read_text() == '{"my": 1}'
    assert len(run_experiment(make_cfg("al.iterations=2", "overwrite=true"), folder)) == 2


def test_a_users_af_without_target_is_refused_before_a_finished_run_is_replaced(tmp_path):
    """Its first iteration is random and never calls the AF: the replacement would settle, then fail."""
    import subprocess
    import sys

    (tmp_path / "u/acquisition").mkdir(parents=True)
    (tmp_path / "u/acquisition/broken.yaml").write_text("name: broken\n")
    run = [sys.executable, "-m", "alimb.run", "al.iterations=2", f"hydra.run.dir={tmp_path / 'run'}"]
    assert subprocess.run(run, capture_output=True, cwd=tmp_path).returncode == 0
    proc = subprocess.run([*run, "--config-dir", "u", "acquisition=broken", "overwrite=true"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == ("alimb: error: acquisition names nothing to build (no _target_); "
                                                   "give its YAML `_target_: package.module.name`, as alimb's own in "
                                                   "conf/ do\n")
    assert (tmp_path / "run/summary.json").exists()


def test_a_completed_run_says_nothing_to_do_only_over_its_own_data(tmp_path, make_cfg):
    """imbalance=counts read from a file: the file changed after the run completed is other data, refused; the same
    file moved elsewhere is the same data, nothing to do."""
    from alimb.errors import UserError
    from alimb.loop import run_experiment

    counts = tmp_path / "c.txt"
    counts.write_text("30 20 10 5 5 5 5 5 5 5\n")
    base = ("al.iterations=2", "al.per_iteration=10", "imbalance=counts")
    first = run_experiment(make_cfg(*base, f"imbalance.path={counts}"), tmp_path / "run")
    moved = tmp_path / "elsewhere.txt"
    moved.write_text(counts.read_text())
    assert run_experiment(make_cfg(*base, f"imbalance.path={moved}"), tmp_path / "run") == first
    counts.write_text("5 5 5 5 5 5 5 10 20 30\n")
    with pytest.raises(UserError, match=r"holds a completed run over other data"):
        run_experiment(make_cfg(*base, f"imbalance.path={counts}"), tmp_path / "run")
