"""``mmfeatures steer``: clamp a concept's SAE feature and measure how far it drags retrieval toward the
concept, against clamping random features just as hard (a Golden-Gate analog for encoders)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmfeatures.analysis.stats import check_n_perm, p_text
from mmfeatures.pipeline.record import Record, beats_null, fmt, opt, run_step, save_figure, table
from mmfeatures.pipeline.train import open_store

QUERY_CONCEPTS = ("bread", "chair", "river", "school", "red", "five", "freedom", "run", "happiness", "village")


@dataclass(frozen=True)
class SteerStep:
    """Clamp the SAE feature most selective for ``concept`` while embedding sentences about other concepts,
    and rank the built-in sentences of one language by cosine: where does the concept land?"""

    sae: str | None = opt(None, "SAE folder (with a decoder) trained on a layer site", required=True, artifact=True)
    store: str | None = opt(None, "labelled store to pick the feature from (default: the SAE's training store)",
                            artifact=True)
    concept: str = opt("dog", "the built-in concept to steer toward")
    strengths: tuple[float, ...] = opt((0.0, 1.0, 2.0, 3.0, 5.0), "clamp values, as multiples of the "
                                                                    "feature's largest activation")
    queries: tuple[str, ...] = opt(QUERY_CONCEPTS, "concepts whose sentences are embedded while steering")
    language: str = opt("en", "language of the queries and of the ranked pool")
    n_perm: int = opt(19, "random live features clamped just as hard (the null; the smallest p is 1/(n_perm+1))")
    seed: int = opt(0, "seed of the control features")
    out: str | None = opt("runs/steer", "folder for result.json and the figure (none: nothing written)",
                          volatile=True)

    def __post_init__(self):
        from mmfeatures.errors import InputError

        if not self.strengths or min(self.strengths) < 0:
            raise InputError(f"strengths {self.strengths!r}; give non-negative multiples, e.g. 0,1,3,5")
        check_n_perm(self.n_perm)


def run_steer(step: SteerStep) -> Record:
    return run_step("steer", step, lambda out: _steer(step, out))


def _steer(job: SteerStep, out) -> Record:
    from mmfeatures import plotting
    from mmfeatures.analysis import Score, unit_activations
    from mmfeatures.analysis.stats import auroc_by_class, ranks
    from mmfeatures.analysis.steering import (
        best_target_rank,
        embed_normalized,
        max_activation,
        retrieval_curve,
    )
    from mmfeatures.datasets import ConceptDataset
    from mmfeatures.encoders import load_encoder
    from mmfeatures.errors import InputError
    from mmfeatures.sae import check_compatible, load_sae

    sae = load_sae(job.sae)
    meta = getattr(sae, "metadata", {})
    store = open_store(job.store or meta.get("store"), "store (the SAE records none)")
    check_compatible(sae, store)
    model, site = store.config.model, store.config.site
    z, labels = unit_activations(store, sae)
    onehot, concepts = labels.onehot("concept")
    if job.concept not in concepts:
        raise InputError(f"concept {job.concept!r} is not in {store.path}; e.g. {list(concepts[:8])}")
    auc = auroc_by_class(ranks(z), onehot)[:, concepts.index(job.concept)]
    feature = int(np.nanargmax(auc))
    alive = np.flatnonzero((z > 0).sum(0) >= 20)
    rng = np.random.default_rng(job.seed)
    controls = rng.choice(alive[alive != feature], min(job.n_perm, len(alive) - 1), replace=False)
    sentences = list(ConceptDataset.builtin(["concepts"], languages=[job.language]))
    pool, target = [e.content for e in sentences], [e.concept == job.concept for e in sentences]
    queries = [e.content for e in sentences if e.concept in job.queries]
    if not queries or not any(target):
        raise InputError(f"no {job.language!r} sentences for the queries or for {job.concept!r}")
    encoder = load_encoder(model)
    pool_emb = embed_normalized(encoder, pool)
    x = store.rows(np.arange(store.n_rows))

    def median_ranks(f: int, strengths) -> np.ndarray:
        scale = max_activation(sae, x, f)
        _, r = retrieval_curve(encoder, site, sae, f, queries, pool, target, [c * scale for c in strengths],
                               pool_embeddings=pool_emb)
        return np.median(r, axis=1) + 1                                      # 1 = top

    q = embed_normalized(encoder, queries)
    unsteered = float(np.median(best_target_rank(q, pool_emb, target)) + 1)
    curve = median_ranks(feature, job.strengths)
    strongest = max(job.strengths)
    null = np.array([median_ranks(int(c), [strongest])[0] for c in controls])
    score = Score(f"median rank of the best '{job.concept}' sentence at {fmt(strongest)}x",
                  float(curve[int(np.argmax(job.strengths))]), null, "less")
    fig = plotting.curves({f"'{job.concept}' feature f{feature}": dict(zip(job.strengths, curve, strict=True)),
                           f"{len(controls)} random features (median)": {strongest: float(np.median(null))}},
                          xlabel="clamp value (x the feature's largest activation)",
                          ylabel=f"median rank of the best '{job.concept}' sentence", title=f"Steering {model} at {site}")
    fig.axes[0].axhline(unsteered, color="grey", ls=":", lw=1)
    fig.axes[0].set_yscale("log")
    saved = save_figure(fig, out, "steering.png")
    ok = beats_null(score.row(), "less")
    verdict = (f"{'Supported' if ok else 'Not supported'}. Feature f{feature} is the most '{job.concept}'-selective "
               f"(AUROC {fmt(float(auc[feature]))}). Clamped at {fmt(strongest)}x its largest activation while "
               f"embedding {len(queries)} sentences about other concepts, it lifts the best '{job.concept}' sentence "
               f"from median rank {fmt(unsteered)} (no steering) to {fmt(score.value)} among {len(pool)} "
               f"{job.language!r} sentences. Clamping {len(null)} random live features just as hard leaves it at median "
               f"rank {fmt(float(np.median(null)))} ({p_text(score.p_value, len(null))}, the share of random features that do "
               f"as well).")
    rows = [[fmt(c), fmt(float(r))] for c, r in zip(job.strengths, curve, strict=True)]
    return Record(
        "steer", f"Steering: clamping the '{job.concept}' feature of {model}", {},
        claim=f"Clamping one feature steers the model toward '{job.concept}'", verdict=verdict, supported=ok,
        scores=(score.row(),),
        tables=(table(f"Median rank (1 = top) of the best '{job.concept}' sentence; unsteered {fmt(unsteered)}",
                      ["clamp (x max)", "median rank"], rows),),
        figures=({"file": "steering.png", "caption": "The target feature's curve, random features clamped at the "
                                                     "strongest value (the null) and the unsteered rank (dotted)."},)
        if saved else (),
    )
