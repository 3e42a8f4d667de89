"""Bring your own activations: write a store from arrays or an iterator that mmfeatures did not extract.

Every analysis reads stores, so activations from another tool's cache (TransformerLens, nnsight, SAELens, a numpy
file) become a store with labels and then go through the same steps as extracted ones:

>>> import numpy as np, mmfeatures as mmf
>>> examples = [{"id": "dog/en", "concept": "dog", "language": "en", "content": "a dog"},
...             {"id": "dog/es", "concept": "dog", "language": "es", "content": "un perro"}]
>>> store = mmf.write_store(np.ones((2, 4), np.float32), examples, model="my-model", site="text.layer.3.resid",
...                         source="my tool, run 7", store_dir="/tmp/stores")     # doctest: +SKIP

``acts`` is either one (n_rows, d) array (numpy or torch) with ``example_index`` saying which example each row
belongs to (default: one row per example, a pooled store), or an iterable of per-example arrays ((n_tokens, d),
or (d,) for one row), consumed once, in example order, so a store larger than memory streams through. The
store's key covers the examples, the site, ``source`` and a digest of the activations themselves, so different
activations never reuse each other's store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfeatures.activations.layout import (
    METADATA,
    SHARD_BYTES,
    SHARD_EXAMPLES,
    STORE_DTYPES,
    ShardCutter,
    StoreConfig,
)
from mmfeatures.activations.writer import StoreWriter
from mmfeatures.errors import InputError
from mmfeatures.types import Example, Modality, Site

__all__ = ["write_store"]

FLOATS = (np.float16, np.float32, np.float64)


def _examples(examples: Sequence[Any], modality: Modality) -> list[Example]:
    """Examples of ``modality`` (the site's) from Example records or dicts with an id (and concept, language,
    content)."""
    if isinstance(examples, (str, bytes, dict)) or not isinstance(examples, Sequence):
        raise InputError(f"examples is a {type(examples).__name__}; give a list with one label record per example")
    out, seen = [], set()
    for i, item in enumerate(examples):
        if isinstance(item, Example):
            ex = item
        elif isinstance(item, dict) and "id" in item:
            group = item.get("group")
            ex = Example(str(item["id"]), Modality(item.get("modality", modality.value)), item.get("content") or "",
                         item.get("concept"), item.get("language"), None if group is None else str(group))
        else:
            raise InputError(f"examples[{i}] is {type(item).__name__}; give an Example or a dict with 'id' (and "
                             "'concept', 'language', 'group', 'modality', 'content'), e.g. {'id': 'dog/en', 'concept': 'dog', "
                             "'language': 'en'}")
        if ex.modality is not modality:
            raise InputError(f"examples[{i}] ({ex.id!r}) is a {ex.modality.value} example, but the site reads "
                             f"{modality.value}; one store holds one modality: write the others to their own site")
        if ex.language is not None:
            _check_language(ex.language, f"examples[{i}] ({ex.id!r})")
        if ex.id in seen:
            raise InputError(f"examples[{i}] repeats the id {ex.id!r}; ids must be unique")
        seen.add(ex.id)
        out.append(ex)
    if not out:
        raise InputError("no examples given; pass one label record per example")
    return out


def _as_float(x: Any, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy() if x.dtype == torch.bfloat16 else x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype not in FLOATS:
        raise InputError(f"{what} has dtype {x.dtype}; give floating-point activations (float16, bfloat16, float32 "
                         "or float64), e.g. acts.astype(np.float32)")
    return x


def _check_language(code: Any, where: str) -> None:
    """A language label is a code ('en', 'pt-BR', 'yue', or a label of one's own such as 'l0' for planted data); a
    language's name ('english', 'Japanese') or text with spaces is refused with the code to use."""
    from mmfeatures.datasets.languages import LANGUAGE_NAMES

    if not isinstance(code, str) or not code.strip() or " " in code.strip():
        raise InputError(f"{where} language is {code!r}; give a language code such as 'en' or 'ja', or None")
    named = LANGUAGE_NAMES.get(code.strip().lower())
    if named:
        raise InputError(f"{where} language is {code!r}, a language's name; give its code, {named!r}")


def _per_example(acts: Any, example_index: Any, n_examples: int, pooled: bool) -> Iterator[np.ndarray]:
    """(rows, d) per example, in order, from either input form, checking shapes as it goes."""
    if isinstance(acts, (np.ndarray, torch.Tensor)):
        acts = _as_float(acts, "acts")
        if acts.ndim != 2:
            raise InputError(f"acts has shape {acts.shape}; give (n_rows, d), or an iterable of per-example arrays")
        if example_index is None:
            if len(acts) != n_examples:
                raise InputError(f"acts has {len(acts)} rows for {n_examples} examples; give example_index (the "
                                 "example of each row) for per-token rows, or one row per example")
            example_index = np.arange(n_examples)
        index = np.asarray(example_index)
        if index.shape != (len(acts),) or not np.issubdtype(index.dtype, np.integer):
            raise InputError(f"example_index has shape {index.shape} and dtype {index.dtype}; give one integer per "
                             f"row of acts ({len(acts)})")
        if len(index) and (index.min() < 0 or index.max() >= n_examples):
            bad = int(np.flatnonzero((index < 0) | (index >= n_examples))[0])
            raise InputError(f"example_index[{bad}] = {index[bad]} is not an example (0..{n_examples - 1})")
        if np.any(np.diff(index) < 0):
            bad = int(np.flatnonzero(np.diff(index) < 0)[0]) + 1
            raise InputError(f"example_index decreases at row {bad} ({index[bad - 1]} then {index[bad]}); sort the "
                             "rows by example (np.argsort(example_index, kind='stable'))")
        bounds = np.searchsorted(index, np.arange(n_examples + 1))
        for e in range(n_examples):
            yield acts[bounds[e]:bounds[e + 1]]
        return
    if example_index is not None:
        raise InputError("example_index goes with one (n_rows, d) array; an iterable gives one array per example")
    if not isinstance(acts, Iterable):
        raise InputError(f"acts is {type(acts).__name__}; give an (n_rows, d) array or an iterable of per-example "
                         "arrays")
    count = 0
    for count, rows in enumerate(acts, 1):
        if count > n_examples:
            raise InputError(f"acts yields more than the {n_examples} examples given; give one array per example")
        rows = _as_float(rows, f"acts item {count - 1}")
        if rows.ndim == 1:
            rows = rows[None]
        if rows.ndim != 2 or (pooled and len(rows) != 1):
            raise InputError(f"acts item {count - 1} has shape {rows.shape}; give (d,) or (1, d) per example for a "
                             "pooled store, (n_tokens, d) with pooling='none'")
        yield rows
    if count != n_examples:
        raise InputError(f"acts yields {count} arrays for {n_examples} examples; give one array per example")


def write_store(acts: Any, examples: Sequence[Any], *, model: str, site: str, source: str, pooling: str = "mean",
                example_index: Any = None, store_dir: str | Path | None = None,
                shard_examples: int = SHARD_EXAMPLES, shard_bytes: int = SHARD_BYTES, store_dtype: str = "fp32"):
    """Write activations made elsewhere as an ActivationStore (see the module's docstring); returns the store.

    ``model`` and ``site`` name where they came from ('text.layer.<n>.resid', 'image.embed', ...: SAEs trained on
    the store record them); ``source`` says what produced them (a tool and run), and enters the key.
    ``pooling``: 'none' for one row per token, otherwise how the rows were pooled ('mean', 'cls', 'eos').
    A shard holds at most ``shard_examples`` examples and ``shard_bytes`` bytes of rows.
    Refused with the offending row or item named: a non-float dtype, NaN or inf, rows of another width,
    a row or array count that does not match the examples.
    """
    from mmfeatures.activations.extract import POOLINGS, _slug
    from mmfeatures.activations.store import ActivationStore
    from mmfeatures.datasets.images import fingerprint
    from mmfeatures.disk import cache_dir

    if pooling not in POOLINGS:
        raise InputError(f"pooling {pooling!r}; use 'none' for per-token rows, or one of {POOLINGS}")
    if not isinstance(model, str) or not model.strip():
        raise InputError(f"model = {model!r}; name the model the activations came from, e.g. 'gpt2' (SAEs trained on "
                         "the store record it)")
    if not source or not isinstance(source, str):
        raise InputError("source is empty; say what produced the activations, e.g. 'nnsight, gpt2, run 3'")
    if store_dtype not in STORE_DTYPES:
        raise InputError(f"store_dtype {store_dtype!r}; use one of {sorted(STORE_DTYPES)}")
    try:
        cutter = ShardCutter(shard_examples, shard_bytes)
    except ValueError as e:
        raise InputError(f"{e}; give a positive number of examples and bytes per shard") from None
    parsed = Site.parse(site)
    exs = _examples(examples, parsed.modality)
    root = (Path(store_dir) if store_dir is not None else cache_dir("stores")) / _slug(model)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".external-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    digest = hashlib.sha256(f"{source}\x1f{pooling}".encode())

    def config(weights: str, starts: tuple[int, ...]) -> StoreConfig:
        return StoreConfig(model, weights, str(parsed), pooling, None, False, store_dtype, "external",
                           fingerprint(exs), len(exs), starts)

    try:
        writer = StoreWriter(staging, config("external:pending", (0,) if exs else ()))
        writer.start([e.record() for e in exs])
        d, rows, owner, starts = None, [], [], [0]
        row_bytes = STORE_DTYPES[store_dtype].itemsize
        for e, block in enumerate(_per_example(acts, example_index, len(exs), pooling != "none")):
            d = block.shape[1] if d is None else d
            if block.shape[1] != d:
                raise InputError(f"example {e} ({exs[e].id!r}) has rows of width {block.shape[1]}, the first {d}; "
                                 "every row must have the same width")
            finite = np.isfinite(block).all(1)
            if not finite.all():
                raise InputError(f"example {e} ({exs[e].id!r}) row {int(np.flatnonzero(~finite)[0])} holds NaN or "
                                 "inf; drop or fix that row before writing the store")
            block = np.ascontiguousarray(block, np.float32)
            digest.update(np.asarray(block.shape, np.int64).tobytes() + block.tobytes())
            if cutter.starts_shard(len(block) * d * row_bytes) and rows:
                _write(writer, len(starts) - 1, rows, owner, d, pooling == "none", (starts[-1], e))
                rows, owner = [], []
                starts.append(e)
            rows.append(block)
            owner.append(e)
        if rows:
            _write(writer, len(starts) - 1, rows, owner, d, pooling == "none", (starts[-1], len(exs)))
        final = config(f"external:{digest.hexdigest()[:32]}", tuple(starts) if exs else ())
        target = root / f"{parsed}-{pooling}-{final.key}"
        if not target.exists():
            (staging / METADATA).unlink()
            os.replace(staging, target)
            done = StoreWriter(target, final)
            done.start([e.record() for e in exs])
            done.finish()
        return ActivationStore(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(writer: StoreWriter, shard: int, rows: list[np.ndarray], owner: list[int], d: int | None,
           tokens: bool, span: tuple[int, int]) -> None:
    """One shard: its rows, each row's example, its position (the token's; -1 for pooled rows, as extract writes)."""
    counts = [len(r) for r in rows]
    acts = torch.from_numpy(np.concatenate(rows)) if sum(counts) else torch.zeros(0, d or 0)
    example = torch.as_tensor(np.repeat(owner, counts), dtype=torch.int64)
    position = torch.as_tensor(np.concatenate([np.arange(c) if tokens else np.full(c, -1) for c in counts]),
                               dtype=torch.int32)
    writer.write_shard(shard, acts, example, position, torch.zeros(len(acts), dtype=torch.bool), None,
                       {"truncated": 0, "skipped": [], "nonfinite": []}, span)
