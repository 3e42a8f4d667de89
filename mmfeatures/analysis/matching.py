"""Cross-model feature matching: streaming Pearson correlation, assignment, and nulls.

The correlation between every unit of A and every unit of B over shared inputs is accumulated chunk by
chunk: per chunk, means and a centred cross-product (one GEMM, fp32), merged into the running totals
with Chan et al.'s pairwise update, so nothing is ever summed as raw moments over millions of rows
(which cancels catastrophically in fp32). Dead or constant units get correlation 0 and are masked.
For TopK latents, ``sparse=True`` computes each chunk's cross-product from the non-zeros only.

>>> acc = StreamingCorrelation(384, 16384)
>>> for a, b in chunks: acc.update(a, b)                  # doctest: +SKIP
>>> r = acc.correlation(); best = acc.topm(1)              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from mmfeatures.errors import InputError

MAX_HUNGARIAN = 20_000


class StreamingCorrelation:
    """Running Pearson correlation between the columns of A (n x d_a) and B (n x d_b).

    State: n, column means, centred sums of squares and the centred cross-product (d_a x d_b, fp32 on
    ``device``). ``update`` accepts numpy arrays or tensors, dense or sparse (``sparse=True`` turns
    dense chunks sparse first, worthwhile for TopK latents). Dense updates keep two scratch buffers the
    size of the largest chunk seen (rows x d_a and rows x d_b, fp32)."""

    def __init__(self, d_a: int, d_b: int, *, device: str = "cpu", sparse: bool = False):
        memory = d_a * d_b * 4
        if memory > 24 * 2**30:
            raise InputError(f"a {d_a} x {d_b} correlation matrix needs {memory / 2**30:.0f} GiB; use "
                             "streaming_topm(...), which keeps only row tiles in memory")
        self.device = torch.device(device)
        self.sparse = sparse
        self.n = 0
        self.mean_a = torch.zeros(d_a, dtype=torch.float64, device=self.device)
        self.mean_b = torch.zeros(d_b, dtype=torch.float64, device=self.device)
        self.m2_a = torch.zeros(d_a, dtype=torch.float64, device=self.device)
        self.m2_b = torch.zeros(d_b, dtype=torch.float64, device=self.device)
        self.comoment = torch.zeros(d_a, d_b, dtype=torch.float32, device=self.device)
        self.nonfinite_rows = 0
        self._buffers: list[torch.Tensor | None] = [None, None]

    def update(self, a, b) -> None:
        a, b = _tensor(a, self.device), _tensor(b, self.device)
        if a.shape[0] != b.shape[0]:
            raise InputError(f"chunk of A has {a.shape[0]} rows but B has {b.shape[0]}; rows must be the same inputs")
        if a.shape[1] != self.mean_a.numel() or b.shape[1] != self.mean_b.numel():
            raise InputError(f"chunk widths {a.shape[1]}, {b.shape[1]} differ from {self.mean_a.numel()}, "
                             f"{self.mean_b.numel()}")
        if a.is_sparse or b.is_sparse or self.sparse:
            mean_ak, mean_bk, m2_ak, m2_bk, k = self._sparse_update(a, b)
        else:
            mean_a32, mean_b32 = a.mean(0), b.mean(0)
            if not bool(torch.isfinite(mean_a32).all() & torch.isfinite(mean_b32).all()):
                finite = torch.isfinite(a).all(1) & torch.isfinite(b).all(1)   # only when a mean is not finite
                self.nonfinite_rows += int((~finite).sum())
                a, b = a[finite], b[finite]
                mean_a32, mean_b32 = a.mean(0), b.mean(0)
            k = a.shape[0]
            if k == 0:
                return
            # Centre on the fp32 chunk mean, then measure the small residual mean c of the centred data
            # (exact enough in fp32) and correct with it: sums of squares lose k c^2, the cross-product a
            # rank-1 k c_a c_b^T, and the mean gains c. Inputs far from zero therefore do not cancel.
            # The centred chunks go into reused scratch buffers: fresh 100 MB allocations (page faults)
            # cost more than the arithmetic on CPU.
            da, db = self._scratch(0, a.shape), self._scratch(1, b.shape)
            torch.sub(a, mean_a32, out=da)
            torch.sub(b, mean_b32, out=db)
            ca, cb = da.mean(0), db.mean(0)
            mean_ak, mean_bk = mean_a32.double() + ca.double(), mean_b32.double() + cb.double()
            self.comoment.addmm_(da.T, db)
            self.comoment.addr_(ca, cb, alpha=-float(k))
            m2_ak = da.square_().sum(0).double() - k * ca.double() ** 2
            m2_bk = db.square_().sum(0).double() - k * cb.double() ** 2
        n, total = self.n, self.n + k
        delta_a, delta_b = mean_ak - self.mean_a, mean_bk - self.mean_b
        weight = n * k / total
        if n:
            self.comoment.addr_(delta_a.float(), delta_b.float(), alpha=weight)
        self.m2_a += m2_ak + delta_a ** 2 * weight
        self.m2_b += m2_bk + delta_b ** 2 * weight
        self.mean_a += delta_a * (k / total)
        self.mean_b += delta_b * (k / total)
        self.n = total

    def _scratch(self, side: int, shape: torch.Size) -> torch.Tensor:
        """A reusable (rows, d) fp32 buffer for one side's centred chunk, grown to the largest chunk seen."""
        buffer = self._buffers[side]
        if buffer is None or buffer.shape[0] < shape[0]:
            buffer = self._buffers[side] = torch.empty(tuple(shape), dtype=torch.float32, device=self.device)
        return buffer[:shape[0]]

    def _sparse_update(self, a: torch.Tensor, b: torch.Tensor):
        """Add this chunk's centred cross-product from the non-zeros only (sparse x sparse, then one
        rank-1 correction); return the chunk's means and centred sums of squares."""
        a = (a if a.is_sparse else a.to_sparse()).coalesce().float()
        b = (b if b.is_sparse else b.to_sparse()).coalesce().float()
        k = a.shape[0]
        sum_a = torch.sparse.sum(a, 0).to_dense().double() if a._nnz() else torch.zeros(a.shape[1], dtype=torch.float64)
        sum_b = torch.sparse.sum(b, 0).to_dense().double() if b._nnz() else torch.zeros(b.shape[1], dtype=torch.float64)
        sq_a = torch.sparse.sum(a * a, 0).to_dense().double() if a._nnz() else torch.zeros_like(sum_a)
        sq_b = torch.sparse.sum(b * b, 0).to_dense().double() if b._nnz() else torch.zeros_like(sum_b)
        if a._nnz() and b._nnz():
            self._add_cross(a, b)
        mean_a, mean_b = sum_a / k, sum_b / k
        self.comoment.addr_(sum_a.float(), mean_b.float(), alpha=-1.0)     # sum (a - mean_a)(b - mean_b)^T
        return (mean_a.to(self.device), mean_b.to(self.device), (sq_a - sum_a * mean_a).clamp_min(0).to(self.device),
                (sq_b - sum_b * mean_b).clamp_min(0).to(self.device), k)

    def _add_cross(self, a: torch.Tensor, b: torch.Tensor, max_pairs: int = 1 << 23) -> None:
        """comoment += A^T B from the non-zeros: every row's outer product of its non-zeros, scattered
        with one index_add_ per block of rows (memory bounded by ``max_pairs``, not by d_a x d_b)."""
        ia, va = _padded_rows(a)
        ib, vb = _padded_rows(b)
        d_b = self.comoment.shape[1]
        flat = self.comoment.view(-1)
        step = max(1, max_pairs // max(ia.shape[1] * ib.shape[1], 1))
        for start in range(0, ia.shape[0], step):
            sl = slice(start, start + step)
            index = (ia[sl, :, None] * d_b + ib[sl, None, :]).reshape(-1)
            values = (va[sl, :, None] * vb[sl, None, :]).reshape(-1)
            flat.index_add_(0, index.to(self.device), values.to(self.device))

    @property
    def alive_a(self) -> torch.Tensor:
        return self.m2_a > 1e-12 * max(self.n, 1)

    @property
    def alive_b(self) -> torch.Tensor:
        return self.m2_b > 1e-12 * max(self.n, 1)

    def correlation(self) -> torch.Tensor:
        """(d_a, d_b) Pearson r, fp32; 0 wherever a unit is dead or constant."""
        if self.n < 2:
            raise InputError(f"correlation needs >= 2 rows; got {self.n}")
        sa = torch.where(self.alive_a, self.m2_a.sqrt(), torch.inf).float()
        sb = torch.where(self.alive_b, self.m2_b.sqrt(), torch.inf).float()
        return (self.comoment / sa[:, None]) / sb[None, :]

    def topm(self, m: int = 1, tile: int = 4096, absolute: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, indices) of each A unit's ``m`` best-correlated B units, computed in row tiles. ``absolute``
        ranks by |r| and returns |r| (neurons: a unit and its sign flip are the same direction)."""
        r_values, r_index = [], []
        sa = torch.where(self.alive_a, self.m2_a.sqrt(), torch.inf).float()
        sb = torch.where(self.alive_b, self.m2_b.sqrt(), torch.inf).float()
        for start in range(0, self.comoment.shape[0], tile):
            r = self.comoment[start:start + tile] / sa[start:start + tile, None] / sb[None, :]
            r = r.abs() if absolute else r
            values, index = r.topk(min(m, r.shape[1]), dim=1)
            r_values.append(values)
            r_index.append(index)
        return torch.cat(r_values), torch.cat(r_index)


def _tensor(x, device) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device) if t.is_sparse else t.to(device, torch.float32)


def _padded_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A coalesced sparse (n, d) matrix as per-row (column, value) arrays padded to the widest row
    (padding: column 0, value 0, which adds nothing)."""
    rows, cols = x.indices()
    values = x.values()
    n = x.shape[0]
    counts = torch.bincount(rows, minlength=n)
    width = int(counts.max()) if len(counts) else 0
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(rows)) - starts[rows]
    idx = torch.zeros(n, width, dtype=torch.int64)
    val = torch.zeros(n, width, dtype=torch.float32)
    idx[rows, slot] = cols
    val[rows, slot] = values
    return idx, val


def streaming_topm(chunks: Callable[[], Iterable[tuple]], d_a: int, d_b: int, m: int = 1, *, tile: int = 8192,
                   device: str = "cpu", sparse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``m`` correlations per A unit when the full matrix would not fit: one pass over the data per
    tile of ``tile`` A units. ``chunks()`` must return a fresh iterator of (a, b) chunk pairs each time."""
    values, index = [], []
    for start in range(0, d_a, tile):
        stop = min(start + tile, d_a)
        acc = StreamingCorrelation(stop - start, d_b, device=device, sparse=sparse)
        for a, b in chunks():
            a = a[:, start:stop] if not isinstance(a, torch.Tensor) or not a.is_sparse else \
                a.to_dense()[:, start:stop]
            acc.update(a, b)
        v, i = acc.topm(m)
        values.append(v)
        index.append(i)
    return torch.cat(values), torch.cat(index)


@dataclass(frozen=True)
class Matching:
    """A pairing of A units to B units with its correlations."""

    a: np.ndarray
    b: np.ndarray
    r: np.ndarray
    method: str

    @property
    def mean_r(self) -> float:
        return float(np.mean(self.r)) if len(self.r) else float("nan")


def max_match(r) -> Matching:
    """Each A unit to its best B unit (many-to-one)."""
    r = _np(r)
    b = r.argmax(1)
    return Matching(np.arange(len(r)), b, r[np.arange(len(r)), b], "max")


def mutual_nn(r) -> Matching:
    """Pairs that are each other's best match."""
    r = _np(r)
    ab, ba = r.argmax(1), r.argmax(0)
    a = np.flatnonzero(ba[ab] == np.arange(len(r)))
    return Matching(a, ab[a], r[a, ab[a]], "mutual")


def hungarian(r) -> Matching:
    """Exact one-to-one matching maximising total correlation (scipy, up to ~20k units per side)."""
    from scipy.optimize import linear_sum_assignment

    r = _np(r)
    if max(r.shape) > MAX_HUNGARIAN:
        raise InputError(f"{r.shape[0]} x {r.shape[1]} is too large for the exact Hungarian solver (limit "
                         f"{MAX_HUNGARIAN}); use sparse_match(r, k=...) instead")
    a, b = linear_sum_assignment(r, maximize=True)
    return Matching(a, b, r[a, b], "hungarian")


def sparse_match(r, k: int = 8) -> Matching:
    """One-to-one matching on the union of each row's and each column's top-``k`` edges of a full matrix r
    (``match_one_to_one`` builds the same graph without it)."""
    r = _np(r)
    n_a, n_b = r.shape
    k = min(k, n_a, n_b)
    rows = np.argpartition(-r, k - 1, axis=1)[:, :k]
    cols = np.argpartition(-r, k - 1, axis=0)[:k, :]
    ea = np.concatenate([np.repeat(np.arange(n_a), k), cols.ravel()])
    eb = np.concatenate([rows.ravel(), np.tile(np.arange(n_b), k)])
    return assign_on_edges(ea, eb, r[ea, eb], n_a, n_b, f"sparse-top{k}")


def assign_on_edges(ea: np.ndarray, eb: np.ndarray, r: np.ndarray, n_a: int, n_b: int, method: str) -> Matching:
    """One-to-one matching maximising total r over the given edges (A unit ea[i] to B unit eb[i] with r[i];
    repeated edges count once). Every A unit also gets a dummy edge, worse than any real one, to its own dummy B
    unit, because ``min_weight_full_bipartite_matching`` needs a perfect matching; pairs matched through dummies
    are dropped."""
    from scipy import sparse
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    _, first = np.unique(np.asarray(ea, np.int64) * n_b + np.asarray(eb, np.int64), return_index=True)
    ea, eb, r = np.asarray(ea)[first], np.asarray(eb)[first], np.asarray(r)[first]
    cost = 2.0 - r.astype(np.float64)                   # > 0: zero weights would vanish from the sparse graph
    dummy = np.full(n_a, 4.0)                             # worse than any real edge (real costs are <= 3)
    graph = sparse.csr_matrix((np.concatenate([cost, dummy]),
                               (np.concatenate([ea, np.arange(n_a)]), np.concatenate([eb, n_b + np.arange(n_a)]))),
                              shape=(n_a, n_b + n_a))
    _, col = min_weight_full_bipartite_matching(graph)
    real = col < n_b
    a = np.arange(n_a)[real]
    edge = dict(zip(zip(ea.tolist(), eb.tolist(), strict=True), range(len(ea)), strict=True))
    chosen = [edge[(x, y)] for x, y in zip(a.tolist(), col[real].tolist(), strict=True)]
    return Matching(a, col[real], r[np.array(chosen, np.int64)], method)


def _np(r) -> np.ndarray:
    return r.detach().cpu().numpy() if isinstance(r, torch.Tensor) else np.asarray(r)


def decoder_cosine(decoder_a, decoder_b, matching: Matching) -> np.ndarray:
    """Cosine between the decoder rows of matched pairs (SAEs on the same model and site)."""
    da, db = _np(decoder_a)[matching.a], _np(decoder_b)[matching.b]
    if da.shape[1] != db.shape[1]:
        raise InputError(f"decoder widths differ ({da.shape[1]} vs {db.shape[1]}); decoder cosine needs SAEs "
                         "on the same model and site")
    da = da / np.maximum(np.linalg.norm(da, axis=1, keepdims=True), 1e-12)
    db = db / np.maximum(np.linalg.norm(db, axis=1, keepdims=True), 1e-12)
    return (da * db).sum(1)


def subset_null(x, y, matching: Matching, measure: Callable[[np.ndarray, np.ndarray], float], *,
                n_perm: int = 100, seed: int = 0):
    """``measure`` on the matched columns against random pairings of equally many columns (Lan et al.'s
    shuffled-pairing null); returns a Score with a one-sided p-value."""
    from mmfeatures.analysis.stats import Score

    x, y = np.asarray(x), np.asarray(y)
    value = measure(x[:, matching.a], y[:, matching.b])
    rng = np.random.default_rng(seed)
    size = len(matching.a)
    null = np.array([measure(x[:, rng.choice(x.shape[1], size, replace=False)],
                             y[:, rng.choice(y.shape[1], size, replace=False)]) for _ in range(n_perm)])
    return Score(getattr(measure, "__name__", "similarity"), float(value), null)


def selected_null(x, y, select: Callable[[np.ndarray, np.ndarray], Matching],
                  measure: Callable[[np.ndarray, np.ndarray], float], *, n_perm: int = 100, seed: int = 0):
    """``measure`` on the columns that ``select(x, y)`` pairs, against the same selection redone on ``y`` with its
    rows shuffled: a null that pays for the selection. Picking the best-matched columns raises any similarity, so
    random column subsets (``subset_null``) are too weak a null for a matched subset. Returns a Score."""
    from mmfeatures.analysis.stats import Score

    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise InputError(f"selected_null: x has {len(x)} rows and y {len(y)}; both sides need the same rows")

    def scored(yy: np.ndarray) -> float:
        m = select(x, yy)
        return float(measure(x[:, m.a], yy[:, m.b]))

    rng = np.random.default_rng(seed)
    null = np.array([scored(y[rng.permutation(len(y))]) for _ in range(n_perm)])
    return Score(getattr(measure, "__name__", "similarity"), scored(y), null)


def best_matched(n: int) -> Callable[[np.ndarray, np.ndarray], Matching]:
    """A ``select`` for ``selected_null``: each x column's best y column by correlation, the ``n`` best pairs."""
    if n < 1:
        raise InputError(f"best_matched needs n >= 1 pairs; got {n}")

    def select(x: np.ndarray, y: np.ndarray) -> Matching:
        acc = StreamingCorrelation(x.shape[1], y.shape[1])
        acc.update(np.asarray(x, np.float32), np.asarray(y, np.float32))
        top = max_match(acc.correlation().numpy())
        order = np.argsort(-top.r)[:n]
        return Matching(top.a[order], top.b[order], top.r[order], f"max-top{n}")

    return select


def check_aligned(ids_a, ids_b, what: str = "rows") -> None:
    """Raise naming the ids only one side has (a few of each, and how many) and the first position where A's and
    B's ids differ."""
    ids_a, ids_b = list(ids_a), list(ids_b)
    if ids_a == ids_b:
        return
    set_a, set_b = set(ids_a), set(ids_b)
    only_a = [x for x in dict.fromkeys(ids_a) if x not in set_b]
    only_b = [x for x in dict.fromkeys(ids_b) if x not in set_a]
    first = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y), min(len(ids_a), len(ids_b)))
    shown = (f"A has {len(ids_a)} {what} and B {len(ids_b)}; " if len(ids_a) != len(ids_b) else "") + \
        (f"only A has {len(only_a)} ids ({_some(only_a)}); " if only_a else "") + \
        (f"only B has {len(only_b)} ids ({_some(only_b)}); " if only_b else "")
    at = (f"A has {ids_a[first]!r}, B has {ids_b[first]!r}" if first < min(len(ids_a), len(ids_b)) else
          "one side ends there")
    raise InputError(f"{what} differ: {shown}first at position {first} ({at}); extract both from the same dataset "
                     "in the same order (pooled rows when the tokenizers differ)")


def _some(ids: list, n: int = 3) -> str:
    return ", ".join(repr(i) for i in ids[:n]) + (", ..." if len(ids) > n else "")


def _per_token(store_a, store_b, per_token: bool | None) -> bool:
    """Whether two stores are compared per token (both token stores of one tokenizer over the same examples,
    checked, naming the first mismatch) or per example; ``per_token=None`` decides from the stores."""
    tokens = store_a.config.pooling == "none" and store_b.config.pooling == "none"
    if per_token and not tokens:
        raise InputError("per_token=True needs two token stores (pooling='none'); these are "
                         f"{store_a.config.pooling!r} and {store_b.config.pooling!r}")
    if per_token is None:
        per_token = tokens and store_a.n_rows == store_b.n_rows and \
            store_a.provenance().token == store_b.provenance().token
    if per_token:
        pa, pb = store_a.provenance(), store_b.provenance()
        check_aligned(pa.column("id"), pb.column("id"), "token rows (example ids)")
        check_aligned(pa.token, pb.token, "token rows (tokens; different tokenizers need pooled rows)")
    return bool(per_token)


def aligned_units(store_a, store_b, sae_a=None, sae_b=None, *, per_token: bool | None = None):
    """(Z_a, Z_b) over the same rows of two stores: raw dimensions, or each side's SAE latents.

    Per token when both stores hold tokens of the same tokenizer (``per_token=None`` decides from the
    stores); otherwise one row per example (token stores are max-pooled). Misaligned inputs raise an
    error naming the first mismatch."""
    from mmfeatures.analysis.labels import encode_rows, unit_activations
    from mmfeatures.sae import check_compatible

    if not _per_token(store_a, store_b, per_token):
        za, la = unit_activations(store_a, sae_a)
        zb, lb = unit_activations(store_b, sae_b)
        check_aligned(la.example_id, lb.example_id, "examples")
        return za, zb
    out = []
    for store, sae in ((store_a, sae_a), (store_b, sae_b)):
        if sae is not None:
            check_compatible(sae, store)
        out.append(store.array() if sae is None else encode_rows(sae, store.array()))
    return out[0], out[1]


def correlate_stores(store_a, store_b, sae_a=None, sae_b=None, *, per_token: bool | None = None,
                     batch_size: int = 4096, device: str = "cpu", sparse: bool = False,
                     progress: bool = False) -> StreamingCorrelation:
    """The correlation accumulator of A's units against B's over the same rows, streamed: per token (both stores
    read shard by shard in step, each batch encoded and folded in, so memory holds d_a x d_b and one batch, never
    rows x units), or per example as in ``aligned_units``. Equal to ``StreamingCorrelation`` over
    ``aligned_units``' arrays; ``topm`` on it gives each unit's best partners."""
    from tqdm.auto import tqdm

    from mmfeatures.analysis.labels import unit_activations
    from mmfeatures.sae import check_compatible

    if not _per_token(store_a, store_b, per_token):
        za, la = unit_activations(store_a, sae_a, device=device)
        zb, lb = unit_activations(store_b, sae_b, device=device)
        check_aligned(la.example_id, lb.example_id, "examples")
        acc = StreamingCorrelation(za.shape[1], zb.shape[1], device=device, sparse=sparse)
        acc.update(za, zb)
        return acc
    for sae, store in ((sae_a, store_a), (sae_b, store_b)):
        if sae is not None:
            check_compatible(sae, store)
    width = [store_a.d if sae_a is None else sae_a.d_sae, store_b.d if sae_b is None else sae_b.d_sae]
    acc = StreamingCorrelation(*width, device=device, sparse=sparse)

    def batches(store, sae):
        for _, shard in store.iter_shards():
            x = shard["acts"]
            for start in range(0, len(x), batch_size):
                z = x[start:start + batch_size].to(device, torch.float32)
                if sae is not None:
                    with torch.no_grad():
                        z = sae.encode(z)
                yield z.to_dense() if z.is_sparse else z

    bar = tqdm(total=store_a.n_rows, unit="row", unit_scale=True, desc="correlate", disable=not progress, leave=False)
    pending_a, pending_b = [], []
    stream_b = batches(store_b, sae_b)
    for za in batches(store_a, sae_a):               # shards of A and B may split rows differently: re-pair them
        pending_a.append(za)
        while sum(len(t) for t in pending_b) < sum(len(t) for t in pending_a):
            pending_b.append(next(stream_b))
        a, b = torch.cat(pending_a), torch.cat(pending_b)
        n = min(len(a), len(b))
        acc.update(a[:n], b[:n])
        bar.update(n)
        pending_a, pending_b = [a[n:]] if n < len(a) else [], [b[n:]] if n < len(b) else []
    bar.close()
    return acc
