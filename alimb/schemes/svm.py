"""SVM and CS-SVM schemes (transfer learning): linear SVMs over fixed features F_g.

The scheme owns what is common (class weights, the hyperplanes, decision values, the saved state); each solver
is one class that owns everything particular to it (how it fits, what it keeps between fits, how it scores a
class it never saw): `SOLVERS` maps `scheme.solver` to it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import numpy as np
import torch

from alimb.devices import resolve_device
from alimb.options import Device, Doc, Positive, PositiveNumber
from alimb.schemes import Inputs
from alimb.schemes.linear_svm import balanced_class_weights, fit_ovr_squared_hinge, fit_ovr_squared_hinge_newton


class TorchSolver:
    """All classes at once in torch (GPU when present) by L-BFGS, each class with its own history and step, warm-
    started from the previous fit; records its work (iterations, evaluation-equivalents) in `info`."""

    def __init__(self, tol: float, max_iter: int, warm_start: bool, device: str):
        self.tol, self.max_iter, self.warm_start, self.device = tol, max_iter, warm_start, resolve_device(device)
        self._w: torch.Tensor | None = None  # (d+1, K): the last solution, the next fit's start
        self.info: dict | None = None  # what the last fit reports of its work

    minimise = staticmethod(fit_ovr_squared_hinge)

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int, C: float, weights: np.ndarray) -> np.ndarray:
        """(d+1, K) hyperplanes, the intercepts in the last row."""
        xt = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        w0 = self._w if self.warm_start and self._w is not None and self._w.shape == (x.shape[1] + 1, n_classes) else None
        self._w, self.info = self.minimise(
            xt, torch.as_tensor(y, device=self.device), n_classes, C,
            torch.as_tensor(weights, dtype=torch.float32, device=self.device), w0, self.tol, self.max_iter,
        )
        return self._w.cpu().numpy()

    def adjust(self, values: np.ndarray) -> np.ndarray:
        return values  # a class without labeled samples has its own (all-negative) hyperplane

    def state_dict(self) -> dict[str, np.ndarray]:
        return {} if self._w is None else {"w": self._w.cpu().numpy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if "w" in state:
            self._w = torch.as_tensor(state["w"], device=self.device)


class NewtonSolver(TorchSolver):
    """All classes at once by a truncated Newton method (CG on the generalised Hessian, a line search to the
    minimiser along each step), warm-started; records its work (Newton steps, CG steps, evaluation-equivalents) in
    `info`."""

    minimise = staticmethod(fit_ovr_squared_hinge_newton)


class AutoSolver(TorchSolver):
    """Fit by fit, L-BFGS on problems of at least SIZE multiply-adds per product with X (n (d+1) K) and Newton on
    smaller ones. L-BFGS needs fewer evaluations, but more, smaller steps, each a few dozen torch operations whose
    fixed cost dominates a small problem: measured on CPU (BENCHMARKS.md), Newton is faster up to ~5-13 M
    (digits: <= 0.3 M), L-BFGS from ~8-30 M (the paper-size run: 26-410 M). The choice is a function of the fit's
    size, so a resumed run makes the same ones."""

    SIZE = 2 ** 24

    def minimise(self, x, y, n_classes, *args):
        large = len(x) * (x.shape[1] + 1) * n_classes >= self.SIZE
        return (fit_ovr_squared_hinge if large else fit_ovr_squared_hinge_newton)(x, y, n_classes, *args)


class LiblinearSolver:
    """scikit-learn's LinearSVC, for cross-checks; classes absent from y score below every other."""

    def __init__(self, tol: float, max_iter: int, warm_start: bool, device: str):
        self.max_iter = max_iter  # liblinear's own tolerance (1e-4) and no warm start: the reference as shipped
        self._absent: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int, C: float, weights: np.ndarray) -> np.ndarray:
        from sklearn.svm import LinearSVC

        present = np.unique(y)
        svc = LinearSVC(C=C, class_weight=dict(zip(present.tolist(), weights[present].tolist())), tol=1e-4,
                        max_iter=10 * self.max_iter).fit(x, y)
        w = np.zeros((x.shape[1] + 1, n_classes), dtype=np.float32)
        w[-1] = np.nan
        if present.size == 2:  # a binary LinearSVC learns one hyperplane: +f for classes_[1], -f for [0]
            w[:-1, present[1]], w[-1, present[1]] = svc.coef_[0], svc.intercept_[0]
            w[:-1, present[0]], w[-1, present[0]] = -svc.coef_[0], -svc.intercept_[0]
        else:
            w[:-1, present], w[-1, present] = svc.coef_.T, svc.intercept_
        self._absent = np.isnan(w[-1])
        return np.nan_to_num(w)

    def adjust(self, values: np.ndarray) -> np.ndarray:
        if self._absent is not None and self._absent.any():
            values[:, self._absent] = values[:, ~self._absent].min() - 1.0
        return values

    def state_dict(self) -> dict[str, np.ndarray]:
        return {} if self._absent is None else {"absent": self._absent}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._absent = state.get("absent")


SOLVERS = {"auto": AutoSolver, "newton": NewtonSolver, "lbfgs": TorchSolver, "liblinear": LiblinearSolver}


class LinearSVMScheme:
    """One-vs-rest squared-hinge linear SVMs over F_g; `class_weight='balanced'` makes it CS-SVM."""

    needs_images = False

    def __init__(
        self,
        C: Annotated[PositiveNumber, Doc("the SVMs' regularisation (liblinear's C)")] = 1.0,
        class_weight: Annotated[Optional[Literal["balanced"]], Doc(
            "balanced: n_labeled / (n_classes * n_c), as scikit-learn's (CS-SVM); null: none")] = None,
        solver: Annotated[Literal["auto", "newton", "lbfgs", "liblinear"], Doc(
            "lbfgs or newton (truncated Newton), all classes at once in torch; auto: lbfgs on large problems, newton "
            "on small ones, whichever is faster at the fit's size (BENCHMARKS.md); liblinear: LinearSVC, for "
            "cross-checks")] = "auto",
        tol: Annotated[PositiveNumber, Doc("gradient norm relative to its value at w=0; matches liblinear's "
                                           "objective within 1e-4")] = 3e-6,
        max_iter: Annotated[Positive, Doc("iterations of the solver per fit")] = 2000,
        warm_start: Annotated[bool, Doc("start from the previous iteration's solution")] = True,
        device: Device = "auto",
    ):
        self.C, self.class_weight, self.solver = C, class_weight, solver
        self._options = (tol, max_iter, warm_start, device)
        self._solver = SOLVERS[solver](*self._options)
        self.coef: np.ndarray | None = None  # (d, K)
        self.intercept: np.ndarray | None = None  # (K,)

    @property
    def device(self) -> torch.device:
        return resolve_device(self._options[3])

    def fit(self, inputs: Inputs, y: np.ndarray, n_classes: int, rng: np.random.Generator | None = None) -> dict:
        """Train on the labeled samples' features (n, d) and labels y: (n,); deterministic (rng unused)."""
        info = self.fit_arrays(inputs.features, y, n_classes)
        return {"train_info": info} if info else {}

    def fit_arrays(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> dict | None:
        """Train on (n, d) features; returns what the solver reports of its work (None: nothing)."""
        weights = balanced_class_weights(y, n_classes) if self.class_weight == "balanced" else np.ones(n_classes)
        w = self._solver.fit(x, y, n_classes, self.C, weights)
        self.coef, self.intercept = w[:-1], w[-1]
        return getattr(self._solver, "info", None)

    def state_dict(self) -> dict[str, np.ndarray]:
        """What a resumed run needs to continue exactly: the solution and the solver's own state (warm start)."""
        if self.coef is None:
            return {}
        return {"coef": self.coef, "intercept": self.intercept, **self._solver.state_dict()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.coef, self.intercept = state.get("coef"), state.get("intercept")
        if "solver" in state:  # earlier versions' auto chose a solver once and saved it: a resume goes on with it
            self._solver = SOLVERS[str(state["solver"])](*self._options)
        self._solver.load_state_dict(state)

    def score(self, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """(decision values (n, K), F_g itself: the SVM works in the backbone's feature space)."""
        return self.scores(inputs.features), np.asarray(inputs.features)

    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """(coef (d, K), intercept (K,)): the SVMs' hyperplanes in F_g."""
        return self.coef, self.intercept

    def predict(self, inputs: Inputs) -> np.ndarray:
        return self.scores(inputs.features).argmax(axis=1)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Decision values (n, K) of feature vectors x: (n, d)."""
        if self.coef is None:
            raise RuntimeError("scores() before fit()")
        return self._solver.adjust(np.asarray(x, dtype=np.float32) @ self.coef + self.intercept)
