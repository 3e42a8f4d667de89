"""FreeDict: human-made word-level translations of everyday concepts, a concept set independent of the AI-written
built-in sentences.

The concepts are the English words in ``data/freedict/concepts.tsv``: the content words of Swadesh's 207-word list
of basic vocabulary and the keywords of the built-in concepts. Their translations come from Debian's
``dict-freedict-eng-<lang>`` packages (FreeDict, many of them from Wiktionary through WikDict; GPL or CC BY-SA, each
named in its copyright file), fetched with ``apt-get download`` into the user cache (``debian.fetch_packages``),
never into git. The built-in languages FreeDict has an English dictionary for are ``LANGUAGES`` (no fa, zh or ko).

A word's translation is read from its dictd entry: the first line after the headword, its first sense ("1. "), its
first comma-separated item, without grammatical tags (<masc>, [zool.], (k.dili.)). Where a headword has several
entries (the Ding English-German dictionary splits senses, with technical ones first), the entry with the most
quoted usage examples is taken: the common sense carries the examples. Each concept becomes one example per
language, ``freedict/<concept>/<language>``, all in sentence group '1': one word per concept and language, so the
concept overlap of two different sentences cannot be computed on this set (the cross-lingual verdict rests on the
multilingual fraction here).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from pathlib import Path

from mmfeatures.datasets.debian import fetch_packages, package_dir
from mmfeatures.errors import CorruptFileError, InputError
from mmfeatures.types import Example, Modality

LANGUAGES = {"es": "spa", "de": "deu", "fr": "fra", "it": "ita", "pt": "por", "ru": "rus", "ar": "ara", "tr": "tur",
             "ja": "jpn", "id": "ind", "hi": "hin", "sw": "swh"}
"""Built-in language -> FreeDict's code of its English dictionary."""
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
TAGS = re.compile(r"<[^>]*>|\[[^\]]*\]|\([^)]*\)|\{[^}]*\}")


def package(language: str) -> str:
    if language not in LANGUAGES:
        raise InputError(f"FreeDict has no English dictionary for {language!r} in Debian; use one of "
                         f"{', '.join(LANGUAGES)}")
    return f"dict-freedict-eng-{LANGUAGES[language]}"


def fetch_freedict(languages: Iterable[str] | None = None, *, progress: bool = True) -> dict[str, Path]:
    """Fetch the dictionaries of ``languages`` (default all of ``LANGUAGES``); returns language -> folder."""
    languages = list(languages or LANGUAGES)
    folders = fetch_packages([package(lang) for lang in languages], _prepare, progress=progress)
    return {lang: folders[package(lang)] for lang in languages}


def _prepare(name: str, folder: Path) -> dict:
    """The card's counts: the dictionary's headwords (lines of its index)."""
    index = next((folder / "usr" / "share" / "dictd").glob("*.index"), None)
    if index is None:
        raise CorruptFileError(f"{name} unpacked without a dictd index under usr/share/dictd, so it is not a FreeDict "
                               f"package as fetched; delete {folder} and run `mmfeatures data fetch` again")
    with open(index, encoding="utf-8") as f:
        return {"headwords": sum(1 for _ in f)}


def concepts(root: str | Path | None = None) -> list[str]:
    """The English concept words (``data/freedict/concepts.tsv``)."""
    from mmfeatures.datasets.builtin import data_root, read_tsv

    return [r["concept"] for r in read_tsv(data_root(root) / "freedict" / "concepts.tsv", ["concept", "source"])]


def _number(text: str) -> int:
    n = 0
    for ch in text:
        n = n * 64 + B64.index(ch)
    return n


def entries(folder: Path, code: str, words: set[str]) -> dict[str, list[str]]:
    """Every dictd entry of the headwords in ``words`` (lower-cased), by headword."""
    base = folder / "usr" / "share" / "dictd" / f"freedict-eng-{code}"
    index, data = base.with_suffix(".index"), Path(f"{base}.dict.dz")
    if not index.is_file() or not data.is_file():
        raise CorruptFileError(f"{folder} has no {index.name} and {data.name}; delete it and fetch again")
    found: dict[str, list[tuple[int, int]]] = {}
    with open(index, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3 and parts[0].lower() in words:
                found.setdefault(parts[0].lower(), []).append((_number(parts[1]), _number(parts[2])))
    blob = gzip.open(data).read() if found else b""
    return {w: [blob[o:o + n].decode("utf-8", "replace") for o, n in spans] for w, spans in found.items()}


def translation(texts: list[str], word: str | None = None) -> str:
    """The word's translation from its entries (see the module docstring), or '' when none reads as one."""
    def order(text: str) -> tuple:
        head = text.splitlines()[0] if text else ""
        exact = word is None or head.split(" ")[0] == word
        pos = re.findall(r"<([^>]*)>", head)
        affix = any(p.lower() in ("suffix", "prefix", "abbr", "symbol") for p in pos)
        examples = sum(1 for line in text.splitlines() if line.strip().startswith('"'))
        return (not exact, affix, -examples)

    for text in sorted(texts, key=order):
        for line in text.splitlines()[1:]:
            line = line.strip()
            if not line or line.startswith(('"', "Note:", "see:", "Synonym", "Syn:")):
                continue
            line = TAGS.sub("", re.sub(r"^\d+\.\s*", "", line))
            found = re.sub(r"\s+\d+$", "", line.split(",")[0].split(";")[0].replace("~", " ").strip(" .")).strip()
            if found and len(found.split()) <= 3:
                return " ".join(found.split())
    return ""


def freedict_words(languages: Iterable[str] | None = None, *, fetch: bool = True, progress: bool = True):
    """The concept words in English and their FreeDict translations in ``languages`` (default: every language of
    ``LANGUAGES``) as a ``ConceptDataset`` of one-word examples (see the module docstring). Concepts without a
    translation in a language have no example there."""
    from mmfeatures.datasets.concepts import ConceptDataset

    languages = list(LANGUAGES) if languages is None else [lang for lang in languages if lang != "en"]
    wanted = concepts()
    folders = {}
    for lang in languages:
        folder = package_dir(package(lang))
        if folder is None:
            if not fetch:
                raise InputError(f"{package(lang)} is not in the cache; run `mmfeatures data fetch --only freedict`")
            folder = fetch_freedict([lang], progress=progress)[lang]
        folders[lang] = folder
    examples = [Example(f"freedict/{c}/en", Modality.TEXT, c, c, "en", "1") for c in wanted]
    for lang, folder in folders.items():
        found = entries(folder, LANGUAGES[lang], set(wanted))
        for c in wanted:
            word = translation(found.get(c, []), c)
            if word:
                examples.append(Example(f"freedict/{c}/{lang}", Modality.TEXT, word, c, lang, "1"))
    return ConceptDataset.from_examples(examples, name="freedict")
