"""The analyses recover planted ground truth, find nothing in noise, and refuse bad input by name."""

from __future__ import annotations

import numpy as np
import pytest

import mmfeatures as mmf
from mmfeatures.analysis import (
    Labels,
    Score,
    bridge_matrix,
    compare,
    crosslingual,
    crossmodal,
    interpretability,
    language_entropy,
    monolinguality,
    planted,
    pool_by_example,
    translation_overlap,
    unit_activations,
)
from mmfeatures.analysis.stats import auroc_by_class, benjamini_hochberg, ranks
from mmfeatures.errors import InputError, SiteError


@pytest.fixture(scope="module")
def truth():
    p = planted(seed=0)
    z, kind = p.units()
    return p, z, kind


def precision_recall(found: np.ndarray, planted_mask: np.ndarray) -> tuple[float, float]:
    tp = (found & planted_mask).sum()
    return tp / max(found.sum(), 1), tp / max(planted_mask.sum(), 1)


def test_class_sums_by_row_index_equal_the_matrix_product():
    """Single-label rows (some with no class) are summed by index; multi-label rows by a GEMM: both equal x^T onehot."""
    from mmfeatures.analysis.stats import class_sums

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 7)).astype(np.float32)
    single = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 3000)]
    single[::7] = 0
    multi = (rng.random((3000, 5)) < 0.4).astype(np.float32)
    for onehot in (single, multi):
        np.testing.assert_allclose(class_sums(x, onehot), x.astype(np.float64).T @ onehot, rtol=1e-5, atol=1e-3)


def test_sparse_ranks_equal_scipy_with_ties_and_dead_columns():
    """Mostly-zero non-negative columns take the sort-the-non-zeros path; signed ones scipy's: both average ties."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(2)
    z = np.maximum(rng.normal(size=(500, 70)) - 1, 0).round(1).astype(np.float32)
    z[:, 3] = 0
    for x in (z, z - 0.5):
        np.testing.assert_array_equal(ranks(x, block=16), rankdata(x, axis=0).astype(np.float32))


def test_auroc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    z = np.maximum(rng.standard_normal((40, 5)), 0).round(1)  # many ties at zero
    classes = rng.integers(0, 3, 40)
    onehot = np.eye(3, dtype=np.float32)[classes]
    fast = auroc_by_class(ranks(z), onehot)
    for f in range(5):
        for c in range(3):
            pos, neg = z[classes == c, f], z[classes != c, f]
            pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
            assert fast[f, c] == pytest.approx(pairs, abs=1e-5)


def test_score_p_value_and_bh():
    s = Score("x", 0.9, np.array([0.1, 0.2, 0.95]))
    assert s.p_value == pytest.approx(2 / 4) and s.null_mean == pytest.approx(0.4166, abs=1e-3)
    assert Score("y", 0.1, np.array([0.5, 0.6]), "less").p_value == pytest.approx(1 / 3)
    assert benjamini_hochberg(np.array([0.001, 0.03, 0.02, 0.9]), 0.05).tolist() == [True, True, True, False]


def test_planted_crosslingual_units_are_recovered(truth):
    p, z, kind = truth
    result = crosslingual(z, p.labels, n_perm=10)
    assert min(precision_recall(result.multilingual, kind == "concept")) >= 0.9
    assert min(precision_recall(result.language_specific, kind == "language")) >= 0.9
    for name in ("multilingual", "language_specific", "entropy", "monolinguality", "overlap"):
        assert result.scores[name].p_value < 0.1, result.scores[name]
    units = result.units()
    assert (units.loc[kind == "concept", "concept"].tolist() == [f"c{i}" for i in range((kind == "concept").sum())])
    nu, langs = monolinguality(z, p.labels)
    language_units = np.flatnonzero(kind == "language")
    assert [langs[i] for i in nu[language_units].argmax(1)] == [f"l{i}" for i in range(len(language_units))]


def test_pure_noise_gives_nothing_beyond_its_null():
    p = planted(signal=False, seed=3)
    z, _ = p.units()
    cl = crosslingual(z, p.labels, n_perm=10)
    cm = crossmodal(z, p.labels, n_perm=10)
    assert cl.multilingual.sum() == 0 and cl.language_specific.sum() == 0 and cm.multimodal.sum() == 0
    for score in [*cl.scores.values(), *cm.scores.values()]:
        assert score.p_value > 0.05 or score.value <= score.null_mean, score


def test_translation_overlap_against_random_pairs(truth):
    p, z, _ = truth
    overlap = translation_overlap(z, p.labels, n_perm=10)
    assert overlap.score.value > 2 * overlap.score.null_mean and overlap.score.p_value < 0.1
    assert len(overlap.by_language) == 15 and all(0 <= v <= 1 for v in overlap.by_language.values())
    dense = translation_overlap(p.x, p.labels, k=8, n_perm=10)  # neurons: top-k active sets
    assert np.isfinite(dense.score.value)


def test_planted_crossmodal_units_are_recovered(truth):
    p, z, kind = truth
    result = crossmodal(z, p.labels, n_perm=10)
    assert min(precision_recall(result.multimodal, kind == "concept")) >= 0.9
    precision, recall = precision_recall(result.bridge & result.alive, kind == "concept")
    assert recall == 1.0 and precision >= 0.75
    assert result.modality_score[kind == "image"].min() > 0.9
    assert np.nanmax(result.modality_score[kind == "language"]) < 0.1
    assert result.scores["multimodal"].p_value < 0.1 and result.scores["bridge"].p_value < 0.1
    counts, edges = result.histogram()
    assert counts.sum() == result.alive.sum() and edges[0] == 0 and edges[-1] == 1


def test_pictures_of_concepts_without_names_stay_out_of_the_null(truth):
    """Most pictures have no text row of their concept (Tux Paint's pictures against FreeDict's words): the null
    shuffles the scored pictures' concepts among themselves, so every shared concept keeps its pictures."""
    p, z, kind = truth
    named = sorted(set(p.labels.concept))[:10]                 # 14 of 24 concepts: pictures only
    keep = np.flatnonzero(p.labels.mask(modality="image") | p.labels.mask(concept=named))
    result = crossmodal(z[keep], p.labels.take(keep), n_perm=20)
    assert result.scores["multimodal"].p_value <= 0.05 and result.multimodal.sum() > 0


def test_bridge_matrix_uses_decoder_geometry(truth):
    p, z, kind = truth
    concept_units = np.flatnonzero(kind == "concept")[:5]
    plain = bridge_matrix(z, p.labels, concept_units)
    assert plain.shape == (5, 5) and np.all(np.diag(plain) > 0)
    assert np.diag(plain).min() > np.abs(plain - np.diag(np.diag(plain))).max()
    orthogonal = bridge_matrix(z, p.labels, concept_units, decoder=np.eye(z.shape[1], 8))
    assert np.allclose(orthogonal - np.diag(np.diag(orthogonal)), 0)
    from mmfeatures.analysis.crossmodal import bridge_matrix_score

    planted_score = bridge_matrix_score(z, p.labels, concept_units, n_perm=10)
    assert planted_score.p_value < 0.1 and planted_score.value > 2 * planted_score.null_mean
    noise_units = np.flatnonzero(kind == "noise")[:5]
    assert bridge_matrix_score(z, p.labels, noise_units, n_perm=10).p_value > 0.05


def test_planted_features_beat_neurons(truth):
    p, z, kind = truth
    features = interpretability(z[:, kind == "concept"], p.labels)
    neurons = interpretability(p.x, p.labels, signed=True)
    result = compare(features.auroc, neurons.auroc)
    assert result.p_value < 0.01 and result.difference_ci[0] > 0
    assert np.nanmedian(features.correlation) > np.nanmedian(neurons.correlation)
    assert np.nanmedian(features.null_auroc) < np.nanmedian(features.auroc)


def test_too_few_rows_name_the_cell(truth):
    p, z, _ = truth
    keep = ~((p.labels.language == "l3") & (p.labels.concept != "c0"))
    with pytest.raises(InputError, match="l3: 2"):
        language_entropy(z[keep], p.labels.take(np.flatnonzero(keep)))
    with pytest.raises(InputError, match="one row per label"):
        crosslingual(z[:10], p.labels)
    texts = p.labels.mask(modality="text")
    with pytest.raises(InputError, match="need image and text rows"):
        crossmodal(z[texts], p.labels.take(np.flatnonzero(texts)))


def test_pooling_by_example():
    z = np.array([[1, 0], [3, -1], [2, 5]], np.float32)
    pooled, idx = pool_by_example(z, np.array([4, 4, 7]))
    assert idx.tolist() == [4, 7] and pooled.tolist() == [[3, 0], [2, 5]]
    mean, _ = pool_by_example(z, np.array([4, 4, 7]), "mean")
    assert mean.tolist() == [[2, -0.5], [2, 5]]


def test_store_and_sae_must_match(tmp_path, e5):
    ds = mmf.ConceptDataset.builtin(["concepts"]).select(concepts=["dog", "cat"], languages=["en", "ja"])
    store = mmf.extract(e5, ds, ["text.layer.11.resid"], pooling="none", store_dir=tmp_path,
                        progress=False).stores["text.layer.11.resid"]
    z, labels = unit_activations(store)
    assert z.shape == (8, 384) and labels.group.tolist().count("1") == 4
    sae = mmf.load_sae("offline:e5-small/latent-terms")
    latents, labels = unit_activations(store, sae)
    assert latents.shape == (8, 16384) and (latents > 0).sum(1).min() > 0
    wrong = mmf.extract(e5, ds, ["text.layer.5.resid"], pooling="mean", store_dir=tmp_path,
                        progress=False).stores["text.layer.5.resid"]
    with pytest.raises(SiteError, match="site .text.layer.11.resid. .*text.layer.5.resid"):
        unit_activations(wrong, sae)
    small = mmf.SAE(16, 64, mmf.TopK(k=4))
    with pytest.raises(SiteError, match="width 16.*width 384"):
        unit_activations(store, small)
    with pytest.raises(InputError, match="Labels.language has 1 entries"):
        Labels(np.array(["a", "b"]), np.array(["en"]), np.array(["text", "text"]))


def test_purity_is_not_made_by_tied_zero_rows():
    """A sparse unit that fires on 3 random rows has its other top rows tied at 0; with rows ordered by
    concept, arbitrary tie-breaking took them from one concept block and called the unit pure (0.5 and
    more). Ties are broken at random now; a unit that really fires on one concept still scores 1."""
    from mmfeatures.analysis.interpret import top_purity

    n_concepts, per = 10, 40
    onehot = np.repeat(np.eye(n_concepts), per, axis=0)               # rows ordered by concept
    rng = np.random.default_rng(1)
    z = np.zeros((n_concepts * per, 2), np.float32)
    z[rng.choice(len(z), 3, replace=False), 0] = 1.0                   # sparse, concept-blind
    z[per * 4:per * 5, 1] = rng.random(per) + 1                       # fires on concept 4 only
    purity = top_purity(z, onehot, per)
    assert purity[0] < 0.3 and purity[1] == 1.0


def test_a_p_value_at_the_permutation_floor_is_printed_as_a_bound():
    from mmfeatures.analysis.stats import Score, p_text

    assert p_text(0.01, 99) == "p ≤ 0.01" and p_text(0.03, 99) == "p = 0.03"
    assert "p ≤ 0.0476" in str(Score("x", 5.0, np.zeros(20)))


def _units_by(labels, *fields):
    """One unit per distinct value of ``fields`` (plus noise): it fires on the text rows holding that value."""
    keys = [tuple(getattr(labels, f)[i] for f in fields) for i in range(len(labels))]
    index = {k: j for j, k in enumerate(dict.fromkeys(keys))}
    z = np.random.default_rng(0).random((len(labels), len(index))).astype(np.float32) * 0.1
    z[np.arange(len(labels)), [index[k] for k in keys]] += 1.0
    return np.where(z > 0.5, z, 0)


def test_overlap_controls_separate_concepts_from_shared_sentences():
    """Units tied to a concept pass the concept-level control; units tied to one sentence (its translations share
    them, the concept's other sentence does not) pass the old translation-overlap test but must fail the concept
    control; with concepts shuffled both fail."""
    from mmfeatures.analysis.consistency import overlap_controls
    from mmfeatures.analysis.stats import permuted

    labels = planted(seed=1).labels
    concept_units = overlap_controls(_units_by(labels, "concept"), labels, n_perm=19)
    sentence_units = _units_by(labels, "concept", "group")
    sentence = overlap_controls(sentence_units, labels, n_perm=19)
    assert concept_units["concept_overlap"].p_value <= 0.05 and concept_units["overlap_vs_language"].p_value <= 0.05
    assert translation_overlap(sentence_units, labels, n_perm=19).score.p_value <= 0.05      # the old test passes
    assert sentence["concept_overlap"].p_value > 0.05 and sentence["overlap_vs_language"].p_value <= 0.05
    shuffled = permuted(labels, "concept", np.random.default_rng(0), within="language")
    null = overlap_controls(_units_by(labels, "concept"), shuffled, n_perm=19)
    assert null["concept_overlap"].p_value > 0.05
