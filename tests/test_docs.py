"""The pages of docs/groups/ are generated from the config tree and the declarations: they say what the code does."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_group_pages_are_what_the_config_tree_and_the_declarations_say():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/docs_groups.py"), "--check"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_group_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in sorted((ROOT / "docs/groups").glob("*.md")):
        assert f"docs/groups/{page.name}" in readme, page.name
