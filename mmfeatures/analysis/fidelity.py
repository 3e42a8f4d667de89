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

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from mmfeatures.analysis.steering import embed_normalized, splice
from mmfeatures.errors import InputError


@dataclass(frozen=True)
class Fidelity:
    """Scores of the clean, SAE-spliced, zero-ablated and mean-ablated model, and fractions recovered."""

    site: str
    scores: dict[str, dict[str, float]]
    """condition ('clean', 'sae', 'zero', 'mean') -> metric ('cosine', 'retrieval', 'crosslingual') -> value."""
    recovered: dict[str, dict[str, float]]
    """baseline ('zero', 'mean') -> metric -> fraction recovered by the SAE."""

    def row(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {"site": self.site}
        for metric, value in self.scores["sae"].items():
            out[metric] = value
        for baseline, fractions in self.recovered.items():
            for metric, value in fractions.items():
                out[f"recovered_{metric}_vs_{baseline}"] = value
        return out


def _retrieval(emb: np.ndarray, concepts: np.ndarray, queries: np.ndarray, pool: np.ndarray) -> float:
    best = (emb[queries] @ emb[pool].T).argmax(1)
    return float((concepts[pool][best] == concepts[queries]).mean())


def scores(emb: np.ndarray, clean: np.ndarray, dataset) -> dict[str, float]:
    """Cosine to clean, monolingual and cross-lingual top-1 retrieval accuracy (see the module docstring)."""
    ids = [e.id.split("/") for e in dataset]
    if not all(len(i) == 4 and i[0] == "concepts" for i in ids):
        raise InputError("fidelity needs the built-in parallel sentences (ids 'concepts/<c>/<lang>/<n>'); use "
                         "ConceptDataset.builtin(['concepts'])")
    concepts = np.array([i[1] for i in ids])
    langs = np.array([i[2] for i in ids])
    sentence = np.array([i[3] for i in ids])
    mono = [_retrieval(emb, concepts, np.flatnonzero((langs == lang) & (sentence == "1")),
                       np.flatnonzero((langs == lang) & (sentence == "2"))) for lang in np.unique(langs)]
    english_pool = np.flatnonzero((langs == "en") & (sentence == "2"))
    cross = [_retrieval(emb, concepts, np.flatnonzero((langs == lang) & (sentence == "1")), english_pool)
             for lang in np.unique(langs) if lang != "en"]
    return {"cosine": float((emb * clean).sum(1).mean()), "retrieval": float(np.mean(mono)),
            "crosslingual": float(np.mean(cross)) if cross else float("nan")}


def fidelity(encoder, site: str, sae, dataset, *, mean: torch.Tensor | None = None,
             batch_size: int = 64) -> Fidelity:
    """Splice ``sae`` in at ``site`` and score the model against clean, zero- and mean-ablated runs.

    ``mean``: the site's mean activation (e.g. ``store.stats().mean_d``); without it the
    mean-ablation baseline is left out."""
    texts = [e.content for e in dataset]
    clean = embed_normalized(encoder, texts, batch_size)
    tower = encoder.tower("text")

    def spliced(replacement) -> np.ndarray:
        """Unit-norm embeddings with ``replacement`` at the content tokens of every batch."""
        outs = []
        for start in range(0, len(texts), batch_size):
            batch = tower.prepare(texts[start:start + batch_size]).to(encoder.device)
            with splice(encoder, site, replacement, batch.mask_bt & ~batch.special_bt), encoder.autocast(), \
                    torch.no_grad():
                outs.append(tower.embed(batch).float().cpu())
        emb = torch.cat(outs)
        return (emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()

    conditions: dict[str, object] = {"sae": sae, "zero": "zero"}
    if mean is not None:
        conditions["mean"] = torch.as_tensor(mean, dtype=torch.float32)
    result = {"clean": scores(clean, clean, dataset)}
    for name, replacement in conditions.items():
        result[name] = scores(spliced(replacement), clean, dataset)
    recovered = {}
    for baseline in (b for b in ("zero", "mean") if b in result):
        recovered[baseline] = {}
        for metric in result["clean"]:
            gap = result["clean"][metric] - result[baseline][metric]
            recovered[baseline][metric] = float((result["sae"][metric] - result[baseline][metric]) / gap) \
                if abs(gap) > 1e-9 else float("nan")
    return Fidelity(site, result, recovered)


def fidelity_sweep(encoder, site: str, saes: Mapping[str, object], dataset, *, mean: torch.Tensor | None = None,
                   batch_size: int = 64):
    """One ``fidelity`` row per SAE (e.g. over widths and k), as a DataFrame."""
    import pandas as pd

    return pd.DataFrame([{"sae": name, **fidelity(encoder, site, sae, dataset, mean=mean,
                                                  batch_size=batch_size).row()} for name, sae in saes.items()])
