"""`alimb-report DIR...`: a sweep's local records -> figures (PDF, PNG) and results tables.

load (`alimb.results`: one DataFrame row per run and iteration; a run found twice counts once, damaged run
directories skipped with a warning) -> metrics (`alimb.summary`: groups of runs that differ only in the seed,
statistics against a baseline) -> tables (`alimb.tables`) and figures (`alimb.figures`: the standard panels, and
the figures an experiment declares under `report.figures`, as paper/fig1 does); `--wandb` logs them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from alimb import figures
from alimb.errors import UserError
from alimb.results import load
from alimb.summary import BASELINE, group_runs, table_rows
from alimb.tables import terminal_table, write_tables


def report(dirs: list[Path], out: Path, baseline: str = BASELINE) -> dict:
    """Write figures and tables for the runs below `dirs` into `out`; returns what was written."""
    import matplotlib

    matplotlib.use("Agg")
    df = load(dirs)
    if df.empty:
        raise UserError(f"no run with a completed iteration (config.json + records.jsonl) below "
                        f"{', '.join(map(str, dirs))}; name a sweep's or a run's folder (outputs/NAME)")
    if baseline != BASELINE and baseline not in set(df["acquisition"]):  # asked for by name: it must be there
        raise UserError(f"no run of {baseline!r} below {', '.join(map(str, dirs))} to compare with; --baseline is one "
                        f"of {', '.join(sorted(set(df['acquisition'])))}")
    groups = group_runs(df)
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(groups, baseline)
    write_tables(rows, out, baseline)
    look = figures.looks(groups, baseline)
    drawn = figures.plot_panels(groups, out, look) + figures.plot_declared(groups, df.attrs.get("layouts", {}), out, look) \
        + figures.penalty_matrices(groups, out)
    runs = df.drop_duplicates("run")
    return {"runs": len(runs), "unfinished": int((~runs["complete"]).sum()), "figures": drawn, "failed": failed(dirs),
            "tables": [out / "results.md", out / "results.csv"], "table": terminal_table(rows, baseline)}


def failed(dirs: list[Path]) -> list[tuple[Path, str]]:
    """(run directory, the first line of its error.txt) of every run below `dirs` whose last attempt failed."""
    found = {}
    for d in dirs:
        for path in sorted(Path(d).rglob("error.txt")):
            if ".replaced" not in path.parts and path.parent not in found:
                try:
                    found[path.parent] = (path.read_text(errors="replace").strip().splitlines() or ["?"])[0][:200]
                except OSError:
                    continue
    return list(found.items())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints its usage block first)
        self.exit(2, f"alimb-report: error: {message}; `alimb-report --help` says how\n")


def main(argv: list[str] | None = None) -> None:
    parser = _Parser(prog="alimb-report", description=__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, help="sweep or run directories (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: FIRST_DIR/report)")
    parser.add_argument("--baseline", default=BASELINE,
                        help=f"the AF every other is compared with (labels saved, paired tests; default {BASELINE})")
    parser.add_argument("--wandb", action="store_true", help="also log the figures and tables into one W&B run")
    parser.add_argument("--project", default="alimb", help="the W&B project (with --wandb)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="alimb-report: warning: %(message)s")
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        parser.exit(2, f"alimb-report: error: not a directory: {missing[0]}; name a sweep's or a run's folder\n")
    out = args.out or args.dirs[0] / "report"
    try:
        written = report(args.dirs, out, args.baseline)
    except UserError as err:
        parser.exit(2, f"alimb-report: error: {err}\n")
    except OSError as err:  # the report's folder: read-only, a file in its way, the disk full
        parser.exit(2, f"alimb-report: error: cannot write the report in {out} ({err.strerror or type(err).__name__}: "
                       f"{err.filename or out}); choose another folder with --out DIR\n")
    if args.wandb:
        from alimb.wandb_logger import log_report

        log_report(written, out, args.project)
    print(written["table"])
    comparison = [p for p in written["figures"] if p.name.startswith("comparison_") and p.suffix == ".png"]
    print(f"{written['runs']} runs ({written['unfinished']} unfinished, reported apart); tables and "
          f"{len(written['figures'])} figures in {out}" + (f", e.g. {comparison[0]}" if comparison else ""))
    for run_dir, message in written["failed"]:
        print(f"failed: {run_dir}: {message}")


if __name__ == "__main__":
    main()
