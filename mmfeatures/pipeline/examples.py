"""Which examples a step analyses, and what they show: the emoji subsets of offline:e5-emoji-clip (seen in its
image tower's training, or held out, less near-duplicates) and the texts and pictures behind example ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NEAR_DUPLICATE = 0.95
"""A held-out emoji whose 16 x 16 grey render (mean-subtracted) has a cosine above this with a seen emoji's is left out
of 'heldout-emoji': the tower has, in effect, seen it (anguished and fearful face: 0.999)."""


def heldout_emoji() -> frozenset[int]:
    """The emoji held out of offline:e5-emoji-clip's image-tower training (from its card), without the near-duplicates
    of seen ones (``NEAR_DUPLICATE``)."""
    import json

    from PIL import Image

    from mmfeatures.datasets.builtin import data_root
    from mmfeatures.encoders.emojiclip import default_weights

    card = json.loads(default_weights().with_suffix(".json").read_text())
    held = sorted(int(i) for i in card["heldout_emoji"])
    renders = np.load(data_root() / "emoji" / "images.npz")["images"]
    grey = np.stack([np.asarray(Image.fromarray(im).convert("L").resize((16, 16), Image.BILINEAR), np.float32).ravel()
                     for im in renders])
    grey -= grey.mean(1, keepdims=True)
    grey /= np.maximum(np.linalg.norm(grey, axis=1, keepdims=True), 1e-9)
    seen = np.setdiff1d(np.arange(len(renders)), held)
    closest = (grey[held] @ grey[seen].T).max(1)
    return frozenset(i for i, c in zip(held, closest, strict=True) if c <= NEAR_DUPLICATE)


def subset_mask(ids: np.ndarray, subset: str) -> np.ndarray:
    """Rows to keep for a named subset; non-emoji rows are kept by 'seen-emoji' and 'heldout-emoji' too."""
    if subset == "all":
        return np.ones(len(ids), bool)
    held = heldout_emoji()
    parts = [str(i).split("/") for i in ids]
    emoji = np.array([p[0] == "emoji" for p in parts])
    number = np.array([int(p[1]) if p[0] == "emoji" and p[1].isdigit() else -1 for p in parts])
    inside = np.isin(number, list(held))
    return ~emoji | (inside if subset == "heldout-emoji" else ~inside)


def contents(ids) -> dict[str, object]:
    """Texts and images of built-in and Tux Paint examples by id (for figures and tables); other ids are left
    out."""
    from mmfeatures.datasets import ConceptDataset

    sources = {i.split("/")[0] for i in ids}
    wanted = sorted(sources & {"concepts", "emoji", "photos"})
    parts = [ConceptDataset.builtin(wanted, linked_only=False)] if wanted else []
    if "tuxpaint" in sources:
        import warnings

        from mmfeatures.datasets import tuxpaint_stamps

        with warnings.catch_warnings():                 # the SVG-only stamps were left out at extraction too
            warnings.simplefilter("ignore")
            parts.append(tuxpaint_stamps(fetch=False, progress=False))
    from mmfeatures.activations import load_image
    from mmfeatures.types import Modality

    keep = set(ids)
    return {e.id: load_image(e.content, f"example {e.id!r}") if e.modality == Modality.IMAGE and isinstance(e.content, (str, Path)) else e.content
            for part in parts for e in part if e.id in keep}
