"""open_clip image and text towers ("openclip:ARCH/TAG", "openclip:ARCH//path/to/weights").

The text embedding is ``model.encode_text`` (pooled at EOT as CLIP does, then projected); the
image embedding is ``model.encode_image``. Layer sites hook the towers' residual blocks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mmfeatures.encoders.base import Batch, Encoder, ModelInfo, Tower, as_rgb, image_batch
from mmfeatures.encoders.hf import block_submodule, find_blocks
from mmfeatures.errors import UnknownModelError, require
from mmfeatures.types import Modality

_OC_KIND = {"resid": None, "attn": "attn", "mlp": "mlp"}

OPENCLIP_TINY_ARCH = "mmf-tiny-ViT"
EXTRA_ARCHS = {
    OPENCLIP_TINY_ARCH: {  # tiny:openclip's architecture, so 'openclip:mmf-tiny-ViT//file.pt' loads its weights
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
}
"""open_clip architecture configs this package adds to open_clip's own (name -> model config)."""


def register_extra_archs() -> None:
    """Make EXTRA_ARCHS known to open_clip (idempotent; open_clip's own configs are never replaced)."""
    require("open_clip", "openclip", "open_clip models")
    from open_clip import factory

    for name, cfg in EXTRA_ARCHS.items():
        factory._MODEL_CONFIGS.setdefault(name, cfg)  # open_clip has no public registration call


@contextlib.contextmanager
def quiet_random_init():
    """open_clip warns on the root logger when it builds a model without weights; where that is the
    point (random init), hide exactly that warning."""
    def drop(record: logging.LogRecord) -> bool:
        return "Model initialized randomly" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _oc_submodule(block: nn.Module, kind: str) -> nn.Module:
    attr = _OC_KIND[kind]
    if attr is None:
        return block
    # open_clip blocks name them attn/mlp; an HF text tower inside open_clip uses BERT names.
    return getattr(block, attr, None) or block_submodule(block, kind)


class OpenCLIPTextTower(Tower):
    modality = Modality.TEXT

    def __init__(self, model: nn.Module, tokenizer: Any):
        self.module, self.tokenizer = model, tokenizer
        if hasattr(model, "transformer"):  # native CLIP text transformer
            self.blocks = model.transformer.resblocks
        else:  # HF text tower (e.g. xlm-roberta-base-ViT-B-32)
            self.blocks = find_blocks(model.text.transformer)
        self.pad_id = getattr(tokenizer, "pad_token_id", None) or 0
        self.special_ids = {i for i in (getattr(tokenizer, "sot_token_id", None),
                                        getattr(tokenizer, "eot_token_id", None)) if i is not None}
        hf_tok = getattr(tokenizer, "tokenizer", None)
        if hf_tok is not None:  # HFTokenizer wraps a transformers tokenizer
            self.pad_id = hf_tok.pad_token_id
            self.special_ids |= set(hf_tok.all_special_ids) - {hf_tok.pad_token_id}

    def layer_module(self, layer: int, kind: str) -> nn.Module:
        return _oc_submodule(self.blocks[layer], kind)

    def prepare(self, items: Sequence[str], role: str | None = None) -> Batch:
        ids = self.tokenizer(list(items))
        mask = ids != self.pad_id
        special = torch.zeros_like(mask)
        for sid in self.special_ids:
            special |= ids == sid
        truncated = int(mask[:, -1].sum())  # rows that fill the whole context were (likely) cut
        def tokens() -> list[list[str]]:  # open_clip tokenizers decode whole texts only: ids as strings
            return [[str(int(t)) for t in row[m]] for row, m in zip(ids, mask, strict=True)]

        return Batch({"text": ids}, mask, special & mask, tokens, truncated)

    def embed(self, batch: Batch) -> torch.Tensor:
        return self.module.encode_text(batch.inputs["text"])


class OpenCLIPImageTower(Tower):
    modality = Modality.IMAGE

    def __init__(self, model: nn.Module, preprocess: Any):
        self.module, self.preprocess = model, preprocess
        visual = model.visual
        transformer = getattr(visual, "transformer", None)
        self.blocks = transformer.resblocks if transformer is not None else nn.ModuleList()
        grid = getattr(visual, "grid_size", (0, 0))
        self.has_cls = getattr(visual, "class_embedding", None) is not None
        self.n_tokens = int(grid[0] * grid[1]) + int(self.has_cls)

    def layer_module(self, layer: int, kind: str) -> nn.Module:
        return _oc_submodule(self.blocks[layer], kind)

    def prepare(self, items: Sequence[Any], role: str | None = None) -> Batch:
        pixels = torch.stack([self.preprocess(as_rgb(im, i)) for i, im in enumerate(items)])
        return image_batch({"image": pixels}, len(items), self.n_tokens, self.has_cls)

    def embed(self, batch: Batch) -> torch.Tensor:
        return self.module.encode_image(batch.inputs["image"])


def split_name(spec: str) -> tuple[str, str]:
    """'ViT-B-32/laion2b_s34b_b79k' -> (arch, tag); 'ViT-B-32//abs/file.pt' -> (arch, '/abs/file.pt')."""
    arch, sep, rest = spec.partition("/")
    if not sep or not rest:
        raise UnknownModelError(
            f"open_clip name {('openclip:' + spec)!r} needs a tag or a weights path after the architecture, "
            "e.g. 'openclip:ViT-B-32/laion2b_s34b_b79k', 'openclip:ViT-B-32//path/to/weights.pt' "
            "or 'openclip:ViT-B-32/random'"
        )
    return arch, rest


def load_openclip(spec: str, info: ModelInfo) -> Encoder:
    """Build an Encoder from an open_clip architecture and a tag, a local file, or 'random'."""
    import difflib
    from pathlib import Path

    open_clip = require("open_clip", "openclip", "open_clip models")
    from mmfeatures.encoders.hub import offline_unless_reachable, resolve_openclip_weights

    register_extra_archs()
    arch, tag = split_name(spec)
    known = open_clip.list_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3)
        raise UnknownModelError(f"unknown open_clip architecture {arch!r}; did you mean {close}? "
                                "See open_clip.list_models()")
    if tag == "random":
        weights = None
    elif Path(tag).expanduser().is_file():
        weights = str(Path(tag).expanduser())
    elif tag.startswith(("/", ".", "~")):
        raise FileNotFoundError(f"no open_clip weights file at {tag!r} (from {('openclip:' + spec)!r})")
    else:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if tag not in tags:
            raise UnknownModelError(f"unknown pretrained tag {tag!r} for {arch}; known tags: {tags} "
                                    "(or give a weights file path, or 'random')")
        weights = resolve_openclip_weights(arch, tag)
    with offline_unless_reachable(), quiet_random_init() if weights is None else contextlib.nullcontext():
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=weights)
        tokenizer = open_clip.get_tokenizer(arch)
    towers = {Modality.TEXT: OpenCLIPTextTower(model, tokenizer),
              Modality.IMAGE: OpenCLIPImageTower(model, preprocess)}
    return Encoder(info, towers)
