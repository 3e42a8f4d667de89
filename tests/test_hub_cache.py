"""hf: names resolve from a filled Hugging Face cache with no network (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

import mmfeatures as mmf
from mmfeatures.encoders.tiny import save_tiny
from mmfeatures.sae import SAE, TopK, save_sae


def fill_cache(cache: Path, repo: str, source: Path) -> None:
    """Lay out files exactly as huggingface_hub stores a downloaded snapshot."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(source, root / "snapshots" / commit)


def test_encoder_and_sae_load_from_a_filled_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    bert = save_tiny("tiny:bert", tmp_path / "bert")
    fill_cache(cache, "someone/tiny-bert", bert)
    sae_repo = tmp_path / "saes"
    sae = SAE(32, 64, TopK(k=4))
    save_sae(sae, sae_repo / "layer1", model_name="hf:someone/tiny-bert", hook_name="text.layer.1.resid")
    fill_cache(cache, "someone/tiny-saes", sae_repo)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))

    enc = mmf.load_encoder("hf:someone/tiny-bert")
    torch.testing.assert_close(enc.embed_text(["a dog"]), mmf.load_encoder("tiny:bert").embed_text(["a dog"]))
    loaded = mmf.load_sae("hf:someone/tiny-saes/layer1")
    x = torch.randn(3, 32)
    torch.testing.assert_close(loaded.encode(x), sae.eval().encode(x))
    assert mmf.load_sae(f"hf:{sae_repo / 'layer1'}").d_sae == 64  # a local folder works too
