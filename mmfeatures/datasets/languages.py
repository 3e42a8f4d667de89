"""Language codes: ISO 639-1, optionally with BCP-47 subtags ('pt-BR', 'zh-Hans')."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

ISO_639_1 = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz
ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io
is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr
ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si
sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh
yi yo za zh zu
""".split())


# Country codes and retired codes that people write for languages.
COMMON_MISTAKES = {"jp": "ja", "cn": "zh", "kr": "ko", "gr": "el", "dk": "da", "se": "sv", "ua": "uk", "cz": "cs",
                   "vn": "vi", "ir": "fa", "iw": "he", "in": "id", "ji": "yi", "br": "pt"}

LANGUAGE_NAMES = {
    "english": "en", "spanish": "es", "german": "de", "french": "fr", "italian": "it", "portuguese": "pt",
    "russian": "ru", "arabic": "ar", "persian": "fa", "farsi": "fa", "turkish": "tr", "japanese": "ja",
    "chinese": "zh", "mandarin": "zh", "korean": "ko", "indonesian": "id", "hindi": "hi", "swahili": "sw",
    "dutch": "nl", "polish": "pl", "swedish": "sv", "greek": "el", "hebrew": "he", "vietnamese": "vi",
    "thai": "th", "ukrainian": "uk", "czech": "cs", "danish": "da", "finnish": "fi", "norwegian": "no",
    "hungarian": "hu", "romanian": "ro", "bengali": "bn", "urdu": "ur", "tamil": "ta", "catalan": "ca",
    "español": "es", "deutsch": "de", "français": "fr", "italiano": "it", "português": "pt", "русский": "ru",
    "日本語": "ja", "中文": "zh", "한국어": "ko",
}
"""Names people write where a code is wanted, by lower-cased name: the code they mean."""


def suggest_language(code: object, available: Iterable[str]) -> str | None:
    """The code among ``available`` that ``code`` most likely meant: a known mistake first (jp -> ja,
    cn -> zh, a country code for a language), then the closest spelling; None when nothing is close.

    >>> suggest_language("jp", ["en", "ja", "pt"])
    'ja'
    """
    if not isinstance(code, str):
        return None
    available = list(available)
    key = code.strip().lower().replace("_", "-")
    primary = key.split("-")[0]
    for guess in (key, primary, COMMON_MISTAKES.get(key), COMMON_MISTAKES.get(primary)):
        if guess in available:
            return guess
    if primary in COMMON_MISTAKES:  # 'se' means Swedish ('sv'): when that is missing, 'sw' would mislead
        return None
    # Two-letter codes share at most one letter, so the usual 0.6 cutoff would never match.
    close = difflib.get_close_matches(key, available, n=1, cutoff=0.4)
    return close[0] if close else None


def check_language(code: object, where: str) -> str:
    """Return ``code`` if its primary subtag is an ISO 639-1 code, else raise naming ``where``."""
    if not isinstance(code, str) or not code.strip():
        raise ValueError(f"{where}: missing language code; give an ISO 639-1 code such as 'en' or 'ja'")
    primary = code.strip().split("-")[0].split("_")[0].lower()
    if primary not in ISO_639_1:
        close = [COMMON_MISTAKES[primary]] if primary in COMMON_MISTAKES else \
            difflib.get_close_matches(primary, sorted(ISO_639_1), n=3, cutoff=0.5)
        raise ValueError(f"{where}: unknown language code {code!r}; use ISO 639-1 (e.g. 'en', 'ja', 'sw')"
                         + (f"; did you mean {close}?" if close else ""))
    return code.strip()


def check_codes(languages: Iterable[str], available: Iterable[str], where: str) -> tuple[str, ...]:
    """``languages`` as a tuple, each one of ``available``; an unknown code raises InputError naming ``where``
    and the closest code (jp -> ja)."""
    from mmfeatures.errors import InputError

    if isinstance(languages, str):
        raise InputError(f"languages={languages!r} is a single string; pass a list, e.g. [{languages!r}]")
    codes, have = tuple(languages), list(available)
    for code in codes:
        if code not in have:
            close = suggest_language(code, have)
            hint = f"did you mean {close!r}? " if close else ""
            raise InputError(f"unknown language code {code!r} for {where}; {hint}"
                             f"available: {', '.join(have) or 'none (no example has a language)'}")
    return codes
