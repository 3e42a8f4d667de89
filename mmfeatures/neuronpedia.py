"""Features and their activations in Neuronpedia's export layout, for upload or for Neuronpedia's own importer.

    <out>/<model id>/<source id>/            source id = "<layer>-<source set>", as Neuronpedia names it
        release.jsonl, model.jsonl, sourceset.jsonl, source.jsonl      one JSON object each
        features/batch-0.jsonl.gz            one feature per line: index, maxActApprox, frac_nonzero, the
                                             activation histogram (freq_hist_data_bar_heights / _values)
        activations/batch-0.jsonl.gz         one example per line: tokens, values, maxValue, maxValueTokenIndex,
                                             and for quantile-band examples binMin / binMax

The records carry the fields Neuronpedia's ``neuronpedia_utils`` data models declare (tests/test_neuronpedia.py
lists them). What an encoder's dashboard has and Neuronpedia's layout does not: no logits (``pos_str``/``neg_str``
stay empty: an encoder has no unembedding), and for image sites no pictures: a pooled picture is one token
``<image:ID>`` (its example id) and a per-patch store's rows are tokens ``<patch N>``; the picture itself is in the
mmfeatures dashboard, not in the export (docs/dashboards.md).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from mmfeatures.analysis.dashboard import FeatureView, Shown
from mmfeatures.disk import write_text_atomic

CREATOR = "mmfeatures"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-").lower()


def _layer(site: str) -> str:
    found = re.search(r"\.layer\.(\d+)\.", site)
    return found.group(1) if found else site.split(".")[-1]          # 'embed' for an embedding site


def _tokens(shown: Shown) -> tuple[list[str], list[float]]:
    if shown.modality == "image":
        if len(shown.values) > 1:
            return [f"<patch {i}>" for i in range(len(shown.values))], list(shown.values)
        return [f"<image:{shown.id}>"], [shown.activation]
    if shown.tokens:
        return list(shown.tokens), list(shown.values)
    return [shown.text if shown.text is not None else shown.id], [shown.activation]


def _activation(shown: Shown, view: FeatureView, model_id: str, source_id: str, band: tuple[float, float] | None,
                created: str) -> dict:
    tokens, values = _tokens(shown)
    best = max(range(len(values)), key=values.__getitem__)
    ident = hashlib.sha256(f"{source_id}|{view.feature}|{shown.id}".encode()).hexdigest()[:25]
    return {"id": ident, "tokens": tokens, "index": str(view.feature), "layer": source_id, "modelId": model_id,
            "maxValue": values[best], "maxValueTokenIndex": best, "minValue": min(values), "values": values,
            "creatorId": CREATOR, "dataSource": shown.id, "dataIndex": str(shown.example), "dfaValues": [],
            "dfaTargetIndex": None, "dfaMaxValue": None, "createdAt": created, "lossValues": [],
            "logitContributions": None, "binMin": band[0] if band else None, "binMax": band[1] if band else None,
            "binContains": None, "qualifyingTokenIndex": best}


def _feature(view: FeatureView, model_id: str, source_id: str, created: str) -> dict:
    counts, edges = view.histogram
    centres = [(edges[i] + edges[i + 1]) / 2 for i in range(len(counts))]
    return {"modelId": model_id, "layer": source_id, "index": str(view.feature), "creatorId": CREATOR,
            "createdAt": created, "maxActApprox": view.max_activation, "hasVector": False, "vector": [],
            "vectorLabel": None, "vectorDefaultSteerStrength": None, "hookName": None,
            "topkCosSimIndices": [], "topkCosSimValues": [], "neuron_alignment_indices": [],
            "neuron_alignment_values": [], "neuron_alignment_l1": [], "correlated_neurons_indices": [],
            "correlated_neurons_pearson": [], "correlated_neurons_l1": [],
            "correlated_features_indices": [p.feature for p in view.partners],
            "correlated_features_pearson": [p.r for p in view.partners], "correlated_features_l1": [],
            "neg_str": [], "neg_values": [], "pos_str": [], "pos_values": [], "frac_nonzero": view.frequency,
            "freq_hist_data_bar_heights": list(counts), "freq_hist_data_bar_values": centres,
            "logits_hist_data_bar_heights": [], "logits_hist_data_bar_values": [], "decoder_weights_dist": []}


def _gzip_lines(path: Path, records: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(gzip.compress("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode(),
                                  compresslevel=5, mtime=0))
    tmp.replace(path)


def write_export(views: Mapping[int, Sequence[FeatureView]], out: str | Path, *, sae, store,
                 model_id: str | None = None, source_set: str | None = None, release: str = "mmfeatures",
                 description: str = "") -> Path:
    """Write the first store's view of every feature in Neuronpedia's layout under ``out``; returns the source's
    folder. ``model_id`` defaults to the store's model as a slug, ``source_set`` to '<arch>-<width>'."""
    created = datetime.now(timezone.utc).isoformat()
    meta = getattr(sae, "metadata", {}) or {}
    model_id = model_id or _slug(store.config.model.split(":")[-1])
    source_set = source_set or _slug(f"mmf-{meta.get('mmfeatures_arch', type(sae).__name__)}-{sae.d_sae}")
    source_id = f"{_layer(store.config.site)}-{source_set}"
    folder = Path(out) / model_id / source_id
    folder.mkdir(parents=True, exist_ok=True)
    summary = description or f"mmfeatures SAE ({sae.d_sae} latents) on {store.config.model} {store.config.site}"
    heads = {
        "release": {"name": release, "description": summary, "descriptionShort": summary, "creatorName": CREATOR,
                    "creatorNameShort": CREATOR, "creatorId": CREATOR, "visibility": "PUBLIC", "isNewUi": False,
                    "featured": False, "urls": [], "creatorEmail": None, "defaultSourceSetName": source_set,
                    "defaultSourceId": source_id, "defaultUmapSourceIds": [], "createdAt": created},
        "model": {"id": model_id, "instruct": False, "creatorId": CREATOR, "displayNameShort": model_id,
                  "displayName": store.config.model, "tlensId": None, "dimension": int(store.d),
                  "visibility": "PUBLIC", "defaultSourceSetName": source_set, "defaultSourceId": source_id,
                  "inferenceEnabled": False, "layers": 0, "neuronsPerLayer": int(store.d), "createdAt": created,
                  "owner": CREATOR, "updatedAt": created, "website": None},
        "sourceset": {"modelId": model_id, "name": source_set, "creatorId": CREATOR, "hasDashboards": True,
                      "visibility": "PUBLIC", "description": summary, "type": store.config.site.split(".")[-1],
                      "creatorName": CREATOR, "urls": [], "creatorEmail": None, "releaseName": release,
                      "defaultOfModelId": None, "defaultRange": 1, "defaultShowBreaks": True, "showDfa": False,
                      "showCorrelated": False, "showHeadAttribution": False, "showUmap": False,
                      "createdAt": created},
        "source": {"id": source_id, "modelId": model_id, "setName": source_set, "creatorId": CREATOR,
                   "hasDashboards": True, "inferenceEnabled": False, "inferenceHosts": [], "saelensConfig": None,
                   "saelensRelease": None, "saelensSaeId": None, "hfRepoId": None, "hfFolderId": None,
                   "visibility": "PUBLIC", "defaultOfModelId": None, "hasUmap": False, "hasUmapLogSparsity": False,
                   "hasUmapClusters": False, "num_prompts": store.config.n_examples, "num_tokens_in_prompt": None,
                   "dataset": store.config.summary, "notes": f"mmfeatures store {store.key}", "createdAt": created},
    }
    for name, record in heads.items():
        write_text_atomic(folder / f"{name}.jsonl", json.dumps(record, ensure_ascii=False) + "\n")
    features, activations = [], []
    for per_store in views.values():
        view = per_store[0]
        features.append(_feature(view, model_id, source_id, created))
        seen = set()
        for band, shown in [(None, s) for s in view.top] + [((b.low, b.high), s) for b in view.bands
                                                             for s in b.examples]:
            if shown.id not in seen:
                seen.add(shown.id)
                activations.append(_activation(shown, view, model_id, source_id, band, created))
    _gzip_lines(folder / "features" / "batch-0.jsonl.gz", features)
    _gzip_lines(folder / "activations" / "batch-0.jsonl.gz", activations)
    return folder
