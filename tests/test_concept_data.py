"""Checks that would catch a broken built-in data set (data/concepts, data/emoji, data/photos)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
LANGS = ["en", "es", "de", "fr", "it", "pt", "ru", "ar", "fa", "tr", "ja", "zh", "ko", "id", "hi", "sw"]
EMOJI_LANGS = LANGS[:14]
CATEGORIES = {"animals", "food", "objects", "places", "nature", "colours", "numbers", "emotions", "actions",
              "abstract"}
SCRIPT = {"ru": {"CYRILLIC"}, "ar": {"ARABIC"}, "fa": {"ARABIC"}, "hi": {"DEVANAGARI"}, "ko": {"HANGUL"},
          "zh": {"CJK"}, "ja": {"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "IDEOGRAPHIC"}}
ENGLISH_WORDS = {"the", "and", "is", "are", "of", "with", "my", "you", "this", "that", "was", "for", "it"}


def read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def sentences():
    return read(DATA / "concepts" / "sentences.tsv")


def fold(text: str) -> str:
    """Case-fold, also for Turkish capital İ (which folds to i + combining dot)."""
    return unicodedata.normalize("NFC", text.casefold().replace("\u0307", ""))


def contains_keyword(text: str, keyword: str) -> bool:
    return any(fold(form) in fold(text) for form in keyword.split("/"))


def scripts(text: str) -> set[str]:
    """The scripts of the letters in ``text`` (first word of each letter's Unicode name)."""
    return {unicodedata.name(ch).split()[0] for ch in text if unicodedata.category(ch).startswith("L")}


def test_schema_and_coverage(sentences):
    assert list(sentences[0]) == ["concept_id", "category", "language", "sentence", "keyword", "text"]
    by_concept = defaultdict(Counter)
    category_of = defaultdict(set)
    for r in sentences:
        by_concept[r["concept_id"]][r["language"]] += 1
        category_of[r["concept_id"]].add(r["category"])
        assert r["sentence"] in {"1", "2"}, r
        assert r["text"] == r["text"].strip() and "  " not in r["text"], r
    assert len(by_concept) >= 120
    assert all(len(cats) == 1 for cats in category_of.values()), "a concept has one category"
    assert CATEGORIES <= {c for cats in category_of.values() for c in cats}
    for concept, counts in by_concept.items():
        assert set(counts) == set(LANGS), f"{concept}: missing {set(LANGS) - set(counts)}"
        assert set(counts.values()) == {2}, f"{concept}: {counts}"
    per_category = Counter(next(iter(c)) for c in category_of.values())
    assert min(per_category[c] for c in CATEGORIES) >= 10, per_category


def test_keyword_in_every_sentence(sentences):
    missing = [f"{r['concept_id']}/{r['language']}/{r['sentence']}: {r['keyword']!r} not in {r['text']!r}"
               for r in sentences if not contains_keyword(r["text"], r["keyword"])]
    assert not missing, "\n".join(missing[:20])
    keywords = defaultdict(set)
    for r in sentences:
        keywords[(r["concept_id"], r["language"])].add(r["keyword"])
    assert all(len(k) == 1 for k in keywords.values()), "one keyword per concept and language"


@pytest.mark.parametrize("lang", LANGS)
def test_script_matches_language(sentences, lang):
    for r in (r for r in sentences if r["language"] == lang):
        found = scripts(r["text"])
        where = f"{r['concept_id']}/{lang}/{r['sentence']}: {r['text']!r} uses {found}"
        if lang in SCRIPT:
            assert found and found <= SCRIPT[lang], where
        else:
            assert found == {"LATIN"}, where
        if lang == "ja":
            assert found & {"HIRAGANA", "KATAKANA"}, f"{where}: Japanese without kana reads as Chinese"
        if lang == "fa":
            assert not re.search("[\u064a\u0643]", r["text"]), f"{where}: Arabic yeh/kaf in Persian; use ی and ک"
        if lang == "ar":
            assert not re.search("[\u067e\u0686\u0698\u06af\u06cc\u06a9]", r["text"]), f"{where}: Persian letters"


def test_no_duplicates_and_no_english_left(sentences):
    texts = Counter(fold(r["text"]) for r in sentences)
    assert not [t for t, n in texts.items() if n > 1], "duplicated sentences"
    english = {(r["concept_id"], r["sentence"]): fold(r["text"]) for r in sentences if r["language"] == "en"}
    for r in sentences:
        if r["language"] == "en":
            continue
        words = set(re.findall(r"\w+", fold(r["text"])))
        assert not words & ENGLISH_WORDS, f"English words {words & ENGLISH_WORDS} in {r}"
        assert fold(r["text"]) != english[(r["concept_id"], r["sentence"])], f"untranslated: {r}"


def test_parallel_sentences_are_translations(sentences):
    """Sentences are aligned across languages: where a sentence writes numerals, they agree."""
    digits = defaultdict(set)
    for r in sentences:
        ascii_digits = "".join(str(unicodedata.digit(c)) if c.isdigit() else c for c in r["text"])
        digits[(r["concept_id"], r["sentence"])].add(tuple(re.findall(r"\d+", ascii_digits)))
    for key, found in digits.items():
        found.discard(())  # written out as words in this language
        assert len(found) <= 1, f"{key}: numerals differ across languages {found}"


@pytest.fixture(scope="module")
def emoji_index():
    return read(DATA / "emoji" / "index.tsv")


def test_emoji_names_and_links(emoji_index, sentences):
    category_of = {r["concept_id"]: r["category"] for r in sentences}
    assert len(emoji_index) >= 1000
    for r in emoji_index:
        for lang in EMOJI_LANGS:
            name = r[f"name_{lang}"]
            assert name and ":" not in name and "_" not in name and name == name.strip(), (r["emoji"], lang, name)
        concept = r["concept_id"]
        if concept.startswith("emoji:"):
            assert r["unicode_group"] not in ("Flags", "Symbols"), r
        else:
            assert category_of.get(concept) == r["category"], f"{r['emoji']} links unknown or mis-categorised {concept}"
    linked = {r["concept_id"] for r in emoji_index if not r["concept_id"].startswith("emoji:")}
    assert {"dog", "cat", "pizza", "coffee", "rocket"} <= linked
    assert len(linked) >= 80
    assert not [r for r in emoji_index if any(0x1F3FB <= ord(c) <= 0x1F3FF for c in r["emoji"])], "skin tones"


def test_emoji_images_match_index(emoji_index):
    meta = json.loads((DATA / "emoji" / "build.json").read_text())
    path = DATA / "emoji" / "images.npz"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["images_sha256"]
    assert path.stat().st_size < 10_000_000, "renders should stay a few MB"
    images = np.load(path)["images"]
    assert images.shape == (len(emoji_index), 72, 72, 3) and images.dtype == np.uint8
    assert images.reshape(len(images), -1).min(axis=1).max() < 200, "some render is blank"
    corners = images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners >= 250).mean() > 0.9, "renders are drawn on white"
    digests = Counter(hashlib.sha256(im.tobytes()).hexdigest() for im in images)
    shared = [n for n in digests.values() if n > 1]
    assert len(shared) <= 2 and max(digests.values()) <= 2, "renders repeat; is the font falling back?"


def test_photos_and_captions(sentences):
    photos = read(DATA / "photos" / "photos.tsv")
    captions = read(DATA / "photos" / "captions.tsv")
    keyword = {(r["concept_id"], r["language"]): r["keyword"] for r in sentences}
    assert len(photos) >= 6
    by_photo = defaultdict(dict)
    for c in captions:
        by_photo[c["photo_id"]][c["language"]] = c["caption"]
    for p in photos:
        assert hashlib.sha256((DATA / "photos" / p["file"]).read_bytes()).hexdigest() == p["sha256"]
        assert set(by_photo[p["photo_id"]]) == set(LANGS), p["photo_id"]
        for lang, caption in by_photo[p["photo_id"]].items():
            assert contains_keyword(caption, keyword[(p["concept_id"], lang)]), (p["photo_id"], lang, caption)
            if lang in SCRIPT:
                assert scripts(caption) <= SCRIPT[lang], (p["photo_id"], lang, caption)
        assert p["credit"].rsplit(";", 1)[-1].strip(), f"{p['photo_id']}: no licence"


@pytest.mark.parametrize("folder", ["concepts", "emoji", "photos"])
def test_data_cards(folder):
    card = (DATA / folder / "README.md").read_text(encoding="utf-8").lower()
    for section in ("## schema", "## licence", "## how it was made"):
        assert section in card, f"data/{folder}/README.md lacks {section!r}"


FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")


@pytest.mark.skipif(not (FONT.is_file() and EMOJI_TEST.is_file()),
                    reason="needs Debian fonts-noto-color-emoji and unicode-data (apt-get install them)")
def test_emoji_build_reproduces_the_shipped_files(tmp_path):
    pytest.importorskip("emoji")
    import subprocess
    import sys

    subprocess.run([sys.executable, str(DATA / "emoji" / "build.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True, timeout=600)
    assert (tmp_path / "index.tsv").read_bytes() == (DATA / "emoji" / "index.tsv").read_bytes()
    assert np.array_equal(np.load(tmp_path / "images.npz")["images"], np.load(DATA / "emoji" / "images.npz")["images"])


def test_photos_are_byte_copies_of_scikit_image_files():
    skimage = pytest.importorskip("skimage")
    source = Path(skimage.__file__).parent / "data"
    for p in read(DATA / "photos" / "photos.tsv"):
        name = p["source"].rsplit("/", 1)[-1]
        assert hashlib.sha256((source / name).read_bytes()).hexdigest() == p["sha256"], p["photo_id"]
