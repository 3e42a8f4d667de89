"""Tux Paint's stamps (Debian's ``tuxpaint-stamps-default``): pictures with captions in up to about 80 languages.

Each stamp is ``usr/share/tuxpaint/stamps/<category>/.../<name>.png`` (or ``.svg``) beside ``<name>.txt``, whose
first line is the English caption and whose other lines read ``de.utf8=Ein rotes Riesenkänguru.``. The captions
are parsed once at fetch time into ``stamps.json``. Pictures the emoji tower never saw: a held-out test of
cross-modal claims. See docs/data.md for counts and licence.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from mmfeatures.datasets.concepts import ConceptDataset
from mmfeatures.datasets.debian import fetch_packages, package_dir, update_counts
from mmfeatures.datasets.languages import check_codes
from mmfeatures.disk import read_json, write_text_atomic
from mmfeatures.errors import InputError, MissingDependencyError
from mmfeatures.types import Example, Modality

PACKAGE = "tuxpaint-stamps-default"
STAMPS = "stamps.json"
PARSER_VERSION = 1
LOCALES = {"pt_BR": "pt", "pt": "pt-PT", "zh_CN": "zh", "zh_TW": "zh-TW", "sr@latin": "sr-Latn",
           "ca@valencia": "ca-valencia"}
"""Caption locales whose code is not the plain rewrite (``en_GB`` -> ``en-GB``): as for LibreOffice, ``pt`` is
Brazilian and ``zh`` simplified Chinese, the variants the built-in sentences are written in."""
_LINE = re.compile(r"([A-Za-z]{2,3}(?:_[A-Z]{2})?(?:@\w+)?)\.(?:utf8|UTF-8)=(.*)")
SVG_WIDTH = 512         # pixels; the PNG stamps are 50 to 600 pixels on their long side, most under 300


def locale_code(locale: str) -> str:
    """Our language code for a caption locale: 'de' -> 'de', 'en_GB' -> 'en-GB', 'pt_BR' -> 'pt'."""
    return LOCALES.get(locale, locale.replace("_", "-"))


def fetch_tuxpaint(*, progress: bool = True) -> Path:
    """Fetch and unpack the stamps (160 MB download, 218 MB unpacked) unless they are in the cache already."""
    return fetch_packages([PACKAGE], _prepare, progress=progress)[PACKAGE]


def emoji_names() -> set[tuple[str, str]]:
    """(language, case-folded name) of every built-in emoji name: the text the cross-modal SAEs train on."""
    from mmfeatures.datasets.builtin import EMOJI_LANGUAGES, data_root, read_tsv

    rows = read_tsv(data_root() / "emoji" / "index.tsv", ["index"])
    return {(lang, " ".join(r[f"name_{lang}"].split()).casefold()) for r in rows for lang in EMOJI_LANGUAGES
            if r.get(f"name_{lang}")}


def tuxpaint_stamps(languages: Iterable[str] | None = None, *, svg: bool | None = None, fetch: bool = True,
                    progress: bool = True) -> ConceptDataset:
    """One image Example per stamp picture (``tuxpaint/<category>/.../<name>/image``, content the file's path)
    and one text Example per caption (``tuxpaint/<category>/.../<name>/<language>``), concept = the stamp's
    name (``kangaroo``), category = its top folder (``animals``). A name used in two top folders for two
    things (``mouse``: the animal and the computer's) becomes ``<category>/<name>`` in both.

    - ``languages``: keep captions in these languages only (images stay); default every language.
    - ``svg``: render SVG-only stamps to PNG (once, into the cache) with cairosvg. None (default) renders them
      when cairosvg is installed and otherwise skips them with a warning that says how many.
    - ``fetch``: fetch the package if it is missing; with False that is an error.

    A caption that is word for word an emoji's name in its language (about 6.5% of them: 'Cat.', 'Penguin') is left
    out: the cross-modal SAEs learn from emoji names, and Tux Paint is the text they never saw.

    >>> ds = tuxpaint_stamps(["en", "de"])                       # doctest: +SKIP
    >>> ds.pairs("de")[0][1].content                             # doctest: +SKIP
    'Eine US-Vierteldollar-Münze ...'
    """
    folder = package_dir(PACKAGE)
    if folder is None:
        if not fetch:
            raise InputError(f"{PACKAGE} is not in the cache; run `mmfeatures data fetch --only tuxpaint`")
        folder = fetch_tuxpaint(progress=progress)
    cached = read_json(folder / STAMPS, f"delete {folder} and fetch {PACKAGE} again")
    if cached.get("parser") != PARSER_VERSION:
        update_counts(folder, _prepare(PACKAGE, folder))
        cached = read_json(folder / STAMPS, f"delete {folder} and fetch {PACKAGE} again")
    stamps = cached["stamps"]
    if languages is not None:
        have = sorted({code for s in stamps for code in s["captions"]})
        keep = set(check_codes(languages, have, "Tux Paint's captions"))
        stamps = [s | {"captions": {c: t for c, t in s["captions"].items() if c in keep}} for s in stamps]
    render = _svg_renderer(svg)
    names = emoji_names()
    tops: dict[str, set[str]] = {}
    for s in stamps:
        tops.setdefault(Path(s["path"]).name, set()).add(s["path"].split("/")[0])
    root = folder / "usr" / "share" / "tuxpaint" / "stamps"
    examples, categories, skipped = [], {}, 0
    for s in stamps:
        name, category = Path(s["path"]).name, s["path"].split("/")[0]
        concept = name if len(tops[name]) == 1 else f"{category}/{name}"
        categories[concept] = category
        picture = root / s["image"] if s["image"] else None
        if picture is not None and picture.suffix == ".svg":
            picture = render(picture, folder / "rendered" / f"{s['path']}.png") if render else None
            skipped += render is None
        if picture is not None:
            examples.append(Example(f"tuxpaint/{s['path']}/image", Modality.IMAGE, picture, concept, None))
        examples += [Example(f"tuxpaint/{s['path']}/{code}", Modality.TEXT, text, concept, code)
                     for code, text in s["captions"].items()
                     if (code, " ".join(text.rstrip(".").split()).casefold()) not in names]
    if skipped and svg is None:
        warnings.warn(f"Tux Paint: {skipped} stamps have only an SVG picture and were left out (their captions "
                      "stay); pip install cairosvg to render them, or pass svg=False to leave them out silently",
                      stacklevel=2)
    return ConceptDataset.from_examples(examples, categories, name="tuxpaint")


def _svg_renderer(svg: bool | None):
    """A function (svg path, png path) -> png path that renders once, or None when SVGs are left out."""
    if svg is False or (svg is None and importlib.util.find_spec("cairosvg") is None):
        return None
    try:
        import cairosvg
    except ImportError as e:      # also raised by cairosvg itself when the cairo library is missing
        raise MissingDependencyError(f"rendering Tux Paint's SVG stamps needs cairosvg ({e}); install it with "
                                     "`pip install cairosvg` (and the cairo library: apt-get install libcairo2), "
                                     "or pass svg=False") from e

    def render(source: Path, target: Path) -> Path:
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            cairosvg.svg2png(url=str(source), write_to=str(tmp), output_width=SVG_WIDTH)
            os.replace(tmp, target)
        return target

    return render


def _prepare(name: str, folder: Path) -> dict:
    """Parse every caption file into ``stamps.json``; the counts for the data card."""
    root = folder / "usr" / "share" / "tuxpaint" / "stamps"
    stamps = []
    for txt in sorted(root.rglob("*.txt")):
        lines = [line.strip() for line in txt.read_text(encoding="utf-8", errors="replace").splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            continue
        captions = {"en": lines[0]}
        for line in lines[1:]:
            if (m := _LINE.fullmatch(line)) and m.group(2).strip():
                captions.setdefault(locale_code(m.group(1)), m.group(2).strip())
        image = next((txt.with_suffix(s) for s in (".png", ".svg") if txt.with_suffix(s).is_file()), None)
        stamps.append({"path": txt.relative_to(root).with_suffix("").as_posix(), "captions": captions,
                       "image": image.relative_to(root).as_posix() if image else None})
    write_text_atomic(folder / STAMPS, json.dumps({"parser": PARSER_VERSION, "package": name, "stamps": stamps},
                                                  ensure_ascii=False))
    kinds = Counter(Path(s["image"]).suffix[1:] if s["image"] else "none" for s in stamps)
    languages = Counter(code for s in stamps for code in s["captions"])
    return {"stamps": len(stamps), "png": kinds["png"], "svg_only": kinds["svg"], "no_picture": kinds["none"],
            "categories": dict(sorted(Counter(s["path"].split("/")[0] for s in stamps).items())),
            "captions": sum(languages.values()), "languages": len(languages),
            "captions_per_language": dict(languages.most_common())}
