"""The keys audit of docs/disk-layout.md ("What each key covers"): every field listed as in a key changes the key,
and every option listed as outside it leaves the key as it is. The table is read from the docs, so docs and code
cannot drift apart without this failing."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mmfeatures.activations.layout import StoreConfig
from mmfeatures.pipeline import AnalyzeStep, ExtractStep, MatchStep, SteerStep, TrainStep
from mmfeatures.pipeline.record import record_key
from mmfeatures.sae import TopK, TrainConfig
from mmfeatures.sae.latents import LatentConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "disk-layout.md"


def audit() -> dict[str, tuple[set[str], set[str]]]:
    """{artifact: (fields in its key, options outside it)} from the docs' audit table."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### What each key covers", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (set(re.findall(r"`(\w+)`", cells[1])), set(re.findall(r"`(\w+)`", cells[2])))
    return rows


def changed(value):
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 + 0.001
    if isinstance(value, tuple):
        return (*value, value[-1]) if value else ("x",)
    if value is None:
        return 7
    return f"{value}-other"


def test_the_audit_lists_every_field_of_every_config():
    rows = audit()
    for name, cls in (("StoreConfig", StoreConfig), ("TrainConfig", TrainConfig), ("LatentConfig", LatentConfig)):
        inside, outside = rows[name]
        assert inside | outside == {f.name for f in dataclasses.fields(cls)}, name
        assert not inside & outside, name


def test_every_store_config_field_is_in_the_store_key():
    inside, _ = audit()["StoreConfig"]
    base = StoreConfig("m", "w", "text.layer.1.resid", "none", None, False, "fp32", "fp32", "data", 10, (0, 4, 8), 32)
    for name in inside:
        value = getattr(base, name)
        other = {"store_dtype": "bf16", "pooling": "mean", "shards": (0, 5)}.get(name, changed(value))
        assert dataclasses.replace(base, **{name: other}).key != base.key, name


def test_train_config_fields_in_the_sae_key_and_outside_it():
    inside, outside = audit()["TrainConfig"]
    base = TrainConfig(TopK(k=4), 64, warmup_steps=3, dead_tokens=100)
    for name in inside | outside:
        value = getattr(base, name)
        other = {"arch": TopK(k=5), "normalize": "none", "b_dec_init": "zeros", "device": "cpu", "decay_start": 0.5,
                 "name": "mine"}.get(name, changed(value))
        moved = dataclasses.replace(base, **{name: other}).key("store") != base.key("store")
        assert moved is (name in inside), name


def test_latent_config_fields_are_all_in_the_latent_set_key():
    inside, _ = audit()["LatentConfig"]
    base = LatentConfig("store", "digest", 64, None, 3, 4096)
    for name in inside:
        assert dataclasses.replace(base, **{name: changed(getattr(base, name))}).key != base.key, name


@pytest.mark.parametrize("cls, required", [
    (ExtractStep, {}), (TrainStep, {"store": "offline:e5-small/latent-terms"}),
    (AnalyzeStep, {"stores": ("offline:e5-small/latent-terms",)}),
    (MatchStep, {"store_a": "offline:e5-small/latent-terms", "store_b": "offline:e5-small/latent-terms"}),
    (SteerStep, {"sae": "offline:e5-small/latent-terms"})], ids=lambda x: getattr(x, "__name__", ""))
def test_a_step_result_key_moves_with_its_content_fields_only(tmp_path, monkeypatch, cls, required):
    """Volatile options (device, folders, progress) leave a result's key; every other plain option moves it.
    (Artifact options enter as their artifacts' keys: a built-in name is its own key, so it stands in here.)"""
    monkeypatch.chdir(tmp_path)                       # folder options are made writable where they point
    base = cls(**required)
    key = record_key(cls.__name__, base)[0]
    for f in dataclasses.fields(cls):
        if f.metadata.get("artifact"):
            continue
        value = getattr(base, f.name)
        for other in _valid_others(cls, required, f.name, value):
            moved = record_key(cls.__name__, other)[0] != key
            assert moved is (not f.metadata.get("volatile")), (cls.__name__, f.name)
            break


def _valid_others(cls, required, name, value):
    """Configs that differ from the default in ``name`` only and pass validation (the first candidates that do)."""
    from mmfeatures.errors import MMFeaturesError

    candidates = [changed(value), "cpu", "cuda", "query", "mean", "fp32", "bf16", "relu", 0.3, 2, 39, "crossmodal",
                  "all", "shuffled-concepts", "multilingual", "tokens", "en,es", ("en",), (1,), "runs/x", None]
    for other in candidates:
        try:
            config = cls(**{**required, name: other})
        except (MMFeaturesError, ValueError, TypeError):
            continue
        if getattr(config, name) != value:
            yield config
