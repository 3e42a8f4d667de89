"""offline:e5-emoji-clip: the shipped weights reproduce their card, behave like any CLIP, fail clearly when
broken; the training job is seeded and resumable."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from mmfeatures.emojiclip.augment import AugmentConfig, augment, foreground_masks
from mmfeatures.emojiclip.card import card_numbers
from mmfeatures.emojiclip.evaluate import evaluate, hits
from mmfeatures.emojiclip.train import TrainConfig, families, load_data, split_heldout, train
from mmfeatures.encoders.emojiclip import ImageTowerConfig, default_weights, load_emoji_clip, load_tower
from mmfeatures.errors import CorruptFileError, InputError


@pytest.fixture(scope="module")
def clip():
    import mmfeatures as mmf

    return mmf.load_encoder("offline:e5-emoji-clip")


def test_registered_two_tower_model_with_clip_sites(clip, e5):
    from PIL import Image

    assert clip.info.real and {m.value for m in clip.modalities} == {"image", "text"}
    assert "image.layer.3.mlp" in clip.sites() and "text.layer.11.resid" in clip.sites()
    pictures = [Image.new("RGB", (72, 60), (200, 30, 30)), Image.new("L", (20, 20), 128)]
    z = clip.embed_image(pictures)
    assert z.shape == (2, 384) and torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)
    batch = clip.tower("image").prepare(pictures)
    acts = clip.run("image", batch, ["image.layer.0.resid", "image.layer.2.attn", "image.embed"])
    assert acts["image.layer.0.resid"].shape == (2, 37, 160) and acts["image.layer.2.attn"].shape == (2, 37, 160)
    assert torch.allclose(acts["image.embed"], z, atol=1e-5)
    texts = ["a dog", "un perro"]  # the text tower is e5-small's, unchanged
    assert torch.allclose(clip.embed_text(texts, role="query"), e5.embed_text(texts, role="query"), atol=1e-6)


@pytest.mark.slow  # minutes on 2 cores: `make test-slow`
def test_shipped_weights_reproduce_the_card(clip):
    """The card's seen-emoji numbers (clean renders, 14 languages, both directions) come back exactly."""
    config = TrainConfig.from_dict(json.loads(default_weights().with_suffix(".json").read_text())["config"])
    result = evaluate(clip, config, splits=("seen",), augmented=False)
    card = card_numbers(default_weights().parent)
    for key in ("image_to_text/clean/seen", "text_to_image/clean/seen"):
        for lang, row in card[key].items():
            for metric in ("top1", "top5"):
                assert abs(result[key][lang][metric] - row[metric]) <= 2e-3, (key, lang, metric)
    # and they are far above chance: the model has learnt something real
    seen = card["image_to_text/clean/seen"]
    assert np.mean([r["top1"] for r in seen.values()]) > 20 * np.mean([r["chance1"] for r in seen.values()])


def test_missing_and_corrupt_weights_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(InputError, match=r"missing.*train-embedded"):
        load_tower(tmp_path / "e5-emoji-clip.safetensors")
    copy = tmp_path / "e5-emoji-clip.safetensors"
    shutil.copy(default_weights(), copy)
    shutil.copy(default_weights().with_suffix(".json"), tmp_path / "e5-emoji-clip.json")
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"e5-emoji-clip.safetensors.*SHA-256.*train-embedded"):
        load_tower(copy)
    (tmp_path / "e5-emoji-clip.json").unlink()  # no checksum to compare: a truncated file still fails clearly
    copy.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CorruptFileError, match=r"unreadable image tower.*train-embedded"):
        load_tower(copy)


def test_foreground_masks_keep_enclosed_white():
    img = np.full((1, 12, 12, 3), 255, np.uint8)
    img[0, 2:10, 2:10] = (200, 0, 0)
    img[0, 5:7, 5:7] = 255  # a white hole inside the object stays foreground
    alpha = foreground_masks(img)[0]
    assert alpha[0, 0] == 0 and alpha[3, 3] == 1 and alpha[5, 5] == 1


def test_augment_is_seeded_in_range_and_varied():
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    alpha = torch.ones(5, 1, 16, 16)
    index = torch.tensor([0, 1, 2, 3])
    a = augment(images, alpha, index, AugmentConfig(), torch.Generator().manual_seed(1))
    b = augment(images, alpha, index, AugmentConfig(), torch.Generator().manual_seed(1))
    c = augment(images, alpha, index, AugmentConfig(), torch.Generator().manual_seed(2))
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_heldout_split_keeps_families_whole():
    data = load_data(48)
    keys = families([n[0] for n in data.names], data.concepts)
    held = {k for k, h in zip(keys, data.heldout, strict=True) if h}
    assert not any(k in held for k, h in zip(keys, data.heldout, strict=True) if not h)
    assert data.heldout.mean() >= 0.15 and len(held) >= 0.15 * len(set(keys))
    assert np.array_equal(split_heldout(keys, 0.15, 0), data.heldout)
    assert families(["woman astronaut", "astronaut"], ["emoji:a", "emoji:b"]) == ["astronaut", "astronaut"]


def test_hits_and_chance():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.1, 0.9]])
    correct = torch.tensor([[True, False, False], [True, False, False]])
    r = hits(scores, correct, ks=(1, 2))
    assert r["top1"] == 0.5 and r["top2"] == 0.5 and r["chance1"] == pytest.approx(1 / 3)
    assert r["chance2"] == pytest.approx(2 / 3)


def test_training_is_seeded_and_resumes(tmp_path):
    config = TrainConfig(steps=4, batch_size=16, limit=60, checkpoint_every=2, curve_every=2, warmup=2,
                         tower=ImageTowerConfig(width=32, layers=1, heads=2))
    first = train(config, tmp_path / "a", tmp_path / "work-a")
    record = json.loads(first.with_suffix(".json").read_text())
    assert [c["step"] for c in record["curve"]] == [2, 4] and record["heldout_emoji"]
    again = train(config, tmp_path / "b", tmp_path / "work-a")      # resumes at step 4: nothing to redo
    fresh = train(config, tmp_path / "c", tmp_path / "work-c")      # same seed, fresh: same weights
    tensors = [load_tower(p)[0].state_dict() for p in (first, again, fresh)]
    for name, value in tensors[0].items():
        assert torch.equal(value, tensors[1][name]) and torch.equal(value, tensors[2][name]), name
    from PIL import Image

    assert load_emoji_clip(first).embed_image([Image.new("RGB", (8, 8))]).shape == (1, 384)
