"""`alimb-report DIR...`: a sweep's local records -> the paper's figures (PDF, PNG) and results tables.

Built on `alimb.results.load` (one DataFrame row per run and iteration): a run found twice counts once,
runs that differ in anything but the seed are never averaged together (the group's `variant` names the
difference), damaged run directories are skipped with a warning.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from alimb import figures
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
    _areas: dict = field(default_factory=dict, repr=False)  # metric -> per_seed's result

    @property
    def label(self) -> str:
        return self.key[3] + (f" [{self.key[5]}]" if self.key[5] else "")

    def curve(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n_labeled, mean, std) of `metric` over the complete runs (sample std; 0 for one seed)."""
        values = np.array([run[metric].to_numpy(dtype=np.float64) for run in self.complete])
        x = self.complete[0]["n_labeled"].to_numpy()
        return x, values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])

    def budget(self) -> tuple[int, int]:
        """(iterations, labels per iteration) of the runs."""
        n = self.complete[0]["n_labeled"].to_numpy()
        return len(n), int(n[0])

    def per_seed(self, metric: str) -> dict[int, float]:
        """seed -> the run's area under `metric` vs labeled count, over the labeled range (computed once)."""
        if metric not in self._areas:
            self._areas[metric] = {
                int(run["seed"].iloc[0]): area_under_curve(run["n_labeled"].tolist(), run[metric].astype(float).tolist())
                for run in self.complete}
        return self._areas[metric]

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


def paired_tests(group: Group, baseline: Group | None, prefix: str = "vs_random") -> dict:
    """Paired t-test and Wilcoxon signed-rank of per-seed AUBC against `baseline` (seeds in common)."""
    if baseline is None or baseline is group:
        return {f"{prefix}_seeds": 0, f"{prefix}_t_p": float("nan"), f"{prefix}_wilcoxon_p": float("nan")}
    mine, theirs = group.per_seed("accuracy"), baseline.per_seed("accuracy")
    seeds = sorted(set(mine) & set(theirs))
    a, b = np.array([mine[s] for s in seeds]), np.array([theirs[s] for s in seeds])
    t_p = w_p = float("nan")
    if len(seeds) >= 2:
        t_p = float(stats.ttest_rel(a, b).pvalue) if np.any(a != b) else 1.0
        w_p = float(stats.wilcoxon(a, b).pvalue) if np.any(a != b) else 1.0
    return {f"{prefix}_seeds": len(seeds), f"{prefix}_t_p": t_p, f"{prefix}_wilcoxon_p": w_p}


def best_baseline(group: Group, groups: list[Group]) -> Group | None:
    """The baseline AF (not the paper's minority-class sampling) of the same setting with the highest mean AUBC,
    other than `group` itself."""
    rivals = [g for g in groups if g.setting == group.setting and g is not group and g.complete
              and not figures.is_paper_method(g.key[3])]
    return max(rivals, key=lambda g: np.mean(list(g.per_seed("accuracy").values())), default=None)


def labels_saved(group: Group, baseline: Group | None) -> float:
    """Labels random sampling needs to reach the AF's final mean accuracy (interpolated on random's mean curve,
    at its first crossing), minus the labels the AF used; NaN when random never reaches it within its budget."""
    if baseline is None or baseline is group:
        return float("nan")
    x, mean, _ = group.curve("accuracy")
    rx, rmean, _ = baseline.curve("accuracy")
    target = mean[-1]
    reached = np.flatnonzero(rmean >= target)
    if reached.size == 0:
        return float("nan")
    k = int(reached[0])
    if k == 0:
        needed = float(rx[0])
    else:  # linear interpolation between the points around the first crossing
        needed = float(rx[k - 1] + (target - rmean[k - 1]) * (rx[k] - rx[k - 1]) / (rmean[k] - rmean[k - 1]))
    return needed - float(x[-1])


def _stats(values: list[float]) -> tuple[float, float]:
    v = np.array(values, dtype=np.float64)
    mean = float(np.nanmean(v)) if v.size and not np.isnan(v).all() else float("nan")
    return mean, float(np.nanstd(v, ddof=1)) if np.count_nonzero(~np.isnan(v)) > 1 else float("nan")


def table_rows(groups: list[Group]) -> list[dict]:
    """One row per group: mean and std over complete seeds of AUBC (the headline), minority AUBC, final accuracy,
    final labeled ir and classes discovered; labels saved vs random; paired tests of AUBC against random and
    against the best baseline (Holm-corrected over the AFs of one setting)."""
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
        best = best_baseline(g, groups) if g.complete else None
        row["best_baseline"] = best.label if best is not None else ""
        row.update(paired_tests(g, best, "vs_best_baseline"))
        row["labels_saved_vs_random"] = labels_saved(g, random.get(g.setting)) if g.complete else float("nan")
        panels[g.setting].append(len(rows))
        rows.append(row)
    for members in panels.values():  # Holm over the AFs compared in one setting
        for column in ("vs_random_t_p", "vs_random_wilcoxon_p", "vs_best_baseline_t_p", "vs_best_baseline_wilcoxon_p"):
            for i, p in zip(members, holm([rows[i][column] for i in members])):
                rows[i][f"{column}_holm"] = p
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
        "| final labeled ir | classes found | labels saved vs random | vs random (p, Holm) | vs best baseline (p, Holm) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = f"{r['seeds']}" + (f" (+{r['partial_runs']} unfinished, not included)" if r["partial_runs"] else "")
        p = r.get("vs_random_t_p_holm", float("nan"))
        versus = "" if np.isnan(p) else f"{p:.3f}" + (" *" if p < ALPHA else "")
        p_best = r.get("vs_best_baseline_t_p_holm", float("nan"))
        best = "" if np.isnan(p_best) else f"{r['best_baseline']}: {p_best:.3f}" + (" *" if p_best < ALPHA else "")
        af = r["acquisition"] + (f" [{r['variant']}]" if r["variant"] else "")
        saved = r["labels_saved_vs_random"]
        if r["acquisition"] == "random":
            saved = "(baseline)"
        else:
            saved = ("not reached by random" if r["seeds"] and r.get("vs_random_seeds") else "") if np.isnan(saved) \
                else f"{saved:+.0f}"
        lines.append(
            f"| {r['name']} | {r['dataset']} | {r['imbalance']} | {af} | {r['scheme']} | {seeds} | {_cell(r, 'aubc')} | "
            f"{_cell(r, 'minority_aubc')} | {_cell(r, 'final_accuracy')} | {_cell(r, 'final_labeled_ir', 3)} | "
            f"{_cell(r, 'classes_discovered', 1)} | {saved} | {versus} | {best} |"
        )
    note = (
        "\nMean ± sample std over n seeds (no ± for one seed), best AUBC first. AUBC: area under accuracy vs labeled "
        "count over the labeled range (= mean accuracy over the budget); minority AUBC: the same for the accuracy on "
        "the pool's minority classes. Labels saved: the labels random sampling needs (interpolated on its mean curve) "
        "to reach the AF's final mean accuracy, minus the AF's labels. Pairwise-penalty matrices (penalty_*.png/csv): "
        "the fraction of budget points where each AF's accuracy is significantly higher than another's. "
        "vs random / vs best baseline (the non-MCS AF of the same settings with the best mean AUBC, the AF itself "
        "excluded): paired t-test of per-seed AUBC, Holm-corrected over the AFs of the same settings; "
        f"* marks p < {ALPHA} (the Wilcoxon signed-rank tests are in results.csv).\n"
    )
    (out / "results.md").write_text("\n".join(lines) + "\n" + note)


def plot_panels(groups: list[Group], out: Path) -> list[Path]:
    """Per (experiment, dataset, imbalance): one figure per metric (accuracy, minority recall, labeled ir, class
    discovery) with a panel per scheme, and a scheme comparison when several schemes ran."""
    import matplotlib.pyplot as plt

    written = []
    by_panel: dict[tuple, list[Group]] = defaultdict(list)
    for g in groups:
        if g.complete:
            by_panel[g.key[:3]].append(g)
    for (name, dataset, imbalance), members in sorted(by_panel.items()):
        schemes = sorted({g.key[4] for g in members})
        tag = f"{dataset}_{imbalance}" if name == "default" else f"{name}_{dataset}_{imbalance}"
        crowded = len(members) / len(schemes) > 5
        for metric, (stem, ylabel) in figures.METRICS.items():
            fig, axes = figures.panels(plt, len(schemes), ylabel)
            for ax, scheme in zip(axes, schemes):
                here = sorted((g for g in members if g.key[4] == scheme), key=lambda g: g.label)
                for g in here:
                    figures.draw(ax, g, metric, g.label, crowded)
                ax.set_title(figures.title(dataset, imbalance, here[0].budget(), scheme), fontsize=9)
            written += figures.save(fig, out, f"{stem}_{tag}")
        if len(schemes) > 1:
            fig, axes = figures.panels(plt, 1, "accuracy (mean per-class)")
            lines = dict(zip(schemes, ["-", "--", ":", "-."] * 4))
            for g in sorted(members, key=lambda g: (g.key[4], g.label)):
                figures.draw(axes[0], g, "accuracy", f"{g.label} {g.key[4]}", True, lines[g.key[4]])
            axes[0].set_title(figures.title(dataset, imbalance, members[0].budget(), "schemes"), fontsize=9)
            written += figures.save(fig, out, f"schemes_{tag}")
    return written


def plot_paper_figures(groups: list[Group], out: Path) -> list[Path]:
    """The paper's figures for sweeps of experiment=paper/figN: one panel per dataset, shared y-axis; Fig. 5
    draws scheme x AF (line style by scheme), the others one line per AF with a `*` at the switch."""
    import matplotlib.pyplot as plt

    written = []
    for name, plan in PAPER_FIGURES.items():
        members = [g for g in groups if g.key[0] == name and g.complete]
        if not members:
            continue
        where = sorted({g.key[1:3] for g in members})
        lines = dict(zip(sorted({g.key[4] for g in members}), ["-", "--", ":", "-."] * 4))
        for filename, metric, ylabel in plan:
            fig, axes = figures.panels(plt, len(where), ylabel)
            for ax, (dataset, imbalance) in zip(axes, where):
                here = sorted((g for g in members if g.key[1:3] == (dataset, imbalance)), key=lambda g: g.key[3:])
                for g in here:
                    if name == "paper_fig5":
                        figures.draw(ax, g, metric, f"{g.label} {g.key[4]}", True, lines[g.key[4]])
                    else:
                        figures.draw(ax, g, metric, g.label, len(here) > 5)
                ax.set_title(figures.title(dataset, imbalance, here[0].budget()), fontsize=9)
            written += figures.save(fig, out, filename)
    return written


def penalty_matrices(groups: list[Group], out: Path) -> list[Path]:
    """Ash et al.'s pairwise-penalty matrix per setting with 2+ AFs: for each pair, the fraction of budget
    points where one AF's accuracy is significantly higher (paired t-test over common seeds, p < 0.05)."""
    written = []
    by_setting: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        if len(g.complete) >= 2:
            by_setting[g.setting].append(g)
    for members in by_setting.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda g: g.label)
        matrix = penalty_matrix(members)
        names = [g.label for g in members]
        name, dataset, imbalance, _, scheme, variant = members[0].key
        stem = f"penalty_{'' if name == 'default' else name + '_'}{dataset}_{imbalance}_{scheme}"
        pd.DataFrame(matrix, index=names, columns=names).to_csv(out / f"{stem}.csv")
        heading = figures.title(dataset, imbalance, members[0].budget(), scheme)
        written += figures.penalty_heatmap(matrix, names, out, stem, heading)
    return written


def penalty_matrix(members: list[Group]) -> np.ndarray:
    """(i, j): fraction of the budget points where AF i's accuracy beats AF j's, paired over seeds, p < ALPHA."""
    curves = [{int(r["seed"].iloc[0]): r["accuracy"].to_numpy(dtype=np.float64) for r in g.complete} for g in members]
    matrix = np.zeros((len(members), len(members)))
    for i, a in enumerate(curves):
        for j, b in enumerate(curves):
            seeds = sorted(set(a) & set(b))
            if i == j or len(seeds) < 2:
                continue
            x, y = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])  # (seeds, points)
            wins = 0
            for t in range(x.shape[1]):
                d = x[:, t] - y[:, t]
                if d.mean() > 0 and np.any(d != d[0]) and stats.ttest_rel(x[:, t], y[:, t]).pvalue < ALPHA:
                    wins += 1
                elif d.mean() > 0 and np.all(d == d[0]) and d[0] > 0:  # the same positive gap on every seed
                    wins += 1
            matrix[i, j] = wins / x.shape[1]
    return matrix


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
    drawn = plot_panels(groups, out) + plot_paper_figures(groups, out) + penalty_matrices(groups, out)
    runs = df.drop_duplicates("run")
    return {"runs": len(runs), "unfinished": int((~runs["complete"]).sum()), "figures": drawn,
            "tables": [out / "results.md", out / "results.csv"]}


def log_to_wandb(written: dict, out: Path, project: str) -> None:
    """The report's figures and results table into one W&B run (job type `report`; WANDB_MODE=offline works)."""
    import wandb

    from alimb.wandb_logger import WandbLogger

    logger = WandbLogger(project=project, dir=str(out / "wandb"))
    logger.start({"report": str(out)}, name=f"report/{out.name}", group="report", tags=["report"],
                 id_file=out / "wandb_id", job_type="report", default_dir=out)
    if logger.run is not None:
        logger.run.log({f.stem: wandb.Image(str(f)) for f in written["figures"] if f.suffix == ".png"})
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
