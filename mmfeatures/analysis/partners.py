"""Each unit's best partners without the full correlation matrix, its nulls, and one-to-one matching in bounded
memory.

``best_partners(a, b, m)`` gives A's ``m`` best-correlated B units from two (examples x units) arrays. Both sides
are standardised once, in tiles of units (an fp32 copy of B, and of one tile of A at a time), then r is made one
tile x tile block at a time and only the running top-m is kept: memory is the inputs, B again and a tile of A,
never d_a x d_b (16,384 x 16,384
units would be 1 GiB of r, and the exact solver's float64 costs 2 GiB). When both sides are sparse enough that scattering their non-zero pairs is cheaper than the GEMM
(density product below ``SPARSE_BELOW``, measured on this project's CPU) it folds the non-zeros into a
``StreamingCorrelation`` instead. ``match_one_to_one`` runs the exact Hungarian solver where the full matrix
fits and otherwise assigns on the union of both sides' top-m graphs; the ``Matching.method`` says which ran.

>>> p = best_partners(za, zb, m=8)                       # doctest: +SKIP
>>> p.values[:, 0], p.index[:, 0]                        # each A unit's best r and B unit   # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch

from mmfeatures.analysis.matching import (
    MAX_HUNGARIAN,
    Matching,
    StreamingCorrelation,
    assign_on_edges,
    hungarian,
)
from mmfeatures.errors import InputError

SPARSE_BELOW = 1e-4
"""Density(A) x density(B) below which the non-zero path wins: a scattered pair costs ~100x a GEMM multiply-add
here (pooled 16k-latent TopK codes at 1.5% density each took 55 s sparse and 27 s as tiles)."""
SPARSE_COLUMNS = 0.02
"""An A column with at most this fraction of non-zero rows is multiplied from its non-zeros (CSR x dense through
MKL), its centring applied afterwards as a rank-one correction. A CSR multiply-add costs 20 to 45 dense ones on
the 2-core CPUs measured (4,096 x 4,096 r over 10,000 rows: 2.3 s dense; at 6.6% density 6.7 s as CSR; at 1.5%,
0.6 s), so the crossover is near 2 to 5% density."""
DENSE_BYTES = 2 * 2**30
"""The largest full correlation matrix ``match_one_to_one`` builds for the exact solver (float64 costs)."""


@dataclass(frozen=True)
class Partners:
    """Each A unit's ``m`` best B units: ``values`` (d_a x m, r or |r|, best first) and ``index`` (d_a x m);
    ``alive_a`` marks A units that vary (a dead unit's row is zeros); ``method`` says how they were computed."""

    values: np.ndarray
    index: np.ndarray
    alive_a: np.ndarray
    method: str


def _arrays(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise InputError(f"A is {a.shape} and B is {b.shape}; give (rows x units) arrays over the same rows")
    if not a.shape[1] or not b.shape[1]:
        raise InputError(f"A has {a.shape[1]} units and B {b.shape[1]}; each side needs at least one live unit")
    finite = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    if not finite.all():                         # as StreamingCorrelation does: a row with NaN or inf is dropped
        a, b = a[finite], b[finite]
    if len(a) < 2:
        raise InputError(f"correlation needs >= 2 rows with finite values; got {len(a)}")
    return a, b


def _standardised(x: np.ndarray, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns start:stop of x, centred (twice: the fp32 residual mean too) and scaled to unit norm, and which
    vary (a constant column becomes zeros, so its r is 0, as in StreamingCorrelation)."""
    t = centred_tile(x, start, stop)
    m2 = _column_sums(t, square=True)
    alive = m2 > 1e-12 * len(t)
    t *= torch.where(alive, m2.rsqrt(), 0.0).float()
    return t, alive


def centred_tile(x: np.ndarray, start: int, stop: int) -> torch.Tensor:
    """Columns start:stop of x as an fp32 copy, centred twice (the fp32 residual mean too), so large offsets do
    not cancel in the products that follow."""
    t = torch.from_numpy(np.array(x[:, start:stop], np.float32))
    t -= (_column_sums(t) / len(t)).float()
    return t.sub_(t.mean(0))


def _column_sums(t: torch.Tensor, square: bool = False, rows: int = 512) -> torch.Tensor:
    """float64 column sums (of squares) of a row-major tile, in fp32 blocks of rows: reductions along dim 0 of the
    whole tile in float64 (or vector_norm) ran 5 to 15x slower here."""
    out = torch.zeros(t.shape[1], dtype=torch.float64)
    for start in range(0, len(t), rows):
        block = t[start:start + rows]
        out += (block * block if square else block).sum(0)
    return out


def best_partners(a, b, m: int = 1, *, absolute: bool = False, sparse: bool | None = None,
                  tile: int = 4096) -> Partners:
    """A's ``m`` best-correlated B units (``absolute``: by |r|, for neurons whose sign is arbitrary), in tiles of
    ``tile`` units per side. ``sparse`` None decides from the densities (see ``SPARSE_BELOW``)."""
    a, b = _arrays(a, b)
    if m < 1:
        raise InputError(f"m = {m}; keep at least each unit's best partner (m >= 1)")
    m = min(m, b.shape[1])
    if sparse is None:
        sparse = np.count_nonzero(a) / max(a.size, 1) * np.count_nonzero(b) / max(b.size, 1) < SPARSE_BELOW
    if sparse:
        values, index, alive = [], [], []
        for start in range(0, a.shape[1], tile):    # the accumulator holds tile x d_b, not d_a x d_b
            acc = StreamingCorrelation(min(tile, a.shape[1] - start), b.shape[1], sparse=True)
            acc.update(a[:, start:start + tile], b)
            v, i = acc.topm(m, absolute=absolute)
            values.append(v.numpy()), index.append(i.numpy()), alive.append(acc.alive_a.numpy())
        return Partners(np.concatenate(values), np.concatenate(index), np.concatenate(alive), "sparse")
    a_tiles = (_SplitTile.of(a, start, start + tile) for start in range(0, a.shape[1], tile))   # one at a time
    return _dense_partners(a_tiles, _tiles(b, tile), m, absolute)


def _tiles(x: np.ndarray, tile: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [_standardised(x, start, start + tile) for start in range(0, x.shape[1], tile)]


@dataclass(frozen=True)
class _SplitTile:
    """A tile of A's columns in two parts: the mostly-zero columns (at most ``SPARSE_COLUMNS`` non-zero) as a
    units x rows CSR of their raw values with each column's mean and 1/norm, the others standardised dense.
    ``correlate`` gives r against a standardised B tile: for the sparse part (A^T B - mean x colsum(B)) / norm,
    where colsum(B) is B's fp32 residual after centring."""

    dense: torch.Tensor
    dense_cols: torch.Tensor
    sparse: object                      # scipy.sparse.csr_matrix, units x rows
    mean: torch.Tensor
    scale: torch.Tensor
    sparse_cols: torch.Tensor
    alive: torch.Tensor

    @classmethod
    def of(cls, x: np.ndarray, start: int, stop: int) -> _SplitTile:
        from scipy import sparse as sp

        n, width = len(x), min(stop, x.shape[1]) - start
        nnz = np.count_nonzero(x[:, start:stop], axis=0)
        is_sparse = nnz <= SPARSE_COLUMNS * n
        sparse_cols, dense_cols = np.flatnonzero(is_sparse), np.flatnonzero(~is_sparse)
        if not len(sparse_cols):
            dense, alive = _standardised(x, start, stop)
            return cls(dense, torch.from_numpy(dense_cols), None, None, None, torch.from_numpy(sparse_cols), alive)
        alive = torch.zeros(width, dtype=torch.bool)
        dense = torch.zeros(n, 0)
        if len(dense_cols):
            dense, alive[dense_cols] = _standardised(x[:, start + dense_cols], 0, len(dense_cols))
        csr = sp.csr_matrix(np.asarray(x[:, start + sparse_cols], np.float32).T)
        values = csr.data.astype(np.float64)
        rows_of = np.repeat(np.arange(len(sparse_cols)), np.diff(csr.indptr))
        total = np.bincount(rows_of, values, len(sparse_cols))
        centred_m2 = np.bincount(rows_of, values * values, len(sparse_cols)) - total * total / n
        alive_s = centred_m2 > 1e-12 * n
        alive[sparse_cols] = torch.from_numpy(alive_s)
        scale = np.where(alive_s, 1 / np.sqrt(np.where(alive_s, centred_m2, 1.0)), 0.0)
        return cls(dense, torch.from_numpy(dense_cols), csr, torch.from_numpy(total / n).float(),
                   torch.from_numpy(scale).float(), torch.from_numpy(sparse_cols), alive)

    def permuted(self, rows: np.ndarray) -> _SplitTile:
        """The same tile with A's rows reordered (row i becomes rows[i])."""
        return replace(self, dense=self.dense[torch.from_numpy(rows)] if len(self.dense_cols) else self.dense,
                       sparse=None if self.sparse is None else self.sparse[:, rows])

    def correlate(self, tb: torch.Tensor, colsum_b: torch.Tensor) -> torch.Tensor:
        """r (tile units x B tile units) against a standardised B tile whose column sums are ``colsum_b``."""
        if self.sparse is None:
            return self.dense.T @ tb
        r = torch.empty(len(self.alive), tb.shape[1])
        if len(self.dense_cols):
            r[self.dense_cols] = self.dense.T @ tb
        csr = self.sparse
        with warnings.catch_warnings():             # "sparse CSR support is in beta": the product is checked in tests
            warnings.simplefilter("ignore", UserWarning)
            t = torch.sparse_csr_tensor(torch.from_numpy(csr.indptr.astype(np.int64)),
                                        torch.from_numpy(csr.indices.astype(np.int64)), torch.from_numpy(csr.data),
                                        csr.shape, check_invariants=False)
        r[self.sparse_cols] = (t @ tb).sub_(self.mean[:, None] * colsum_b).mul_(self.scale[:, None])
        return r


def _dense_partners(a_tiles, b_tiles, m: int, absolute: bool, rows: np.ndarray | None = None) -> Partners:
    """Top-m from A's split tiles and B's standardised tiles. ``rows`` reorders A's rows first (a row permutation
    commutes with standardising, so a null reuses the tiles)."""
    values, index, alive = [], [], []
    b_sums = [_column_sums(tb).float() for tb, _ in b_tiles]
    for ta in a_tiles:
        ta = ta if rows is None else ta.permuted(rows)
        best_v = torch.full((len(ta.alive), 0), -torch.inf)
        best_i = torch.zeros((len(ta.alive), 0), dtype=torch.int64)
        b_start = 0
        for (tb, _), sums in zip(b_tiles, b_sums, strict=True):
            r = ta.correlate(tb, sums)
            r = r.abs_() if absolute else r
            v, i = r.topk(min(m, r.shape[1]), dim=1)
            best_v, keep = torch.cat([best_v, v], 1).topk(min(m, best_v.shape[1] + v.shape[1]), dim=1)
            best_i = torch.cat([best_i, i + b_start], 1).gather(1, keep)
            b_start += tb.shape[1]
        values.append(best_v.numpy()), index.append(best_i.numpy()), alive.append(ta.alive.numpy())
    return Partners(np.concatenate(values), np.concatenate(index), np.concatenate(alive), "dense tiles")


def max_correlation(a, b, *, sparse: bool | None = None, absolute: bool = False) -> np.ndarray:
    """Each A unit's best correlation (``absolute``: best |r|) with any B unit (alive A units only)."""
    p = best_partners(a, b, 1, absolute=absolute, sparse=sparse)
    return p.values[p.alive_a, 0]


def permuted_rows_null(a, b, *, n_perm: int = 5, seed: int = 0, statistic=np.median,
                       absolute: bool = False, max_units: int | None = 4096) -> np.ndarray:
    """``statistic`` (default: the median) of the alive A units' max-correlations with B's rows shuffled
    against A's, once per permutation: what unrelated units reach. ``statistic=lambda r: r`` keeps every
    unit's value (an array of n_perm x alive units). Each permutation costs a full correlation, so with more
    than ``max_units`` A units a random subset of that many (drawn once, the same in every permutation) stands
    for them: under the null every A unit's best r has the same distribution, so a subset estimates its median.
    B's rows shuffled by p pair with A's as A's rows shuffled by p's inverse: both sides are prepared once (A's
    mostly-zero columns as CSR, the rest standardised). Always tiles, never the non-zero pairs (a shuffled sparse
    pair is no sparser)."""
    a, b = _arrays(a, b)
    rng = np.random.default_rng(seed)
    if max_units is not None and a.shape[1] > max_units:
        a = a[:, np.sort(np.random.default_rng(seed + 1).choice(a.shape[1], max_units, replace=False))]
    a_tiles = [_SplitTile.of(a, start, start + 4096) for start in range(0, a.shape[1], 4096)]
    b_tiles = _tiles(b, 4096)                                   # both sides prepared once for every permutation
    out = []
    for _ in range(n_perm):
        p = _dense_partners(a_tiles, b_tiles, 1, absolute, np.argsort(rng.permutation(len(b))))
        out.append(statistic(p.values[p.alive_a, 0]))
    return np.array(out, dtype=np.float64)


def match_one_to_one(a, b, m: int = 8, *, dense_bytes: int = DENSE_BYTES) -> Matching:
    """One-to-one matching of A's units to B's maximising total correlation: the exact Hungarian solver when the
    full matrix fits in ``dense_bytes`` (method 'hungarian'), else an assignment on the union of each A unit's
    and each B unit's ``m`` best partners (method 'sparse-top{m}', memory (d_a + d_b) x m)."""
    a, b = _arrays(a, b)
    n_a, n_b = a.shape[1], b.shape[1]
    if n_a * n_b * 8 <= dense_bytes and max(n_a, n_b) <= MAX_HUNGARIAN:
        acc = StreamingCorrelation(n_a, n_b)
        acc.update(a, b)
        return hungarian(acc.correlation().double().numpy())
    forward, backward = best_partners(a, b, m), best_partners(b, a, m)
    ea = np.concatenate([np.repeat(np.arange(n_a), forward.index.shape[1]), backward.index.ravel()])
    eb = np.concatenate([forward.index.ravel(), np.repeat(np.arange(n_b), backward.index.shape[1])])
    r = np.concatenate([forward.values.ravel(), backward.values.ravel()])
    return assign_on_edges(ea, eb, r, n_a, n_b, f"sparse-top{m}")
