"""What a user sees: one line per AL iteration, no framework banners, job names in sweeps, README snippets that run."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import SMALL

README = Path(__file__).resolve().parent.parent / "README.md"
BANNERS = ("GPU available", "TPU available", "Tip:", "LeafSpec", "`Trainer.fit` stopped", "Traceback")


def test_fine_tuning_prints_one_line_per_al_iteration(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "alimb.run", "dataset=digits", "scheme=ft_th", "backbone.weights=null",
                           "scheme.epochs=2", "al.iterations=3"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert not [line for line in lines if any(b in line for b in BANNERS)], lines
    assert len([line for line in lines if "] - iteration " in line]) == 3
    assert len(lines) == 3 + 2, lines  # the pool line, one per iteration, the done line


def test_every_log_line_of_a_sweep_names_its_job(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "alimb.run", "-m", "seed=0,1", *SMALL], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    logged = [line for line in proc.stdout.splitlines() if line.startswith("[20") and "][HYDRA]" not in line]
    assert logged and all(re.match(r"\[[^]]+\]\[job [01]\]\[", line) for line in logged), logged[:3]


def test_the_readme_python_example_runs_as_written(capsys):
    code = re.search(r"```python\n(import numpy as np\nfrom alimb.acquisition.*?)```", README.read_text(), re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    indices, n_quota = capsys.readouterr().out.rsplit("]", 1)
    assert indices.startswith("[") and 0 <= int(n_quota) <= 50


def test_help_lists_the_launchers_and_stored_sweeps_of_the_config_tree():
    """Every launcher preset and stored sweep of the config tree, found here by walking its folders, is named in the
    help's footer (which lists them from the tree, not by hand)."""
    from alimb.run import CONFIG_DIR

    proc = subprocess.run([sys.executable, "-m", "alimb.run", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    footer = proc.stdout[proc.stdout.index("Sweeps:"):]
    for group in ("hydra/launcher", "experiment"):
        folder = Path(CONFIG_DIR) / group
        names = {str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml")}
        assert names and all(re.search(rf"(^|[ ,]){re.escape(n)}(,|\.|$)", footer, re.M) for n in names), (group, names)
    assert "alimb-report" in footer and "alimb-options" in footer


def test_the_readme_results_example_runs_as_written(make_cfg, tmp_path, monkeypatch, capsys):
    from alimb.loop import run_experiment

    for seed in (0, 1):
        run_experiment(make_cfg(*SMALL, f"seed={seed}"), tmp_path / f"outputs/digits_afs/run{seed}")
    code = re.search(r"```python\n(from alimb.results import load\n.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("df[df.iteration", "print(df[df.iteration") + ")", "README.md", "exec"), {})
    assert "dmcs_rand" in capsys.readouterr().out
