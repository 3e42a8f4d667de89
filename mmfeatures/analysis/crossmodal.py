"""Cross-modal consistency, after Papadimitriou et al. 2025 ("Interpreting the linear structure of
vision-language model embedding spaces"), each summary next to a null.

- ModalityScore_f = E_img[A_f] / (E_img[A_f] + E_txt[A_f]) with A = max(Z, 0): 1 fires on images only,
  0 on texts only;
- bridge features fire (on >= ``rate`` of the rows) on both the images and the texts of one concept;
- the bridge matrix B = E_pairs[z_img z_txt^T] (.) (D D^T) over image-text pairs of the same concept,
  for a chosen set of features (D: their unit-norm decoder rows; without a decoder B is the plain
  co-activation);
- the multimodal fraction: features with ModalityScore in [0.2, 0.8] that are concept-selective in both
  modalities for the same concept: for some concept, the AUROC against the other concepts is
  >= ``auroc_min`` among the images and among the texts.

Nulls: the images' concepts shuffled among the images, which breaks image-text alignment but keeps
every unit's modality profile (multimodal and bridge fractions); modality labels shuffled within each
concept (modality specificity: what a modality-blind unit would score).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmfeatures.analysis.labels import Labels
from mmfeatures.analysis.stats import Score, auroc_by_class, class_sums, permuted, ranks
from mmfeatures.errors import InputError


def _check(z: np.ndarray, labels: Labels) -> None:
    if z.ndim != 2 or len(z) != len(labels):
        raise InputError(f"activations have shape {z.shape} but there are {len(labels)} labelled rows")
    labels.require_concepts()
    mods = set(labels.modality.astype(str))
    if not {"image", "text"} <= mods:
        raise InputError(f"cross-modal metrics need image and text rows; these rows are {sorted(mods)}")


def modality_score(z: np.ndarray, labels: Labels) -> np.ndarray:
    """E_img[A] / (E_img[A] + E_txt[A]) per unit; NaN for units that never fire."""
    _check(z, labels)
    mass = np.maximum(z, 0)
    img = mass[labels.mask(modality="image")].mean(0)
    txt = mass[labels.mask(modality="text")].mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(img + txt > 0, img / (img + txt), np.nan).astype(np.float32)


def bridge_features(z: np.ndarray, labels: Labels, rate: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(mask over units, best bridged concept index into the shared concepts) for units that fire on
    >= ``rate`` of both the image rows and the text rows of some concept."""
    _check(z, labels)
    img, txt = labels.mask(modality="image"), labels.mask(modality="text")
    shared = sorted(set(labels.concept[img]) & set(labels.concept[txt]))
    if not shared:
        raise InputError("no concept has both image and text rows; bridges need image-caption alignment")
    fires = (z > 0).astype(np.float32)

    def rates(rows):                               # (concepts, units) firing rate among those rows
        onehot = _onehot(labels.concept[rows], shared)
        return class_sums(fires[rows], onehot).T / np.maximum(onehot.sum(0), 1)[:, None]

    both = np.minimum(rates(img), rates(txt))
    return both.max(0) >= rate, both.argmax(0)


def image_text_pairs(labels: Labels, language: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(image row, text row) index pairs of the same concept, optionally texts in one language."""
    img = np.flatnonzero(labels.mask(modality="image"))
    txt_mask = labels.mask(modality="text") & (labels.mask(language=language) if language else True)
    by_concept: dict[str, list[int]] = {}
    for t in np.flatnonzero(txt_mask):
        by_concept.setdefault(labels.concept[t], []).append(t)
    pairs = [(i, t) for i in img for t in by_concept.get(labels.concept[i], [])]
    return (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64))


def bridge_matrix(z: np.ndarray, labels: Labels, features: np.ndarray, decoder: np.ndarray | None = None,
                  language: str | None = None) -> np.ndarray:
    """B[f, g] = E_pairs[z_img[f] z_txt[g]] * <d_f, d_g> for the units in ``features``.

    ``decoder``: (units, d_model) decoder rows (normalised here); None leaves out the geometric term."""
    left, right = image_text_pairs(labels, language)
    if len(left) == 0:
        raise InputError("no image-text pairs of the same concept")
    features = np.asarray(features)
    b = z[left][:, features].T @ z[right][:, features] / len(left)
    if decoder is not None:
        d = np.asarray(decoder, np.float32)[features]
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        b = b * (d @ d.T)
    return b.astype(np.float32)


@dataclass(frozen=True)
class CrossModal:
    """Per-unit cross-modal metrics and fractions with their nulls."""

    modality_score: np.ndarray
    concept_auroc: np.ndarray
    """Per unit: max over concepts of min(image AUROC, text AUROC)."""
    bridge: np.ndarray
    bridge_concept: np.ndarray
    alive: np.ndarray
    multimodal: np.ndarray
    scores: dict[str, Score] = field(default_factory=dict)

    def table(self):
        import pandas as pd

        return pd.DataFrame([s.row() for s in self.scores.values()])

    def histogram(self, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Counts and edges of the ModalityScore of alive units."""
        values = self.modality_score[self.alive & np.isfinite(self.modality_score)]
        return np.histogram(values, bins=bins, range=(0.0, 1.0))


def _onehot(values: np.ndarray, classes: list[str]) -> np.ndarray:
    """(rows, classes) float32 one-hot of ``values`` in ``classes`` (rows of another class: all zero)."""
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([index.get(v, -1) for v in values], np.int64)
    out = np.zeros((len(codes), len(classes)), np.float32)
    hit = codes >= 0
    out[np.flatnonzero(hit), codes[hit]] = 1.0
    return out


def crossmodal(z: np.ndarray, labels: Labels, *, auroc_min: float = 0.9, band: tuple[float, float] = (0.2, 0.8),
               rate: float = 0.5, min_active: int = 3, n_perm: int = 20, seed: int = 0) -> CrossModal:
    """All cross-modal metrics for ``z`` over image and text rows, with permutation nulls."""
    z = np.asarray(z, np.float32)
    _check(z, labels)
    alive = (z > 0).sum(0) >= min_active
    img, txt = labels.mask(modality="image"), labels.mask(modality="text")
    shared = sorted(set(labels.concept[img]) & set(labels.concept[txt]))
    if len(shared) < 2:
        raise InputError(f"{len(shared)} concept(s) have both images and texts; need >= 2 for concept AUROCs")
    in_shared = labels.mask(concept=shared)
    img_rows, txt_rows = np.flatnonzero(img & in_shared), np.flatnonzero(txt & in_shared)
    img_rank, txt_rank = ranks(z[img_rows]), ranks(z[txt_rows])
    txt_auc = auroc_by_class(txt_rank, _onehot(labels.concept[txt_rows], shared))

    def joint_auroc(image_concepts):
        """Per unit: max over concepts of min(image AUROC, text AUROC) for that concept."""
        return np.minimum(auroc_by_class(img_rank, _onehot(image_concepts, shared)), txt_auc).max(1)

    c_auc = joint_auroc(labels.concept[img_rows])
    score = modality_score(z, labels)
    bridge, bridge_concept = bridge_features(z, labels, rate)

    def multimodal_of(score_, c_auc_):
        with np.errstate(invalid="ignore"):
            return alive & (score_ >= band[0]) & (score_ <= band[1]) & (c_auc_ >= auroc_min)

    def specificity(score_):
        return float(np.nanmean(np.abs(2 * score_[alive] - 1)))

    multimodal = multimodal_of(score, c_auc)
    n_alive = max(int(alive.sum()), 1)
    rng = np.random.default_rng(seed)
    null_mm, null_bridge, null_spec = [], [], []
    for _ in range(n_perm):      # the scored pictures' concepts shuffled among themselves (every concept keeps its count)
        concepts = labels.concept.copy()
        concepts[img_rows] = concepts[img_rows][rng.permutation(len(img_rows))]
        shuffled = Labels(concepts, labels.language, labels.modality, labels.group, labels.example_id)
        null_mm.append(multimodal_of(score, joint_auroc(concepts[img_rows])).sum() / n_alive)
        null_bridge.append((bridge_features(z, shuffled, rate)[0] & alive).sum() / n_alive)
        null_spec.append(specificity(modality_score(z, permuted(labels, "modality", rng, within="concept"))))
    scores = {
        "multimodal": Score("multimodal fraction", multimodal.sum() / n_alive, np.array(null_mm)),
        "bridge": Score("bridge-feature fraction", (bridge & alive).sum() / n_alive, np.array(null_bridge)),
        "specificity": Score("modality specificity, mean |2 ModalityScore - 1|", specificity(score),
                             np.array(null_spec)),
    }
    return CrossModal(score, c_auc, bridge, bridge_concept, alive, multimodal, scores)


def bridge_matrix_score(z: np.ndarray, labels: Labels, features: np.ndarray, decoder: np.ndarray | None = None,
                        *, n_perm: int = 20, seed: int = 0) -> Score:
    """Mean diagonal of the bridge matrix (how much each feature's image activation meets its own text
    activation on matched pairs) against the same with the images' concepts shuffled among the images."""
    value = float(np.mean(np.diag(bridge_matrix(z, labels, features, decoder))))
    rng = np.random.default_rng(seed)
    image_rows = np.flatnonzero(labels.mask(modality="image"))
    null = []
    for _ in range(n_perm):
        concepts = labels.concept.copy()
        concepts[image_rows] = concepts[image_rows][rng.permutation(len(image_rows))]
        shuffled = Labels(concepts, labels.language, labels.modality, labels.group, labels.example_id)
        null.append(float(np.mean(np.diag(bridge_matrix(z, shuffled, features, decoder)))))
    return Score("bridge matrix mean diagonal", value, np.array(null))
