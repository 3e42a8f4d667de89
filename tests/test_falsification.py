"""Every verdict run where it must fail: the same step, on the same real stores and SAEs as the quick demo, with
the concepts shuffled, a random-init model, a random-weight image tower, a random steering direction, or the
null model in place of the real one. A verdict that still says "supported" here could not fail, and is worth
nothing."""

from __future__ import annotations

import dataclasses

import pytest

from mmfeatures.pipeline import AnalyzeStep, ExtractStep, MatchStep, SteerStep, TrainStep, run


def _record(quick_demo, name: str):
    return next(s.record for s in quick_demo.stages if s.name == name)


def _config(quick_demo, name: str, kind=AnalyzeStep):
    """The step config the demo ran for ``name``, as recorded (handles resolved to paths)."""
    record = _record(quick_demo, name)
    fields = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.config.items() if k in fields})


def _not_supported(record, control: str) -> None:
    assert record.supported is False, record.verdict
    assert record.verdict.startswith("Not supported") and control in record.claim


@pytest.mark.parametrize("name", ["03-crosslingual", "11-crossmodal-tuxpaint"])
def test_a_verdict_with_shuffled_concepts_is_not_supported(quick_demo, name, tmp_path):
    control = run(dataclasses.replace(_config(quick_demo, name), control="shuffled-concepts", out=str(tmp_path)))
    _not_supported(control, "control: shuffled-concepts")


def test_crosslingual_on_a_random_init_model_is_not_supported(quick_demo, tmp_path):
    """e5-small's architecture and tokenizer with fresh weights, its own SAE (trained on the very sentences it is
    scored on, which can only help it): its features must not pass the cross-lingual verdict."""
    real = _config(quick_demo, "03-crosslingual")
    site = "text.layer.8.resid"
    store = run(ExtractStep(model="offline:e5-small+random-init-0", sites=(site,), languages=("en", "es", "de", "ru",
                                                                                             "ja", "zh"),
                            device="cpu", progress=False)).store(site)
    sae = run(TrainStep(store=str(store.path), width=1536, k=16, epochs=3, device="cpu", progress=False))
    record = run(dataclasses.replace(real, stores=(str(store.path),), sae=sae.artifact("sae").path, seeds=(),
                                     null_stores=(), null_sae=None, label="control: random-init e5-small",
                                     out=str(tmp_path)))
    _not_supported(record, "control: random-init")


@pytest.mark.slow  # minutes on 2 cores: `make test-slow`
def test_crossmodal_with_a_random_image_tower_is_not_supported(quick_demo, tmp_path):
    """The same text tower and SAE, pictures through a re-initialised image tower: no feature can bridge."""
    real = _config(quick_demo, "11-crossmodal-tuxpaint")
    extract = _config(quick_demo, "09-extract-tuxpaint", ExtractStep)
    model = f"{extract.model}+random-image-0"
    stores = run(dataclasses.replace(extract, model=model, progress=False, out=None))
    record = run(dataclasses.replace(real, stores=tuple(str(stores.store(s).path) for s in extract.sites),
                                     label="control: random-weight image tower", out=str(tmp_path)))
    _not_supported(record, "control: random-weight image tower")


def test_steering_along_a_random_direction_is_not_supported(quick_demo, tmp_path):
    """Where the SAE has a confirmed feature for the concept, a random direction at its clamp's norm must not steer;
    where it has none, neither can be tested (the planted controls are in test_controls_steer.py)."""
    real = _config(quick_demo, "20-steer", SteerStep)
    record = run(dataclasses.replace(real, control="random-direction", out=str(tmp_path)))
    if _record(quick_demo, "20-steer").status == "cannot be tested":
        assert record.status == "cannot be tested" and "has no feature for" in record.verdict, record.verdict
    else:
        _not_supported(record, "control: random-direction")


def test_matching_the_random_init_copy_better_than_the_trained_model_is_not_supported(quick_demo, tmp_path):
    """B and its null swapped: e5-small's features must not match MiniLM's random-init copy better than MiniLM."""
    real = _config(quick_demo, "19-match-unrelated", MatchStep)
    swapped = dataclasses.replace(real, store_b=real.store_null[0], sae_b=real.sae_null[0], store_null=(real.store_b,),
                                  sae_null=(real.sae_b,), seeds_b=(), label="control: B is the random-init copy",
                                  out=str(tmp_path))          # (B's other seeds are MiniLM's: none for the copy)
    _not_supported(run(swapped), "control: B is the random-init copy")
