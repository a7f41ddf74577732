"""Figures for a paper: PDF (vector) and PNG at 300 dpi, colour-blind-safe, legends outside the data.

One look per AF in every figure of a report (`looks`: Okabe-Ito colours, the paper's methods, as their AF declares,
solid with markers, the others dashed, the baseline black); light ± std bands; panels of one figure share their
y-axis; titles name the dataset and the imbalance as their declarations do, and the budget.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from alimb.summary import Group, penalty_matrix

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#999999"]
MARKERS = ["o", "^", "v", "s", "D", "P"]  # the paper's methods, in the order of their names
METRICS = {  # metric -> (file stem, y label)
    "accuracy": ("accuracy", "accuracy (mean per-class)"),
    "minority_accuracy": ("minority_recall", "recall on minority classes"),
    "labeled_ir": ("labeled_ir", "labeled-set ir (std / mean)"),
    "classes_discovered": ("class_discovery", "classes with ≥ 1 label"),
}


def looks(groups: list[Group], baseline: str) -> dict[str, dict]:
    """One look per AF for the whole report (the same in every figure): the baseline AF the black dashed reference,
    the paper's methods (declared on their AF) solid with a marker each, the others dashed; colours from the
    Okabe-Ito palette in the order of the AFs' names."""
    names = sorted({g.label for g in groups})
    paper = sorted({g.label for g in groups if g.paper_method})
    others = [n for n in names if n != baseline]
    out = {}
    for i, name in enumerate(others):
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        if name in paper:
            out[name] = {"color": colour, "linestyle": "-", "marker": MARKERS[paper.index(name) % len(MARKERS)],
                         "ms": 3.5, "linewidth": 1.8}
        else:
            out[name] = {"color": colour, "linestyle": "--" if i % 2 == 0 else ":", "marker": None, "linewidth": 1.3}
    out[baseline] = {"color": "#000000", "linestyle": "--", "marker": None, "linewidth": 1.3}
    return out


def title(group: Group, budget: tuple[int, int] | None = None, extra: str = "") -> str:
    """The dataset, the imbalance (as their declarations name them) and the budget."""
    parts = [*group.titles]
    if budget:
        parts.append(f"{budget[0]} × {budget[1]} labels")
    return ", ".join(parts) + (f" — {extra}" if extra else "")


def draw(ax, group: Group, metric: str, label: str, look: dict, crowded: bool, linestyle: str | None = None) -> None:
    """Mean over seeds, a light ± std band, and a `*` where the scheme switched (accuracy)."""
    x, mean, std = group.curve(metric)
    kw = dict(look)
    if linestyle:
        kw["linestyle"] = linestyle
    ax.plot(x, mean, label=f"{label} (n={len(group.complete)})", **kw)
    low, high = 0.0, {"accuracy": 1.0, "minority_accuracy": 1.0}.get(metric, np.inf)  # a band stays in range
    if metric == "classes_discovered":
        high = float(group.complete[0]["n_classes"].iloc[0])
    ax.fill_between(x, np.clip(mean - std, low, high), np.clip(mean + std, low, high), color=kw["color"],
                    alpha=0.07 if crowded else 0.15, linewidth=0)
    switch = group.switch_at()
    if switch is not None and metric == "accuracy":
        ax.plot([switch], [np.interp(switch, x, mean)], "*", ms=13, color=kw["color"], markeredgecolor="black")


def panels(plt, n: int, ylabel: str):
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n + 2.2, 3.8), squeeze=False, sharey=True)
    axes[0][0].set_ylabel(ylabel)
    for ax in axes[0]:
        ax.set_xlabel("labeled samples")
        ax.grid(alpha=0.3)
    return fig, axes[0]


def save(fig, out: Path, stem: str) -> list[Path]:
    """PDF and 300-dpi PNG, the legend (of the first panel) outside the data on the right."""
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    return _write(fig, out, stem)


def _write(fig, out: Path, stem: str) -> list[Path]:
    """The figure as PDF (vector) and PNG at 300 dpi."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = [out / f"{stem}.pdf", out / f"{stem}.png"]
    for path in paths:
        fig.savefig(path, dpi=300, bbox_inches="tight")
    plt.close(fig)
    return paths


def penalty_heatmap(matrix: np.ndarray, names: list[str], out: Path, stem: str, heading: str) -> list[Path]:
    """Ash et al.'s pairwise-penalty matrix: cell (i, j) = fraction of budget points where row i beats column j."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(names), 0.8 + 0.5 * len(names)))
    image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=max(1e-9, float(np.nanmax(matrix))))
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            if i != j:
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] < 0.6 * np.nanmax(matrix) else "black")
    ax.set_title(heading, fontsize=9)
    ax.set_xlabel("loses (column)")
    ax.set_ylabel("wins (row)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of budget points, p < 0.05")
    return _write(fig, out, stem)


def plot_panels(groups: list[Group], out: Path, look: dict[str, dict]) -> list[Path]:
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
        for metric, (stem, ylabel) in METRICS.items():
            fig, axes = panels(plt, len(schemes), ylabel)
            for ax, scheme in zip(axes, schemes):
                here = sorted((g for g in members if g.key[4] == scheme), key=lambda g: g.label)
                for g in here:
                    draw(ax, g, metric, g.label, look[g.label], crowded)
                ax.set_title(title(here[0], here[0].budget(), scheme), fontsize=9)
            written += save(fig, out, f"{stem}_{tag}")
        written += comparison(plt, members, schemes[0], look, out, tag)
        if len(schemes) > 1:
            fig, axes = panels(plt, 1, "accuracy (mean per-class)")
            lines = dict(zip(schemes, ["-", "--", ":", "-."] * 4))
            for g in sorted(members, key=lambda g: (g.key[4], g.label)):
                draw(axes[0], g, "accuracy", f"{g.label} {g.key[4]}", look[g.label], True, lines[g.key[4]])
            axes[0].set_title(title(members[0], members[0].budget(), "schemes"), fontsize=9)
            written += save(fig, out, f"schemes_{tag}")
    return written


def comparison(plt, members: list[Group], scheme: str, look: dict, out: Path, tag: str) -> list[Path]:
    """The paper's point on one figure: accuracy and the labeled set's ir against labels, one line per AF (Figs. 1-2
    side by side), for the first scheme."""
    here = sorted((g for g in members if g.key[4] == scheme), key=lambda g: g.label)
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 3.9), squeeze=False)
    for ax, (metric, (_, ylabel)) in zip(axes[0], [(m, METRICS[m]) for m in ("accuracy", "labeled_ir")]):
        for g in here:
            draw(ax, g, metric, g.label, look[g.label], len(here) > 5)
        ax.set_xlabel("labeled samples")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle(title(here[0], here[0].budget(), scheme), fontsize=10)
    return save(fig, out, f"comparison_{tag}")


def plot_declared(groups: list[Group], layouts: dict[str, dict], out: Path, look: dict[str, dict]) -> list[Path]:
    """The figures each experiment declares (`report.figures` in its YAML, e.g. conf/experiment/paper/fig1.yaml):
    one panel per (dataset, imbalance), shared y-axis; `lines: scheme` draws scheme x AF with a line style per
    scheme, else one line per AF with a `*` at the switch."""
    import matplotlib.pyplot as plt

    written = []
    for name, layout in sorted(layouts.items()):
        members = [g for g in groups if g.key[0] == name and g.complete]
        if not members:
            continue
        where = sorted({g.key[1:3] for g in members})
        by_scheme = layout.get("lines") == "scheme"
        lines = dict(zip(sorted({g.key[4] for g in members}), ["-", "--", ":", "-."] * 4))
        for plan in layout.get("figures", []):
            fig, axes = panels(plt, len(where), plan["ylabel"])
            for ax, (dataset, imbalance) in zip(axes, where):
                here = sorted((g for g in members if g.key[1:3] == (dataset, imbalance)), key=lambda g: g.key[3:])
                for g in here:
                    if by_scheme:
                        draw(ax, g, plan["metric"], f"{g.label} {g.key[4]}", look[g.label], True, lines[g.key[4]])
                    else:
                        draw(ax, g, plan["metric"], g.label, look[g.label], len(here) > 5)
                ax.set_title(title(here[0], here[0].budget()), fontsize=9)
            written += save(fig, out, plan["file"])
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
        heading = title(members[0], members[0].budget(), scheme)
        written += penalty_heatmap(matrix, names, out, stem, heading)
    return written

