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
converges in a few steps of a few CG iterations each; on raw, nearly separable features each class has fewer
active rows than dimensions, its Hessian's eigenvalues span 1 to ~10^4, CG needs ~70 steps per Newton step and
L-BFGS is the faster one (`scheme.solver=lbfgs`): BENCHMARKS.md has both.
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
    Newton on φ' inside a bracket [lo, hi] that always holds the root (bisection when a step leaves it).

    Once the bracket is found, a term active (m_i - t v_i > 0) at both of its ends is active all through it and one
    inactive at both ends stays inactive (m - t v is linear in t): their sums are taken once, and the Newton
    iterations read only the few terms that change state inside the bracket."""
    ws, ss = (w * s).sum(0), (s * s).sum(0)

    def slope(t):
        active = (margin - t * v).clamp_min(0.0)
        return ws + t * ss - 2.0 * (cost * active * v).sum(0)

    lo, hi = torch.zeros_like(ws), torch.ones_like(ws)
    d1 = slope(hi)
    for _ in range(60):  # widen until the bracket holds the root (a Newton step of 1 is usually right already)
        grow = d1 < 0
        if not bool(grow.any()):
            break
        lo, hi = torch.where(grow, hi, lo), torch.where(grow, hi * 2, hi)
        d1 = slope(hi)
    at_lo, at_hi = margin - lo * v > 0, margin - hi * v > 0
    throughout = at_lo & at_hi
    cv = cost * v * throughout
    fixed1, fixed2 = ws - 2.0 * (cv * margin).sum(0), ss + 2.0 * (cv * v).sum(0)  # φ'(t) = fixed1 + t fixed2 + ...
    switches = at_lo != at_hi  # the terms that change state inside the bracket: per class, the rows gathered
    rows = torch.topk(switches.to(margin.dtype), int(switches.sum(0).max()), dim=0).indices  # (at most, K), padded
    m_s, v_s = margin.gather(0, rows), v.gather(0, rows)
    c_s = torch.where(switches.gather(0, rows), cost.gather(0, rows), 0.0)  # padding: no weight

    def slope_and_curvature(t):  # sums, not scatters: the same result on every run on a GPU too
        cvs = torch.where(m_s - t * v_s > 0, c_s * v_s, 0.0)
        return fixed1 + t * fixed2 - 2.0 * (cvs * (m_s - t * v_s)).sum(0), fixed2 + 2.0 * (cvs * v_s).sum(0)

    still = ss > 0  # a class that takes no step (converged already) needs no search
    t = torch.where(still, torch.ones_like(ws).clamp(lo, hi), 0.0)
    for _ in range(steps):
        d1, d2 = slope_and_curvature(t)
        lo, hi = torch.where(d1 < 0, t, lo), torch.where(d1 > 0, t, hi)
        newton = t - d1 / d2.clamp_min(torch.finfo(t.dtype).tiny)
        inside = (newton >= lo) & (newton <= hi)  # closed: a root found exactly sits on an end of the bracket
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

    The classes are independent, so each GEMM takes only the columns of the classes still at work: a class whose
    gradient is within its share of the tolerance takes no Newton step (and its gradient, unchanged, is not
    recomputed), and a class whose CG has converged leaves the CG iterations' GEMMs.

    Returns (w (d+1, K), info) with info = {"newton_steps", "cg_steps", "evaluations"}: cg_steps counts CG
    iterations (each over the classes still in CG), evaluations the work in objective-and-gradient equivalents:
    a GEMM over X with k of the K classes' columns counts k / (2K), so a Hessian-vector product or a gradient for
    every class is one.
    """
    xa = _augment(x)
    weights = torch.ones(n_classes, dtype=x.dtype, device=x.device) if class_weight is None else class_weight
    sign, cost = _costs(y, n_classes, C, weights.to(x.dtype))
    w = torch.zeros(xa.shape[1], n_classes, dtype=x.dtype, device=x.device) if w0 is None else w0.clone()
    # The gradient at w = 0 (every margin is 1) sets the target: -2 X^T (C ∘ Y), whose column k is
    # 2 (C sum_i x_i - C (weight_k + 1) sum_{y_i = k} x_i): the classes' sums, one pass over X.
    if x.is_cuda:  # a product: index_add_'s atomic adds on a GPU would sum in a different order on every run
        class_sums = torch.nn.functional.one_hot(y, n_classes).T.to(x.dtype) @ xa
        columns = n_classes
    else:
        class_sums = torch.zeros(n_classes, xa.shape[1], dtype=x.dtype, device=x.device).index_add_(0, y, xa)
        columns = 1  # one pass over X: as much work as one column of a product with X
    g0 = 2.0 * C * (xa.sum(0)[:, None] - (weights.to(x.dtype) + 1.0) * class_sums.T)
    threshold = tol * float(g0.norm())
    per_class = threshold / n_classes ** 0.5  # every class within this: the whole gradient within `threshold`
    z = xa @ w
    columns += n_classes
    steps, cg_total, previous = 0, 0, float("inf")
    grad = torch.empty_like(w)
    every = slice(None)
    moved = every  # the classes whose w changed: their gradient is recomputed (a slice: no copies for all of them)
    tiny = torch.finfo(x.dtype).tiny
    while True:
        margin = 1.0 - sign * z
        hinge = margin.clamp_min(0.0)
        objective = 0.5 * float((w * w).sum()) + float((cost * hinge * hinge).sum())
        grad[:, moved] = w[:, moved] - 2.0 * (xa.T @ (cost * sign * hinge)[:, moved])
        columns += n_classes if moved is every else len(moved)
        gnorm = grad.norm(dim=0)
        stalled = previous - objective <= 10 * torch.finfo(x.dtype).eps * abs(objective)  # the precision's floor
        if float(gnorm.norm()) <= threshold or stalled or steps >= max_iter:
            break
        previous = objective
        todo = torch.nonzero(gnorm > per_class).squeeze(1)  # classes already converged take no step
        width = len(todo)
        todo = every if width == n_classes else todo
        # CG on the todo classes' columns; `live` indexes the ones still iterating, p, r, rr, stop, d are theirs
        d = (cost * (margin > 0))[:, todo]  # the generalised Hessian's diagonal weights
        s, u = torch.zeros(len(w), width, dtype=w.dtype, device=w.device), torch.zeros_like(d)  # u = X s
        r = -grad[:, todo]
        p, rr, stop = r.clone(), (r * r).sum(0), (cg_tol * gnorm[todo]) ** 2
        live = torch.arange(width, device=x.device)
        for _ in range(max_cg):
            xp = xa @ p
            hp = p + 2.0 * (xa.T @ (d * xp))
            columns += 2 * len(live)
            cg_total += 1
            alpha = rr / (p * hp).sum(0).clamp_min(tiny)
            s.index_add_(1, live, alpha * p)
            u.index_add_(1, live, alpha * xp)
            r = r - alpha * hp
            rr_next = (r * r).sum(0)
            going = rr_next > stop
            if not bool(going.any()):
                break
            p = r + (rr_next / rr.clamp_min(tiny)) * p
            rr = rr_next
            if not bool(going.all()):
                p, r, rr, stop, d, live = p[:, going], r[:, going], rr[going], stop[going], d[:, going], live[going]
        t = _line_search(w[:, todo], s, margin[:, todo], sign[:, todo] * u, cost[:, todo])
        w[:, todo] += t * s
        z[:, todo] += t * u  # X w follows from CG's X s: no GEMM (its float32 drift is far below the tolerance)
        moved = todo
        steps += 1
    return w, {"newton_steps": steps, "cg_steps": cg_total, "evaluations": columns / (2 * n_classes)}
