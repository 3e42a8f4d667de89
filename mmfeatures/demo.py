"""``mmfeatures demo``: the main job on the offline defaults, ending in ``reports/demo/index.html``.

It extracts activations, trains SAEs and tests four claims, each against a null:

1. across languages: e5-small's SAE features fire for a concept in every language;
2. across modalities: on ``offline:e5-emoji-clip``, features learnt from names alone fire for pictures, also
   for the emoji its image tower never saw;
3. across models: e5-small's features have counterparts in a related model (e5-small-enpt) and, less so, in
   an unrelated one (MiniLM-L6);
4. steering: clamping the 'dog' feature drags retrieval toward dog sentences, unlike random features.

Every step is a job (``mmfeatures.jobs``) writing into its own folder under ``out``. A rerun reuses finished
jobs, stores and SAEs, and an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mmfeatures.activations import Example, extract
from mmfeatures.disk import write_text_atomic
from mmfeatures.jobs import (
    AnalyzeJob,
    ExtractJob,
    MatchJob,
    Record,
    SteerJob,
    TrainJob,
    run_analyze,
    run_extract,
    run_match,
    run_steer,
    run_train,
)
from mmfeatures.jobs.common import (
    Timer,
    config_dict,
    environment,
    opt,
    resolve_device,
    reusable,
    save_figure,
    table,
)
from mmfeatures.jobs.common import writable as check_writable
from mmfeatures.report import RUN, ReportJob, render_report
from mmfeatures.types import Modality

# Two concepts, each said natively in nine languages and scripts.
SENTENCES: dict[str, dict[str, str]] = {
    "dog_sleeping": {
        "en": "The dog is sleeping in the garden.",
        "es": "El perro está durmiendo en el jardín.",
        "de": "Der Hund schläft im Garten.",
        "fr": "Le chien dort dans le jardin.",
        "ru": "Собака спит в саду.",
        "ar": "الكلب نائم في الحديقة.",
        "hi": "कुत्ता बगीचे में सो रहा है।",
        "ja": "犬が庭で寝ています。",
        "zh": "狗在花园里睡觉。",
    },
    "market_fell": {
        "en": "The stock market fell sharply today.",
        "es": "La bolsa cayó con fuerza hoy.",
        "de": "Die Börse ist heute stark gefallen.",
        "fr": "La Bourse a fortement chuté aujourd'hui.",
        "ru": "Сегодня фондовый рынок резко упал.",
        "ar": "انخفضت البورصة بشدة اليوم.",
        "hi": "आज शेयर बाज़ार में भारी गिरावट आई।",
        "ja": "今日、株式市場は大きく下落した。",
        "zh": "今天股市大幅下跌。",
    },
}


QUICK_LANGUAGES = ("en", "es", "de", "ru", "ja", "zh")
E5, E5_RELATED, UNRELATED = "offline:e5-small", "offline:e5-small-enpt", "offline:minilm-l6"
EMOJI_MODEL = "offline:e5-emoji-clip"
INTRO = ("Are the concepts a model learns shared units? This report tests four claims on real models that ship "
         "offline: multilingual-e5-small (text), all-MiniLM-L6-v2 (text) and offline:e5-emoji-clip (e5-small's "
         "text tower with an image tower this project trained on emoji renders; a small teaching model, see "
         "data/models/README.md). Each verdict states its statistic, its null and the p-value. A permutation "
         "p-value is at least 1/(K+1), so K bounds how small it can be.")


@dataclass(frozen=True)
class DemoConfig:
    """What ``mmfeatures demo`` runs (the full version takes a few minutes on 2 CPU cores)."""

    out: str = opt("reports/demo", "folder for the report (index.html), its figures and the job records")
    quick: bool = opt(False, "about 2 minutes: 6 languages, fewer permutations (what the tests run)")
    device: str = opt("auto", "auto, cpu or cuda")
    n_perm: int | None = opt(None, "permutations per null (default 99, quick 19)")
    seed: int = opt(0, "seed of the SAEs and the nulls")
    store_dir: str | None = opt(None, "root folder for activation stores (default: the user cache)")
    progress: bool = opt(True, "show progress bars")

    def __post_init__(self):
        from mmfeatures.errors import InputError

        if self.n_perm is not None and self.n_perm < 1:
            raise InputError(f"n_perm = {self.n_perm}; use at least 1 (19 or more for p <= 0.05), or leave it unset")
        resolve_device(self.device)

    @property
    def languages(self) -> tuple[str, ...]:
        return QUICK_LANGUAGES if self.quick else ()

    @property
    def permutations(self) -> int:
        return self.n_perm if self.n_perm is not None else (19 if self.quick else 99)


@dataclass(frozen=True)
class Stage:
    name: str
    seconds: float
    reused: bool
    record: Record


@dataclass(frozen=True)
class DemoResult:
    index: Path
    """The report page."""
    stages: tuple[Stage, ...]
    seconds: float

    @property
    def verdicts(self) -> dict[str, bool | None]:
        return {s.record.claim: s.record.supported for s in self.stages if s.record.claim}


def _alignment(rows_nd: torch.Tensor, concept_n: list[str], lang_n: list[str]) -> tuple[float, float]:
    x = rows_nd - rows_nd.mean(0, keepdim=True)  # centre: e5 states share a large common direction
    x = torch.nn.functional.normalize(x, dim=-1)
    cos = x @ x.T
    same, other = [], []
    for i in range(len(concept_n)):
        for j in range(len(concept_n)):
            if lang_n[i] == lang_n[j]:
                continue
            (same if concept_n[i] == concept_n[j] else other).append(float(cos[i, j]))
    return sum(same) / len(same), sum(other) / len(other)


def alignment_by_layer(out: Path, cfg: DemoConfig, layers: tuple[int, ...] = (0, 3, 6, 9, 11)) -> Record:
    """Where in e5-small do translations meet? Centred cosine of mean-pooled states, layer by layer."""
    from mmfeatures import plotting

    job = {"model": E5, "layers": list(layers), "sentences": SENTENCES}
    if done := reusable(out, "alignment", job):
        return done
    timer = Timer()
    examples = [Example(f"{concept}/{lang}", Modality.TEXT, text, concept, lang)
                for concept, by_lang in SENTENCES.items() for lang, text in by_lang.items()]
    sites = [f"text.layer.{i}.resid" for i in layers]
    result = extract(E5, examples, sites, pooling="mean", store_dir=cfg.store_dir, device=cfg.device,
                     progress=False)
    rows = []
    for layer, site in zip(layers, sites, strict=True):
        store = result.stores[site]
        prov = store.provenance()
        same, other = _alignment(torch.from_numpy(store.array()), prov.column("concept"), prov.column("language"))
        rows.append([layer, round(same, 3), round(other, 3)])
    fig = plotting.curves({"same sentence, other language": {r[0]: r[1] for r in rows},
                           "other sentence, other language": {r[0]: r[2] for r in rows}},
                          xlabel="layer", ylabel="centred cosine", title="Translations converge with depth (e5-small)")
    save_figure(fig, out / "alignment.png")
    return Record("alignment", "Where languages meet: e5-small layer by layer", job,
                  tables=(table(f"Mean centred cosine between {len(examples)} sentences "
                                f"({len(SENTENCES)} sentences x {len(examples) // len(SENTENCES)} languages), "
                                "different-language pairs only", ["layer", "same sentence", "other sentence"], rows),),
                  figures=({"file": "alignment.png", "caption": "Mean-pooled states of a sentence and its "
                            "translations grow alike with depth, while different sentences stay apart."},),
                  seconds=timer.seconds, environment=environment()).save(out)


def heldout_pattern() -> str:
    """A regular expression for the emoji held out of the image tower's training (from its card)."""
    from mmfeatures.encoders.emojiclip import default_weights

    card = json.loads(default_weights().with_suffix(".json").read_text())
    return f"^emoji/({'|'.join(str(i) for i in card['heldout_emoji'])})/"


def _stages(cfg: DemoConfig):
    """(folder name, job runner) in order; a runner takes the records finished so far."""
    langs, n, device = cfg.languages, cfg.permutations, resolve_device(cfg.device)
    common = dict(store_dir=cfg.store_dir, device=device, progress=cfg.progress)

    def extract(model, **kw):
        return lambda out, _: run_extract(ExtractJob(model=model, languages=langs, out=str(out), **common, **kw))

    def train(store_stage, site, seed=cfg.seed, **kw):
        return lambda out, done: run_train(TrainJob(store=done[store_stage].outputs[f"store {site}"], seed=seed,
                                                    device=device, progress=cfg.progress, out=str(out), **kw))

    def match(a, b):
        return lambda out, done: run_match(MatchJob(
            store_a=done[a[0]].outputs["store text.layer.8.resid"], store_b=done[b[0]].outputs[f"store {b[2]}"],
            sae_a=done[a[1]].outputs["sae"], sae_b=done[b[1]].outputs["sae"], n_perm=n, seed=cfg.seed, out=str(out)))

    def crossmodal(ids, label):
        return lambda out, done: run_analyze(AnalyzeJob(
            stores=tuple(done["04-extract-emoji"].outputs[f"store {s}"] for s in emoji_sites), ids=ids, label=label,
            sae=done["05-train-emoji"].outputs["sae"], kind="crossmodal", n_perm=n, seed=cfg.seed, out=str(out)))

    # B's SAEs use another seed than A's, so that no match can come from a shared initialisation
    e5_site, minilm_site = "text.layer.8.resid", "text.layer.4.resid"
    emoji_sites = ("image.embed", "text.embed")
    return [
        ("00-alignment", lambda out, _: alignment_by_layer(out, cfg)),
        ("01-extract-e5", extract(E5, sites=(e5_site,))),
        ("02-train-e5", train("01-extract-e5", e5_site)),
        ("03-crosslingual", lambda out, done: run_analyze(AnalyzeJob(
            stores=(done["01-extract-e5"].outputs[f"store {e5_site}"],), sae=done["02-train-e5"].outputs["sae"],
            n_perm=n, seed=cfg.seed, out=str(out)))),
        ("04-extract-emoji", extract(EMOJI_MODEL, data="emoji", sites=emoji_sites, pooling="mean")),
        ("05-train-emoji", train("04-extract-emoji", "text.embed", width=1024, k=8, epochs=30, batch_size=1024)),
        ("06-crossmodal", crossmodal(None, "")),
        ("07-crossmodal-heldout", crossmodal(heldout_pattern(), "emoji the image tower never saw")),
        ("08-extract-e5-enpt", extract(E5_RELATED, sites=(e5_site,))),
        ("09-train-e5-enpt", train("08-extract-e5-enpt", e5_site, seed=cfg.seed + 1)),
        ("10-match-related", match(("01-extract-e5", "02-train-e5"), ("08-extract-e5-enpt", "09-train-e5-enpt", e5_site))),
        ("11-extract-minilm", extract(UNRELATED, sites=(minilm_site,))),
        ("12-train-minilm", train("11-extract-minilm", minilm_site, seed=cfg.seed + 1)),
        ("13-match-unrelated", match(("01-extract-e5", "02-train-e5"),
                                     ("11-extract-minilm", "12-train-minilm", minilm_site))),
        ("14-steer", lambda out, done: run_steer(SteerJob(sae=done["02-train-e5"].outputs["sae"], n_controls=n,
                                                          seed=cfg.seed, out=str(out)))),
    ]


def run_demo(cfg: DemoConfig = DemoConfig()) -> DemoResult:
    """Run every stage (reusing finished ones), then render the report."""
    from tqdm.auto import tqdm

    timer = Timer()
    root = check_writable(cfg.out)
    stages = _stages(cfg)
    run = {"title": f"mmfeatures demo{' (quick)' if cfg.quick else ''}: are features shared across languages, "
                    "modalities and models?", "intro": INTRO, "config": config_dict(cfg),
           "languages": list(cfg.languages) or "all 16", "n_perm": cfg.permutations,
           "device": resolve_device(cfg.device), "environment": environment()}
    stale = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")} - {s[0] for s in stages}
    if stale:
        raise FileExistsError(f"{root} holds folders this demo does not write ({', '.join(sorted(stale))}); "
                              "choose an empty --out or delete them, so the report shows only this run")
    write_text_atomic(root / RUN, json.dumps(run, indent=1, ensure_ascii=False))
    done: dict[str, Record] = {}
    results = []
    bar = tqdm(stages, desc="demo", unit="stage", disable=not cfg.progress)
    for name, runner in bar:
        bar.set_postfix_str(name)
        folder = root / name
        folder.mkdir(exist_ok=True)
        before = Record.load(folder)
        stage_timer = Timer()
        record = runner(folder, done)
        done[name] = record
        reused = before is not None and before == record
        results.append(Stage(name, stage_timer.seconds, reused, record))
    index = render_report(ReportJob(str(root)))
    return DemoResult(index, tuple(results), timer.seconds)
