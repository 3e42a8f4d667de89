"""Images as inputs, and dataset fingerprints. Imports only the bottom layer.

Images are converted to RGB where that is sound (grayscale, palette, RGBA on white, CMYK,
16-bit); what cannot be read raises InputError naming the file.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmfeatures.errors import InputError
from mmfeatures.types import Example, Modality

MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit (~ 0.25 GiB of RGBA)


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
        if ex.group is not None:                       # examples without a group keep their old fingerprint
            h.update(f"group={ex.group}\x1f".encode())
        h.update(content_digest(ex).encode())
        h.update(b"\x1e")
    return h.hexdigest()
