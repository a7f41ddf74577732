"""SVM and CS-SVM schemes (transfer learning): linear SVMs over fixed features F_g."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.svm import LinearSVC

from alimb.devices import resolve_device
from alimb.schemes import Inputs
from alimb.schemes.linear_svm import balanced_class_weights, fit_ovr_squared_hinge


class LinearSVMScheme:
    """One-vs-rest squared-hinge linear SVMs over F_g; `class_weight='balanced'` makes it CS-SVM."""

    needs_images = False

    def __init__(
        self,
        C: float = 1.0,
        class_weight: str | None = None,
        solver: str = "torch",
        tol: float = 3e-6,
        max_iter: int = 2000,
        warm_start: bool = True,
        device: str = "auto",
    ):
        self.C, self.class_weight, self.solver, self.tol, self.max_iter = C, class_weight, solver, tol, max_iter
        self.warm_start, self.device = warm_start, resolve_device(device)
        self.coef: np.ndarray | None = None  # (d, K)
        self.intercept: np.ndarray | None = None  # (K,)
        self._w: torch.Tensor | None = None  # (d+1, K) torch solution kept for warm starts

    def fit(self, inputs: Inputs, y: np.ndarray, n_classes: int, rng: np.random.Generator | None = None) -> dict:
        """Train on the labeled samples' features (n, d) and labels y: (n,); deterministic (rng unused)."""
        self.fit_arrays(inputs.features, y, n_classes)
        return {}

    def fit_arrays(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        if self.solver == "liblinear":
            self._fit_liblinear(x, y, n_classes)
            return
        weights = balanced_class_weights(y, n_classes) if self.class_weight == "balanced" else np.ones(n_classes)
        xt = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        w0 = self._w if self.warm_start and self._w is not None and self._w.shape == (x.shape[1] + 1, n_classes) else None
        self._w = fit_ovr_squared_hinge(
            xt, torch.as_tensor(y, device=self.device), n_classes, self.C,
            torch.as_tensor(weights, dtype=torch.float32, device=self.device), w0, self.tol, self.max_iter,
        )
        w = self._w.cpu().numpy()
        self.coef, self.intercept = w[:-1], w[-1]

    def _fit_liblinear(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        """scikit-learn's LinearSVC, for cross-checks; classes absent from y score below every other."""
        svc = LinearSVC(C=self.C, class_weight=self.class_weight, tol=1e-4, max_iter=10 * self.max_iter).fit(x, y)
        coef = np.zeros((x.shape[1], n_classes), dtype=np.float32)
        intercept = np.full(n_classes, np.nan, dtype=np.float32)
        present = svc.classes_
        if present.size == 2:  # a binary LinearSVC learns one hyperplane: +f for classes_[1], -f for [0]
            coef[:, present[1]], intercept[present[1]] = svc.coef_[0], svc.intercept_[0]
            coef[:, present[0]], intercept[present[0]] = -svc.coef_[0], -svc.intercept_[0]
        else:
            coef[:, present], intercept[present] = svc.coef_.T, svc.intercept_
        self._absent = np.isnan(intercept)
        self.coef, self.intercept = coef, np.nan_to_num(intercept)

    def state_dict(self) -> dict[str, np.ndarray]:
        """What a resumed run needs to continue exactly: the solution (and the warm start)."""
        if self.coef is None:
            return {}
        state = {"coef": self.coef, "intercept": self.intercept}
        if self._w is not None:
            state["w"] = self._w.cpu().numpy()
        if self.solver == "liblinear":
            state["absent"] = self._absent
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.coef, self.intercept = state.get("coef"), state.get("intercept")
        if "w" in state:
            self._w = torch.as_tensor(state["w"], device=self.device)
        if "absent" in state:
            self._absent = state["absent"]

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
        values = np.asarray(x, dtype=np.float32) @ self.coef + self.intercept
        if self.solver == "liblinear" and self._absent.any():
            values[:, self._absent] = values[:, ~self._absent].min() - 1.0
        return values

