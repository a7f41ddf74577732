"""The import contract: alimb's modules stand in layers (pyproject.toml, [tool.importlinter]), each importing only
from the layers below it, so the structure has no circle and no import back up."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_layers_contract_is_kept():
    linter = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_every_module_of_alimb_stands_in_a_layer():
    """A new module (or package) is placed in the contract, or it would escape it."""
    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    found = {f"alimb.{p.stem}" for p in (ROOT / "alimb").glob("*.py") if p.stem != "__init__"}
    found |= {f"alimb.{p.parent.name}" for p in (ROOT / "alimb").glob("*/__init__.py")}
    assert found - placed == set(), f"not in the layers contract: {sorted(found - placed)}"
