"""The analyze step (``mmfeatures analyze``): cross-lingual or cross-modal consistency of SAE features (or
neurons), each against a null."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfeatures.analysis.anchors import anchor
from mmfeatures.analysis.stats import check_n_perm, p_text, permuted
from mmfeatures.pipeline.record import Record, beats_null, fmt, opt, over_seeds, run_step, save_figure, table
from mmfeatures.pipeline.train import open_store

KINDS = ("crosslingual", "crossmodal")
CONTROLS = ("none", "shuffled-concepts")
SUBSETS = ("all", "seen-emoji", "heldout-emoji")


@dataclass(frozen=True)
class AnalyzeStep:
    """Score how consistently units fire for a concept across languages or across modalities."""

    stores: tuple[str, ...] = opt((), "store folder(s), comma-separated; their rows are analysed together "
                                      "(crossmodal: an image store and a text store)", required=True, artifact=True)
    sae: str | None = opt(None, "SAE folder or name (default: the stores' own dimensions, as signed neurons)",
                          artifact=True)
    seeds: tuple[str, ...] = opt((), "more SAEs that differ from sae only in seed, comma-separated (e.g. "
                                     "data:e5-small-layer8-seed1): the headline effects are recomputed with each and "
                                     "reported as a mean with a 95% interval over all the seeds; the verdict then "
                                     "also needs the interval above 0", artifact=True)
    kind: str = opt("crosslingual", f"which analysis: {', '.join(KINDS)}")
    n_perm: int = opt(19, "permutations per null (the smallest p-value is 1/(n_perm+1))")
    subset: str = opt("all", f"which examples: {', '.join(SUBSETS)} (the emoji the image tower of "
                             "offline:e5-emoji-clip saw in training, or those it never saw)")
    ids: str | None = opt(None, "keep only the examples whose id matches this regular expression, e.g. "
                                "'^emoji/(3|17)/' (default: all)")
    label: str = opt("", "what these rows are, added to the report's title and claim (e.g. 'held-out emoji')")
    concept: str = opt("dog", "the concept the figures single out")
    seed: int = opt(0, "seed of the permutations")
    control: str = opt("none", "none, or shuffled-concepts: the same analysis with every concept label shuffled "
                               "within its language and modality, where the verdict must come out 'not supported' "
                               "(a falsification check)")
    n_baseline: int = opt(19, "crosslingual: random-direction dictionaries (same width and sparsity as the units) "
                              "whose multilingual fraction the units must beat; the smallest p is 1/(n_baseline+1)")
    out: str | None = opt("runs/analyze", "folder for result.json and the figures (none: nothing written)",
                          volatile=True)

    def __post_init__(self):
        from mmfeatures.errors import InputError

        if self.kind not in KINDS:
            raise InputError(f"kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.control not in CONTROLS:
            raise InputError(f"control {self.control!r}; use one of {', '.join(CONTROLS)}")
        if self.subset not in SUBSETS:
            raise InputError(f"subset {self.subset!r}; use one of {', '.join(SUBSETS)}")
        check_n_perm(self.n_perm)
        if self.seeds and not self.sae:
            raise InputError("seeds are further SAEs beside sae; give sae too (neurons have no seeds)")
        if self.kind == "crosslingual":
            check_n_perm(self.n_baseline)
        if self.ids is not None:
            try:
                re.compile(self.ids)
            except re.error as e:
                raise InputError(f"ids {self.ids!r} is not a regular expression ({e}); e.g. '^emoji/(3|17)/', "
                                 "or escape special characters with a backslash") from None


def units(stores, sae) -> tuple[np.ndarray, object]:
    """One row per example over all stores: the SAE's latents (max over tokens) or the raw dimensions."""
    from mmfeatures.analysis import Labels
    from mmfeatures.pipeline.train import units_of

    zs, labels = [], []
    for store in stores:
        z, lab = units_of(store, sae)
        zs.append(z)
        labels.append(lab)
    return np.concatenate(zs), Labels.concat(*labels)


def heldout_emoji() -> frozenset[int]:
    """The emoji held out of offline:e5-emoji-clip's image-tower training (from its card)."""
    import json

    from mmfeatures.encoders.emojiclip import default_weights

    card = json.loads(default_weights().with_suffix(".json").read_text())
    return frozenset(int(i) for i in card["heldout_emoji"])


def subset_mask(ids: np.ndarray, subset: str) -> np.ndarray:
    """Rows to keep for a named subset; non-emoji rows are kept by 'seen-emoji' and 'heldout-emoji' too."""
    if subset == "all":
        return np.ones(len(ids), bool)
    held = heldout_emoji()
    parts = [str(i).split("/") for i in ids]
    emoji = np.array([p[0] == "emoji" for p in parts])
    number = np.array([int(p[1]) if p[0] == "emoji" and p[1].isdigit() else -1 for p in parts])
    inside = np.isin(number, list(held))
    return ~emoji | (inside if subset == "heldout-emoji" else ~inside)


def contents(ids) -> dict[str, object]:
    """Texts and images of built-in and Tux Paint examples by id (for figures and tables); other ids are left
    out."""
    from mmfeatures.datasets import ConceptDataset

    sources = {i.split("/")[0] for i in ids}
    wanted = sorted(sources & {"concepts", "emoji", "photos"})
    parts = [ConceptDataset.builtin(wanted, linked_only=False)] if wanted else []
    if "tuxpaint" in sources:
        import warnings

        from mmfeatures.datasets import tuxpaint_stamps

        with warnings.catch_warnings():                 # the SVG-only stamps were left out at extraction too
            warnings.simplefilter("ignore")
            parts.append(tuxpaint_stamps(fetch=False, progress=False))
    from mmfeatures.activations import load_image
    from mmfeatures.types import Modality

    keep = set(ids)
    return {e.id: load_image(e.content, f"example {e.id!r}") if e.modality == Modality.IMAGE and isinstance(e.content, (str, Path)) else e.content
            for part in parts for e in part if e.id in keep}


def run_analyze(step: AnalyzeStep) -> Record:
    def compute(out: Path) -> Record:
        from mmfeatures.errors import InputError
        from mmfeatures.sae import load_sae

        stores = [open_store(p) for p in step.stores]
        sae = load_sae(step.sae) if step.sae else None
        z, labels = units(stores, sae)
        keep = subset_mask(labels.example_id, step.subset)
        if step.ids:
            pattern = re.compile(step.ids)
            keep &= np.array([bool(pattern.search(i)) for i in labels.example_id])
        if not keep.any():
            raise InputError(f"subset {step.subset!r} with ids {step.ids!r} keeps none of the {len(labels)} "
                             f"examples (ids look like {labels.example_id[0]!r})")
        z, labels = z[keep], labels.take(np.flatnonzero(keep))
        if step.control == "shuffled-concepts":   # within language: texts per language, images (no language) apart
            labels = permuted(labels, "concept", np.random.default_rng(step.seed + 7919), within="language")
        neurons = sae is None
        if step.kind == "crossmodal" and neurons:
            z = np.concatenate([np.maximum(z, 0), np.maximum(-z, 0)], 1)   # signed neurons as two units each
        if step.kind == "crosslingual":
            rows, kept = np.flatnonzero(keep), labels

            def baseline() -> np.ndarray:
                return baseline_fractions(step, stores, rows, kept, sae)

            body = _crosslingual(step, z, labels, neurons, out, baseline)
        else:
            body = _crossmodal(step, z, labels, neurons, out)
        if step.seeds:
            _over_seeds(step, body, z, [units(stores, load_sae(p))[0][keep] for p in step.seeds], labels)
        what = f"{'neurons' if neurons else 'SAE features'} of {stores[0].config.model}"
        if step.control != "none":
            what += f", control: {step.control}"
            body["claim"] += f" (control: {step.control}; must not be supported)"
        if step.label:
            what += f", {step.label}"
            body["claim"] += f" ({step.label})"
        return Record("analyze", body.pop("title").format(what=what), {}, **body)

    return run_step("analyze", step, compute)


EFFECTS = {"crosslingual": (("multilingual fraction against random directions", "multilingual fraction beyond "
                                                                            "random directions"),
                            ("concept overlap across languages, other sentence (Jaccard)", "concept overlap beyond "
                                                                                           "other concepts")),
           "crossmodal": (("multimodal fraction", "multimodal fraction beyond shuffled pictures"),
                          ("bridge-feature fraction", "bridge fraction beyond shuffled pictures"))}
"""Per kind: (the score a verdict rests on, what its effect, value minus null mean, is called)."""


def effects(kind: str, z: np.ndarray, labels, baseline: dict[str, float], seed: int) -> list[float]:
    """The headline effects of one SAE's units: each score minus its null's mean. ``baseline`` holds null means
    that do not depend on the SAE's weights (the random-direction dictionaries); the others are redrawn."""
    from mmfeatures.analysis import crossmodal
    from mmfeatures.analysis.consistency import multilingual_fraction, overlap_controls

    if kind == "crosslingual":
        concept = overlap_controls(z, labels, n_perm=5, seed=seed)["concept_overlap"]
        multi = multilingual_fraction(z, labels) - baseline["multilingual fraction against random directions"]
        return [multi, concept.value - concept.null_mean]
    scores = crossmodal(z, labels, n_perm=5, seed=seed).scores
    return [scores[n].value - scores[n].null_mean for n in ("multimodal", "bridge")]


def _over_seeds(step: AnalyzeStep, body: dict, z: np.ndarray, others: list[np.ndarray], labels) -> None:
    """Add the effects of every seed (``z``: the main SAE's units, ``others``: the seeds') with a 95% t-interval
    to ``body``'s verdict and tables; the verdict needs every interval above 0."""
    rows = {r["metric"]: r for r in body["scores"]}
    baseline = {name: rows[name]["null_mean"] for name, _ in EFFECTS[step.kind] if name in rows}
    per_seed = [effects(step.kind, zs, labels, baseline, step.seed) for zs in (z, *others)]
    seeds, sentence, held = over_seeds([step.sae, *step.seeds], [label for _, label in EFFECTS[step.kind]], per_seed)
    body["tables"] = (*body["tables"], seeds)
    body["verdict"] += " " + sentence
    if body["supported"] and not held:
        body["supported"] = False
        body["verdict"] = "Not supported" + body["verdict"][len("Supported"):]


def baseline_fractions(job: AnalyzeStep, stores, rows: np.ndarray, labels, sae) -> np.ndarray:
    """The multilingual fraction of ``job.n_baseline`` random-direction dictionaries with the units' width and
    sparsity (signed and dense for neurons), on the analysed rows (``rows`` of ``units(stores, ...)``)."""
    from tqdm.auto import tqdm

    from mmfeatures.analysis.baselines import RandomDirections
    from mmfeatures.analysis.consistency import multilingual_fraction
    from mmfeatures.analysis.labels import encode_rows, pooled_units

    neurons = sae is None
    width = stores[0].d if neurons else sae.d_sae
    k = None if neurons else getattr(getattr(sae, "arch", None), "k", None)
    if not neurons and k is None:                  # ReLU, JumpReLU: the L0 the SAE has on these rows
        first = next(stores[0].iter_shards([0]))[1]["acts"][:4096]
        k = max(1, int(round(float((encode_rows(sae, first) != 0).sum(1).mean()))))
    mean = stores[0].stats().mean_d.numpy()
    fractions = []
    for seed in tqdm(range(job.n_baseline), desc="random-direction baseline", leave=False, disable=None):
        directions = RandomDirections(mean, width, k, seed=job.seed * 1000 + seed)
        parts = [pooled_units(store, directions)[0] for store in stores]      # streamed: one pass per dictionary
        fractions.append(multilingual_fraction(np.concatenate(parts)[rows], labels, signed=neurons))
    return np.array(fractions)


def _crosslingual(job: AnalyzeStep, z, labels, neurons: bool, out: Path, baseline) -> dict:
    from mmfeatures import plotting
    from mmfeatures.analysis import Score, concept_features, crosslingual, language_entropy

    cl = crosslingual(z, labels, signed=neurons, n_perm=job.n_perm, overlap_k=16 if neurons else None,
                      seed=job.seed)
    versus = Score("multilingual fraction against random directions", cl.scores["multilingual"].value, baseline())
    null_h = language_entropy(z, permuted(labels, "language", np.random.default_rng(job.seed)))
    figures = [
        (plotting.distributions({"units": cl.entropy[cl.alive], "languages shuffled (null)": null_h[cl.alive]},
                                xlabel="normalised language entropy (1 = even over all languages)", range_=(0, 1),
                                title="Language entropy against a language-blind null"),
         "entropy.png", "How evenly each live unit's activation spreads over languages, against the same "
                        "units with language labels shuffled."),
    ]
    if job.concept in set(labels.concept):
        features, matrix, langs = concept_features(z, labels, job.concept)
        figures.append((plotting.feature_heatmap(matrix, langs, [f"f{i}" for i in features],
                                                 title=f"Top units for '{job.concept}': mean activation by language"),
                        "concept_heatmap.png", f"The {len(features)} units most selective for '{job.concept}', "
                        "mean activation on its sentences in each language. A shared unit fills its column."))
    if cl.overlap is not None:
        figures.append((plotting.language_heatmap(cl.overlap.by_language, list(cl.languages),
                                                  title="Translation overlap (Jaccard of active units)"),
                        "overlap.png", "Mean Jaccard overlap of the active units of a sentence and its translation, "
                                       "per language pair."))
    saved = tuple({"file": name, "caption": caption} for fig, name, caption in figures
                  if save_figure(fig, out, name))
    texts = contents(labels.example_id.tolist())
    rows, named = [], []
    for f in np.argsort(-np.where(cl.multilingual, cl.concept_auroc, -1))[:8]:
        if not cl.multilingual[f]:
            break
        top = np.argsort(-z[:, f])[:4]
        named.append(int(f))
        rows.append([f"f{f}", str(cl.concepts[cl.best_concept[f]]), round(float(cl.concept_auroc[f]), 3),
                     round(float(cl.entropy[f]), 3),
                     " · ".join(f"{labels.language[i]}: {texts.get(labels.example_id[i], labels.example_id[i])}"
                                for i in top)])
    n_alive = int(cl.alive.sum())
    concept, translation, same_language = (cl.scores.get(n) for n in ("concept_overlap", "overlap",
                                                                       "overlap_vs_language"))
    ok = beats_null(versus.row()) and concept is not None and beats_null(concept.row())
    verdict = (f"{'Supported' if ok else 'Not supported'}. {100 * versus.value:.1f}% of the {n_alive} live units are "
               f"multilingual: they pick out one concept (AUROC >= 0.9) and spread over languages (normalised "
               f"entropy >= 0.8). Random directions of the same width and sparsity reach {100 * versus.null_mean:.1f}% "
               f"± {100 * versus.null_sd:.1f}% (K = {len(versus.null)} dictionaries, "
               f"{p_text(versus.p_value, len(versus.null))}).")
    if concept is not None:
        verdict += (f" Two different sentences about the same concept, in different languages, share "
                    f"{fmt(concept.value)} of their active units (mean Jaccard), against {fmt(concept.null_mean)} for "
                    f"other concepts in other languages ({p_text(concept.p_value, len(concept.null))}).")
    else:
        verdict += " The rows have no second sentence per concept, so the concept-level overlap cannot be tested."
    if translation is not None and same_language is not None:
        verdict += (f" A sentence and its translation share {fmt(translation.value)}, another concept in the same "
                    f"language {fmt(same_language.null_mean)} ({p_text(same_language.p_value, len(same_language.null))}"
                    f"); translation overlap also counts shared sentence content, so it is reported, not used for "
                    f"the verdict.")
    verdict += " " + anchor("translation_jaccard")
    order = ["concept_overlap", "overlap", "overlap_vs_language", "multilingual", "language_specific", "entropy",
             "monolinguality"]
    scores = (versus.row(), *(cl.scores[n].row() for n in order if n in cl.scores))
    return {"title": "Across languages: {what}", "claim": "The same features fire for a concept in every language",
            "verdict": verdict, "supported": ok, "scores": scores, "figures": saved,
            "features": () if neurons else tuple(named),
            "tables": (table("The most concept-selective multilingual units and their top sentences",
                             ["unit", "concept", "concept AUROC", "language entropy", "top sentences"], rows),)}


def _crossmodal(job: AnalyzeStep, z, labels, neurons: bool, out: Path) -> dict:
    from mmfeatures import plotting
    from mmfeatures.analysis import crossmodal

    cm = crossmodal(z, labels, n_perm=job.n_perm, seed=job.seed)
    mm, bridge = cm.scores["multimodal"].row(), cm.scores["bridge"].row()
    counts, edges = cm.histogram()
    figures = [(plotting.modality_histogram(counts, edges, title="ModalityScore of live units"), "modality.png",
                "ModalityScore: the share of a unit's activation on images (0 = texts only, 1 = images only).")]
    bridges = np.flatnonzero(cm.bridge & cm.alive)
    rows = []
    if len(bridges):
        shown = contents(labels.example_id.tolist())
        img, txt = labels.mask(modality="image"), labels.mask(modality="text")
        shared = sorted(set(labels.concept[img]) & set(labels.concept[txt]))
        ranked = bridges[np.lexsort((-z[:, bridges].max(0), -cm.concept_auroc[bridges]))]
        pictures, captions = [], []
        for f in ranked[:8]:
            concept = shared[cm.bridge_concept[f]]
            rows.append([f"f{f}", concept,
                         round(float(cm.concept_auroc[f]), 3), round(float(cm.modality_score[f]), 3)])
            top_image = np.flatnonzero(img)[np.argmax(z[img, f])]
            names = [f"{labels.language[i]}: {shown[labels.example_id[i]]}"[:24]
                     for i in np.flatnonzero(txt)[np.argsort(-z[txt, f])][:12]
                     if plotting.drawable(str(shown.get(labels.example_id[i], "\u4e00")))][:3]
            if len(pictures) < 5 and labels.example_id[top_image] in shown:
                pictures.append(shown[labels.example_id[top_image]])
                captions.append("\n".join([f"f{f}", *names]))
        if pictures:
            figures.append((plotting.gallery(pictures, captions, title="Bridge units: each one's top picture and "
                                                                       "top names"), "bridges.png",
                            "Bridge units (learnt from names only) with the picture they fire on most and their top "
                            "names. Names in scripts the plotting font cannot draw (CJK, right-to-left) are left out "
                            "of the figure; the table below lists the units."))
    saved = tuple({"file": name, "caption": caption} for fig, name, caption in figures
                  if save_figure(fig, out, name))
    ok = beats_null(mm) and beats_null(bridge)
    verdict = (f"{'Supported' if ok else 'Not supported'}. {100 * mm['value']:.1f}% of the {int(cm.alive.sum())} live "
               f"units are multimodal: they fire on both modalities (ModalityScore 0.2–0.8) and pick out the same "
               f"concept in pictures and in texts (AUROC >= 0.9 in each). With the pictures' concepts shuffled the "
               f"fraction is {100 * mm['null_mean']:.1f}% ± {100 * mm['null_sd']:.1f}% (K = {mm['n_perm']}, "
               f"{p_text(mm['p_value'], mm['n_perm'])}). {100 * bridge['value']:.1f}% are bridge units, firing on most pictures and most "
               f"names of one concept, against {100 * bridge['null_mean']:.1f}% under the null "
               f"({p_text(bridge['p_value'], bridge['n_perm'])}).")
    verdict += " " + anchor("modality_score")
    return {"title": "Across modalities: {what}", "claim": "Features fire for a concept's picture and for its names",
            "verdict": verdict, "supported": ok, "scores": tuple(s.row() for s in cm.scores.values()),
            "figures": saved,
            "tables": (table("Bridge units with the most concept-selective activation",
                             ["unit", "concept", "joint AUROC", "ModalityScore"], rows),)}
