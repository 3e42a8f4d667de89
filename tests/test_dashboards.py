"""Feature dashboards (`mmfeatures inspect`) and the Neuronpedia export, on real e5-small token activations of the
built-in sentences in English, Japanese, Arabic and Hindi through a shipped SAE (trained on the general-domain corpus).
Every number a page shows is checked against the SAE run directly on the store's rows."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest
import torch

import mmfeatures as mmf
from mmfeatures.analysis.dashboard import feature_views, with_partners
from mmfeatures.dashboards import write_dashboards
from mmfeatures.errors import InputError, SiteError
from mmfeatures.neuronpedia import write_export
from mmfeatures.pipeline import InspectStep, run
from mmfeatures.sae import encode_store, load_sae

SITE = "text.layer.8.resid"
LANGUAGES = ["en", "ja", "ar", "hi"]
SAE = "data:e5-small-layer8-seed0"


@pytest.fixture(scope="module")
def store(e5, tmp_path_factory):
    ds = mmf.ConceptDataset.builtin(["concepts"]).select(languages=LANGUAGES)
    ds = ds.select(concepts=sorted({e.concept for e in ds.examples})[:30])
    return mmf.extract(e5, ds, [SITE], pooling="none", store_dir=tmp_path_factory.mktemp("stores"),
                       progress=False).stores[SITE]


@pytest.fixture(scope="module")
def sae():
    return load_sae(SAE)


@pytest.fixture(scope="module")
def direct(store, sae):
    """The SAE run on every row of the store, with no latent set in between: the reference."""
    with torch.no_grad():
        return sae.encode(store.rows(np.arange(store.n_rows))).numpy()


@pytest.fixture(scope="module")
def features(direct):
    """The four features that fire on the most examples here (pages with something to show), and a dead one."""
    counts = (direct > 0).sum(0)
    return [*np.argsort(-counts, kind="stable")[:4].tolist(), int(np.flatnonzero(counts == 0)[0])]


@pytest.fixture(scope="module")
def views(store, sae, features, tmp_path_factory):
    return feature_views(store, encode_store(store, sae, root=tmp_path_factory.mktemp("latents"), progress=False),
                         features)


def test_views_show_what_the_sae_computes_on_the_rows(store, direct, features, views):
    prov = store.provenance()
    examples = prov.example_index
    for f, view in zip(features, views, strict=True):
        z = direct[:, f]
        assert view.firing_rows == int((z > 0).sum()) and view.rows == store.n_rows
        assert view.max_activation == pytest.approx(float(z.max()), rel=1e-5)
        per_example = np.zeros(len(prov.examples), np.float32)
        np.maximum.at(per_example, examples, z)
        assert view.firing_examples == int((per_example > 0).sum())
        assert [s.activation for s in view.top] == pytest.approx(np.sort(per_example)[::-1][:len(view.top)],
                                                                 rel=1e-5)
        for shown in [*view.top, *(s for b in view.bands for s in b.examples)]:
            rows = np.flatnonzero(examples == shown.example)
            assert list(shown.tokens) == [prov.token[r] for r in rows]
            assert shown.values == pytest.approx(z[rows].tolist(), rel=1e-5, abs=1e-6)
        for group in view.by_language:
            mask = np.array([e["language"] == group.name for e in prov.examples])
            assert group.mean == pytest.approx(float(per_example[mask].mean()), rel=1e-5, abs=1e-7)
            assert group.firing == pytest.approx(float((per_example[mask] > 0).mean()))
        lows = [b.low for b in view.bands]
        assert lows == sorted(lows, reverse=True)                               # highest band first
        for b in view.bands:
            assert all(b.low <= s.activation <= b.high for s in b.examples)
    assert views[-1].firing_rows == 0 and views[-1].top == () and views[-1].top_concept is None


def test_pages_carry_the_text_and_the_activations(views, features, tmp_path):
    index = write_dashboards({v.feature: [v] for v in views}, tmp_path, title="e5-small layer 8")
    assert index == tmp_path / "index.html"
    scripts = {"ja": r"[\u3040-\u30ff\u4e00-\u9fff]", "ar": r"[\u0600-\u06ff]", "hi": r"[\u0900-\u097f]"}
    seen = set()
    for view in views[:-1]:
        page = (tmp_path / f"feature-{view.feature}.html").read_text(encoding="utf-8")
        values = [float(v) for v in re.findall(r'class="tok" data-v="([^"]+)"', page)]
        shown = [*view.top, *(s for b in view.bands for s in b.examples), *(s for _, g in view.per_language for s in g)]
        assert values == pytest.approx([v for s in shown for v in s.values], rel=1e-5, abs=1e-6)
        seen |= {lang for lang, pattern in scripts.items() if re.search(pattern, page)}
    assert seen == set(scripts), "Japanese, Arabic and Devanagari text is in the pages as text"
    rows = json.loads((tmp_path / "features.json").read_text(encoding="utf-8"))
    assert [r["feature"] for r in rows] == features
    html = index.read_text(encoding="utf-8")
    assert 'id="q"' in html and all(f"feature-{f}.html" in html for f in features)
    assert "never fires" in (tmp_path / f"feature-{features[-1]}.html").read_text(encoding="utf-8")


def test_partners_are_the_best_correlated_latents_of_another_sae(store, sae, features, views, tmp_path):
    other = load_sae("data:e5-small-layer8-seed1")
    latents = encode_store(store, sae, root=tmp_path, progress=False)
    paired = with_partners(views[:2], store, latents, store, encode_store(store, other, root=tmp_path, progress=False),
                           name="seed1", m=2)
    with torch.no_grad():
        zb = other.encode(store.rows(np.arange(store.n_rows))).numpy()
        za = sae.encode(store.rows(np.arange(store.n_rows))).numpy()
    ex = store.provenance().example_index
    pool = lambda z: np.stack([z[ex == i].max(0) for i in range(ex.max() + 1)])  # noqa: E731
    a, b = pool(za), pool(zb)
    for view in paired:
        x = a[:, view.feature]
        r = np.array([np.corrcoef(x, b[:, j])[0, 1] if b[:, j].std() > 0 else -np.inf for j in range(b.shape[1])])
        assert [p.feature for p in view.partners] == np.argsort(-r, kind="stable")[:2].tolist()
        assert [p.r for p in view.partners] == pytest.approx(np.sort(r)[::-1][:2], abs=1e-4)
        assert view.partners[0].top and view.partners[0].top[0].activation == pytest.approx(
            float(b[:, view.partners[0].feature].max()), rel=1e-5)


def test_the_widget_shows_the_same_dashboard_and_follows_the_dropdown(views):
    from mmfeatures import widgets

    panel = widgets.feature_dashboard({v.feature: [v] for v in views})
    assert panel.state["feature"] == views[0].feature and panel.state["top"] == [s.id for s in views[0].top]
    panel.controls["feature"].value = views[1].feature
    assert panel.state["feature"] == views[1].feature and panel.state["top"] == [s.id for s in views[1].top]


# Neuronpedia's export records, as its own data models declare them (neuronpedia_utils/db_models in
# hijohnnylin/neuronpedia: Feature, Activation, Source, SourceSet, SourceRelease, Model).
NEURONPEDIA = {
    "feature": {"modelId": str, "layer": str, "index": str, "maxActApprox": float, "hasVector": bool, "vector": list,
                "frac_nonzero": float, "freq_hist_data_bar_heights": list, "freq_hist_data_bar_values": list,
                "pos_str": list, "neg_str": list, "correlated_features_indices": list,
                "correlated_features_pearson": list, "decoder_weights_dist": list},
    "activation": {"id": str, "tokens": list, "index": str, "layer": str, "modelId": str, "maxValue": float,
                   "maxValueTokenIndex": int, "minValue": float, "values": list, "creatorId": str},
    "source": {"id": str, "modelId": str, "setName": str, "creatorId": str, "hasDashboards": bool,
               "visibility": str},
    "sourceset": {"modelId": str, "name": str, "creatorId": str, "hasDashboards": bool, "visibility": str,
                  "description": str},
    "release": {"name": str, "description": str, "creatorName": str, "creatorId": str, "visibility": str,
                "urls": list},
    "model": {"id": str, "instruct": bool, "creatorId": str, "displayName": str},
}


def _check_fields(record: dict, kind: str) -> None:
    for name, kind_of in NEURONPEDIA[kind].items():
        assert name in record, f"{kind} lacks {name}"
        assert isinstance(record[name], kind_of) or (kind_of is float and isinstance(record[name], int)), \
            f"{kind}.{name} = {record[name]!r} is not {kind_of.__name__}"


def test_neuronpedia_export_has_the_documented_layout_and_fields(views, store, sae, tmp_path):
    folder = write_export({v.feature: [v] for v in views}, tmp_path, sae=sae, store=store)
    assert folder == tmp_path / "e5-small" / "8-mmf-topk-1536"
    for kind in ("release", "model", "sourceset", "source"):
        lines = (folder / f"{kind}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 1
        _check_fields(json.loads(lines[0]), kind)
    features = [json.loads(x) for x in gzip.decompress((folder / "features" / "batch-0.jsonl.gz").read_bytes())
                .decode().splitlines()]
    activations = [json.loads(x) for x in gzip.decompress((folder / "activations" / "batch-0.jsonl.gz")
                                                         .read_bytes()).decode().splitlines()]
    assert [f["index"] for f in features] == [str(v.feature) for v in views]
    for record in features:
        _check_fields(record, "feature")
        assert record["layer"] == "8-mmf-topk-1536" and record["modelId"] == "e5-small"
    by_feature = {v.feature: v for v in views}
    for record in activations:
        _check_fields(record, "activation")
        view = by_feature[int(record["index"])]
        shown = next(s for s in [*view.top, *(s for b in view.bands for s in b.examples)] if s.id == record["dataSource"])
        assert record["tokens"] == list(shown.tokens) and record["values"] == pytest.approx(list(shown.values))
        assert record["maxValue"] == pytest.approx(shown.activation, rel=1e-6)
        assert record["values"][record["maxValueTokenIndex"]] == record["maxValue"]
    assert len({a["id"] for a in activations}) == len(activations)


def test_inspect_refuses_a_feature_beyond_the_width_or_another_store_before_any_work(store, e5, tmp_path):
    with pytest.raises(InputError, match=r"features \[1536, 99999\] are not latents of this SAE \(width 1536"):
        run(InspectStep(sae=SAE, store=str(store.path), features=(3, 1536, 99999), out=str(tmp_path / "a")))
    other = mmf.extract(e5, ["a dog", "un perro"], ["text.layer.5.resid"], pooling="none", store_dir=tmp_path,
                        progress=False).stores["text.layer.5.resid"]
    with pytest.raises(SiteError, match="trained on site 'text.layer.8.resid'"):
        run(InspectStep(sae=SAE, store=str(other.path), features=(3,), out=str(tmp_path / "b")))
    assert not list((tmp_path / "a").glob("*.html")) and not list((tmp_path / "b").glob("*.html"))
    with pytest.raises(InputError, match="partner-store"):
        InspectStep(sae=SAE, store=str(store.path), features=(1,), partner_sae=SAE)


@pytest.fixture(scope="module")
def two_tower(tmp_path_factory):
    """offline:e5-emoji-clip on the built-in photos and their captions: a text and an image store of one shared
    embedding space, and a small TopK SAE trained on the captions (it reads both towers)."""
    ds = mmf.ConceptDataset.builtin(["photos"], languages=["en", "ja", "ar", "hi"])
    root = tmp_path_factory.mktemp("two-tower")
    stores = mmf.extract("offline:e5-emoji-clip", ds, ["text.embed", "image.embed"], store_dir=root,
                         progress=False).stores
    sae = mmf.train(stores["text.embed"], mmf.TrainConfig(mmf.TopK(k=4), 64, batch_size=16, epochs=20), root / "sae",
                    progress=False)[0]
    return stores["text.embed"], stores["image.embed"], sae.folder


def test_dashboards_render_in_chromium_with_scripts_pictures_and_stored_activations(store, direct, views,
                                                                                    two_tower, tmp_path):
    """The pages as a person opens them: Japanese, Arabic and Devanagari drawn with real glyphs (two different
    characters never draw the same pixels, as missing-glyph boxes do), every picture loaded, and the highlighted
    tokens' values those of the SAE on the stored rows. Screenshots go to test-output/dashboards/."""
    from test_browser import ARGS, CHROMIUM, ROOT, _browser_or_skip

    sync_api = _browser_or_skip()
    write_dashboards({v.feature: [v] for v in views}, tmp_path / "text", title="e5-small layer 8")
    text, image, sae = two_tower
    with torch.no_grad():
        on_pictures = load_sae(sae).encode(image.rows(np.arange(image.n_rows))).amax(0)
    pictured = int(on_pictures.argmax())                     # the feature the photos excite most
    assert float(on_pictures[pictured]) > 0
    record = run(InspectStep(sae=str(sae), store=str(text.path), beside=(str(image.path),), texts="photos",
                             features=tuple(dict.fromkeys((pictured, (pictured + 1) % 64, 2))),
                             out=str(tmp_path / "photos")))
    shots = ROOT / "test-output" / "dashboards"
    shots.mkdir(parents=True, exist_ok=True)
    glyphs = """(chars) => { const c = document.createElement('canvas'); c.width = c.height = 40;
        const g = c.getContext('2d'); g.font = '28px ' + getComputedStyle(document.body).fontFamily;
        return chars.map(ch => { g.clearRect(0, 0, 40, 40); g.fillText(ch, 4, 32);
                                 return Array.from(g.getImageData(0, 0, 40, 40).data).join(','); }); }"""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((tmp_path / "text" / f"feature-{views[0].feature}.html").as_uri())
        page.screenshot(path=str(shots / "feature_text.png"), full_page=True)
        shown = page.evaluate("Array.from(document.querySelectorAll('.ex')).map(e => [e.dataset.id, "
                              "Array.from(e.querySelectorAll('.tok')).map(t => parseFloat(t.dataset.v))])")
        body = page.inner_text("body")
        for pair in ("犬猫", "كلب", "कुत्ता"):
            drawn = page.evaluate(glyphs, list(pair[:2]))
            assert len(set(drawn)) == 2 and all(d.count(",0,0,0,0") < len(d.split(",")) // 4 - 1 for d in drawn), pair
        page.goto((tmp_path / "photos" / f"feature-{pictured}.html").as_uri())
        page.wait_for_load_state("load")
        pictures = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        captions = page.inner_text(".columns")
        columns = page.locator(".columns").first.locator("h3").all_inner_texts()
        page.screenshot(path=str(shots / "feature_two_towers.png"), full_page=True)
        page.goto((tmp_path / "photos" / "index.html").as_uri())
        page.fill("#q", str(pictured))
        visible = page.evaluate("Array.from(document.querySelectorAll('#features tr[data-search]'))"
                                ".filter(r => r.style.display !== 'none').map(r => r.cells[0].innerText)")
        browser.close()
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", body) and re.search(r"[\u0600-\u06ff]", body)
    ids = {e["id"]: i for i, e in enumerate(store.examples)}
    ex = store.provenance().example_index
    assert shown
    for example_id, values in shown:
        assert values == pytest.approx(direct[ex == ids[example_id], views[0].feature].tolist(), rel=1e-5, abs=1e-6)
    assert pictures and all(done and width > 0 for done, width in pictures)
    assert "photos/" not in captions                         # the captions' text, not their ids (--texts)
    assert [c.split(" · ")[1] for c in columns] == ["text.embed", "image.embed"]
    features = dict.fromkeys((pictured, (pictured + 1) % 64, 2))
    assert visible == [str(f) for f in features if str(f).startswith(str(pictured))] and record.artifact("dashboards").path.endswith("index.html")
