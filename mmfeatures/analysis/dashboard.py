"""What a feature dashboard shows, computed from a store and its latent set (``encode_store``, encoded once and
reused); ``mmfeatures.dashboards`` draws it as HTML and ``mmfeatures.neuronpedia`` writes it for Neuronpedia.

For each chosen feature: its activation on every row it fires on (streamed from the latent set's sparse shards,
so a million-row store costs only the rows where the feature fires), the firing frequency and a histogram of the
non-zero activations, the mean activation per language and per concept (examples scored by their largest row),
the top examples, examples drawn from quantile bands of the firing examples (not only the top few), the top
examples of each language, and, given a second model's or SAE's latent set over the same examples, the partner
latents whose example activations correlate best with the feature (``best_partners``), with their own top examples.

>>> views = feature_views(store, encode_store(store, sae), [12, 40])            # doctest: +SKIP
>>> views[0].frequency, views[0].top[0].tokens                                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mmfeatures.errors import InputError

BANDS = 4
"""Quantile bands of the firing examples' activations a dashboard draws examples from."""


@dataclass(frozen=True)
class Shown:
    """One example as a dashboard shows it: its largest activation and, for a per-token store, every token with
    the feature's activation on it."""

    example: int
    """Index in the store's examples table."""
    id: str
    modality: str
    language: str | None
    concept: str | None
    activation: float
    tokens: tuple[str, ...]
    """The example's stored tokens (empty for a pooled store)."""
    values: tuple[float, ...]
    """The feature's activation on each token (one value, the pooled row's, for a pooled store)."""
    text: str | None
    """The example's text when the caller gave texts (a pooled store keeps none)."""
    source: str | None
    """An image example's file."""


@dataclass(frozen=True)
class Partner:
    """A latent of another SAE or model whose example activations correlate with the feature."""

    name: str
    feature: int
    r: float
    top: tuple[Shown, ...]


@dataclass(frozen=True)
class Group:
    """The feature on one language or concept: mean activation over its examples, the share it fires on."""

    name: str
    mean: float
    firing: float
    examples: int


@dataclass(frozen=True)
class Band:
    """Examples drawn at random from one quantile band of the firing examples' activations."""

    low: float
    high: float
    quantiles: tuple[float, float]
    examples: tuple[Shown, ...]

    @property
    def label(self) -> str:
        return (f"quantile {self.quantiles[0]:.2f}-{self.quantiles[1]:.2f} of firing examples (activation "
                f"{self.low:.3g} to {self.high:.3g})")


@dataclass(frozen=True)
class FeatureView:
    feature: int
    site: str
    model: str
    rows: int
    firing_rows: int
    examples: int
    firing_examples: int
    max_activation: float
    histogram: tuple[tuple[int, ...], tuple[float, ...]]
    """Counts and bin edges of the non-zero row activations."""
    by_language: tuple[Group, ...]
    by_concept: tuple[Group, ...]
    """Concepts by mean activation, highest first."""
    top: tuple[Shown, ...]
    bands: tuple[Band, ...]
    """Highest band first."""
    per_language: tuple[tuple[str, tuple[Shown, ...]], ...]
    partners: tuple[Partner, ...] = ()

    @property
    def frequency(self) -> float:
        """Fraction of the store's rows the feature fires on."""
        return self.firing_rows / max(self.rows, 1)

    @property
    def top_concept(self) -> str | None:
        return self.by_concept[0].name if self.by_concept and self.by_concept[0].mean > 0 else None

    @property
    def top_language(self) -> str | None:
        best = max(self.by_language, key=lambda g: g.mean, default=None)
        return best.name if best is not None and best.mean > 0 else None


def check_features(features: Sequence[int], width: int) -> tuple[int, ...]:
    """The features as ints, or InputError naming any outside 0..width-1 (checked before any work)."""
    out = tuple(dict.fromkeys(int(f) for f in features))
    bad = [f for f in out if not 0 <= f < width]
    if not out or bad:
        raise InputError(f"features {bad or list(out)} are not latents of this SAE (width {width}: features 0 to "
                         f"{width - 1}); give feature ids below {width}, e.g. --features 0,{min(12, width - 1)}")
    return out


def feature_columns(latents, features: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """feature -> (rows where it fires, its activation there), streamed over the latent set's shards."""
    import torch

    wanted = torch.tensor(sorted(set(features)), dtype=torch.int64)
    found: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {int(f): [] for f in wanted}
    start = 0
    for row_ptr, index, value, example in latents.iter_shards():
        hit = torch.isin(index.long(), wanted)
        if bool(hit.any()):
            rows = torch.repeat_interleave(torch.arange(len(example)), row_ptr.diff())[hit] + start
            cols, vals = index[hit].long(), value[hit].float()
            for f in cols.unique().tolist():
                keep = cols == f
                found[f].append((rows[keep].numpy(), vals[keep].numpy()))
        start += len(example)
    return {f: (np.concatenate([r for r, _ in parts]) if parts else np.zeros(0, np.int64),
                np.concatenate([v for _, v in parts]) if parts else np.zeros(0, np.float32))
            for f, parts in found.items()}


class _Rows:
    """The store's rows grouped by example (read once for every feature)."""

    def __init__(self, store, texts: Mapping[str, str] | None):
        prov = store.provenance()
        self.examples = prov.examples
        self.example = prov.example_index
        self.tokens = prov.token
        self.per_token = store.config.pooling == "none"
        order = np.argsort(self.example, kind="stable")
        self.order = order
        self.starts = np.searchsorted(self.example[order], np.arange(len(self.examples) + 1))
        self.texts = texts or {}
        self.n_rows = len(self.example)

    def column(self, name: str) -> np.ndarray:
        """(examples,) one field of the examples table, as objects ('' where it is empty)."""
        return np.array([e.get(name) or "" for e in self.examples], dtype=object)

    def rows_of(self, example: int) -> np.ndarray:
        return self.order[self.starts[example]:self.starts[example + 1]]

    def show(self, example: int, value_of_row: Mapping[int, float], activation: float) -> Shown:
        e = self.examples[example]
        rows = self.rows_of(example)
        tokens = tuple(self.tokens[r] for r in rows) if self.per_token else ()
        values = tuple(float(value_of_row.get(int(r), 0.0)) for r in rows)
        return Shown(example, e["id"], e["modality"], e.get("language"), e.get("concept"), float(activation),
                     tokens, values, self.texts.get(e["id"]), e.get("source"))


def _example_scores(rows: _Rows, fired: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(examples,) the feature's largest activation on each example's rows (0 where it never fires)."""
    score = np.zeros(len(rows.examples), np.float32)
    np.maximum.at(score, rows.example[fired], values)
    return score


def _groups(score: np.ndarray, names: np.ndarray) -> list[Group]:
    """One Group per distinct non-empty name, in order of first appearance."""
    named = np.flatnonzero([bool(n) for n in names])
    if not len(named):
        return []
    unique, first, inverse = np.unique(names[named].astype(str), return_index=True, return_inverse=True)
    n = np.bincount(inverse, minlength=len(unique))
    total = np.bincount(inverse, weights=score[named], minlength=len(unique))
    fires = np.bincount(inverse, weights=(score[named] > 0), minlength=len(unique))
    return [Group(str(unique[g]), float(total[g] / n[g]), float(fires[g] / n[g]), int(n[g])) for g in np.argsort(first)]


def _view(rows: _Rows, store, feature: int, fired: np.ndarray, values: np.ndarray, *, n_top: int, n_band: int,
          n_language: int, seed: int) -> FeatureView:
    score = _example_scores(rows, fired, values)
    value_of_row = dict(zip(fired.tolist(), values.tolist(), strict=True))
    show = lambda i: rows.show(int(i), value_of_row, score[i])  # noqa: E731
    ranked = np.argsort(-score, kind="stable")
    firing = ranked[score[ranked] > 0]
    rng = np.random.default_rng(seed + feature)
    bands = []
    if len(firing) and n_band:
        edges = np.quantile(score[firing], np.linspace(0, 1, BANDS + 1))
        for b in range(BANDS - 1, -1, -1):
            lo, hi = edges[b], edges[b + 1]
            inside = firing[(score[firing] >= lo) & ((score[firing] <= hi) if b == BANDS - 1 else (score[firing] < hi))]
            chosen = np.sort(rng.choice(inside, min(n_band, len(inside)), replace=False)) if len(inside) else inside
            chosen = chosen[np.argsort(-score[chosen], kind="stable")]
            if len(chosen):
                bands.append(Band(float(lo), float(hi), (b / BANDS, (b + 1) / BANDS), tuple(show(i) for i in chosen)))
    languages, concepts = rows.column("language"), rows.column("concept")
    per_language = []
    for lang in dict.fromkeys(x for x in languages[firing] if x) if n_language else ():
        per_language.append((lang, tuple(show(i) for i in firing[languages[firing] == lang][:n_language])))
    counts, edges = np.histogram(values, bins=30) if len(values) else (np.zeros(0, int), np.zeros(0))
    return FeatureView(
        feature, store.config.site, store.config.model, rows.n_rows, len(fired), len(rows.examples), len(firing),
        float(values.max()) if len(values) else 0.0, (tuple(int(c) for c in counts), tuple(float(e) for e in edges)),
        tuple(_groups(score, languages)),
        tuple(sorted(_groups(score, concepts), key=lambda g: -g.mean)),
        tuple(show(i) for i in firing[:n_top]), tuple(bands), tuple(per_language))


def feature_views(store, latents, features: Sequence[int], *, texts: Mapping[str, str] | None = None,
                  n_top: int = 12, n_band: int = 4, n_language: int = 3, seed: int = 0) -> list[FeatureView]:
    """One ``FeatureView`` per feature, from ``store`` and its ``latents`` (``encode_store(store, sae)``).
    ``texts`` (example id -> text) shows the sentences of a pooled store, which keeps no tokens."""
    latents.check(store, None)
    features = check_features(features, latents.config.d_sae)
    rows = _Rows(store, texts)
    columns = feature_columns(latents, features)
    return [_view(rows, store, f, *columns[f], n_top=n_top, n_band=n_band, n_language=n_language, seed=seed)
            for f in features]


def with_partners(views: Sequence[FeatureView], store_a, latents_a, store_b, latents_b, *, name: str, m: int = 3,
                  n_top: int = 5, texts: Mapping[str, str] | None = None) -> list[FeatureView]:
    """``views`` with each feature's ``m`` best partners among ``latents_b`` (another SAE on the same examples, or
    another model's): Pearson r of the examples' largest activations, over the examples both stores hold (matched
    by example id), with each partner's top examples in ``store_b``."""
    from dataclasses import replace

    from mmfeatures.analysis.partners import best_partners

    features = [v.feature for v in views]
    rows_a = _Rows(store_a, None)                 # A: only the views' features, from their sparse columns
    columns = feature_columns(latents_a, features)
    za = np.stack([_example_scores(rows_a, *columns[f]) for f in features], 1)
    has_rows = np.flatnonzero(np.diff(rows_a.starts) > 0)
    zb, ib = latents_b.pooled("max")
    ids_a = {store_a.examples[i]["id"]: i for i in has_rows}
    ids_b = {store_b.examples[i]["id"]: j for j, i in enumerate(ib)}
    shared = [i for i in ids_a if i in ids_b]
    if len(shared) < 3:
        raise InputError(f"the two stores share {len(shared)} example ids; partners are correlated over the same "
                         "examples: extract both from the same data")
    a = za[[ids_a[i] for i in shared]]
    b = zb[[ids_b[i] for i in shared]]
    found = best_partners(a, b, m=min(m, b.shape[1]))
    partner_features = sorted({int(j) for j in found.index.ravel()})
    partner_views = {v.feature: v for v in feature_views(store_b, latents_b, partner_features, texts=texts,
                                                         n_top=n_top, n_band=0, n_language=0)}
    out = []
    for k, view in enumerate(views):
        partners = tuple(Partner(name, int(j), float(r), partner_views[int(j)].top)
                         for j, r in zip(found.index[k], found.values[k], strict=True) if np.isfinite(r))
        out.append(replace(view, partners=partners if found.alive_a[k] else ()))
    return out


def summary_row(view: FeatureView) -> dict[str, object]:
    """What an index lists for a feature."""
    return {"feature": view.feature, "frequency": view.frequency, "max_activation": view.max_activation,
            "top_concept": view.top_concept, "top_language": view.top_language,
            "languages": [g.name for g in view.by_language if g.firing > 0],
            "concepts": [g.name for g in view.by_concept[:5] if g.mean > 0]}
