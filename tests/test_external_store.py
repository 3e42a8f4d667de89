"""Bring your own activations: a store written from arrays or an iterator runs through the same analyses as an
extracted one, and bad arrays are refused with the row named."""

from __future__ import annotations

import numpy as np
import pytest

import mmfeatures as mmf
from mmfeatures.analysis import unit_activations
from mmfeatures.pipeline import MatchStep, run

SITE = "text.layer.3.resid"
CONCEPTS, LANGUAGES = ("dog", "cat", "tree", "house"), ("en", "es", "ja")


def _examples():
    return [{"id": f"{c}/{lang}", "concept": c, "language": lang, "content": f"{c} in {lang}"}
            for c in CONCEPTS for lang in LANGUAGES]


def _token_rows(seed: int = 0, d: int = 8):
    """(rows, example_index): 2-4 token rows per example."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 5, len(CONCEPTS) * len(LANGUAGES))
    return rng.normal(size=(counts.sum(), d)).astype(np.float32), np.repeat(np.arange(len(counts)), counts)


def test_token_rows_from_an_array_or_an_iterator_make_the_same_store(tmp_path):
    rows, index = _token_rows()
    kw = dict(model="my-tool:model", site=SITE, source="test arrays", pooling="none", store_dir=tmp_path,
              shard_examples=5)
    store = mmf.write_store(rows, _examples(), example_index=index, **kw)
    assert store.config.n_shards == 3 and store.n_rows == len(rows) and store.d == 8
    np.testing.assert_array_equal(store.array(), rows)
    np.testing.assert_array_equal(store.provenance().example_index, index)
    again = mmf.write_store((rows[index == e] for e in range(index.max() + 1)), _examples(), **kw)
    assert again.path == store.path                                     # same activations, same key
    other = mmf.write_store(rows + 1, _examples(), example_index=index, **kw)
    assert other.path != store.path                                     # other activations never reuse it
    z, labels = unit_activations(store, None)                           # max over each example's tokens
    np.testing.assert_allclose(z, np.stack([rows[index == e].max(0) for e in range(len(z))]), rtol=1e-6)
    assert list(labels.concept[:3]) == ["dog"] * 3 and list(labels.language[:3]) == list(LANGUAGES)
    assert not list(tmp_path.rglob(".external-*"))                      # no staging folder left behind


def test_matching_runs_on_activations_mmfeatures_did_not_extract(tmp_path):
    """B is A's units permuted and sign-flipped plus noise: every unit has a partner, which the shuffled-rows
    null cannot give; the same B with its rows shuffled is not supported (12 rows cannot exclude a small effect, so
    it may say inconclusive, never supported)."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(len(CONCEPTS) * len(LANGUAGES), 6)).astype(np.float32)
    b = -a[:, rng.permutation(6)] + 0.1 * rng.normal(size=a.shape).astype(np.float32)
    kw = dict(site=SITE, source="test", store_dir=tmp_path)
    sa = mmf.write_store(a, _examples(), model="tool:a", **kw)
    sb = mmf.write_store(b, _examples(), model="tool:b", **kw)
    record = run(MatchStep(store_a=str(sa.path), store_b=str(sb.path), n_perm=19, out=None))
    assert record.supported and record.scores[0]["value"] > 0.95, record.verdict
    shuffled = mmf.write_store(b[rng.permutation(len(b))], _examples(), model="tool:b", **kw)
    other = run(MatchStep(store_a=str(sa.path), store_b=str(shuffled.path), n_perm=19, out=None))
    assert other.supported is not True and not other.tests[0]["passes"], other.verdict


@pytest.mark.parametrize("change, message", [
    (lambda r, i, e: (r.astype(np.int32), i, e), "dtype int32; give floating-point"),
    (lambda r, i, e: (np.where(np.arange(len(r))[:, None] == np.flatnonzero(i == 2)[1], np.nan, r), i, e),
     "example 2 ('dog/ja') row 1 holds NaN or inf"),
    (lambda r, i, e: (r, i, e[:-1]), "is not an example (0..10)"),
    (lambda r, i, e: (r, i[::-1].copy(), e), "example_index decreases at row"),
    (lambda r, i, e: (r, i[:-1], e), "give one integer per row of acts"),
    (lambda r, i, e: (r, i, [*e[:-1], e[0]]), "repeats the id 'dog/en'"),
    (lambda r, i, e: (r, i, [{**x, "modality": "image"} for x in e]), "is a image example, but the site reads text"),
])
def test_bad_arrays_and_labels_are_refused_with_the_row_named(tmp_path, change, message):
    rows, index = _token_rows()
    rows, index, examples = change(rows, index, _examples())
    with pytest.raises(mmf.InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mmf.write_store(rows, examples, example_index=index, model="m", site=SITE, source="s", pooling="none",
                        store_dir=tmp_path)
    assert not list(tmp_path.rglob("metadata.json"))                   # nothing half-written stays


def test_an_iterator_of_the_wrong_length_or_width_is_refused(tmp_path):
    rows = [np.ones((2, 4), np.float32) for _ in range(len(CONCEPTS) * len(LANGUAGES))]
    kw = dict(model="m", site=SITE, source="s", pooling="none", store_dir=tmp_path)
    with pytest.raises(mmf.InputError, match="acts yields 11 arrays for 12 examples"):
        mmf.write_store(iter(rows[:-1]), _examples(), **kw)
    with pytest.raises(mmf.InputError, match=r"example 3 \('cat/en'\) has rows of width 5, the first 4"):
        mmf.write_store(iter([*rows[:3], np.ones((2, 5), np.float32), *rows[4:]]), _examples(), **kw)
    with pytest.raises(mmf.InputError, match="for a pooled store"):
        mmf.write_store(iter(rows), _examples(), **{**kw, "pooling": "mean"})


@pytest.mark.parametrize("pool", ["max", "mean"])
@pytest.mark.parametrize("tokens", [True, False])
def test_streamed_unit_activations_equal_the_in_memory_ones(tmp_path, pool, tokens):
    """Encoding and pooling shard by shard and batch by batch (examples split across batches, several shards)
    gives what encoding the whole array at once gives, to 1e-5."""
    from mmfeatures.analysis.labels import encode_rows, pool_by_example

    rows, index = _token_rows(seed=3, d=16)
    if not tokens:
        rows, index = rows[:len(_examples())], None
    store = mmf.write_store(rows, _examples(), example_index=index, model="m", site=SITE, source="s",
                            pooling="none" if tokens else "mean", store_dir=tmp_path, shard_examples=5)
    sae = mmf.SAE(16, 64, mmf.TopK(k=4), seed=0)
    for units in (None, sae):
        z, labels = unit_activations(store, units, pool=pool, batch_size=3)
        whole = store.array() if units is None else encode_rows(units, store.array())
        if tokens:
            whole, examples = pool_by_example(whole, store.provenance().example_index, pool)
            assert list(labels.example_id) == [_examples()[e]["id"] for e in examples]
        np.testing.assert_allclose(z, whole, atol=1e-5)


def test_streamed_store_correlation_equals_the_in_memory_one(tmp_path):
    """Per token, two stores whose shards split the rows differently, one side through an SAE: the streamed
    accumulator equals the one over aligned_units' arrays, to 1e-5."""
    from mmfeatures.analysis import StreamingCorrelation, aligned_units, correlate_stores

    rows, index = _token_rows(seed=4, d=16)
    other = rows @ np.random.default_rng(5).normal(size=(16, 12)).astype(np.float32)
    kw = dict(site=SITE, source="s", pooling="none", store_dir=tmp_path, example_index=index)
    a = mmf.write_store(rows, _examples(), model="a", shard_examples=5, **kw)
    b = mmf.write_store(other, _examples(), model="b", shard_examples=4, **kw)
    sae = mmf.SAE(16, 48, mmf.TopK(k=6), seed=0)
    streamed = correlate_stores(a, b, sae, None, batch_size=7)
    za, zb = aligned_units(a, b, sae, None)
    whole = StreamingCorrelation(48, 12)
    whole.update(za, zb)
    assert streamed.n == len(rows)
    np.testing.assert_allclose(streamed.correlation().nan_to_num(), whole.correlation().nan_to_num(), atol=1e-5)


def test_a_latent_set_is_encoded_once_read_back_exactly_and_resumed(tmp_path):
    """encode_store writes sparse shards that pool to what encoding the store again gives (max and mean);
    a second call reuses it; a lost shard is the only one recomputed; a set of another SAE is refused."""
    from mmfeatures.sae import encode_store

    rows, index = _token_rows(seed=6, d=16)
    store = mmf.write_store(rows, _examples(), example_index=index, model="m", site=SITE, source="s",
                            pooling="none", store_dir=tmp_path / "stores", shard_examples=5)
    sae = mmf.SAE(16, 64, mmf.TopK(k=4), seed=0)
    latents = encode_store(store, sae, root=tmp_path / "latents", batch_size=5, progress=False)
    assert latents.n_rows == len(rows) and latents.header["nnz"] <= 4 * len(rows)
    for pool in ("max", "mean"):
        z, labels = unit_activations(store, sae, pool=pool, latents=latents)
        direct, direct_labels = unit_activations(store, sae, pool=pool)
        np.testing.assert_allclose(z, direct, atol=1e-5)
        assert list(labels.example_id) == list(direct_labels.example_id)
    shards = sorted((latents.path / "shards").glob("*.safetensors"))
    stamps = [p.stat().st_mtime_ns for p in shards]
    assert encode_store(store, sae, root=tmp_path / "latents", batch_size=5, progress=False).path == latents.path
    (latents.path / "shards" / "00001.json").unlink()               # as if killed while writing shard 1
    (latents.path / "metadata.json").write_text(
        (latents.path / "metadata.json").read_text().replace('"complete"', '"partial"'))
    again = encode_store(store, sae, root=tmp_path / "latents", batch_size=5, progress=False)
    changed = [p.name for p, t in zip(shards, stamps, strict=True) if p.stat().st_mtime_ns != t]
    assert changed == ["00001.safetensors"] and again.n_rows == len(rows)
    other = mmf.SAE(16, 64, mmf.TopK(k=4), seed=1)
    with pytest.raises(mmf.InputError, match=r"encoded by an SAE with digest .*\(retrained or another one\)"):
        unit_activations(store, other, latents=again)
    top2 = encode_store(store, sae, top=2, root=tmp_path / "latents", progress=False)
    assert top2.path != latents.path and top2.header["nnz"] <= 2 * len(rows)


@pytest.mark.parametrize("arch", [mmf.ReLU(), mmf.TopK(k=4)])
def test_a_latent_set_keeps_each_rows_top_entries_for_any_architecture(tmp_path, arch):
    """The TopK fast path (no dense rows x d_sae) and the dense path for other architectures write the same
    CSR a dense encode gives, also when ``top`` keeps fewer entries per row."""
    import torch

    from mmfeatures.analysis.labels import encode_rows, pool_by_example
    from mmfeatures.sae import encode_store

    rows, index = _token_rows(seed=8, d=16)
    store = mmf.write_store(rows, _examples(), example_index=index, model="m", site=SITE, source="s",
                            pooling="none", store_dir=tmp_path / "stores", shard_examples=5)
    sae = mmf.SAE(16, 64, arch, seed=0)
    dense = torch.from_numpy(encode_rows(sae, rows))
    value, idx = dense.topk(2, dim=1)
    top2 = torch.zeros_like(dense).scatter_(1, idx, value).numpy()
    for top, want in ((None, dense.numpy()), (2, top2)):
        latents = encode_store(store, sae, top=top, root=tmp_path / "latents", batch_size=7, progress=False)
        z, _ = latents.pooled("max")
        np.testing.assert_allclose(z, pool_by_example(want, index, "max")[0], atol=1e-5)


def test_pipeline_steps_encode_a_store_once_and_read_the_latent_set(tmp_path, monkeypatch):
    """units_of (analyze, match and steer read their SAE units through it) writes one latent set in the cache, reads
    it back on the next call without encoding, and gives what encoding in memory gives, to 1e-5."""
    from mmfeatures.pipeline.train import units_of

    monkeypatch.setenv("MMFEATURES_CACHE", str(tmp_path / "cache"))
    rows, index = _token_rows(seed=9, d=16)
    store = mmf.write_store(rows, _examples(), example_index=index, model="m", site=SITE, source="s",
                            pooling="none", store_dir=tmp_path / "stores", shard_examples=5)
    sae = mmf.SAE(16, 64, mmf.TopK(k=4), seed=0)
    z, labels = units_of(store, sae)
    shards = sorted((tmp_path / "cache" / "latents").rglob("*.safetensors"))
    assert len(shards) == store.config.n_shards
    stamps = [p.stat().st_mtime_ns for p in shards]
    again, _ = units_of(store, sae)
    assert [p.stat().st_mtime_ns for p in shards] == stamps and np.array_equal(again, z)
    direct, direct_labels = unit_activations(store, sae)
    np.testing.assert_allclose(z, direct, atol=1e-5)
    assert list(labels.example_id) == list(direct_labels.example_id)
    assert np.array_equal(units_of(store)[0], unit_activations(store)[0])          # neurons: no latent set


def test_steering_row_statistics_stream_as_the_in_memory_ones(tmp_path):
    """The steer step's median token norm and mean-difference vector, shard by shard, equal those of all rows."""
    import torch

    from mmfeatures.analysis import Labels
    from mmfeatures.pipeline.steer import PICK, _token_stats

    examples = [{"id": f"concepts/{c}/{lang}/{g}", "concept": c, "language": lang, "group": g, "content": f"{c} {g}"}
                for c in CONCEPTS for lang in LANGUAGES for g in ("1", "2")]
    rng = np.random.default_rng(10)
    counts = rng.integers(2, 5, len(examples))
    rows = rng.normal(size=(counts.sum(), 16)).astype(np.float32)
    index = np.repeat(np.arange(len(examples)), counts)
    store = mmf.write_store(rows, examples, example_index=index, model="m", site=SITE, source="s",
                            pooling="none", store_dir=tmp_path, shard_examples=5)
    norm, diff = _token_stats(store, "cat")
    x = torch.from_numpy(rows)
    labels = Labels.from_records(examples).take(index)
    first = torch.as_tensor(labels.group == PICK)
    want = x[first & torch.as_tensor(labels.concept == "cat")].mean(0) - x[first].mean(0)
    assert norm == pytest.approx(float(x.norm(dim=1).median()), abs=1e-6)
    torch.testing.assert_close(diff, want, atol=1e-5, rtol=0)
