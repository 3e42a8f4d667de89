"""Whole-representation similarity: linear CKA, SVCCA and RSA between two (rows x units) activation matrices over
the same rows, in memory bounded by rows x units (never units x units at 16k latents).

- ``linear_cka`` works on the rows' Gram matrices (rows x rows, fp32) when there are fewer rows than units, else
  on units-by-units blocks of the cross-products, one tile at a time; ``cka_null`` reuses the Grams for every
  row permutation, so its null costs n^2 per permutation instead of a product over all units.
- ``svcca`` keeps each side's top singular directions: exact SVD up to ``EXACT_SVD`` on the short side, else a
  randomized SVD (a sketch of max_dims + 16 directions, 4 power iterations).
- ``rsa`` compares cosine-distance matrices over a random subset of rows (``n_rows``).
"""

from __future__ import annotations

import numpy as np
import torch

from mmfeatures.errors import InputError

EXACT_SVD = 2048
"""SVCCA's exact SVD up to this many rows or units on the short side; a randomized sketch beyond."""
GRAM_ROWS = 16_384
"""Linear CKA through rows x rows Gram matrices up to this many rows (2 GiB for the two fp32 Grams)."""


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise InputError(f"x is {x.shape} and y is {y.shape}; give (rows x units) arrays over the same rows")
    if not x.shape[1] or not y.shape[1] or len(x) < 2:
        raise InputError(f"x is {x.shape} and y is {y.shape}; similarity needs >= 2 rows and >= 1 unit a side")
    return x, y


def _use_grams(x: np.ndarray, y: np.ndarray) -> bool:
    """Rows x rows Grams when there are fewer rows than units (and they fit), else units-by-units blocks."""
    return len(x) <= min(GRAM_ROWS, x.shape[1] + y.shape[1])


def _centred_tiles(x: np.ndarray, tile: int = 2048) -> list[torch.Tensor]:
    """x's columns centred (twice: the fp32 residual mean too), as fp32 tiles of ``tile`` columns."""
    from mmfeatures.analysis.partners import centred_tile

    return [centred_tile(x, start, start + tile) for start in range(0, x.shape[1], tile)]


def _gram(tiles: list[torch.Tensor]) -> torch.Tensor:
    gram = torch.zeros(len(tiles[0]), len(tiles[0]))
    for t in tiles:
        gram.addmm_(t, t.T)
    return gram


def _cross2(left: list[torch.Tensor], right: list[torch.Tensor]) -> float:
    """||L^T R||_F^2 summed block by block (float64 across blocks)."""
    return float(sum((lt.T @ rt).square().sum(dtype=torch.float64) for lt in left for rt in right))


def linear_cka(x, y) -> float:
    """Linear CKA (Kornblith et al. 2019): ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) over centred columns."""
    x, y = _pair(x, y)
    tx, ty = _centred_tiles(x), _centred_tiles(y)
    if _use_grams(x, y):
        kx, ky = _gram(tx), _gram(ty)
        return _cka_from_grams(kx, ky)
    return _cross2(ty, tx) / float(np.sqrt(_cross2(tx, tx) * _cross2(ty, ty)))


def _cka_from_grams(kx: torch.Tensor, ky: torch.Tensor) -> float:
    num = (kx * ky).sum(dtype=torch.float64)
    return float(num / torch.sqrt(kx.square().sum(dtype=torch.float64) * ky.square().sum(dtype=torch.float64)))


def cka_null(x, y, n_perm: int, seed: int = 0):
    """Linear CKA against ``n_perm`` shuffles of y's rows (the draws of ``rng.permutation``), as a Score. Where
    ``linear_cka`` uses the Grams, they are made once and permuted (K_y[p][:, p]): n^2 per permutation."""
    from mmfeatures.analysis.stats import Score

    x, y = _pair(x, y)
    rng = np.random.default_rng(seed)
    if not _use_grams(x, y):
        return Score("linear CKA", linear_cka(x, y),
                     np.array([linear_cka(x, y[rng.permutation(len(y))]) for _ in range(n_perm)]))
    kx, ky = _gram(_centred_tiles(x)), _gram(_centred_tiles(y))
    null = []
    for _ in range(n_perm):
        p = torch.from_numpy(rng.permutation(len(y)))
        null.append(_cka_from_grams(kx, ky[p][:, p]))
    return Score("linear CKA", _cka_from_grams(kx, ky), np.array(null))


def svcca(x, y, keep: float = 0.99, max_dims: int = 64) -> float:
    """SVCCA (Raghu et al. 2017): keep the top singular directions of each side that explain ``keep``
    of the variance (at most ``max_dims``), then average the canonical correlations between them."""
    x, y = _pair(x, y)
    qx, qy = _top_directions(x, keep, max_dims), _top_directions(y, keep, max_dims)
    rho = np.linalg.svd(qx.T @ qy, compute_uv=False)
    return float(np.mean(np.clip(rho, 0, 1)))


def _top_directions(m: np.ndarray, keep: float, max_dims: int) -> np.ndarray:
    """Left singular vectors (rows x dims) of the centred m that explain ``keep`` of its variance, <= max_dims."""
    if min(m.shape) <= EXACT_SVD:
        u, s, _ = np.linalg.svd(_centred(m), full_matrices=False)
        total = np.sum(s ** 2)
    else:
        centred = torch.cat(_centred_tiles(m), 1)
        total = float(centred.square().sum(dtype=torch.float64))
        with torch.random.fork_rng(devices=[]):             # a fixed sketch, without touching the caller's RNG
            torch.manual_seed(0)
            u, s, _ = torch.svd_lowrank(centred, q=min(max_dims + 16, min(m.shape)), niter=4)
        u, s = u.double().numpy(), s.double().numpy()
    dims = int(np.searchsorted(np.cumsum(s ** 2) / total, keep) + 1)
    return u[:, :min(dims, max_dims, len(s))]


def rsa(x, y, n_rows: int = 1000, seed: int = 0) -> float:
    """RSA: Spearman correlation between the two sides' pairwise cosine-distance matrices over up to
    ``n_rows`` shared rows."""
    from scipy.stats import spearmanr

    x, y = _pair(x, y)
    if len(x) > n_rows:                                   # subset first: a float64 copy of every row is not needed
        pick = np.random.default_rng(seed).choice(len(x), n_rows, replace=False)
        x, y = x[pick], y[pick]
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    iu = np.triu_indices(len(x), 1)
    return float(spearmanr(_cosine_distance(x)[iu], _cosine_distance(y)[iu]).statistic)


def _centred(m) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return m - m.mean(0)


def _cosine_distance(m: np.ndarray) -> np.ndarray:
    m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    return 1.0 - m @ m.T
