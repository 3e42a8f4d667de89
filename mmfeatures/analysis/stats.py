"""Shared statistics: tie-aware AUROC for many units at once, label permutations, and named scores
that carry their null distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmfeatures.analysis.labels import Labels
from mmfeatures.errors import InputError

ALPHA = 0.05
"""The significance level verdicts use."""


MAX_PERM = 100_000
"""The most permutations a null may draw: p resolves to 1/(n_perm+1), and each one recomputes the statistic."""


def check_share(name: str, value: Any, *, low: float = 0.0, high: float = 1.0, example: float = 0.5) -> float:
    """``value`` as a finite number in [low, high], else InputError naming the option (NaN, 2 and -1 are not
    shares or correlations)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating)) and low <= value <= high
    if not ok:                                      # NaN fails both comparisons
        raise InputError(f"{name} = {value!r}; give a number from {low:g} to {high:g}, e.g. {example:g}")
    return float(value)


def check_count(name: str, value: Any, least: int, example: int) -> int:
    """``value`` as a whole number from ``least`` to MAX_PERM (bootstrap draws, simulations, random baselines, each
    of which repeats work), else InputError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not least <= value <= MAX_PERM:
        raise InputError(f"{name} = {value!r}; use a whole number from {least} to {MAX_PERM:,}, e.g. {example} (each "
                         "one repeats work)")
    return int(value)


def check_seed(seed: Any) -> int:
    """A seed as a whole number >= 0 (NumPy's generators refuse negative ones deep inside a run)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed = {seed!r}; give a whole number >= 0, e.g. 0")
    return int(seed)


def check_n_perm(n_perm: int, alpha: float = ALPHA) -> int:
    """Validate a number of permutations (one name, ``n_perm``, everywhere). Too few to ever reach ``alpha``
    is allowed (quick looks) but warned about, with the floor of p: a permutation p-value is at least
    1 / (n_perm + 1)."""
    import warnings

    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or not 1 <= n_perm <= MAX_PERM:
        raise InputError(f"n_perm = {n_perm!r}; use a whole number from 1 to {MAX_PERM:,} (19 or more for p <= 0.05; "
                         f"{MAX_PERM:,} already resolves p to 1e-5, and each permutation repeats the whole statistic)")
    floor = 1 / (n_perm + 1)
    if floor > alpha:
        warnings.warn(f"n_perm = {n_perm}: a permutation p-value is at least 1/({n_perm}+1) = {floor:.3g} > {alpha}, "
                      f"so no verdict can reach significance; use n_perm >= {int(np.ceil(1 / alpha)) - 1}",
                      UserWarning, stacklevel=2)
    return int(n_perm)


def p_text(p: float, n_perm: int) -> str:
    """'p = 0.03', or 'p ≤ 0.01' when p is at the floor 1/(n_perm + 1): no permutation came as close, and a
    larger K could only make p smaller, so the value is a bound, not an estimate."""
    if not np.isfinite(p):
        return "p = n/a"
    floor = 1 / (n_perm + 1) if n_perm else 0.0
    return f"p ≤ {floor:.3g}" if n_perm and p <= floor * (1 + 1e-9) else f"p = {p:.3g}"


T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student's t 97.5% quantiles for 1..10 degrees of freedom (a 95% interval over a few SAE seeds)."""


def seed_interval(values) -> tuple[float, float, float]:
    """(mean, low, high): a 95% t-interval of the mean over independent SAE seeds (NaN bounds for one seed)."""
    v = np.asarray(values, float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    t = T_975[len(v) - 2] if len(v) - 1 <= len(T_975) else 1.96
    half = t * float(v.std(ddof=1)) / np.sqrt(len(v))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class Score:
    """A summary statistic next to its null: the same statistic on ``null`` (permuted labels, random
    directions, ...). ``p_value`` is one-sided in the direction of ``alternative``, (1 + #as extreme)/(K + 1)."""

    name: str
    value: float
    null: np.ndarray
    alternative: str = "greater"

    @property
    def null_mean(self) -> float:
        return float(np.nanmean(self.null)) if len(self.null) else float("nan")

    @property
    def null_sd(self) -> float:
        return float(np.nanstd(self.null)) if len(self.null) else float("nan")

    @property
    def p_value(self) -> float:
        if not len(self.null) or not np.isfinite(self.value):
            return float("nan")
        extreme = self.null >= self.value if self.alternative == "greater" else self.null <= self.value
        return float((1 + np.sum(extreme)) / (1 + len(self.null)))

    def __str__(self) -> str:
        return (f"{self.name} = {self.value:.3f} (null {self.null_mean:.3f} ± {self.null_sd:.3f}, "
                f"{p_text(self.p_value, len(self.null))}, K = {len(self.null)})")

    def row(self) -> dict[str, float | str | int]:
        return {"metric": self.name, "value": self.value, "null_mean": self.null_mean, "null_sd": self.null_sd,
                "p_value": self.p_value, "n_perm": len(self.null)}


def permuted(labels: Labels, name: str, rng: np.random.Generator, within: str | None = None) -> Labels:
    """``labels`` with column ``name`` shuffled across rows, optionally only within groups of ``within``
    (e.g. concepts shuffled within each language, so language structure is kept)."""
    values = getattr(labels, name).copy()
    if within is None:
        values = values[rng.permutation(len(values))]
    else:
        _, codes = np.unique(getattr(labels, within).astype(str), return_inverse=True)
        order = np.argsort(codes.ravel(), kind="stable")            # each group's rows, ascending, group by group
        bounds = np.flatnonzero(np.diff(codes.ravel()[order])) + 1
        for idx in np.split(order, bounds):                         # the groups in sorted-key order, as before
            values[idx] = values[idx[rng.permutation(len(idx))]]
    fields = {f: getattr(labels, f) for f in ("concept", "language", "modality", "group", "example_id")}
    fields[name] = values
    return Labels(**fields)


def ranks(z: np.ndarray, block: int = 2048) -> np.ndarray:
    """Column-wise ranks (1-based), ties averaged, as float32 (computed in column blocks). Non-negative,
    mostly-zero columns (SAE latents) sort only their non-zeros: every zero shares the rank (zeros + 1) / 2."""
    from scipy.stats import rankdata

    z = np.asarray(z)
    out = np.empty(z.shape, np.float32)
    sparse = z.dtype == np.float32 and z.size > 0 and z.min() >= 0 and np.count_nonzero(z) < 0.5 * z.size
    for start in range(0, z.shape[1], block):
        part = z[:, start:start + block]
        out[:, start:start + block] = _sparse_ranks(part) if sparse else rankdata(part, axis=0)
    return out


def _sparse_ranks(z: np.ndarray) -> np.ndarray:
    """``ranks`` of a non-negative float32 block from its non-zeros: one sort of (column, value) keys, where a
    positive float32's bits order as its value does."""
    n, width = z.shape
    row, col = np.nonzero(z > 0)                      # row-major; the sort below groups them by column
    per_col = np.bincount(col, minlength=width)
    zeros = n - per_col
    out = np.broadcast_to(((zeros + 1) / 2).astype(np.float32), (n, width)).copy()
    if not len(col):
        return out
    key = (col.astype(np.uint64) << np.uint64(32)) | z[row, col].view(np.uint32).astype(np.uint64)
    order = np.argsort(key)
    key, col, row = key[order], col[order], row[order]
    pos = np.arange(len(key))
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    start = np.maximum.accumulate(np.where(first, pos, 0))                  # a tie run's first position
    last = np.ones(len(key), bool)
    last[:-1] = first[1:]
    stop = np.minimum.accumulate(np.where(last, pos, len(key))[::-1])[::-1]  # and its last
    col_start = np.cumsum(per_col) - per_col
    out[row, col] = zeros[col] + (start + stop) / 2 - col_start[col] + 1
    return out


def auroc_by_class(rank: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """(units, classes) AUROC of each unit separating each class from the rest, from ``ranks(z)``.

    Mann-Whitney: AUROC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg); ties count one half."""
    n = rank.shape[0]
    onehot = np.asarray(onehot, np.float32)
    n_pos = onehot.sum(0).astype(np.float64)
    if np.any(n_pos == 0) or np.any(n_pos == n):
        raise InputError("a class has no rows, or all rows; AUROC needs both positives and negatives")
    rank_sums = class_sums(rank, onehot)
    return ((rank_sums - n_pos * (n_pos + 1) / 2) / (n_pos * (n - n_pos))).astype(np.float32)


def class_sums(x: np.ndarray, onehot: np.ndarray, block: int = 2048) -> np.ndarray:
    """(units, classes) float64 sum of each column of ``x`` (rows x units) over each class's rows.

    Labels with at most one class per row (every ``Labels.onehot``) are summed through a sparse class-by-row
    matrix, n x units additions whatever the number of classes (a dense GEMM would cost n x units x classes, and
    torch's index_add_ was 30x slower than this on CPU): float32 within a block of rows, float64 across blocks;
    other matrices (several classes per row) take a GEMM."""
    from scipy import sparse

    single = bool(((onehot == 0) | (onehot == 1)).all() and (onehot.sum(1) <= 1).all())
    if not single:
        return (onehot.T @ np.asarray(x, np.float32)).T.astype(np.float64)
    classes = onehot.shape[1]
    codes = np.where(onehot.any(1), onehot.argmax(1), classes)      # rows of no class: a spare slot
    out = np.zeros((classes + 1, x.shape[1]))
    for start in range(0, len(x), block):       # float32 sums of a block of rows, added up in float64
        c = codes[start:start + block]
        rows = sparse.csr_matrix((np.ones(len(c), np.float32), (c, np.arange(len(c)))), shape=(classes + 1, len(c)))
        out += rows @ np.asarray(x[start:start + block], np.float32)
    return out[:classes].T


def best_auroc(rank: np.ndarray, onehot: np.ndarray, signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's best class AUROC and that class. ``signed`` also scores -z (for neurons, whose
    sign is arbitrary; SAE latents are non-negative, so a low activation carries no concept)."""
    auc = auroc_by_class(rank, onehot)
    if signed:
        auc = np.maximum(auc, 1.0 - auc)
    best = auc.argmax(1)
    return auc[np.arange(len(auc)), best], best


def benjamini_hochberg(p: np.ndarray, q: float = 0.05) -> np.ndarray:
    """Boolean mask of discoveries at false discovery rate ``q``."""
    p = np.asarray(p, np.float64)
    order = np.argsort(p)
    thresholds = q * np.arange(1, len(p) + 1) / len(p)
    passed = p[order] <= thresholds
    k = np.flatnonzero(passed).max() + 1 if passed.any() else 0
    mask = np.zeros(len(p), bool)
    mask[order[:k]] = True
    return mask


def require_rows(counts: dict[str, int], minimum: int, what: str) -> None:
    """Raise naming every cell with fewer than ``minimum`` rows."""
    small = {k: v for k, v in counts.items() if v < minimum}
    if small:
        shown = ", ".join(f"{k}: {v}" for k, v in list(small.items())[:8])
        raise InputError(f"too few rows for {what}: need >= {minimum} per cell, but {shown}"
                         f"{' ...' if len(small) > 8 else ''}; add examples or drop those cells")
