"""Are SAE features more interpretable than neurons? Three scores per unit, and their comparison.

- **Best-concept AUROC**: how well the unit's activation separates its best concept from the rest.
- **Concept-prediction correlation** (in the spirit of autointerp scoring): "explain" each unit by its
  best concept on one half of the rows (sentence group 1), predict the activation on the other half as
  1 for that concept and 0 otherwise, and correlate the prediction with the real activation.
- **Top-activation purity** (monosemanticity as in Bricken et al.): among a unit's N highest-activating
  rows (N = the median number of rows per concept), the share that belongs to its most common concept.
  Chance is about max-count / N for N random rows.

Neurons have no preferred sign, so they are scored on z and on -z (``signed=True``); SAE latents are
non-negative. Nulls: the same scores with concept labels permuted (within language), and the study
adds random directions and a random-init model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmfeatures.analysis.labels import Labels
from mmfeatures.analysis.stats import auroc_by_class, best_auroc, permuted, ranks
from mmfeatures.errors import InputError


@dataclass(frozen=True)
class Interpretability:
    """Per-unit interpretability scores. ``auroc`` and ``correlation`` are NaN for units that never vary."""

    auroc: np.ndarray
    concept: np.ndarray
    correlation: np.ndarray
    null_auroc: np.ndarray
    """Best-concept AUROC of every unit under permuted concept labels (one permutation per entry)."""
    concepts: tuple[str, ...]
    purity: np.ndarray
    null_purity: np.ndarray
    """Top-activation purity of every unit under permuted concept labels."""
    null_correlation: np.ndarray
    """Concept-prediction correlation of every unit under permuted concept labels."""

    def summary(self, name: str) -> dict[str, float | str]:
        auc, corr = self.auroc[np.isfinite(self.auroc)], self.correlation[np.isfinite(self.correlation)]
        return {"units": name, "n": len(auc), "median_auroc": float(np.median(auc)),
                "frac_auroc_0.9": float((auc >= 0.9).mean()), "median_correlation": float(np.median(corr)),
                "null_median_auroc": float(np.nanmedian(self.null_auroc)),
                "median_purity": float(np.nanmedian(self.purity)),
                "null_median_purity": float(np.nanmedian(self.null_purity)),
                "null_median_correlation": float(np.nanmedian(self.null_correlation))}


def _halves(labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    groups = sorted(set(labels.group.astype(str)) - {""})
    if len(groups) < 2:
        raise InputError("the prediction score explains on one sentence group and scores on another; the "
                         f"rows have groups {groups}. Use data with >= 2 sentence groups (the built-in set has 1, 2)")
    return labels.mask(group=groups[0]), labels.mask(group=tuple(groups[1:]))


def interpretability(z: np.ndarray, labels: Labels, *, signed: bool = False, n_perm: int = 1,
                     min_active: int = 3, seed: int = 0) -> Interpretability:
    """Best-concept AUROC and concept-prediction correlation for every unit of ``z`` (text rows)."""
    z = np.asarray(z, np.float32)
    labels.require_concepts()
    keep = labels.mask(modality="text")
    z, labels = z[keep], labels.take(np.flatnonzero(keep))
    varies = (z != z[:1]).sum(0) >= min_active
    rank = ranks(z)
    onehot, concepts = labels.onehot("concept")
    auc, best = best_auroc(rank, onehot, signed)
    auc = np.where(varies, auc, np.nan)
    rng = np.random.default_rng(seed)
    shuffled_labels = [permuted(labels, "concept", rng, "language") for _ in range(n_perm)]
    shuffles = [p.onehot("concept")[0] for p in shuffled_labels]
    null = np.concatenate([np.where(varies, best_auroc(rank, o, signed)[0], np.nan) for o in shuffles])
    n_top = int(np.median(onehot.sum(0)))
    purity = np.where(varies, top_purity(z, onehot, n_top, signed), np.nan)
    null_purity = np.concatenate([np.where(varies, top_purity(z, o, n_top, signed), np.nan) for o in shuffles])
    explain_rank = ranks(z[_halves(labels)[0]])
    null_corr = np.concatenate([_prediction_correlation(z, p, o, signed, varies, explain_rank)
                                for p, o in zip(shuffled_labels, shuffles, strict=True)])
    return Interpretability(auc, best, _prediction_correlation(z, labels, onehot, signed, varies, explain_rank),
                            null, concepts, purity.astype(np.float32), null_purity.astype(np.float32), null_corr)


def top_purity(z: np.ndarray, onehot: np.ndarray, n_top: int, signed: bool = False, seed: int = 0) -> np.ndarray:
    """Share of each unit's ``n_top`` highest rows that belong to its most common concept among them
    (for ``signed`` units the better of z and -z).

    Ties are broken at random (rows are visited in a seeded random order): a sparse unit's top rows are
    mostly tied zeros, and with rows ordered by concept, arbitrary tie-breaking would fill them from one
    concept block and report a pure unit where there is none."""
    order = np.random.default_rng(seed).permutation(len(z))
    z, codes = z[order], onehot[order].argmax(1)

    def one_sign(values):
        top = np.argpartition(-values, n_top - 1, axis=0)[:n_top]          # n_top x units row indices
        ordered = np.sort(codes[top], axis=0)
        run = longest = np.ones(values.shape[1], np.int64)
        for i in range(1, n_top):                                         # longest run = modal count
            run = np.where(ordered[i] == ordered[i - 1], run + 1, 1)
            longest = np.maximum(longest, run)
        return longest / n_top

    best = one_sign(z)
    return np.maximum(best, one_sign(-z)) if signed else best


def _prediction_correlation(z: np.ndarray, labels: Labels, onehot: np.ndarray, signed: bool,
                            varies: np.ndarray, explain_rank: np.ndarray) -> np.ndarray:
    """``explain_rank``: ``ranks(z[explain])``, shared by the real labels and every permutation."""
    explain, score = _halves(labels)
    auc = auroc_by_class(explain_rank, onehot[explain])
    if signed:
        sign = np.where(auc.max(1) >= (1 - auc).max(1), 1.0, -1.0).astype(np.float32)
        auc = np.maximum(auc, 1 - auc)
    else:
        sign = np.ones(len(auc), np.float32)
    chosen = auc.argmax(1)                                  # the explanation: one concept per unit
    zs = z[score] * sign
    prediction = onehot[score][:, chosen]                  # rows x units: 1 where the row is that concept
    zc = zs - zs.mean(0)
    pc = prediction - prediction.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (zc * pc).sum(0) / np.sqrt((zc ** 2).sum(0) * (pc ** 2).sum(0))
    return np.where(varies, corr, np.nan).astype(np.float32)


@dataclass(frozen=True)
class Comparison:
    """Features against neurons on one score."""

    score: str
    feature_median: float
    neuron_median: float
    difference_ci: tuple[float, float]
    """Bootstrap 95% CI of (median feature score - median neuron score)."""
    p_value: float
    """One-sided Mann-Whitney U: features score higher than neurons."""

    def __str__(self) -> str:
        lo, hi = self.difference_ci
        return (f"{self.score}: features {self.feature_median:.3f} vs neurons {self.neuron_median:.3f} "
                f"(difference 95% CI [{lo:.3f}, {hi:.3f}], Mann-Whitney p = {self.p_value:.3g})")


def compare(features: np.ndarray, neurons: np.ndarray, score: str = "best-concept AUROC",
            n_boot: int = 1000, seed: int = 0) -> Comparison:
    """Do features score higher than neurons? Medians, a bootstrap CI of their difference, a U test."""
    from scipy.stats import mannwhitneyu

    f, n = features[np.isfinite(features)], neurons[np.isfinite(neurons)]
    if len(f) < 2 or len(n) < 2:
        raise InputError(f"need >= 2 scored features and neurons; got {len(f)} and {len(n)}")
    rng = np.random.default_rng(seed)
    diffs = np.array([np.median(f[rng.integers(0, len(f), len(f))]) - np.median(n[rng.integers(0, len(n), len(n))])
                      for _ in range(n_boot)])
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    p = float(mannwhitneyu(f, n, alternative="greater").pvalue)
    return Comparison(score, float(np.median(f)), float(np.median(n)), (float(lo), float(hi)), p)
