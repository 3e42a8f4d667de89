"""The test behind the cross-model claim (see ``verdict``): A's units have counterparts in B, beyond what B's
random-init copy (same architecture and tokenizer, no training) already gives.

- statistic: the median over A's live units of each unit's best correlation with any B unit, over the same rows;
- null: B's rows shuffled against A's (``partners.permuted_rows_null``): unrelated units;
- baseline: the same median against B's random-init copies (their mean); without copies, the null's mean;
- estimate and interval: a hierarchical bootstrap over rows, with one SAE seed of A, one of B and one random-init
  copy drawn per draw (rows, not units, are the independent draws: units of one model are correlated);
- power: copies of a share of A's units with noise (r about 0.8 with their original) added to the baseline's units,
  the median measured again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmfeatures.analysis.stats import Score
from mmfeatures.analysis.verdict import Test, cluster_bootstrap, simulate_power

SHARES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6)
"""Shares of A's live units copied (with noise) into the baseline, for the power."""


def live(z: np.ndarray) -> np.ndarray:
    return z[:, z.std(0) > 0]


def best_r(a: np.ndarray, b: np.ndarray, absolute: bool) -> np.ndarray:
    """Each live A unit's best correlation with any B unit."""
    from mmfeatures.analysis.partners import best_partners

    p = best_partners(a, b, 1, absolute=absolute)
    return p.values[p.alive_a, 0]


def median_best_r(a: np.ndarray, b: np.ndarray, absolute: bool) -> float:
    return float(np.median(best_r(a, b, absolute)))


def baseline_r(a: np.ndarray, copy: np.ndarray, absolute: bool) -> float:
    """The baseline's statistic: the median best r of A's units in a random-init copy."""
    return median_best_r(a, copy, absolute)


def noisy_copies(a: np.ndarray, share: float, rng: np.random.Generator, r: float = 0.8) -> np.ndarray:
    """Copies of ``share`` of A's columns with Gaussian noise, each correlated about ``r`` with its original."""
    n = int(round(share * a.shape[1]))
    cols = rng.choice(a.shape[1], n, replace=False)
    sd = a[:, cols].std(0, keepdims=True)
    scale = np.sqrt(1 / r ** 2 - 1)
    return (a[:, cols] + scale * sd * rng.standard_normal((len(a), n))).astype(np.float32)


def match_test(a: Sequence[np.ndarray], b: Sequence[np.ndarray], nulls: Sequence[np.ndarray], *, absolute: bool,
               n_perm: int, n_boot: int, simulations: int, floor: float, seed: int, baseline_name: str,
               sizes: Sequence[float] = SHARES) -> Test:
    """``a``, ``b``: each side's units per SAE seed (the headline first), ``nulls``: B's random-init copies' units
    (may be empty), all over the same rows."""
    from mmfeatures.analysis.partners import permuted_rows_null

    a, b, nulls = [live(z) for z in a], [live(z) for z in b], [live(z) for z in nulls]
    value = median_best_r(a[0], b[0], absolute)
    null = permuted_rows_null(a[0], b[0], n_perm=n_perm, seed=seed, absolute=absolute)
    base_of = [float(np.mean([baseline_r(za, zn, absolute) for zn in nulls])) for za in a] if nulls else None
    reference = base_of[0] if base_of else float(null.mean())
    estimate = float(np.mean([median_best_r(za, b[i % len(b)], absolute) - (base_of[i] if base_of else reference)
                              for i, za in enumerate(a)]))

    def draw(rows, rng):
        za, zb = a[rng.integers(len(a))][rows], b[rng.integers(len(b))][rows]
        found = median_best_r(za, zb, absolute)
        return found - (baseline_r(za, nulls[rng.integers(len(nulls))][rows], absolute) if nulls else reference)

    interval = cluster_bootstrap(draw, len(a[0]), estimate=estimate, n_boot=n_boot, seed=seed)
    over = f"rows, {len(a)} SAE seed(s) of A, {len(b)} of B" + (f" and {len(nulls)} random-init copies" if nulls
                                                                 else "")
    test = Test("median best-match r beyond " + baseline_name,
                Score("median best-match correlation", value, null), reference if nulls else None, baseline_name,
                floor, estimate, interval, over)
    target = nulls[0] if nulls else b[0][np.random.default_rng(seed).permutation(len(b[0]))]
    base_best = best_r(a[0], target, absolute)

    def planted(share, rng):
        added = noisy_copies(a[0], share, rng)
        if not added.shape[1]:
            return float(np.median(base_best))
        return float(np.median(np.maximum(base_best, best_r(a[0], added, absolute))))

    power = simulate_power(test, planted, sizes, simulations=simulations, seed=seed + 17,
                           how="noisy copies (r 0.8) of A's units added to " + ("a random-init copy" if nulls else
                                                                                "B with its rows shuffled"))
    from dataclasses import replace

    return replace(test, power=power)
