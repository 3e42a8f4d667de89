"""Cross-lingual consistency of features (or neurons), each summary next to a null.

Definitions (text rows only; A = max(Z, 0) is a unit's activation mass):

- language entropy, LAPE-style: p_L = mean_L(A_f) / sum_L' mean_L'(A_f), H_f = -sum_L p_L log p_L / log(#L),
  so 1 means equal mass in every language and 0 all mass in one;
- monolinguality nu_{f,L} = mean_L(A_f) - mean_{not L}(A_f);
- translation overlap: Jaccard index of the active-unit sets of two rows that say the same thing in two
  languages (same concept and group), against random pairs of different concepts and languages;
- a unit is *concept-selective* when its best one-concept-vs-rest AUROC >= ``auroc_min``, *multilingual*
  when also H >= ``h_multi``, and *language-specific* when its best language AUROC >= ``auroc_min`` and
  H < ``h_mono``. Units that fire on fewer than ``min_active`` rows are dead and left out of fractions.

Nulls: concept labels permuted within each language (multilingual fraction), language labels permuted
within each concept (language-specific fraction, entropy, monolinguality), random pairs (overlap).

Translation overlap mostly measures shared sentence content, so ``crosslingual`` decomposes it with pairs that
keep one thing and change another (``PAIRS``): a sentence and its translation; the *other* sentence of the same
concept in another language (``concept_overlap``: the concept without the sentence); another concept in the same
language (what sharing a language alone gives). Each is compared with pairs of other concepts in other
languages, and the translation overlap also with the same-language pairs (``overlap_vs_language``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmfeatures.analysis.labels import Labels
from mmfeatures.analysis.stats import Score, best_auroc, class_sums, permuted, ranks, require_rows
from mmfeatures.errors import InputError


def _text(z: np.ndarray, labels: Labels) -> tuple[np.ndarray, Labels]:
    if z.ndim != 2 or len(z) != len(labels):
        raise InputError(f"activations have shape {z.shape} but there are {len(labels)} labelled rows; "
                         "give one row per label")
    labels.require_concepts()
    keep = labels.mask(modality="text") & (labels.language != "")
    if not keep.any():
        raise InputError("no text rows with a language; cross-lingual metrics need texts in >= 2 languages")
    return (z, labels) if keep.all() else (z[keep], labels.take(np.flatnonzero(keep)))   # no copy when all are text


def _mass(z: np.ndarray) -> np.ndarray:
    """max(z, 0), without a copy when z is already non-negative (SAE latents)."""
    return z if z.size == 0 or z.min() >= 0 else np.maximum(z, 0)


def _language_sums(mass: np.ndarray, labels: Labels) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(units x languages) activation mass summed per language, the rows per language, the languages."""
    onehot, langs = labels.onehot("language")
    return class_sums(mass, onehot), onehot.sum(0).astype(np.float64), langs


def _entropy(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    means = sums / counts
    total = means.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = means / total
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(1) / np.log(len(counts))
    h[total[:, 0] <= 0] = np.nan
    return h.astype(np.float32)


def _nu(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    on = sums / counts
    off = (sums.sum(1, keepdims=True) - sums) / (counts.sum() - counts)
    return (on - off).astype(np.float32)


def language_means(z: np.ndarray, labels: Labels) -> tuple[np.ndarray, tuple[str, ...]]:
    """(units, languages) mean activation mass of each unit in each language."""
    sums, counts, langs = _language_sums(_mass(z), labels)
    require_rows(dict(zip(langs, counts.astype(int), strict=True)), 5, "per-language means")
    return sums / counts, langs


def language_entropy(z: np.ndarray, labels: Labels) -> np.ndarray:
    """Normalised language entropy H_f in [0, 1] per unit (NaN for units with no mass)."""
    z, labels = _text(z, labels)
    sums, counts, langs = _language_sums(_mass(z), labels)
    require_rows(dict(zip(langs, counts.astype(int), strict=True)), 5, "per-language means")
    if len(langs) < 2:
        raise InputError(f"language entropy needs >= 2 languages; the rows have {langs}")
    return _entropy(sums, counts)


def monolinguality(z: np.ndarray, labels: Labels) -> tuple[np.ndarray, tuple[str, ...]]:
    """nu[f, L]: mean activation mass on language L minus the mean on all other languages."""
    z, labels = _text(z, labels)
    sums, counts, langs = _language_sums(_mass(z), labels)
    return _nu(sums, counts), langs


def translation_pairs(labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (i < j) with the same concept and group but different languages (text rows)."""
    keep = labels.mask(modality="text") & (labels.group != "") & (labels.language != "")
    keys: dict[tuple[str, str], list[int]] = {}
    for i in np.flatnonzero(keep):
        keys.setdefault((labels.concept[i], labels.group[i]), []).append(i)
    left, right = [], []
    for rows in keys.values():
        for a in range(len(rows)):
            for b in range(a + 1, len(rows)):
                if labels.language[rows[a]] != labels.language[rows[b]]:
                    left.append(rows[a])
                    right.append(rows[b])
    return np.array(left, np.int64), np.array(right, np.int64)


def random_pairs(labels: Labels, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` text-row pairs with different concepts and different languages."""
    rows = np.flatnonzero(labels.mask(modality="text") & (labels.language != ""))
    left, right = rng.choice(rows, 4 * n), rng.choice(rows, 4 * n)
    ok = (labels.concept[left] != labels.concept[right]) & (labels.language[left] != labels.language[right])
    if ok.sum() < n:
        raise InputError("too few rows of different concepts and languages to draw random pairs")
    return left[ok][:n], right[ok][:n]


PAIRS = {
    "translation": "a sentence and its translation (same concept and sentence, other language)",
    "concept": "the other sentence of the same concept, in another language",
    "language": "another concept in the same language",
    "random": "another concept in another language",
}


def sample_pairs(labels: Labels, kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` text-row pairs of a ``PAIRS`` kind other than 'translation' (which ``translation_pairs`` lists)."""
    if kind == "random":
        return random_pairs(labels, n, rng)
    if kind not in ("concept", "language"):
        raise InputError(f"pair kind {kind!r}; use one of {', '.join(PAIRS)}")
    rows = np.flatnonzero(labels.mask(modality="text") & (labels.language != ""))
    # the partner shares the concept (or the language): draw it among the rows with the same code
    _, code = np.unique(getattr(labels, kind)[rows].astype(str), return_inverse=True)
    order = np.argsort(code, kind="stable")
    counts = np.bincount(code)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = rng.integers(0, len(rows), 4 * n)
    left = rows[pick]
    right = rows[order[starts[code[pick]] + (rng.random(4 * n) * counts[code[pick]]).astype(np.int64)]]
    if kind == "language":
        ok = labels.concept[left] != labels.concept[right]
    else:
        ok = (labels.group[left] != labels.group[right]) & (labels.language[left] != labels.language[right]) \
            & (labels.group[left] != "")
    if ok.sum() < n:
        raise InputError(f"too few row pairs of kind {kind!r} ({PAIRS[kind]}): {int(ok.sum())} of {n} drawn; "
                         "the rows need >= 2 sentence groups per concept in >= 2 languages")
    return left[ok][:n], right[ok][:n]


def overlap_controls(z: np.ndarray, labels: Labels, *, k: int | None = None, threshold: float = 0.0,
                     n_perm: int = 20, seed: int = 0) -> dict[str, Score]:
    """The translation-overlap decomposition as Scores (see the module docstring): ``concept_overlap`` (same
    concept, other sentence, other language) against other-concept, other-language pairs, and
    ``overlap_vs_language`` (translations) against same-language, other-concept pairs. Each null draw holds as many
    pairs as the value."""
    left, right = translation_pairs(labels)
    if len(left) == 0:
        raise InputError("no translation pairs: rows need the same concept and group in >= 2 languages")
    active = active_sets(z, k, threshold)
    rng = np.random.default_rng(seed + 1)
    n = len(left)
    concept = float(np.nanmean(jaccard(active, *sample_pairs(labels, "concept", n, rng))))
    random_ = [float(np.nanmean(jaccard(active, *sample_pairs(labels, "random", n, rng)))) for _ in range(n_perm)]
    language = [float(np.nanmean(jaccard(active, *sample_pairs(labels, "language", n, rng)))) for _ in range(n_perm)]
    translation = float(np.nanmean(jaccard(active, left, right)))
    return {"concept_overlap": Score("concept overlap across languages, other sentence (Jaccard)", concept,
                                     np.array(random_)),
            "overlap_vs_language": Score("translation overlap against same-language pairs (Jaccard)", translation,
                                         np.array(language))}


def active_sets(z: np.ndarray, k: int | None = None, threshold: float = 0.0):
    """Sparse boolean (rows, units): a row's top-``k`` units, or those above ``threshold``."""
    from scipy import sparse

    if k is not None:
        idx = np.argpartition(-z, min(k, z.shape[1]) - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(len(z)), idx.shape[1])
        return sparse.csr_matrix((np.ones(rows.size, bool), (rows, idx.ravel())), shape=z.shape)
    return sparse.csr_matrix(z > threshold)


def jaccard(active, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per-pair Jaccard index of active sets (NaN when both sets are empty)."""
    a, b = active[left].astype(np.float32), active[right].astype(np.float32)
    inter = np.asarray(a.multiply(b).sum(1)).ravel()
    union = np.asarray(a.sum(1)).ravel() + np.asarray(b.sum(1)).ravel() - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def concept_features(z: np.ndarray, labels: Labels, concept: str, languages=None, top: int = 12
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A concept's ``top`` features, ranked by mean activation on its rows minus that on all other rows, and
    their mean activation in each language: (features, matrix of languages x features, languages)."""
    z = np.asarray(z, np.float32)
    if concept not in set(labels.concept):
        raise InputError(f"concept {concept!r} is not in these rows; e.g. {sorted(set(labels.concept))[:8]}")
    languages = [lang for lang in dict.fromkeys(labels.language) if lang] if languages is None else list(languages)
    in_c = labels.concept == concept
    features = np.argsort(-(z[in_c].mean(0) - z[~in_c].mean(0)))[:top]
    matrix = np.array([z[in_c & (labels.language == lang)][:, features].mean(0) if
                       (in_c & (labels.language == lang)).any() else np.full(len(features), np.nan)
                       for lang in languages])
    return features, matrix, languages


@dataclass(frozen=True)
class Overlap:
    """Translation overlap: mean Jaccard of translation pairs against random pairs."""

    score: Score
    """value = mean Jaccard over translation pairs; null = mean Jaccard of equally many random pairs."""
    translation: np.ndarray
    random: np.ndarray
    by_language: dict[tuple[str, str], float]


def translation_overlap(z: np.ndarray, labels: Labels, *, k: int | None = None, threshold: float = 0.0,
                        n_perm: int = 20, seed: int = 0) -> Overlap:
    """Jaccard of active sets for translation pairs vs random pairs (each null draw: as many pairs)."""
    left, right = translation_pairs(labels)
    if len(left) == 0:
        raise InputError("no translation pairs: rows need the same concept and group in >= 2 languages "
                         "(the built-in sentences have groups '1' and '2')")
    active = active_sets(z, k, threshold)
    trans = jaccard(active, left, right)
    rng = np.random.default_rng(seed)
    draws = [jaccard(active, *random_pairs(labels, len(left), rng)) for _ in range(n_perm)]
    by_language: dict[tuple[str, str], list[float]] = {}
    for i, j, value in zip(left, right, trans, strict=True):
        key = tuple(sorted((labels.language[i], labels.language[j])))
        by_language.setdefault(key, []).append(value)
    score = Score("translation overlap (Jaccard)", float(np.nanmean(trans)),
                  np.array([np.nanmean(d) for d in draws]))
    return Overlap(score, trans, np.concatenate(draws) if draws else np.zeros(0),
                   {k_: float(np.nanmean(v)) for k_, v in by_language.items()})


def multilingual_fraction(z: np.ndarray, labels: Labels, *, signed: bool = False, auroc_min: float = 0.9,
                          h_multi: float = 0.8, min_active: int = 3) -> float:
    """The share of live units that are multilingual (as ``crosslingual`` defines it), and nothing else: the
    statistic a baseline dictionary is scored on."""
    z, labels = _text(np.asarray(z, np.float32), labels)
    alive = (z > 0).sum(0) >= min_active if not signed else (z != 0).sum(0) >= min_active
    c_auc = best_auroc(ranks(z), labels.onehot("concept")[0], signed)[0]
    with np.errstate(invalid="ignore"):
        multi = alive & (c_auc >= auroc_min) & (language_entropy(z, labels) >= h_multi)
    return float(multi.sum() / max(int(alive.sum()), 1))


@dataclass(frozen=True)
class CrossLingual:
    """Per-unit cross-lingual metrics and fractions, each fraction with its permutation null."""

    entropy: np.ndarray
    concept_auroc: np.ndarray
    best_concept: np.ndarray
    language_auroc: np.ndarray
    best_language: np.ndarray
    alive: np.ndarray
    multilingual: np.ndarray
    language_specific: np.ndarray
    scores: dict[str, Score] = field(default_factory=dict)
    concepts: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    overlap: Overlap | None = None

    def table(self):
        """The scores as a DataFrame (metric, value, null mean, null sd, p)."""
        import pandas as pd

        return pd.DataFrame([s.row() for s in self.scores.values()])

    def units(self):
        """One row per unit: entropy, best concept and language with their AUROCs, flags."""
        import pandas as pd

        return pd.DataFrame({"entropy": self.entropy, "concept_auroc": self.concept_auroc,
                             "concept": np.array(self.concepts, object)[self.best_concept],
                             "language_auroc": self.language_auroc,
                             "language": np.array(self.languages, object)[self.best_language],
                             "alive": self.alive, "multilingual": self.multilingual,
                             "language_specific": self.language_specific})


def crosslingual(z: np.ndarray, labels: Labels, *, signed: bool = False, auroc_min: float = 0.9,
                 h_multi: float = 0.8, h_mono: float = 0.5, min_active: int = 3, n_perm: int = 20,
                 overlap_k: int | None = None, seed: int = 0) -> CrossLingual:
    """All cross-lingual metrics for ``z`` (rows x units) with permutation nulls.

    ``signed=True`` for neurons: AUROC also scores -z. ``overlap_k``: active set = top-k units
    (use it for dense neurons), else units > 0."""
    z, labels = _text(np.asarray(z, np.float32), labels)
    require_rows({c: int(n) for c, n in zip(*np.unique(labels.concept.astype(str), return_counts=True), strict=True)}, 2,
                 "concept AUROC (rows per concept)")
    alive = (z > 0).sum(0) >= min_active if not signed else (z != 0).sum(0) >= min_active
    rank = ranks(z)
    c_onehot, concepts = labels.onehot("concept")
    l_onehot, langs = labels.onehot("language")
    c_auc, c_best = best_auroc(rank, c_onehot, signed)
    l_auc, l_best = best_auroc(rank, l_onehot, signed)
    entropy = language_entropy(z, labels)
    mass = _mass(z)

    def fractions(c_auc_, l_auc_, entropy_):
        with np.errstate(invalid="ignore"):
            multi = alive & (c_auc_ >= auroc_min) & (entropy_ >= h_multi)
            mono = alive & (l_auc_ >= auroc_min) & (entropy_ < h_mono)
        return multi, mono

    multi, mono = fractions(c_auc, l_auc, entropy)
    n_alive = max(int(alive.sum()), 1)

    def max_nu(sums, counts):
        nu = _nu(sums, counts)[alive]
        return float(nu.max(1).mean()) if len(nu) else float("nan")

    rng = np.random.default_rng(seed)
    null_multi, null_mono, null_h, null_nu = [], [], [], []
    for _ in range(n_perm):
        pc = permuted(labels, "concept", rng, within="language")
        c_null = best_auroc(rank, pc.onehot("concept")[0], signed)[0]
        null_multi.append(fractions(c_null, l_auc, entropy)[0].sum() / n_alive)
        pl = permuted(labels, "language", rng, within="concept")
        l_null = best_auroc(rank, pl.onehot("language")[0], signed)[0]
        sums, counts, _ = _language_sums(mass, pl)
        h_null = _entropy(sums, counts)
        null_mono.append(fractions(c_auc, l_null, h_null)[1].sum() / n_alive)
        null_h.append(np.nanmean(h_null[alive]))
        null_nu.append(max_nu(sums, counts))
    scores = {
        "multilingual": Score("multilingual fraction", multi.sum() / n_alive, np.array(null_multi)),
        "language_specific": Score("language-specific fraction", mono.sum() / n_alive, np.array(null_mono)),
        "entropy": Score("mean language entropy", float(np.nanmean(entropy[alive])), np.array(null_h), "less"),
        "monolinguality": Score("mean max monolinguality (nu)", max_nu(*_language_sums(mass, labels)[:2]),
                                np.array(null_nu)),
    }
    overlap = None
    if len(translation_pairs(labels)[0]):
        overlap = translation_overlap(z, labels, k=overlap_k, n_perm=n_perm, seed=seed)
        scores["overlap"] = overlap.score
        if len(set(labels.group[labels.group != ""])) >= 2:
            scores.update(overlap_controls(z, labels, k=overlap_k, n_perm=n_perm, seed=seed))
    return CrossLingual(entropy, c_auc, c_best, l_auc, l_best, alive, multi, mono, scores, concepts, langs, overlap)
