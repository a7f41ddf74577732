"""Class-Balanced Active Learning (Bengar et al., WACV 2022): the batch as a small mixed-integer program.

Our reading. Over the m unlabeled samples, with p_i their class probabilities (an SVM's decision values
through a softmax), choose z in {0, 1}^m with sum z = b minimising

    z . U + lam * || P^T z - Omega ||_1,   U_i = sum_c p_ic log p_ic  (negative entropy: uncertain is cheap)
    Omega_c = max(0, tau - n_c),            tau = floor((n_labeled + b) / C)  (each class's count in a
                                                  balanced labeled set after this batch, floored as the authors)

P^T z is the batch's expected count per class, so the second term asks the batch to fill the classes
that lag behind the balanced share. The L1 norm is linearised with one slack per class (t_c >= +-(P^T z
- Omega)_c) and the program solved exactly by SciPy's `milp` (HiGHS; the authors used a commercial
solver). HiGHS stops at `node_limit` branch-and-bound nodes (deterministic) or `time_limit` seconds
(a safety net: a run stopped by the clock is not reproducible); then the batch is the better, by the
objective, of HiGHS's incumbent and the greedy solution (add, b times, the sample that raises the
objective least; ties at random). What happened is recorded: `acquisition_info` has the solver status,
which solution was used, and both objectives.

lam: the authors' code (Javadzb/Class-Balanced-AL, query_strategies/entropy_sampling.py, read for this) uses
0.6 for CIFAR-10 and 2 for CIFAR-100; alimb takes the dataset's value (`dataset.class_balanced_lam`, set for
cifar10 and cifar100) and 1 where the authors give none (one expected sample of imbalance against one nat of entropy).
The paper's U may use other uncertainty scores; entropy is its main setting.
"""

from __future__ import annotations

from typing import Annotated

from alimb.options import Doc, NonNegativeNumber, Positive, PositiveNumber

import time

import numpy as np

from alimb.acquisition.base import Context, Selection, as_probabilities, per_row, top_k


def objective(z: np.ndarray, u: np.ndarray, p: np.ndarray, omega: np.ndarray, lam: float) -> float:
    return float(u[z].sum() + lam * np.abs(p[z].sum(axis=0) - omega).sum())


def greedy(u: np.ndarray, p: np.ndarray, omega: np.ndarray, lam: float, budget: int,
           rng: np.random.Generator) -> np.ndarray:
    """Positions of `budget` samples added one at a time, each raising the objective least."""
    counts = np.zeros_like(omega)
    free = np.ones(len(u), dtype=bool)
    positions = np.arange(len(u))
    chosen = []
    for _ in range(budget):
        rise = u + lam * (np.abs(p + (counts - omega)).sum(axis=1) - np.abs(counts - omega).sum())
        j = int(top_k(-rise[free], positions[free], 1, rng)[0])
        chosen.append(j)
        free[j] = False
        counts += p[j]
    return np.array(chosen, dtype=np.int64)


def class_balanced(
    ctx: Context, *,
    lam: Annotated[NonNegativeNumber, Doc("weight of the class-balance term (conf: the dataset's class_balanced_lam)")] = 1.0,
    node_limit: Annotated[Positive, Doc("branch-and-bound nodes before the better of HiGHS's incumbent and the greedy "
                                        "batch is used")] = 1000,
    time_limit: Annotated[PositiveNumber, Doc("seconds: a safety net; a run stopped by the clock is not reproducible "
                                              "(recorded)")] = 60.0,
) -> Selection:
    """Entropy plus lam times the L1 gap to the balanced class counts, minimised exactly (see the module docstring)."""
    ctx.need("class_balanced", "scores")
    import scipy.sparse as sp  # on use: SciPy's solver costs ~0.4 s of start-up to every run that never calls it
    from scipy.optimize import Bounds, LinearConstraint, milp

    scores, labels, labeled_mask, n_classes, budget, rng = (ctx.scores, ctx.labels, ctx.labeled_mask, ctx.n_classes,
                                                            ctx.budget, ctx.rng)
    candidates = ctx.pool()
    p = per_row(as_probabilities, scores, candidates)  # (m, C)
    u = (p * np.log(np.clip(p, 1e-300, None))).sum(axis=1)
    counts = np.bincount(labels[labeled_mask], minlength=n_classes)
    omega = np.maximum(0, (int(labeled_mask.sum()) + budget) // n_classes - counts).astype(np.float64)
    m, c = p.shape
    cost = np.concatenate([u, np.full(c, lam)])
    pt = sp.csr_matrix(p.T)
    eye = sp.identity(c, format="csr")
    constraints = [
        LinearConstraint(sp.hstack([sp.csr_matrix(np.ones((1, m))), sp.csr_matrix((1, c))]), budget, budget),
        LinearConstraint(sp.hstack([pt, -eye]), -np.inf, omega),  # P^T z - t <= Omega
        LinearConstraint(sp.hstack([pt, eye]), omega, np.inf),  # P^T z + t >= Omega
    ]
    t0 = time.perf_counter()
    bounds = Bounds(0, np.r_[np.ones(m), np.full(c, np.inf)])
    result = milp(cost, integrality=np.r_[np.ones(m), np.zeros(c)], bounds=bounds,
                  constraints=constraints, options={"node_limit": node_limit, "time_limit": time_limit})
    status = {0: "optimal", 1: "limit", 2: "infeasible", 3: "unbounded"}.get(result.status, "error")
    info = {"solver_status": status, "solver_message": str(result.message), "solver_seconds": time.perf_counter() - t0}
    solved = None
    if result.x is not None:
        z = result.x[:m] > 0.5
        if z.sum() == budget:
            solved = np.flatnonzero(z)
            info["milp_objective"] = objective(solved, u, p, omega, lam)
    if status == "optimal" and solved is not None:
        chosen, info["used"] = solved, "milp"
    else:
        t0 = time.perf_counter()
        fallback = greedy(u, p, omega, lam, budget, rng)
        info["greedy_seconds"] = time.perf_counter() - t0
        info["greedy_objective"] = objective(fallback, u, p, omega, lam)
        better = solved is not None and info["milp_objective"] <= info["greedy_objective"]
        chosen, info["used"] = (solved, "milp_incumbent") if better else (fallback, "greedy")
        info["fallback"] = info["used"]  # not the program's proven optimum: alimb-report shows how often
    return Selection(candidates[chosen], info=info)
