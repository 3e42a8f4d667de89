"""The splice verdict on e5-small with SAEs built by hand: one that rebuilds every input exactly must be supported;
one that writes the site's mean whatever it reads cannot even beat its shuffled-decoder null; an untrained one is
the baseline itself (random directions of its width and L0), so it beats the null but not the baseline."""

from __future__ import annotations

import pytest
from planted_stores import not_supported, splice_saes, supported

from mmfeatures.pipeline import ExtractStep, FidelityStep, run

SITE = "text.layer.8.resid"


@pytest.fixture(scope="module")
def saes(tmp_path_factory):
    store = run(ExtractStep(model="offline:e5-small", sites=(SITE,), languages=("en", "es", "de", "fr"),
                            device="cpu", progress=False)).store(SITE)
    return store, splice_saes(store, tmp_path_factory.mktemp("splice"))


def splice(saes, name: str, tmp_path):
    store, folders = saes
    return run(FidelityStep(saes=(folders[name],), store=str(store.path), languages=("en",), n_sentences=64,
                            out=str(tmp_path)))


def test_an_sae_that_rebuilds_its_inputs_keeps_the_model(saes, tmp_path):
    supported(splice(saes, "identity", tmp_path))


def test_an_sae_that_writes_the_mean_is_not_supported(saes, tmp_path):
    record = splice(saes, "mean", tmp_path)
    not_supported(record)
    assert record.tests[0]["p_value"] > 0.05, record.tests[0]


def test_an_untrained_sae_is_no_better_than_random_directions(saes, tmp_path):
    record = splice(saes, "untrained", tmp_path)
    t = record.tests[0]
    not_supported(record)
    assert t["p_value"] <= 0.05 and t["effect"] < t["floor"], t
