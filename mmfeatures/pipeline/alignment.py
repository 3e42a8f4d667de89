"""The alignment step: where in a text encoder do translations meet? Centred cosine of mean-pooled states,
layer by layer, between a sentence and its translations against other sentences in other languages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mmfeatures.pipeline.record import Artifact, Record, opt, run_step, save_figure, table

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




@dataclass(frozen=True)
class AlignmentStep:
    """Mean-pooled states of ``SENTENCES`` at each of ``layers``: the mean centred cosine of a sentence with
    its translations, against other sentences in other languages."""

    model: str = opt("offline:e5-small", "registry name of a text encoder")
    layers: tuple[int, ...] = opt((0, 3, 6, 9, 11), "layers to compare (their resid sites)")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N", volatile=True)
    store_dir: str | None = opt(None, "root folder for stores (default: the user cache)", volatile=True)
    out: str | None = opt("runs/alignment", "folder for result.json and the figure", volatile=True)
    progress: bool = opt(True, "show progress bars", volatile=True)

    def __post_init__(self):
        from mmfeatures.encoders import resolve_device
        from mmfeatures.errors import InputError

        resolve_device(self.device)
        if not self.layers or min(self.layers) < 0:
            raise InputError(f"layers {self.layers!r}; give layer numbers >= 0, e.g. 0,3,6,9,11")


def centred_alignment(rows_nd: torch.Tensor, concept_n: list[str], lang_n: list[str]) -> tuple[float, float]:
    """(same sentence, other sentence) mean cosine over pairs in different languages, after centring."""
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


def sentence_examples():
    """``SENTENCES`` as Examples (id '<concept>/<language>')."""
    from mmfeatures.types import Example, Modality

    return [Example(f"{concept}/{lang}", Modality.TEXT, text, concept, lang)
            for concept, by_lang in SENTENCES.items() for lang, text in by_lang.items()]


def run_alignment(step: AlignmentStep) -> Record:
    return run_step("alignment", step, lambda out: _alignment(step, out))


def _alignment(step: AlignmentStep, out: Path | None) -> Record:
    from mmfeatures import plotting
    from mmfeatures.activations import extract

    examples = sentence_examples()
    sites = [f"text.layer.{i}.resid" for i in step.layers]
    result = extract(step.model, examples, sites, pooling="mean", store_dir=step.store_dir, device=step.device,
                     progress=step.progress)
    rows = []
    for layer, site in zip(step.layers, sites, strict=True):
        store = result.stores[site]
        prov = store.provenance()
        same, other = centred_alignment(torch.from_numpy(store.array()), prov.column("concept"),
                                        prov.column("language"))
        rows.append([layer, round(same, 3), round(other, 3)])
    fig = plotting.curves({"same sentence, other language": {r[0]: r[1] for r in rows},
                               "other sentence, other language": {r[0]: r[2] for r in rows}},
                          xlabel="layer", ylabel="centred cosine",
                          title=f"Centred cosine of translations and of other sentences by layer ({step.model})")
    figures = ({"file": "alignment.png", "caption": "Mean-pooled states of a sentence and its translations, "
                                                    "and of different sentences, layer by layer."},) \
        if save_figure(fig, out, "alignment.png") else ()
    return Record("alignment", f"Where languages meet: {step.model} layer by layer", {},
                  tables=(table(f"Mean centred cosine between {len(examples)} sentences "
                                f"({len(SENTENCES)} sentences x {len(examples) // len(SENTENCES)} languages), "
                                "different-language pairs only", ["layer", "same sentence", "other sentence"], rows),),
                  figures=figures,
                  artifacts=tuple(Artifact("store", str(s.path), s.key, site) for site, s in result.stores.items()))
