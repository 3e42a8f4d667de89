"""The cross-modal part of docs/results/consistency.md, on offline:e5-emoji-clip. Every number comes from here.

    .venv/bin/python scripts/crossmodal_study.py         # about 5 minutes on 2 CPU cores; then rewrite the page

Question: do features of the shared text-image space fire for a concept's picture *and* its names?

1. Embeds every emoji render, every emoji name (14 languages), the scikit-image photos and their
   captions (16 languages) with offline:e5-emoji-clip (``image.embed`` and ``text.embed``: its shared space).
2. Trains a TopK SAE on the *text* embeddings only (emoji names and photo captions), then
   encodes both the texts and the images with it: a feature that also fires on a concept's picture was
   never shown a picture while it was learnt.
3. Scores SAE features and signed neurons (each embedding dimension split into its positive and
   negative part) with ``analysis.crossmodal``: ModalityScore, the multimodal fraction and the bridge
   fraction, each against its permutation null, on seen emoji, held-out emoji and the photos.
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

import mmfeatures as mmf  # noqa: E402
from mmfeatures.analysis import Labels, crossmodal  # noqa: E402
from mmfeatures.analysis.labels import encode_rows, unit_activations  # noqa: E402
from mmfeatures.disk import write_text_atomic  # noqa: E402
from mmfeatures.emojiclip.train import load_data  # noqa: E402
from mmfeatures.encoders.base import Encoder, ModelInfo  # noqa: E402
from mmfeatures.encoders.emojiclip import EmojiImageTower, ImageTower  # noqa: E402

MODEL = "offline:e5-emoji-clip"
WIDTH, K = 1536, 16


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def untrained(encoder: Encoder, seed: int = 0) -> Encoder:
    """The same Encoder with the image tower re-initialised (seeded); the frozen text tower is kept."""
    import torch

    torch.manual_seed(seed)
    module = ImageTower(encoder.tower("image").module.config)
    info = ModelInfo(f"{MODEL}+untrained-image-tower-{seed}", ("image", "text"), "untrained image tower null",
                     real=False)
    return Encoder(info, {mmf.Modality.TEXT: encoder.tower("text"), mmf.Modality.IMAGE: EmojiImageTower(module)})


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
    """Row masks: seen emoji (images + names), held-out emoji, photos (+ captions)."""
    ids = labels.example_id.astype(str)
    is_emoji = np.char.startswith(ids, "emoji/")
    emoji_index = np.array([i.split("/")[1] if e else "" for i, e in zip(ids, is_emoji, strict=True)])
    held = np.isin(emoji_index, list(heldout_ids))
    return {"seen emoji": is_emoji & ~held, "held-out emoji": is_emoji & held,
            "photos": np.char.startswith(ids, "photos/")}


def run(args) -> dict:
    encoder = mmf.load_encoder(MODEL)
    data = mmf.ConceptDataset.builtin(["emoji", "photos"], linked_only=False)
    log(f"{len(data)} emoji and photo rows (pictures, names, captions): embedding")
    stores = mmf.extract(encoder, data, ["image.embed", "text.embed"], progress=True)
    x_img, lab_img = unit_activations(stores.stores["image.embed"])
    x_txt, lab_txt = unit_activations(stores.stores["text.embed"])
    heldout = {str(i) for i in np.flatnonzero(load_data(encoder.tower("image").module.config.image_size).heldout)}
    # the SAE sees texts only: the emoji names and photo captions
    text_store = stores.stores["text.embed"]
    cfg = mmf.TrainConfig(mmf.TopK(k=K), WIDTH, seed=0, batch_size=1024, epochs=30, dead_tokens=50_000,
                          device="cpu", log_every=50)
    sae = mmf.train(text_store, cfg, progress=False).sae           # trained once, then loaded by key
    results: dict = {"_meta": {"model": MODEL, "width": WIDTH, "k": K, "n_perm": args.n_perm,
                               "sae_rows": text_store.n_rows, "heldout_emoji": len(heldout)}}
    null_encoder = untrained(encoder)
    null_img = mmf.extract(null_encoder, data, ["image.embed"], progress=True)
    x_null, lab_null = unit_activations(null_img.stores["image.embed"])
    assert list(lab_null.example_id) == list(lab_img.example_id)
    for tower, images in (("trained", x_img), ("untrained image tower", x_null)):
        x = np.concatenate([images, x_txt])
        labels = Labels.concat(lab_img, lab_txt)
        units = {"SAE features": encode_rows(sae, x), "signed neurons": signed_neurons(x)}
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

    write_report(Path(args.out))


if __name__ == "__main__":
    main()
