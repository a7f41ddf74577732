"""Regenerate docs/quickstart.png, the README's figure: what `make run` draws (experiment=quickstart, then
alimb-report), run in a temporary folder.

    .venv/bin/python scripts/readme_figure.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(bin_dir / "alimb"), "-m", "experiment=quickstart"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        report = subprocess.run([str(bin_dir / "alimb-report"), "outputs/quickstart"], cwd=tmp, check=True,
                                capture_output=True, text=True)
        figure = next(Path(tmp, "outputs/quickstart/report").glob("comparison_*.png"))
        shutil.copy(figure, ROOT / "docs" / "quickstart.png")
        (ROOT / "docs" / "quickstart.txt").write_text(report.stdout.split("\n\n")[0].rstrip() + "\n")
    print(ROOT / "docs" / "quickstart.png")


if __name__ == "__main__":
    main()
