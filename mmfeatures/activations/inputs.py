"""What extract() reads: examples with provenance, validated by index, and their fingerprint.

An input list may hold strings (texts), PIL images or image paths, or Example records that
carry an id, a concept and a language. Images are converted to RGB where that is sound
(grayscale, palette, RGBA on white, CMYK, 16-bit); what cannot be read raises, or is skipped
and reported, according to ``on_error``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmfeatures.errors import InputError
from mmfeatures.types import Modality

MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit (~ 0.25 GiB of RGBA)


@dataclass(frozen=True)
class Example:
    """One input with its provenance. ``content`` is a text, a PIL image or an image path."""

    id: str
    modality: Modality
    content: Any
    concept: str | None = None
    language: str | None = None

    def record(self) -> dict[str, Any]:
        """The JSON-able provenance of this example (no content)."""
        source = str(self.content) if isinstance(self.content, (str, os.PathLike)) and \
            self.modality is Modality.IMAGE else None
        return {"id": self.id, "modality": self.modality.value, "concept": self.concept,
                "language": self.language, "source": source}


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


def load_image(content: Any, where: str):
    """An RGB PIL image from a path or a PIL image; raises InputError naming ``where``."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(content, Image.Image):
        image = content
    else:
        path = Path(content)
        if not path.is_file():
            raise InputError(f"{where}: no image file at {str(path)!r}")
        try:
            with warnings.catch_warnings():  # we refuse huge images ourselves, by name
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                opened = Image.open(path)
            with opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise InputError(
                        f"{where}: {path} is {opened.width}x{opened.height} pixels, above the "
                        f"{MAX_PIXELS:,}-pixel limit; downscale it first")
                opened.load()
                image = opened.copy()
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
            raise InputError(f"{where}: cannot read {path} as an image ({type(e).__name__}: {e})") from None
    return to_rgb(image)


def to_rgb(image):
    """Convert any PIL mode to RGB soundly: alpha over white, 16-bit scaled, CMYK converted."""
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        arr = np.asarray(image, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        return Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype("uint8"), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def content_digest(ex: Example) -> str:
    """A digest of an example's content: text bytes, image file bytes, or decoded pixels."""
    h = hashlib.sha256()
    if ex.modality is Modality.TEXT:
        h.update(ex.content.encode("utf-8"))
    elif isinstance(ex.content, (str, os.PathLike)):
        path = Path(ex.content)
        if path.is_file():
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        else:
            h.update(f"missing:{path}".encode())
    else:
        h.update(f"{ex.content.mode}:{ex.content.size}".encode())
        h.update(ex.content.tobytes())
    return h.hexdigest()


def fingerprint(examples: Sequence[Example]) -> str:
    """A stable hash of ids, modalities, concepts, languages and content, in order."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(f"{ex.id}\x1f{ex.modality.value}\x1f{ex.concept}\x1f{ex.language}\x1f".encode())
        h.update(content_digest(ex).encode())
        h.update(b"\x1e")
    return h.hexdigest()
