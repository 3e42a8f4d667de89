"""Stores with an effect planted by construction (``analysis.synthetic.planted`` through ``write_store``), and SAEs
for them: the positive controls, falsifications and baseline-wins controls of the verdicts (tests/test_controls*.py).

Every scored store has a training twin with the same directions and fresh noise (more sentences), so an SAE is
never scored on the rows it was trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmfeatures.activations import write_store
from mmfeatures.analysis.synthetic import planted

D = 48
SIZES = dict(n_concepts=24, n_languages=6, d=D, concept_scale=3.0, language_scale=2.0, modality_scale=2.0,
             noise=0.5, sentence_scale=2.0)


LOW = dict(d=8, n_concepts=8, sentence_scale=0.0, language_scale=0.5, noise=0.3)
"""Eight concepts in eight dimensions: so few directions that random ones pick out concepts as well as an SAE."""


def draw(*, signal: bool = True, train: bool = False, n_images: int = 0, image_concepts=None, shared: bool = True,
         seed: int = 0, **sizes):
    """The scored rows (two sentences per concept in every language), or their training twin (``train``: eight
    sentences per concept, other noise). ``shared=False``: every language has its own concept directions;
    ``sizes`` override ``SIZES`` (e.g. ``LOW``)."""
    return planted(**(SIZES | sizes), n_groups=8 if train else 2, n_images=n_images * (3 if train else 1),
                   signal=signal, seed=seed, noise_seed=seed + (101 if train else 7), image_concepts=image_concepts,
                   shared_concepts=shared)


def write(p, store_dir: Path, name: str) -> dict[str, str]:
    """One pooled store per modality in ``p``: {site: store folder}."""
    stores = {}
    for modality in ("text", "image"):
        rows = np.flatnonzero(p.labels.modality == modality)
        if not len(rows):
            continue
        examples = [{"id": str(p.labels.example_id[i]), "concept": str(p.labels.concept[i]), "modality": modality,
                     "language": str(p.labels.language[i]) or None, "group": str(p.labels.group[i]) or None,
                     "content": str(p.labels.example_id[i])} for i in rows]
        site = f"{modality}.embed"
        store = write_store(p.x[rows], examples, model=f"planted:{name}", site=site, source=f"planted {name}",
                            store_dir=store_dir)
        stores[site] = str(store.path)
    return stores


def train_saes(store: str, seeds=(0, 1, 2), width: int = 96, k: int = 6) -> list[str]:
    """TopK SAEs on ``store`` (one per seed), through the train step."""
    from mmfeatures.pipeline import TrainStep, run

    return [run(TrainStep(store=store, width=width, k=k, epochs=40, batch_size=256, seed=s, device="cpu",
                          progress=False)).artifact("sae").path for s in seeds]


def random_direction_sae(store: str, folder: Path, width: int = 96, k: int = 6, seed: int = 5) -> str:
    """An SAE whose encoder is random unit directions through the store's mean, with top-k like the trained ones:
    nothing learnt, the same width and L0 (the baseline must win against it)."""
    import torch

    from mmfeatures.activations import ActivationStore
    from mmfeatures.sae import SAE, TopK, save_sae

    data = ActivationStore(store)
    sae = SAE(data.d, width, TopK(k=k), seed=seed)
    with torch.no_grad():
        sae.b_dec.copy_(data.stats().mean_d)
    save_sae(sae, folder, model_name=data.config.model, hook_name=data.config.site,
             metadata={"store": str(store)}, key=f"random-directions-{seed}")
    return str(folder)
