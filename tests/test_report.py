"""A sweep with the joblib launcher and offline W&B, then `alimb-report` on it."""

import csv
import json
import os
import subprocess
import sys

import numpy as np

from alimb.state import RunDir
from tests import wandb_offline
from alimb.sweep import variant
from tests.conftest import SMALL

V = variant(SMALL)


def test_parallel_sweep_with_wandb_then_report(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    sweep = subprocess.run(
        [sys.executable, "-m", "alimb.run", "-m", "hydra/launcher=parallel", "logger=wandb",
         "acquisition=random,dmcs_rand", "seed=0,1", *SMALL],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    runs = sorted(p.parent for p in tmp_path.glob("outputs/default/**/summary.json"))
    assert len(runs) == 4

    shared = tmp_path / "outputs/default/wandb/wandb"  # every offline run of the sweep in one folder: one `wandb sync`
    assert len(list(shared.glob("offline-run-*"))) == 4
    for run in runs:  # the offline W&B run holds every iteration's metrics, against the labeled count
        records = RunDir(run).records()
        (wandb_file,) = shared.glob(f"offline-run-*-{(run / 'wandb_id').read_text()}/run-*.wandb")
        logged = [row for row in wandb_offline.history(wandb_file) if "accuracy" in row]
        assert [row["n_labeled"] for row in logged] == [r["n_labeled"] for r in records]
        assert [row["accuracy"] for row in logged] == [r["accuracy"] for r in records]
        assert [row["labeled_ir"] for row in logged] == [r["labeled_ir"] for r in records]
        info = wandb_offline.run_info(wandb_file)
        af, seed = run.parent.parent.parent.name, run.name
        assert info["name"] == f"{af}/cs_svm/{V}{seed}" and info["job_type"] == f"{af}/cs_svm"
        assert info["group"] == "default/synthetic/exp0.75"
        assert info["config"]["scheme.C"] == 1.0 and info["config"]["acquisition.name"] == af  # flat: filters in the UI
        table = [row for row in wandb_offline.history(wandb_file) if "per_class/_type" in row]
        assert len(table) == 1 and table[0]["per_class/_type"] == "table-file"
        assert table[0]["per_class/nrows"] == len(records) * 10  # (iteration, class) rows

    # one more run left unfinished: reported apart, not averaged
    unfinished = tmp_path / f"outputs/default/synthetic/exp0.75/random/cs_svm/{V}seed7"
    unfinished.mkdir(parents=True)
    finished = tmp_path / f"outputs/default/synthetic/exp0.75/random/cs_svm/{V}seed0"
    config = json.loads((finished / "config.json").read_text())
    config["seed"] = 7  # the same settings, another seed: reported with the others, apart as unfinished
    (unfinished / "config.json").write_text(json.dumps(config))
    (unfinished / "records.jsonl").write_text((finished / "records.jsonl").read_text().splitlines(True)[0])

    out = tmp_path / "report"
    rep = subprocess.run(
        [sys.executable, "-m", "alimb.report", str(tmp_path / "outputs"), "--out", str(out), "--wandb"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert rep.returncode == 0, rep.stderr
    assert "5 runs (1 unfinished" in rep.stdout
    (report_run,) = (out / "wandb/wandb").glob("offline-run-*/run-*.wandb")  # the report's own W&B run
    assert wandb_offline.run_info(report_run)["job_type"] == "report"
    logged = {key.split("/")[0] for row in wandb_offline.history(report_run) for key in row}
    assert {"accuracy_synthetic_exp0.75", "labeled_ir_synthetic_exp0.75", "results"} <= logged
    for figure in ("accuracy_synthetic_exp0.75.png", "labeled_ir_synthetic_exp0.75.png"):
        assert (out / figure).stat().st_size > 10_000

    with open(out / "results.csv") as f:
        rows = {row["acquisition"]: row for row in csv.DictReader(f)}
    for af in ("random", "dmcs_rand"):
        finals = [RunDir(tmp_path / f"outputs/default/synthetic/exp0.75/{af}/cs_svm/{V}seed{s}").records()[-1] for s in (0, 1)]
        acc = np.array([r["accuracy"] for r in finals])
        ir = np.array([r["labeled_ir"] for r in finals])
        assert float(rows[af]["final_accuracy_mean"]) == acc.mean()
        assert float(rows[af]["final_accuracy_std"]) == acc.std(ddof=1)
        assert float(rows[af]["final_labeled_ir_mean"]) == ir.mean()
        assert int(rows[af]["seeds"]) == 2
    assert rows["random"]["partial_runs"] == "1" and rows["dmcs_rand"]["partial_runs"] == "0"
    table = (out / "results.md").read_text()
    assert "2 (+1 unfinished, not included)" in table


def test_wandb_unreachable_warns_once_per_process_and_every_job_completes(tmp_path):
    env = {**os.environ, "WANDB_MODE": "online", "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": "x" * 40}
    proc = subprocess.run(
        [sys.executable, "-m", "alimb.run", "-m", "logger=wandb", "logger.timeout=5", "seed=0,1", *SMALL],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert out.count("connecting to W&B (waiting up to 5 s") == 1  # said before waiting, and only once
    assert out.count("W&B could not start (") == 1 and out.count("W&B could not start earlier in this process") == 1
    runs = sorted(tmp_path.glob("outputs/default/**/summary.json"))
    assert len(runs) == 2 and all(len(RunDir(r.parent).records()) == 6 for r in runs)


def test_paper_figure_sweeps_are_drawn_in_the_papers_layout(tmp_path):
    """Small versions of experiment=paper/fig1 and paper/fig5 on digits (CS-SVM in place of the switch)."""
    small = ("dataset=digits", "imbalance=exponential", "al.iterations=3", "al.per_iteration=20")
    fig1 = subprocess.run([sys.executable, "-m", "alimb.run", "-m", "experiment=paper/fig1", "scheme=cs_svm", "seed=0,1",
                           *small], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert fig1.returncode == 0, fig1.stderr[-2000:]
    fig5 = subprocess.run([sys.executable, "-m", "alimb.run", "-m", "experiment=paper/fig5", "scheme=svm,cs_svm", "seed=0",
                           *small], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert fig5.returncode == 0, fig5.stderr[-2000:]
    assert len(list(tmp_path.glob("outputs/paper_fig1/**/summary.json"))) == 12  # 6 AFs x 2 seeds
    assert len(list(tmp_path.glob("outputs/paper_fig5/**/summary.json"))) == 4  # svm: random; cs_svm: 3 AFs
    out = tmp_path / "report"
    rep = subprocess.run([sys.executable, "-m", "alimb.report", str(tmp_path / "outputs"), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    for figure in ("fig1_accuracy.png", "fig2_labeled_ir.png", "fig5_schemes.png"):
        assert (out / figure).stat().st_size > 10_000
    assert not (out / "fig3_accuracy.png").exists()  # no fig3 sweep ran
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {(r["name"], r["scheme"], r["acquisition"]) for r in rows if r["name"] == "paper_fig5"} == {
        ("paper_fig5", "svm", "random"), ("paper_fig5", "cs_svm", "random"), ("paper_fig5", "cs_svm", "margin"),
        ("paper_fig5", "cs_svm", "dmcs_rand")}
