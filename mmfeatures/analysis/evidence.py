"""The tests behind the cross-lingual and cross-modal claims, from unit activations (see ``verdict``).

Each claim is measured on one set of units per SAE seed (``units``) and on a baseline with nothing learnt
(``baseline``: random directions of the same width and L0, or the random-init model's SAE), all on the same rows:

- **multilingual fraction** (``multilingual_test``): the share of live units that pick out one concept (AUROC >=
  0.9) and spread over languages (entropy >= 0.8); null: concepts permuted within language; effect: beyond the
  baseline's fraction;
- **concept overlap** (``overlap_test``): mean Jaccard of the active units of two different sentences about one
  concept in two languages, minus that of other concepts in other languages; units active on more than
  ``max_density`` of the rows are left out first (ubiquitous units carry most of any overlap); null: random pairs;
  effect: beyond the baseline's excess;
- **multimodal and bridge fractions** (``crossmodal_tests``): null: the pictures' concepts shuffled; effect: beyond
  the baseline's fractions.

Intervals are a hierarchical bootstrap (``verdict.cluster_bootstrap``): concepts with replacement, and per draw one
SAE seed and one baseline dictionary. Power plants units that fire for
one concept (in every language, or in both modalities) into a baseline dictionary at the run's rows, and measures
the statistic again (``verdict.simulate_power``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmfeatures.analysis.labels import Labels
from mmfeatures.analysis.stats import Score, best_auroc, ranks
from mmfeatures.analysis.verdict import Power, Test, cluster_bootstrap, simulate_power
from mmfeatures.errors import InputError

SHARES = tuple(0.0025 * 2 ** (i / 2) for i in range(15))
"""Shares of a baseline dictionary's units replaced by planted concept units, for the power (stops at the first
share detected every time)."""


@dataclass(frozen=True)
class Settings:
    """What every test of a claim shares (the analyze step's config)."""

    n_perm: int = 19
    n_boot: int = 100
    simulations: int = 10
    """Planted-effect simulations per size for the power."""
    floor: float = 0.0
    max_density: float = 0.2
    overlap_k: int | None = None
    """Active set of a row: its top-k units (dense neurons), else units > 0."""
    signed: bool = False
    seed: int = 0


def concept_rows(labels: Labels) -> list[np.ndarray]:
    """Row indices of each concept (sorted concept order)."""
    codes, _ = labels.codes("concept")
    return [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]


def _take(rows_by_concept: list[np.ndarray], drawn: np.ndarray) -> np.ndarray:
    return np.concatenate([rows_by_concept[c] for c in drawn])


# ---------------------------------------------------------------- multilingual fraction

def multilingual_units(z: np.ndarray, labels: Labels, *, signed: bool = False, auroc_min: float = 0.9,
                       h_multi: float = 0.8, min_active: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(alive, multilingual) per unit, as ``consistency.crosslingual`` defines them (text rows with a language)."""
    from mmfeatures.analysis.consistency import _entropy, _language_sums, _mass

    alive = ((z != 0) if signed else (z > 0)).sum(0) >= min_active
    c_auc = best_auroc(ranks(z), labels.onehot("concept")[0], signed)[0]
    sums, counts, langs = _language_sums(_mass(z), labels)
    if len(langs) < 2:
        raise InputError(f"a multilingual fraction needs >= 2 languages; the rows have {langs}")
    with np.errstate(invalid="ignore"):
        multi = alive & (c_auc >= auroc_min) & (_entropy(sums, counts) >= h_multi)
    return alive, multi


def _share(flags: np.ndarray, alive: np.ndarray) -> float:
    return float(flags.sum() / max(int(alive.sum()), 1))


def fraction(z: np.ndarray, labels: Labels, signed: bool) -> float:
    alive, multi = multilingual_units(z, labels, signed=signed)
    return _share(multi, alive)


def plant_concept_units(z: np.ndarray, labels: Labels, share: float, rng: np.random.Generator, *,
                        recall: float = 0.9, columns: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(z with ``share`` of its ``columns`` replaced, the replaced columns): each planted unit fires on ``recall`` of
    one random concept's rows (every language and modality), at the column's own largest value, and nowhere else."""
    columns = np.arange(z.shape[1]) if columns is None else columns
    n = int(round(share * len(columns)))
    chosen = rng.choice(columns, n, replace=False) if n else np.zeros(0, np.int64)
    codes, _ = labels.codes("concept")
    out = z.copy() if n else z
    for col in chosen:
        scale = float(np.abs(z[:, col]).max()) or 1.0
        fires = (codes == rng.integers(0, codes.max() + 1)) & (rng.random(len(z)) < recall)
        out[:, col] = np.where(fires, scale, 0.0)
    return out, chosen


def multilingual_test(units: Sequence[np.ndarray], baseline: Sequence[np.ndarray], baseline_fractions: Sequence[float],
                      null: np.ndarray, labels: Labels, s: Settings, *, baseline_name: str,
                      sizes: Sequence[float] = SHARES) -> Test:
    """The multilingual fraction of ``units[0]`` (the headline SAE) against its concept-permuted ``null``, beyond
    the mean of ``baseline_fractions`` (all baseline dictionaries); ``baseline`` holds the dictionaries kept for the
    interval and the power (text rows of ``labels``, like ``units``)."""
    values = [fraction(z, labels, s.signed) for z in units]
    value, reference = values[0], float(np.mean(baseline_fractions))
    estimate = float(np.mean(values)) - reference
    by_concept = concept_rows(labels)

    def draw(concepts, rng):
        rows = _take(by_concept, concepts)
        a, b = units[rng.integers(len(units))], baseline[rng.integers(len(baseline))]
        alive, multi = multilingual_units(np.hstack([a[rows], b[rows]]), labels.take(rows), signed=s.signed)
        return _share(multi[:a.shape[1]], alive[:a.shape[1]]) - _share(multi[a.shape[1]:], alive[a.shape[1]:])

    interval = cluster_bootstrap(draw, len(by_concept), estimate=estimate, n_boot=s.n_boot, seed=s.seed)
    over = f"concepts, {len(units)} SAE seed(s) and {len(baseline)} baseline dictionaries"
    test = Test("multilingual fraction beyond " + baseline_name, Score("multilingual fraction", value, np.asarray(null)),
                reference, baseline_name, s.floor, estimate, interval, over)
    alive, multi = multilingual_units(baseline[0], labels, signed=s.signed)
    live = np.flatnonzero(alive)

    def planted(share, rng):
        zp, cols = plant_concept_units(baseline[0], labels, share, rng, columns=live)
        if not len(cols):
            return reference
        a, m = multilingual_units(zp[:, cols], labels, signed=s.signed)
        keep = np.ones(len(multi), bool)
        keep[cols] = False
        return float((multi[keep].sum() + m.sum()) / max(int(alive[keep].sum() + a.sum()), 1))

    return _with_power(test, planted, sizes, s, "units firing on 90% of one concept's rows in every language, "
                                                "planted into a baseline dictionary")


def _with_power(test: Test, planted, sizes, s: Settings, how: str) -> Test:
    from dataclasses import replace

    return replace(test, power=simulate_power(test, planted, sizes, simulations=s.simulations, seed=s.seed + 17,
                                              how=how))


# ---------------------------------------------------------------- concept overlap

@dataclass(frozen=True)
class Pairs:
    """Row pairs drawn once and used for every unit set: same-concept pairs (other sentence, other language), and
    ``n_perm`` draws of as many other-concept, other-language pairs."""

    left: np.ndarray
    right: np.ndarray
    random_left: np.ndarray
    """(n_perm, n)."""
    random_right: np.ndarray
    concept: np.ndarray
    """Concept code of each same-concept pair."""
    random_concept: np.ndarray
    """Concept code of each random pair's left row (n_perm, n)."""
    n_concepts: int


def draw_pairs(labels: Labels, n_perm: int, seed: int) -> Pairs | None:
    """None when the rows have no second sentence per concept (one sentence per concept: a parallel corpus)."""
    from mmfeatures.analysis.consistency import sample_pairs, translation_pairs

    left, _ = translation_pairs(labels)
    if not len(left) or len(set(labels.group[labels.group != ""])) < 2:
        return None
    rng = np.random.default_rng(seed + 1)
    n = len(left)
    try:
        cl, cr = sample_pairs(labels, "concept", n, rng)
    except InputError:
        return None
    rand = [sample_pairs(labels, "random", n, rng) for _ in range(n_perm)]
    codes, names = labels.codes("concept")
    rl, rr = np.stack([r[0] for r in rand]), np.stack([r[1] for r in rand])
    return Pairs(cl, cr, rl, rr, codes[cl], codes[rl], len(names))


def active_bits(z: np.ndarray, k: int | None, max_density: float) -> np.ndarray:
    """Active sets packed as bits (rows x ceil(units / 8) uint8): a row's top-k units (k given) or those > 0,
    without units active on more than ``max_density`` of the rows."""
    if k is not None:
        active = np.zeros(z.shape, bool)
        np.put_along_axis(active, np.argpartition(-z, min(k, z.shape[1]) - 1, axis=1)[:, :k], True, axis=1)
    else:
        active = z > 0
    active[:, active.mean(0) > max_density] = False
    return np.packbits(active, axis=1)


def jaccard_bits(bits: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per-pair Jaccard index of packed active sets (NaN when both are empty)."""
    a, b = bits[left], bits[right]
    inter = np.bitwise_count(a & b).sum(1, dtype=np.int64)
    union = np.bitwise_count(a | b).sum(1, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


@dataclass(frozen=True)
class OverlapSums:
    """Per concept: summed Jaccard and pair counts of same-concept pairs and of random pairs (all draws)."""

    same: np.ndarray
    same_n: np.ndarray
    rand: np.ndarray
    rand_n: np.ndarray
    draws: np.ndarray
    """Mean Jaccard of each random draw."""

    def excess(self, w: np.ndarray | None = None) -> float:
        w = np.ones_like(self.same) if w is None else w
        return float((w @ self.same) / max(w @ self.same_n, 1e-12) - (w @ self.rand) / max(w @ self.rand_n, 1e-12))


def overlap_sums(z: np.ndarray, pairs: Pairs, s: Settings) -> OverlapSums:
    bits = active_bits(z, s.overlap_k, s.max_density)
    same = jaccard_bits(bits, pairs.left, pairs.right)
    rand = jaccard_bits(bits, pairs.random_left.ravel(), pairs.random_right.ravel())
    ok_s, ok_r = np.isfinite(same), np.isfinite(rand)
    bins = pairs.n_concepts
    rc = pairs.random_concept.ravel()
    rand_draws = rand.reshape(pairs.random_left.shape)
    counted = np.isfinite(rand_draws).sum(1)                 # pairs whose sets are both empty have no Jaccard
    draws = np.where(counted > 0, np.nansum(rand_draws, 1) / np.maximum(counted, 1), np.nan)
    return OverlapSums(np.bincount(pairs.concept[ok_s], same[ok_s], bins), np.bincount(pairs.concept[ok_s], None, bins)
                       .astype(float), np.bincount(rc[ok_r], rand[ok_r], bins), np.bincount(rc[ok_r], None, bins)
                       .astype(float), draws)


def overlap_test(units: Sequence[OverlapSums], baseline: Sequence[OverlapSums], pairs: Pairs, s: Settings, *,
                 baseline_name: str, planted_from: tuple[np.ndarray, Labels] | None = None,
                 sizes: Sequence[float] = SHARES) -> Test:
    """Concept overlap excess of ``units[0]`` against random pairs, beyond the baseline's mean excess."""
    main = units[0]
    value = main.excess()
    null = main.draws - main.draws.mean()              # a draw's excess: its mean minus the draws' mean
    reference = float(np.mean([b.excess() for b in baseline]))
    estimate = float(np.mean([u.excess() for u in units])) - reference

    def draw(concepts, rng):
        w = np.bincount(concepts, minlength=pairs.n_concepts).astype(float)
        return units[rng.integers(len(units))].excess(w) - baseline[rng.integers(len(baseline))].excess(w)

    interval = cluster_bootstrap(draw, pairs.n_concepts, estimate=estimate, n_boot=max(s.n_boot, 200), seed=s.seed)
    test = Test("concept overlap beyond " + baseline_name,
                Score("concept overlap excess (Jaccard, same concept minus other concepts)", value, null),
                reference, baseline_name, s.floor, estimate, interval,
                f"concepts, {len(units)} SAE seed(s) and {len(baseline)} baseline dictionaries")
    if planted_from is None:
        return test
    z, labels = planted_from

    def planted(share, rng):
        return overlap_sums(plant_concept_units(z, labels, share, rng)[0], pairs, s).excess()

    return _with_power(test, planted, sizes, s, "units firing on 90% of one concept's rows in every language, "
                                                "planted into a baseline dictionary")


# ---------------------------------------------------------------- cross-modal

def crossmodal_units(z: np.ndarray, labels: Labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alive, multimodal, bridge) per unit, as ``crossmodal.crossmodal`` defines them."""
    from mmfeatures.analysis.crossmodal import crossmodal

    cm = crossmodal(z, labels, n_perm=0)
    return cm.alive, cm.multimodal, cm.bridge & cm.alive


def crossmodal_fractions(z: np.ndarray, labels: Labels) -> tuple[float, float]:
    """(multimodal fraction, bridge fraction) of the live units."""
    alive, multimodal, bridge = crossmodal_units(z, labels)
    n = max(int(alive.sum()), 1)
    return float(multimodal.sum() / n), float(bridge.sum() / n)


def crossmodal_tests(units: Sequence[np.ndarray], baseline: Sequence[np.ndarray], labels: Labels,
                     nulls: tuple[np.ndarray, np.ndarray], s: Settings, *, baseline_name: str,
                     sizes: Sequence[float] = SHARES) -> tuple[Test, Test]:
    """Multimodal and bridge fractions of ``units[0]`` against ``nulls`` (their shuffled-picture draws), beyond the
    baseline dictionaries' mean fractions."""
    per_seed = np.array([crossmodal_fractions(z, labels) for z in units])
    values = per_seed[0]
    base = np.array([crossmodal_fractions(b, labels) for b in baseline])
    by_concept = concept_rows(labels)

    def draw(a, b, rows):
        """Both fractions of ``a`` minus ``b``'s on ``rows`` (one pass over the rows for both unit sets)."""
        try:
            alive, mm, br = crossmodal_units(np.hstack([a[rows], b[rows]]), labels.take(rows))
        except InputError:                     # a draw with under two concepts in both modalities
            return np.full(2, np.nan)
        w = a.shape[1]
        return np.array([_share(f[:w], alive[:w]) - _share(f[w:], alive[w:]) for f in (mm, br)])

    rng = np.random.default_rng(s.seed)
    draws = []
    for _ in range(s.n_boot):
        rows = _take(by_concept, rng.integers(0, len(by_concept), len(by_concept)))
        draws.append(draw(units[rng.integers(len(units))], baseline[rng.integers(len(baseline))], rows))
    draws = np.array([d for d in draws if np.all(np.isfinite(d))])
    over = f"concepts, {len(units)} SAE seed(s) and {len(baseline)} baseline dictionaries"
    alive, *flags = crossmodal_units(baseline[0], labels)
    live = np.flatnonzero(alive)
    tests = []
    for i, (name, stat) in enumerate((("multimodal fraction", "multimodal fraction"),
                                      ("bridge fraction", "bridge-feature fraction"))):
        reference = float(base[:, i].mean())
        estimate = float(per_seed[:, i].mean()) - reference
        interval = (tuple(np.quantile(draws[:, i], [0.025, 0.975]) - (draws[:, i].mean() - estimate))
                    if len(draws) >= s.n_boot // 2 else None)
        test = Test(f"{name} beyond {baseline_name}", Score(stat, float(values[i]), np.asarray(nulls[i])), reference,
                    baseline_name, s.floor, estimate, interval, over)

        def planted(share, rng, i=i, reference=reference):
            zp, cols = plant_concept_units(baseline[0], labels, share, rng, columns=live)
            if not len(cols):
                return reference
            a, *f = crossmodal_units(zp[:, cols], labels)
            keep = np.ones(len(alive), bool)
            keep[cols] = False
            return float((flags[i][keep].sum() + f[i].sum()) / max(int(alive[keep].sum() + a.sum()), 1))

        tests.append(_with_power(test, planted, sizes, s, "units firing on 90% of one concept's pictures and names, "
                                                          "planted into a baseline dictionary"))
    return tests[0], tests[1]


def power_table(tests: Sequence[Test]) -> tuple[str, list[str], list[list]]:
    """(title, columns, rows): the detection rate of each test at each planted size."""
    rows = []
    for t in tests:
        p: Power | None = t.power
        if p is None:
            continue
        rows += [[t.name, round(e, 4), round(d, 2)] for e, d in zip(p.effects, p.detected, strict=True)]
    return ("Power: share of simulations detected at each planted effect (beyond the baseline)",
            ["test", "planted effect", "detected"], rows)
