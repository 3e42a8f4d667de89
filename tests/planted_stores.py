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


def supported(record) -> None:
    """The verdict says 'supported', every test passes, and each detects (with 80% power) an effect its interval
    reaches."""
    assert record.status == "supported" and record.supported is True, record.verdict
    for t in record.tests:
        assert t["passes"] and t["low"] > 0 and t["power"]["mde"] <= t["high"], t


def not_supported(record) -> None:
    """The verdict says 'not supported', and no test passes on its own."""
    assert record.status == "not supported" and record.supported is False, record.verdict
    assert not any(t["passes"] for t in record.tests), "a test passes on its own: " + record.verdict


def draw(*, signal: bool = True, train: bool = False, n_images: int = 0, image_concepts=None, shared: bool = True,
         axis: bool = False, seed: int = 0, **sizes):
    """The scored rows (two sentences per concept in every language), or their training twin (``train``: eight
    sentences per concept, other noise). ``shared=False``: every language has its own concept directions;
    ``axis``: each concept is a coordinate (a neuron); ``sizes`` override ``SIZES`` (e.g. ``LOW``)."""
    return planted(**(SIZES | sizes), n_groups=8 if train else 2, n_images=n_images * (3 if train else 1),
                   signal=signal, seed=seed, noise_seed=seed + (101 if train else 7), image_concepts=image_concepts,
                   shared_concepts=shared, axis_concepts=axis)


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


def train_saes(store: str, seeds=(0, 1, 2), width: int = 96, k: int = 6, epochs: int = 40) -> list[str]:
    """TopK SAEs on ``store`` (one per seed), through the train step."""
    from mmfeatures.pipeline import TrainStep, run

    return [run(TrainStep(store=store, width=width, k=k, epochs=epochs, batch_size=256, seed=s, device="cpu",
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


def planted_feature_sae(base: str, store, concept: str, folder: Path, *, decoder: str = "concept",
                        feature: int = 0, seed: int = 0) -> tuple[str, int]:
    """``base`` (an SAE of the store's model and site) with latent ``feature`` replaced by a planted one. Its encoder
    reads the concept's linear discriminant on the first sentences' tokens (the covariance-whitened mean of the
    concept's tokens minus the mean of all, unit norm) and fires above the largest value any other concept's first
    sentence reaches, strongly enough to make the top k. Its decoder writes the concept's mean-difference direction
    (``decoder='concept'``) or a random one ('random'). Returns (the folder, the feature)."""
    import torch

    from mmfeatures.analysis import Labels
    from mmfeatures.sae import load_sae, save_sae

    sae = load_sae(base)
    labels = Labels.from_records(store.examples)
    rows, owners = [], []
    for _, shard in store.iter_shards():
        rows.append(shard["acts"].float())
        owners.append(shard["example"].numpy())
    x, owner = torch.cat(rows), np.concatenate(owners)
    first = torch.from_numpy(labels.group[owner] == "1")
    theirs = torch.from_numpy(labels.concept[owner] == concept)
    diff = x[first & theirs].mean(0) - x[first].mean(0)
    centred = x[first] - x[first].mean(0)
    cov = centred.T @ centred / len(centred) + 1e-2 * torch.eye(x.shape[1])
    w = torch.linalg.solve(cov, diff)
    w = w / w.norm()
    with torch.no_grad():
        proj = (x - sae.b_dec) @ w
        others = first & ~theirs
        threshold = float(proj[others].max())
        top = float(sae.pre_acts(x[:2048]).max())
        gain = 4 * top / max(float(proj.max()) - threshold, 1e-6)
        sae.W_enc[:, feature] = gain * w
        sae.b_enc[feature] = -gain * threshold
        if decoder == "concept":
            sae.W_dec[feature] = diff / diff.norm()
        else:
            r = torch.randn(len(w), generator=torch.Generator().manual_seed(seed))
            sae.W_dec[feature] = r / r.norm()
    meta = getattr(sae, "metadata", {}) or {}
    save_sae(sae, folder, model_name=meta.get("model_name", store.config.model),
             hook_name=meta.get("hook_name", store.config.site), metadata={"store": str(store.path)},
             key=f"planted-{concept}-{decoder}-{feature}-{seed}-{base}")
    return str(folder), feature


def splice_saes(store, folder: Path) -> dict[str, str]:
    """SAEs of the store's model and site built by hand: 'identity' (the signed basis, top d of 2 d: it rebuilds every
    input exactly), 'untrained' (random directions through the mean) and 'mean' (writes the mean whatever it reads:
    mean-ablation in an SAE's clothes). Returns {name: folder}."""
    import torch

    from mmfeatures.sae import SAE, TopK, save_sae

    d, mean = store.d, store.stats().mean_d
    identity = SAE(d, 2 * d, TopK(k=d))
    untrained = SAE(d, 2 * d, TopK(k=16), seed=4)
    blank = SAE(d, 2 * d, TopK(k=16), seed=5)
    with torch.no_grad():
        eye = torch.eye(d)
        identity.W_enc.copy_(torch.cat([eye, -eye], 1))
        identity.W_dec.copy_(torch.cat([eye, -eye], 0))
        identity.b_enc.zero_()
        for sae in (identity, untrained, blank):
            sae.b_dec.copy_(mean)
        blank.W_dec.zero_()
    out = {}
    for name, sae in (("identity", identity), ("untrained", untrained), ("mean", blank)):
        out[name] = str(save_sae(sae, folder / name, model_name=store.config.model, hook_name=store.config.site,
                                 metadata={"store": str(store.path)}, key=f"splice-{name}-{store.key}"))
    return out
