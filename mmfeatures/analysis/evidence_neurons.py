"""The test behind "SAE features pick out concepts better than neurons" (see ``verdict``), like for like.

**Readout.** Both sides are read the same way: sparse, one-signed and max-pooled over a sentence's tokens. The SAE's
latents as they are; the neurons as a dictionary (``baselines.NeuronBasis``: each coordinate and its negation, the
top k per token at the SAE's L0). Read dense and signed, neurons score on a different scale (see
``interpret.interpretability``, reported beside the verdict, not in it).

**Score.** A unit's concept is the one most common among the first sentences it fires on; on the second sentences,
its *precision* is the share of the sentences it fires on that are that concept's, its *recall* the share of that
concept's sentences it fires on. A unit is a *precise detector* when it fires on at least ``min_active`` second
sentences and its precision is at least ``min_precision``: interpretable in the sense that when it fires, it is
about one thing. Recall is reported, not required (a feature for 'dog' in one language is interpretable; the
cross-lingual claim asks for the rest). Best-concept AUROC is reported too: alone it rewards recall (for a
non-negative sparse unit AUROC = 0.5 + 0.5 (recall - false-positive rate)).

**Width.** A wider dictionary scores differently whatever it learnt, so each side is measured beyond random
directions of its own width and L0 (``baselines.RandomDirections``): the effect is (SAE share - random directions at
the SAE's width) - (neuron share - random directions at the neurons' width, 2 d).

- null: concept labels permuted within language (the SAE's share);
- baseline: the neurons' share moved to the SAE's width (neuron share - random at 2 d + random at the SAE's width);
- interval: a bootstrap over concepts, with an SAE seed and a random dictionary of each width drawn per draw;
- power: precise concept units planted into a random dictionary of the SAE's width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from mmfeatures.analysis.evidence import _take, concept_rows, plant_concept_units
from mmfeatures.analysis.labels import Labels
from mmfeatures.analysis.stats import Score, auroc_by_class, class_sums, permuted, ranks
from mmfeatures.analysis.verdict import Test, cluster_bootstrap, simulate_power
from mmfeatures.errors import InputError

PICK, HELD = "1", "2"
SHARES = tuple(min(1.0, 0.0025 * 2 ** (i / 2)) for i in range(19))
"""Shares of the random dictionary's live units replaced by planted detectors, up to all of them: the effect is
measured beyond the neurons, which may already detect many concepts."""


@dataclass(frozen=True)
class Detectors:
    """Per unit: its concept (the most common among the first sentences it fires on) and that concept's AUROC,
    precision and recall on the second sentences, and whether it is alive (fires on >= 3 second sentences) and a
    precise detector."""

    concept: np.ndarray
    auroc: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    alive: np.ndarray
    detector: np.ndarray

    @property
    def share(self) -> float:
        return float(self.detector.sum() / max(int(self.alive.sum()), 1))


def detectors(z: np.ndarray, labels: Labels, *, min_precision: float = 0.5, min_active: int = 3) -> Detectors:
    """``Detectors`` of the units ``z`` (rows x units, read sparse: a unit fires where it is > 0)."""
    pick, held = np.flatnonzero(labels.group == PICK), np.flatnonzero(labels.group == HELD)
    if not len(pick) or not len(held):
        raise InputError(f"features against neurons picks a unit's concept on sentence group {PICK!r} and scores it "
                         f"on {HELD!r}; the rows have groups {sorted(set(labels.group))}")
    concepts = sorted(set(labels.concept[pick]) & set(labels.concept[held]))
    index = {c: i for i, c in enumerate(concepts)}

    def onehot(rows):
        out = np.zeros((len(rows), len(concepts)), np.float32)
        codes = np.array([index.get(c, -1) for c in labels.concept[rows]])
        out[np.flatnonzero(codes >= 0), codes[codes >= 0]] = 1
        return out

    units = np.arange(z.shape[1])
    best = class_sums((z[pick] > 0).astype(np.float32), onehot(pick)).argmax(1)     # most common where it fires
    auc = auroc_by_class(ranks(z[pick]), onehot(pick))[units, best]
    fires = (z[held] > 0).astype(np.float32)
    tp = class_sums(fires, onehot(held))[units, best]               # second sentences of its concept it fires on
    fired = fires.sum(0)
    size = onehot(held).sum(0)[best]
    precision = np.where(fired > 0, tp / np.maximum(fired, 1), 0.0)
    recall = np.where(size > 0, tp / np.maximum(size, 1), 0.0)
    alive = fired >= min_active
    return Detectors(np.array(concepts, object)[best], auc, precision, recall, alive,
                     alive & (precision >= min_precision))


def share(z: np.ndarray, labels: Labels) -> float:
    return detectors(z, labels).share


def neurons_test(units: Sequence[np.ndarray], neurons: np.ndarray, wide: Sequence[np.ndarray],
                 narrow: Sequence[np.ndarray], labels: Labels, *, n_perm: int, n_boot: int, simulations: int,
                 floor: float, seed: int, sizes: Sequence[float] = SHARES) -> tuple[Test, dict[str, float]]:
    """(the test, the shares by unit set). ``units``: the SAE's latents per seed; ``neurons``: the neuron basis read
    as a dictionary; ``wide`` / ``narrow``: random-direction dictionaries at the SAE's width and at the neurons'."""
    shares = {"SAE": [share(z, labels) for z in units], "neurons": share(neurons, labels),
              "random (SAE width)": [share(z, labels) for z in wide],
              "random (neuron width)": [share(z, labels) for z in narrow]}
    rd_wide, rd_narrow = float(np.mean(shares["random (SAE width)"])), float(np.mean(shares["random (neuron width)"]))
    reference = shares["neurons"] - rd_narrow + rd_wide
    value = shares["SAE"][0]
    estimate = float(np.mean(shares["SAE"])) - reference
    rng = np.random.default_rng(seed)
    null = np.array([share(units[0], permuted(labels, "concept", rng, within="language")) for _ in range(n_perm)])
    by_concept = concept_rows(labels)

    def draw(concepts, rng):
        rows = _take(by_concept, concepts)
        lab = labels.take(rows)
        pick = [units[rng.integers(len(units))], neurons, wide[rng.integers(len(wide))],
                narrow[rng.integers(len(narrow))]]
        s, n, w, m = (share(z[rows], lab) for z in pick)
        return (s - w) - (n - m)

    interval = cluster_bootstrap(draw, len(by_concept), estimate=estimate, n_boot=n_boot, seed=seed)
    test = Test("precise concept detectors beyond neurons read the same way, at matched width",
                Score("share of live units that detect a concept precisely (precision >= 0.5 on held-out sentences)",
                      value, null), reference, "the neuron basis read as a dictionary, moved to the SAE's width by "
                                              "random directions of each width", floor, estimate, interval,
                f"concepts, {len(units)} SAE seed(s), {len(wide)} + {len(narrow)} random dictionaries")
    base = detectors(wide[0], labels)
    live = np.flatnonzero(base.alive)

    def planted(fraction, rng):
        zp, cols = plant_concept_units(wide[0], labels, fraction, rng, columns=live)
        if not len(cols):
            return base.share
        found = detectors(zp[:, cols], labels)
        keep = np.ones(len(base.alive), bool)
        keep[cols] = False
        planted_share = (base.detector[keep].sum() + found.detector.sum()) / max(
            int(base.alive[keep].sum() + found.alive.sum()), 1)
        return float(planted_share)

    power = simulate_power(test, planted, sizes, simulations=simulations, seed=seed + 17,
                           how="precise concept units planted into a random dictionary of the SAE's width")
    flat = {k: float(np.mean(v)) for k, v in shares.items()}
    return replace(test, power=power), flat
