"""Test-set metrics of one iteration (the test set is balanced, so accuracy = mean per-class accuracy)."""

from __future__ import annotations

import numpy as np


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of every class (NaN for a class absent from y_true): (n_classes,)."""
    hits = np.bincount(y_true[y_true == y_pred], minlength=n_classes).astype(np.float64)
    support = np.bincount(y_true, minlength=n_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / support


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean over the classes present in y_true of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c) (scikit-learn's
    f1_score(average='macro', labels=the present classes), without importing it at start-up)."""
    tp = np.bincount(y_true[y_true == y_pred], minlength=n_classes).astype(np.float64)
    both = np.bincount(y_true, minlength=n_classes) + np.bincount(y_pred, minlength=n_classes)  # 2TP + FP + FN
    present = np.bincount(y_true, minlength=n_classes) > 0
    return float((2 * tp[present] / both[present]).mean()) if present.any() else float("nan")


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, minority: np.ndarray) -> dict:
    """Accuracy, macro-F1, accuracy on the pool's minority and majority classes, and each class's accuracy."""
    recall = per_class_accuracy(y_true, y_pred, n_classes)
    present = np.bincount(y_true, minlength=n_classes) > 0

    def mean_over(mask: np.ndarray) -> float:
        m = mask & present
        return float(recall[m].mean()) if m.any() else float("nan")

    return {
        "accuracy": mean_over(np.ones(n_classes, dtype=bool)),
        "macro_f1": macro_f1(y_true, y_pred, n_classes),
        "minority_accuracy": mean_over(minority),
        "majority_accuracy": mean_over(~minority),
        "per_class_accuracy": recall.tolist(),  # NaN (null in the records) for a class absent from the test set
    }


def area_under_curve(n_labeled: list[int], accuracy: list[float]) -> float:
    """Trapezoidal area under accuracy vs labeled count, normalised by the labeled range (= mean accuracy)."""
    x, y = np.asarray(n_labeled, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    if x.size < 2:
        return float(y[0]) if y.size else float("nan")
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))
