"""Steering rewrites a site inside the context only, restores the model on any exit, and refuses bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmfeatures as mmf
from mmfeatures.analysis.steering import max_activation, steer
from mmfeatures.errors import SiteError
from mmfeatures.sae.pretrained import EncoderOnlyError

SITE = "text.layer.1.resid"
TEXTS = ["a small dog", "un gato negro", "the bridge at night"]


@pytest.fixture(scope="module")
def bert():
    return mmf.load_encoder("tiny:bert")


@pytest.fixture(scope="module")
def sae():
    torch.manual_seed(0)
    return mmf.SAE(32, 64, mmf.TopK(k=4))


def module_hooks(encoder) -> int:
    tower = encoder.tower("text")
    return len(tower.layer_module(1, "resid")._forward_hooks)


def test_clamp_and_add_change_outputs_only_inside(bert, sae):
    clean = bert.embed_text(TEXTS)
    with steer(bert, SITE, sae, 3, value=20.0):
        clamped = bert.embed_text(TEXTS)
    with steer(bert, SITE, sae, 3, value=5.0, mode="add"):
        added = bert.embed_text(TEXTS)
    assert not torch.allclose(clean, clamped, atol=1e-4) and not torch.allclose(clean, added, atol=1e-4)
    assert torch.allclose(bert.embed_text(TEXTS), clean) and module_hooks(bert) == 0
    with steer(bert, SITE, sae, 3, value=0.0, mode="add"):
        assert torch.allclose(bert.embed_text(TEXTS), clean, atol=1e-6)


def test_clamp_keeps_the_reconstruction_error(bert, sae):
    """Clamping a feature to the value it already has changes nothing: x = decode(z) + error."""
    clean = bert.embed_text(TEXTS)
    relu = mmf.SAE(32, 64, mmf.ReLU())
    with torch.no_grad():
        relu.b_enc[5] = -1e6                       # feature 5 never fires
    assert max_activation(relu, torch.randn(512, 32), 5) == 0.0
    with steer(bert, SITE, relu, 5, value=0.0):
        same = bert.embed_text(TEXTS)
    assert torch.allclose(same, clean, atol=1e-5)
    with steer(bert, SITE, relu, 5, value=30.0):
        assert not torch.allclose(bert.embed_text(TEXTS), clean, atol=1e-4)


def test_model_is_restored_when_the_body_raises(bert, sae):
    clean = bert.embed_text(TEXTS)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(bert, SITE, sae, 1, value=50.0):
            bert.embed_text(TEXTS)
            raise RuntimeError("boom")
    assert module_hooks(bert) == 0 and torch.allclose(bert.embed_text(TEXTS), clean)


def test_bad_input_is_refused_by_name(bert, sae):
    with pytest.raises(SiteError, match="has no site 'text.layer.9.resid'"):
        with steer(bert, "text.layer.9.resid", sae, 0, value=1.0):
            pass
    narrow = mmf.SAE(16, 8, mmf.TopK(k=2))
    with pytest.raises(SiteError, match="width 32 but the SAE expects d_in=16"):
        with steer(bert, SITE, narrow, 0, value=1.0):
            bert.embed_text(TEXTS)
    assert module_hooks(bert) == 0
    with pytest.raises(EncoderOnlyError, match="no decoder"):
        with steer(bert, SITE, mmf.load_sae("offline:e5-small/latent-terms"), 0, value=1.0):
            pass


def test_zero_shot_curve_on_a_two_tower_model():
    """Plumbing on the random-init tiny CLIP: probabilities are valid and steering the image tower moves them."""
    from PIL import Image

    from mmfeatures.analysis.steering import zero_shot_curve

    clip = mmf.load_encoder("tiny:clip")
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    sae = mmf.SAE(32, 64, mmf.TopK(k=4))
    values, probs = zero_shot_curve(clip, "image.layer.1.resid", sae, 7, images, ["cat", "dog", "car"], 1,
                                    [0.0, 10.0, 50.0], mode="add")
    assert probs.shape == (3, 3) and np.all((probs >= 0) & (probs <= 1))
    assert not np.allclose(probs[0], probs[-1])


def test_fidelity_sweep_rows_on_tiny_bert(bert, sae):
    from mmfeatures.analysis.fidelity import fidelity_sweep

    part = mmf.ConceptDataset.builtin(["concepts"]).select(languages=["en", "ja"], concepts=["dog", "cat", "sun"])
    table = fidelity_sweep(bert, SITE, {"a": sae, "b": mmf.SAE(32, 128, mmf.TopK(k=8))}, part,
                           mean=torch.zeros(32))
    assert list(table["sae"]) == ["a", "b"] and {"cosine", "recovered_cosine_vs_zero"} <= set(table.columns)
    assert table["cosine"].between(-1, 1).all()


def test_splice_at_no_position_changes_nothing_and_a_wrong_mask_is_named(bert, sae):
    from mmfeatures.analysis.steering import splice

    tower = bert.tower("text")
    batch = tower.prepare(TEXTS)
    clean = tower.embed(batch)
    with splice(bert, SITE, "zero", torch.zeros_like(batch.mask_bt)):
        assert torch.allclose(tower.embed(batch), clean)
    with splice(bert, SITE, "zero", batch.mask_bt & ~batch.special_bt):
        content = tower.embed(batch)
    with splice(bert, SITE, "zero"):
        everywhere = tower.embed(batch)
    assert not torch.allclose(content, clean) and not torch.allclose(content, everywhere)
    with pytest.raises(SiteError, match="positions_bt has shape"), splice(bert, SITE, "zero", torch.ones(1, 2, dtype=bool)):
        tower.embed(batch)


def test_shift_adds_a_vector_inside_only(bert):
    from mmfeatures.analysis.steering import shift

    clean = bert.embed_text(TEXTS)
    with shift(bert, SITE, torch.zeros(32)):
        assert torch.allclose(bert.embed_text(TEXTS), clean, atol=1e-6)
    with shift(bert, SITE, torch.full((32,), 3.0)):
        assert not torch.allclose(bert.embed_text(TEXTS), clean)
    assert torch.allclose(bert.embed_text(TEXTS), clean) and module_hooks(bert) == 0
    with pytest.raises(SiteError, match="steering vector has shape"), shift(bert, SITE, torch.zeros(5)):
        bert.embed_text(TEXTS)
