"""Features against neurons, like for like, on planted stores. Where concepts are random directions (every neuron
a mixture), the SAE's features must pick them out better than the neurons read the same way: supported. Where each
concept is a neuron, the neurons already do, and the SAE cannot beat them; on noise nothing does."""

from __future__ import annotations

import pytest
from planted_stores import draw, not_supported, supported, train_saes, write

from mmfeatures.pipeline import AnalyzeStep, run


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("planted-neurons")


def compare(store_dir, name: str, **kind):
    scored = write(draw(**kind), store_dir, name)["text.embed"]
    saes = train_saes(write(draw(train=True, **kind), store_dir, name)["text.embed"], k=4, epochs=100)
    return run(AnalyzeStep(stores=(scored,), sae=saes[0], seeds=tuple(saes[1:]), kind="features-vs-neurons",
                           n_perm=19, out=str(store_dir / f"run-{name}")))


def test_features_beat_neurons_where_concepts_are_mixtures_of_neurons(store_dir):
    supported(compare(store_dir, "fn-mixed"))


def test_features_do_not_beat_neurons_that_are_the_concepts(store_dir):
    record = compare(store_dir, "fn-axis", axis=True)
    t = record.tests[0]
    not_supported(record)
    assert t["p_value"] <= 0.05, "the SAE's features do pick out concepts; the neurons are what they do not beat"


def test_noise_has_no_detectors(store_dir):
    """On noise an SAE of 96 latents may hold one chance detector: never supported (here 'not supported' or, with one
    unit's worth of effect inside the interval, 'inconclusive')."""
    record = compare(store_dir, "fn-noise", signal=False)
    assert record.supported is not True and not record.tests[0]["passes"], record.verdict


def test_features_against_neurons_needs_an_sae(store_dir):
    from mmfeatures.errors import InputError

    scored = write(draw(), store_dir, "fn-mixed")["text.embed"]
    with pytest.raises(InputError, match="give --sae"):
        run(AnalyzeStep(stores=(scored,), kind="features-vs-neurons", out=None))
