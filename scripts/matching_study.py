"""The matching study behind docs/results/matching.md. Every number on that page comes from here.

    .venv/bin/python scripts/matching_study.py            # compute what is missing, then write the page
    .venv/bin/python scripts/matching_study.py --report   # page only, from matching.json

The rows are English paragraphs of LibreOffice's help from the held-out split (``DATA``): text that none of the
shipped SAEs (data/saes) was trained on, and English, because MiniLM is an English model.

1. Universality across SAE seeds: the shipped e5-small layer-8 SAEs of seeds 0 and 1 (same model, same training
   data, another initialisation and data order). Each feature's best correlation with the other SAE's features,
   per token and per paragraph (max-pooled, the row unit of the cross-model features below), against a
   rows-shuffled null.
2. Across models, neurons, layer by layer (mean-pooled paragraphs, since tokenizers differ), e5-small against:
   - e5-small-enpt: e5-small's own transformer weights with a pruned vocabulary, a *positive control*;
   - MiniLM-L6, independently trained;
   - MiniLM-L6's random-init copy: the null that MiniLM must beat;
   - e5-small's random-init copy: what the architecture and tokenizer alone give.
   Median best |r| (a neuron and its sign flip are one direction), linear CKA, SVCCA and RSA, each against a
   rows-shuffled null.
3. Across models, SAE features (the shipped SAEs, max-pooled per paragraph): e5-small layer 8 against MiniLM
   layer 4 and against MiniLM's random-init copy (its own shipped SAE). Linear CKA of the 256 best-matched pairs
   against the same selection redone on shuffled rows (``selected_null``: random subsets ignore the selection).

Stores come from the user cache by key through the pipeline's extract step (study_steps.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from study_steps import stores  # noqa: E402

import mmfeatures as mmf  # noqa: E402
from mmfeatures.analysis import (  # noqa: E402
    Score,  # noqa: E402
    StreamingCorrelation,
    aligned_units,
    best_matched,
    check_aligned,
    decoder_cosine,
    hungarian,
    linear_cka,
    max_correlation,
    permuted_rows_null,
    rsa,
    selected_null,
    sparse_match,
    svcca,
)
from mmfeatures.analysis.labels import encode_rows, unit_activations  # noqa: E402
from mmfeatures.disk import write_text_atomic  # noqa: E402

DATA, LANGUAGES = "libreoffice-heldout:1500", ("en",)
E5, MINILM = "offline:e5-small", "offline:minilm-l6"
E5_LAYERS = [3, 7, 11]
PAIRS = {"offline:e5-small-enpt": [3, 7, 11], MINILM: [1, 3, 5], f"{MINILM}+random-init-0": [1, 3, 5],
         f"{E5}+random-init-0": [3, 7, 11]}
SEEDS = ("data:e5-small-layer8-seed0", "data:e5-small-layer8-seed1")
FEATURES = {"e5": (E5, "text.layer.8.resid", SEEDS[0]),
            "minilm": (MINILM, "text.layer.4.resid", "data:minilm-l6-layer4-seed1"),
            "minilm-random": (f"{MINILM}+random-init-0", "text.layer.4.resid",
                              "data:minilm-l6-random-init-0-layer4-seed1")}
N_PERM = 100
TOP = 256          # best-matched feature pairs for the matched-feature CKA
VERSION = "issue 19"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pooled(model: str, layers) -> dict:
    found = stores(model, tuple(f"text.layer.{layer}.resid" for layer in layers), pooling="mean", data=DATA,
                   languages=LANGUAGES)
    return {layer: found[f"text.layer.{layer}.resid"] for layer in layers}


def token_store(model: str, site: str):
    return stores(model, (site,), data=DATA, languages=LANGUAGES)[site]


def null_score(name: str, measure, a: np.ndarray, b: np.ndarray, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    value = measure(a, b)
    null = np.array([measure(a, b[rng.permutation(len(b))]) for _ in range(n)])
    return Score(name, float(value), null).row()


def seeds(results: dict, save) -> None:
    if "seeds" in results:
        return
    tokens = token_store(E5, FEATURES["e5"][1])
    log(f"two shipped SAEs that differ only in seed, on {tokens.n_rows:,} held-out tokens")
    saes = [mmf.load_sae(name) for name in SEEDS]
    z = [encode_rows(sae, tokens.array()) for sae in saes]
    acc = StreamingCorrelation(z[0].shape[1], z[1].shape[1], sparse=True)
    acc.update(z[0], z[1])
    best = acc.topm(1)[0][acc.alive_a, 0].numpy()
    r = acc.correlation().numpy()
    matched = hungarian(r)
    approx = sparse_match(r, k=8)
    cos = decoder_cosine(saes[0].W_dec.detach().numpy(), saes[1].W_dec.detach().numpy(), matched)
    za, zb = aligned_units(tokens, tokens, saes[0], saes[1], per_token=False)     # per paragraph
    za, zb = za[:, za.std(0) > 0], zb[:, zb.std(0) > 0]
    paragraph = max_correlation(za, zb)
    save("seeds", {"features_median_max_r": float(np.median(best)), "features_alive": int(len(best)),
                   "features_null": permuted_rows_null(z[0], z[1], n_perm=5).tolist(),
                   "shared_fraction_0.5": float((best >= 0.5).mean()),
                   "paragraph_median_max_r": float(np.median(paragraph)),
                   "paragraph_null": permuted_rows_null(za, zb, n_perm=5).tolist(),
                   "hungarian_mean_r": matched.mean_r, "decoder_cosine_median": float(np.median(cos)),
                   "sparse_match_mean_r": approx.mean_r, "sparse_match_pairs": int(len(approx.a)),
                   "objective_gap": float(matched.r.sum() - approx.r.sum()),
                   "objective_exact": float(matched.r.sum()), "rows": int(tokens.n_rows),
                   "paragraphs": int(len(za)), "features_max_r": np.round(best, 4).tolist()})


def neurons(results: dict, save) -> None:
    e5 = pooled(E5, E5_LAYERS)
    for other, layers in PAIRS.items():
        todo = [(a, b) for a, b in zip(E5_LAYERS, layers, strict=True) if f"{other}|{a}|{b}" not in results]
        if not todo:
            continue
        theirs = pooled(other, layers)
        for a_layer, b_layer in todo:
            za, la = unit_activations(e5[a_layer])
            zb, lb = unit_activations(theirs[b_layer])
            check_aligned(la.example_id, lb.example_id)
            best = max_correlation(za, zb, absolute=True)
            save(f"{other}|{a_layer}|{b_layer}", {
                "neurons_median_max_r": float(np.median(best)),
                "neurons_null": permuted_rows_null(za, zb, n_perm=5, absolute=True).tolist(),
                "cka": null_score("linear CKA", linear_cka, za, zb, N_PERM),
                "svcca": null_score("SVCCA", svcca, za, zb, 20),
                "rsa": null_score("RSA", rsa, za, zb, 20)})


def features(results: dict, save) -> None:
    model, site, name = FEATURES["e5"]
    a_store, a_sae = token_store(model, site), mmf.load_sae(name)
    for other in ("minilm", "minilm-random"):
        key = f"features|{other}"
        if key in results:
            continue
        model, site, name = FEATURES[other]
        log(f"SAE features: e5 against {other}")
        za, zb = aligned_units(a_store, token_store(model, site), a_sae, mmf.load_sae(name), per_token=False)
        za, zb = za[:, za.std(0) > 0], zb[:, zb.std(0) > 0]       # alive units only
        best = max_correlation(za, zb)
        save(key, {"features_median_max_r": float(np.median(best)),
                   "features_null": permuted_rows_null(za, zb, n_perm=5).tolist(),
                   "features_cka_matched": selected_null(za, zb, best_matched(TOP), linear_cka,
                                                         n_perm=N_PERM).row(),
                   "features_max_r": np.round(best, 4).tolist(), "alive": [int(za.shape[1]), int(zb.shape[1])]})


def shipped_keys() -> dict[str, str]:
    """The key of each shipped SAE the study reads (a rebuilt SAE has another)."""
    from mmfeatures.pipeline.record import artifact_key_of

    return {name: artifact_key_of(name) for name in sorted({*SEEDS, *(f[2] for f in FEATURES.values())})}


def run(args) -> None:
    out = Path(args.out)
    path = out / "matching.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if results.get("_meta", {}).get("nulls") != VERSION:
        results = {}                                  # computed before issue 19: recompute everything
    dataset = pooled(E5, E5_LAYERS[:1])[E5_LAYERS[0]].config.dataset[:16]
    if results.get("_meta", {}).get("dataset") not in (None, dataset):
        results = {}                                  # the held-out paragraphs changed (de-duplicated): recompute all
    saes = shipped_keys()
    if results.get("_meta", {}).get("saes") != saes:  # the shipped SAEs were rebuilt: their parts are recomputed
        results = {k: v for k, v in results.items() if k != "seeds" and not k.startswith("features|")}

    def save(key, value):
        results[key] = value
        write_text_atomic(path, json.dumps(results, indent=0, sort_keys=True))
        log(f"{key}: " + ", ".join(f"{k} {v:.3f}" for k, v in value.items() if isinstance(v, float)))

    seeds(results, save)
    neurons(results, save)
    features(results, save)
    paragraphs = pooled(E5, E5_LAYERS[:1])[E5_LAYERS[0]]
    results["_meta"] = {"rows": int(paragraphs.n_rows), "data": DATA, "languages": list(LANGUAGES),
                        "dataset": paragraphs.config.dataset[:16], "n_perm": N_PERM,
                        "device": "cpu", "nulls": VERSION, "saes": saes}
    write_text_atomic(path, json.dumps(results, indent=0, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if not args.report:
        run(args)
    from matching_report import write_report

    write_report(Path(args.out))


if __name__ == "__main__":
    main()
