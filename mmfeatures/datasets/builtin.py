"""The built-in concept data: parallel sentences, emoji (names and pictures) and photos.

The files live in the repository's ``data/`` folder (see each folder's README for its data card):

- ``data/concepts/sentences.tsv``: 123 concepts x 16 languages x 2 sentences, with keywords;
- ``data/emoji/index.tsv`` + ``images.npz``: 1,397 emoji, names in 14 languages, 72x72 renders;
- ``data/photos/``: scikit-image's photographs with captions in 16 languages.

All three share concept ids, so one concept can be followed from a sentence to an emoji name to a
picture. Set ``$MMFEATURES_DATA`` (or pass ``root``) when the package is installed without the
repository.

This module reads files into Examples; ``ConceptDataset.builtin`` (datasets/concepts.py, which imports
this module, never the reverse) turns the parts into one dataset.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from mmfeatures.datasets.languages import check_codes
from mmfeatures.errors import CorruptFileError, InputError
from mmfeatures.types import Example, Modality

SOURCES = ("concepts", "emoji", "photos")
CONCEPT_LANGUAGES = ("en", "es", "de", "fr", "it", "pt", "ru", "ar", "fa", "tr", "ja", "zh", "ko", "id", "hi", "sw")
EMOJI_LANGUAGES = CONCEPT_LANGUAGES[:14]  # the emoji package's languages: all but hi and sw
BUILTIN_LANGUAGES = CONCEPT_LANGUAGES  # every language of the built-in data (captions have the same 16)


class BuiltinPart(NamedTuple):
    """One built-in source as read from disk: ``ConceptDataset.from_examples(*part)`` makes it a dataset."""

    examples: tuple[Example, ...]
    categories: dict[str, str]
    """concept id -> category."""
    name: str


def data_root(root: str | Path | None = None) -> Path:
    """The folder holding concepts/, emoji/ and photos/: ``root``, ``$MMFEATURES_DATA`` or the source tree."""
    candidates = [Path(root)] if root is not None else (
        [Path(os.environ["MMFEATURES_DATA"])] if os.environ.get("MMFEATURES_DATA") else
        [Path(__file__).resolve().parents[2] / "data"])
    for path in candidates:
        if (path / "concepts" / "sentences.tsv").is_file():
            return path
    raise InputError(f"no built-in data at {candidates[0]} (expected concepts/sentences.tsv there); run from a "
                     "clone of the mmfeatures repository, or set MMFEATURES_DATA=/path/to/mmfeatures/data")


def read_tsv(path: Path, required: list[str]) -> list[dict[str, str]]:
    """The rows of a built-in TSV file; a missing file, column or field names the file and the fix."""
    if not path.is_file():
        raise InputError(f"{path}: missing; restore it from the repository (git checkout -- {path.name})")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise CorruptFileError(f"{path}: missing column(s) {missing}; restore the file from the repository")
        rows = []
        for row in reader:
            if None in row or any(v is None or not v.strip() for v in row.values()):
                raise CorruptFileError(f"{path}:{reader.line_num}: empty or missing field; restore the file")
            rows.append(row)
    return rows


def keywords(root: str | Path | None = None) -> dict[tuple[str, str], tuple[str, ...]]:
    """(concept id, language) -> the keyword's forms, dictionary form first ('собака',) or ('два', 'две')."""
    rows = read_tsv(data_root(root) / "concepts" / "sentences.tsv", ["concept_id", "language", "keyword"])
    return {(r["concept_id"], r["language"]): tuple(r["keyword"].split("/")) for r in rows}


def load_sentences(root: str | Path | None = None, *, with_keywords: bool = False) -> BuiltinPart:
    """The parallel sentences; ids are 'concepts/<concept>/<language>/<n>', n = 1, 2 aligned across languages.

    ``with_keywords`` adds each keyword's dictionary form as 'concepts/<concept>/<language>/keyword'."""
    path = data_root(root) / "concepts" / "sentences.tsv"
    rows = read_tsv(path, ["concept_id", "category", "language", "sentence", "keyword", "text"])
    examples, categories = [], {}
    for line, r in enumerate(rows, 2):
        concept = r["concept_id"]
        if categories.setdefault(concept, r["category"]) != r["category"]:
            raise CorruptFileError(f"{path}:{line}: concept {concept!r} has category {r['category']!r} here but "
                                   f"{categories[concept]!r} earlier; a concept has one category: restore the file from the "
                                   "repository (git checkout -- data/concepts)")
        examples.append(Example(f"concepts/{concept}/{r['language']}/{r['sentence']}", Modality.TEXT, r["text"],
                                concept, r["language"], r["sentence"]))
        if with_keywords and r["sentence"] == "1":
            examples.append(Example(f"concepts/{concept}/{r['language']}/keyword", Modality.TEXT,
                                    r["keyword"].split("/")[0], concept, r["language"], "keyword"))
    return BuiltinPart(tuple(examples), categories, "concepts")


def emoji_images(root: str | Path | None = None):
    """The emoji renders as a uint8 array [n, 72, 72, 3] (RGB on white), checked against build.json."""
    import numpy as np

    folder = data_root(root) / "emoji"
    path, meta_path = folder / "images.npz", folder / "build.json"
    if not path.is_file() or not meta_path.is_file():
        raise InputError(f"{folder}: images.npz or build.json missing; restore them from the repository or "
                         "rebuild with `python data/emoji/build.py`")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if hashlib.sha256(path.read_bytes()).hexdigest() != meta["images_sha256"]:
        raise CorruptFileError(f"{path}: SHA-256 differs from build.json; restore the file from the repository "
                               "or rebuild with `python data/emoji/build.py`")
    with np.load(path) as npz:
        images = npz["images"]
    if images.shape != (meta["count"], meta["size"], meta["size"], 3) or images.dtype != np.uint8:
        raise CorruptFileError(f"{path}: array {images.shape} {images.dtype} does not match build.json; restore the "
                               "file from the repository or rebuild with `python data/emoji/build.py`")
    return images


def load_emoji(root: str | Path | None = None, *, images: bool = True, names: bool = True,
               linked_only: bool = False) -> BuiltinPart:
    """Emoji pictures ('emoji/<index>/image') and names in 14 languages ('emoji/<index>/<language>').

    Emoji that share a concept with data/concepts carry its id ('dog'); the others 'emoji:<name>'.
    ``linked_only`` keeps only the former."""
    from PIL import Image

    rows = read_tsv(data_root(root) / "emoji" / "index.tsv",
                     ["index", "emoji", "concept_id", "category", *[f"name_{lang}" for lang in EMOJI_LANGUAGES]])
    pixels = emoji_images(root) if images else None
    if pixels is not None and len(pixels) != len(rows):
        raise CorruptFileError(f"emoji index.tsv has {len(rows)} rows but images.npz {len(pixels)} images; "
                               "rebuild with `python data/emoji/build.py`")
    examples, categories = [], {}
    for i, r in enumerate(rows):
        concept = r["concept_id"]
        if linked_only and concept.startswith("emoji:"):
            continue
        categories[concept] = r["category"]
        if pixels is not None:
            examples.append(Example(f"emoji/{i}/image", Modality.IMAGE, Image.fromarray(pixels[i], "RGB"),
                                    concept, None))
        if names:
            examples += [Example(f"emoji/{i}/{lang}", Modality.TEXT, r[f"name_{lang}"], concept, lang)
                         for lang in EMOJI_LANGUAGES]
    return BuiltinPart(tuple(examples), categories, "emoji")


def load_photos(root: str | Path | None = None) -> BuiltinPart:
    """scikit-image's photographs ('photos/<id>/image') and their captions ('photos/<id>/<language>')."""
    folder = data_root(root) / "photos"
    photos = read_tsv(folder / "photos.tsv", ["photo_id", "file", "concept_id", "sha256"])
    captions = read_tsv(folder / "captions.tsv", ["photo_id", "language", "caption"])
    concept_of = {p["photo_id"]: p["concept_id"] for p in photos}
    examples = []
    for p in photos:
        path = folder / p["file"]
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != p["sha256"]:
            raise CorruptFileError(f"{path}: missing or changed (SHA-256 differs from photos.tsv); restore it "
                                   "or rebuild with `python data/photos/build.py`")
        examples.append(Example(f"photos/{p['photo_id']}/image", Modality.IMAGE, path, p["concept_id"], None))
    for c in captions:
        if c["photo_id"] not in concept_of:
            raise CorruptFileError(f"{folder / 'captions.tsv'}: caption for unknown photo {c['photo_id']!r}; restore "
                                   "the file from the repository or rebuild with `python data/photos/build.py`")
        examples.append(Example(f"photos/{c['photo_id']}/{c['language']}", Modality.TEXT, c["caption"],
                                concept_of[c["photo_id"]], c["language"]))
    return BuiltinPart(tuple(examples), {}, "photos")


def check_builtin_languages(languages: Iterable[str]) -> tuple[str, ...]:
    """The codes, each checked against the built-in data's languages; an unknown one names a close match."""
    if not isinstance(languages, str) and not tuple(languages):
        raise InputError(f"languages is empty; give at least one of {', '.join(BUILTIN_LANGUAGES)}")
    return check_codes(languages, BUILTIN_LANGUAGES, "the built-in data")


def load_parts(sources: Iterable[str] = SOURCES, *, root: str | Path | None = None,
               languages: Iterable[str] | None = None, linked_only: bool = True,
               with_keywords: bool = False) -> list[BuiltinPart]:
    """The chosen built-in sources, texts in other languages dropped (see ``ConceptDataset.builtin``)."""
    sources = (sources,) if isinstance(sources, str) else tuple(sources)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise InputError(f"unknown built-in source(s) {unknown or sources!r}; choose from {SOURCES}")
    langs = set(check_builtin_languages(languages)) if languages is not None else None
    parts = []
    if "concepts" in sources:
        parts.append(load_sentences(root, with_keywords=with_keywords))
    if "emoji" in sources:
        parts.append(load_emoji(root, linked_only=linked_only))
    if "photos" in sources:
        parts.append(load_photos(root))
    if langs is not None:  # images have no language and stay
        parts = [p._replace(examples=tuple(e for e in p.examples if e.language is None or e.language in langs))
                 for p in parts]
    return parts
