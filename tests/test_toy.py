"""Toy models of superposition reproduce Elhage et al.'s qualitative results (on CPU, in seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from mmfeatures.errors import InputError
from mmfeatures.toy import ToyConfig, dimensions_per_feature, feature_dimensionality, superposition, train_toy


@pytest.fixture(scope="module")
def small():
    return train_toy(ToyConfig(n_features=5, n_hidden=2, importance_decay=0.9, steps=6000), [0.0, 0.95])


def angles(w: np.ndarray, norms: np.ndarray) -> np.ndarray:
    return np.sort(np.degrees(np.arctan2(w[1], w[0]))[norms > 0.5])


def test_dense_inputs_keep_the_two_most_important_features_orthogonal(small):
    w, norms = small.W[0], np.linalg.norm(small.W[0], axis=0)
    assert norms[:2].min() > 0.9 and norms[2:].max() < 0.5
    cos = w[:, 0] @ w[:, 1] / (norms[0] * norms[1])
    assert abs(cos) < 0.1
    assert superposition(small.W)[0, :2].max() < 0.05


def test_sparse_inputs_store_all_five_in_a_pentagon(small):
    w, norms = small.W[1], np.linalg.norm(small.W[1], axis=0)
    assert norms.min() > 0.8
    gaps = np.diff(np.r_[angles(w, norms), angles(w, norms)[0] + 360])
    assert len(gaps) == 5 and np.abs(gaps - 72).max() < 12
    assert dimensions_per_feature(small.W)[1] < 0.5 < dimensions_per_feature(small.W)[0]


def test_metrics_on_known_geometries():
    ortho = np.eye(3)[None]                      # 3 features, 3 dims: one dimension each
    assert dimensions_per_feature(ortho)[0] == pytest.approx(1.0)
    assert np.allclose(feature_dimensionality(ortho), 1.0) and np.allclose(superposition(ortho), 0.0)
    angles_ = np.radians([0, 72, 144, 216, 288])
    pentagon = np.stack([np.cos(angles_), np.sin(angles_)])[None]
    assert dimensions_per_feature(pentagon)[0] == pytest.approx(2 / 5)
    assert np.allclose(feature_dimensionality(pentagon), 2 / 5)
    antipodal = np.array([[[1.0, -1.0]]])        # two features sharing one dimension
    assert np.allclose(feature_dimensionality(antipodal), 1 / 2)


def test_bad_config_is_named():
    with pytest.raises(InputError, match="sparsities must be in"):
        train_toy(ToyConfig(steps=1), [1.0])
    with pytest.raises(InputError, match="must be positive"):
        ToyConfig(n_hidden=0)


FRACTIONS = np.array([1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8])


def n200(feature_probabilities, steps: int = 3000):
    """n = 200 features in m = 20 dimensions, uniform importance: D* per level and the D_i fractions that at least
    10 represented features (norm > 0.5) sit on, within 0.02."""
    result = train_toy(ToyConfig(n_features=200, n_hidden=20, steps=steps, batch_size=512),
                       [1 - p for p in feature_probabilities])
    di = feature_dimensionality(result.W)[np.linalg.norm(result.W, axis=1) > 0.5]
    counts = {float(f): int((np.abs(di - f) < 0.02).sum()) for f in FRACTIONS}
    return dimensions_per_feature(result.W), [f for f, c in counts.items() if c >= 10], counts


def test_many_features_sit_at_half_a_dimension_on_five_levels():
    """The n = 200 check at a size for `make test` (about a minute on 2 CPU cores): five feature probabilities,
    two of them on the paper's 1/2 plateau (0.4 and 0.3, where the 20-level slow run finds it)."""
    d_star, hits, counts = n200([1.0, 0.4, 0.3, 0.22, 0.03])
    assert d_star[0] > 0.9 and d_star[-1] < 0.2 and np.all(np.diff(d_star) < 0.05), d_star
    assert np.all(np.abs(d_star[1:3] - 0.5) < 0.05), d_star                # the plateau at 1/2
    assert 0.5 in hits and 0.4 in hits, counts                             # D_i at 1/2 and at 2/5


@pytest.mark.slow
def test_many_features_plateau_at_half_a_dimension():
    """n = 200, m = 20, uniform importance, 20 sparsity levels (about 2-4 minutes on 2 CPU cores).

    D* falls with sparsity and sits near 1/2 on a plateau of consecutive levels. D_i clusters appear at
    some of the paper's fractions; most features need not sit on one, as in the authors' own run."""
    d_star, hits, counts = n200(np.logspace(0, -2.5, 20))      # feature probability from 1 down to ~0.003
    assert d_star[0] > 0.9 and d_star[-1] < 0.2 and np.all(np.diff(d_star) < 0.05), d_star
    on_half = np.abs(d_star - 0.5) < 0.05
    assert np.any(on_half[:-1] & on_half[1:]), d_star      # two consecutive levels at ~1/2
    assert len(hits) >= 2, counts
