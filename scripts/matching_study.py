"""The matching study behind docs/results/matching.md. Every number on that page comes from here.

    .venv/bin/python scripts/matching_study.py            # compute what is missing, then write the page
    .venv/bin/python scripts/matching_study.py --report   # page only, from matching.json

1. Universality across SAE seeds: two TopK SAEs (3,072 latents, k = 16) on e5-small layer 11 that differ
   only in their seed. Each feature's best correlation with the other SAE's features is computed over
   every token of the built-in sentences, next to a permuted-rows null and to the neuron baselines.
2. Across models, layer by layer, on the same sentences (mean-pooled rows, since tokenizers differ):
   - e5-small against e5-small-enpt (related: the same model with a pruned vocabulary);
   - e5-small against MiniLM-L6 (unrelated);
   - e5-small against a random-init e5 (the random-init-model null).
   Measures: the median best correlation of neurons, linear CKA, SVCCA and RSA, each next to a
   permuted-rows null.

Stores and SAEs come from the user cache by key, so the SAEs of scripts/consistency_study.py (its
``sae_configs``) are reused, not retrained, and nothing here keeps a cache of its own.
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

from study_steps import sae, store  # noqa: E402

import mmfeatures as mmf  # noqa: E402
from mmfeatures.analysis import Score  # noqa: E402
from mmfeatures.analysis.labels import encode_rows, unit_activations  # noqa: E402
from mmfeatures.analysis.matching import (  # noqa: E402
    StreamingCorrelation,
    check_aligned,
    decoder_cosine,
    hungarian,
    linear_cka,
    max_correlation,
    max_match,
    permuted_rows_null,
    rsa,
    sparse_match,
    subset_null,
    svcca,
)
from mmfeatures.disk import write_text_atomic  # noqa: E402

E5 = "offline:e5-small"
PAIRS = {"offline:e5-small-enpt": [3, 7, 11], "offline:minilm-l6": [1, 3, 5], f"{E5}+random-init-0": [3, 7, 11]}
E5_LAYERS = [3, 7, 11]
N_PERM = 100


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pooled(model: str, layers):
    return {layer: store(model, f"text.layer.{layer}.resid", pooling="mean") for layer in layers}


def token_store(model: str, layer: int):
    return store(model, f"text.layer.{layer}.resid")


def null_score(name: str, measure, a: np.ndarray, b: np.ndarray, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    value = measure(a, b)
    null = np.array([measure(a, b[rng.permutation(len(b))]) for _ in range(n)])
    return Score(name, float(value), null).row()


def seeds(dataset, results: dict, save) -> None:
    if "seeds" in results:
        return
    tokens = token_store(E5, 11)
    log("two SAEs that differ only in seed (trained, or loaded by key)")
    saes = [sae(tokens, 3072, 16, 6, seed=s)[0] for s in (0, 1)]
    x = tokens.array()
    z = [encode_rows(sae, x) for sae in saes]
    acc = StreamingCorrelation(z[0].shape[1], z[1].shape[1], sparse=True)
    acc.update(z[0], z[1])
    best = acc.topm(1)[0][acc.alive_a, 0].numpy()
    null = permuted_rows_null(z[0], z[1], n_perm=5)
    neurons_e5, _ = unit_activations(pooled(E5, [11])[11])
    neurons_enpt, _ = unit_activations(pooled("offline:e5-small-enpt", [11])[11])
    neuron_best = max_correlation(neurons_e5, neurons_enpt)
    r = acc.correlation().numpy()
    matched = hungarian(r)
    approx = sparse_match(r, k=8)
    cos = decoder_cosine(saes[0].W_dec.detach().numpy(), saes[1].W_dec.detach().numpy(), matched)
    save("seeds", {"features_median_max_r": float(np.median(best)), "features_alive": int(len(best)),
                   "features_null": null.tolist(), "neurons_median_max_r": float(np.median(neuron_best)),
                   "hungarian_mean_r": matched.mean_r, "decoder_cosine_median": float(np.median(cos)),
                   "sparse_match_mean_r": approx.mean_r, "sparse_match_pairs": int(len(approx.a)),
                   "objective_gap": float(matched.r.sum() - approx.r.sum()),
                   "objective_exact": float(matched.r.sum()),
                   "rows": int(tokens.n_rows), "features_max_r": np.round(best, 4).tolist(),
                   "neurons_max_r": np.round(neuron_best, 4).tolist()})


def across(dataset, results: dict, save) -> None:
    e5_stores = pooled(E5, E5_LAYERS)
    for other, layers in PAIRS.items():
        if all(f"{other}|{a}|{b}" in results for a, b in zip(E5_LAYERS, layers, strict=True)):
            continue
        stores = pooled(other, layers)
        for a_layer, b_layer in zip(E5_LAYERS, layers, strict=True):
            key = f"{other}|{a_layer}|{b_layer}"
            if key in results:
                continue
            za, la = unit_activations(e5_stores[a_layer])
            zb, lb = unit_activations(stores[b_layer])
            check_aligned(la.example_id, lb.example_id)
            best = max_correlation(za, zb)
            entry = {"neurons_median_max_r": float(np.median(best)),
                     "neurons_null": permuted_rows_null(za, zb, n_perm=5).tolist(),
                     "cka": null_score("linear CKA", linear_cka, za, zb, N_PERM),
                     "svcca": null_score("SVCCA", svcca, za, zb, 20),
                     "rsa": null_score("RSA", rsa, za, zb, 20)}
            entry.update(features(token_store(E5, a_layer), token_store(other, b_layer)))
            save(key, entry)


def features(store_a, store_b) -> dict:
    """SAE features (3,072 latents, consistency_study.py's configs, reused by key) of both sides, max-pooled per
    sentence: median max r, and linear CKA of the max-matched features against random subsets (100 shuffles)."""
    from consistency_study import TRAIN_EPOCHS, K

    from mmfeatures.analysis.matching import Matching, aligned_units

    sae_a, sae_b = (sae(s, 3072, K, TRAIN_EPOCHS)[0] for s in (store_a, store_b))
    za, zb = aligned_units(store_a, store_b, sae_a, sae_b, per_token=False)
    za, zb = za[:, za.std(0) > 0], zb[:, zb.std(0) > 0]     # alive units only
    acc = StreamingCorrelation(za.shape[1], zb.shape[1])
    acc.update(za, zb)
    top = max_match(acc.correlation().numpy())
    order = np.argsort(-top.r)[:256]  # the 256 best-matched features
    best_pairs = Matching(top.a[order], top.b[order], top.r[order], "max-top256")
    return {"features_median_max_r": float(np.median(top.r)),
            "features_null": permuted_rows_null(za, zb, n_perm=3).tolist(),
            "features_cka_matched": subset_null(za, zb, best_pairs, linear_cka, n_perm=N_PERM).row()}


def run(args) -> None:
    out = Path(args.out)
    path = out / "matching.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    dataset = mmf.ConceptDataset.builtin(["concepts"])

    def save(key, value):
        results[key] = value
        write_text_atomic(path, json.dumps(results, indent=0, sort_keys=True))
        log(f"{key}: " + ", ".join(f"{k} {v:.3f}" for k, v in value.items() if isinstance(v, float)))

    seeds(dataset, results, save)
    across(dataset, results, save)
    results["_meta"] = {"rows": len(dataset), "dataset": dataset.fingerprint()[:16], "n_perm": N_PERM,
                        "device": "cpu"}
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
