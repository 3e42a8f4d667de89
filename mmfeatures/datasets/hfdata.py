"""Hugging Face ``datasets`` as ConceptDatasets: a folder from ``save_to_disk``, local data files, or a
hub name already in the local cache. See docs/datasets.md for Crossmodal-3600 and COCO recipes.

Images are written once to a content-addressed folder under the mmfeatures cache and referenced by
path, so a dataset of thousands of photos is neither decoded nor held in memory until extraction.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mmfeatures.datasets.concepts import ConceptDataset
from mmfeatures.datasets.languages import check_language
from mmfeatures.disk import cache_dir
from mmfeatures.errors import InputError, require
from mmfeatures.types import Example, Modality

DATA_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
                      ".arrow": "arrow"}


def load_hf_dataset(source: str | Path, split: str | Mapping[str, str] = "train", *,
                    text: str | None = "captions", image: str | None = "image", language: str | None = None,
                    concept: str | None = None, id: str | None = None, config: str | None = None,
                    limit: int | None = None) -> ConceptDataset:
    """Read an image-caption (or text-only) dataset into a ConceptDataset.

    - ``source``: a folder written by ``save_to_disk``, a data file or folder (parquet, csv, json,
      imagefolder), or a hub name such as ``"floschne/xm3600"`` that is already cached.
    - ``split``: a split name, or ``{language: split}`` for datasets with one split per language
      (Crossmodal-3600 on the hub keeps each language in its own split).
    - ``text``: column with a caption or a list of captions (None for images only).
    - ``image``: column with images, ``{"bytes", "path"}`` records or paths (None for text only).
    - ``language``: a column holding language codes, or one code for every row (``"en"`` for COCO).
    - ``id``: column with a stable row id; rows with the same id across splits share one image.
    - ``concept``: column with concept ids; by default each row (image) is its own concept, so an
      image and its captions are aligned.
    """
    datasets = require("datasets", "hf-datasets", "loading Hugging Face datasets")
    splits = dict(split) if isinstance(split, Mapping) else {None: split}
    if isinstance(split, Mapping) and language is not None:
        raise InputError("give either split={language: split} or language=..., not both")
    if text is None and image is None:
        raise InputError("text=None and image=None leave nothing to load; name a text or an image column")
    examples: list[Example] = []
    seen_images: set[str] = set()
    for split_language, split_name in splits.items():
        ds = _open(datasets, source, split_name, config)
        where = f"{source} [{split_name}]"
        _check_columns(ds.column_names, where, text=text, image=image, concept=concept, id=id)
        if image is not None:
            ds = ds.cast_column(image, datasets.Image(decode=False)) if _is_image(ds, image, datasets) else ds
        n = len(ds) if limit is None else min(limit, len(ds))
        for i in range(n):
            row = ds[i]
            row_where = f"{where} row {i}"
            rid = str(row[id]) if id else f"{split_name}:{i}"
            cid = str(row[concept]) if concept else rid
            if image is not None and rid not in seen_images:
                seen_images.add(rid)
                examples.append(Example(f"{rid}/image", Modality.IMAGE, _image_path(row[image], row_where), cid))
            if text is None:
                continue
            lang = split_language or (row[language] if language in ds.column_names else language)
            try:
                lang = check_language(lang, row_where + (" (pass language='en' or a language column)"
                                                         if lang is None else ""))
            except ValueError as e:
                raise InputError(str(e)) from None
            captions = row[text] if isinstance(row[text], list) else [row[text]]
            for k, caption in enumerate(captions):
                if not isinstance(caption, str) or not caption.strip():
                    raise InputError(f"{row_where}: caption {k} in column {text!r} is empty or not a string")
                examples.append(Example(f"{rid}/{lang}/{k}", Modality.TEXT, caption, cid, lang))
    if not examples:
        raise InputError(f"{source}: no rows in split(s) {list(splits.values())}; check the split names")
    return ConceptDataset.from_examples(examples, name=Path(str(source)).name or str(source))


def _open(datasets, source: str | Path, split: str, config: str | None):
    """A ``datasets.Dataset`` for one split, from disk or the local cache, never waiting on a network."""
    path = Path(source)
    if path.is_dir() and any((path / f).is_file() for f in ("dataset_info.json", "state.json",
                                                            "dataset_dict.json")):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise InputError(f"{path}: no split {split!r}; it has {sorted(loaded)}")
            return loaded[split]
        return loaded
    if path.is_file():
        builder = DATA_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise InputError(f"{path}: unknown data file type {path.suffix!r}; use one of {sorted(DATA_FILE_BUILDERS)}")
        return _load(datasets, builder, split="train", data_files=str(path))
    if path.exists() or str(source).startswith((".", "/", "~")):
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        return _load(datasets, str(path), split=split)
    return _load(datasets, str(source), split=split, name=config)


def _load(datasets, *args, **kwargs):
    from mmfeatures.encoders.hub import hub_reachable

    name, split = args[0], kwargs.get("split")
    local = Path(name).exists() or name in DATA_FILE_BUILDERS.values()
    online = local or hub_reachable()
    try:
        with _offline(not online):
            return datasets.load_dataset(*args, **kwargs)
    except (ConnectionError, FileNotFoundError, OSError) as e:
        if local:
            raise InputError(f"{name}: cannot read it with `datasets` ({type(e).__name__}: {e})") from None
        raise InputError(
            f"dataset {name!r} (split {split!r}) is not in the local Hugging Face cache and the hub "
            f"{'is unreachable' if not online else 'refused it'} ({type(e).__name__}: {str(e)[:200]}). On a "
            f"machine with internet run: python -c \"import datasets; datasets.load_dataset({name!r}, "
            f"split={split!r}).save_to_disk('{name.split('/')[-1]}-{split}')\" and pass that folder, or copy "
            "its ~/.cache/huggingface here") from None
    except ValueError as e:  # unknown split names and the like
        raise InputError(f"{name}: {e}") from None


@contextlib.contextmanager
def _offline(offline: bool) -> Iterator[None]:
    """Make ``datasets`` read only its cache (what HF_HUB_OFFLINE=1 does at import time)."""
    if not offline:
        yield
        return
    import datasets.config

    from mmfeatures.encoders.hub import forced_offline

    with forced_offline(datasets.config):
        yield


def _check_columns(columns: list[str], where: str, **named: str | None) -> None:
    for role, column in named.items():
        if column is not None and column not in columns:
            raise InputError(f"{where}: no column {column!r} (for {role}=); it has {columns}. "
                             f"Pass {role}=<one of those>" + (" or None" if role in ("text", "image") else ""))


def _is_image(ds, column: str, datasets) -> bool:
    return isinstance(ds.features.get(column), datasets.Image)


def _image_path(value: Any, where: str) -> Path:
    """A local file for an image cell: its own path, or its bytes written once to the cache."""
    if isinstance(value, (str, os.PathLike)) and Path(value).is_file():
        return Path(value)
    data = None
    if isinstance(value, Mapping):
        if value.get("bytes"):
            data = value["bytes"]
        elif value.get("path") and Path(value["path"]).is_file():
            return Path(value["path"])
    elif hasattr(value, "save"):  # a decoded PIL image
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        data = buffer.getvalue()
    if data is None:
        raise InputError(f"{where}: image cell is {type(value).__name__}, with no bytes and no readable path")
    digest = hashlib.sha256(data).hexdigest()
    folder = cache_dir() / "hf-images" / digest[:2]
    target = folder / f"{digest}{_suffix(data)}"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return target


def _suffix(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".img"
