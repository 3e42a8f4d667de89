"""extract() and ActivationStore: faithfulness, pooling, provenance, stores, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import mmfeatures as mmf
from mmfeatures.activations import ActivationStore, Example, NonFiniteError, extract
from mmfeatures.disk import SCHEMA_VERSION

TEXTS = ["a dog", "the cat sat on the mat", "hello world", "x y z", "birds fly south in winter"]


def run(encoder, inputs, sites, tmp_path, **kw):
    kw.setdefault("progress", False)
    return extract(encoder, inputs, sites, store_dir=tmp_path, **kw)


@pytest.mark.parametrize("name", ["tiny:clip", "tiny:openclip"])
def test_embed_site_equals_the_models_own_embedding(tmp_path, name):
    enc = mmf.load_encoder(name)
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    r = run(enc, images + TEXTS, ["image.embed", "text.embed"], tmp_path)
    np.testing.assert_allclose(r["image.embed"], enc.embed_image(images).numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(r["text.embed"], enc.embed_text(TEXTS).numpy(), rtol=0, atol=1e-5)


def test_e5_sites_match_the_model(e5, tmp_path):
    texts = ["Der Hund schläft im Garten.", "犬が寝ている。", "The dog sleeps."]
    r = run(e5, texts, ["text.embed", "text.layer.5.resid"], tmp_path, pooling="none", include_special=True)
    np.testing.assert_allclose(r["text.embed"], e5.embed_text(texts).numpy(), rtol=0, atol=1e-5)
    tower = e5.tower("text")
    batch = tower.prepare(texts)
    hs = tower.module(**batch.inputs, output_hidden_states=True).hidden_states[6]
    np.testing.assert_allclose(r["text.layer.5.resid"], hs[batch.mask_bt].numpy(), rtol=0, atol=1e-5)
    prov = r.provenance("text.layer.5.resid")
    assert prov.token[0] == "<s>" and prov.special[0] and prov.token[1] == "▁que"  # "query: " prefix


def test_padding_never_enters_a_pooled_row(tmp_path):
    enc = mmf.load_encoder("tiny:bert")
    alone = run(enc, TEXTS, ["text.layer.1.resid"], tmp_path / "a", batch_size=1)
    padded = run(enc, TEXTS, ["text.layer.1.resid"], tmp_path / "b", batch_size=8)
    np.testing.assert_allclose(alone["text.layer.1.resid"], padded["text.layer.1.resid"], rtol=0, atol=1e-5)


def test_specials_are_kept_apart_in_per_token_rows(tmp_path):
    enc = mmf.load_encoder("tiny:bert")
    default = run(enc, TEXTS, ["text.layer.0.resid"], tmp_path, pooling="none")
    withsp = run(enc, TEXTS, ["text.layer.0.resid"], tmp_path, pooling="none", include_special=True)
    p0, p1 = default.provenance("text.layer.0.resid"), withsp.provenance("text.layer.0.resid")
    assert not p0.special.any() and "[CLS]" not in p0.token
    assert p1.special.sum() == 2 * len(TEXTS) and len(p1) == len(p0) + 2 * len(TEXTS)


@pytest.mark.parametrize("pooling", ["cls", "eos"])
def test_cls_and_eos_pooling_pick_those_positions(tmp_path, pooling):
    enc = mmf.load_encoder("tiny:bert")
    r = run(enc, TEXTS, ["text.layer.1.resid"], tmp_path, pooling=pooling)
    tokens = run(enc, TEXTS, ["text.layer.1.resid"], tmp_path, pooling="none", include_special=True)
    prov = tokens.provenance("text.layer.1.resid")
    want = "[CLS]" if pooling == "cls" else "[SEP]"
    rows = [i for i, t in enumerate(prov.token) if t == want]
    np.testing.assert_allclose(r["text.layer.1.resid"], tokens["text.layer.1.resid"][rows], rtol=0, atol=1e-6)


def test_provenance_carries_concept_and_language(tmp_path):
    exs = [Example("d-en", mmf.Modality.TEXT, "the dog", "dog", "en"),
           Example("d-es", mmf.Modality.TEXT, "el perro", "dog", "es"),
           Example("c-en", mmf.Modality.TEXT, "the cat", "cat", "en")]
    r = run("tiny:bert", exs, ["text.layer.1.resid"], tmp_path, pooling="none")
    store = r.stores["text.layer.1.resid"]
    prov = store.provenance().to_pandas()
    assert set(prov["concept"]) == {"dog", "cat"} and set(prov["language"]) == {"en", "es"}
    rows = store.select(concept="dog", language="es")
    assert set(prov.loc[rows, "id"]) == {"d-es"} and "".join(prov.loc[rows, "token"]).replace("##", "") == "elperro"
    np.testing.assert_array_equal(store.rows(rows).numpy(), r["text.layer.1.resid"][rows])


def test_store_is_named_by_what_produced_it(tmp_path):
    site = ["text.layer.1.resid"]
    a = run("tiny:bert", TEXTS, site, tmp_path).stores[site[0]].path
    assert run("tiny:bert", TEXTS, site, tmp_path).computed_shards == 0  # same config: reused
    b = run("tiny:bert", TEXTS[:-1] + ["changed text"], site, tmp_path).stores[site[0]].path
    c = run("tiny:clip", TEXTS, site, tmp_path).stores[site[0]].path
    d = run("tiny:bert", TEXTS, site, tmp_path, pooling="cls").stores[site[0]].path
    assert len({a, b, c, d}) == 4
    meta = ActivationStore(a).header
    assert meta["schema_version"] == SCHEMA_VERSION and meta["config"]["dataset"] and meta["status"] == "complete"
    assert meta["key"] == ActivationStore(a).key and a.name.endswith(meta["key"])


def test_role_and_weights_change_the_store_but_device_and_progress_do_not(e5, tmp_path):
    """The prompt prefix changes the tokens, so the role is part of a store's identity; a random-init copy
    of the same model gets its own store; where it runs and whether a bar is shown do not matter."""
    from mmfeatures.encoders import random_init

    site = ["text.layer.1.resid"]
    raw = run(e5, TEXTS, site, tmp_path, pooling="none", role="raw").stores[site[0]]
    query = run(e5, TEXTS, site, tmp_path, pooling="none", role="query")
    assert query.computed_shards == 1 and query.stores[site[0]].path != raw.path
    assert query.stores[site[0]].n_rows > raw.n_rows                   # "query: " adds tokens
    again = run(e5, TEXTS, site, tmp_path, pooling="none", role="raw", progress=True, device="cpu")
    assert again.computed_shards == 0 and again.stores[site[0]].path == raw.path
    other = run(random_init(e5), TEXTS, site, tmp_path, pooling="none", role="raw").stores[site[0]]
    assert other.config.weights != raw.config.weights and other.path != raw.path


def test_truncated_shard_is_detected_and_recomputed(tmp_path):
    first = run("tiny:bert", TEXTS * 4, ["text.layer.1.resid"], tmp_path, shard_examples=5)
    store = first.stores["text.layer.1.resid"]
    victim = store.path / "shards" / "00002.safetensors"
    victim.write_bytes(victim.read_bytes()[:-40])
    assert store.verify() == [2]
    with pytest.raises(mmf.CorruptFileError, match="00002"):
        store.array()
    again = run("tiny:bert", TEXTS * 4, ["text.layer.1.resid"], tmp_path, shard_examples=5)
    assert again.computed_shards == 1 and again.reused_shards == 3
    assert again.stores["text.layer.1.resid"].verify() == []


def test_batches_cover_every_row_once_with_bounded_buffers(tmp_path):
    r = run("tiny:bert", TEXTS * 6, ["text.layer.1.resid"], tmp_path, shard_examples=3, pooling="none")
    store, full = r.stores["text.layer.1.resid"], r["text.layer.1.resid"]
    got = torch.cat(list(store.batches(7, shuffle=True, seed=1, buffer_shards=2))).numpy()
    assert got.shape == full.shape and not np.array_equal(got, full)
    assert np.array_equal(np.sort(got, axis=0), np.sort(full, axis=0))
    stats = store.stats()
    assert (store.path / "stats.safetensors").is_file()
    np.testing.assert_allclose(stats.mean_d.numpy(), full.mean(0), atol=1e-5)
    scaled = torch.cat(list(store.batches(1000, shuffle=False, normalize="scale")))
    assert abs(float(scaled.pow(2).sum(1).mean()) - store.d) < 1e-3


@pytest.mark.parametrize("batch, buffer, start", [(7, 2, 0), (7, 2, 5), (4, 1, 9), (16, 3, 3), (5, 2, 100)])
def test_start_batch_skips_exactly_and_reads_nothing_it_skips(tmp_path, monkeypatch, batch, buffer, start):
    r = run("tiny:bert", TEXTS * 6, ["text.layer.1.resid"], tmp_path, shard_examples=3, pooling="none")
    store = r.stores["text.layer.1.resid"]
    full = list(store.batches(batch, seed=3, buffer_shards=buffer))
    store._cache.clear()
    loads = []
    original = ActivationStore._read

    def counting(self, index):
        loads.append(index)
        return original(self, index)

    monkeypatch.setattr(ActivationStore, "_read", counting)
    tail = list(store.batches(batch, seed=3, buffer_shards=buffer, start_batch=start))
    assert len(tail) == max(len(full) - start, 0)
    for a, b in zip(tail, full[start:], strict=True):
        assert torch.equal(a, b)
    if start >= len(full):
        assert not loads  # nothing to yield, nothing read


def test_bf16_store_reads_back_as_fp32(tmp_path):
    r32 = run("tiny:bert", TEXTS, ["text.layer.1.resid"], tmp_path)
    r16 = run("tiny:bert", TEXTS, ["text.layer.1.resid"], tmp_path, store_dtype="bf16")
    assert r16["text.layer.1.resid"].dtype == np.float32
    np.testing.assert_allclose(r16["text.layer.1.resid"], r32["text.layer.1.resid"], atol=0.05)
    with pytest.raises(ValueError, match="fp16 overflows"):
        run("tiny:bert", TEXTS, ["text.layer.1.resid"], tmp_path, store_dtype="fp16")


@pytest.mark.parametrize("bad, match", [
    (["ok", ""], "input item 1 .* empty"), (["ok", "   "], "input item 1 .* empty"),
    (["ok", None], "input item 1 .* NoneType"), ([3, "ok"], "input item 0 .* int"), ([], "no inputs"),
])
def test_bad_texts_name_the_item(tmp_path, bad, match):
    with pytest.raises(mmf.InputError, match=match):
        run("tiny:bert", bad, ["text.embed"], tmp_path)


def test_unknown_site_lists_the_valid_ones(tmp_path):
    with pytest.raises(mmf.SiteError, match=r"valid sites: text\.embed"):
        run("tiny:bert", TEXTS, ["text.layer.9.resid"], tmp_path)


def test_over_long_text_is_truncated_and_counted(tmp_path):
    r = run("tiny:bert", ["short", "word " * 100, "also short"], ["text.embed"], tmp_path)
    assert r.truncated == 1 and r.stores["text.embed"].header["truncated"] == 1


def _write_images(folder):
    folder.mkdir()
    paths = {}
    for mode, color in [("L", 128), ("RGBA", (255, 0, 0, 128)), ("CMYK", (0, 255, 0, 0)), ("P", 3), ("1", 1)]:
        paths[mode] = folder / f"{mode}.png" if mode != "CMYK" else folder / "cmyk.jpg"
        Image.new(mode, (24, 24), color).save(paths[mode])
    sixteen = folder / "sixteen.png"
    Image.fromarray(np.full((24, 24), 40000, dtype=np.uint16)).save(sixteen)
    paths["I;16"] = sixteen
    ok = folder / "ok.png"
    Image.new("RGB", (24, 24), "blue").save(ok)
    truncated = folder / "truncated.png"
    truncated.write_bytes(ok.read_bytes()[:60])
    notimage = folder / "notes.png"
    notimage.write_text("this is not an image")
    return paths, ok, truncated, notimage


def test_images_convert_where_sound_and_bad_files_are_named(tmp_path):
    paths, ok, truncated, notimage = _write_images(tmp_path / "img")
    r = run("tiny:clip", list(paths.values()) + [ok], ["image.embed"], tmp_path / "s")
    assert r["image.embed"].shape[0] == len(paths) + 1
    with Image.open(paths["I;16"]) as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    for bad in (truncated, notimage):
        with pytest.raises(mmf.InputError, match=str(bad)):
            run("tiny:clip", [ok, bad], ["image.embed"], tmp_path / "s")
    skip = run("tiny:clip", [ok, truncated, notimage], ["image.embed"], tmp_path / "s", on_error="skip")
    assert skip["image.embed"].shape[0] == 1
    assert [s["id"] for s in skip.stores["image.embed"].header["skipped"]] == ["1", "2"]


def test_huge_image_is_refused_by_name(tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("L", (10_000, 9_000)).save(huge)  # 90 MP > PIL's bomb limit
    with pytest.raises(mmf.InputError, match="huge.png.*downscale"):
        run("tiny:clip", [huge], ["image.embed"], tmp_path)


def test_batch_size_backs_off_on_out_of_memory(tmp_path):
    enc = mmf.load_encoder("tiny:bert")
    block = enc.tower("text").layer_module(0, "resid")

    def fake_oom(_module, args):  # a device that fits at most 2 texts at once
        if args[0].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    handle = block.register_forward_pre_hook(fake_oom)
    try:
        r = run(enc, TEXTS * 2, ["text.layer.1.resid"], tmp_path / "oom", batch_size=8)
    finally:
        handle.remove()
    ref = run(enc, TEXTS * 2, ["text.layer.1.resid"], tmp_path / "ref", batch_size=2)
    np.testing.assert_allclose(r["text.layer.1.resid"], ref["text.layer.1.resid"], rtol=0, atol=1e-6)


def test_non_finite_activations_name_the_examples(tmp_path):
    enc = mmf.load_encoder("tiny:bert")
    block = enc.tower("text").layer_module(0, "resid")

    def poison(_module, _args, output):
        out = output[0] if isinstance(output, tuple) else output
        out[1, 1] = float("nan")  # the second text in the batch

    handle = block.register_forward_hook(poison)
    exs = [Example(f"id-{i}", mmf.Modality.TEXT, t) for i, t in enumerate(TEXTS)]
    try:
        with pytest.raises(NonFiniteError, match="id-1"):
            run(enc, exs, ["text.layer.1.resid"], tmp_path)
    finally:
        handle.remove()


@pytest.mark.parametrize("name, site", [("tiny:openclip", "text.layer.0.resid"), ("tiny:openclip", "image.layer.1.mlp"),
                                        ("tiny:clip", "image.layer.0.attn")])
def test_per_token_rows_for_every_tower_family(tmp_path, name, site):
    image = Image.new("RGB", (32, 32), "red")
    r = run(name, [image, "a dog"], [site], tmp_path, pooling="none", include_special=True)
    prov = r.provenance(site)
    assert len(prov) == r[site].shape[0] > 1 and all(prov.token)
    if site.startswith("image"):
        assert prov.token[0] == "CLS" and prov.special[0] and prov.token[1] == "patch0"
