"""The torch SVM solves liblinear's objective (what sklearn's LinearSVC minimises)."""

import numpy as np
import pytest
import torch
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_class_weight

from alimb.schemes.linear_svm import (balanced_class_weights, fit_ovr_squared_hinge, fit_ovr_squared_hinge_newton,
                                      svm_objective)
from alimb.schemes import Inputs
from alimb.schemes.svm import LinearSVMScheme


def blobs(n_classes=5, n=300, d=10, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(n_classes, n, p=np.linspace(1, 0.2, n_classes) / np.linspace(1, 0.2, n_classes).sum())
    x = (rng.normal(size=(n, d)) + 1.5 * rng.normal(size=(n_classes, d))[y]).astype(np.float32)
    return x, y


def test_balanced_weights_equal_sklearn():
    y = np.array([0, 0, 0, 1, 2, 2])
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=y)
    np.testing.assert_allclose(balanced_class_weights(y, 3), expected)
    assert balanced_class_weights(y, 4)[3] == 1.0  # absent class: no positives, weight irrelevant


def lbfgs(*args, **kwargs):
    return fit_ovr_squared_hinge(*args, **kwargs)[0]


def newton(*args, **kwargs):
    return fit_ovr_squared_hinge_newton(*args, **kwargs)[0]


@pytest.mark.parametrize("fit", [lbfgs, newton], ids=["lbfgs", "newton"])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_objective_matches_liblinear(class_weight, fit):
    x, y = blobs()
    ref = LinearSVC(C=0.5, class_weight=class_weight, tol=1e-6, max_iter=100_000).fit(x, y)
    cw = balanced_class_weights(y, 5) if class_weight else None
    w = fit(
        torch.from_numpy(x).double(), torch.from_numpy(y), 5, 0.5,
        None if cw is None else torch.from_numpy(cw), tol=1e-7,
    ).numpy()
    ours = svm_objective(w[:-1].T, w[-1], x, y, 0.5, cw)
    theirs = svm_objective(ref.coef_, ref.intercept_, x, y, 0.5, cw)
    assert abs(ours - theirs) / theirs <= 1e-4
    assert (np.argmax(x @ w[:-1] + w[-1], 1) == ref.predict(x)).mean() > 0.98


def test_objective_of_a_hand_computed_case():
    # one sample x=[1] of class 0, two classes, w=0: each class has one violation of 1 -> C * 1
    assert svm_objective(np.zeros((2, 1)), np.zeros(2), np.ones((1, 1)), np.array([0]), 2.0, None) == 4.0
    # w0 = [1], b0 = 1: margin 2 for class 0 -> no loss, regulariser 1/2 (1 + 1)
    assert svm_objective(np.array([[1.0], [0.0]]), np.array([1.0, 0.0]), np.ones((1, 1)), np.array([0]), 2.0, None) == 3.0


@pytest.mark.parametrize("solver", ["newton", "lbfgs", "liblinear"])
def test_scheme_scores_predict_and_absent_classes(solver):
    x, y = blobs()
    y[y == 4] = 3  # class 4 absent from the labeled set
    scheme = LinearSVMScheme(class_weight="balanced", solver=solver, device="cpu")
    scheme.fit_arrays(x, y, n_classes=5)
    scores = scheme.scores(x)
    assert scores.shape == (300, 5) and np.isfinite(scores).all()
    assert (scheme.scores(x).argmax(1) != 4).all(), "a class with no labeled sample is never predicted"
    assert (scheme.scores(x).argmax(1) == y).mean() > 0.8
    np.testing.assert_array_equal(scheme.score(Inputs(features=x))[1], x)


def test_torch_and_liblinear_schemes_agree():
    x, y = blobs(seed=1)
    a = LinearSVMScheme(class_weight="balanced", device="cpu")
    b = LinearSVMScheme(class_weight="balanced", solver="liblinear")
    a.fit_arrays(x, y, 5)
    b.fit_arrays(x, y, 5)
    assert (a.predict(Inputs(features=x)) == b.predict(Inputs(features=x))).mean() > 0.97


@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
def test_warm_start_reaches_the_same_solution(solver):
    x, y = blobs(seed=2)
    cold = LinearSVMScheme(device="cpu", warm_start=False, solver=solver)
    warm = LinearSVMScheme(device="cpu", solver=solver)
    warm.fit_arrays(x[:150], y[:150], 5)
    cold.fit_arrays(x, y, 5)
    warm.fit_arrays(x, y, 5)
    f = lambda s: svm_objective(s.coef.T.astype(np.float64), s.intercept.astype(np.float64), x, y, 1.0, None)  # noqa: E731
    assert abs(f(warm) - f(cold)) / f(cold) <= 1e-4


@pytest.mark.parametrize("fit", [fit_ovr_squared_hinge, fit_ovr_squared_hinge_newton], ids=["lbfgs", "newton"])
def test_float32_solvers_reach_liblinears_objective(fit):
    """L2-normalised features (what runs use), 20 classes, cost-sensitive: within 1e-5 of liblinear's objective
    (which is solved to 1e-8 here)."""
    rng = np.random.default_rng(3)
    y = rng.choice(20, 1500, p=np.geomspace(1, 0.05, 20) / np.geomspace(1, 0.05, 20).sum())
    x = rng.normal(size=(1500, 48)) + 2.0 * rng.normal(size=(20, 48))[y]
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    cw = balanced_class_weights(y, 20)
    ref = LinearSVC(C=1.0, class_weight="balanced", tol=1e-8, max_iter=1_000_000).fit(x, y)
    w, info = fit(torch.from_numpy(x), torch.from_numpy(y), 20, 1.0, torch.from_numpy(cw).float())
    ours = svm_objective(w[:-1].numpy().T.astype(np.float64), w[-1].numpy().astype(np.float64), x, y, 1.0, cw)
    theirs = svm_objective(ref.coef_, ref.intercept_, x, y, 1.0, cw)
    assert (ours - theirs) / theirs <= 1e-5
    assert 0 < info.get("newton_steps", info.get("iterations")) < 200


def test_lbfgs_on_raw_nearly_separable_features_reaches_liblinears_objective():
    """Raw features, more dimensions than positives per class (the problem where Newton's Hessians are
    ill-conditioned): float32 L-BFGS within 1e-5 of liblinear's objective. The objective here is ~0.74, almost all
    regulariser, while ||g(0)|| is in the thousands, so the stopping rule takes a tighter tol than runs' 3e-6."""
    rng = np.random.default_rng(6)
    y = rng.choice(8, 600, p=np.geomspace(1, 0.2, 8) / np.geomspace(1, 0.2, 8).sum())
    x = (rng.normal(size=(600, 96)) + 1.2 * rng.normal(size=(8, 96))[y]).astype(np.float32)
    cw = balanced_class_weights(y, 8)
    ref = LinearSVC(C=1.0, class_weight="balanced", tol=1e-8, max_iter=1_000_000).fit(x, y)
    w, _ = fit_ovr_squared_hinge(torch.from_numpy(x), torch.from_numpy(y), 8, 1.0, torch.from_numpy(cw).float(),
                                 tol=1e-7)
    ours = svm_objective(w[:-1].numpy().T.astype(np.float64), w[-1].numpy().astype(np.float64), x, y, 1.0, cw)
    theirs = svm_objective(ref.coef_, ref.intercept_, x, y, 1.0, cw)
    assert abs(ours - theirs) / theirs <= 1e-5


class CountProducts(torch.overrides.TorchFunctionMode):
    """Counts the classes of every product with X (n rows) or X^T (n columns), as the solver's GEMMs see them: the
    solvers keep classes on the first axis, P (k, d+1) @ X^T or R (k, n) @ X, so a product's classes are its rows."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.columns, self.full = n, 0, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") == "matmul" and args[0].dim() == 2:
            if args[0].shape[1] == self.n or args[1].shape[1] == self.n:  # R @ X or P @ X^T
                self.columns += out.shape[0]
                self.full += 1
        return out


@pytest.mark.parametrize("fit", [fit_ovr_squared_hinge, fit_ovr_squared_hinge_newton], ids=["lbfgs", "newton"])
def test_solvers_count_their_work_as_the_columns_of_their_products(fit):
    """The work reported is the products' classes over 2K (a product for every class is half an evaluation), and a
    class that has converged leaves the products: fewer than K classes per product on this problem."""
    rng = np.random.default_rng(4)
    y = rng.choice(12, 900, p=np.geomspace(1, 0.1, 12) / np.geomspace(1, 0.1, 12).sum())
    x = rng.normal(size=(900, 30)) + 2.0 * rng.normal(size=(12, 30))[y]
    x = torch.from_numpy((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    cw = torch.from_numpy(balanced_class_weights(y, 12)).float()
    with CountProducts(900) as count:
        w, info = fit(x, torch.from_numpy(y), 12, 1.0, cw)
    # one pass over X for the classes' sums, which the solver counts as one column
    assert info["evaluations"] == pytest.approx((count.columns + 1) / (2 * 12))
    assert count.columns < 12 * count.full  # converged classes left some products
    # ... and the solution is the one every class computed to the end would give: liblinear's objective
    ref = LinearSVC(C=1.0, class_weight="balanced", tol=1e-8, max_iter=1_000_000).fit(x.numpy(), y)
    ours = svm_objective(w[:-1].numpy().T.astype(np.float64), w[-1].numpy().astype(np.float64), x.numpy(), y, 1.0,
                         cw.numpy())
    theirs = svm_objective(ref.coef_, ref.intercept_, x.numpy(), y, 1.0, cw.numpy())
    assert (ours - theirs) / theirs <= 1e-5


@pytest.mark.parametrize("solver", ["lbfgs", "newton"])
def test_the_solvers_work_reaches_the_record(make_cfg, tmp_path, solver):
    """Each record carries the fit's own count: more than the first margins and gradient (one evaluation); L-BFGS at
    most one evaluation per iteration beyond them, Newton at least one CG step per Newton step."""
    from alimb.loop import run_experiment
    from tests.conftest import SMALL

    records = run_experiment(make_cfg(*SMALL, "al.iterations=3", f"scheme.solver={solver}"), tmp_path)
    assert len(records) == 3
    for r in records:
        info = r.train_info
        assert info["evaluations"] > 1
        if solver == "lbfgs":
            assert info["evaluations"] <= 1 + info["iterations"] + 0.5
        else:
            assert 1 <= info["newton_steps"] <= info["cg_steps"]


def test_auto_takes_newton_on_small_fits_and_lbfgs_on_large_ones_and_a_resume_makes_the_same_choices(monkeypatch):
    from alimb.schemes.svm import AutoSolver

    x, y = blobs()  # 300 x 10, 5 classes: 300 * 11 * 5 = 16 500 multiply-adds per product
    monkeypatch.setattr(AutoSolver, "SIZE", 16_500)
    scheme = LinearSVMScheme(class_weight="balanced", device="cpu")
    assert "newton_steps" in scheme.fit_arrays(x[:299], y[:299], 5)  # one row short of SIZE
    state = scheme.state_dict()
    assert "iterations" in scheme.fit_arrays(x, y, 5) and "newton_steps" not in scheme._solver.info
    resumed = LinearSVMScheme(class_weight="balanced", device="cpu")
    resumed.load_state_dict(state)
    assert "iterations" in resumed.fit_arrays(x, y, 5)
    np.testing.assert_array_equal(resumed.scores(x), scheme.scores(x))


def test_a_resume_of_a_run_whose_state_names_its_solver_goes_on_with_it(monkeypatch):
    """Earlier versions' auto chose one solver per run and saved its name (Newton on L2-normalised features); auto
    here would take L-BFGS at this size (SIZE lowered), so only the saved name can make it Newton."""
    from alimb.schemes.svm import AutoSolver

    monkeypatch.setattr(AutoSolver, "SIZE", 1)
    x, y = blobs()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    newton_run = LinearSVMScheme(class_weight="balanced", solver="newton", device="cpu")
    newton_run.fit_arrays(unit[:200], y[:200], 5)
    resumed = LinearSVMScheme(class_weight="balanced", device="cpu")
    resumed.load_state_dict({**newton_run.state_dict(), "solver": np.array("newton")})
    newton_run.fit_arrays(unit, y, 5)
    resumed.fit_arrays(unit, y, 5)
    assert "newton_steps" in resumed._solver.info
    np.testing.assert_array_equal(resumed.scores(unit), newton_run.scores(unit))


def test_line_search_finds_each_classes_exact_minimiser_along_its_direction():
    """_line_search against a scalar minimiser of f(w + t s) written out term by term (scipy's bounded Brent), per
    class: random margins and directions, so terms change state between 0 and the minimiser; a class with s = 0
    takes t = 0. The default tolerance (|φ'(t)| <= 1e-4 |φ'(0)|) puts t within ~1e-4 of it, a tight one within 1e-6."""
    from scipy.optimize import minimize_scalar

    from alimb.schemes.linear_svm import _line_search

    rng = np.random.default_rng(5)
    n, d, k = 60, 4, 6
    w, s = rng.normal(size=(k, d)), rng.normal(size=(k, d))
    s[3] = 0.0
    margin, v, cost = rng.normal(size=(k, n)), rng.normal(size=(k, n)), rng.uniform(0.5, 2.0, size=(k, n))
    v[3] = 0.0
    slope0 = np.array([w[j] @ s[j] - 2 * (cost[j] * np.maximum(margin[j], 0) * v[j]).sum() for j in range(k)])
    for j in range(k):  # make s a descent direction for f at t = 0 (the solvers' steps are)
        if slope0[j] > 0:
            s[j], v[j], slope0[j] = -s[j], -v[j], -slope0[j]
    args = [torch.from_numpy(a) for a in (w, s, margin, v, cost, slope0)]
    for rtol, close in ((1e-4, 2e-4), (1e-10, 1e-6)):
        t = _line_search(*args, rtol=rtol).numpy()
        assert t[3] == 0.0
        for j in (0, 1, 2, 4, 5):
            def f(tt, j=j):
                hinge = np.maximum(margin[j] - tt * v[j], 0)
                return 0.5 * ((w[j] + tt * s[j]) ** 2).sum() + (cost[j] * hinge ** 2).sum()
            ref = minimize_scalar(f, bounds=(0.0, 1e3), method="bounded", options={"xatol": 1e-12}).x
            assert t[j] == pytest.approx(ref, rel=close, abs=1e-9)
            crossed = np.sign(margin[j]) != np.sign(margin[j] - ref * v[j])
            assert crossed.any(), "the test needs terms that switch state before the minimiser"
