"""Streaming correlation against float64 references, assignment against the exact solver, similarity
measures on known cases, and bad input named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmfeatures as mmf
from mmfeatures.analysis.matching import (
    StreamingCorrelation,
    best_matched,
    check_aligned,
    decoder_cosine,
    hungarian,
    max_match,
    mutual_nn,
    selected_null,
    sparse_match,
    streaming_topm,
    subset_null,
)
from mmfeatures.analysis.partners import max_correlation, permuted_rows_null
from mmfeatures.analysis.similarity import linear_cka, rsa, svcca
from mmfeatures.errors import InputError


def topk_latents(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    pre = x @ w
    z = np.zeros_like(pre)
    idx = np.argpartition(-pre, k - 1, axis=1)[:, :k]
    np.put_along_axis(z, idx, np.maximum(np.take_along_axis(pre, idx, 1), 0), 1)
    return z


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        r = np.corrcoef(a.astype(np.float64), b.astype(np.float64), rowvar=False)[: a.shape[1], a.shape[1]:]
    return np.nan_to_num(r)


def test_streaming_matches_float64_despite_large_offsets():
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((20_000, 40)) * 0.01 + 1000).astype(np.float32)  # fp32 raw moments would cancel
    b = (np.c_[a[:, :10] * 3, rng.standard_normal((20_000, 15))] + 7).astype(np.float32)
    acc = StreamingCorrelation(40, 25)
    for start in range(0, len(a), 3_000):
        acc.update(a[start:start + 3_000], b[start:start + 3_000])
    assert np.abs(acc.correlation().numpy() - reference(a, b)).max() <= 1e-4


def test_sparse_path_dead_units_and_nonfinite_rows():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4_000, 32)).astype(np.float32)
    a = topk_latents(x, rng.standard_normal((32, 300)).astype(np.float32), 8)
    b = topk_latents(x, rng.standard_normal((32, 200)).astype(np.float32), 8)
    a[:, 5] = 0.0  # dead
    b[:, 7] = 2.0  # constant
    sparse, dense = StreamingCorrelation(300, 200, sparse=True), StreamingCorrelation(300, 200)
    for start in range(0, 4_000, 512):
        sparse.update(torch.from_numpy(a[start:start + 512]).to_sparse(), b[start:start + 512])
        dense.update(a[start:start + 512], b[start:start + 512])
    r = sparse.correlation().numpy()
    assert np.abs(r - reference(a, b)).max() <= 1e-4 and np.abs(dense.correlation().numpy() - r).max() <= 1e-4
    assert not np.isnan(r).any() and (r[5] == 0).all() and (r[:, 7] == 0).all()
    assert not sparse.alive_a[5] and not sparse.alive_b[7]
    bad = a[:10].copy()
    bad[3, 0] = np.nan
    bad_b = b[:10].copy()
    bad_b[6, 2] = np.inf
    dense.update(bad, bad_b)
    assert dense.nonfinite_rows == 2
    kept = np.r_[a, np.delete(a[:10], [3, 6], 0)], np.r_[b, np.delete(b[:10], [3, 6], 0)]
    assert np.abs(dense.correlation().numpy() - reference(*kept)).max() <= 1e-4


def test_topm_and_tiled_streaming_agree():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3_000, 50)).astype(np.float32), rng.standard_normal((3_000, 30)).astype(np.float32)
    b[:, :5] += a[:, 10:15]
    acc = StreamingCorrelation(50, 30)
    acc.update(a, b)
    full_v, full_i = acc.topm(3)
    tiled_v, tiled_i = streaming_topm(lambda: ((a[s:s + 700], b[s:s + 700]) for s in range(0, 3_000, 700)),
                                      50, 30, m=3, tile=16)
    assert torch.equal(full_i, tiled_i) and torch.allclose(full_v, tiled_v, atol=1e-5)
    assert full_i[10:15, 0].tolist() == [0, 1, 2, 3, 4]


def test_assignment_methods():
    rng = np.random.default_rng(3)
    perm = rng.permutation(60)
    r = rng.uniform(-0.2, 0.3, (60, 80)).astype(np.float32)
    r[np.arange(60), perm] = rng.uniform(0.6, 0.9, 60)
    exact = hungarian(r)
    assert (exact.b == perm).all()
    approx = sparse_match(r, k=4)
    assert len(approx.a) == 60 and approx.r.sum() >= exact.r.sum() - 1e-4  # the planted pairs are in the top-k
    noisy = rng.uniform(0, 1, (50, 50)).astype(np.float32)
    gap = hungarian(noisy).r.sum() - sparse_match(noisy, k=10).r.sum()
    assert 0 <= gap < 0.05 * hungarian(noisy).r.sum()
    assert (max_match(r).b == perm).all() and len(mutual_nn(r).a) == 60
    with pytest.raises(InputError, match="sparse_match"):
        hungarian(np.zeros((20_001, 2), np.float32))


def test_similarity_measures_known_cases():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((400, 12))
    q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    y = rng.standard_normal((400, 12))
    for measure in (linear_cka, svcca, rsa):
        assert measure(x, x @ q) == pytest.approx(1.0, abs=1e-6)
        assert measure(x, y) < 0.3
    a = x @ rng.standard_normal((12, 40))
    b = np.c_[a[:, :20] + 0.1 * rng.standard_normal((400, 20)), rng.standard_normal((400, 20))]
    matching = hungarian(np.corrcoef(a, b, rowvar=False)[:40, 40:])
    top = max_match(np.corrcoef(a, b, rowvar=False)[:20, 40:])
    score = subset_null(a[:, :20], b, top, linear_cka, n_perm=50)
    assert score.p_value < 0.05 and score.value > score.null_mean
    cos = decoder_cosine(np.eye(40, 8), np.eye(40, 8), matching)
    assert cos.shape == (40,)


def test_a_matched_subset_needs_a_null_that_pays_for_the_selection():
    """Two unrelated random sides: picking the best-matched columns makes random subsets a null they beat, while
    redoing the selection on shuffled rows (selected_null) says, rightly, that nothing is shared; planted pairs
    still beat it."""
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((120, 80)), rng.standard_normal((120, 80))
    select = best_matched(20)
    naive = subset_null(x, y, select(x, y), linear_cka, n_perm=40)
    fair = selected_null(x, y, select, linear_cka, n_perm=40)
    assert naive.p_value < 0.05 and naive.value == pytest.approx(fair.value)      # the selection's bias
    assert fair.p_value > 0.05, fair.row()
    shared = np.c_[x[:, :20] + 0.5 * rng.standard_normal((120, 20)), y[:, 20:]]
    assert selected_null(x, shared, select, linear_cka, n_perm=40).p_value < 0.05
    with pytest.raises(InputError, match="same rows"):
        selected_null(x, y[:100], select, linear_cka, n_perm=2)
    with pytest.raises(InputError, match="n >= 1"):
        best_matched(0)


def test_max_correlation_and_permuted_rows_null():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((2_000, 20)).astype(np.float32)
    b = np.c_[a + 0.3 * rng.standard_normal(a.shape), rng.standard_normal((2_000, 5))].astype(np.float32)
    best = max_correlation(a, b)
    assert np.median(best) > 0.9
    medians = permuted_rows_null(a, b, n_perm=3)
    assert medians.max() < 0.15
    every = permuted_rows_null(a, b, n_perm=3, statistic=lambda r: r)     # every unit, every permutation
    assert every.shape == (3, 20) and np.allclose(np.median(every, axis=1), medians)


def test_bad_input_is_named():
    acc = StreamingCorrelation(3, 4)
    with pytest.raises(InputError, match="A has 5 rows but B has 4"):
        acc.update(np.zeros((5, 3), np.float32), np.zeros((4, 4), np.float32))
    with pytest.raises(InputError, match="streaming_topm"):
        StreamingCorrelation(200_000, 200_000)
    with pytest.raises(InputError, match=r"only A has 1 ids \('b'\); only B has 1 ids \('x'\); first at position 1 "
                                         r"\(A has 'b', B has 'x'\)"):
        check_aligned(["a", "b", "c"], ["a", "x", "c"])
    with pytest.raises(InputError, match=r"A has 3 rows and B 2; only A has 1 ids \('c'\); first at position 2 "
                                         r"\(one side ends there\)"):
        check_aligned(["a", "b", "c"], ["a", "b"])
    check_aligned(["a", "b"], ["a", "b"])


def test_two_towers_of_tiny_clip_on_image_caption_pairs(tmp_path):
    """Plumbing: image and text towers of a two-tower model compared on the rows of aligned pairs."""
    from PIL import Image

    clip = mmf.load_encoder("tiny:clip")
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
    images = [Image.new("RGB", (32, 32), c) for c in colours]
    texts = [f"a {c} square" for c in colours]
    img = mmf.extract(clip, images, ["image.layer.1.resid"], pooling="mean", store_dir=tmp_path, progress=False)
    txt = mmf.extract(clip, texts, ["text.layer.1.resid"], pooling="mean", store_dir=tmp_path, progress=False)
    a, b = img["image.layer.1.resid"], txt["text.layer.1.resid"]
    best = max_correlation(a, b)
    assert best.shape[0] <= a.shape[1] and np.all(np.abs(best) <= 1 + 1e-6)
    assert 0 <= linear_cka(a, b) <= 1


def test_aligned_units_per_token_pooled_and_mismatch(tmp_path):
    from mmfeatures.analysis.matching import aligned_units

    bert = mmf.load_encoder("tiny:bert")
    texts = [mmf.Example(t, mmf.Modality.TEXT, t) for t in ["a dog", "un perro grande", "a big red dog"]]
    sites = ["text.layer.0.resid", "text.layer.1.resid"]
    tokens = mmf.extract(bert, texts, sites, pooling="none", store_dir=tmp_path, progress=False).stores
    za, zb = aligned_units(tokens[sites[0]], tokens[sites[1]])
    assert za.shape == zb.shape and za.shape[0] == tokens[sites[0]].n_rows > len(texts)
    pooled = mmf.extract(bert, texts, sites[1:], pooling="mean", store_dir=tmp_path, progress=False).stores[sites[1]]
    za, zb = aligned_units(tokens[sites[0]], pooled)
    assert za.shape[0] == zb.shape[0] == 3
    reordered = mmf.extract(bert, texts[::-1], sites[1:], pooling="mean", store_dir=tmp_path,
                            progress=False).stores[sites[1]]
    with pytest.raises(InputError, match=r"examples differ: first at position 0 \(A has 'a dog', B has 'a big red dog'\)"):
        aligned_units(pooled, reordered)
    with pytest.raises(InputError, match="per_token=True needs two token stores"):
        aligned_units(tokens[sites[0]], pooled, per_token=True)


def test_neurons_match_on_absolute_correlation():
    """A neuron of B that is A's neuron with its sign flipped is a perfect match on |r|, and none on r."""
    from mmfeatures.analysis import max_correlation, permuted_rows_null

    a = np.random.default_rng(0).standard_normal((500, 4)).astype(np.float32)
    b = -a[:, ::-1].copy()
    assert max_correlation(a, b, absolute=True) == pytest.approx(1.0, abs=1e-5)
    assert max_correlation(a, b).max() < 0.2
    assert permuted_rows_null(a, b, n_perm=3, absolute=True).max() < 0.3


def test_the_permuted_rows_null_on_a_subset_of_units_estimates_the_full_one():
    """Under the null every A unit's best r has one distribution, so 256 of 2,048 units give its median."""
    from mmfeatures.analysis import permuted_rows_null

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 2048)).astype(np.float32), rng.normal(size=(400, 64)).astype(np.float32)
    full = permuted_rows_null(a, b, n_perm=3, max_units=None)
    subset = permuted_rows_null(a, b, n_perm=3, max_units=256)
    assert np.allclose(subset, full, atol=0.01), (subset, full)
    assert np.array_equal(permuted_rows_null(a[:, :200], b, n_perm=2, max_units=256),
                          permuted_rows_null(a[:, :200], b, n_perm=2, max_units=None))   # below the cap: unchanged
