"""The steering verdict on e5-small with a feature planted by construction in the shipped SAE: one latent reads
the concept's direction and writes it back. Clamping it must be supported; with its decoder writing a random
direction instead (the same confirmed feature, nothing of the concept written) it must not; an SAE with no feature
for the concept cannot test the claim."""

from __future__ import annotations

import pytest
from planted_stores import planted_feature_sae, supported

from mmfeatures.pipeline import ExtractStep, SteerStep, run

SAE = "data:e5-small-layer8-seed0"
SITE = "text.layer.8.resid"


@pytest.fixture(scope="module")
def store():
    return run(ExtractStep(model="offline:e5-small", sites=(SITE,), languages=("en", "es", "de", "fr"),
                           device="cpu", progress=False)).store(SITE)


def steer(sae: str, store, tmp_path, **kw):
    return run(SteerStep(sae=sae, store=str(store.path), n_perm=19, out=str(tmp_path), **kw))


def fresh_sae(folder) -> str:
    """The shipped SAE's encoder and decoder re-initialised at random: no latent is confirmed for 'dog'."""
    import torch

    from mmfeatures.sae import SAE as Model
    from mmfeatures.sae import TopK, load_sae, save_sae

    shipped = load_sae(SAE)
    fresh = Model(shipped.d_in, shipped.d_sae, TopK(k=16), seed=3)
    with torch.no_grad():
        fresh.b_dec.copy_(shipped.b_dec)
    return str(save_sae(fresh, folder, model_name="offline:e5-small", hook_name=SITE, key="fresh-3"))


def test_a_planted_concept_feature_steers(store, tmp_path):
    """The planted SAE as a seed beside one without the feature: the seed with a confirmed feature leads, the other
    is left out of the interval and named."""
    sae, feature = planted_feature_sae(SAE, store, "dog", tmp_path / "planted")
    fresh = fresh_sae(tmp_path / "fresh")
    record = steer(fresh, store, tmp_path / "run", seeds=(sae,))
    assert record.features == (feature,), record.tables[0]
    assert "left out of the interval" in record.verdict and fresh in record.verdict
    supported(record)


def test_a_planted_feature_that_writes_a_random_direction_does_not_steer(store, tmp_path):
    sae, feature = planted_feature_sae(SAE, store, "dog", tmp_path / "random", decoder="random")
    record = steer(sae, store, tmp_path / "run")
    assert record.features == (feature,), record.tables[0]
    assert record.supported is not True and not record.tests[0]["passes"], record.verdict


def test_an_sae_without_a_feature_for_the_concept_cannot_test_it(store, tmp_path):
    record = steer(fresh_sae(tmp_path / "fresh"), store, tmp_path / "run")
    assert record.status == "cannot be tested" and record.supported is None, record.verdict
    assert "has no feature for 'dog'" in record.verdict
