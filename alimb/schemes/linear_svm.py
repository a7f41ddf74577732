"""One-vs-rest L2-regularised squared-hinge linear SVMs for all classes at once, in torch.

Minimises, for every class k, liblinear's primal objective (what scikit-learn's LinearSVC solves):

    f_k(w) = 1/2 ||w||^2 + sum_i C_ik max(0, 1 - y_ik w.[x_i, 1])^2

with the bias as an extra, regularised feature of value 1 (liblinear's intercept_scaling=1),
y_ik = +1 if sample i is of class k else -1, and liblinear's OvR weighting: C_ik = C * weight_k
for the positives of class k and C for its negatives. The classes are independent: both solvers run them all at
once (a product with X for every class is one GEMM, on GPU when there is one), each class with its own step
length, and a class leaves the products once it has converged:

- `fit_ovr_squared_hinge`: L-BFGS, its history per class (runs' solver: `scheme.solver=auto`);
- `fit_ovr_squared_hinge_newton`: a truncated Newton method (CG on the generalised Hessian, as liblinear's primal
  solver; a Hessian-vector product is two GEMMs, as an evaluation is).

Both step to the minimiser along their direction (f is a convex piecewise quadratic along a line: `_line_search`).
L-BFGS needs fewer evaluations on L2-normalised features (~16 against ~23 per warm-started fit of the paper-size
run) and far fewer on raw, nearly separable ones, where each class has fewer active rows than dimensions, its
Hessian's eigenvalues span 1 to ~10^4 and CG needs ~70 steps per Newton step (BENCHMARKS.md). Internally every
(classes, rows) array is class-major, (k, n): the classes still at work are its first axis.
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


def _signs_and_costs(y: torch.Tensor, n_classes: int, C: float, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signs y_ik and costs C_ik, class-major (K, n)."""
    pos = torch.nn.functional.one_hot(y, n_classes).T.bool()
    sign = torch.where(pos, 1.0, -1.0).to(weights.dtype)
    return sign, torch.where(pos, C * weights[:, None], torch.full_like(sign, C))


def svm_objective(
    coef: np.ndarray, intercept: np.ndarray, x: np.ndarray, y: np.ndarray, C: float, class_weight: np.ndarray | None
) -> float:
    """The objective (sum over classes) at given coef (K, d) and intercept (K,), in float64."""
    n_classes = coef.shape[0]
    w = torch.from_numpy(np.concatenate([coef, intercept[:, None]], axis=1).astype(np.float64))  # (K, d+1)
    weights = torch.from_numpy(np.ones(n_classes) if class_weight is None else np.asarray(class_weight, dtype=np.float64))
    sign, cost = _signs_and_costs(torch.from_numpy(y), n_classes, C, weights)
    hinge = (1.0 - sign * (w @ _augment(torch.from_numpy(x.astype(np.float64))).T)).clamp_min(0.0)
    return float(0.5 * (w * w).sum() + (cost * hinge * hinge).sum())


class _Problem:
    """The K problems: X with its bias feature, the signs and costs of the classes still at work (class-major), the
    stopping rule, and the work done, counted as the columns of the products with X.

    Stops when ||g|| <= tol ||g(0)|| over all classes (liblinear's primal criterion, tighter than its 1e-2 so the
    result matches its dual solver's); a class leaves (`keep`) once its own gradient is within tol ||g(0)|| / sqrt(K),
    which all of them within would meet, or when a step no longer lowers its objective at the working precision.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, n_classes: int, C: float, class_weight: torch.Tensor | None,
                 tol: float):
        self.xa, self.n_classes = _augment(x), n_classes
        weights = torch.ones(n_classes, dtype=x.dtype, device=x.device) if class_weight is None else class_weight.to(x.dtype)
        self.sign, self.cost = _signs_and_costs(y, n_classes, C, weights)
        # The gradient at w = 0 (every margin is 1) sets the target: -2 X^T (C ∘ Y), whose row k is
        # 2 (C sum_i x_i - C (weight_k + 1) sum_{y_i = k} x_i): the classes' sums, one pass over X.
        if x.is_cuda:  # a product: index_add_'s atomic adds on a GPU would sum in a different order on every run
            class_sums = torch.nn.functional.one_hot(y, n_classes).T.to(x.dtype) @ self.xa
            self.columns = n_classes
        else:
            class_sums = torch.zeros(n_classes, self.xa.shape[1], dtype=x.dtype, device=x.device).index_add_(0, y, self.xa)
            self.columns = 1  # one pass over X: as much work as one column of a product with X
        g0 = 2.0 * C * (self.xa.sum(0)[None, :] - (weights[:, None] + 1.0) * class_sums)
        self.threshold = tol * float(g0.norm())
        self.per_class = self.threshold / n_classes ** 0.5
        self.live = torch.arange(n_classes, device=x.device)  # the classes at work, in the order of the arrays' rows
        self.left = 0.0  # the squared gradient norms of the classes that left

    def product(self, p: torch.Tensor) -> torch.Tensor:
        """X p for the directions p (k, d+1) of k classes: (k, n)."""
        self.columns += len(p)
        return p @ self.xa.T

    def back(self, r: torch.Tensor) -> torch.Tensor:
        """X^T r for k classes' row weights r (k, n): (k, d+1)."""
        self.columns += len(r)
        return r @ self.xa

    def margins(self, w: torch.Tensor) -> torch.Tensor:
        """1 - y_ik w_k.x_i for the classes at work (k, n)."""
        return torch.addcmul(torch.ones_like(self.sign), self.sign, self.product(w), value=-1.0)

    def gradient(self, w: torch.Tensor, margin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The classes' gradients (k, d+1) and objectives (k,) at w, whose margins are given."""
        hinge = margin.clamp_min(0.0)
        weighted = self.cost * hinge
        objective = 0.5 * (w * w).sum(1) + (weighted * hinge).sum(1)
        return w - 2.0 * self.back(weighted.mul_(self.sign)), objective

    def converged(self, gnorm: torch.Tensor) -> bool:
        return self.left + float((gnorm * gnorm).sum()) <= self.threshold ** 2

    def keep(self, which: torch.Tensor, gnorm: torch.Tensor) -> None:
        self.left += float((gnorm[~which] ** 2).sum())
        self.live, self.sign, self.cost = self.live[which], self.sign[which], self.cost[which]

    @property
    def evaluations(self) -> float:
        """The work in objective-and-gradient equivalents: a product with X over k of the K classes is k / (2K)."""
        return self.columns / (2 * self.n_classes)


def _line_search(w: torch.Tensor, s: torch.Tensor, margin: torch.Tensor, v: torch.Tensor, cost: torch.Tensor,
                 slope0: torch.Tensor, rtol: float = 1e-4, steps: int = 30) -> torch.Tensor:
    """Per class (rows of every argument), the minimiser t >= 0 of φ(t) = f(w + t s) (k,), to |φ'(t)| <= rtol |φ'(0)|
    (slope0 = φ'(0) = g.s < 0, or 0 for a class without a step: it gets t = 0). f along s is a convex piecewise
    quadratic, φ'(t) = w.s + t s.s - 2 Σ_i c_i (m_i - t v_i)_+ v_i with m the margins at w and v_i = y_i (x_i.s).
    Newton's method on φ' from t = 1 (where a Newton direction's step is), safeguarded by a bracket [lo, hi] that
    always holds the root: bisection when a step leaves it.

    An iteration reads every term of the classes still searching (they go on alone once most have found theirs) in
    about five passes of float arithmetic (on a CPU a comparison that makes a boolean array costs three times a
    product) and sums, not scatters: the same result on every run on a GPU too."""
    ws, ss = (w * s).sum(1), (s * s).sum(1)
    t = torch.zeros_like(ws)  # a class without a step needs no search
    rows = torch.nonzero(ss > 0).squeeze(1)  # the classes still searching, and their terms and scalars
    if len(rows) == len(ss):
        m, vv, c = margin, v, cost
    else:
        m, vv, c, ws, ss, slope0 = margin[rows], v[rows], cost[rows], ws[rows], ss[rows], slope0[rows]
    cv = c * vv
    cvv = cv * vv
    tol = rtol * slope0.abs()
    t_r, lo, hi = torch.ones_like(ws), torch.zeros_like(ws), torch.full_like(ws, float("inf"))
    for _ in range(steps):
        hinge = torch.addcmul(m, vv, t_r[:, None], value=-1.0).clamp_min_(0.0)
        d1 = torch.addcmul(ws, t_r, ss).sub_((cv * hinge).sum(1), alpha=2.0)
        d2 = ss + 2.0 * (cvv * hinge.sign_()).sum(1)  # sign: 1 on the active terms, 0 elsewhere; d2 >= s.s > 0
        flat = d1.abs() <= tol  # found: t_r stays
        lo, hi = torch.where(d1 < 0, t_r, lo), torch.where(d1 > 0, t_r, hi)
        newton = t_r - d1 / d2
        inside = (newton >= lo) & (newton <= hi)  # closed: a root found exactly sits on an end of the bracket
        t_r = torch.where(flat, t_r, torch.where(inside, newton, (lo + hi) / 2))
        found = int(flat.sum())
        if found == len(flat):
            break
        if 4 * found >= 3 * len(flat):  # three quarters found: the others go on alone
            t[rows] = t_r
            keep = ~flat
            rows, m, vv, cv, cvv = rows[keep], m[keep], vv[keep], cv[keep], cvv[keep]
            ws, ss, tol, t_r, lo, hi = ws[keep], ss[keep], tol[keep], t_r[keep], lo[keep], hi[keep]
    t[rows] = t_r
    return t


def _minimise(problem: _Problem, w: torch.Tensor, direction, max_iter: int) -> tuple[torch.Tensor, int]:
    """The loop both solvers share, over the classes still at work: `direction(w, g, gnorm, margin)` gives each
    class's step direction p (k, d+1) and X p when it has it (else None); the line search steps along it; the
    margins follow from X p (no GEMM: their float32 drift is far below the tolerance). w: (K, d+1), updated in place.

    A class that is done (converged, or stalled) takes no more steps (its gradient is zero to the direction, so p = 0
    and t = 0); done classes leave the arrays, and with them the products, once they are an eighth of them: leaving
    copies the classes' (k, n) arrays, which costs about as much as a product over ~6 columns."""
    x = w[problem.live]
    margin = problem.margins(x)
    g, objective = problem.gradient(x, margin)
    steps, done = 0, torch.zeros(len(x), dtype=torch.bool, device=x.device)
    eps = torch.finfo(x.dtype).eps
    while True:
        gnorm = g.norm(dim=1)
        if problem.converged(gnorm) or steps >= max_iter:
            break
        done |= gnorm <= problem.per_class
        finished = int(done.sum())
        if finished and 8 * finished >= len(x):
            keep = ~done
            w[problem.live] = x
            problem.keep(keep, gnorm)
            x, g, objective, margin, gnorm, done = x[keep], g[keep], objective[keep], margin[keep], gnorm[keep], done[keep]
            if not len(x):
                break
            direction.keep(keep)
        if finished:
            g_moving, gnorm_moving = g.masked_fill(done[:, None], 0.0), gnorm.masked_fill(done, 0.0)
        else:
            g_moving, gnorm_moving = g, gnorm
        p, xp = direction(x, g_moving, gnorm_moving, margin)
        v = (problem.product(p) if xp is None else xp).mul_(problem.sign)
        slope = (g * p).sum(1)
        t = _line_search(x, p, margin, v, problem.cost, slope)
        step = t[:, None] * p
        x = x + step
        margin.addcmul_(v, t[:, None], value=-1.0)
        g_next, objective = problem.gradient(x, margin)
        direction.update(step, g_next - g)
        g = g_next
        # the objective no longer changes at its precision: f(w) - f(w + t p) is t |g.p| / 2 on a quadratic piece of f
        done |= 0.5 * t * slope.abs() <= eps * objective
        steps += 1
    w[problem.live] = x
    return w, steps


class _NewtonCG:
    """Per class, the Newton step: (I + 2 X^T D_k X) s_k = -g_k with D_k = diag(C_ik [margin_ik > 0]) (the
    generalised Hessian) solved by CG, all classes together, each stopping at ||r_k|| <= cg_tol ||g_k|| and then
    leaving the Hessian-vector products."""

    def __init__(self, problem: _Problem, cg_tol: float, max_cg: int):
        self.problem, self.cg_tol, self.max_cg, self.cg_steps = problem, cg_tol, max_cg, 0

    def keep(self, which: torch.Tensor) -> None:
        pass

    def update(self, step: torch.Tensor, change: torch.Tensor) -> None:
        pass

    def __call__(self, w, g, gnorm, margin):
        tiny = torch.finfo(w.dtype).tiny
        d = margin.clamp_min(0.0).sign_().mul_(self.problem.cost)  # the generalised Hessian's diagonal weights
        s, u = torch.zeros_like(w), torch.zeros_like(margin)  # u = X s
        r = -g
        p, rr, stop = r.clone(), gnorm * gnorm, (self.cg_tol * gnorm) ** 2
        live = None  # the rows of s and u still iterating; p, r, rr, stop and d are theirs (None: all)
        moving = gnorm > 0  # a class that is done (zero gradient here) takes no step
        if not bool(moving.all()):
            live = torch.nonzero(moving).squeeze(1)
            p, r, rr, stop, d = p[moving], r[moving], rr[moving], stop[moving], d[moving]
        for _ in range(self.max_cg):
            if not len(p):
                break
            xp = self.problem.product(p)
            hp = p + 2.0 * self.problem.back(d * xp)
            self.cg_steps += 1
            alpha = (rr / (p * hp).sum(1).clamp_min(tiny))[:, None]
            if live is None:
                s.add_(alpha * p)
                u.add_(alpha * xp)
            else:
                s.index_add_(0, live, alpha * p)
                u.index_add_(0, live, alpha * xp)
            r = r - alpha * hp
            rr_next = (r * r).sum(1)
            going = rr_next > stop
            if not bool(going.any()):
                break
            p = r + (rr_next / rr.clamp_min(tiny))[:, None] * p
            rr = rr_next
            if not bool(going.all()):
                live = torch.nonzero(going).squeeze(1) if live is None else live[going]
                p, r, rr, stop, d = p[going], r[going], rr[going], stop[going], d[going]
        return s, u


class _LBFGS:
    """Per class, the L-BFGS direction from its last `memory` steps and gradient changes (two-loop recursion, the
    initial Hessian scaled by s.y / y.y); the first is the steepest descent direction of unit length."""

    def __init__(self, memory: int):
        self.memory, self.steps, self.changes, self.rho = memory, [], [], []

    def keep(self, which: torch.Tensor) -> None:
        self.steps = [s[which] for s in self.steps]
        self.changes = [y[which] for y in self.changes]
        self.rho = [r[which] for r in self.rho]

    def update(self, step: torch.Tensor, change: torch.Tensor) -> None:
        sy = (step * change).sum(1)  # > 0 for a step that lowered a strictly convex f; 0 drops the pair's effect
        self.steps.append(step)
        self.changes.append(change)
        self.rho.append(torch.where(sy > 0, 1.0 / sy, 0.0))
        if len(self.steps) > self.memory:
            del self.steps[0], self.changes[0], self.rho[0]

    def __call__(self, w, g, gnorm, margin):
        if not self.steps:
            return g / -gnorm.clamp_min(torch.finfo(g.dtype).tiny)[:, None], None
        q, alphas = g.clone(), []
        for s, y, rho in zip(reversed(self.steps), reversed(self.changes), reversed(self.rho)):
            alphas.append(rho * torch.linalg.vecdot(s, q))
            q.addcmul_(y, alphas[-1][:, None], value=-1.0)
        s, y = self.steps[-1], self.changes[-1]
        sy, yy = torch.linalg.vecdot(s, y), torch.linalg.vecdot(y, y)
        q.mul_(torch.where((sy > 0) & (yy > 0), sy / yy, 1.0)[:, None])  # the initial Hessian, positive
        for s, y, rho, alpha in zip(self.steps, self.changes, self.rho, reversed(alphas)):
            q.addcmul_(s, (alpha - rho * torch.linalg.vecdot(y, q))[:, None])
        return q.neg_(), None


def _start(x: torch.Tensor, n_classes: int, w0: torch.Tensor | None) -> torch.Tensor:
    """The starting hyperplanes, class-major (K, d+1), from w0 (d+1, K) or zeros."""
    return torch.zeros(n_classes, x.shape[1] + 1, dtype=x.dtype, device=x.device) if w0 is None else w0.T.clone()


def fit_ovr_squared_hinge(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    C: float = 1.0,
    class_weight: torch.Tensor | None = None,
    w0: torch.Tensor | None = None,
    tol: float = 3e-6,
    max_iter: int = 2000,
    memory: int = 10,
) -> tuple[torch.Tensor, dict]:
    """The objective above by L-BFGS, per class (its own history, and its own step to the minimiser along its
    direction), every class at once; stops as `_Problem` says or after `max_iter` iterations. An iteration is one
    evaluation for the classes at work (X p for the line search, X^T r for the gradient).

    Returns (w (d+1, K), the last row the biases; info = {"iterations", "evaluations"}): evaluations is the work in
    objective-and-gradient equivalents, a product with X over k of the K classes counting k / (2K).
    """
    problem = _Problem(x, y, n_classes, C, class_weight, tol)
    w, steps = _minimise(problem, _start(x, n_classes, w0), _LBFGS(memory), max_iter)
    return w.T.contiguous(), {"iterations": steps, "evaluations": problem.evaluations}


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
    """The objective above by a truncated (semismooth) Newton method, every class at once (`_NewtonCG`: a
    Hessian-vector product for all classes is two GEMMs, the cost of one evaluation); stops as `_Problem` says or
    after `max_iter` Newton steps.

    Returns (w (d+1, K), info) with info = {"newton_steps", "cg_steps", "evaluations"}: cg_steps counts CG
    iterations (each over the classes still in CG), evaluations as `fit_ovr_squared_hinge`'s.
    """
    problem = _Problem(x, y, n_classes, C, class_weight, tol)
    newton = _NewtonCG(problem, cg_tol, max_cg)
    w, steps = _minimise(problem, _start(x, n_classes, w0), newton, max_iter)
    return w.T.contiguous(), {"newton_steps": steps, "cg_steps": newton.cg_steps, "evaluations": problem.evaluations}
