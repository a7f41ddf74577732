"""`alimb-report DIR...`: a sweep's local records -> the paper's figures (PNG) and a results table."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alimb.metrics import area_under_curve

GROUP = ("name", "dataset", "imbalance", "acquisition", "scheme")  # name: the experiment
# sweeps stored as experiment=paper/figN, drawn in the paper's layout: (file, metric, y label) per figure
PAPER_FIGURES = {
    "paper_fig1": [("fig1_accuracy", "accuracy", "accuracy"), ("fig2_labeled_ir", "labeled_ir", "labeled-set ir")],
    "paper_fig3": [("fig3_accuracy", "accuracy", "accuracy"), ("fig4_labeled_ir", "labeled_ir", "labeled-set ir")],
    "paper_fig5": [("fig5_schemes", "accuracy", "accuracy")],
}


@dataclass
class Run:
    path: Path
    key: tuple[str, str, str, str, str]  # (experiment name, dataset, imbalance, acquisition, scheme)
    seed: int
    records: list[dict]
    complete: bool


@dataclass
class Group:
    key: tuple[str, str, str, str, str]
    complete: list[Run] = field(default_factory=list)
    partial: list[Run] = field(default_factory=list)

    def curve(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n_labeled, mean, std) of `metric` over the complete runs (sample std; 0 for one seed)."""
        values = np.array([[r[metric] for r in run.records] for run in self.complete], dtype=np.float64)
        x = np.array([r["n_labeled"] for r in self.complete[0].records])
        return x, values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])

    def switch_at(self) -> float | None:
        """Mean labeled count at which the scheme used changed (the switch), if it did in any run."""
        points = []
        for run in self.complete:
            used = [r.get("scheme_used", r.get("scheme")) for r in run.records]
            changed = [i for i in range(1, len(used)) if used[i] != used[i - 1]]
            if changed:
                points.append(run.records[changed[0]]["n_labeled"])
        return float(np.mean(points)) if points else None


def find_runs(dirs: list[Path]) -> list[Run]:
    """Every run directory (one holding config.json and records.jsonl) below `dirs`."""
    runs = []
    for top in dirs:
        for config_path in sorted(Path(top).rglob("config.json")):
            run_dir = config_path.parent
            if not (run_dir / "records.jsonl").exists():
                continue
            config = json.loads(config_path.read_text())
            with open(run_dir / "records.jsonl") as f:
                records = [json.loads(line) for line in f if line.strip()]
            key = (str(config["name"]), *(str(config[g]["name"]) for g in GROUP[1:]))
            runs.append(Run(run_dir, key, int(config["seed"]), records, (run_dir / "summary.json").exists()))
    return runs


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs of the same (dataset, imbalance, AF, scheme) together, complete and unfinished apart."""
    groups: dict[tuple, Group] = {}
    for run in runs:
        group = groups.setdefault(run.key, Group(run.key))
        (group.complete if run.complete else group.partial).append(run)
    return list(groups.values())


def area(records: list[dict]) -> float:
    return area_under_curve([r["n_labeled"] for r in records], [r["accuracy"] for r in records])


def table_rows(groups: list[Group]) -> list[dict]:
    """One row per (experiment, dataset, imbalance, AF, scheme): mean and std over complete seeds, best first."""
    rows = []
    for g in groups:
        finals = {
            "final_accuracy": [run.records[-1]["accuracy"] for run in g.complete],
            "auc": [area(run.records) for run in g.complete],
            "final_labeled_ir": [run.records[-1]["labeled_ir"] for run in g.complete],
        }
        row = dict(zip(GROUP, g.key), seeds=len(g.complete), partial_runs=len(g.partial))
        for name, values in finals.items():
            v = np.array(values, dtype=np.float64)
            row[f"{name}_mean"] = float(v.mean()) if v.size else float("nan")
            row[f"{name}_std"] = float(v.std(ddof=1)) if v.size > 1 else 0.0 if v.size else float("nan")
        rows.append(row)
    rows.sort(key=lambda r: (r["name"], r["dataset"], r["imbalance"], -np.nan_to_num(r["final_accuracy_mean"], nan=-1)))
    return rows


def write_tables(rows: list[dict], out: Path) -> None:
    columns = list(rows[0])
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| experiment | dataset | imbalance | acquisition | scheme | seeds | final accuracy | AUC | final labeled ir |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = f"{r['seeds']}" + (f" (+{r['partial_runs']} unfinished, not included)" if r["partial_runs"] else "")
        cell = lambda m: f"{r[m + '_mean']:.4f} ± {r[m + '_std']:.4f}" if r["seeds"] else "n/a"  # noqa: E731
        lines.append(
            f"| {r['name']} | {r['dataset']} | {r['imbalance']} | {r['acquisition']} | {r['scheme']} | {seeds} | "
            f"{cell('final_accuracy')} | {cell('auc')} | {cell('final_labeled_ir')} |"
        )
    note = "\nMean ± sample std over seeds; AUC = area under accuracy vs labeled count / labeled range.\n"
    (out / "results.md").write_text("\n".join(lines) + "\n" + note)


def _draw(ax, group: Group, metric: str, label: str, style: str = "-") -> None:
    """One curve: mean over seeds with a ± std band, and a `*` where the scheme switched (accuracy)."""
    x, mean, std = group.curve(metric)
    line, = ax.plot(x, mean, style, marker="o", ms=3, label=f"{label} (n={len(group.complete)})")
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    switch = group.switch_at()
    if switch is not None and metric == "accuracy":
        ax.plot([switch], [np.interp(switch, x, mean)], "*", ms=14, color=line.get_color())


def plot_panels(groups: list[Group], out: Path) -> list[Path]:
    """Accuracy and labeled-set ir vs labeled count per AF, and the scheme comparison, as PNG."""
    import matplotlib.pyplot as plt

    written = []
    by_panel: dict[tuple, list[Group]] = defaultdict(list)
    for g in groups:
        if g.complete:
            by_panel[g.key[:3]].append(g)
    for (name, dataset, imbalance), members in sorted(by_panel.items()):
        schemes = sorted({g.key[4] for g in members})
        tag = f"{dataset}_{imbalance}" if name == "default" else f"{name}_{dataset}_{imbalance}"
        for metric, label in (("accuracy", "accuracy (mean per-class)"), ("labeled_ir", "labeled-set ir")):
            fig, axes = plt.subplots(1, len(schemes), figsize=(6 * len(schemes), 4.5), squeeze=False)
            for ax, scheme in zip(axes[0], schemes):
                for g in sorted((g for g in members if g.key[4] == scheme), key=lambda g: g.key[3]):
                    _draw(ax, g, metric, g.key[3])
                ax.set(title=f"{dataset} / {imbalance} / {scheme}", xlabel="labeled samples", ylabel=label)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
            written.append(_save(fig, out / f"{metric}_{tag}.png"))
        if len(schemes) > 1:
            fig, ax = plt.subplots(figsize=(7, 4.5))
            styles = dict(zip(schemes, ["-", "--", ":", "-."] * 4))
            for g in sorted(members, key=lambda g: g.key[3:]):
                x, mean, _ = g.curve("accuracy")
                ax.plot(x, mean, styles[g.key[4]], label=f"{g.key[4]} {g.key[3]}")
            ax.set(title=f"schemes: {dataset} / {imbalance}", xlabel="labeled samples", ylabel="accuracy")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            written.append(_save(fig, out / f"schemes_{tag}.png"))
    return written


def plot_paper_figures(groups: list[Group], out: Path) -> list[Path]:
    """The paper's figures for sweeps of experiment=paper/figN: one panel per dataset, shared y-axis; Fig. 5
    draws scheme x AF (line style by scheme), the others one line per AF with a `*` at the switch."""
    import matplotlib.pyplot as plt

    written = []
    for name, figures in PAPER_FIGURES.items():
        members = [g for g in groups if g.key[0] == name and g.complete]
        if not members:
            continue
        panels = sorted({g.key[1:3] for g in members})
        schemes = sorted({g.key[4] for g in members})
        styles = dict(zip(schemes, ["-", "--", ":", "-."] * 4))
        for filename, metric, ylabel in figures:
            fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False, sharey=True)
            for ax, (dataset, imbalance) in zip(axes[0], panels):
                for g in sorted((g for g in members if g.key[1:3] == (dataset, imbalance)), key=lambda g: g.key[3:]):
                    label = f"{g.key[4]} {g.key[3]}" if name == "paper_fig5" else g.key[3]
                    _draw(ax, g, metric, label, styles[g.key[4]] if name == "paper_fig5" else "-")
                ax.set(title=f"{dataset} ({imbalance})", xlabel="labeled samples")
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
            axes[0][0].set_ylabel(ylabel)
            written.append(_save(fig, out / f"{filename}.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(dirs: list[Path], out: Path) -> dict:
    """Write figures and tables for the runs below `dirs` into `out`; returns what was written."""
    runs = find_runs(dirs)
    if not runs:
        raise FileNotFoundError(f"no run directories (config.json + records.jsonl) below {', '.join(map(str, dirs))}")
    groups = group_runs(runs)
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(groups)
    write_tables(rows, out)
    import matplotlib

    matplotlib.use("Agg")
    figures = plot_panels(groups, out) + plot_paper_figures(groups, out)
    partial = sum(len(g.partial) for g in groups)
    return {"runs": len(runs), "unfinished": partial, "figures": figures, "tables": [out / "results.md", out / "results.csv"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="alimb-report", description=__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, help="sweep or run directories (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: FIRST_DIR/report)")
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        sys.exit(f"alimb-report: error: not a directory: {missing[0]}")
    try:
        written = report(args.dirs, args.out or args.dirs[0] / "report")
    except FileNotFoundError as err:
        sys.exit(f"alimb-report: error: {err}")
    print(f"{written['runs']} runs ({written['unfinished']} unfinished, reported apart)")
    for path in written["tables"] + written["figures"]:
        print(path)


if __name__ == "__main__":
    main()
