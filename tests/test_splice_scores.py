"""Splice scores per language and per modality (analysis.fidelity): the per-language intervals agree with the
overall scores, and on a real two-tower model (offline:e5-emoji-clip, e5-small's text tower) the shipped e5 SAE
keeps image -> caption retrieval far above zero-ablation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmfeatures as mmf
from mmfeatures.analysis.fidelity import crossmodal_fidelity, fidelity, interval
from mmfeatures.datasets.builtin import load_emoji
from mmfeatures.errors import InputError


def test_a_bootstrap_interval_brackets_its_mean_and_narrows_with_more_items():
    rng = np.random.default_rng(0)
    assert interval(np.full(10, 0.25), rng) == (0.25, 0.25, 0.25)
    few, many = interval([0, 1] * 10, rng), interval([0, 1] * 1000, rng)
    assert few[1] < few[0] == 0.5 < few[2] and many[2] - many[1] < (few[2] - few[1]) / 4


def test_per_language_scores_average_to_the_overall_ones():
    bert = mmf.load_encoder("tiny:bert")
    torch.manual_seed(0)
    part = mmf.ConceptDataset.builtin(["concepts"]).select(languages=["en", "ja", "es"],
                                                          concepts=["dog", "cat", "sun", "water"])
    f = fidelity(bert, "text.layer.1.resid", mmf.SAE(32, 64, mmf.TopK(k=4)), part, mean=torch.zeros(32))
    for cond, per in f.by_language.items():
        assert set(per) == {"en", "ja", "es"} and "crosslingual" not in per["en"] and "crosslingual" in per["ja"]
        assert np.mean([per[lang]["retrieval"][0] for lang in per]) == pytest.approx(f.scores[cond]["retrieval"])
        assert np.mean([per[lang]["crosslingual"][0] for lang in ("ja", "es")]) == \
            pytest.approx(f.scores[cond]["crosslingual"])
        for metrics in per.values():
            assert all(low <= mean <= high for mean, low, high in metrics.values())
    assert f.by_language["clean"]["ja"]["cosine"][0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="text site"):
        fidelity(mmf.load_encoder("tiny:clip"), "image.layer.0.resid", None, part)


@pytest.fixture(scope="module")
def emoji():
    examples = {e.id: e for e in load_emoji(linked_only=True).examples}
    keys = sorted({i.rsplit("/", 1)[0] for i in examples})[:120]
    return [examples[f"{k}/image"].content for k in keys], [examples[f"{k}/en"].content for k in keys]


def test_image_to_caption_retrieval_survives_the_shipped_sae_and_not_zero_ablation(emoji):
    encoder = mmf.load_encoder("offline:e5-emoji-clip")
    sae = mmf.load_sae("data:e5-small-layer8-seed0")      # e5-small's layer 8: the two-tower model's text tower
    images, captions = emoji
    f = crossmodal_fidelity(encoder, "text.layer.8.resid", sae, images, captions)
    chance = 1 / len(set(captions))
    assert set(f) == {"clean", "sae", "zero"} and set(f["sae"]) == {"image_to_caption", "text_cosine"}
    assert f["clean"]["image_to_caption"][1] > 10 * chance                   # the tower works at all
    assert f["zero"]["image_to_caption"][0] < f["sae"]["image_to_caption"][0]
    assert f["zero"]["text_cosine"][0] < f["sae"]["text_cosine"][0] < f["clean"]["text_cosine"][0] + 1e-6
    with pytest.raises(InputError, match="one caption per image"):
        crossmodal_fidelity(encoder, "text.layer.8.resid", sae, images, captions[:-1])


def test_an_image_site_splices_the_image_tower(emoji):
    encoder = mmf.load_encoder("offline:e5-emoji-clip")
    d = encoder.tower("image").module.config.width
    torch.manual_seed(0)
    images, captions = emoji
    f = crossmodal_fidelity(encoder, "image.layer.1.resid", mmf.SAE(d, 4 * d, mmf.TopK(k=8)), images[:40],
                            captions[:40], mean=torch.zeros(d))
    assert set(f) == {"clean", "sae", "zero", "mean"} and set(f["sae"]) == {"image_to_caption", "image_cosine"}
    assert f["clean"]["image_cosine"][0] == pytest.approx(1.0, abs=1e-5)
    assert f["zero"]["image_cosine"][0] < 0.999                              # the splice reached the tower
