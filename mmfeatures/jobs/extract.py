"""``mmfeatures extract``: activations of a model at some sites, for a dataset, into stores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmfeatures.jobs.common import Record, Timer, config_dict, environment, opt, reusable, table, writable

BUILTIN = ("concepts", "emoji", "photos")


@dataclass(frozen=True)
class ExtractJob:
    """Extract activations at ``sites`` for ``data`` into resumable stores (one per site)."""

    model: str = opt("offline:e5-small", "registry name (see `mmfeatures models`)")
    sites: tuple[str, ...] = opt(("text.layer.8.resid",), "sites, comma-separated (e.g. text.layer.8.resid,text.embed)")
    data: str = opt("concepts", "built-in sources (concepts, emoji, photos; comma-separated), "
                                "or a CSV/TSV/JSONL file, or an image folder with one subfolder per concept")
    languages: tuple[str, ...] = opt((), "keep texts in these languages only (default: all); images stay")
    pooling: str = opt("none", "none (a row per token), mean, cls or eos")
    batch_size: int = opt(64, "inputs per forward pass (halved automatically on out-of-memory)")
    device: str = opt("auto", "auto, cpu or cuda")
    dtype: str = opt("fp32", "forward precision: fp32, bf16 or fp16")
    store_dir: str | None = opt(None, "root folder for stores (default: the user cache)")
    out: str | None = opt(None, "folder for this job's result.json (default: none written)")
    progress: bool = opt(True, "show progress bars")


def load_data(spec: str, languages: tuple[str, ...] = ()):
    """A ConceptDataset from built-in source names, a table file or an image folder."""
    from mmfeatures.datasets import ConceptDataset, load_image_folder, load_table
    from mmfeatures.errors import InputError

    path = Path(spec)
    if path.is_dir():
        ds = load_image_folder(path)
    elif path.is_file():
        ds = load_table(path)
    else:
        sources = [s.strip() for s in spec.split(",") if s.strip()]
        unknown = [s for s in sources if s not in BUILTIN]
        if unknown or not sources:
            raise InputError(f"data {spec!r} is neither a file, a folder nor built-in sources; use a path or "
                             f"some of {', '.join(BUILTIN)} (comma-separated)")
        linked = "concepts" in sources and len(sources) > 1
        return ConceptDataset.builtin(sources, languages=languages or None, linked_only=linked)
    if languages:
        keep = set(languages)
        ds = ConceptDataset.from_examples([e for e in ds if e.language is None or e.language in keep],
                                          ds.categories, name=ds.name)
    return ds


def run_extract(job: ExtractJob) -> Record:
    """Extract (reusing complete stores and resuming partial ones) and record what was written."""
    from mmfeatures.activations import extract

    out = writable(job.out) if job.out else None
    if out and (done := reusable(out, "extract", job)):
        return done
    timer = Timer()
    data = load_data(job.data, job.languages)
    result = extract(job.model, data, list(job.sites), pooling=job.pooling, batch_size=job.batch_size,
                     store_dir=job.store_dir, device=job.device, dtype=job.dtype, progress=job.progress)
    rows = [[site, store.n_rows, store.d, job.pooling, str(store.path)] for site, store in result.stores.items()]
    reused = f"{result.reused_shards} shard(s) reused, {result.computed_shards} computed"
    record = Record(
        "extract", f"Activations of {job.model}", config_dict(job),
        tables=(table(f"{len(data)} inputs ({data.name}); {reused}; {result.truncated} text(s) truncated",
                      ["site", "rows", "d", "pooling", "store"], rows),),
        outputs={f"store {site}": str(store.path) for site, store in result.stores.items()},
        seconds=timer.seconds, environment=environment())
    return record.save(out) if out else record
