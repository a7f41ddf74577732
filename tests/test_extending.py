"""docs/extending.md, followed literally: its files written into an empty folder, its sweep run as it is written. An AF,
a dataset, a backbone and a scheme are each their module and their YAML, and nothing else."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from alimb.state import RunDir

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def files_and_command(text: str) -> tuple[dict[str, str], str]:
    """{path: content} of the blocks whose first line is a comment naming a file, and the sweep's command line."""
    files, command = {}, None
    for kind, body in BLOCK.findall(text):
        first = body.splitlines()[0]
        if kind in ("python", "yaml") and re.fullmatch(r"# [\w./]+\.(py|yaml)", first):
            files[first[2:]] = body
        elif kind == "console":
            command = body.strip()
    assert files and command, "docs/extending.md holds files and the sweep's command"
    return files, command


def test_the_extending_guide_followed_literally_runs_its_sweep(tmp_path):
    files, command = files_and_command(DOC.read_text())
    assert {Path(p).parts[0] for p in files} == {"mypackage", "myconf"}
    for path, content in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(content)
    argv = shlex.split(command)
    assert argv[0] == "alimb"
    executable = Path(sys.executable).with_name("alimb")
    proc = subprocess.run([str(executable), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [RunDir(p.parent) for p in sorted((tmp_path / "outputs/default").rglob("summary.json"))]
    assert len(runs) == 8  # 2 schemes x 2 AFs x 2 seeds, as the guide says
    for run in runs:
        config, records = run.config(), run.complete_records()
        assert len(records) == 4 and config["dataset"]["name"] == "blobs"
        assert config["backbone"]["_target_"] == "mypackage.backbones.ChannelStatsBackbone"
        if config["scheme"]["name"] == "centroid":  # the scheme's own report reaches its records
            assert all(r.scheme_info == {"classes_fitted": len([c for c in r.class_counts if c])} for r in records)
        if config["acquisition"]["name"] == "farthest":  # the AF's own report, from the second iteration on
            assert all("mean_distance" in (r.acquisition_info or {}) for r in records[1:])
    report = subprocess.run([str(Path(sys.executable).with_name("alimb-report")), "outputs/default"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    rows = json.loads(json.dumps([ln for ln in (tmp_path / "outputs/default/report/results.md").read_text().splitlines()
                                  if ln.startswith("| default")]))
    assert len(rows) == 4  # one line per (AF, scheme)
