"""The analyze step (``mmfeatures analyze``): cross-lingual or cross-modal consistency of SAE features (or
neurons), each against a null."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfeatures.analysis.anchors import anchor
from mmfeatures.analysis.evidence import Settings
from mmfeatures.analysis.stats import check_count, check_n_perm, check_seed, check_share, permuted
from mmfeatures.pipeline.checks import check_distinct, check_random_copies
from mmfeatures.pipeline.examples import contents, subset_mask
from mmfeatures.pipeline.record import Record, fmt, opt, run_step, save_figure, table
from mmfeatures.pipeline.train import open_store

KINDS = ("crosslingual", "crossmodal", "features-vs-neurons")
CONTROLS = ("none", "shuffled-concepts")
SUBSETS = ("heldout-emoji", "seen-emoji", "all")
HALVES = {"crosslingual": ("multilingual", "overlap"), "crossmodal": ("multimodal", "bridge"),
          "features-vs-neurons": ("detectors",)}
"""The two tests of each kind; a verdict rests on both unless ``rests_on`` names one."""


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
    subset: str = opt("heldout-emoji", f"which emoji: {', '.join(SUBSETS)} (those the image tower of "
                                       "offline:e5-emoji-clip never saw; those it was trained on, a fit check only; "
                                       "or all); other examples are always kept")
    ids: str | None = opt(None, "keep only the examples whose id matches this regular expression, e.g. "
                                "'^emoji/(3|17)/' (default: all)")
    label: str = opt("", "what these rows are, added to the report's title and claim (e.g. 'held-out emoji')")
    concept: str | None = opt(None, "the concept the figures single out (default: dog, when the data has it; a "
                                    "concept the data lacks is an error)")
    seed: int = opt(0, "seed of the permutations")
    control: str = opt("none", "none, or shuffled-concepts: the same analysis with every concept label shuffled "
                               "within its language and modality, where the verdict must come out 'not supported' "
                               "(a falsification check)")
    n_baseline: int = opt(19, "random-direction dictionaries (same width and L0 as the units: the baseline every "
                              "test's effect is measured beyond)")
    floor: float = opt(0.01, "the smallest effect beyond the baseline that counts, for the fractions (multilingual, "
                             "multimodal, bridge), declared before the run")
    overlap_floor: float = opt(0.01, "the smallest concept-overlap excess (Jaccard) beyond the baseline that counts")
    max_density: float = opt(0.2, "units active on more than this share of the rows are left out of the concept "
                                  "overlap (ubiquitous units carry most of any overlap)")
    rests_on: str = opt("both", "the tests the verdict needs: both, or one of multilingual, overlap (crosslingual), "
                                "multimodal, bridge (crossmodal); e.g. overlap cannot be computed with one sentence "
                                "per concept, so a parallel corpus rests on multilingual")
    n_boot: int = opt(100, "bootstrap draws of each effect's interval (concepts, seeds, baseline dictionaries)")
    null_stores: tuple[str, ...] = opt((), "stores of the model's random-init copy (for crossmodal, e.g. the model with a "
                                           "random image tower) over the same examples, one per store: each half must "
                                           "also beat that model (read by null_sae, or its dimensions)", artifact=True)
    null_sae: str | None = opt(None, "the SAE that reads the random-init copy's stores (its own SAE; for a random "
                                     "image tower, the SAE itself)", artifact=True)
    simulations: int = opt(10, "planted-effect simulations per size for each test's power")
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
        check_seed(self.seed)
        check_share("floor", self.floor, example=0.01)
        check_share("overlap_floor", self.overlap_floor, example=0.01)
        if self.seeds and not self.sae:
            raise InputError("seeds are further SAEs beside sae; give sae too (neurons have no seeds)")
        check_count("n_baseline", self.n_baseline, 2, 20)
        check_count("n_boot", self.n_boot, 20, 1000)
        check_count("simulations", self.simulations, 1, 200)
        if not 0 < self.max_density <= 1:
            raise InputError(f"max_density {self.max_density}; give a share of rows in (0, 1], e.g. 0.2")
        if self.null_stores and (self.kind == "features-vs-neurons" or len(self.null_stores) != len(self.stores)):
            raise InputError(f"null_stores: give one random-init store per store ({len(self.stores)}), for kind "
                             f"crosslingual or crossmodal; got {len(self.null_stores)} for {self.kind}")
        if self.null_sae and not self.null_stores:
            raise InputError("null_sae is the SAE of the random-init model's stores; give null_stores too")
        if self.rests_on != "both" and self.rests_on not in HALVES[self.kind]:
            raise InputError(f"rests_on {self.rests_on!r} for kind {self.kind}; use both or one of "
                             f"{', '.join(HALVES[self.kind])}")
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
        if step.kind != "crossmodal":                    # text rows with a language
            keep &= (labels.modality == "text") & (labels.language != "")
        if not keep.any():
            raise InputError(f"subset {step.subset!r} with ids {step.ids!r} keeps none of the {len(labels)} "
                             f"examples (ids look like {labels.example_id[0]!r})")
        if step.subset == "seen-emoji" and not any(str(i).startswith("emoji/") for i in labels.example_id):
            raise InputError(f"subset {step.subset!r} chooses among emoji pictures, and {', '.join(step.stores)} hold "
                             f"none (ids like {labels.example_id[0]!r}); leave subset at its default")
        rows = np.flatnonzero(keep)
        z, labels = z[rows], labels.take(rows)
        if step.concept is not None and step.concept not in set(labels.concept):
            raise InputError(f"concept {step.concept!r} is not among the analysed examples' concepts; choose one of "
                             f"them, e.g. {sorted(set(labels.concept) - {''})[:8]}")
        if step.control == "shuffled-concepts":   # within language: texts per language, images (no language) apart
            labels = permuted(labels, "concept", np.random.default_rng(step.seed + 7919), within="language")
        neurons = sae is None
        more = [load_sae(p) for p in step.seeds]
        if more:
            check_distinct("sae and seeds", list(zip((step.sae, *step.seeds), (sae, *more), strict=True)))
        seeds = [z, *(units(stores, s)[0][rows] for s in more)]
        if step.kind == "crossmodal" and neurons:
            seeds = [signed_units(s) for s in seeds]
        baseline = Baseline(step, stores, rows, sae)
        kinds = {"crosslingual": _crosslingual, "crossmodal": _crossmodal, "features-vs-neurons": _neurons}
        body = kinds[step.kind](step, seeds, labels, neurons, out, baseline)
        what = f"{'neurons' if neurons else 'SAE features'} of {stores[0].config.model}"
        if step.control != "none":
            what += f", control: {step.control}"
            body["claim"] += f" (control: {step.control}; must not be supported)"
        if step.label:
            what += f", {step.label}"
            body["claim"] += f" ({step.label})"
        if step.kind == "crossmodal" and step.subset == "seen-emoji" and "fit check" not in step.label:
            body["claim"] += " (fit check: emoji the image tower was trained on, not evidence)"
        return Record("analyze", body.pop("title").format(what=what), {}, **body)

    return run_step("analyze", step, compute)


def signed_units(z: np.ndarray) -> np.ndarray:
    """Signed neurons as two non-negative units each (the neuron and its sign flip)."""
    return np.concatenate([np.maximum(z, 0), np.maximum(-z, 0)], 1)


class Baseline:
    """``n_baseline`` random-direction dictionaries with the units' width and L0 (signed and dense for neurons),
    centred where the SAE centres its inputs, read on the analysed rows; each is made and summarised in turn
    (``summaries``), and the first ``kept`` are held for the intervals and the power."""

    kept = 4

    def __init__(self, job: AnalyzeStep, stores, rows: np.ndarray, sae, width: int | None = None):
        from mmfeatures.analysis.labels import encode_rows

        self.job, self.stores, self.rows, self.neurons, self.sae = job, stores, rows, sae is None, sae
        self.width = width or (stores[0].d if sae is None else sae.d_sae)
        self.k = None if sae is None else getattr(getattr(sae, "arch", None), "k", None)
        if sae is not None and self.k is None:         # ReLU, JumpReLU: the L0 the SAE has on these rows
            first = next(stores[0].iter_shards([0]))[1]["acts"][:4096]
            self.k = max(1, int(round(float((encode_rows(sae, first) != 0).sum(1).mean()))))
        self.mean = stores[0].stats().mean_d.numpy() if sae is None else sae.b_dec.detach().float().numpy()
        self.name = (f"random directions ({self.width} wide, " + ("dense, signed" if self.neurons else f"L0 {self.k}")
                     + f"; {job.n_baseline} dictionaries)")

    def summaries(self, summary) -> tuple[list, list[np.ndarray]]:
        """(``summary(z)`` of every dictionary, the first ``kept`` dictionaries' units)."""
        from tqdm.auto import tqdm

        from mmfeatures.analysis.baselines import RandomDirections
        from mmfeatures.analysis.labels import pooled_units

        found, kept = [], []
        for i in tqdm(range(self.job.n_baseline), desc="random-direction baseline", leave=False, disable=None):
            directions = RandomDirections(self.mean, self.width, self.k, seed=self.job.seed * 1000 + i)
            z = np.concatenate([pooled_units(store, directions)[0] for store in self.stores])[self.rows]
            if self.neurons and self.job.kind == "crossmodal":
                z = signed_units(z)
            found.append(summary(z))
            if len(kept) < self.kept:
                kept.append(z)
        return found, kept


def settings(job: AnalyzeStep, neurons: bool, floor: float) -> Settings:
    return Settings(n_perm=job.n_perm, n_boot=job.n_boot, simulations=job.simulations, floor=floor,
                    max_density=job.max_density, overlap_k=16 if neurons and job.kind == "crosslingual" else None,
                    signed=neurons and job.kind == "crosslingual", seed=job.seed)


def _seed_table(job: AnalyzeStep, tests, per_seed: list[list[float]]) -> dict:
    names = [job.sae or "neurons", *job.seeds]
    rows = [[str(n), *(round(float(v), 4) for v in values)] for n, values in zip(names, per_seed, strict=True)]
    return table("Each SAE seed's statistics and the baseline's (the intervals in the verdict draw seeds, concepts "
                 "and baseline dictionaries together)", ["units", *(t.score.name for t in tests)],
                 rows + [["baseline (mean)", *(round(float(t.baseline), 4) for t in tests)]])


def _verdict(job: AnalyzeStep, claim: str, tests, details: str, extra=(), halves=None):
    """The verdict on ``tests`` (``halves[i]``: the half test i measures; default the kind's halves in order)."""
    from mmfeatures.analysis.evidence import power_table
    from mmfeatures.analysis.verdict import decide

    halves = halves or HALVES[job.kind]
    needed = None if job.rests_on == "both" else tuple(t.name for h, t in zip(halves, tests, strict=True)
                                                        if h == job.rests_on)
    verdict = decide(claim, tests, rests_on=needed, details=details, notes=extra)
    return verdict, table(*power_table(tests))


def _crosslingual(job: AnalyzeStep, seeds, labels, neurons: bool, out: Path, baseline: Baseline) -> dict:
    from mmfeatures import plotting
    from mmfeatures.analysis import concept_features, crosslingual, language_entropy
    from mmfeatures.analysis.evidence import (
        draw_pairs,
        fraction,
        multilingual_test,
        overlap_sums,
        overlap_test,
    )
    from mmfeatures.analysis.verdict import Test

    z = seeds[0]
    s = settings(job, neurons, job.floor)
    cl = crosslingual(z, labels, signed=neurons, n_perm=job.n_perm, overlap_k=s.overlap_k, seed=job.seed)
    pairs = draw_pairs(labels, job.n_perm, job.seed)
    so = settings(job, neurons, job.overlap_floor)

    def summary(zb):
        return fraction(zb, labels, neurons), overlap_sums(zb, pairs, so) if pairs is not None else None

    found, kept = baseline.summaries(summary)
    multi = multilingual_test(seeds, kept, [f for f, _ in found], cl.scores["multilingual"].null, labels, s,
                              baseline_name=baseline.name)
    if pairs is not None:
        overlap = overlap_test([overlap_sums(zs, pairs, so) for zs in seeds], [o for _, o in found], pairs, so,
                               baseline_name=baseline.name, planted_from=(kept[0], labels))
    else:
        overlap = Test("concept overlap beyond " + baseline.name, None,
                       reason="the rows have no second sentence per concept in another language (one sentence per "
                              "concept, as in a parallel corpus): rest the verdict on multilingual, or add sentences")
    tests, halves = (multi, overlap), HALVES["crosslingual"]
    if job.null_stores:                           # each half also beyond the random-init model's SAE
        zr, name = _null_model(job, labels)
        versus = f"the random-init model ({name})"
        null_multi = multilingual_test(seeds, [zr], [fraction(zr, labels, neurons)], cl.scores["multilingual"].null,
                                       labels, s, baseline_name=versus)
        tests, halves = (*tests, null_multi), (*halves, "multilingual")
        if pairs is not None:
            tests = (*tests, overlap_test([overlap_sums(zs, pairs, so) for zs in seeds], [overlap_sums(zr, pairs, so)],
                                          pairs, so, baseline_name=versus, planted_from=(zr, labels)))
            halves = (*halves, "overlap")
    null_h = language_entropy(z, permuted(labels, "language", np.random.default_rng(job.seed)))
    figures = [
        (plotting.distributions({"units": cl.entropy[cl.alive], "languages shuffled (null)": null_h[cl.alive]},
                                xlabel="normalised language entropy (1 = even over all languages)", range_=(0, 1),
                                title="Language entropy against a language-blind null"),
         "entropy.png", "How evenly each live unit's activation spreads over languages, against the same "
                        "units with language labels shuffled."),
    ]
    concept = job.concept or "dog"
    if concept in set(labels.concept):
        features, matrix, langs = concept_features(z, labels, concept)
        figures.append((plotting.feature_heatmap(matrix, langs, [f"f{i}" for i in features],
                                                 title=f"Top units for '{concept}': mean activation by language"),
                        "concept_heatmap.png", f"The {len(features)} units most selective for '{concept}', "
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
    details = (f"{100 * multi.score.value:.1f}% of the {int(cl.alive.sum())} live units are multilingual: they pick "
               "out one concept (AUROC >= 0.9) and spread over languages (normalised entropy >= 0.8).")
    if pairs is not None:
        details += (" Two different sentences about one concept in two languages share more active units than "
                    f"other concepts in other languages (units active on over {job.max_density:.0%} of the rows left "
                    "out).")
    translation, same_language = cl.scores.get("overlap"), cl.scores.get("overlap_vs_language")
    if translation is not None and same_language is not None:
        details += (f" A sentence and its translation share {fmt(translation.value)}, another concept in the same "
                    f"language {fmt(same_language.null_mean)}; translation overlap also counts shared sentence "
                    "content, so it is reported, not used for the verdict.")
    verdict, power = _verdict(job, "The same features fire for a concept in every language", tests, details,
                              (anchor("translation_jaccard"),), halves)
    per_seed = [[fraction(zs, labels, neurons), *([overlap_sums(zs, pairs, so).excess()] if pairs else [])]
                for zs in seeds]
    shown = [multi, *([overlap] if pairs else [])]
    order = ["concept_overlap", "overlap", "overlap_vs_language", "multilingual", "language_specific", "entropy",
             "monolinguality"]
    return {"title": "Across languages: {what}", "claim": verdict.claim, "verdict": verdict.text,
            "supported": verdict.supported, "status": verdict.status.value, "tests": tuple(t.row() for t in tests),
            "scores": tuple(cl.scores[n].row() for n in order if n in cl.scores), "figures": saved,
            "features": () if neurons else tuple(named),
            "tables": (table("The most concept-selective multilingual units and their top sentences",
                             ["unit", "concept", "concept AUROC", "language entropy", "top sentences"], rows),
                       _seed_table(job, shown, per_seed), power)}


def _crossmodal(job: AnalyzeStep, seeds, labels, neurons: bool, out: Path, baseline: Baseline) -> dict:
    from mmfeatures import plotting
    from mmfeatures.analysis import crossmodal
    from mmfeatures.analysis.evidence import crossmodal_fractions, crossmodal_tests

    z = seeds[0]
    cm = crossmodal(z, labels, n_perm=job.n_perm, seed=job.seed)
    _, kept = baseline.summaries(lambda zb: None)
    nulls = (cm.scores["multimodal"].null, cm.scores["bridge"].null)
    mm, bridge = crossmodal_tests(seeds, kept, labels, nulls, settings(job, neurons, job.floor),
                                  baseline_name=baseline.name)
    tests, halves = (mm, bridge), HALVES["crossmodal"]
    if job.null_stores:                           # each half also beyond the random-init copy
        zr, name = _null_model(job, labels)
        zr = signed_units(zr) if neurons else zr
        tests = (*tests, *crossmodal_tests(seeds, [zr], labels, nulls, settings(job, neurons, job.floor),
                                           baseline_name=f"the random-init model ({name})"))
        halves = (*halves, *HALVES["crossmodal"])
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
    details = (f"{100 * mm.score.value:.1f}% of the {int(cm.alive.sum())} live units are multimodal: they fire on "
               "both modalities (ModalityScore 0.2–0.8) and pick out the same concept in pictures and in texts "
               f"(AUROC >= 0.9 in each); {100 * bridge.score.value:.1f}% are bridge units, firing on most pictures "
               "and most names of one concept. The null shuffles the pictures' concepts.")
    if job.subset == "seen-emoji":
        details = "Fit check only (emoji the image tower was trained on). " + details
    verdict, power = _verdict(job, "Features fire for a concept's picture and for its names", tests, details,
                              (anchor("modality_score"),), halves)
    per_seed = [list(crossmodal_fractions(zs, labels)) for zs in seeds]
    return {"title": "Across modalities: {what}", "claim": verdict.claim, "verdict": verdict.text,
            "supported": verdict.supported, "status": verdict.status.value, "tests": tuple(t.row() for t in tests),
            "scores": tuple(s.row() for s in cm.scores.values()), "figures": saved,
            "tables": (table("Bridge units with the most concept-selective activation",
                             ["unit", "concept", "joint AUROC", "ModalityScore"], rows),
                       _seed_table(job, (mm, bridge), per_seed), power)}


def _neurons(job: AnalyzeStep, seeds, labels, neurons: bool, out: Path, baseline: Baseline) -> dict:
    """Features against neurons read the same way (``analysis.evidence_neurons``)."""
    from mmfeatures.analysis.baselines import NeuronBasis
    from mmfeatures.analysis.evidence import power_table
    from mmfeatures.analysis.evidence_neurons import detectors, neurons_test
    from mmfeatures.analysis.labels import pooled_units
    from mmfeatures.analysis.verdict import decide
    from mmfeatures.errors import InputError

    if neurons:
        raise InputError("features against neurons compares an SAE's features with the neurons; give --sae")
    basis = NeuronBasis(baseline.mean, baseline.k)
    as_dictionary = np.concatenate([pooled_units(store, basis)[0] for store in baseline.stores])[baseline.rows]
    narrow = Baseline(job, baseline.stores, baseline.rows, baseline.sae, width=basis.d_sae)
    _, wide = baseline.summaries(lambda z: None)
    _, small = narrow.summaries(lambda z: None)
    test, shares = neurons_test(seeds, as_dictionary, wide, small, labels, n_perm=job.n_perm, n_boot=job.n_boot,
                                simulations=job.simulations, floor=job.floor, seed=job.seed)
    dense = units(baseline.stores, None)[0][baseline.rows]
    rows = []
    for name, z in (("SAE features (sparse, max-pooled)", seeds[0]), ("neurons as a dictionary (± basis, top-k, "
                    "max-pooled)", as_dictionary), (f"random directions, SAE width ({baseline.width})", wide[0]),
                    (f"random directions, neuron width ({basis.d_sae})", small[0])):
        d = detectors(z, labels)
        live = d.alive
        rows.append([name, int(live.sum()), round(d.share, 4), round(float(np.median(d.precision[live])), 3),
                     round(float(np.median(d.recall[live])), 3), round(float(np.median(d.auroc[live])), 3),
                     round(float((d.auroc[live] >= 0.9).mean()), 4)])
    d = detectors(signed_units(dense), labels)
    rows.append(["neurons read dense and signed (each sign a unit; reported, not compared)", int(d.alive.sum()),
                 round(d.share, 4), round(float(np.median(d.precision[d.alive])), 3),
                 round(float(np.median(d.recall[d.alive])), 3), round(float(np.median(d.auroc[d.alive])), 3),
                 round(float((d.auroc[d.alive] >= 0.9).mean()), 4)])
    details = (f"{100 * shares['SAE']:.1f}% of the SAE's live units are precise concept detectors on held-out "
               f"sentences (random directions of its width: {100 * shares['random (SAE width)']:.1f}%); the neurons "
               f"read the same way {100 * shares['neurons']:.1f}% (random directions of their width, "
               f"{basis.d_sae}: {100 * shares['random (neuron width)']:.1f}%).")
    verdict = decide("SAE features pick out concepts more precisely than neurons read the same way", (test,),
                     details=details, notes=(anchor("features_vs_neurons"),))
    return {"title": "Features against neurons: {what}", "claim": verdict.claim, "verdict": verdict.text,
            "supported": verdict.supported, "status": verdict.status.value, "tests": (test.row(),),
            "scores": (test.score.row(),),
            "tables": (table("Each unit set read sparse (a unit's concept picked on the first sentences; precision and "
                             "recall where it fires on the second; detectors: precision >= 0.5 on >= 3 sentences)", ["units", "live", "detector share",
                                                                      "median precision", "median recall",
                                                                      "median AUROC", "AUROC >= 0.9"], rows),
                       table(*power_table((test,))))}


def _null_model(job: AnalyzeStep, labels) -> tuple[np.ndarray, str]:
    """The random-init model's units on ``labels``' rows (matched by example id), and its name."""
    from mmfeatures.errors import InputError
    from mmfeatures.sae import load_sae

    stores = [open_store(p, "null_stores") for p in job.null_stores]
    check_random_copies(list(zip(stores, (open_store(p) for p in job.stores), strict=True)), "null_stores")
    z, found = units(stores, load_sae(job.null_sae) if job.null_sae else None)
    where = {e: i for i, e in enumerate(found.example_id)}
    missing = [e for e in labels.example_id if e not in where]
    if missing:
        raise InputError(f"null_stores lack {len(missing)} of the analysed examples (e.g. {missing[0]!r}); extract the "
                         "random-init model on the same data and languages")
    return z[[where[e] for e in labels.example_id]], stores[0].config.model
