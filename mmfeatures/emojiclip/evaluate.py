"""Retrieval evaluation of ``offline:e5-emoji-clip``, with the chance level next to every number.

Splits: *seen* emoji (trained on), *held-out* emoji (whole concept families never trained on) and the
scikit-image photos (never trained on; nothing photographic was). Views: the clean renders as
``Encoder.embed_image`` sees them, and a fixed set of augmented views (seeded, so reproducible).

- image -> text: each image against the names of all 1,397 emoji in one language; a hit is a candidate
  whose name equals the target's (duplicate names count). For held-out emoji also against the held-out
  names only (zero-shot classification among unseen classes).
- text -> image: each name against all 1,397 clean renders; a hit is an identical picture.
- photos -> text: a hit is the name of any emoji linked to the photo's concept ('cat': 🐈, 🐱).
- photos <-> captions: the 8 photos against their 8 captions, in 16 languages.
"""

from __future__ import annotations

from math import comb

import numpy as np
import torch

from mmfeatures.emojiclip.augment import augment
from mmfeatures.emojiclip.train import EmojiData, TrainConfig, load_data, name_embeddings

EVAL_SEED = 12345
EVAL_VIEWS = 2


def _chance(n_candidates: int, n_correct: np.ndarray, k: int) -> float:
    """Mean probability that a random ranking puts a correct candidate in the top k."""
    return float(np.mean([1 - comb(n_candidates - m, k) / comb(n_candidates, k) for m in n_correct]))


def hits(scores: torch.Tensor, correct: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """(Q, C) scores and (Q, C) bool correctness -> top-k hit rates and their chance levels."""
    order = scores.topk(max(ks), dim=1).indices
    found = correct.gather(1, order)
    n_correct = correct.sum(1).numpy()
    out: dict[str, float] = {"n": int(scores.shape[0]), "candidates": int(scores.shape[1])}
    for k in ks:
        out[f"top{k}"] = float(found[:, :k].any(1).float().mean())
        out[f"chance{k}"] = _chance(scores.shape[1], n_correct, k)
    return out


def image_to_text(z: torch.Tensor, rows: np.ndarray, text: torch.Tensor, names: list[list[str]],
                  candidates: np.ndarray, languages: tuple[str, ...]) -> dict[str, dict]:
    """Per language: images ``z`` (of emoji ``rows``) against the names of emoji ``candidates``."""
    out = {}
    for j, lang in enumerate(languages):
        _, ids = np.unique(np.array([row[j] for row in names], dtype=object).astype(str), return_inverse=True)
        correct = torch.from_numpy(ids[rows][:, None] == ids[candidates][None, :])
        out[lang] = hits(z @ text[candidates, j].T, correct)
    return out


def text_to_image(z_all: torch.Tensor, rows: np.ndarray, text: torch.Tensor, same_picture: np.ndarray,
                  languages: tuple[str, ...]) -> dict[str, dict]:
    correct = torch.from_numpy(same_picture[rows])
    return {lang: hits(text[rows, j] @ z_all.T, correct) for j, lang in enumerate(languages)}


def augmented_views(data: EmojiData, config: TrainConfig) -> tuple[torch.Tensor, np.ndarray]:
    """``EVAL_VIEWS`` fixed augmented views of every emoji, as [0, 1] floats, and their emoji rows."""
    gen = torch.Generator().manual_seed(EVAL_SEED)
    rows = np.tile(np.arange(len(data.images)), EVAL_VIEWS)
    views = torch.cat([augment(data.images, data.alpha, torch.from_numpy(rows[s:s + 512]), config.augment, gen)
                       for s in range(0, len(rows), 512)])
    return views, rows


@torch.inference_mode()
def evaluate(encoder, config: TrainConfig, data: EmojiData | None = None, *, splits: tuple[str, ...] = (
        "seen", "heldout", "photos"), augmented: bool = True) -> dict:
    """All retrieval numbers for ``encoder`` (an ``offline:e5-emoji-clip``-like two-tower Encoder)."""
    from PIL import Image

    from mmfeatures.encoders.emojiclip import normalize_pixels

    data = data or load_data(config.tower.image_size, config.heldout, config.seed, config.limit)
    text = name_embeddings(encoder, data)
    tower = encoder.tower("image").module
    pictures = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in data.images]
    z_clean = encoder.embed_image(pictures, batch_size=256)
    flat = data.images.reshape(len(data.images), -1)
    same_picture = (flat[:, None] == flat[None]).all(-1).numpy()
    everything = np.arange(len(data.images))
    split_rows = {"seen": np.flatnonzero(~data.heldout), "heldout": np.flatnonzero(data.heldout)}
    views = {"clean": (z_clean, everything)}
    if augmented:
        pixels, rows = augmented_views(data, config)
        views["augmented"] = (torch.cat([tower(normalize_pixels(pixels[s:s + 512]))
                                         for s in range(0, len(pixels), 512)]), rows)
    result: dict = {"languages": list(data.languages), "n_emoji": len(data.images),
                    "n_seen": int((~data.heldout).sum()), "n_heldout": int(data.heldout.sum())}
    for view, (z, rows) in views.items():
        for split in ("seen", "heldout"):
            if split not in splits:
                continue
            keep = np.isin(rows, split_rows[split])
            result[f"image_to_text/{view}/{split}"] = image_to_text(
                z[torch.from_numpy(keep)], rows[keep], text, data.names, everything, data.languages)
            if split == "heldout":
                result[f"image_to_text/{view}/heldout_among_heldout"] = image_to_text(
                    z[torch.from_numpy(keep)], rows[keep], text, data.names, split_rows["heldout"], data.languages)
    for split in ("seen", "heldout"):
        if split in splits:
            result[f"text_to_image/clean/{split}"] = text_to_image(z_clean, split_rows[split], text, same_picture,
                                                                   data.languages)
    if "photos" in splits:
        result.update(_photos(encoder, data, text))
    return result


def _photos(encoder, data: EmojiData, text: torch.Tensor) -> dict:
    from PIL import Image

    from mmfeatures.datasets.builtin import load_photos

    photos = load_photos()
    images = [e for e in photos.examples if e.modality.value == "image"]
    z = encoder.embed_image([Image.open(e.content).convert("RGB") for e in images])
    out, to_names = {}, {}
    correct = torch.tensor([[data.concepts[c] == e.concept for c in range(len(data.names))] for e in images])
    linked = correct.any(1)   # photos whose concept some emoji shares
    for j, lang in enumerate(data.languages):
        to_names[lang] = hits(z[linked] @ text[:, j].T, correct[linked])
    out["image_to_text/photos/emoji_names"] = to_names
    captions, reverse = {}, {}
    languages = sorted({e.language for e in photos.examples if e.language}, key=str)
    for lang in languages:
        by_photo = {e.concept: e.content for e in photos.examples if e.language == lang}
        z_text = encoder.embed_text([by_photo[e.concept] for e in images], role="query")
        eye = torch.eye(len(images), dtype=torch.bool)
        captions[lang] = hits(z @ z_text.T, eye, ks=(1,))
        reverse[lang] = hits(z_text @ z.T, eye, ks=(1,))
    out["image_to_text/photos/captions"] = captions
    out["text_to_image/photos/captions"] = reverse
    return out


def summary(result: dict, key: str) -> dict[str, float]:
    """Mean over languages of each number in one result table."""
    table = result[key]
    return {m: float(np.mean([row[m] for row in table.values()])) for m in next(iter(table.values()))}
