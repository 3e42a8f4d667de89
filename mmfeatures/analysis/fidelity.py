"""What splicing an SAE into the model costs downstream (OpenAI's "10x less compute" limitation).

The site's output is replaced by the SAE's reconstruction (``steering.splice``) at content tokens only (the
special tokens, BOS/CLS and EOS/SEP, which no SAE here is meant to model, keep their activations; padding is left
alone), and the rest of the model runs as usual. Scores compare against the clean model:

- embedding cosine to the clean embedding;
- retrieval accuracy: each sentence 1 retrieves, among the sentences 2 of the same language, the one
  with its concept (top-1);
- cross-lingual retrieval accuracy: each non-English sentence 1 retrieves among English sentences 2.

The fraction of performance recovered, as SAEBench and SAELens define "loss recovered", is
(score_SAE - score_ablated) / (score_clean - score_ablated), with zero- and mean-ablation of the site
as the baselines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mmfeatures.analysis.steering import embed_normalized, splice
from mmfeatures.errors import InputError
from mmfeatures.types import Modality

BOOTSTRAP = 1000
"""Resamples of the percentile bootstrap behind every interval here (95%, over sentences or images)."""

Interval = tuple[float, float, float]
"""(mean, low, high): a mean and its 95% percentile-bootstrap interval."""


@dataclass(frozen=True)
class Fidelity:
    """Scores of the clean, SAE-spliced, zero-ablated and mean-ablated model, and fractions recovered."""

    site: str
    scores: dict[str, dict[str, float]]
    """condition ('clean', 'sae', 'zero', 'mean') -> metric ('cosine', 'retrieval', 'crosslingual') -> value."""
    recovered: dict[str, dict[str, float]]
    """baseline ('zero', 'mean') -> metric -> fraction recovered by the SAE."""
    by_language: dict[str, dict[str, dict[str, Interval]]] = field(default_factory=dict)
    """condition -> language -> metric -> (mean, low, high) over that language's sentences (or queries); English
    has no 'crosslingual' (it is the pool)."""

    def row(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {"site": self.site}
        for metric, value in self.scores["sae"].items():
            out[metric] = value
        for baseline, fractions in self.recovered.items():
            for metric, value in fractions.items():
                out[f"recovered_{metric}_vs_{baseline}"] = value
        return out


def interval(values, rng: np.random.Generator, n: int = BOOTSTRAP) -> Interval:
    """The mean of ``values`` and its 95% percentile-bootstrap interval (``n`` resamples)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (float("nan"),) * 3
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(values.mean()), float(low), float(high)


def _hits(emb: np.ndarray, concepts: np.ndarray, queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """1.0 where a query's nearest pool item has its concept, else 0.0."""
    best = (emb[queries] @ emb[pool].T).argmax(1)
    return (concepts[pool][best] == concepts[queries]).astype(np.float64)


def items(emb: np.ndarray, clean: np.ndarray, dataset) -> dict[str, dict[str, np.ndarray]]:
    """Per language, per-item values: each sentence's cosine to its clean embedding, each query's monolingual
    and (not for English) cross-lingual retrieval hit; ``scores`` averages them (see the module docstring)."""
    if not all(e.concept and e.language and e.group in ("1", "2") for e in dataset):
        raise InputError("fidelity needs parallel sentences with a concept, a language and sentence group '1' or '2' "
                         "(the built-in set: ConceptDataset.builtin(['concepts']))")
    concepts = np.array([e.concept for e in dataset])
    langs = np.array([e.language for e in dataset])
    sentence = np.array([e.group for e in dataset])
    english_pool = np.flatnonzero((langs == "en") & (sentence == "2"))
    cosine = (emb * clean).sum(1)
    out = {}
    for lang in np.unique(langs):
        queries = np.flatnonzero((langs == lang) & (sentence == "1"))
        out[str(lang)] = {"cosine": cosine[langs == lang],
                          "retrieval": _hits(emb, concepts, queries, np.flatnonzero((langs == lang) & (sentence == "2")))}
        if lang != "en":
            out[str(lang)]["crosslingual"] = _hits(emb, concepts, queries, english_pool)
    return out


def scores(emb: np.ndarray, clean: np.ndarray, dataset) -> dict[str, float]:
    """Cosine to clean (over all sentences), monolingual and cross-lingual top-1 retrieval accuracy (means over
    languages; see the module docstring)."""
    return _summary(items(emb, clean, dataset))


def _summary(per: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
    cross = [v["crosslingual"].mean() for v in per.values() if "crosslingual" in v]
    return {"cosine": float(np.concatenate([v["cosine"] for v in per.values()]).mean()),
            "retrieval": float(np.mean([v["retrieval"].mean() for v in per.values()])),
            "crosslingual": float(np.mean(cross)) if cross else float("nan")}


def spliced_embeddings(encoder, site: str, replacement, inputs: Sequence, batch_size: int = 64) -> np.ndarray:
    """Unit-norm embeddings of ``inputs`` (texts or images, the site's modality) by the model with ``site``
    replaced at content positions (``steering.splice``: an SAE, 'zero' or a mean vector)."""
    from mmfeatures.analysis.steering import embed_with

    return embed_with(encoder, site, lambda positions: splice(encoder, site, replacement, positions), inputs,
                      batch_size=batch_size)


def _conditions(sae, mean) -> dict[str, object]:
    conditions: dict[str, object] = {"sae": sae, "zero": "zero"}
    if mean is not None:
        conditions["mean"] = torch.as_tensor(mean, dtype=torch.float32)
    return conditions


def recovered_fractions(result: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """(score_SAE - score_ablated) / (score_clean - score_ablated) per baseline and metric; NaN where the
    ablation costs nothing."""
    recovered = {}
    for baseline in (b for b in ("zero", "mean") if b in result):
        recovered[baseline] = {}
        for metric in result["clean"]:
            gap = result["clean"][metric] - result[baseline][metric]
            recovered[baseline][metric] = float((result["sae"][metric] - result[baseline][metric]) / gap) \
                if abs(gap) > 1e-9 else float("nan")
    return recovered


def fidelity(encoder, site: str, sae, dataset, *, mean: torch.Tensor | None = None,
             batch_size: int = 64, seed: int = 0) -> Fidelity:
    """Splice ``sae`` in at the text site ``site`` and score the model against clean, zero- and mean-ablated runs,
    overall and per language (with bootstrap intervals, ``seed``).

    ``mean``: the site's mean activation (e.g. ``store.stats().mean_d``); without it the
    mean-ablation baseline is left out."""
    if encoder.check_site(site).modality.value != "text":
        raise InputError(f"fidelity scores sentences, so {site!r} must be a text site; for an image site of a "
                         "two-tower model use crossmodal_fidelity")
    texts = [e.content for e in dataset]
    clean = embed_normalized(encoder, texts, batch_size)
    rng = np.random.default_rng(seed)
    embeddings = {"clean": clean, **{name: spliced_embeddings(encoder, site, replacement, texts, batch_size)
                                     for name, replacement in _conditions(sae, mean).items()}}
    per_item = {name: items(emb, clean, dataset) for name, emb in embeddings.items()}
    result = {name: _summary(per) for name, per in per_item.items()}
    by_language = {name: {lang: {metric: interval(values, rng) for metric, values in metrics.items()}
                          for lang, metrics in per.items()}
                   for name, per in per_item.items()}
    return Fidelity(site, result, recovered_fractions(result), by_language)


def crossmodal_fidelity(encoder, site: str, sae, images: Sequence, captions: Sequence[str], *,
                        mean: torch.Tensor | None = None, batch_size: int = 64,
                        seed: int = 0) -> dict[str, dict[str, Interval]]:
    """For a two-tower model: splice ``sae`` into ``site`` (in either tower) and score image -> caption top-1
    retrieval (image i must find caption i among all captions; a caption equal to the right one counts) and the
    spliced tower's cosine to its clean embeddings, against clean, zero- and mean-ablated runs.
    Returns condition -> metric -> (mean, low, high)."""
    if len(images) != len(captions) or not images:
        raise InputError(f"{len(images)} images and {len(captions)} captions; give one caption per image")
    spliced_side = encoder.check_site(site).modality.value
    if set(encoder.modalities) != {Modality.TEXT, Modality.IMAGE}:
        raise InputError(f"{encoder.name} is not a two-tower model; image -> caption retrieval needs text and "
                         "image towers")
    rng = np.random.default_rng(seed)
    image = encoder.embed_image(list(images), batch_size=batch_size).float()
    clean = {"image": (image / image.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy(),
             "text": embed_normalized(encoder, captions, batch_size)}
    captions = np.asarray(captions, dtype=object)
    out = {}
    for name, replacement in {"clean": None, **_conditions(sae, mean)}.items():
        side = clean[spliced_side] if name == "clean" else spliced_embeddings(
            encoder, site, replacement, images if spliced_side == "image" else list(captions), batch_size)
        image, text = (side, clean["text"]) if spliced_side == "image" else (clean["image"], side)
        hits = (captions[(image @ text.T).argmax(1)] == captions).astype(np.float64)
        out[name] = {"image_to_caption": interval(hits, rng),
                     f"{spliced_side}_cosine": interval((side * clean[spliced_side]).sum(1), rng)}
    return out


def fidelity_sweep(encoder, site: str, saes: Mapping[str, object], dataset, *, mean: torch.Tensor | None = None,
                   batch_size: int = 64):
    """One ``fidelity`` row per SAE (e.g. over widths and k), as a DataFrame."""
    import pandas as pd

    return pd.DataFrame([{"sae": name, **fidelity(encoder, site, sae, dataset, mean=mean,
                                                  batch_size=batch_size).row()} for name, sae in saes.items()])
