"""Best partners in tiles, their nulls and one-to-one matching in bounded memory, each against the full matrix."""

import numpy as np
import pytest

from mmfeatures.analysis import (
    StreamingCorrelation,
    best_partners,
    hungarian,
    match_one_to_one,
    permuted_rows_null,
)
from mmfeatures.errors import InputError


def _pair(seed: int = 0, n: int = 600, d_a: int = 70, d_b: int = 90, density: float = 1.0):
    """A and B over the same rows; B's first d_a columns are noisy copies of A's, a column of each is dead."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d_a)).astype(np.float32) + 50.0            # far from zero: the centring matters
    b = np.c_[a + rng.standard_normal((n, d_a)), rng.standard_normal((n, d_b - d_a))].astype(np.float32)
    if density < 1:
        a, b = a * (rng.random(a.shape) < density), b * (rng.random(b.shape) < density)
    a[:, 5], b[:, 7] = 3.0, 0.0
    return a, b


def _full(a, b, m, absolute=False):
    acc = StreamingCorrelation(a.shape[1], b.shape[1])
    acc.update(a, b)
    values, index = acc.topm(m, absolute=absolute)
    return values.numpy(), index.numpy(), acc.alive_a.numpy()


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("absolute", [False, True])
def test_tiled_partners_equal_the_full_matrix(sparse, absolute):
    a, b = _pair(density=0.1 if sparse else 1.0)
    if absolute:
        b = -b
    values, index, alive = _full(a, b, 3, absolute)
    p = best_partners(a, b, 3, absolute=absolute, sparse=sparse, tile=32)   # several tiles on each side
    assert p.method == ("sparse" if sparse else "dense tiles")
    assert np.array_equal(p.alive_a, alive) and not p.alive_a[5]
    np.testing.assert_allclose(p.values[alive], values[alive], atol=1e-5)
    assert (p.index[alive, 0] == index[alive, 0]).all()


def _mixed(seed: int = 2):
    """A whose first half of columns is mostly zero (3% of rows, far from zero where they fire: the CSR path and
    its centring correction) and whose second half is dense."""
    a, b = _pair(seed, n=800)
    keep = np.random.default_rng(seed).random((len(a), 35)) < 0.03
    a[:, :35] *= keep
    b[:, :35] = a[:, :35] + keep * np.random.default_rng(seed + 1).standard_normal((len(a), 35)).astype(np.float32)
    return a, b


def test_mostly_zero_columns_multiply_from_their_non_zeros_to_the_same_r():
    a, b = _mixed()
    values, index, alive = _full(a, b, 3)
    p = best_partners(a, b, 3, sparse=False, tile=32)     # tiles mixing CSR and dense columns
    assert np.array_equal(p.alive_a, alive)
    np.testing.assert_allclose(p.values[alive], values[alive], atol=1e-5)
    assert (p.index[alive, 0] == index[alive, 0]).all() and (p.index[:35, 0] == np.arange(35)).all()
    rng = np.random.default_rng(0)
    expected = [_full(a, b[rng.permutation(len(b))], 1) for _ in range(2)]
    got = permuted_rows_null(a, b, n_perm=2, statistic=lambda r: r)
    for row, (v, _, live) in zip(got, expected, strict=True):
        np.testing.assert_allclose(row, v[live, 0], atol=1e-5)


def test_the_density_decides_the_path():
    a, b = _pair(density=0.005, n=4000)
    assert best_partners(a, b).method == "sparse"
    assert best_partners(*_pair()).method == "dense tiles"


def test_permuted_rows_null_equals_shuffling_b_against_a_full_matrix():
    """The null permutes A's subset by the inverse of the permutation it draws for B: the same values as
    shuffling B's rows (the draws are the same), to 1e-5."""
    a, b = _pair(1)
    rng = np.random.default_rng(0)
    expected = []
    for _ in range(3):
        values, _, alive = _full(a, b[rng.permutation(len(b))], 1)
        expected.append(np.median(values[alive, 0]))
    np.testing.assert_allclose(permuted_rows_null(a, b, n_perm=3), expected, atol=1e-5)


def test_one_to_one_is_exact_where_it_fits_and_sparse_beyond():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((800, 60)).astype(np.float32)
    perm = rng.permutation(80)[:60]
    b = rng.standard_normal((800, 80)).astype(np.float32)
    b[:, perm] = a + 0.8 * rng.standard_normal(a.shape)
    exact = match_one_to_one(a, b)
    acc = StreamingCorrelation(60, 80)
    acc.update(a, b)
    assert exact.method == "hungarian" and (exact.b == hungarian(acc.correlation().double().numpy()).b).all()
    bounded = match_one_to_one(a, b, m=4, dense_bytes=0)
    assert bounded.method == "sparse-top4" and (bounded.b == perm).all() and (bounded.b == exact.b).all()
    np.testing.assert_allclose(bounded.r, exact.r, atol=1e-5)


def test_rows_with_nan_are_dropped_as_the_streaming_accumulator_drops_them():
    a, b = _pair(3)
    broken = b.copy()
    broken[5, 3] = np.nan
    with_nan, without = best_partners(a, broken, 2), best_partners(np.delete(a, 5, 0), np.delete(b, 5, 0), 2)
    np.testing.assert_allclose(with_nan.values, without.values, atol=1e-6)
    assert np.isfinite(with_nan.values).all()


def test_bad_input_names_the_problem():
    a, b = _pair()
    with pytest.raises(InputError, match="A has 0 units"):
        best_partners(a[:, :0], b)
    with pytest.raises(InputError, match="same rows"):
        best_partners(a, b[:-1])
    with pytest.raises(InputError, match="m >= 1"):
        best_partners(a, b, 0)
