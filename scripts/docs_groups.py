"""Write docs/groups/<group>.md, one page per config group, from the config tree and the declarations: each option's
YAML comment (what it is), what it builds, the first paragraph of that callable's docstring, and every option it
takes with its type, default and doc (as `alimb-options` lists them). Generated, so it cannot drift:
tests/test_docs.py regenerates the pages and compares.

    .venv/bin/python scripts/docs_groups.py          # write docs/groups/
    .venv/bin/python scripts/docs_groups.py --check  # exit 1 if a page is out of date
"""

from __future__ import annotations

import argparse
import inspect
import sys
from importlib import resources
from pathlib import Path

GROUPS = {  # group -> what the page says it is for
    "dataset": "the data: the pool (the training split) and the test set",
    "imbalance": "the class-size profile the pool is drawn with",
    "acquisition": "the acquisition functions (AFs): which samples each iteration labels",
    "scheme": "what is trained each iteration: the scores and features the next AF reads",
    "backbone": "M_g, the pretrained model that turns images into features F_g (and that fine tuning starts from)",
    "oracle": "who answers the labels: the dataset's (the paper's protocol) or a person's",
    "logger": "where records go besides the run directory",
    "experiment": "stored sweeps: `alimb -m experiment=NAME`",
    "hydra/launcher": "where a sweep's jobs run",
}
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "groups"


def comment(path: Path) -> str:
    """The YAML file's leading comment lines, as one paragraph."""
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):
            continue
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def first_paragraph(fn) -> str:
    doc = inspect.getdoc(fn) or ""
    return " ".join(doc.split("\n\n")[0].split())


def page(group: str) -> str:
    from omegaconf import OmegaConf

    from alimb.config import load_option
    from alimb.declarations import declared_by, describe, target_callable

    folder = Path(str(resources.files("alimb.conf"))) / group
    names = sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))
    out = [f"# `{group}`: {GROUPS[group]}", "",
           f"Generated from `conf/{group}/` and the declarations by `scripts/docs_groups.py`; "
           f"`alimb-options {group}=NAME` lists the same options with the values of a command line.", ""]
    links = ", ".join(f"[`{n}`](#{n.replace('/', '')})" for n in names)
    out += [f"Options: {links}.", ""]
    for name in names:
        path = folder / f"{name}.yaml"
        out += [f"## `{name}`", "", comment(path) or "(no comment)", ""]
        if group in ("experiment", "hydra/launcher"):
            out += ["```yaml", path.read_text().strip(), "```", ""]
            continue
        node = OmegaConf.to_container(load_option(group, name), resolve=False)
        loader = node.get("loader") if group == "dataset" else None
        target = (loader or node).get("_target_")
        if target:
            out += [f"Builds `{target}`" + (" (the dataset's loader)." if loader else ".") +
                    (f" {first_paragraph(target_callable(target))}" if target.startswith("alimb.") else ""), ""]
            options = describe(declared_by(target), loader or node)
            if options:
                out += ["```", *[line.strip() for line in options], "```", ""]
        chosen = [f"{k}: {node[k]}" for k in node if k not in ("name", "_target_", "_partial_", "loader")
                  and group == "dataset" and node[k] is not None]
        if chosen:
            out += ["The dataset's own keys: " + "; ".join(f"`{c}`" for c in chosen) + ".", ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for group in GROUPS:
        file = OUT / f"{group.replace('/', '_')}.md"
        text = page(group)
        if args.check:
            if not file.exists() or file.read_text() != text:
                stale.append(str(file))
        else:
            file.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run scripts/docs_groups.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
