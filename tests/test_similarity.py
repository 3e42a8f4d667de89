"""Linear CKA, its null and SVCCA in bounded memory equal the textbook float64 computations."""

import numpy as np
import pytest

from mmfeatures.analysis import cka_null, linear_cka, similarity, svcca
from mmfeatures.errors import InputError


def _reference_cka(x, y) -> float:
    x = np.asarray(x, np.float64) - np.mean(x, 0)
    y = np.asarray(y, np.float64) - np.mean(y, 0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _related(n: int, d_x: int, d_y: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d_x)).astype(np.float32) + 20.0
    y = np.c_[x[:, :d_y // 2] @ rng.standard_normal((d_y // 2, d_y // 2)), rng.standard_normal((n, d_y - d_y // 2))]
    return x, (y + 0.5 * rng.standard_normal(y.shape)).astype(np.float32)


@pytest.mark.parametrize("shape", [(60, 300, 200), (3000, 40, 30)])       # Gram path, then the units path
def test_linear_cka_equals_the_float64_formula(shape):
    x, y = _related(*shape)
    assert linear_cka(x, y) == pytest.approx(_reference_cka(x, y), abs=1e-5)


@pytest.mark.parametrize("shape", [(80, 120, 90), (900, 20, 16)])        # permuted Grams; unit blocks per draw
def test_cka_null_equals_shuffling_y(shape):
    x, y = _related(*shape, seed=1)
    score = cka_null(x, y, 4, seed=3)
    rng = np.random.default_rng(3)
    expected = [_reference_cka(x, y[rng.permutation(len(y))]) for _ in range(4)]
    np.testing.assert_allclose(score.null, expected, atol=1e-5)
    assert score.value == pytest.approx(_reference_cka(x, y), abs=1e-5) and score.value > max(expected)


def test_svcca_sketch_equals_the_exact_svd(monkeypatch):
    """A low-rank signal plus small noise: the randomized top directions give the exact SVCCA to 1e-4."""
    rng = np.random.default_rng(4)
    basis = rng.standard_normal((600, 12))
    x = (basis @ rng.standard_normal((12, 300)) + 0.01 * rng.standard_normal((600, 300))).astype(np.float32)
    y = (basis[:, :8] @ rng.standard_normal((8, 250)) + 0.01 * rng.standard_normal((600, 250))).astype(np.float32)
    exact = svcca(x, y)
    monkeypatch.setattr(similarity, "EXACT_SVD", 100)
    import torch

    torch.manual_seed(7)
    before = torch.rand(3)
    torch.manual_seed(7)
    assert svcca(x, y) == pytest.approx(exact, abs=1e-4)
    assert torch.equal(torch.rand(3), before)                     # the sketch leaves the caller's RNG alone


def test_similarity_bad_input_names_the_shapes():
    with pytest.raises(InputError, match=r"\(5, 3\) and y is \(4, 3\)"):
        linear_cka(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(InputError, match=r"\(5, 0\)"):
        cka_null(np.zeros((5, 0)), np.zeros((5, 3)), 2)
