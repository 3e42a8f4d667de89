"""Small seeded random-init models ("tiny:...") for plumbing tests. They mean nothing.

They are built in memory (seconds, no files): a character-level WordPiece tokenizer, a 2-layer
BERT, a 2-layer CLIP with both towers, and a 2-layer open_clip ViT. ``save_tiny`` writes the
same models as folders/files so the real ``hf:`` and ``openclip:`` loaders can be tested.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

from mmfeatures.encoders.base import Encoder, ModelInfo
from mmfeatures.encoders.hf import HFDualTextTower, HFImageTower, HFTextTower
from mmfeatures.encoders.openclip import (
    OPENCLIP_TINY_ARCH,
    OpenCLIPImageTower,
    OpenCLIPTextTower,
    quiet_random_init,
    register_extra_archs,
)
from mmfeatures.errors import require
from mmfeatures.types import Modality

SEED = 0
WIDTH = 32
TINY_MODELS = {
    "tiny:bert": ModelInfo("tiny:bert", ("text",), "random-init 2-layer BERT, d=32 (plumbing only)",
                           source="random init, seed 0", real=False),
    "tiny:clip": ModelInfo("tiny:clip", ("image", "text"),
                           "random-init transformers CLIP, 2+2 layers, d=32, 32px images (plumbing only)",
                           source="random init, seed 0", real=False),
    "tiny:openclip": ModelInfo("tiny:openclip", ("image", "text"),
                               "random-init open_clip ViT, 2+2 layers, d=32, 32px images (plumbing only)",
                               source="random init, seed 0", real=False),
}


def char_tokenizer():
    """A lower-casing character-level WordPiece tokenizer (transformers fast tokenizer)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = {tok: i for i, tok in enumerate(specials + list(chars) + [f"##{c}" for c in chars])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=64))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=64)


def _seeded(build):
    with torch.random.fork_rng(devices=[]), quiet_random_init():
        torch.manual_seed(SEED)
        return build()


def tiny_bert():
    from transformers import BertConfig, BertModel

    tok = char_tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    return _seeded(lambda: BertModel(cfg, add_pooling_layer=False).eval()), tok


def tiny_clip():
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = char_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=WIDTH, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=64, bos_token_id=2, eos_token_id=3,
                pad_token_id=0)
    vision = dict(hidden_size=WIDTH, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=32, patch_size=8)
    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _seeded(lambda: CLIPModel(cfg).eval()), tok, processor


def tiny_openclip():
    open_clip = require("open_clip", "openclip", "tiny:openclip")
    register_extra_archs()
    return _seeded(lambda: open_clip.create_model_and_transforms(OPENCLIP_TINY_ARCH, pretrained=None))


def load_tiny(name: str) -> Encoder:
    info = TINY_MODELS[name]
    if name == "tiny:bert":
        model, tok = tiny_bert()
        return Encoder(info, {Modality.TEXT: HFTextTower(model, tok, pooling="mean", normalize=False)})
    if name == "tiny:clip":
        model, tok, processor = tiny_clip()
        return Encoder(info, {Modality.TEXT: HFDualTextTower(model, tok),
                              Modality.IMAGE: HFImageTower(model, processor, dual=True)})
    model, _, preprocess = tiny_openclip()
    open_clip = require("open_clip", "openclip", "tiny:openclip")
    return Encoder(info, {Modality.TEXT: OpenCLIPTextTower(model, open_clip.get_tokenizer(OPENCLIP_TINY_ARCH)),
                          Modality.IMAGE: OpenCLIPImageTower(model, preprocess)})


def save_tiny(name: str, dest: str | Path) -> Path:
    """Write a tiny model the way users ship real ones: a save_pretrained folder (tiny:bert,
    tiny:clip) or an open_clip state-dict file (tiny:openclip). Returns the path to load."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if name == "tiny:bert":
        model, tok = tiny_bert()
        model.save_pretrained(dest)
        tok.save_pretrained(dest)
        return dest
    if name == "tiny:clip":
        model, tok, processor = tiny_clip()
        model.save_pretrained(dest)
        tok.save_pretrained(dest)
        processor.save_pretrained(dest)
        return dest
    if name == "tiny:openclip":
        model, _, _ = tiny_openclip()
        path = dest / "tiny_openclip.pt"
        torch.save(model.state_dict(), path)
        return path
    raise ValueError(f"no tiny model {name!r}; known: {sorted(TINY_MODELS)}")
