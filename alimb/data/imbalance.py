"""Imbalance induction: per-class target counts from a profile, then a seeded uniform subsample.

Our procedure (the paper only says a target ir guides the pruning): classes are put in an order
(seeded permutation, or by available count for `natural`); class at position i of C gets
`n_i = n_max * gamma^(-i/(C-1))`, capped by what it has; gamma (and n_max when a target total is
given) are solved so the counts hit the target ir = std/mean and total.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from alimb.errors import UserError
from alimb.options import Count, Doc, Fraction, Number, Place, Positive, PositiveNumber
from alimb.pool import imbalance_ratio

# every profile's seed: the pool's, independent of the AL seed (`seed`), so every seed of a sweep sees the same pool
PoolSeed = Annotated[Count, Doc("draws the pool, independently of the AL seed: every seed of a sweep sees the same "
                                "pool")]
POOL_SEED = 0
ClassOrder = Annotated[Literal["random", "natural"], Doc("which classes end up small: random (seeded) or natural "
                                                         "(by available count)")]
Rho = Annotated[Number, Field(ge=1), Doc("the imbalance factor n_max / n_min")]


class PaperImbalance(BaseModel):
    """A dataset's row of the paper's Table I: the target ir and pool size."""

    model_config = ConfigDict(extra="forbid", strict=True)
    target_ir: PositiveNumber
    total: Positive


Preset = Optional[Union[PaperImbalance, Literal["natural"]]]

IR_TOL = 0.005  # SPEC §2: counts hit the target ir within ±0.005
TOTAL_TOL = 0.01  # and the target total within ±1%


def induce(labels: np.ndarray, n_classes: int, profile, seed: int) -> np.ndarray:
    """Sorted indices of the samples kept: `profile.counts(available, rng)` per class, seeded."""
    labels = np.asarray(labels)
    order_ss, sample_ss = np.random.SeedSequence(seed).spawn(2)
    available = np.bincount(labels, minlength=n_classes)
    counts = np.asarray(profile.counts(available, np.random.default_rng(order_ss)), dtype=np.int64)
    assert counts.shape == available.shape and (counts <= available).all(), "profile asked for more than a class has"
    empty = np.flatnonzero((counts == 0) & (available > 0))
    if empty.size:  # a class with no pool sample would be a class no AF can ever find, silently
        hint = getattr(profile, "empty_hint", None)
        raise UserError(f"the imbalance leaves {empty.size} class(es) without a pool sample (class {empty[0]} keeps 0 "
                        f"of its {available[empty[0]]}); " + (hint(available) if hint else
                                                              "choose a profile that keeps every class"))
    rng = np.random.default_rng(sample_ss)
    if getattr(profile, "takes_first", False):  # the long-tail benchmarks: each class's first n_c in dataset order
        keep = [np.flatnonzero(labels == c)[:counts[c]] for c in range(n_classes)]
    else:
        keep = [rng.choice(np.flatnonzero(labels == c), counts[c], replace=False) for c in range(n_classes)]
    return np.sort(np.concatenate(keep)).astype(np.int64)


def class_order(available: np.ndarray, order: str, rng: np.random.Generator) -> np.ndarray:
    """Classes from largest target to smallest: a seeded permutation, or by available count."""
    if order == "random":
        return rng.permutation(available.size)
    if order == "natural":
        return np.lexsort((np.arange(available.size), -available))  # most available first, stable
    if order == "index":
        return np.arange(available.size)  # class 0 largest, as the long-tail benchmarks
    raise UserError(f"unknown imbalance.order '{order}'; use random, natural or index")


class NoImbalance:
    """Keep every sample."""

    @staticmethod
    def title(options: dict) -> str:
        return "balanced" if options.get("name") == "none" else "its own imbalance"

    def __init__(self, seed: Annotated[PoolSeed, Doc("unused: nothing is sampled")] = POOL_SEED):
        self.seed = seed

    def counts(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return available.copy()


class Exponential:
    """Exponential profile solved for a target ir (and optionally a target total)."""

    @staticmethod
    def title(options: dict) -> str:
        total = options.get("total")
        return f"ir {options.get('target_ir')}" + (f", {total} samples" if total else "")

    def __init__(
        self,
        target_ir: Annotated[PositiveNumber, Doc("ir = std/mean of the per-class counts (the paper's datasets: "
                                                 "0.74-0.79)")] = 0.75,
        total: Annotated[Optional[Positive], Doc("null: the largest class keeps all it has; a number: solve the "
                                                 "scale for this pool size too")] = None,
        order: ClassOrder = "random",
        min_count: Annotated[Positive, Doc("every class keeps at least this many samples")] = 1,
        seed: PoolSeed = POOL_SEED,
    ):
        self.target_ir, self.total, self.order, self.min_count = float(target_ir), total, order, int(min_count)
        self.seed = seed

    def profile(self, sizes: np.ndarray, n_max: float, lam: float) -> np.ndarray:
        """Counts at positions 0..C-1 (classes of `sizes` in order) for scale n_max and lam = ln(gamma)."""
        x = np.linspace(0.0, 1.0, sizes.size)
        return np.minimum(sizes, np.maximum(self.min_count, np.round(n_max * np.exp(-lam * x))))

    def solve_lam(self, sizes: np.ndarray, n_max: float) -> float:
        """lam giving the target ir for this n_max (bisection; ir grows with lam)."""
        lo, hi = 0.0, 60.0
        if imbalance_ratio(self.profile(sizes, n_max, hi)) < self.target_ir:
            return float("nan")
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if imbalance_ratio(self.profile(sizes, n_max, mid)) < self.target_ir else (lo, mid)
        return hi

    def counts(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        order = class_order(available, self.order, rng)
        sizes = available[order].astype(np.float64)
        if (sizes < self.min_count).any():
            raise UserError(f"every class needs at least {self.min_count} samples for imbalance induction")
        n_max = self._solve_n_max(sizes) if self.total is not None else sizes.max()
        lam = self.solve_lam(sizes, n_max)
        if not np.isfinite(lam):
            raise self._unreachable(sizes, f"ir {self.target_ir}")
        counts = self.profile(sizes, n_max, lam)
        ir, total = imbalance_ratio(counts), counts.sum()
        if abs(ir - self.target_ir) > IR_TOL or (self.total and abs(total - self.total) > TOTAL_TOL * self.total):
            wanted = f"ir {self.target_ir}" + (f" with total {self.total}" if self.total else "")
            raise self._unreachable(sizes, f"{wanted} (closest: ir {ir:.3f}, total {total:.0f})")
        out = np.empty_like(available)
        out[order] = counts.astype(np.int64)
        return out

    def _solve_n_max(self, sizes: np.ndarray) -> float:
        """n_max giving the target total at the target ir (bisection; the total grows with n_max)."""

        def total(n_max: float) -> float:
            lam = self.solve_lam(sizes, n_max)
            return self.profile(sizes, n_max, lam).sum() if np.isfinite(lam) else np.nan

        lo, hi = float(self.min_count), float(sizes.max())
        if not total(hi) >= self.total:
            raise self._unreachable(sizes, f"total {self.total} at ir {self.target_ir}")
        for _ in range(60):
            mid = (lo + hi) / 2
            t = total(mid)
            lo, hi = (mid, hi) if (np.isnan(t) or t < self.total) else (lo, mid)
        return hi

    fix = "lower imbalance.target_ir or imbalance.total"  # what to change (the paper's preset: the dataset)

    def _unreachable(self, sizes: np.ndarray, what: str) -> UserError:
        return UserError(
            f"imbalance cannot reach {what} for {sizes.size} classes of {sizes.min():.0f}-{sizes.max():.0f} samples; "
            f"{self.fix}"
        )


def paper_preset(
    preset: Annotated[Preset, Doc("the dataset's Table I targets {target_ir, total}, or natural: its own imbalance "
                                  "(conf: the dataset's paper_imbalance)")] = None,
    seed: PoolSeed = POOL_SEED,
) -> "Exponential | NoImbalance":
    """The paper's Table I targets of a dataset ({target_ir, total}); 'natural': its own imbalance (MIT-67)."""
    if preset is None:
        raise UserError("this dataset is not in the paper's Table I (cifar100, food101, mit67), so imbalance=paper has "
                        "no targets for it; use imbalance=exponential (imbalance.target_ir=...) or another profile")
    if preset == "natural":
        return NoImbalance(seed)
    profile = Exponential(order="random", seed=seed, **preset)
    profile.fix = (f"imbalance=paper draws Table I's {preset['total']} samples at ir {preset['target_ir']}: the dataset "
                   "needs more samples per class (or set dataset.paper_imbalance, or choose imbalance=exponential)")
    return profile


paper_preset.title = lambda options: "Table I imbalance"  # noqa: E731 - how figures name it


class Step:
    """Step profile (Buda et al.): a fraction of the classes are minority, rho times smaller than the rest."""

    @staticmethod
    def title(options: dict) -> str:
        return f"step ρ = {options.get('rho')}"

    def __init__(
        self,
        minority_fraction: Annotated[Fraction, Doc("the share of classes that are minority")] = 0.5,
        rho: Rho = 10,
        order: ClassOrder = "random",
        seed: PoolSeed = POOL_SEED,
    ):
        self.minority_fraction, self.rho, self.order, self.seed = minority_fraction, rho, order, seed

    def counts(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        order = class_order(available, self.order, rng)
        n_major = int(available.min())
        n_minor = max(1, int(round(n_major / self.rho)))
        n_minority_classes = int(round(self.minority_fraction * available.size))
        out = np.full_like(available, n_major)
        out[order[available.size - n_minority_classes:]] = n_minor
        return out


class LongTail:
    """The long-tail benchmarks' profile (Cui et al. 2019; Cao et al. 2019, CIFAR-10/100-LT): the class at position
    i of C keeps int(n_max * rho^(-i / (C - 1))) samples (at most what it has), n_max the head class's count and
    rho = n_max / n_min the imbalance factor; classes in index order (class 0 the head) and each class's first
    samples in dataset order, as their code builds the datasets (CIFAR-10-LT at rho = 100: 12 406 images)."""

    takes_first = True

    @staticmethod
    def title(options: dict) -> str:
        return f"long tail ρ = {options.get('rho')}"

    def __init__(
        self,
        rho: Annotated[Rho, Doc("the imbalance factor n_max / n_min (10, 50, 100 in the literature)")] = 100,
        order: Annotated[Literal["index", "random", "natural"], Doc(
            "index: class 0 the head, as the benchmarks; random: a seeded order of the classes")] = "index",
        seed: PoolSeed = POOL_SEED,
    ):
        self.rho, self.order, self.seed = float(rho), order, seed

    def empty_hint(self, available: np.ndarray) -> str:
        n_max = getattr(self, "_n_max", int(available.max()))  # the head class's count, as counts() took it
        return (f"with rho = {self.rho:g} the smallest class keeps int({n_max} / {self.rho:g}) = {int(n_max / self.rho)}; "
                f"lower imbalance.rho to at most {n_max}")

    def counts(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        order = class_order(available, self.order, rng)
        n_max = self._n_max = int(available[order[0]])  # the head class's count (5 000 / 500 for CIFAR-10 / 100)
        out = np.empty_like(available)
        for i, k in enumerate(order):
            out[k] = int(n_max * self.rho ** (-i / max(available.size - 1, 1)))
        return np.minimum(out, available)  # never binding on balanced data such as CIFAR's


class LabelBench:
    """LabelBench's imbalance profile (`cifar10_imb_N`, `cifar100_imb_N`; as GALAXY and DIRECT are evaluated): classes
    0..N-2 kept, every other class folded into class N-1 ("others"), in the training and the test set alike, nothing
    subsampled: CIFAR-10 at N = 2 is 5 000 airplanes against 45 000 others (EfficientTraining/LabelBench,
    dataset_impl/cifar10_dataset.py: `target_transform` clips the label at N-1). Their test set is the official one
    split at random in half (validation and test); alimb evaluates on all of it (mean per-class accuracy: their
    "Balanced Test Accuracy")."""

    def __init__(
        self,
        n: Annotated[int, Field(ge=2), Doc("N: the classes after folding (N-1 kept, the rest one 'others' class)")] = 2,
        seed: PoolSeed = POOL_SEED,
    ):
        self.n, self.seed = int(n), seed

    @staticmethod
    def title(options: dict) -> str:
        return f"LabelBench imb_{options.get('n')}"

    def fold(self, class_names: list[str]) -> tuple[np.ndarray, list[str]]:
        """(each class's new index, the new class names): class c becomes min(c, N-1)."""
        if self.n > len(class_names):
            raise UserError(f"imbalance.n={self.n} folds into more classes than the dataset's {len(class_names)}; use "
                            f"at most {len(class_names)}")
        mapping = np.minimum(np.arange(len(class_names)), self.n - 1)
        return mapping, [*class_names[: self.n - 1], "others"]

    def counts(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return available.copy()


class Counts:
    """Explicit per-class counts: a list, or a file (text, one count per line or whitespace-separated, or .npy)."""

    @staticmethod
    def title(options: dict) -> str:
        return "given counts"

    def __init__(
        self,
        counts: Annotated[Optional[list[Count]], Doc("the count of each class, in class order")] = None,
        path: Annotated[Optional[Place], Doc("or a file of them (text, or .npy)")] = None,
        seed: PoolSeed = POOL_SEED,
    ):
        self.seed = seed
        if (counts is None) == (path is None):
            raise UserError("imbalance=counts needs exactly one of imbalance.counts=[...] or imbalance.path=FILE")
        self.values = list(counts) if counts is not None else self._read(Path(path))

    @staticmethod
    def _read(path: Path) -> list[int]:
        """Whole non-negative counts from a text file (one per line or whitespace-separated) or a 1-D integer .npy."""
        try:
            if path.suffix == ".npy":
                values = np.load(path, allow_pickle=False)
                if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
                    raise ValueError(f"it holds a {values.ndim}-D array of {values.dtype}; save a 1-D array of "
                                     "integers")
            else:
                words = path.read_text(encoding="utf-8-sig").split()
                bad = next((w for w in words if not w.lstrip("-").isdigit() or not w.isascii()), None)
                if bad is not None:
                    raise ValueError(f"{bad!r} is not a whole number")
                values = np.array([int(w) for w in words], dtype=np.int64)
        except (OSError, ValueError, EOFError, UnicodeDecodeError) as err:
            raise UserError(f"cannot read per-class counts from {path}: {str(err).splitlines()[0]}") from None
        if values.size == 0:
            raise UserError(f"{path} holds no per-class counts; write one count per class (text or .npy)")
        return [int(v) for v in values]

    @staticmethod
    def empty_hint(available: np.ndarray) -> str:
        return "every class needs at least one sample: give it one, or leave the class out of the dataset"

    def counts(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        counts = np.asarray(self.values, dtype=np.int64)
        if counts.size != available.size:
            raise UserError(f"imbalance.counts has {counts.size} entries but the dataset has {available.size} classes")
        negative = np.flatnonzero(counts < 0)
        if negative.size:
            raise UserError(f"imbalance.counts gives class {negative[0]} a negative count ({counts[negative[0]]}); "
                            "counts are 0 or more")
        too_many = np.flatnonzero(counts > available)
        if too_many.size:
            c = too_many[0]
            raise UserError(f"imbalance.counts asks {counts[c]} samples of class {c}, which has {available[c]}")
        return counts
