"""`alimb-report DIR...`: a sweep's local records -> the paper's figures (PNG) and a results table.

Built on `alimb.results.load` (one DataFrame row per run and iteration): a run found twice counts once,
runs that differ in anything but the seed are never averaged together (the group's `variant` names the
difference), damaged run directories are skipped with a warning.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from alimb.metrics import area_under_curve
from alimb.results import AXES, load

GROUP = (*AXES, "variant")  # (experiment name, dataset, imbalance, acquisition, scheme, variant)
# sweeps stored as experiment=paper/figN, drawn in the paper's layout: (file, metric, y label) per figure
PAPER_FIGURES = {
    "paper_fig1": [("fig1_accuracy", "accuracy", "accuracy"), ("fig2_labeled_ir", "labeled_ir", "labeled-set ir")],
    "paper_fig3": [("fig3_accuracy", "accuracy", "accuracy"), ("fig4_labeled_ir", "labeled_ir", "labeled-set ir")],
    "paper_fig5": [("fig5_schemes", "accuracy", "accuracy")],
}
ALPHA = 0.05


@dataclass
class Group:
    """The runs of one (experiment, dataset, imbalance, AF, scheme, variant): complete ones, one frame each."""

    key: tuple
    complete: list[pd.DataFrame]
    partial: int
    setting: str  # the config less seed and AF: groups compared with each other share it

    @property
    def label(self) -> str:
        return self.key[3] + (f" [{self.key[5]}]" if self.key[5] else "")

    def curve(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n_labeled, mean, std) of `metric` over the complete runs (sample std; 0 for one seed)."""
        values = np.array([run[metric].to_numpy(dtype=np.float64) for run in self.complete])
        x = self.complete[0]["n_labeled"].to_numpy()
        return x, values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])

    def per_seed(self, metric: str) -> dict[int, float]:
        """seed -> the run's area under `metric` vs labeled count (normalised: the mean over the budget)."""
        return {int(run["seed"].iloc[0]): area_under_curve(run["n_labeled"].tolist(), run[metric].astype(float).tolist())
                for run in self.complete}

    def switch_at(self) -> float | None:
        """Mean labeled count at which the scheme used changed (the switch), if it did in any run."""
        points = []
        for run in self.complete:
            used = run["scheme_used"].tolist()
            changed = [i for i in range(1, len(used)) if used[i] != used[i - 1]]
            if changed:
                points.append(run["n_labeled"].iloc[changed[0]])
        return float(np.mean(points)) if points else None


def group_runs(df: pd.DataFrame) -> list[Group]:
    """Runs of the same axes and variant together; unfinished runs counted apart, never averaged in."""
    groups = []
    for key, rows in df.groupby(list(GROUP), sort=True, dropna=False):
        runs = [r.sort_values("iteration") for _, r in rows.groupby("run", sort=True)]
        complete = [r for r in runs if r["complete"].iloc[0]]
        groups.append(Group(tuple(key), complete, len(runs) - len(complete), rows["setting"].iloc[0]))
    return groups


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid])]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def paired_tests(group: Group, baseline: Group | None) -> dict:
    """Paired t-test and Wilcoxon signed-rank of per-seed AUBC against `baseline` (seeds in common)."""
    if baseline is None or baseline is group:
        return {"vs_random_seeds": 0, "vs_random_t_p": float("nan"), "vs_random_wilcoxon_p": float("nan")}
    mine, theirs = group.per_seed("accuracy"), baseline.per_seed("accuracy")
    seeds = sorted(set(mine) & set(theirs))
    a, b = np.array([mine[s] for s in seeds]), np.array([theirs[s] for s in seeds])
    t_p = w_p = float("nan")
    if len(seeds) >= 2:
        t_p = float(stats.ttest_rel(a, b).pvalue) if np.any(a != b) else 1.0
        w_p = float(stats.wilcoxon(a, b).pvalue) if np.any(a != b) else 1.0
    return {"vs_random_seeds": len(seeds), "vs_random_t_p": t_p, "vs_random_wilcoxon_p": w_p}


def _stats(values: list[float]) -> tuple[float, float]:
    v = np.array(values, dtype=np.float64)
    mean = float(np.nanmean(v)) if v.size and not np.isnan(v).all() else float("nan")
    return mean, float(np.nanstd(v, ddof=1)) if np.count_nonzero(~np.isnan(v)) > 1 else float("nan")


def table_rows(groups: list[Group]) -> list[dict]:
    """One row per group: mean and std over complete seeds of AUBC (the headline), minority AUBC, final accuracy,
    final labeled ir and classes discovered; paired tests of AUBC against random (Holm-corrected per panel)."""
    rows = []
    panels: dict[str, list[int]] = defaultdict(list)
    random = {g.setting: g for g in groups if g.key[3] == "random" and g.complete}
    for g in groups:
        row = dict(zip(GROUP, g.key), seeds=len(g.complete), partial_runs=g.partial)
        finals = {
            "aubc": list(g.per_seed("accuracy").values()),
            "minority_aubc": list(g.per_seed("minority_accuracy").values()),
            "final_accuracy": [run["accuracy"].iloc[-1] for run in g.complete],
            "final_labeled_ir": [run["labeled_ir"].iloc[-1] for run in g.complete],
            "classes_discovered": [run["classes_discovered"].iloc[-1] for run in g.complete],
        }
        for name, values in finals.items():
            row[f"{name}_mean"], row[f"{name}_std"] = _stats(values)
        row.update(paired_tests(g, random.get(g.setting)))
        panels[g.setting].append(len(rows))
        rows.append(row)
    for members in panels.values():  # Holm over the AFs compared with random in one panel
        for test in ("t", "wilcoxon"):
            adjusted = holm([rows[i][f"vs_random_{test}_p"] for i in members])
            for i, p in zip(members, adjusted):
                rows[i][f"vs_random_{test}_p_holm"] = p
    rows.sort(key=lambda r: (r["name"], r["dataset"], r["imbalance"], -np.nan_to_num(r["aubc_mean"], nan=-1)))
    return rows


def _cell(row: dict, metric: str, digits: int = 4) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if row["seeds"] == 0 or np.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + ("" if np.isnan(std) else f" ± {std:.{digits}f}")  # one seed: no ± 0


def write_tables(rows: list[dict], out: Path) -> None:
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    lines = [
        "| experiment | dataset | imbalance | acquisition | scheme | n | AUBC | minority AUBC | final accuracy "
        "| final labeled ir | classes found | vs random (p, Holm) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = f"{r['seeds']}" + (f" (+{r['partial_runs']} unfinished, not included)" if r["partial_runs"] else "")
        p = r.get("vs_random_t_p_holm", float("nan"))
        versus = "" if np.isnan(p) else f"{p:.3f}" + (" *" if p < ALPHA else "")
        af = r["acquisition"] + (f" [{r['variant']}]" if r["variant"] else "")
        lines.append(
            f"| {r['name']} | {r['dataset']} | {r['imbalance']} | {af} | {r['scheme']} | {seeds} | {_cell(r, 'aubc')} | "
            f"{_cell(r, 'minority_aubc')} | {_cell(r, 'final_accuracy')} | {_cell(r, 'final_labeled_ir', 3)} | "
            f"{_cell(r, 'classes_discovered', 1)} | {versus} |"
        )
    note = (
        "\nMean ± sample std over n seeds (no ± for one seed), best AUBC first. AUBC: area under accuracy vs labeled "
        "count over the labeled range (= mean accuracy over the budget); minority AUBC: the same for the accuracy on "
        "the pool's minority classes. vs random: paired t-test of per-seed AUBC against random with the same "
        f"settings, Holm-corrected over the AFs of a panel; * marks p < {ALPHA} (the Wilcoxon test is in results.csv).\n"
    )
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
                for g in sorted((g for g in members if g.key[4] == scheme), key=lambda g: g.label):
                    _draw(ax, g, metric, g.label)
                ax.set(title=f"{dataset} / {imbalance} / {scheme}", xlabel="labeled samples", ylabel=label)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
            written.append(_save(fig, out / f"{metric}_{tag}.png"))
        if len(schemes) > 1:
            fig, ax = plt.subplots(figsize=(7, 4.5))
            styles = dict(zip(schemes, ["-", "--", ":", "-."] * 4))
            for g in sorted(members, key=lambda g: g.key[3:]):
                x, mean, _ = g.curve("accuracy")
                ax.plot(x, mean, styles[g.key[4]], label=f"{g.key[4]} {g.label}")
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
                    label = f"{g.key[4]} {g.label}" if name == "paper_fig5" else g.label
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
    import matplotlib

    matplotlib.use("Agg")
    df = load(dirs)
    if df.empty:
        raise FileNotFoundError(f"no run with a completed iteration (config.json + records.jsonl) below {', '.join(map(str, dirs))}")
    groups = group_runs(df)
    out.mkdir(parents=True, exist_ok=True)
    write_tables(table_rows(groups), out)
    figures = plot_panels(groups, out) + plot_paper_figures(groups, out)
    runs = df.drop_duplicates("run")
    return {"runs": len(runs), "unfinished": int((~runs["complete"]).sum()), "figures": figures,
            "tables": [out / "results.md", out / "results.csv"]}


def log_to_wandb(written: dict, out: Path, project: str) -> None:
    """The report's figures and results table into one W&B run (job type `report`; WANDB_MODE=offline works)."""
    import wandb

    from alimb.wandb_logger import WandbLogger

    logger = WandbLogger(project=project, dir=str(out / "wandb"))
    logger.start({"report": str(out)}, name=f"report/{out.name}", group="report", tags=["report"], run_dir=out,
                 job_type="report")
    if logger.run is not None:
        logger.run.log({f.stem: wandb.Image(str(f)) for f in written["figures"]})
        logger.run.log({"results": wandb.Table(dataframe=pd.read_csv(out / "results.csv"))})
    logger.finish({"runs": written["runs"], "unfinished": written["unfinished"]})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="alimb-report", description=__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, help="sweep or run directories (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: FIRST_DIR/report)")
    parser.add_argument("--wandb", action="store_true", help="also log the figures and tables into one W&B run")
    parser.add_argument("--project", default="alimb", help="the W&B project (with --wandb)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="alimb-report: warning: %(message)s")
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        sys.exit(f"alimb-report: error: not a directory: {missing[0]}")
    try:
        written = report(args.dirs, args.out or args.dirs[0] / "report")
    except FileNotFoundError as err:
        sys.exit(f"alimb-report: error: {err}")
    if args.wandb:
        log_to_wandb(written, args.out or args.dirs[0] / "report", args.project)
    print(f"{written['runs']} runs ({written['unfinished']} unfinished, reported apart)")
    for path in written["tables"] + written["figures"]:
        print(path)


if __name__ == "__main__":
    main()
