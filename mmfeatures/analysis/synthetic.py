"""Planted ground truth: activations built from known concept, language and modality directions.

Each text row is s_c u_concept + s_l v_language + w_text + noise, each image row s_c u_concept + w_image +
noise, with random (near-orthogonal) unit directions in d dimensions. ``units`` then reads the rows
through chosen directions, like an SAE whose features are known:

- ``concept`` units (one per concept direction) should come out multilingual and, with images,
  multimodal bridges;
- ``language`` units (one per language) language-specific;
- ``image`` units (the image direction) image-only;
- ``noise`` units (random directions) nothing.

Neurons are the raw coordinates, each a dense mixture of every direction. Tests check that the
analyses recover what was planted (precision and recall) and find nothing when ``signal=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmfeatures.analysis.labels import Labels


@dataclass(frozen=True)
class Planted:
    x: np.ndarray
    """(rows, d) activations."""
    labels: Labels
    concept_dirs: np.ndarray
    language_dirs: np.ndarray
    modality_dirs: np.ndarray
    """Rows: text, image."""

    def units(self, n_noise: int = 64, threshold: float = 1.0, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(Z, kind): ReLU(x . w - threshold) for w in concept, language, image and random noise directions."""
        rng = np.random.default_rng(seed)
        noise = _unit(rng.standard_normal((n_noise, self.x.shape[1])))
        w = np.concatenate([self.concept_dirs, self.language_dirs, self.modality_dirs[1:], noise])
        kind = np.array(["concept"] * len(self.concept_dirs) + ["language"] * len(self.language_dirs)
                        + ["image"] + ["noise"] * n_noise, dtype=object)
        return np.maximum(self.x @ w.T - threshold, 0).astype(np.float32), kind


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def planted(n_concepts: int = 24, n_languages: int = 6, n_groups: int = 2, n_images: int = 2, d: int = 128,
            concept_scale: float = 3.0, language_scale: float = 3.0, modality_scale: float = 3.0,
            noise: float = 0.3, signal: bool = True, seed: int = 0, noise_seed: int | None = None,
            image_concepts: np.ndarray | None = None, sentence_scale: float = 0.0,
            shared_concepts: bool = True, axis_concepts: bool = False) -> Planted:
    """Rows for every concept x group x language (texts) and ``n_images`` images per concept.

    With ``signal=False`` the rows are pure noise with the same labels. ``seed`` draws the directions;
    ``noise_seed`` (default: the same stream) the noise, so two draws can share their directions (an SAE trained on
    one, scored on the other). ``image_concepts[c]``: the concept direction the images of concept c carry (default
    c itself; a permutation breaks the link between pictures and names while keeping both modalities' structure).
    ``sentence_scale``: each (concept, group) adds its own random direction (drawn from the noise stream), so a
    sentence and its translations share more than two sentences about one concept. ``shared_concepts=False``: each
    language says a concept with its own direction (concepts exist, but no direction is shared across languages).
    ``axis_concepts``: each concept is a coordinate axis (a neuron), so the raw dimensions already pick out concepts."""
    rng = np.random.default_rng(seed)
    concepts = _unit(rng.standard_normal((n_concepts, d)))
    if axis_concepts:
        concepts = np.eye(d)[:n_concepts]
    languages = _unit(rng.standard_normal((n_languages, d)))
    modalities = _unit(rng.standard_normal((2, d)))
    shown = np.arange(n_concepts) if image_concepts is None else np.asarray(image_concepts)
    own = None if shared_concepts else _unit(rng.standard_normal((n_languages * n_concepts, d))).reshape(
        n_languages, n_concepts, d)
    rows, concept, language, modality, group, ids = [], [], [], [], [], []
    lang_names = [f"l{i}" for i in range(n_languages)]
    noise_rng = rng if noise_seed is None else np.random.default_rng(noise_seed)
    for c in range(n_concepts):
        for g in range(1, n_groups + 1):
            sentence = sentence_scale * _unit(noise_rng.standard_normal((1, d)))[0] if sentence_scale else 0.0
            for li, lang in enumerate(lang_names):
                rows.append(concept_scale * (concepts[c] if own is None else own[li, c])
                            + language_scale * languages[li] + modality_scale * modalities[0] + sentence)
                concept.append(f"c{c}"), language.append(lang), modality.append("text"), group.append(str(g))
                ids.append(f"concepts/c{c}/{lang}/{g}")
        for i in range(n_images):
            rows.append(concept_scale * concepts[shown[c]] + modality_scale * modalities[1])
            concept.append(f"c{c}"), language.append(""), modality.append("image"), group.append("")
            ids.append(f"images/c{c}/{i}")
    x = np.array(rows) if signal else np.zeros((len(rows), d))
    x = x + noise * noise_rng.standard_normal(x.shape) * (1.0 if signal else 3.0)
    labels = Labels(np.array(concept, object), np.array(language, object), np.array(modality, object),
                    np.array(group, object), np.array(ids, object))
    return Planted(x.astype(np.float32), labels, concepts, languages, modalities)
