"""``mmfeatures demo``: the main job on the offline defaults, ending in ``reports/demo/index.html``.

It extracts activations, trains the cross-modal SAEs and tests six claims, each against a null and a baseline that
can win, with SAEs scored on data they were not trained on (the text SAEs ship in data/saes) and effects given with
intervals over three SAE seeds and the rows; every verdict states the smallest effect it detects with 80% power, and
says "inconclusive at this sample size" where its data cannot exclude an effect of that size (analysis/verdict.py):

1. across languages: e5-small's SAE features fire for a concept in every language, more often than random
   directions of the same width and sparsity;
2. across modalities: on ``offline:e5-emoji-clip``, features learnt from emoji names alone fire for Tux Paint's
   pictures and captions (which neither the SAE nor the image tower saw) and for held-out emoji; the emoji the
   image tower was trained on are a fit check only;
3. across models: e5-small's features have counterparts in an independently trained model (MiniLM-L6), more
   than in MiniLM's random-init copy; two SAEs of e5-small that differ only in seed are the seed baseline;
4. steering: clamping the 'dog' feature (confirmed on held-out sentences first) drags retrieval toward dog sentences,
   unlike other features and random directions;
5. features against neurons: e5-small's SAE features pick out concepts more precisely than its neurons read the
   same way (sparse, max-pooled), each beyond random directions of its own width;
6. splice: the SAEs spliced into e5-small keep its embeddings better than untrained SAEs of the same width and L0.

The demo is a plan (``demo_plan``): pipeline steps held as data, each writing into its own folder under ``out``,
whose stores and SAEs reach later steps as typed handles. A rerun reuses every step whose key is unchanged,
and an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mmfeatures.analysis.stats import check_n_perm, check_seed
from mmfeatures.datasets.builtin import BUILTIN_LANGUAGES
from mmfeatures.datasets.freedict import LANGUAGES as FREEDICT_LANGUAGES
from mmfeatures.disk import write_text_atomic
from mmfeatures.encoders import resolve_device
from mmfeatures.pipeline.alignment import AlignmentStep
from mmfeatures.pipeline.analyze import AnalyzeStep
from mmfeatures.pipeline.extract import ExtractStep
from mmfeatures.pipeline.fidelity import FidelityStep
from mmfeatures.pipeline.inspect import InspectStep
from mmfeatures.pipeline.match import MatchStep
from mmfeatures.pipeline.plan import FeaturesOf, PlanStep, SAEOf, StepOutcome, StoreOf, run_plan
from mmfeatures.pipeline.record import Timer, config_dict, environment, opt, writable
from mmfeatures.pipeline.steer import SteerStep
from mmfeatures.pipeline.train import TrainStep
from mmfeatures.report import RUN, ReportJob, render_report

QUICK_LANGUAGES = ("en", "es", "de", "ru", "ja", "zh")
E5, UNRELATED = "offline:e5-small", "offline:minilm-l6"
E5_SAES = tuple(f"data:e5-small-layer8-seed{s}" for s in range(3))     # shipped: data/saes/README.md
E5_RANDOM_SAE = "data:e5-small-random-init-0-layer8-seed0"
MINILM_SAES = tuple(f"data:minilm-l6-layer4-seed{s}" for s in (1, 2, 3))
MINILM_RANDOM_SAES = tuple(f"data:minilm-l6-random-init-{c}-layer4-seed1" for c in range(3))
EMOJI_MODEL = "offline:e5-emoji-clip"
INTRO = ("Are the concepts a model learns shared units? This report tests six claims on real models that ship "
         "offline: multilingual-e5-small (text), all-MiniLM-L6-v2 (text) and offline:e5-emoji-clip (e5-small's "
         "text tower with an image tower this project trained on emoji renders; a small teaching model, see "
         "data/models/README.md). Each verdict rests on tests that each compare a statistic with a null (its "
         "p-value) and with a baseline that has nothing learnt and can win (its effect, with a 95% interval over "
         "what varies and a floor declared before the run), and says the smallest effect it detects with 80% power "
         "at this sample size. A claim is supported when every test passes; not supported when a test fails and its "
         "interval excludes the effect it can detect; otherwise inconclusive at this sample size. A permutation "
         "p-value is at least 1/(K+1), so K bounds how small it can be.")


@dataclass(frozen=True)
class DemoConfig:
    """What ``mmfeatures demo`` runs (the full version takes a few minutes on 2 CPU cores)."""

    out: str = opt("reports/demo", "folder for the report (index.html), its figures and the step records")
    quick: bool = opt(False, "6 languages, fewer permutations (what the tests run; measured times in docs/demo.md)")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    n_perm: int | None = opt(None, "permutations per null (default 99, quick 19)")
    seed: int = opt(0, "seed of the SAEs and the nulls")
    store_dir: str | None = opt(None, "root folder for activation stores (default: the user cache)")
    progress: bool = opt(True, "show progress bars")

    def __post_init__(self):
        if self.n_perm is not None:
            check_n_perm(self.n_perm)
        check_seed(self.seed)
        resolve_device(self.device)
        if self.store_dir:
            writable(self.store_dir, "--store-dir")

    @property
    def languages(self) -> tuple[str, ...]:
        return QUICK_LANGUAGES if self.quick else ()

    @property
    def permutations(self) -> int:
        return self.n_perm if self.n_perm is not None else (19 if self.quick else 99)

    @property
    def english(self) -> str:
        """The English texts of the cross-model claim: held-out text of the SAEs' training domain (7,337 texts; 1,100
        in the quick run)."""
        return "general-heldout:300" if self.quick else "general-heldout:2000"

    @property
    def precision(self) -> dict[str, int]:
        """Bootstrap draws and power simulations per size of the verdicts (fewer in the quick run)."""
        return {"n_boot": 50, "simulations": 5} if self.quick else {"n_boot": 200, "simulations": 20}

    @property
    def baselines(self) -> int:
        """Random-direction dictionaries per baseline (9 in the quick run, which the tests run; 39 in full)."""
        return 9 if self.quick else min(self.permutations, 39)


@dataclass(frozen=True)
class DemoResult:
    index: Path
    """The report page."""
    stages: tuple[StepOutcome, ...]
    seconds: float

    @property
    def verdicts(self) -> dict[str, str]:
        """Each claim's status: supported, not supported, inconclusive at this sample size, cannot be tested."""
        return {s.record.claim: s.record.status for s in self.stages if s.record.claim}


def demo_plan(cfg: DemoConfig) -> tuple[PlanStep, ...]:
    """The demo's steps, in order, as data. Every SAE is scored on data it was not trained on: e5-small's and
    MiniLM's are the shipped ones (``data:<name>``, trained on the general-domain corpus; data/saes/README.md), the
    cross-modal ones are trained on emoji names and scored on Tux Paint's pictures and captions (and FreeDict's
    words), which neither they nor the image tower saw. The cross-lingual and cross-modal claims are scored on two
    concept sets: the built-in sentences and FreeDict's word-level translations. B's SAEs use other seeds than A's,
    so that no match can come from a shared initialisation."""
    langs, n, seed = cfg.languages, cfg.permutations, cfg.seed
    run = dict(device=cfg.device, progress=cfg.progress)
    e5_site, minilm_site, emoji_sites = "text.layer.8.resid", "text.layer.4.resid", ("image.embed", "text.embed")
    english = ("en",)
    e5_random = f"{E5}+random-init-0"
    emoji_seeds = (SAEOf("08-train-emoji-1"), SAEOf("08-train-emoji-2"))

    # FreeDict has English dictionaries for 12 of the built-in languages (not zh, ko, fa): the others are left out
    words = tuple(x for x in langs if x == "en" or x in FREEDICT_LANGUAGES) if langs else ()

    def extract(model, sites, languages=langs, **kw):
        return ExtractStep(model=model, sites=sites, languages=languages, store_dir=cfg.store_dir, **run, **kw)

    def crosslingual(step, null_step, label, **kw):
        return AnalyzeStep(stores=(StoreOf(step, e5_site),), sae=E5_SAES[0], seeds=E5_SAES[1:],
                           null_stores=(StoreOf(null_step, e5_site),), null_sae=E5_RANDOM_SAE, n_perm=n,
                           n_baseline=cfg.baselines, seed=seed, label=label, **cfg.precision, **kw)

    def crossmodal(stores, subset, label, **kw):
        return AnalyzeStep(stores=stores, sae=SAEOf("08-train-emoji-0"), seeds=emoji_seeds, kind="crossmodal",
                           subset=subset, label=label, n_perm=n, n_baseline=cfg.baselines, seed=seed,
                           **cfg.precision, **kw)

    def match(other_store, other_sae, **kw):
        return MatchStep(store_a=StoreOf("15-extract-e5-en", e5_site), store_b=other_store, sae_a=E5_SAES[0],
                         sae_b=other_sae, n_perm=n, seed=seed, **cfg.precision, **kw)

    def emoji(step):
        return tuple(StoreOf(step, s) for s in emoji_sites)

    copies = range(len(MINILM_RANDOM_SAES))
    random_pictures = StoreOf("10-extract-tuxpaint-random-image", "image.embed")   # the same text tower
    return (
        PlanStep("00-alignment", AlignmentStep(model=E5, store_dir=cfg.store_dir, device=cfg.device)),
        PlanStep("01-extract-e5", extract(E5, (e5_site,))),
        PlanStep("02-extract-e5-random", extract(e5_random, (e5_site,))),
        PlanStep("03-crosslingual", crosslingual("01-extract-e5", "02-extract-e5-random", "the built-in sentences")),
        PlanStep("04-extract-e5-freedict", extract(E5, (e5_site,), words, data="freedict")),
        PlanStep("05-extract-e5-random-freedict", extract(e5_random, (e5_site,), words, data="freedict")),
        PlanStep("06-crosslingual-freedict", crosslingual("04-extract-e5-freedict", "05-extract-e5-random-freedict",
                                                          "FreeDict's words: one per concept and language",
                                                          rests_on="multilingual")),
        PlanStep("07-extract-emoji", extract(EMOJI_MODEL, emoji_sites, data="emoji", pooling="mean")),
        *(PlanStep(f"08-train-emoji-{s}", TrainStep(store=StoreOf("07-extract-emoji", "text.embed"), width=1024, k=8,
                                                    epochs=30, batch_size=1024, seed=seed + s, **run))
          for s in range(3)),
        PlanStep("09-extract-tuxpaint", extract(EMOJI_MODEL, emoji_sites, langs or BUILTIN_LANGUAGES, data="tuxpaint",
                                                pooling="mean")),
        PlanStep("10-extract-emoji-clip-freedict", extract(EMOJI_MODEL, ("text.embed",), words, data="freedict",
                                                           pooling="mean")),
        PlanStep("10-extract-tuxpaint-random-image", extract(f"{EMOJI_MODEL}+random-image-0", ("image.embed",),
                                                             langs or BUILTIN_LANGUAGES, data="tuxpaint",
                                                             pooling="mean")),
        PlanStep("11-crossmodal-tuxpaint", crossmodal(
            emoji("09-extract-tuxpaint"), "all", "Tux Paint stamps: pictures and captions that neither the SAE nor "
            "the image tower saw", null_stores=(random_pictures, StoreOf("09-extract-tuxpaint", "text.embed")),
            null_sae=SAEOf("08-train-emoji-0"))),
        PlanStep("12-crossmodal-tuxpaint-freedict", crossmodal(
            (StoreOf("09-extract-tuxpaint", "image.embed"), StoreOf("10-extract-emoji-clip-freedict", "text.embed")),
            "all", "Tux Paint's pictures and FreeDict's words", ids="^(tuxpaint/.*/image|freedict/)",
            null_stores=(random_pictures, StoreOf("10-extract-emoji-clip-freedict", "text.embed")),
            null_sae=SAEOf("08-train-emoji-0"))),
        PlanStep("13-crossmodal-heldout", crossmodal(emoji("07-extract-emoji"), "heldout-emoji", "emoji the image "
                                                     "tower never saw, near-duplicates of seen ones left out (their "
                                                     "names trained the SAE)")),
        PlanStep("14-crossmodal-seen", crossmodal(emoji("07-extract-emoji"), "seen-emoji", "fit check only: emoji "
                                                  "the image tower was trained on")),
        PlanStep("15-extract-e5-en", extract(E5, (e5_site,), english, data=cfg.english)),
        PlanStep("16-match-seed", match(StoreOf("15-extract-e5-en", e5_site), E5_SAES[1],
                                        label="seed baseline: the same model and data, another SAE seed")),
        PlanStep("17-extract-minilm-en", extract(UNRELATED, (minilm_site,), english, data=cfg.english)),
        *(PlanStep(f"18-extract-minilm-random-en-{c}", extract(f"{UNRELATED}+random-init-{c}", (minilm_site,), english,
                                                               data=cfg.english)) for c in copies),
        PlanStep("19-match-unrelated", match(StoreOf("17-extract-minilm-en", minilm_site), MINILM_SAES[0],
                                             seeds_b=MINILM_SAES[1:], seeds_a=E5_SAES[1:],
                                             store_null=tuple(StoreOf(f"18-extract-minilm-random-en-{c}", minilm_site)
                                                              for c in copies),
                                             sae_null=MINILM_RANDOM_SAES,
                                             label="independently trained; baseline: three random-init copies")),
        PlanStep("20-steer", SteerStep(sae=E5_SAES[0], seeds=E5_SAES[1:], store=StoreOf("01-extract-e5", e5_site),
                                       n_perm=n, seed=seed)),
        PlanStep("21-features-vs-neurons", AnalyzeStep(stores=(StoreOf("01-extract-e5", e5_site),), sae=E5_SAES[0],
                                                       seeds=E5_SAES[1:], kind="features-vs-neurons", n_perm=n,
                                                       n_baseline=cfg.baselines, seed=seed, **cfg.precision)),
        PlanStep("22-splice", FidelityStep(saes=E5_SAES, seeds=True, store=StoreOf("01-extract-e5", e5_site),
                                           languages=("en", "es") if cfg.quick else ("en", "es", "ja", "sw"),
                                           n_sentences=32 if cfg.quick else 128, n_perm=min(n, 19), seed=seed,
                                           n_boot=cfg.precision["n_boot"])),
        PlanStep("23-dashboards", InspectStep(sae=E5_SAES[0], store=StoreOf("01-extract-e5", e5_site), texts="concepts",
                                              features=(FeaturesOf("03-crosslingual"), FeaturesOf("20-steer")),
                                              title="the e5-small features this report names")),
    )


def run_demo(cfg: DemoConfig = DemoConfig()) -> DemoResult:
    """Run every step of the plan (reusing finished ones), then render the report."""
    from mmfeatures.pipeline import run

    timer = Timer()
    root = writable(cfg.out)
    plan = demo_plan(cfg)
    info = {"title": f"mmfeatures demo{' (quick)' if cfg.quick else ''}: are features shared across languages, "
                     "modalities and models?", "intro": INTRO, "config": config_dict(cfg),
            "languages": list(cfg.languages) or "all 16", "n_perm": cfg.permutations,
            "device": str(resolve_device(cfg.device)), "environment": environment()}
    stale = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")} - {s.name for s in plan}
    if stale:
        raise FileExistsError(f"{root} holds folders this demo does not write ({', '.join(sorted(stale))}); "
                              "choose an empty --out or delete them, so the report shows only this run")
    write_text_atomic(root / RUN, json.dumps(info, indent=1, ensure_ascii=False))
    outcomes = run_plan(plan, root, run, progress=cfg.progress)
    index = render_report(ReportJob(str(root)))
    return DemoResult(index, tuple(outcomes), timer.seconds)
