"""One-vs-rest L2-regularised squared-hinge linear SVMs for all classes at once, in torch.

Minimises, for every class k, liblinear's primal objective (what scikit-learn's LinearSVC solves):

    f_k(w) = 1/2 ||w||^2 + sum_i C_ik max(0, 1 - y_ik w.[x_i, 1])^2

with the bias as an extra, regularised feature of value 1 (liblinear's intercept_scaling=1),
y_ik = +1 if sample i is of class k else -1, and liblinear's OvR weighting: C_ik = C * weight_k
for the positives of class k and C for its negatives. The classes are independent, so the sum of
the f_k is minimised full-batch with L-BFGS: two GEMMs per evaluation, on GPU when there is one.
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
