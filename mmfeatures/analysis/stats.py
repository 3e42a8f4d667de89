"""Shared statistics: tie-aware AUROC for many units at once, label permutations, and named scores
that carry their null distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmfeatures.analysis.labels import Labels
from mmfeatures.errors import InputError

ALPHA = 0.05
"""The significance level verdicts use."""


def check_n_perm(n_perm: int, alpha: float = ALPHA) -> int:
    """Validate a number of permutations (one name, ``n_perm``, everywhere). Too few to ever reach ``alpha``
    is allowed (quick looks) but warned about, with the floor of p: a permutation p-value is at least
    1 / (n_perm + 1)."""
    import warnings

    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise InputError(f"n_perm = {n_perm!r}; use a whole number >= 1 (19 or more for p <= 0.05)")
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
        keys = getattr(labels, within)
        for key in np.unique(keys.astype(str)):
            idx = np.flatnonzero(keys == key)
            values[idx] = values[idx[rng.permutation(len(idx))]]
    fields = {f: getattr(labels, f) for f in ("concept", "language", "modality", "group", "example_id")}
    fields[name] = values
    return Labels(**fields)


def ranks(z: np.ndarray, block: int = 2048) -> np.ndarray:
    """Column-wise ranks (1-based), ties averaged, as float32 (computed in column blocks)."""
    from scipy.stats import rankdata

    out = np.empty(z.shape, np.float32)
    for start in range(0, z.shape[1], block):
        out[:, start:start + block] = rankdata(z[:, start:start + block], axis=0)
    return out


def auroc_by_class(rank: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """(units, classes) AUROC of each unit separating each class from the rest, from ``ranks(z)``.

    Mann-Whitney: AUROC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg); ties count one half."""
    n = rank.shape[0]
    n_pos = onehot.sum(0)
    if np.any(n_pos == 0) or np.any(n_pos == n):
        raise InputError("a class has no rows, or all rows; AUROC needs both positives and negatives")
    # A float32 GEMM on the ranks as they are: a class's rank sum is at most n_pos n, so float32 keeps an AUROC to
    # ~1e-7, and no float64 copy of the ranks is made (at 16k units that copy cost more than the GEMM).
    rank_sums = (np.asarray(onehot, np.float32).T @ np.asarray(rank, np.float32)).T.astype(np.float64)
    return ((rank_sums - n_pos * (n_pos + 1) / 2) / (n_pos * (n - n_pos))).astype(np.float32)


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
