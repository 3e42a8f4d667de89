"""The extract step (``mmfeatures extract``): activations of a model at some sites, for a dataset, into stores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmfeatures.pipeline.record import Artifact, Record, opt, run_step, table, writable

BUILTIN = ("concepts", "emoji", "photos")
DEBIAN = ("libreoffice", "libreoffice-heldout", "tuxpaint", "freedict", "general", "general-heldout")   # docs/data.md


@dataclass(frozen=True)
class ExtractStep:
    """Extract activations at ``sites`` for ``data`` into resumable stores (one per site)."""

    model: str = opt("offline:e5-small", "registry name (see `mmfeatures models`)")
    sites: tuple[str, ...] = opt(("text.layer.8.resid",), "sites, comma-separated (e.g. text.layer.8.resid,text.embed)")
    data: str = opt("concepts", "built-in sources (concepts, emoji, photos) and Debian corpora (libreoffice, "
                                "libreoffice-heldout, tuxpaint, freedict, general, general-heldout; 'libreoffice:N' keeps "
                                "N paragraph keys, 'general:N' N texts per source and language, drawn "
                                "with seed 0), comma-separated, or a CSV/TSV/JSONL file, or an image folder with "
                                "one subfolder per concept")
    columns: tuple[str, ...] = opt((), "for a CSV/TSV/JSONL file, field=column pairs naming its columns, e.g. "
                                       "text=sentence,language=lang,concept=label (fields: text, language, concept, "
                                       "category, id, group)")
    languages: tuple[str, ...] = opt((), "keep texts in these languages only (default: all); images stay")
    pooling: str = opt("none", "none (a row per token), mean, cls or eos")
    role: str | None = opt(None, "text role: query, passage or raw (sets the prompt prefix; default: the model's)")
    batch_size: int = opt(64, "inputs per forward pass (halved automatically on out-of-memory)", volatile=True)
    device: str = opt("auto", "auto, cpu, cuda or cuda:N", volatile=True)
    dtype: str = opt("fp32", "forward precision: fp32, bf16 or fp16")
    store_dir: str | None = opt(None, "root folder for stores (default: the user cache)", volatile=True)
    out: str | None = opt(None, "folder for this step's result.json (default: none written)", volatile=True)
    progress: bool = opt(True, "show progress bars", volatile=True)

    def __post_init__(self):
        from mmfeatures.activations import POOLINGS
        from mmfeatures.encoders import resolve_device
        from mmfeatures.errors import InputError

        if self.pooling not in POOLINGS:
            raise InputError(f"pooling {self.pooling!r}; use one of {', '.join(POOLINGS)}")
        if not self.sites:
            raise InputError("no sites given; name one or more, e.g. --sites text.layer.8.resid")
        if self.batch_size < 1:
            raise InputError(f"batch_size = {self.batch_size}; use at least 1")
        column_map(self.columns)
        if self.columns and not Path(self.data).is_file():
            raise InputError(f"columns {list(self.columns)} name a table's columns, but data {self.data!r} is not a "
                             "CSV/TSV/JSONL file; drop --columns or pass the file")
        resolve_device(self.device)
        if self.store_dir:
            writable(self.store_dir, "--store-dir")


TABLE_FIELDS = ("text", "language", "concept", "category", "id", "group")


def column_map(pairs: tuple[str, ...]) -> dict[str, str]:
    """``('text=sentence', 'language=lang')`` as load_table's keyword arguments; a bad pair names the fix."""
    from mmfeatures.errors import InputError

    mapping = {}
    for pair in pairs:
        field, _, column = pair.partition("=") if isinstance(pair, str) else ("", "", "")
        if field.strip() not in TABLE_FIELDS or not column.strip() or field.strip() in mapping:
            raise InputError(f"columns entry {pair!r}; give each field once as field=column, fields "
                             f"{', '.join(TABLE_FIELDS)} (e.g. text=sentence,language=lang)")
        mapping[field.strip()] = column.strip()
    return mapping


def load_data(spec: str, languages: tuple[str, ...] = (), columns: tuple[str, ...] = ()):
    """A ConceptDataset from built-in source and Debian corpus names, a table file (its columns named by
    ``columns``, field=column pairs) or an image folder."""
    from mmfeatures.datasets import ConceptDataset, load_image_folder, load_table
    from mmfeatures.errors import InputError

    path = Path(spec)
    if path.is_dir():
        ds = load_image_folder(path)
    elif path.is_file():
        ds = load_table(path, **column_map(columns))
    else:
        sources = [s.strip() for s in spec.split(",") if s.strip()]
        unknown = [s for s in sources if s not in BUILTIN and _debian_name(s) not in DEBIAN]
        if unknown or not sources:
            raise InputError(f"data {spec!r} is neither a file, a folder nor built-in sources; use a path or "
                             f"some of {', '.join(BUILTIN + DEBIAN)} (comma-separated)")
        builtin = [s for s in sources if s in BUILTIN]
        linked = "concepts" in builtin and len(builtin) > 1
        parts = [ConceptDataset.builtin(builtin, languages=languages or None, linked_only=linked)] if builtin else []
        parts += [_debian(s, languages) for s in sources if s not in BUILTIN]
        for i, part in enumerate(parts[1:], 1):     # a shared concept ('lion') keeps the category it had first
            seen = {c for p in parts[:i] for c in p.categories}
            parts[i] = ConceptDataset(part.examples, {c: k for c, k in part.categories.items() if c not in seen},
                                      part.name)
        return parts[0].merge(*parts[1:], name=spec) if len(parts) > 1 else parts[0]
    if languages:
        keep = set(languages)
        ds = ConceptDataset.from_examples([e for e in ds if e.language is None or e.language in keep],
                                          ds.categories, name=ds.name)
    return ds


def _debian_name(source: str) -> str:
    """'libreoffice:8000' -> 'libreoffice'."""
    return source.split(":", 1)[0]


def _debian(source: str, languages: tuple[str, ...]):
    from mmfeatures.datasets import libreoffice_corpus, tuxpaint_stamps
    from mmfeatures.datasets.freedict import freedict_words
    from mmfeatures.datasets.general import general_corpus
    from mmfeatures.errors import InputError

    name, _, count = source.partition(":")
    if count and (name in ("tuxpaint", "freedict") or not count.isdigit() or int(count) < 1):
        raise InputError(f"data {source!r}: a slice is 'libreoffice:N', 'libreoffice-heldout:N' (N >= 1 paragraph "
                         "keys), 'general:N' or 'general-heldout:N' (N >= 1 texts per source and language)")
    if name in ("general", "general-heldout"):
        return general_corpus("heldout" if name == "general-heldout" else "train",
                              per_source=int(count) if count else None, languages=languages or None)
    if name == "tuxpaint":
        return tuxpaint_stamps(languages or None)
    if name == "freedict":
        return freedict_words(languages or None)
    split = "heldout" if name == "libreoffice-heldout" else "train"
    limit = int(count) if count else None
    return (libreoffice_corpus(languages, split, limit) if languages
            else libreoffice_corpus(split=split, max_paragraphs=limit))


def run_extract(step: ExtractStep) -> Record:
    """Extract (reusing complete stores by key and resuming partial ones) and record what was written."""

    def compute(_out) -> Record:
        from mmfeatures.activations import extract

        data = load_data(step.data, step.languages, step.columns)
        result = extract(step.model, data, list(step.sites), pooling=step.pooling, role=step.role,
                         batch_size=step.batch_size, store_dir=step.store_dir, device=step.device, dtype=step.dtype,
                         progress=step.progress)
        rows = [[site, store.n_rows, store.d, step.pooling, str(store.path)] for site, store in result.stores.items()]
        reused = f"{result.reused_shards} shard(s) reused, {result.computed_shards} computed"
        return Record(
            "extract", f"Activations of {step.model}", {},
            tables=(table(f"{len(data)} inputs ({data.name}); {reused}; {result.truncated} text(s) truncated",
                          ["site", "rows", "d", "pooling", "store"], rows),),
            artifacts=tuple(Artifact("store", str(store.path), store.key, site) for site, store in result.stores.items()),
            reused=result.computed_shards == 0)

    return run_step("extract", step, compute, reuse=False)
