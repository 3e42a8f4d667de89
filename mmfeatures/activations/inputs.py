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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
"""File suffixes that make a string item an image path (compared lower-case)."""
TEXT_FIX = "or pass Example(..., modality=TEXT) (or as_examples(..., modality='text')) if it really is a text"


def looks_like_image_path(item: Any) -> bool:
    """A string that names an image file: an image suffix and no whitespace (a sentence has spaces)."""
    return isinstance(item, str) and item.lower().endswith(IMAGE_SUFFIXES) and not any(c.isspace() for c in item)


def _missing_path(ex: Example, i: int, fix: str) -> InputError:
    return InputError(f"input item {i} (id {ex.id!r}) is the image path {str(ex.content)!r}, which does not "
                      f"exist; {fix}")


def as_examples(inputs: Sequence[Any], modality: Modality | str | None = None) -> list[Example]:
    """Normalise an input list to Examples (ids are the list index unless given).

    Texts must be non-empty strings: None, non-strings, empty and whitespace-only items raise
    InputError naming the item index. An image given by path must exist (a missing path raises here;
    a file that exists but cannot be decoded is left to ``extract``'s ``on_error``). A string with an
    image suffix and no whitespace is an image path unless ``modality='text'``.

    >>> [e.modality.value for e in as_examples(["a dog", "un chien"])]
    ['text', 'text']
    """
    from PIL import Image

    if inputs is None:
        raise InputError("inputs is None; pass a list of texts, images or Examples")
    if isinstance(inputs, (str, bytes)):
        raise InputError("inputs must be a list; wrap a single text in a list: [text]")
    if isinstance(inputs, (Example, Image.Image, os.PathLike)) or not hasattr(inputs, "__iter__"):
        raise InputError(f"inputs is a single {type(inputs).__name__}; pass a list of texts, images or Examples, "
                         "e.g. [item]")
    mod = Modality(modality) if modality is not None else None
    out: list[Example] = []
    seen: set[str] = set()
    for i, item in enumerate(inputs):
        if isinstance(item, Example):
            ex = item
        elif mod is Modality.IMAGE or (mod is None and (isinstance(item, (Image.Image, os.PathLike))
                                                         or looks_like_image_path(item))):
            ex = Example(str(i), Modality.IMAGE, item)
        else:
            ex = Example(str(i), Modality.TEXT, item)
        if ex.modality is Modality.TEXT:
            if not isinstance(ex.content, str):
                raise InputError(f"input item {i} (id {ex.id!r}) is {type(ex.content).__name__}, not a text; "
                                 "drop it or convert it to a string")
            if not ex.content.strip():
                raise InputError(f"input item {i} (id {ex.id!r}) is empty or whitespace only; drop it")
        elif isinstance(ex.content, (str, os.PathLike)) and not (str(ex.content) and Path(ex.content).exists()):
            # A missing path is a typo, not a bad image: raise now, even under on_error='skip'.
            if isinstance(item, Example):
                raise _missing_path(ex, i, "fix the path in the Example's content")
            if isinstance(item, str) and mod is None:
                raise _missing_path(ex, i, f"fix the path, {TEXT_FIX}")
            raise _missing_path(ex, i, "fix the path")
        if ex.id in seen:
            raise InputError(f"input item {i} repeats example id {ex.id!r}; ids must be unique")
        seen.add(ex.id)
        out.append(ex)
    if not out:
        raise InputError("no inputs given; pass a non-empty list of texts, images or Examples")
    return out
