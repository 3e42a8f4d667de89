"""What extract() reads: examples with provenance, validated by index, and their fingerprint.

An input list may hold strings (texts), PIL images or image paths, or Example records that
carry an id, a concept and a language. Images are converted to RGB where that is sound
(grayscale, palette, RGBA on white, CMYK, 16-bit); what cannot be read raises, or is skipped
and reported, according to ``on_error``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmfeatures.datasets.images import MAX_PIXELS, content_digest, fingerprint, load_image, to_rgb
from mmfeatures.errors import InputError
from mmfeatures.types import Example, Modality

__all__ = ["MAX_PIXELS", "Example", "as_examples", "content_digest", "fingerprint", "load_image", "to_rgb"]


def _is_image(item: Any) -> bool:
    from PIL import Image

    return isinstance(item, (Image.Image, os.PathLike)) or (
        isinstance(item, str) and item.lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif",
                                                          ".tif", ".tiff")) and Path(item).exists())


def as_examples(inputs: Sequence[Any], modality: Modality | str | None = None) -> list[Example]:
    """Normalise an input list to Examples (ids are the list index unless given).

    Texts must be non-empty strings: None, non-strings, empty and whitespace-only items raise
    InputError naming the item index.
    """
    if isinstance(inputs, (str, bytes)):
        raise InputError("inputs must be a list; wrap a single text in a list: [text]")
    mod = Modality(modality) if modality is not None else None
    out: list[Example] = []
    seen: set[str] = set()
    for i, item in enumerate(inputs):
        if isinstance(item, Example):
            ex = item
        elif mod is Modality.IMAGE or (mod is None and _is_image(item)):
            ex = Example(str(i), Modality.IMAGE, item)
        else:
            ex = Example(str(i), Modality.TEXT, item)
        if ex.modality is Modality.TEXT:
            if not isinstance(ex.content, str):
                raise InputError(f"input item {i} (id {ex.id!r}) is {type(ex.content).__name__}, not a text; "
                                 "drop it or convert it to a string")
            if not ex.content.strip():
                raise InputError(f"input item {i} (id {ex.id!r}) is empty or whitespace only; drop it")
        if ex.id in seen:
            raise InputError(f"input item {i} repeats example id {ex.id!r}; ids must be unique")
        seen.add(ex.id)
        out.append(ex)
    if not out:
        raise InputError("no inputs given; pass a non-empty list of texts, images or Examples")
    return out


