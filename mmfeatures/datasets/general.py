"""A general-domain multilingual text corpus for training text SAEs, from real, independent sources in Debian's
archive (fetched into the user cache, never into git; ``mmfeatures data fetch``):

- ``fortunes``: fortune cookies (quotations, proverbs, jokes) from ``fortunes`` (English), ``fortunes-de``,
  ``-es``, ``-it``, ``-ru``, ``-br`` (Portuguese) and ``-zh``;
- ``dictionary``: the usage examples of FreeDict's English-German dictionary (Ding), in both languages;
- ``tuxpaint``: Tux Paint's stamp captions in the built-in languages, for the stamps of one half (``stamp_split``;
  the image tower and the cross-modal SAEs never see any Tux Paint text);
- ``libreoffice``: LibreOffice's help, its training split (so ``libreoffice-heldout`` stays text no SAE saw).

Why: SAEs trained on software help alone lack the everyday concepts the verdicts score (dog, bread, river), so a
verdict would test features the SAE does not have. Texts are whitespace-normalised and de-duplicated by their
case-folded text across sources and languages; any text equal to an evaluation text (the built-in sentences and
keywords, the FreeDict concept words) is dropped; the rest is split 90/10 into ``train`` and ``heldout`` by a hash of
the text, so a text and its duplicates land in one split. ``per_source`` texts are drawn per source and language
(seed 0) times the source's ``SHARE``, so no source or language swamps the others.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable

from mmfeatures.datasets.debian import fetch_packages, package_dir
from mmfeatures.errors import InputError
from mmfeatures.types import Example, Modality

FORTUNES = {"en": "fortunes", "de": "fortunes-de", "es": "fortunes-es", "it": "fortunes-it", "ru": "fortunes-ru",
            "pt": "fortunes-br", "zh": "fortunes-zh"}
SOURCES = ("fortunes", "dictionary", "tuxpaint", "libreoffice")
SPLITS = ("train", "heldout")
HELDOUT_PERCENT = 10
MIN_CHARS, MAX_CHARS = 12, 600
EXAMPLE = re.compile(r'^\s*"(.+?)"\s+-\s+(.+?)\s*$')


SHARE = {"fortunes": 1.0, "dictionary": 3.0, "tuxpaint": 1.0, "libreoffice": 0.3}
"""Texts drawn per source and language, as multiples of ``per_source`` (dictionary examples are short phrases; the
help pages are one domain, kept to a slice)."""
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def normalise(text: str) -> str:
    return " ".join(ANSI.sub("", text).split())


def text_split(text: str) -> str:
    """'heldout' for HELDOUT_PERCENT of texts, else 'train': a hash of the case-folded text."""
    bucket = int.from_bytes(hashlib.sha256(normalise(text).casefold().encode("utf-8")).digest()[:8], "big") % 100
    return "heldout" if bucket < HELDOUT_PERCENT else "train"


def stamp_split(path: str) -> str:
    """The half of Tux Paint's stamps whose captions may train a text SAE ('train'), by a hash of the stamp."""
    return "train" if int(hashlib.sha256(path.encode()).hexdigest(), 16) % 2 == 0 else "eval"


def fetch_general(*, progress: bool = True) -> None:
    """Fetch every package the corpus reads (fortunes, the English-German dictionary, Tux Paint, LibreOffice)."""
    from mmfeatures.datasets.freedict import fetch_freedict
    from mmfeatures.datasets.libreoffice import fetch_libreoffice
    from mmfeatures.datasets.tuxpaint import fetch_tuxpaint

    fetch_packages(FORTUNES.values(), progress=progress)
    fetch_freedict(["de"], progress=progress)
    fetch_tuxpaint(progress=progress)
    fetch_libreoffice(progress=progress)


def fortunes(language: str, *, fetch: bool = True) -> list[str]:
    """The fortune cookies of one language: entries between '%' lines of every file under usr/share/games/fortunes
    (the language's folder; English at the top), without the offensive sections."""
    name = FORTUNES[language]
    folder = package_dir(name) or (fetch_packages([name])[name] if fetch else None)
    if folder is None:
        raise InputError(f"{name} is not in the cache; run `mmfeatures data fetch --only general`")
    root = folder / "usr" / "share" / "games" / "fortunes"
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".dat", ".u8")
                       and "off" not in p.relative_to(root).parts):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        out += [normalise(e) for e in re.split(r"^%\s*$", text, flags=re.M)]
    return [t for t in out if MIN_CHARS <= len(t) <= MAX_CHARS]


def dictionary_examples(*, fetch: bool = True) -> dict[str, list[str]]:
    """The English and German sides of the Ding dictionary's usage examples ('"english"  - deutsch' lines)."""
    from mmfeatures.datasets.freedict import fetch_freedict, package

    folder = package_dir(package("de")) or (fetch_freedict(["de"])["de"] if fetch else None)
    if folder is None:
        raise InputError(f"{package('de')} is not in the cache; run `mmfeatures data fetch --only general`")
    import gzip

    out: dict[str, list[str]] = {"en": [], "de": []}
    data = folder / "usr" / "share" / "dictd" / "freedict-eng-deu.dict.dz"
    with gzip.open(data, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            found = EXAMPLE.match(line)
            if found:
                for lang, text in zip(("en", "de"), found.groups(), strict=True):
                    text = normalise(text)
                    if MIN_CHARS <= len(text) <= MAX_CHARS:
                        out[lang].append(text)
    return out


def evaluation_texts() -> set[str]:
    """Case-folded texts the verdicts score, which no training text may equal."""
    from mmfeatures.datasets.builtin import keywords
    from mmfeatures.datasets.concepts import ConceptDataset
    from mmfeatures.datasets.freedict import concepts

    texts = {normalise(e.content).casefold() for e in ConceptDataset.builtin(["concepts"])}
    texts |= {form.casefold() for forms in keywords().values() for form in forms}
    return texts | {c.casefold() for c in concepts()}


def general_corpus(split: str = "train", *, per_source: int | None = 2000, languages: Iterable[str] | None = None,
                   seed: int = 0, fetch: bool = True):
    """The corpus (see the module docstring) as a ``ConceptDataset``: example ids
    ``general/<source>/<language>/<text hash>``, concept = the source. ``languages``: the built-in languages to keep
    (default: every one the sources have); ``per_source``: texts drawn per source and language (None: all)."""
    from mmfeatures.datasets.builtin import BUILTIN_LANGUAGES
    from mmfeatures.datasets.concepts import ConceptDataset
    from mmfeatures.datasets.libreoffice import DEFAULT_LANGUAGES, libreoffice_corpus
    from mmfeatures.datasets.tuxpaint import tuxpaint_stamps

    if split not in SPLITS:
        raise InputError(f"split {split!r}; use one of {', '.join(SPLITS)}")
    if per_source is not None and per_source < 1:
        raise InputError(f"per_source = {per_source}; use at least 1, or None for all")
    keep = set(BUILTIN_LANGUAGES if languages is None else languages)
    found: dict[tuple[str, str], list[str]] = {}
    for lang in FORTUNES:
        if lang in keep:
            found[("fortunes", lang)] = fortunes(lang, fetch=fetch)
    for lang, texts in dictionary_examples(fetch=fetch).items():
        if lang in keep:
            found[("dictionary", lang)] = texts
    import warnings

    with warnings.catch_warnings():                 # pictures are not read here; SVG-only stamps do not matter
        warnings.simplefilter("ignore")
        stamps = tuxpaint_stamps([c for c in BUILTIN_LANGUAGES if c in keep] or None, svg=False, fetch=fetch,
                                 progress=False)
    for e in stamps:
        if e.modality is Modality.TEXT and stamp_split(e.id.split("/", 1)[1].rsplit("/", 1)[0]) == "train":
            found.setdefault(("tuxpaint", e.language), []).append(normalise(e.content))
    codes = [c for c in DEFAULT_LANGUAGES if c in keep] + (["en"] if "en" in keep else [])
    if codes:
        for e in libreoffice_corpus(list(dict.fromkeys(codes)), "train", aligned=False, fetch=fetch, progress=False):
            found.setdefault(("libreoffice", e.language), []).append(normalise(e.content))
    banned, seen, examples = evaluation_texts(), set(), []
    rng = random.Random(seed)
    for (source, lang), texts in sorted(found.items()):
        unique = []
        for t in texts:
            key = t.casefold()
            if key in seen or key in banned or not t:
                continue
            seen.add(key)
            unique.append(t)
        mine = [t for t in unique if text_split(t) == split]
        cap = None if per_source is None else max(1, round(per_source * SHARE[source]))
        if cap is not None and len(mine) > cap:
            mine = rng.sample(mine, cap)
        for t in mine:
            digest = hashlib.sha1(t.encode("utf-8")).hexdigest()[:12]
            examples.append(Example(f"general/{source}/{lang}/{digest}", Modality.TEXT, t, source, lang))
    if not examples:
        raise InputError(f"the general corpus has no {split} texts in {sorted(keep)}")
    return ConceptDataset.from_examples(examples, {s: s for s in SOURCES},
                                        name="general" if split == "train" else f"general-{split}")
