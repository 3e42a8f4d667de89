"""The Golden-Gate analog on a real model: clamping an e5 'dog' feature pulls dog sentences up the ranking."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

import mmfeatures as mmf
from mmfeatures.analysis import unit_activations
from mmfeatures.analysis.stats import auroc_by_class, ranks
from mmfeatures.analysis.steering import max_activation, retrieval_curve

SITE = "text.layer.8.resid"
OTHER = ("bread", "chair", "river", "school", "red", "five", "freedom", "run", "happiness", "village")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, e5):
    """A TopK SAE trained here on e5 layer-8 token activations of the built-in sentences (~30 s on CPU)."""
    tmp = tmp_path_factory.mktemp("steer")
    ds = mmf.ConceptDataset.builtin(["concepts"])
    store = mmf.extract(e5, ds, [SITE], pooling="none", store_dir=tmp, batch_size=64, progress=False).stores[SITE]
    sae = mmf.train(store, mmf.TrainConfig(mmf.TopK(k=16), 1536, batch_size=2048, epochs=3), tmp / "sae",
                    progress=False).sae
    return ds, store, sae


def test_steering_a_concept_feature_beats_a_random_feature(setup, e5):
    ds, store, sae = setup
    z, labels = unit_activations(store, sae)
    onehot, concepts = labels.onehot("concept")
    auc = auroc_by_class(ranks(z), onehot)[:, concepts.index("dog")]
    dog = int(auc.argmax())
    assert auc[dog] > 0.9
    alive = np.flatnonzero((z > 0).sum(0) >= 20)
    control = int(np.random.default_rng(0).choice(alive[alive != dog]))
    english = [e for e in ds if e.language == "en"]
    pool, target = [e.content for e in english], [e.concept == "dog" for e in english]
    queries = [e.content for e in english if e.concept in OTHER]
    x = store.rows(np.arange(store.n_rows))
    curves = {}
    for name, feature in (("dog", dog), ("control", control)):
        scale = max_activation(sae, x, feature)
        values, rank = retrieval_curve(e5, SITE, sae, feature, queries, pool, target, [0.0, 2 * scale, 5 * scale])
        curves[name] = rank
    dog_rank, control_rank = curves["dog"], curves["control"]
    assert np.median(dog_rank[0]) > 50                    # unsteered: dog sentences are far down the ranking
    assert np.median(dog_rank[2]) <= 10                   # clamped at 5x its maximum: near the top
    assert np.all(np.median(dog_rank, 1)[1:] <= np.median(dog_rank, 1)[:-1])   # monotone in c
    assert wilcoxon(dog_rank[2], control_rank[2], alternative="less").pvalue < 0.01


def test_splicing_the_sae_recovers_most_of_the_clean_model(setup, e5):

    from mmfeatures.analysis.fidelity import fidelity

    ds, store, sae = setup
    part = ds.select(languages=["en", "es", "ja", "sw"])
    result = fidelity(e5, SITE, sae, part, mean=store.stats().mean_d)
    clean, spliced, zero = result.scores["clean"], result.scores["sae"], result.scores["zero"]
    assert clean["cosine"] == pytest.approx(1.0, abs=1e-5) and clean["retrieval"] > 20 / 123  # chance: 1/123
    assert zero["cosine"] < spliced["cosine"] < 1.0 and result.scores["mean"]["cosine"] < spliced["cosine"]
    for baseline in ("zero", "mean"):
        for metric in ("cosine", "retrieval", "crosslingual"):
            assert 0.3 < result.recovered[baseline][metric] <= 1.05, (baseline, metric, result.scores)
    assert set(result.row()) >= {"site", "cosine", "recovered_retrieval_vs_zero"}
