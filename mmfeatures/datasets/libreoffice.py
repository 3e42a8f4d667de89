"""LibreOffice's help pages (Debian's ``libreoffice-help-<lang>``) as a parallel corpus of paragraphs.

Every language's help is generated from the same source pages, so a paragraph has the same key in every
language: its page and ``id`` (``text/shared/find_toolbar.html#par_id3147762``). Paragraphs are parsed once
per package at fetch time into ``paragraphs.json`` beside the unpacked pages. Translations keep some
paragraphs in English (Japanese about half): a non-English paragraph is kept only if it differs from the
English one and passes a language check. The split into training and held-out paragraphs is by key, so a
paragraph is in the same split in every language. See docs/data.md for counts and licence.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path

from mmfeatures.datasets.builtin import BUILTIN_LANGUAGES
from mmfeatures.datasets.concepts import ConceptDataset
from mmfeatures.datasets.debian import data_card, fetch_packages, package_dir, update_counts
from mmfeatures.datasets.languages import check_codes
from mmfeatures.disk import read_json, write_text_atomic
from mmfeatures.errors import InputError
from mmfeatures.types import Example, Modality

LIBREOFFICE_LANGUAGES = {
    # our code -> the package's suffix. Plain codes name the variant the built-in sentences are written in
    # (Brazilian Portuguese, simplified Chinese, American English); the other variant carries a region.
    "en": "en-us", "en-GB": "en-gb", "pt": "pt-br", "pt-PT": "pt", "zh": "zh-cn", "zh-TW": "zh-tw",
    **{code: code for code in "ca cs da de dz el es et eu fi fr gl hi hu id it ja km ko nl om pl ru sk sl sv tr "
                              "vi".split()},
}
DEFAULT_LANGUAGES = tuple(code for code in BUILTIN_LANGUAGES if code in LIBREOFFICE_LANGUAGES)
"""The built-in languages that LibreOffice's help has (all 16 but ar, fa and sw)."""
SPLITS = ("train", "heldout", "all")
HELDOUT_PERCENT = 10
MIN_CHARS = 20           # shorter paragraphs are mostly menu names, key combinations and cell references
PARSER_VERSION = 3       # bump when parsing or is_translation changes: caches and card counts are redone
PARAGRAPHS = "paragraphs.json"
SCRIPTS = {              # the script of a language that has its own; see is_translation
    "ja": "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f", "zh": "\u3400-\u4dbf\u4e00-\u9fff",
    "zh-TW": "\u3400-\u4dbf\u4e00-\u9fff", "ko": "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af",
    "ru": "\u0400-\u04ff", "el": "\u0370-\u03ff\u1f00-\u1fff", "hi": "\u0900-\u097f", "km": "\u1780-\u17ff",
    "dz": "\u0f00-\u0fff"}
MIN_SCRIPT = 0.25        # Japanese that names English menus stays; a formula with one Japanese word does not
BROKEN_EMBED = re.compile(r"\[\S+\.xhp#\S+ not found\]\.?")    # the help compiler's mark for a missing part
ENGLISH_WORDS = frozenset("the and of to is are you your this that with which from for be can will when".split())


def package(language: str) -> str:
    """The Debian package holding ``language``'s help; an unknown code names the close ones."""
    if language in BUILTIN_LANGUAGES and language not in LIBREOFFICE_LANGUAGES:
        missing = ", ".join(c for c in BUILTIN_LANGUAGES if c not in DEFAULT_LANGUAGES)
        raise InputError(f"LibreOffice's help in Debian has no {language!r} (of the built-in languages it lacks "
                         f"{missing}); leave it out: the built-in languages it has are {', '.join(DEFAULT_LANGUAGES)}")
    (code,) = check_codes([language], LIBREOFFICE_LANGUAGES, "LibreOffice's help in Debian")
    return f"libreoffice-help-{LIBREOFFICE_LANGUAGES[code]}"


def fetch_libreoffice(languages: Iterable[str] = DEFAULT_LANGUAGES, *, progress: bool = True) -> dict[str, Path]:
    """Fetch the help packages of ``languages`` (English always, first: the others are checked against it);
    language -> unpacked folder. Already fetched packages are skipped."""
    codes = list(dict.fromkeys(["en", *_codes(languages)]))
    folders = fetch_packages([package(c) for c in codes], _prepare, progress=progress)
    return {c: folders[package(c)] for c in codes}


def _codes(languages: Iterable[str]) -> tuple[str, ...]:
    if isinstance(languages, str):
        raise InputError(f"languages={languages!r} is a single string; pass a list, e.g. [{languages!r}]")
    codes = tuple(languages)
    if not codes:
        raise InputError(f"no languages given; choose from {', '.join(LIBREOFFICE_LANGUAGES)}")
    for code in codes:
        package(code)
    return codes


def libreoffice_paragraphs(language: str, *, fetch: bool = True, progress: bool = True) -> dict[str, str]:
    """Every paragraph of at least MIN_CHARS characters in ``language``'s help, key -> text, before the
    translation check (so untranslated English paragraphs are still there)."""
    name = package(language)
    folder = package_dir(name)
    if folder is None:
        if not fetch:
            raise InputError(f"{name} is not in the cache; run `mmfeatures data fetch --languages {language}`")
        folder = fetch_libreoffice([language], progress=progress)[language]
    cached = read_json(folder / PARAGRAPHS, f"delete {folder} and fetch {name} again")
    if cached.get("parser") != PARSER_VERSION:     # written by an older parser: parse the kept pages again
        update_counts(folder, _prepare(name, folder))
        cached = read_json(folder / PARAGRAPHS, f"delete {folder} and fetch {name} again")
    return {f"{page}#{pid}": text for page, paragraphs in cached["pages"].items() for pid, text in paragraphs.items()}


def translated_paragraphs(language: str, english: dict[str, str] | None = None, *, fetch: bool = True,
                          progress: bool = True) -> dict[str, str]:
    """``language``'s paragraphs that are translations: not equal to the English paragraph with the same
    key, and passing the language check (see ``is_translation``). English keeps all of its paragraphs."""
    own = libreoffice_paragraphs(language, fetch=fetch, progress=progress)
    if language == "en":
        return own
    english = libreoffice_paragraphs("en", fetch=fetch, progress=progress) if english is None else english
    return {key: text for key, text in own.items() if text != english.get(key) and is_translation(text, language)}


def is_translation(text: str, language: str) -> bool:
    """Whether ``text`` reads as ``language`` rather than English. For languages with their own script, its
    words in that script (characters, for Chinese and Japanese) are at least MIN_SCRIPT of all its words; for
    every language, English function words are under a fifth of its words.

    >>> is_translation("Wählen Sie Format - Zeichen.", "de"), is_translation("Choose Format - Character.", "ja")
    (True, False)
    """
    latin = len(re.findall(r"[A-Za-z]+", text))
    if language in SCRIPTS:
        native = len(re.findall(f"[{SCRIPTS[language]}]" + ("" if language in ("ja", "zh", "zh-TW") else "+"), text))
        if native == 0 or native < MIN_SCRIPT * (native + latin):
            return False
    english = sum(w in ENGLISH_WORDS for w in re.findall(r"[a-z]+", text.lower()))
    return english < 2 or english < 0.2 * latin


def split_of(key: str) -> str:
    """``"heldout"`` for HELDOUT_PERCENT of keys, else ``"train"``: a hash of the key alone, so a paragraph is in
    the same split in every language, every run and every version of the package.

    >>> split_of("text/shared/find_toolbar.html#par_id3147762") in ("train", "heldout")
    True
    """
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100
    return "heldout" if bucket < HELDOUT_PERCENT else "train"


def libreoffice_corpus(languages: Iterable[str] = DEFAULT_LANGUAGES, split: str = "train",
                       max_paragraphs: int | None = None, seed: int = 0, *, aligned: bool = False,
                       fetch: bool = True, progress: bool = True) -> ConceptDataset:
    """LibreOffice's help as text Examples: one per (paragraph, language), concept = the paragraph's key,
    category = the help module (``shared``, ``scalc``, ...), id ``libreoffice/<language>/<key>``.

    - ``split``: ``"train"`` (90% of keys), ``"heldout"`` (the other 10%, less every paragraph whose text a training
      key also has in that language) or ``"all"``; fixed by ``split_of``.
    - ``max_paragraphs``: keep this many keys, drawn with ``seed`` from those the chosen languages have (every
      language keeps the drawn keys it translates; with ``aligned`` each has all of them).
    - ``aligned``: keep only keys translated in every one of ``languages`` (a strictly parallel corpus).
    - ``fetch``: fetch missing packages (``apt-get download``); with False a missing one is an error.

    >>> ds = libreoffice_corpus(["en", "de"], split="heldout", max_paragraphs=100)   # doctest: +SKIP
    >>> ds.select(concepts=[ds.concepts[0]]).languages                                # doctest: +SKIP
    ('de', 'en')
    """
    if split not in SPLITS:
        raise InputError(f"split {split!r}; use one of {', '.join(SPLITS)}")
    if max_paragraphs is not None and max_paragraphs < 1:
        raise InputError(f"max_paragraphs = {max_paragraphs}; use at least 1, or None for all")
    codes = list(dict.fromkeys(_codes(languages)))
    if fetch:
        fetch_libreoffice(codes, progress=progress)
    english = libreoffice_paragraphs("en", fetch=fetch, progress=progress)
    texts = {}
    for code in codes:
        kept = translated_paragraphs(code, english, fetch=fetch)
        # help pages repeat boilerplate under many keys: a held-out paragraph whose text a training key also has
        # (31.6% of them) is not held out, so it is dropped from the held-out split
        trained = {t for k, t in kept.items() if split_of(k) == "train"} if split == "heldout" else set()
        texts[code] = {k: t for k, t in kept.items() if (split == "all" or split_of(k) == split) and t not in trained}
    keys = set.intersection(*map(set, texts.values())) if aligned else set().union(*texts.values())
    keys = sorted(keys)
    if max_paragraphs is not None and max_paragraphs < len(keys):
        keys = sorted(random.Random(seed).sample(keys, max_paragraphs))
    if not keys:
        raise InputError(f"no {split} paragraph of LibreOffice's help is translated into all of {codes}; "
                         "use aligned=False or fewer languages")
    examples = [Example(f"libreoffice/{code}/{key}", Modality.TEXT, texts[code][key], key, code)
                for code in codes for key in keys if key in texts[code]]
    return ConceptDataset.from_examples(examples, {key: key.split("/")[1] for key in keys},
                                        name="libreoffice" if split == "train" else f"libreoffice-{split}")


def libreoffice_counts(languages: Iterable[str] = DEFAULT_LANGUAGES, *, fetch: bool = True) -> dict[str, dict]:
    """Per language: paragraphs parsed, translations kept, and those in each split, with their characters."""
    english = libreoffice_paragraphs("en", fetch=fetch)
    out = {}
    for code in _codes(languages):
        kept = translated_paragraphs(code, english, fetch=fetch)
        heldout = [t for k, t in kept.items() if split_of(k) == "heldout"]
        out[code] = {"package": package(code), "parsed": data_card(package(code))["counts"]["paragraphs"],
                     "kept": len(kept), "train": len(kept) - len(heldout), "heldout": len(heldout),
                     "characters": sum(map(len, kept.values())), "heldout_characters": sum(map(len, heldout))}
    return out


def _prepare(name: str, folder: Path) -> dict[str, int]:
    """Parse the unpacked pages into ``paragraphs.json`` (pages -> id -> text); the counts for the data card."""
    (help_dir,) = [p for p in (folder / "usr" / "share" / "libreoffice" / "help").iterdir() if (p / "text").is_dir()]
    pages: dict[str, dict[str, str]] = {}
    for path in sorted((help_dir / "text").rglob("*.html")):
        parser = _Paragraphs()
        parser.feed(path.read_text(encoding="utf-8"))
        parser.close()
        texts = {pid: " ".join(BROKEN_EMBED.sub(" ", text).split()) for pid, text in parser.paragraphs.items()}
        kept = {pid: text for pid, text in texts.items() if len(text) >= MIN_CHARS}
        if kept:
            pages[path.relative_to(help_dir).as_posix()] = kept
    write_text_atomic(folder / PARAGRAPHS, json.dumps({"parser": PARSER_VERSION, "package": name,
                                                       "min_chars": MIN_CHARS, "pages": pages}, ensure_ascii=False))
    texts = [t for paragraphs in pages.values() for t in paragraphs.values()]
    counts = {"pages": len(pages), "paragraphs": len(texts), "characters": sum(map(len, texts))}
    code = next(c for c, suffix in LIBREOFFICE_LANGUAGES.items() if name == f"libreoffice-help-{suffix}")
    if code == "en" or package_dir(package("en")) is not None:    # fetch_libreoffice fetches English first
        english = {} if code == "en" else libreoffice_paragraphs("en", fetch=False)
        kept = [f"{page}#{pid}" for page, paragraphs in pages.items() for pid, text in paragraphs.items()
                if code == "en" or (text != english.get(f"{page}#{pid}") and is_translation(text, code))]
        heldout = sum(split_of(key) == "heldout" for key in kept)
        counts |= {"translated": len(kept), "train": len(kept) - heldout, "heldout": heldout}
    return counts


class _Paragraphs(HTMLParser):
    """The text of each ``<p id="par_id...">``, whitespace-normalised, first occurrence of an id kept.

    Inline switches (``<span class="switchinline">``) hold one hidden variant per system or application; only
    the ``default`` variant is read, as the help viewer shows on Linux without a module chosen."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs: dict[str, str] = {}
        self._id: str | None = None
        self._depth = 0            # nested <p> inside the paragraph being read
        self._hidden: list[bool] = []
        self._parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attr = dict(attrs)
        if tag == "p" and self._id is None:
            if (attr.get("id") or "").startswith("par_id"):
                self._id, self._depth, self._hidden, self._parts = attr["id"], 1, [], []
        elif self._id is not None:
            if tag == "p":
                self._depth += 1
            elif tag == "span":
                self._hidden.append("hidden" in attr and not (attr.get("id") or "").startswith("default"))
            elif tag == "br":
                self._parts.append(" ")

    def handle_endtag(self, tag):
        if self._id is None:
            return
        if tag == "span" and self._hidden:
            self._hidden.pop()
        elif tag == "p":
            self._depth -= 1
            if self._depth == 0:
                self.paragraphs.setdefault(self._id, " ".join("".join(self._parts).split()))
                self._id = None

    def handle_data(self, data):
        if self._id is not None and not any(self._hidden):
            self._parts.append(data)
