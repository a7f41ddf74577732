"""metrics -> tables: results.md (one line per group, best AUBC first) and results.csv (every column)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alimb.summary import ALPHA, BASELINE


def _cell(row: dict, metric: str, digits: int = 4) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if row["seeds"] == 0 or np.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + ("" if np.isnan(std) else f" ± {std:.{digits}f}")  # one seed: no ± 0


def write_tables(rows: list[dict], out: Path, baseline: str = BASELINE) -> None:
    """`rows` of alimb.summary.table_rows(groups, baseline)."""
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    vs = f"vs_{baseline}"
    lines = [
        "| experiment | dataset | imbalance | acquisition | scheme | n | AUBC | minority AUBC | final accuracy "
        f"| final labeled ir | classes found | labels saved vs {baseline} | vs {baseline} (p, Holm) "
        "| vs best baseline (p, Holm) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = f"{r['seeds']}" + (f" (+{r['partial_runs']} unfinished, not included)" if r["partial_runs"] else "")
        p = r.get(f"{vs}_t_p_holm", float("nan"))
        versus = "" if np.isnan(p) else f"{p:.3f}" + (" *" if p < ALPHA else "")
        p_best = r.get("vs_best_baseline_t_p_holm", float("nan"))
        best = "" if np.isnan(p_best) else f"{r['best_baseline']}: {p_best:.3f}" + (" *" if p_best < ALPHA else "")
        af = r["acquisition"] + (f" [{r['variant']}]" if r["variant"] else "") \
            + (f" (fallback in {r['fallback_share']:.0%} of iterations)" if r["fallback_share"] > 0 else "")
        saved = r[f"labels_saved_{vs}"]
        if r["acquisition"] == baseline:
            saved = "(baseline)"
        else:
            saved = (f"not reached by {baseline}" if r["seeds"] and r.get(f"{vs}_seeds") else "") if np.isnan(saved) \
                else f"{saved:+.0f}"
        lines.append(
            f"| {r['name']} | {r['dataset']} | {r['imbalance']} | {af} | {r['scheme']} | {seeds} | {_cell(r, 'aubc')} | "
            f"{_cell(r, 'minority_aubc')} | {_cell(r, 'final_accuracy')} | {_cell(r, 'final_labeled_ir', 3)} | "
            f"{_cell(r, 'classes_discovered', 1)} | {saved} | {versus} | {best} |"
        )
    note = (
        "\nMean ± sample std over n seeds (no ± for one seed), best AUBC first. AUBC: area under accuracy vs labeled "
        "count over the labeled range (= mean accuracy over the budget); minority AUBC: the same for the accuracy on "
        f"the pool's minority classes. Labels saved: the labels {baseline} needs (interpolated on its mean curve) "
        "to reach the AF's final mean accuracy, minus the AF's labels. Pairwise-penalty matrices (penalty_*.png/csv): "
        "the fraction of budget points where each AF's accuracy is significantly higher than another's. "
        f"vs {baseline} / vs best baseline (the non-MCS AF of the same settings with the best mean AUBC, the AF itself "
        "excluded): paired t-test of per-seed AUBC, Holm-corrected over the AFs of the same settings; "
        f"* marks p < {ALPHA} (the Wilcoxon signed-rank tests are in results.csv). \"fallback in x%\": the share of "
        "the AF's iterations (after the random first one) where its own rule could not run and a stand-in chose "
        "(acquisition_info.fallback: class_balanced's greedy batch or unproven incumbent, flqmi's random batch).\n"
    )
    (out / "results.md").write_text("\n".join(lines) + "\n" + note)



def terminal_table(rows: list[dict], baseline: str = BASELINE) -> str:
    """One screen per setting: each AF's final and minority-class accuracy, AUBC, final labeled ir (mean over seeds)
    and the paired test of AUBC against the baseline (Holm-corrected), best AUBC first."""
    vs, out, setting = f"vs_{baseline}", [], None
    name = {id(r): r["acquisition"] + (f" [{r['variant']}]" if r["variant"] else "") for r in rows}
    width = max([24, *(len(n) for n in name.values())])  # every label whole: a sweep's rows differ at their ends
    for r in rows:
        here = (r["name"], r["dataset"], r["imbalance"], r["scheme"])
        if here != setting:
            setting = here
            out += ["", f"{r['name']}: {r['dataset']}, {r['imbalance']}, {r['scheme']}",
                    f"  {'acquisition':<{width}} {'seeds':>5} {'final acc':>10} {'minority acc':>13} {'AUBC':>7} "
                    f"{'labeled ir':>11}  vs {baseline} (p, Holm)"]
        p = r.get(f"{vs}_t_p_holm", float("nan"))
        test = "(baseline)" if r["acquisition"] == baseline else "" if np.isnan(p) else \
            f"{r['aubc_mean'] - _reference(rows, r, baseline):+.4f}, p {p:.3f}" + (" *" if p < ALPHA else "")
        out.append(f"  {name[id(r)]:<{width}} {r['seeds']:>5} {r['final_accuracy_mean']:>10.4f} "
                   f"{r['final_minority_accuracy_mean']:>13.4f} {r['aubc_mean']:>7.4f} {r['final_labeled_ir_mean']:>11.3f}"
                   f"  {test}")
    return "\n".join(out[1:]) + "\n"


def _reference(rows: list[dict], row: dict, baseline: str) -> float:
    same = [r for r in rows if r["acquisition"] == baseline and all(r[k] == row[k] for k in
                                                                    ("name", "dataset", "imbalance", "scheme"))]
    return same[0]["aubc_mean"] if same else float("nan")
