"""The GPU check runs end to end on CPU (--cpu --quick), so it cannot rot between GPU runs."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "checks": {"kcenter_picks_identical", "cs_svm_objective_within_1e-4", "dmcs_picks_identical", "run_synthetic_cs_svm",
               "run_digits_ft_th", "run_digits_switch", "sweep_two_jobs", "resume_after_kill_cs_svm",
               "resume_after_kill_ft_th_deterministic"},
    "benchmarks": {"features", "finetune", "coreset", "cs_svm"},
}


@pytest.mark.long
def test_the_gpu_check_runs_end_to_end_on_cpu(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "scripts/gpu_check.sh"), "--cpu", "--quick", "--out", str(tmp_path)],
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert results["mode"] == {"device": "cpu", "quick": True} and results["machine"]["cpu"]
    for section, names in EXPECTED.items():
        assert set(results[section]) == names
        assert all(r["ok"] for r in results[section].values())
    assert results["checks"]["resume_after_kill_cs_svm"]["identical_selections"]
    assert {"value", "target", "target_met"} <= set(results["benchmarks"]["coreset"])
    summary = (tmp_path / "gpu_check.txt").read_text().splitlines()
    assert len(summary) == 2 + sum(len(n) for n in EXPECTED.values()) and all(line.startswith("ok") for line in summary[2:])


def test_a_failing_check_is_recorded_and_fails_the_run(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts/gpu_check.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    check = script.Check(tmp_path, {"device": "cpu", "quick": True})
    check("passes", lambda: {"value": 1})
    check("raises", lambda: 1 / 0)
    check("reports_failure", lambda: {"ok": False, "why": "picks differ"})
    assert not check.summary()
    results = json.loads((tmp_path / "gpu_check.json").read_text())["checks"]
    assert results["passes"]["ok"] and not results["raises"]["ok"] and "ZeroDivisionError" in results["raises"]["error"]
    assert (tmp_path / "gpu_check.txt").read_text().count("FAIL") == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpu_mode_without_a_gpu_says_so(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "no CUDA device here; use --cpu --quick" in proc.stderr
