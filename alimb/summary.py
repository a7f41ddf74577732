"""load -> metrics: the runs of `alimb.results.load` grouped, and the statistics every table and figure shows.

A group is the runs of one (experiment, dataset, imbalance, AF, scheme, variant); the baseline every AF is
compared with is a setting (`alimb-report --baseline NAME`, random by default).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from alimb.metrics import area_under_curve
from alimb.results import AXES

GROUP = (*AXES, "variant")  # (experiment name, dataset, imbalance, acquisition, scheme, variant)
ALPHA = 0.05
BASELINE = "random"  # the AF every other is compared with, unless the report is told another


@dataclass
class Group:
    """The runs of one (experiment, dataset, imbalance, AF, scheme, variant): complete ones, one frame each."""

    key: tuple
    complete: list[pd.DataFrame]
    partial: int
    setting: str  # the config less seed and AF: groups compared with each other share it
    paper_method: bool = False  # the paper's method (declared on its AF), never anyone's "best baseline"
    titles: tuple = ("", "")  # how figures name its dataset and its imbalance
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
        first = rows.iloc[0]
        groups.append(Group(tuple(key), complete, len(runs) - len(complete), first["setting"], bool(first["paper_method"]),
                            (first["dataset_title"], first["imbalance_title"])))
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


def paired_tests(group: Group, baseline: Group | None, prefix: str) -> dict:
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
              and not g.paper_method]
    return max(rivals, key=lambda g: np.mean(list(g.per_seed("accuracy").values())), default=None)


def labels_saved(group: Group, baseline: Group | None) -> float:
    """Labels the baseline needs to reach the AF's final mean accuracy (interpolated on the baseline's mean curve,
    at its first crossing), minus the labels the AF used; NaN when the baseline never reaches it within its budget."""
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


def table_rows(groups: list[Group], baseline: str = BASELINE) -> list[dict]:
    """One row per group: mean and std over complete seeds of AUBC (the headline), minority AUBC, final accuracy,
    final labeled ir and classes discovered; labels saved vs the baseline; paired tests of AUBC against the
    baseline and against the best baseline (Holm-corrected over the AFs of one setting). Columns comparing with
    the baseline are named after it (`vs_random_t_p`, `labels_saved_vs_random`)."""
    rows = []
    panels: dict[str, list[int]] = defaultdict(list)
    reference = {g.setting: g for g in groups if g.key[3] == baseline and g.complete}
    vs = f"vs_{baseline}"
    for g in groups:
        row = dict(zip(GROUP, g.key), seeds=len(g.complete), partial_runs=g.partial)
        # iterations after the first (iteration 0 is random by protocol) where the AF's own rule fell back
        selected = [run["fallback"].iloc[1:] for run in g.complete if len(run) > 1]
        row["fallback_share"] = float(pd.concat(selected).mean()) if selected else 0.0
        finals = {
            "aubc": list(g.per_seed("accuracy").values()),
            "minority_aubc": list(g.per_seed("minority_accuracy").values()),
            "final_accuracy": [run["accuracy"].iloc[-1] for run in g.complete],
            "final_minority_accuracy": [run["minority_accuracy"].iloc[-1] for run in g.complete],
            "final_labeled_ir": [run["labeled_ir"].iloc[-1] for run in g.complete],
            "classes_discovered": [run["classes_discovered"].iloc[-1] for run in g.complete],
        }
        for name, values in finals.items():
            row[f"{name}_mean"], row[f"{name}_std"] = _stats(values)
        row.update(paired_tests(g, reference.get(g.setting), vs))
        best = best_baseline(g, groups) if g.complete else None
        row["best_baseline"] = best.label if best is not None else ""
        row.update(paired_tests(g, best, "vs_best_baseline"))
        row[f"labels_saved_{vs}"] = labels_saved(g, reference.get(g.setting)) if g.complete else float("nan")
        panels[g.setting].append(len(rows))
        rows.append(row)
    for members in panels.values():  # Holm over the AFs compared in one setting
        for column in (f"{vs}_t_p", f"{vs}_wilcoxon_p", "vs_best_baseline_t_p", "vs_best_baseline_wilcoxon_p"):
            for i, p in zip(members, holm([rows[i][column] for i in members])):
                rows[i][f"{column}_holm"] = p
    rows.sort(key=lambda r: (r["name"], r["dataset"], r["imbalance"], -np.nan_to_num(r["aubc_mean"], nan=-1)))
    return rows


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

