"""Users' own data as ConceptDatasets: image folders, CSV and JSONL files.

Every problem names the file, the line (or entry) and the fix.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from mmfeatures.datasets.concepts import ConceptDataset
from mmfeatures.datasets.languages import check_language
from mmfeatures.errors import InputError
from mmfeatures.types import Example, Modality

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def load_image_folder(root: str | Path, *, category: str | None = None) -> ConceptDataset:
    """``root/<concept>/<image>``: each subfolder is a concept, each image file an example.

    Unreadable images are found when they are extracted (``on_error`` decides there)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; give a folder with one subfolder per concept")
    examples, categories = [], {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                examples.append(Example(str(path.relative_to(root)), Modality.IMAGE, path, folder.name, None))
        if category is not None:
            categories[folder.name] = category
    if not examples:
        raise InputError(f"{root}: no images found; expected {root}/<concept>/<file> with suffixes {IMAGE_SUFFIXES}")
    return ConceptDataset.from_examples(examples, categories, name=root.name)


def load_table(path: str | Path, *, text: str = "text", language: str = "language", concept: str = "concept",
               category: str | None = "category", id: str | None = "id", group: str | None = "group") -> ConceptDataset:
    """A CSV (.csv/.tsv) or JSON-lines (.jsonl) file with one text per row.

    ``text``, ``language`` and ``concept`` name required columns; ``category``, ``id`` and ``group`` optional
    ones (ids default to '<file>:<line>'; rows with the same concept and group are translations of one sentence,
    different groups different sentences about the concept)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    rows = list(_read_rows(path))
    if not rows:
        raise InputError(f"{path}: no rows; the file is empty")
    required = [text, language, concept]
    first_line, first = rows[0]
    missing = [c for c in required if c not in first]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; found {sorted(first)}. Rename them, or pass "
                         "text=..., language=..., concept=... to load_table (on the command line: "
                         "`mmfeatures extract --columns text=...,language=...,concept=...`)")
    examples, categories = [], {}
    for line, row in rows:
        where = f"{path}:{line}"
        value = row.get(text)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: empty {text!r}; every row needs a text")
        try:
            lang = check_language(row.get(language), where)
        except ValueError as e:
            raise InputError(str(e)) from None
        cid = row.get(concept)
        if not isinstance(cid, str) or not cid.strip():
            raise InputError(f"{where}: empty {concept!r}; every row needs a concept id")
        cat = row.get(category) if category else None
        if cat:
            if categories.setdefault(cid, cat) != cat:
                raise InputError(f"{where}: concept {cid!r} has category {cat!r} here but {categories[cid]!r} "
                                 "earlier; a concept has one category")
        ex_id = str(row[id]) if id and row.get(id) not in (None, "") else f"{path.name}:{line}"
        sentence = row.get(group) if group else None
        examples.append(Example(ex_id, Modality.TEXT, value, cid.strip(), lang,
                                None if sentence in (None, "") else str(sentence)))
    return ConceptDataset.from_examples(examples, categories, name=path.stem)


def _read_rows(path: Path):
    """(line number, row dict) pairs; undecodable bytes and bad JSON name their line."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{path}:{number}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                             "re-save the file as UTF-8") from None
    text = raw.decode("utf-8-sig")
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                row: Any = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{number}: not valid JSON ({e.msg}); one JSON object per line") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row
        return
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise InputError(f"{path}: unknown table format {path.suffix!r}; use .csv, .tsv or .jsonl")
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    for row in reader:
        if any(v is None for v in row.values()) or None in row:
            raise InputError(f"{path}:{reader.line_num}: wrong number of fields; quote texts that contain "
                             "the delimiter")
        yield reader.line_num, row
