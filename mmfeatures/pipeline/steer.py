"""``mmfeatures steer``: clamp a concept's SAE feature and measure how far it drags retrieval toward the
concept, against other concepts' features clamped just as hard, and beside a mean-difference vector of the same
norm (a Golden-Gate analog for encoders)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from mmfeatures.analysis.stats import check_n_perm, p_text
from mmfeatures.pipeline.record import Record, beats_null, fmt, opt, over_seeds, run_step, save_figure, table
from mmfeatures.pipeline.train import open_store, units_of

QUERY_CONCEPTS = ("bread", "chair", "river", "school", "red", "five", "freedom", "run", "happiness", "village")


CONTROLS = ("none", "random-direction")


@dataclass(frozen=True)
class SteerStep:
    """Clamp the SAE feature most selective for ``concept`` while embedding sentences about other concepts, and
    rank held-out sentences by cosine: where does the concept land? The feature is picked on each concept's first
    sentence (every language); queries and the ranked pool are the second sentences. Null: the most selective
    features of other concepts, clamped to the same multiple of their own largest activation. Baseline: the
    concept's mean-difference vector, added at the norm the clamp writes."""

    sae: str | None = opt(None, "SAE folder (with a decoder) trained on a layer site", required=True, artifact=True)
    store: str | None = opt(None, "labelled store of the built-in concept sentences, to pick the feature from "
                                  "(default: the SAE's training store)", artifact=True)
    seeds: tuple[str, ...] = opt((), "more SAEs that differ from sae only in seed, comma-separated: each picks its "
                                     "own feature and is clamped against the same other concepts; the rank gained "
                                     "beyond them (and beyond the mean-difference vector) is reported with a 95% "
                                     "interval over the seeds, and the verdict then also needs the first above 0",
                                 artifact=True)
    concept: str = opt("dog", "the built-in concept to steer toward")
    strengths: tuple[float, ...] = opt((0.0, 0.25, 0.5, 1.0), "clamp values, as multiples of the feature's largest "
                                                               "activation on the store (<= 1 stays in its range)")
    queries: tuple[str, ...] = opt(QUERY_CONCEPTS, "concepts whose sentences are embedded while steering")
    language: str = opt("en", "language of the queries and of the ranked pool")
    n_perm: int = opt(19, "features of other concepts clamped just as hard (the null; the smallest p is "
                          "1/(n_perm+1))")
    control: str = opt("none", "none, or random-direction: a random direction of the clamp's norm replaces the "
                               "feature, where the verdict must come out 'not supported' (a falsification check)")
    seed: int = opt(0, "seed of the null's concepts and of the random direction")
    out: str | None = opt("runs/steer", "folder for result.json and the figure (none: nothing written)",
                          volatile=True)

    def __post_init__(self):
        from mmfeatures.errors import InputError

        if not self.strengths or min(self.strengths) < 0:
            raise InputError(f"strengths {self.strengths!r}; give non-negative multiples, e.g. 0,0.5,1")
        if self.control not in CONTROLS:
            raise InputError(f"control {self.control!r}; use one of {', '.join(CONTROLS)}")
        check_n_perm(self.n_perm)


def run_steer(step: SteerStep) -> Record:
    return run_step("steer", step, lambda out: _steer(step, out))


PICK, EVAL = "1", "2"
"""Sentence groups of the built-in concepts: the feature is picked on the first, steering is scored on the second."""


def _selective(z: np.ndarray, labels, concepts_wanted):
    """({concept: the unit with the highest AUROC for it on the picking sentences}, units x concepts AUROC,
    concept names)."""
    from mmfeatures.analysis.stats import auroc_by_class, ranks

    rows = np.flatnonzero(labels.group == PICK)
    onehot, concepts = labels.take(rows).onehot("concept")
    auc = auroc_by_class(ranks(z[rows]), onehot)
    return {c: int(np.nanargmax(auc[:, concepts.index(c)])) for c in concepts_wanted}, auc, concepts


def _largest(z: np.ndarray, feature: int) -> float:
    """A feature's largest activation over the store's rows: the max of its per-example maxima (``units_of``)."""
    return max(0.0, float(z[:, feature].max()))


def _token_stats(store, concept: str):
    """(median row norm, mean of the concept's picking rows minus the mean of all picking rows), streamed shard
    by shard: memory holds one shard and a norm per row."""
    import torch

    from mmfeatures.analysis import Labels

    examples = Labels.from_records(store.examples)
    first, mine = examples.group == PICK, (examples.group == PICK) & (examples.concept == concept)
    norms, sums, counts = [], torch.zeros(2, store.d, dtype=torch.float64), np.zeros(2)
    for _, shard in store.iter_shards():
        x, example = shard["acts"].float(), shard["example"].numpy()
        norms.append(x.norm(dim=1))
        for i, keep in enumerate((first[example], mine[example])):
            sums[i] += x[torch.from_numpy(keep)].sum(0, dtype=torch.float64)
            counts[i] += keep.sum()
    mean_diff = (sums[1] / counts[1] - sums[0] / counts[0]).float()
    return float(torch.cat(norms).median()), mean_diff


def _steer(job: SteerStep, out) -> Record:
    import torch

    from mmfeatures import plotting
    from mmfeatures.analysis import Score
    from mmfeatures.analysis.steering import best_target_rank, embed_normalized, shift, steer
    from mmfeatures.datasets import ConceptDataset
    from mmfeatures.encoders import load_encoder
    from mmfeatures.errors import InputError
    from mmfeatures.sae import check_compatible, load_sae

    sae = load_sae(job.sae)
    store = open_store(job.store or getattr(sae, "metadata", {}).get("store"), "store (the SAE records none)")
    check_compatible(sae, store)
    model, site = store.config.model, store.config.site
    z, labels = units_of(store, sae)
    if job.concept not in set(labels.concept):
        raise InputError(f"concept {job.concept!r} is not in {store.path}; e.g. {sorted(set(labels.concept))[:8]}")
    if not (labels.group == PICK).any() or not (labels.group == EVAL).any():
        raise InputError(f"{store.path} lacks the built-in concept sentences' two groups; extract --data concepts")
    rng = np.random.default_rng(job.seed)
    others = sorted(set(labels.concept) - {job.concept} - set(job.queries))
    drawn = list(rng.choice(others, min(job.n_perm, len(others)), replace=False))
    sentences = [e for e in ConceptDataset.builtin(["concepts"], languages=[job.language]) if e.id.endswith("/" + EVAL)]
    pool, target = [e.content for e in sentences], [e.concept == job.concept for e in sentences]
    queries = [e.content for e in sentences if e.concept in job.queries]
    if not queries or not any(target):
        raise InputError(f"no {job.language!r} sentences for the queries or for {job.concept!r}")
    encoder = load_encoder(model)
    pool_emb = embed_normalized(encoder, pool)
    token_norm, mean_diff = _token_stats(store, job.concept)

    def rank_with(context) -> float:
        with context:
            q = embed_normalized(encoder, queries)
        return float(np.median(best_target_rank(q, pool_emb, target)) + 1)          # 1 = top

    def clamped(sae, z, f: int, multiple: float) -> float:
        return rank_with(steer(encoder, site, sae, f, value=multiple * _largest(z, f)))

    strongest = max(job.strengths)

    def against(sae, z):
        """(feature, its AUROC table, largest activation, norm the clamp writes, other concepts' ranks, baseline
        rank) for one SAE: its own most selective features, clamped at the strongest value."""
        picked, auc, concepts = _selective(z, labels, [job.concept, *drawn])
        feature = picked.pop(job.concept)
        top = _largest(z, feature)
        norm = strongest * top * float(sae.W_dec[feature].norm())                  # what the clamp writes, at most
        null = np.array([clamped(sae, z, f, strongest) for f in picked.values()])
        baseline = rank_with(shift(encoder, site, mean_diff / mean_diff.norm() * norm))
        return feature, (auc, concepts), top, norm, null, baseline

    feature, (auc, concepts), top, norm, null, baseline = against(sae, z)
    unsteered = rank_with(contextlib.nullcontext())
    direction = torch.randn(sae.d_in, generator=torch.Generator().manual_seed(job.seed))   # the control's
    if job.control == "random-direction":
        curve = [rank_with(shift(encoder, site, direction / direction.norm() * c * top * float(
            sae.W_dec[feature].norm()))) for c in job.strengths]
    else:
        curve = [clamped(sae, z, feature, c) for c in job.strengths]
    score = Score(f"median rank of the best '{job.concept}' sentence at {fmt(strongest)}x", curve[int(np.argmax(job.strengths))], null, "less")
    fig = plotting.curves({f"'{job.concept}' feature f{feature}": dict(zip(job.strengths, curve, strict=True)),
                           f"{len(null)} other concepts' features (median)": {strongest: float(np.median(null))},
                           "mean-difference vector, equal norm": {strongest: baseline}},
                          xlabel="clamp value (x the feature's largest activation)",
                          ylabel=f"median rank of the best '{job.concept}' sentence", title=f"Steering {model} at {site}")
    fig.axes[0].axhline(unsteered, color="grey", ls=":", lw=1)
    fig.axes[0].set_yscale("log")
    saved = save_figure(fig, out, "steering.png")
    ok = beats_null(score.row(), "less")
    what = ("A random direction written at the clamp's norm (control: must not be supported)"
            if job.control != "none" else f"Feature f{feature}, the most '{job.concept}'-selective on the first "
                                          f"sentences (AUROC {fmt(float(auc[feature, concepts.index(job.concept)]))}),")
    verdict = (f"{'Supported' if ok else 'Not supported'}. {what} clamped at {fmt(strongest)}x the feature's largest "
               f"activation ({fmt(top)}; it writes a vector of norm up to {fmt(norm)}, {fmt(norm / token_norm)}x the "
               f"median token norm) while embedding {len(queries)} held-out sentences about other concepts, moves the "
               f"best '{job.concept}' sentence from median rank {fmt(unsteered)} to {fmt(score.value)} among "
               f"{len(pool)} {job.language!r} sentences (the second sentence of each concept). The most selective "
               f"features of {len(null)} other concepts, clamped to the same multiple of their own largest "
               f"activation, leave it at median rank {fmt(float(np.median(null)))} "
               f"({p_text(score.p_value, len(null))}). Baseline: the '{job.concept}' mean-difference vector added at "
               f"the same norm reaches rank {fmt(baseline)}, so the SAE feature "
               f"{'beats' if score.value < baseline else 'does not beat'} it.")
    rows = [[fmt(c), fmt(c * top * float(sae.W_dec[feature].norm()) / token_norm), fmt(r)]
            for c, r in zip(job.strengths, curve, strict=True)]
    tables = [table(f"Median rank (1 = top) of the best '{job.concept}' sentence; unsteered {fmt(unsteered)}; "
                    f"baseline {fmt(baseline)}", ["clamp (x max)", "written norm (x median token)", "median rank"], rows)]
    if job.seeds:
        per_seed = [[score.null_mean - score.value, baseline - score.value]]
        for path in job.seeds:
            other = load_sae(path)
            check_compatible(other, store)
            z_other = units_of(store, other)[0]
            f, _, _, norm_s, n_s, b_s = against(other, z_other)
            rank = (clamped(other, z_other, f, strongest) if job.control == "none" else
                    rank_with(shift(encoder, site, direction / direction.norm() * norm_s)))
            per_seed.append([float(np.mean(n_s)) - rank, b_s - rank])
        seeds, sentence, held = over_seeds([job.sae, *job.seeds], ["rank gained beyond other concepts' features",
                                                                   "rank gained beyond the mean-difference vector"],
                                           per_seed, needed=1)
        tables.append(seeds)
        verdict += " " + sentence
        if ok and not held:
            ok, verdict = False, "Not supported" + verdict[len("Supported"):]
    return Record(
        "steer", f"Steering: clamping the '{job.concept}' feature of {model}" + (
            f", control: {job.control}" if job.control != "none" else ""), {},
        claim=f"Clamping one feature steers the model toward '{job.concept}'" + (
            f" (control: {job.control}; must not be supported)" if job.control != "none" else ""),
        verdict=verdict, supported=ok,
        scores=(score.row(),), features=(int(feature),) if job.control == "none" else (),
        tables=tuple(tables),
        figures=({"file": "steering.png", "caption": "The feature's curve, other concepts' features clamped at the "
                                                     "strongest value (the null), the mean-difference baseline and "
                                                     "the unsteered rank (dotted)."},) if saved else (),
    )
