"""ConceptDataset.builtin() and the Hugging Face datasets loader (offline, on local files)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from mmfeatures import ConceptDataset
from mmfeatures.datasets import builtin as bi
from mmfeatures.errors import CorruptFileError, InputError
from mmfeatures.types import Modality

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def ds():
    return ConceptDataset.builtin()


def test_builtin_aligns_three_sources_by_concept(ds):
    assert len(ds.concepts) == 123 and len(ds.languages) == 16
    dog = ds.select(concepts=["dog"])
    ids = {e.id.split("/")[0] for e in dog}
    assert ids == {"concepts", "emoji"}
    assert {e.modality for e in dog} == {Modality.TEXT, Modality.IMAGE}
    cat = ds.select(concepts=["cat"])
    assert any(e.id == "photos/chelsea/image" for e in cat) and any(e.id == "emoji/" + e.id.split("/")[1] + "/ja"
                                                                      for e in cat if e.id.startswith("emoji/"))
    texts = [e.content for e in cat.select(languages=["ja"], modalities=["text"])]
    assert "猫が窓辺に座っている。" in texts and "ネコ" in texts  # a sentence and an emoji name
    assert ds.categories["dog"] == "animals" and ds.categories["three"] == "numbers"


def test_builtin_iterates_selects_and_pairs(ds):
    by_concept = ds.by_concept()
    assert set(by_concept) == set(ds.concepts)
    pairs = ds.pairs("sw")
    assert pairs and all(img.modality is Modality.IMAGE and cap.language == "sw" and img.concept == cap.concept
                         for img, cap in pairs)
    assert {img.id for img, _ in pairs} >= {"photos/rocket/image", "photos/astronaut/image"}
    animals = ds.select(categories=["animals"], modalities=["image"])
    assert all(ds.categories[e.concept] == "animals" for e in animals)
    only_ja = ConceptDataset.builtin(languages=["ja"])
    assert only_ja.languages == ("ja",) and len(only_ja.select(modalities=["image"])) == len(
        ds.select(modalities=["image"]))


def test_builtin_sources_keywords_and_fingerprint(ds):
    sentences = ConceptDataset.builtin(["concepts"], with_keywords=True)
    assert len(sentences) == 123 * 16 * 3
    keyword = {e.id: e.content for e in sentences.select(concepts=["two"], languages=["ru"])}
    assert keyword["concepts/two/ru/keyword"] == "два"
    assert bi.keywords()[("two", "ru")] == ("два", "две", "двое")
    full = ConceptDataset.builtin(["emoji"], linked_only=False)
    assert len(full.select(modalities=["image"])) == 1397
    assert any(c.startswith("emoji:") for c in full.concepts)
    assert ConceptDataset.builtin().fingerprint() == ds.fingerprint()
    assert ConceptDataset.builtin(languages=["en"]).fingerprint() != ds.fingerprint()
    with pytest.raises(InputError, match="unknown built-in source"):
        ConceptDataset.builtin(["emojis"])


def test_builtin_extracts_with_a_real_encoder(tmp_path, e5):
    """A slice of the built-in set goes through extract() like any dataset (text tower of e5)."""
    import mmfeatures as mmf

    part = ConceptDataset.builtin(["concepts"]).select(concepts=["dog", "cat"], languages=["en", "ja", "sw"])
    result = mmf.extract(e5, part, ["text.layer.4.resid"], store_dir=tmp_path, batch_size=8, progress=False)
    store = result.stores["text.layer.4.resid"]
    assert store.n_rows == len(part) == 12
    assert set(store.provenance().column("concept")) == {"dog", "cat"}


def test_missing_and_corrupt_builtin_files_name_the_fix(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(DATA, root)
    with pytest.raises(InputError, match="MMFEATURES_DATA"):
        bi.data_root(tmp_path / "nowhere")
    (root / "emoji" / "images.npz").write_bytes(b"not an array")
    with pytest.raises(CorruptFileError, match="SHA-256 differs.*build.py"):
        bi.load_emoji(root)
    (root / "photos" / "coffee.png").unlink()
    with pytest.raises(CorruptFileError, match="coffee.png: missing or changed"):
        bi.load_photos(root)
    lines = (root / "concepts" / "sentences.tsv").read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].replace("animals", "food")
    (root / "concepts" / "sentences.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CorruptFileError, match=r"sentences.tsv:6: concept 'dog' has category 'food'"):
        bi.load_sentences(root)
    os.environ["MMFEATURES_DATA"] = str(DATA)
    try:
        assert bi.data_root() == DATA
    finally:
        del os.environ["MMFEATURES_DATA"]


# --- Hugging Face datasets, tested offline on local files of the real shapes -------------------------

datasets = pytest.importorskip("datasets")


def _png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, "PNG")
    return buffer.getvalue()


def xm3600_like(path: Path) -> Path:
    """The hub's Crossmodal-3600 layout: one split per language; image_id, captions list, image bytes."""
    splits = {}
    for lang, words in {"en": ["a red square", "a blue square"], "ja": ["赤い四角", "青い四角"],
                        "sw": ["mraba mwekundu", "mraba wa bluu"]}.items():
        splits[lang] = datasets.Dataset.from_dict({
            "image_id": ["red01", "blue02"], "image_locale": ["en", "en"],
            "captions": [[words[0], words[0] + "!"], [words[1]]],
            "image": [{"bytes": _png("red"), "path": None}, {"bytes": _png("blue"), "path": None}]})
    datasets.DatasetDict(splits).save_to_disk(str(path))
    return path


def test_hf_crossmodal_layout_aligns_images_and_captions(tmp_path, monkeypatch):
    monkeypatch.setenv("MMFEATURES_CACHE", str(tmp_path / "cache"))
    from mmfeatures.datasets.hfdata import load_hf_dataset

    src = xm3600_like(tmp_path / "xm3600")
    ds = load_hf_dataset(src, split={"en": "en", "ja": "ja", "sw": "sw"}, id="image_id")
    assert ds.languages == ("en", "ja", "sw") and ds.concepts == ("blue02", "red01")
    images = ds.select(modalities=["image"])
    assert len(images) == 2 and all(Path(e.content).is_file() for e in images)
    assert Image.open(images[0].content).getpixel((0, 0)) == (255, 0, 0)
    assert [c.content for _, c in ds.pairs("ja") if c.concept == "red01"] == ["赤い四角", "赤い四角!"]
    assert len(ds.select(languages=["en"])) == 3  # two captions for red, one for blue
    again = load_hf_dataset(src, split={"en": "en", "ja": "ja", "sw": "sw"}, id="image_id")
    assert again.fingerprint() == ds.fingerprint()  # images are content-addressed in the cache


def test_hf_coco_layout_parquet_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("MMFEATURES_CACHE", str(tmp_path / "cache"))
    from mmfeatures.datasets.hfdata import load_hf_dataset

    coco = datasets.Dataset.from_dict({"image": [Image.new("RGB", (8, 8), "green")],
                                       "sentences": [["a green square", "green"]], "cocoid": [7]})
    coco = coco.cast_column("image", datasets.Image())
    coco.save_to_disk(str(tmp_path / "coco"))
    ds = load_hf_dataset(tmp_path / "coco", text="sentences", language="en", id="cocoid")
    assert [e.id for e in ds] == ["7/image", "7/en/0", "7/en/1"]
    table = datasets.Dataset.from_dict({"text": ["hola", "bonjour"], "lang": ["es", "fr"], "concept": ["hi", "hi"]})
    table.to_parquet(str(tmp_path / "t.parquet"))
    text_only = load_hf_dataset(tmp_path / "t.parquet", text="text", image=None, language="lang", concept="concept")
    assert text_only.languages == ("es", "fr") and text_only.concepts == ("hi",)
    with pytest.raises(InputError, match=r"no column 'captions' \(for text=\).*sentences"):
        load_hf_dataset(tmp_path / "coco")
    with pytest.raises(InputError, match="pass language='en'"):
        load_hf_dataset(tmp_path / "coco", text="sentences")
    with pytest.raises(InputError, match="unknown language code 'english'"):
        load_hf_dataset(tmp_path / "coco", text="sentences", language="english")
    with pytest.raises(InputError, match="no split 'test'"):
        load_hf_dataset(xm3600_like(tmp_path / "xm"), split="test")
    with pytest.raises(InputError, match="no such file"):
        load_hf_dataset(tmp_path / "missing")


CACHED = """
import datasets, sys
from mmfeatures.datasets.hfdata import load_hf_dataset
ds = load_hf_dataset("testorg/tinycap", split={"en": "en"}, image=None, id="image_id")
print(len(ds), ds.languages, [e.content for e in ds])
"""


def test_hf_hub_name_from_a_filled_cache_and_fails_fast_without(tmp_path):
    """A hub name loads from the datasets cache offline; an uncached one fails in seconds with the fix."""
    hf_home = tmp_path / "hf"
    build = datasets.Dataset.from_dict({"image_id": ["a", "b"], "captions": [["hello"], ["world", "hi"]]})
    build.to_parquet(str(tmp_path / "en.parquet"))
    built = datasets.load_dataset("parquet", data_files={"en": str(tmp_path / "en.parquet")},
                                  cache_dir=str(tmp_path / "build"))
    source = Path(built["en"].cache_files[0]["filename"]).parent
    target = hf_home / "datasets" / "testorg___tinycap" / "default" / "0.0.0" / source.name
    target.mkdir(parents=True)
    shutil.copy(source / "dataset_info.json", target)
    shutil.copy(source / "parquet-en.arrow", target / "tinycap-en.arrow")
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1",
           "MMFEATURES_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", CACHED], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 ('en',) ['hello', 'world', 'hi']" in out.stdout
    env.pop("HF_HUB_OFFLINE")
    env["HF_ENDPOINT"] = "http://10.255.255.1:9"  # unroutable: the reachability probe must give up
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", CACHED.replace("testorg/tinycap", "testorg/absent")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and time.monotonic() - start < 60
    assert "is not in the local Hugging Face cache" in out.stderr and "save_to_disk" in out.stderr
