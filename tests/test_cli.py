"""The `alimb` command as users run it (subprocesses): a multirun sweep, and bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

from alimb.sweep import variant
from tests.conftest import SMALL

V = variant(SMALL)  # the directory level that names the overrides of SMALL


def alimb(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alimb.run", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )


def test_multirun_writes_one_directory_per_job(tmp_path):
    proc = alimb(tmp_path, "-m", "acquisition=random,margin", "seed=0,1", *SMALL)
    assert proc.returncode == 0, proc.stderr
    summaries = sorted(p.relative_to(tmp_path / "outputs").parent.as_posix() for p in tmp_path.glob("outputs/**/summary.json"))
    assert summaries == [
        f"default/synthetic/exp0.75/{af}/cs_svm/{V}seed{s}" for af in ("margin", "random") for s in (0, 1)
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (("al.per_iteration=1000",), "alimb: error: budget 16 x 1000 = 16000 exceeds the pool"),
        (("al.per_iteration=0",), "alimb: error: config key al.per_iteration=0 is invalid"),
        (("imbalance.target_ir=5",), "alimb: error: imbalance cannot reach ir 5.0"),
        (("dataset=embeddings", "dataset.loader.path=missing.npz"), "alimb: error: embeddings file not found"),
        (("dataset=embeddings",), "alimb: error: missing required value: dataset.loader.path"),
    ],
)
def test_bad_input_is_one_line_and_a_failing_exit(tmp_path, args, message):
    proc = alimb(tmp_path, *args)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert not list(tmp_path.glob("outputs/**/summary.json")), "a failed run left a summary"


@pytest.mark.parametrize(
    "args,message",
    [
        (("acquisition=nope",), "no acquisition option named 'nope'; choose one of"),
        (("al.iteratoins=3",), "unknown config key al.iteratoins (no option of what is chosen there)"),
    ],
)
def test_unknown_options_are_reported_by_hydra(tmp_path, args, message):
    proc = alimb(tmp_path, *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_submitit_local_launcher_preset_runs_a_sweep(tmp_path):
    """The SLURM preset's local twin: same submitit launcher and config, jobs as local processes."""
    proc = alimb(tmp_path, "-m", "hydra/launcher=slurm_local", "acquisition=random,margin", *SMALL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list(tmp_path.glob(f"outputs/default/synthetic/exp0.75/*/cs_svm/{V}seed0/summary.json"))) == 2


def test_a_users_own_af_runs_from_their_own_package_and_config_dir(tmp_path):
    """docs/extending.md as written: an AF in the user's package, its YAML in their --config-dir, no edit to
    alimb; it runs alone and as DMCS's auxiliary AF."""
    import re

    doc = (Path(__file__).parent.parent / "docs/extending.md").read_text()
    python, yaml = re.findall(r"```(?:python|yaml)\n(.*?)```", doc, re.S)[:2]
    (tmp_path / "mypackage").mkdir()
    (tmp_path / "mypackage/__init__.py").write_text("")
    (tmp_path / "mypackage/afs.py").write_text(python)
    (tmp_path / "myconf/acquisition").mkdir(parents=True)
    (tmp_path / "myconf/acquisition/farthest.yaml").write_text(yaml)
    for n, choice in enumerate(("acquisition=farthest", "acquisition.auxiliary=farthest")):
        proc = subprocess.run(
            [sys.executable, "-m", "alimb.run", "--config-dir", "myconf", choice, *SMALL[:5], "al.iterations=2",
             "al.per_iteration=20", f"hydra.run.dir=run{n}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                           "PYTHONPATH": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / f"run{n}" / "summary.json").exists()


def test_a_slurm_job_uses_the_cpus_it_was_given(monkeypatch):
    """SLURM_CPUS_PER_TASK below torch's thread count sets it; unset, larger or not a number changes nothing."""
    import torch

    from alimb.devices import threads_for_this_job

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for value in (None, "2", "8", "two"):
            if value is None:
                monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
            else:
                monkeypatch.setenv("SLURM_CPUS_PER_TASK", value)
            assert threads_for_this_job() is None and torch.get_num_threads() == 2
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
        assert threads_for_this_job() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_ctrl_c_before_the_run_began_is_one_line(monkeypatch, capsys, tmp_path):
    """Ctrl-C (or `timeout`'s SIGTERM) while Hydra composes or the modules load: one line, exit 130."""
    import alimb.run

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(alimb.run, "main", interrupted)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "")  # cli() sets it for Hydra: undone after the test, as the later
    # subprocesses' one-line errors need
    monkeypatch.setattr(sys, "argv", ["alimb", f"hydra.run.dir={tmp_path / 'run'}"])
    with pytest.raises(SystemExit) as exit_:
        alimb.run.cli()
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "alimb: interrupted before the run began; run the same command to start it\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["acquisition=anchoral", "acquisition.subpool_size=40", "acquisition.subpool_size=1"],
     "acquisition.subpool_size is given twice (40 and 1); give it once"),
    (["acquisition=pcb", "acquisition.share='0.5'"],
     "config key acquisition.share='0.5' is invalid: Input should be a number, not a string (drop the quotes)"),
    (["acquisition=alfamix", "acquisition.alpha=learned", "acquisition.anchors=foundation_models"],
     "with alpha=learned set anchors=labeled or every_class"),
    (["acquisition=alfamix_learned", "acquisition.alpha_cap=1e-9"],
     "would take 1000000000 passes to reach 1; set alpha_cap to at least 0.001"),
])
def test_refused_before_anything_is_written_by_both_commands(tmp_path, args, message, capsys):
    """What the run would fail on in its first iteration (or silently misread) is refused up front, by `alimb` and
    by `alimb-options` alike."""
    from alimb.options_cli import main

    proc = subprocess.run([sys.executable, "-m", "alimb.run", f"hydra.run.dir={tmp_path / 'run'}", *args],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not any((tmp_path / "run" / f).exists() for f in ("records.jsonl", "config.json", "error.txt"))
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_a_part_renamed_by_a_dict_is_refused(tmp_path):
    """`acquisition.inner={name:margin}` would label entropy's picks margin: choosing by name is the way."""
    proc = subprocess.run([sys.executable, "-m", "alimb.run", "acquisition=anchoral", "acquisition.inner={name:margin}",
                           f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == (
        "alimb: error: acquisition.inner={name:margin} renames the part, not what runs there: choose it by name, "
        "acquisition.inner=margin (and acquisition.inner.OPTION=VALUE for its options)\n")


@pytest.mark.parametrize("args, message", [
    ([f"name={'x' * 300}"], "alimb: error: "),  # and "File name too long" (below)
    (["acquisition.within.device=mps"], "alimb: error: config key acquisition.within.device='mps' is invalid: torch "
                                        "sees no Apple GPU (MPS) here; use auto or cpu"),
    (["foo.bar=1"], "alimb: error: unknown config key foo.bar (no option"),
])
def test_more_bad_input_is_one_line(tmp_path, args, message):
    import torch

    if "mps" in args[0] and torch.backends.mps.is_available():
        pytest.skip("this machine has an Apple GPU")
    proc = subprocess.run([sys.executable, "-m", "alimb.run", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
    assert "name=" not in args[0] or "File name too long" in proc.stderr


def test_a_report_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "runs").mkdir()
    subprocess.run([sys.executable, "-m", "alimb.run", "al.iterations=2", f"hydra.run.dir={tmp_path / 'runs/a'}"],
                   capture_output=True, cwd=tmp_path, check=True)
    (tmp_path / "afile").write_text("")
    proc = subprocess.run([sys.executable, "-m", "alimb.report", "runs", "--out", "afile"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == ("alimb-report: error: cannot write the report in afile (File "
                                                    "exists: afile); choose another folder with --out DIR\n")
