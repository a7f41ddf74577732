"""One-vs-rest L2-regularised squared-hinge linear SVMs for all classes at once, in torch.

Minimises, for every class k, liblinear's primal objective (what scikit-learn's LinearSVC solves):

    f_k(w) = 1/2 ||w||^2 + sum_i C_ik max(0, 1 - y_ik w.[x_i, 1])^2

with the bias as an extra, regularised feature of value 1 (liblinear's intercept_scaling=1),
y_ik = +1 if sample i is of class k else -1, and liblinear's OvR weighting: C_ik = C * weight_k
for the positives of class k and C for its negatives. The classes are independent, so the sum of
the f_k is minimised for all classes at once, on GPU when there is one: by a truncated Newton method
(`fit_ovr_squared_hinge_newton`, the default: a Hessian-vector product is two GEMMs, as an evaluation is)
or by full-batch L-BFGS (`fit_ovr_squared_hinge`).

Which is faster depends on the features. On L2-normalised features (what runs train on by default) Newton
converges in a few steps of a few CG iterations each; on raw, nearly separable features its active sets keep
changing, steps stay short and L-BFGS is the faster one (`scheme.solver=lbfgs`): BENCHMARKS.md has both.
"""

from __future__ import annotations

import numpy as np
import torch


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """n_labeled / (n_present_classes * n_c), as scikit-learn's class_weight='balanced'; 1 for absent classes."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights


def _augment(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], dim=1)


def _costs(y: torch.Tensor, n_classes: int, C: float, class_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signs y_ik (n, K) and per-entry costs C_ik (n, K)."""
    pos = torch.nn.functional.one_hot(y, n_classes).bool()
    sign = torch.where(pos, 1.0, -1.0).to(class_weight.dtype)
    cost = torch.where(pos, C * class_weight[None, :], torch.full_like(sign, C))
    return sign, cost


def objective_and_grad(
    w: torch.Tensor, xa: torch.Tensor, sign: torch.Tensor, cost: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over classes of f_k and its gradient; w: (d+1, K), xa: (n, d+1), sign/cost: (n, K)."""
    viol = torch.clamp_min(1.0 - sign * (xa @ w), 0.0)  # (n, K)
    cv = cost * viol
    loss = 0.5 * (w * w).sum() + (cv * viol).sum()
    grad = w - 2.0 * (xa.T @ (cv * sign))
    return loss, grad


def svm_objective(
    coef: np.ndarray, intercept: np.ndarray, x: np.ndarray, y: np.ndarray, C: float, class_weight: np.ndarray | None
) -> float:
    """The objective (sum over classes) at given coef (K, d) and intercept (K,), in float64."""
    n_classes = coef.shape[0]
    w = torch.from_numpy(np.concatenate([coef, intercept[:, None]], axis=1).T.astype(np.float64))
    weights = torch.from_numpy(np.ones(n_classes) if class_weight is None else np.asarray(class_weight, dtype=np.float64))
    sign, cost = _costs(torch.from_numpy(y), n_classes, C, weights)
    loss, _ = objective_and_grad(w, _augment(torch.from_numpy(x.astype(np.float64))), sign, cost)
    return float(loss)


def fit_ovr_squared_hinge(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    C: float = 1.0,
    class_weight: torch.Tensor | None = None,
    w0: torch.Tensor | None = None,
    tol: float = 3e-6,
    max_iter: int = 2000,
) -> torch.Tensor:
    """Minimise the objective above; returns w: (d+1, K), the last row the biases.

    Stops when the gradient's norm falls below `tol` times its norm at w = 0 (liblinear's primal
    criterion, tighter than its 1e-2 so the result matches its dual solver's), or when a chunk of
    iterations no longer lowers the objective measurably at the working precision.
    """
    xa = _augment(x)
    weights = torch.ones(n_classes, dtype=x.dtype, device=x.device) if class_weight is None else class_weight
    sign, cost = _costs(y, n_classes, C, weights.to(x.dtype))
    w = torch.zeros(xa.shape[1], n_classes, dtype=x.dtype, device=x.device) if w0 is None else w0.clone()
    _, g0 = objective_and_grad(torch.zeros_like(w), xa, sign, cost)
    threshold = tol * float(g0.norm())
    param = torch.nn.Parameter(w)
    chunk = 10  # L-BFGS iterations between convergence checks; its history persists across steps
    opt = torch.optim.LBFGS(
        [param], lr=1.0, max_iter=chunk, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=0.0, tolerance_change=0.0,
    )

    def closure():
        loss, param.grad = objective_and_grad(param.data, xa, sign, cost)
        return loss

    previous = float("inf")
    for _ in range(max(1, max_iter // chunk)):
        opt.step(closure)
        loss, grad = objective_and_grad(param.data, xa, sign, cost)
        stalled = previous - float(loss) <= 10 * torch.finfo(x.dtype).eps * abs(float(loss))
        if float(grad.norm()) <= threshold or stalled:
            break
        previous = float(loss)
    return param.data.detach()


def _line_search(w: torch.Tensor, s: torch.Tensor, margin: torch.Tensor, v: torch.Tensor, cost: torch.Tensor,
                 steps: int = 30) -> torch.Tensor:
    """Per class, the exact minimiser t >= 0 of f(w + t s) (K,): f along s is a convex piecewise quadratic,
    φ'(t) = w.s + t s.s - 2 Σ_i c_i (m_i - t v_i)_+ v_i with m the margins at w and v_i = y_i (x_i.s); safeguarded
    Newton on φ' inside a bracket [lo, hi] that always holds the root (bisection when a step leaves it)."""
    ws, ss = (w * s).sum(0), (s * s).sum(0)

    def slope(t):
        active = (margin - t * v).clamp_min(0.0)
        return ws + t * ss - 2.0 * (cost * active * v).sum(0), ss + 2.0 * (cost * v * v * (active > 0)).sum(0)

    lo, hi = torch.zeros_like(ws), torch.ones_like(ws)
    d1, _ = slope(hi)
    for _ in range(60):  # widen until the bracket holds the root (a Newton step of 1 is usually right already)
        grow = d1 < 0
        if not bool(grow.any()):
            break
        lo, hi = torch.where(grow, hi, lo), torch.where(grow, hi * 2, hi)
        d1, _ = slope(hi)
    still = ss > 0  # a class that takes no step (converged already) needs no search
    t = torch.where(still, torch.ones_like(ws).clamp(lo, hi), 0.0)
    for _ in range(steps):
        d1, d2 = slope(t)
        lo, hi = torch.where(d1 < 0, t, lo), torch.where(d1 > 0, t, hi)
        newton = t - d1 / d2.clamp_min(torch.finfo(t.dtype).tiny)
        inside = (newton > lo) & (newton < hi)
        t_next = torch.where(still, torch.where(inside, newton, (lo + hi) / 2), 0.0)
        if bool(((t_next - t).abs() <= 1e-6 * t.abs()).all()):
            return t_next
        t = t_next
    return t


def fit_ovr_squared_hinge_newton(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    C: float = 1.0,
    class_weight: torch.Tensor | None = None,
    w0: torch.Tensor | None = None,
    tol: float = 3e-6,
    max_iter: int = 200,
    cg_tol: float = 0.1,
    max_cg: int = 200,
) -> tuple[torch.Tensor, dict]:
    """The objective above by a truncated (semismooth) Newton method, every class at once.

    Each Newton step solves, per class k, (I + 2 X^T D_k X) s_k = -g_k with D_k = diag(C_ik [margin_ik > 0])
    (the generalised Hessian, as liblinear's primal solver) by conjugate gradients run on all classes together:
    one Hessian-vector product for all of them is two GEMMs, the cost of one objective-and-gradient evaluation.
    CG stops per class at ||r_k|| <= cg_tol ||g_k||; the step length is the exact minimiser along s_k (cheap: f is
    piecewise quadratic along a line, and X s_k comes out of CG). Stops when ||g|| <= tol ||g(0)|| (the L-BFGS
    solver's criterion), when a step no longer lowers the objective at the working precision, or after
    `max_iter` Newton steps.

    Returns (w (d+1, K), info) with info = {"newton_steps", "cg_steps", "evaluations"}: evaluations counts
    pairs of GEMMs over X (objective-and-gradient evaluations and Hessian-vector products alike).
    """
    xa = _augment(x)
    weights = torch.ones(n_classes, dtype=x.dtype, device=x.device) if class_weight is None else class_weight
    sign, cost = _costs(y, n_classes, C, weights.to(x.dtype))
    w = torch.zeros(xa.shape[1], n_classes, dtype=x.dtype, device=x.device) if w0 is None else w0.clone()
    g0 = 2.0 * (xa.T @ (cost * sign))  # the gradient at w = 0 (every margin is 1): its norm sets the target
    threshold = tol * float(g0.norm())
    per_class = threshold / n_classes ** 0.5  # every class within this: the whole gradient within `threshold`
    gemms, steps, cg_total = 1, 0, 0
    z = xa @ w
    gemms += 1
    previous = float("inf")
    while True:
        margin = 1.0 - sign * z
        active = margin > 0
        hinge = margin.clamp_min(0.0)
        objective = 0.5 * float((w * w).sum()) + float((cost * hinge * hinge).sum())
        grad = w - 2.0 * (xa.T @ (cost * sign * hinge))
        gemms += 1
        gnorm = grad.norm(dim=0)
        stalled = previous - objective <= 10 * torch.finfo(x.dtype).eps * abs(objective)  # the precision's floor
        if float(gnorm.norm()) <= threshold or stalled or steps >= max_iter:
            break
        previous = objective
        todo = gnorm > per_class  # classes already converged take no step
        d = cost * active  # the generalised Hessian's diagonal weights (n, K)
        s, r = torch.zeros_like(w), torch.where(todo, -grad, 0.0)
        p, u = r.clone(), torch.zeros_like(z)  # u accumulates X s alongside s
        rr = (r * r).sum(0)
        stop = (cg_tol * gnorm) ** 2
        tiny = torch.finfo(x.dtype).tiny
        for _ in range(max_cg):
            xp = xa @ p
            hp = p + 2.0 * (xa.T @ (d * xp))
            gemms += 2
            cg_total += 1
            alpha = torch.where(rr > stop, rr / (p * hp).sum(0).clamp_min(tiny), 0.0)
            s += alpha * p
            u += alpha * xp
            r -= alpha * hp
            rr_next = (r * r).sum(0)
            if not bool((rr_next > stop).any()):
                break
            p = r + (rr_next / rr.clamp_min(tiny)) * p
            rr = rr_next
        t = _line_search(w, s, margin, sign * u, cost)
        w = w + t * s
        z = z + t * u  # X w follows from CG's X s: no GEMM (its float32 drift is far below the tolerance)
        steps += 1
    return w, {"newton_steps": steps, "cg_steps": cg_total, "evaluations": gemms / 2}
