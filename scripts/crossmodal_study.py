"""The cross-modal part of docs/results/consistency.md, on offline:e5-emoji-clip. Every number comes from here.

    .venv/bin/python scripts/crossmodal_study.py         # about 5 minutes on 2 CPU cores; then rewrite the page

Question: do features of the shared text-image space fire for a concept's picture *and* its names?

1. Embeds every emoji render, every emoji name, the scikit-image photos and their captions, and Tux Paint's
   stamps and captions (Debian's tuxpaint-stamps-default), in the 16 built-in languages, with
   offline:e5-emoji-clip (``image.embed`` and ``text.embed``: its shared space).
2. Trains a TopK SAE on the emoji *names* only, then encodes texts and images with it: a feature that also
   fires on a concept's picture was never shown a picture while it was learnt.
3. Scores SAE features and signed neurons (each embedding dimension split into its positive and
   negative part) with ``analysis.crossmodal``: ModalityScore, the multimodal fraction and the bridge
   fraction, each against its permutation null, on Tux Paint's stamps and the photos (pictures and texts that
   neither the SAE nor the image tower saw), the held-out emoji (pictures the tower never saw), and the seen
   emoji, a fit check only: the image tower was trained to map those pictures onto those names.
4. The same with the image tower replaced by an untrained one of the same architecture (the
   random-init null; the text side is unchanged).

Results go to docs/results/crossmodal.json; consistency_report.py renders them.
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

from mmfeatures.analysis import Labels, crossmodal  # noqa: E402
from mmfeatures.analysis.labels import encode_rows, unit_activations  # noqa: E402
from mmfeatures.disk import write_text_atomic  # noqa: E402
from mmfeatures.pipeline.examples import heldout_emoji  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from study_steps import sae, stores  # noqa: E402

from mmfeatures.datasets.builtin import BUILTIN_LANGUAGES  # noqa: E402

MODEL = "offline:e5-emoji-clip"
DATA = "emoji,photos,tuxpaint"
SAE_DATA = "emoji"                 # the SAE learns from emoji names only
VERSION = "issue 19"
NULL = f"{MODEL}+random-image-0"   # the image tower re-initialised (seeded); the frozen text tower is kept
WIDTH, K = 1536, 16


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def signed_neurons(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], 1)


def score(z: np.ndarray, labels: Labels, n_perm: int) -> dict:
    cm = crossmodal(z, labels, n_perm=n_perm)
    counts, edges = cm.histogram()
    return {"n_units": int(z.shape[1]), "n_alive": int(cm.alive.sum()), "rows": int(len(labels)),
            "concepts": int(len(set(labels.concept[labels.mask(modality="image")]))),
            "scores": {k: v.row() for k, v in cm.scores.items()},
            "histogram": counts.tolist(), "edges": edges.tolist()}


def subsets(labels: Labels, heldout_ids: set[str]) -> dict[str, np.ndarray]:
    """Row masks: Tux Paint stamps and photos (+ captions; held out), held-out emoji, seen emoji (fit check)."""
    ids = labels.example_id.astype(str)
    is_emoji = np.char.startswith(ids, "emoji/")
    emoji_index = np.array([i.split("/")[1] if e else "" for i, e in zip(ids, is_emoji, strict=True)])
    held = np.isin(emoji_index, list(heldout_ids))
    return {"Tux Paint stamps": np.char.startswith(ids, "tuxpaint/"), "photos": np.char.startswith(ids, "photos/"),
            "held-out emoji": is_emoji & held, "seen emoji (fit check)": is_emoji & ~held}


def store(model: str, site: str, data: str = DATA):
    """The mean-pooled store of ``model`` at ``site`` for ``data`` in the built-in languages."""
    return stores(model, (site,), pooling="mean", data=data, languages=BUILTIN_LANGUAGES)[site]


def run(args) -> dict:
    log("embedding every emoji and photo row (pictures, names, captions)")
    x_img, lab_img = unit_activations(store(MODEL, "image.embed"))
    x_txt, lab_txt = unit_activations(store(MODEL, "text.embed"))
    names = store(MODEL, "text.embed", data=SAE_DATA)
    heldout = {str(i) for i in heldout_emoji()}      # held out of the image tower, near-duplicates of seen ones left out
    # the SAE sees texts only: the emoji names (trained once, then loaded by key)
    text_sae, _ = sae(names, WIDTH, K, 30, batch_size=1024, dead_tokens=50_000)
    results: dict = {"_meta": {"model": MODEL, "width": WIDTH, "k": K, "n_perm": args.n_perm,
                               "sae_rows": names.n_rows, "sae_data": SAE_DATA, "heldout_emoji": len(heldout),
                               "version": VERSION}}
    x_null, lab_null = unit_activations(store(NULL, "image.embed"))
    assert list(lab_null.example_id) == list(lab_img.example_id)
    for tower, images in (("trained", x_img), ("untrained image tower", x_null)):
        x = np.concatenate([images, x_txt])
        labels = Labels.concat(lab_img, lab_txt)
        units = {"SAE features": encode_rows(text_sae, x), "signed neurons": signed_neurons(x)}
        for subset, mask in subsets(labels, heldout).items():
            for unit_name, z in units.items():
                key = f"{tower}|{subset}|{unit_name}"
                results[key] = score(z[mask], labels.take(mask), args.n_perm)
                s = results[key]["scores"]
                log(f"{key}: multimodal {s['multimodal']['value']:.3f} (null {s['multimodal']['null_mean']:.3f}), "
                    f"bridge {s['bridge']['value']:.3f} (null {s['bridge']['null_mean']:.3f})")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    parser.add_argument("--n-perm", type=int, default=20)
    args = parser.parse_args()
    results = run(args)
    write_text_atomic(Path(args.out) / "crossmodal.json", json.dumps(results, indent=1))
    sys.path.insert(0, str(ROOT / "scripts"))
    from consistency_report import write_report

    if (Path(args.out) / "results.json.gz").is_file():      # the page also needs consistency_study.py's results
        write_report(Path(args.out))


if __name__ == "__main__":
    main()
