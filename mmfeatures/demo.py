"""The main job on the offline default. Issue-by-issue it grows into the full report; today it
extracts real multilingual activations and measures cross-lingual alignment per layer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from mmfeatures.activations import Example, extract
from mmfeatures.encoders import load_encoder
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


@dataclass(frozen=True)
class DemoConfig:
    """What `mmfeatures demo` runs."""

    model: str = "offline:e5-small"
    """Registry name of the text encoder."""
    layers: tuple[int, ...] = (0, 3, 6, 9, 11)
    """Residual-stream layers to extract (plus the model's own embedding)."""
    device: str = "auto"
    """'auto', 'cpu' or 'cuda'."""
    store_dir: str | None = None
    """Where activation stores go (default: the user cache)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self):
        if not self.layers or any(i < 0 for i in self.layers):
            raise ValueError(f"layers must be non-negative layer indices, got {self.layers!r}")


@dataclass(frozen=True)
class SiteSummary:
    """Cross-lingual alignment of one site's mean-pooled (content tokens only) activations."""

    site: str
    d: int
    mean_norm: float
    same_concept_cos: float
    """Mean centred cosine between translations of the same sentence (different languages)."""
    other_concept_cos: float
    """Mean centred cosine between sentences of different concepts (different languages)."""


@dataclass(frozen=True)
class DemoResult:
    model: str
    device: str
    languages: tuple[str, ...]
    n_texts: int
    n_tokens: int
    """Content tokens (specials excluded) over all sentences."""
    seconds: float
    sites: list[SiteSummary] = field(default_factory=list)
    store_root: str = ""
    """Folder holding this model's activation stores."""
    reused: bool = False
    """True when the stores came from an earlier run."""


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


def run_demo(cfg: DemoConfig = DemoConfig()) -> DemoResult:
    """Extract per-layer activations for the built-in sentences into stores (reused on a second
    run) and summarise how translations align at each layer."""
    start = time.perf_counter()
    encoder = load_encoder(cfg.model, device=cfg.device)
    n_layers = encoder.tower(Modality.TEXT).n_layers
    bad = [i for i in cfg.layers if i >= n_layers]
    if bad:
        raise ValueError(f"{cfg.model} has layers 0..{n_layers - 1}; drop {bad} from layers")
    examples = [Example(f"{concept}/{lang}", Modality.TEXT, text, concept, lang)
                for concept, by_lang in SENTENCES.items() for lang, text in by_lang.items()]
    sites = [f"text.layer.{i}.resid" for i in cfg.layers] + ["text.embed"]
    result = extract(encoder, examples, sites, pooling="mean", store_dir=cfg.store_dir, progress=cfg.progress)
    summaries = []
    for site in sites:
        store = result.stores[site]
        pooled = torch.from_numpy(store.array())
        prov = store.provenance()
        same, other = _alignment(pooled, prov.column("concept"), prov.column("language"))
        summaries.append(SiteSummary(site, store.d, float(pooled.norm(dim=1).mean()), same, other))
    tokens = extract(encoder, examples, [sites[0]], pooling="none", store_dir=cfg.store_dir, progress=False)
    return DemoResult(cfg.model, str(encoder.device), tuple(SENTENCES["dog_sleeping"]), len(examples),
                      tokens.stores[sites[0]].n_rows, time.perf_counter() - start, summaries,
                      str(result.stores[sites[0]].path.parent), result.reused_shards > 0)
