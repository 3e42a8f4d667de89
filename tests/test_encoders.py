"""The Encoder protocol: sites, hooks, faithfulness of captured activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import mmfeatures as mmf


def test_sites_and_bad_site_lists_valid_ones():
    enc = mmf.load_encoder("tiny:clip")
    assert "text.embed" in enc.sites() and "image.layer.1.mlp" in enc.sites()
    with pytest.raises(mmf.SiteError, match=r"text\.layer\.\{0\.\.1\}"):
        enc.check_site("text.layer.7.resid")
    with pytest.raises(mmf.SiteError, match="malformed"):
        enc.check_site("txt.layer.0.resid")
    with pytest.raises(mmf.SiteError, match="no image tower"):
        mmf.load_encoder("tiny:bert").tower("image")


@pytest.mark.parametrize("name", ["tiny:bert", "tiny:clip"])
def test_resid_equals_hidden_states(name):
    enc = mmf.load_encoder(name)
    tower = enc.tower("text")
    batch = tower.prepare(["a dog", "the cat sat on the mat"])
    out = enc.run("text", batch, ["text.layer.0.resid", "text.layer.1.resid"])
    inner = tower.module.text_model if hasattr(tower.module, "text_model") else tower.module
    hs = inner(**batch.inputs, output_hidden_states=True).hidden_states
    assert torch.equal(out["text.layer.0.resid"], hs[1]) and torch.equal(out["text.layer.1.resid"], hs[2])


def test_e5_resid_and_embed_match_the_model(e5):
    tower = e5.tower("text")
    batch = tower.prepare(["Der Hund schläft.", "犬が寝ている。"], role="query")
    out = e5.run("text", batch, ["text.layer.6.resid", "text.embed"])
    hs = tower.module(**batch.inputs, output_hidden_states=True).hidden_states
    torch.testing.assert_close(out["text.layer.6.resid"], hs[7], rtol=0, atol=1e-5)
    # the model card's pooling: mean over the attention mask, then L2-normalise
    m = batch.mask_bt[..., None].float()
    card = torch.nn.functional.normalize((hs[-1] * m).sum(1) / m.sum(1), dim=-1)
    torch.testing.assert_close(out["text.embed"], card, rtol=0, atol=1e-5)


def test_openclip_embed_and_image_sites():
    enc = mmf.load_encoder("tiny:openclip")
    tower = enc.tower("image")
    batch = tower.prepare([Image.new("RGB", (32, 32), "red")])
    out = enc.run("image", batch, ["image.layer.1.resid", "image.embed"])
    torch.testing.assert_close(out["image.embed"], tower.module.encode_image(batch.inputs["image"]))
    assert out["image.layer.1.resid"].shape == (1, 17, 32)


def test_hooks_are_removed_even_when_forward_raises():
    enc = mmf.load_encoder("tiny:bert")
    tower = enc.tower("text")
    batch = tower.prepare(["hello"])
    batch.inputs["input_ids"] = batch.inputs["input_ids"] + 10_000  # out of vocabulary -> IndexError
    with pytest.raises(IndexError):
        enc.run("text", batch, ["text.layer.0.resid"])
    assert not tower.layer_module(0, "resid")._forward_hooks


def test_text_inputs_are_checked_by_index():
    enc = mmf.load_encoder("tiny:bert")
    with pytest.raises(mmf.InputError, match="text item 1 is int"):
        enc.embed_text(["fine", 3])
    with pytest.raises(mmf.InputError, match="single string"):
        enc.embed_text("not a list")


def test_bf16_autocast_runs_on_cpu():
    enc = mmf.load_encoder("tiny:bert", dtype="bf16")
    assert enc.embed_text(["a dog"]).dtype == torch.float32  # returned as fp32
    with pytest.raises(ValueError, match="unknown dtype"):
        mmf.load_encoder("tiny:bert", dtype="fp8")


@pytest.mark.gpu
def test_cuda_fp16_embeddings_close_to_fp32(e5):
    gpu = mmf.load_encoder("offline:e5-small", device="cuda", dtype="fp16")
    texts = ["The dog sleeps.", "Le chien dort."]
    cos = (gpu.embed_text(texts) * e5.embed_text(texts)).sum(1)
    assert cos.min() > 0.999


def test_non_image_input_is_named_by_index():
    enc = mmf.load_encoder("tiny:clip")
    with pytest.raises(mmf.InputError, match="image item 1 is str"):
        enc.embed_image([Image.new("RGB", (8, 8)), "cat.png"])


def test_openclip_resid_equals_its_own_intermediates():
    enc = mmf.load_encoder("tiny:openclip")
    model = enc.tower("image").module
    batch = enc.tower("image").prepare([Image.new("RGB", (32, 32), "red"), Image.new("RGB", (40, 30), "blue")])
    ours = enc.run("image", batch, ["image.layer.0.resid", "image.layer.1.resid"])
    ref = model.visual.forward_intermediates(batch.inputs["image"], indices=[0, 1], intermediates_only=True,
                                             output_fmt="NLC", output_extra_tokens=True)
    for i in (0, 1):
        full = torch.cat([ref["image_intermediates_prefix"][i], ref["image_intermediates"][i]], dim=1)
        torch.testing.assert_close(ours[f"image.layer.{i}.resid"], full, rtol=0, atol=1e-6)
    text = enc.tower("text").prepare(["a dog", "a cat on a mat"])
    ours = enc.run("text", text, ["text.layer.1.resid"])
    ref = model.forward_intermediates(text=text.inputs["text"], text_indices=[1], intermediates_only=True)
    torch.testing.assert_close(ours["text.layer.1.resid"], ref["text_intermediates"][0], rtol=0, atol=1e-6)


def test_vision_automodel_folder(tmp_path):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    model = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                               image_size=32, patch_size=8)).eval()
    model.save_pretrained(tmp_path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    enc = mmf.load_encoder(f"hf:{tmp_path}")
    assert enc.modalities == {mmf.Modality.IMAGE} and "image.layer.1.mlp" in enc.sites()
    batch = enc.tower("image").prepare([Image.new("RGB", (50, 40), "red")])
    out = enc.run("image", batch, ["image.layer.1.resid", "image.embed"])
    hs = model(**batch.inputs, output_hidden_states=True)
    torch.testing.assert_close(out["image.layer.1.resid"], hs.hidden_states[2], rtol=0, atol=1e-6)
    torch.testing.assert_close(out["image.embed"], hs.pooler_output, rtol=0, atol=1e-6)


@pytest.mark.gpu
def test_cuda_bf16_extraction_matches_cpu(tmp_path, e5):
    texts = ["The dog sleeps.", "Le chien dort.", "犬が寝ている。"]
    gpu = mmf.extract("offline:e5-small", texts, ["text.layer.6.resid"], device="cuda", dtype="bf16",
                      store_dir=tmp_path / "gpu", progress=False)
    cpu = mmf.extract(e5, texts, ["text.layer.6.resid"], store_dir=tmp_path / "cpu", progress=False)
    a, b = gpu["text.layer.6.resid"], cpu["text.layer.6.resid"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.99
