"""extract(): run an encoder over inputs and write each site's activations to an ActivationStore.

One forward pass per batch serves every requested site. Work is cut into shards of consecutive examples,
at most ``shard_examples`` examples and ``shard_bytes`` bytes of rows each (per-token rows are counted by
tokenising first); each finished shard is durable, so a killed run resumes from the last complete shard.
Under torchrun each rank takes every world_size-th shard of the same store.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfeatures.activations.inputs import Example, as_examples, fingerprint, load_image
from mmfeatures.activations.layout import SHARD_BYTES, SHARD_EXAMPLES, STORE_DTYPES, plan_shards
from mmfeatures.activations.store import ActivationStore, Provenance, StoreConfig, StoreWriter
from mmfeatures.disk import cache_dir
from mmfeatures.encoders import Encoder, load_encoder
from mmfeatures.encoders.base import DTYPES, Batch
from mmfeatures.errors import InputError, MMFeaturesError
from mmfeatures.types import Modality, Site

POOLINGS = ("mean", "cls", "eos", "none")


class NonFiniteError(MMFeaturesError, FloatingPointError):
    """NaN or inf in activations; the message names the example ids."""


@dataclass(frozen=True)
class ExtractResult:
    """Stores by site. ``result[site]`` is the (n_rows, d) float32 array."""

    stores: dict[str, ActivationStore]
    computed_shards: int
    """Shards computed by this call (per site group); the rest were reused."""
    reused_shards: int
    truncated: int
    """Text items cut to the model's maximum length (counted once per example)."""
    skipped: list[dict[str, Any]] = field(default_factory=list)
    """Examples skipped under on_error='skip', with the reason."""
    seconds: float = 0.0

    def __getitem__(self, site: str) -> np.ndarray:
        return self.stores[site].array()

    def provenance(self, site: str) -> Provenance:
        return self.stores[site].provenance()

    def __repr__(self) -> str:
        sites = ", ".join(f"{s}: {st.n_rows}x{st.d}" for s, st in self.stores.items())
        return f"ExtractResult({sites}; computed {self.computed_shards}, reused {self.reused_shards} shards)"


def _dist() -> tuple[int, int, Any]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dist.barrier
    return 0, 1, (lambda: None)


def weights_fingerprint(module: torch.nn.Module) -> str:
    """16 hex digits naming a module's weights: every tensor's name, shape and dtype, and every byte of its values
    (XXH3-128, about 0.1 s for e5-small's 118M parameters). A fingerprint of a sample would let a checkpoint
    edited in place (one embedding row negated) keep its key, and with it the old model's stores."""
    import xxhash

    h = xxhash.xxh3_128()
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        flat = t.detach().reshape(-1)
        if flat.numel():
            h.update(flat.contiguous().view(torch.uint8).cpu().numpy().data)
    return h.hexdigest()[:16]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80]


def pool_rows(act: torch.Tensor, batch: Batch, pooling: str, include_special: bool, site: Site
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, d) activations with their batch item, position and special flag.

    Padding never enters a row or a mean; specials enter only with include_special.
    """
    b = act.shape[0]
    items = torch.arange(b, device=act.device)
    if act.dim() == 2:  # the embed site: one row per example already
        minus1 = torch.full((b,), -1, dtype=torch.int32, device=act.device)
        return act, items, minus1, torch.zeros(b, dtype=torch.bool, device=act.device)
    mask = batch.mask_bt.to(act.device)
    special = batch.special_bt.to(act.device)
    keep = mask if include_special else mask & ~special
    if pooling == "none":
        item, pos = keep.nonzero(as_tuple=True)
        return act[item, pos], item, pos.to(torch.int32), special[item, pos]
    if pooling == "mean":
        keep = torch.where(keep.any(1, keepdim=True), keep, mask)  # an item of specials only: use them
        w = keep.unsqueeze(-1).to(act.dtype)
        rows = (act * w).sum(1) / w.sum(1)
        return rows, items, torch.full((b,), -1, dtype=torch.int32, device=act.device), torch.zeros_like(items, dtype=torch.bool)
    if pooling == "cls":
        if not bool(special[:, 0].all()):
            raise InputError(f"site {site} has no CLS/BOS token at position 0; use pooling='mean'")
        pos = torch.zeros(b, dtype=torch.int64, device=act.device)
    else:  # eos: the last real position (right padding)
        if site.modality is Modality.IMAGE:
            raise InputError(f"pooling='eos' is for text; image site {site} has no EOS; use 'cls' or 'mean'")
        pos = mask.sum(1) - 1
    return act[items, pos], items, pos.to(torch.int32), special[items, pos]


def _to_host(t: torch.Tensor) -> torch.Tensor:
    """Copy to the CPU; from CUDA through pinned memory, without blocking the stream."""
    if t.device.type != "cuda":
        return t
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def extract(encoder: Encoder | str, inputs: Sequence[Any], sites: Sequence[str] | str, pooling: str = "mean", *,
            include_special: bool = False, role: str | None = None, batch_size: int = 32,
            shard_examples: int = SHARD_EXAMPLES, shard_bytes: int = SHARD_BYTES,
            store_dir: str | Path | None = None, store_dtype: str = "fp32",
            on_error: str = "raise", on_nonfinite: str = "raise", device: str = "auto",
            dtype: str = "fp32", progress: bool = True) -> ExtractResult:
    """Extract activations at ``sites`` for ``inputs`` into resumable on-disk stores.

    ``inputs``: texts, PIL images / image paths, or Example records (with concept and language).
    ``pooling``: 'mean' (over content tokens), 'cls', 'eos', or 'none' for one row per token.
    ``batch_size`` halves automatically on out-of-memory. ``on_error``: 'raise' or 'skip' for
    unreadable images. Stores live under ``store_dir`` (default: the user cache). A shard holds at most
    ``shard_examples`` examples and ``shard_bytes`` bytes of rows, so memory does not grow with document length.

    >>> r = extract("offline:e5-small", ["a dog", "un perro"], ["text.layer.6.resid"])  # doctest: +SKIP
    >>> r["text.layer.6.resid"].shape                                                    # doctest: +SKIP
    (2, 384)
    """
    start_time = time.perf_counter()
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; use one of {POOLINGS}")
    if on_error not in ("raise", "skip") or on_nonfinite not in ("raise", "keep"):
        raise ValueError(f"on_error must be 'raise' or 'skip' (got {on_error!r}); "
                         f"on_nonfinite 'raise' or 'keep' (got {on_nonfinite!r})")
    if batch_size < 1 or shard_examples < 1 or shard_bytes < 1:
        raise ValueError(f"batch_size ({batch_size}), shard_examples ({shard_examples}) and shard_bytes "
                         f"({shard_bytes}) must be >= 1")
    if sites is None or (not isinstance(sites, str) and len(sites) == 0):
        raise InputError(f"no sites given (sites={sites!r}); name one or more, e.g. ['text.layer.6.resid']")
    rank, world, barrier = _dist()
    if isinstance(encoder, str):
        if device == "auto" and world > 1 and torch.cuda.is_available():
            device = f"cuda:{rank % torch.cuda.device_count()}"
        encoder = load_encoder(encoder, device=device, dtype=dtype)
    parsed = [encoder.check_site(s) for s in ([sites] if isinstance(sites, str) else sites)]
    repeated = sorted({str(s) for s in parsed if [str(p) for p in parsed].count(str(s)) > 1})
    if repeated:
        raise InputError(f"sites name {repeated} more than once (sites={[str(s) for s in parsed]}); each site gets "
                         "one store, so name each once")
    examples = as_examples(inputs)
    root = Path(store_dir) if store_dir is not None else cache_dir("stores")
    compute_name = {v: k for k, v in DTYPES.items()}[encoder.dtype]
    stores: dict[str, ActivationStore] = {}
    totals = {"computed": 0, "reused": 0, "truncated": 0}  # truncated: from the headers, all shards
    skipped: list[dict[str, Any]] = []
    for modality in sorted({s.modality for s in parsed}, key=lambda m: m.value):
        group = [s for s in parsed if s.modality is modality]
        exs = [(i, e) for i, e in enumerate(examples) if e.modality is modality]
        if not exs:
            raise InputError(f"sites {[str(s) for s in group]} read {modality.value}, but no input is a "
                             f"{modality.value}; give {modality.value} inputs or drop those sites")
        fp = fingerprint([e for _, e in exs])
        weights = weights_fingerprint(encoder.tower(modality).module)
        runner = _ShardRunner(encoder, modality, group, exs, pooling, include_special, role, batch_size, on_error,
                              on_nonfinite)
        rows, d = runner.plan_rows()
        row_bytes = d * STORE_DTYPES.get(store_dtype, torch.float32).itemsize       # StoreConfig checks the name
        starts = plan_shards(rows, row_bytes, shard_examples, shard_bytes)
        writers = {}
        for site in group:
            cfg = StoreConfig(encoder.name, weights, str(site), pooling, role if modality is Modality.TEXT else None,
                              include_special, store_dtype, compute_name, fp, len(exs), starts, batch_size)
            writers[str(site)] = StoreWriter(root / _slug(encoder.name) / f"{site}-{pooling}-{cfg.key}", cfg)
        records = [e.record() for _, e in exs]
        if rank == 0:
            for w in writers.values():
                w.start(records)
        barrier()
        mine = list(range(rank, next(iter(writers.values())).config.n_shards, world))  # this rank's shards
        done = [set(w.complete_shards(verify=True, indices=mine)) for w in writers.values()]
        todo = [s for s in mine if not all(s in d for d in done)]
        totals["reused"] += len(mine) - len(todo)
        runner.writers, runner.config = writers, next(iter(writers.values())).config
        from tqdm.auto import tqdm

        bar = tqdm(todo, desc=f"extract {modality.value} ({encoder.name})", unit="shard",
                   disable=not progress or rank != 0 or not todo)
        # Two helper threads: one prepares the next shard (image decoding, tokenising), one writes
        # the last shard (safetensors + checksum); the main thread keeps the model busy.
        with ThreadPoolExecutor(max_workers=1) as io, ThreadPoolExecutor(max_workers=1) as ahead:
            pending = []
            upcoming = ahead.submit(runner.prepare, todo[0]) if todo else None
            for k, _shard in enumerate(bar):
                prepared = upcoming.result()
                if k + 1 < len(todo):
                    upcoming = ahead.submit(runner.prepare, todo[k + 1])
                pending.append(runner.compute(prepared, io))
                while len(pending) > WRITES_IN_FLIGHT:     # back-pressure: a slow disk holds the model, not memory
                    pending.pop(0).result()
                bar.set_postfix(batch=runner.batch_size)
            for fut in pending:
                fut.result()
        totals["computed"] += len(todo)
        barrier()
        if rank == 0:
            for w in writers.values():
                w.finish()
        barrier()
        for name, w in writers.items():
            stores[name] = ActivationStore(w.root)
        header = stores[str(group[0])].header
        if on_error == "raise" and header.get("skipped"):     # a store made with on_error='skip', reused
            raise InputError(f"the store {stores[str(group[0])].path} was written with on_error='skip' and lacks "
                             f"{len(header['skipped'])} unreadable input(s) (e.g. {header['skipped'][0]['id']!r}); "
                             "pass on_error='skip' to use it, or fix those inputs (a new dataset, a new store)")
        bad = sorted({i for s in stores.values() for info in s.shards for i in info.get("nonfinite", [])})
        if on_nonfinite == "raise" and bad:
            raise NonFiniteError(f"the stored activations hold NaN or inf for example ids {bad[:10]} (written with "
                                 "on_nonfinite='keep'); pass on_nonfinite='keep' to use them, or try dtype='fp32'")
        skipped += header.get("skipped", [])
        totals["truncated"] += header.get("truncated", 0)
    return ExtractResult(stores, totals["computed"], totals["reused"], totals["truncated"], skipped,
                         time.perf_counter() - start_time)


WRITES_IN_FLIGHT = 1
"""Shard writes queued while the model computes the next shard: at most this + 1 shards per site in memory."""


class _ShardRunner:
    """Computes one shard: loads inputs, batches them, runs the encoder, pools, writes."""

    def __init__(self, encoder: Encoder, modality: Modality, sites: list[Site], exs: list[tuple[int, Example]],
                 pooling: str, include_special: bool, role: str | None, batch_size: int, on_error: str,
                 on_nonfinite: str):
        self.encoder, self.modality, self.sites = encoder, modality, sites
        self.exs, self.pooling, self.include_special, self.role = exs, pooling, include_special, role
        self.batch_size, self.on_error, self.on_nonfinite = batch_size, on_error, on_nonfinite
        self.tower = encoder.tower(modality)
        self.writers: dict[str, StoreWriter] = {}
        self.config: StoreConfig | None = None

    def plan_rows(self) -> tuple[list[int], int]:
        """Rows per example and the widest site's width, for planning shards in bytes. Pooled rows are one per
        example and planned by count alone (1,024 rows stay under 64 MiB up to d = 16,384), with no extra forward
        pass. Per-token rows: the first few inputs through the model (8, so that a batch size chosen for the whole
        GPU cannot run it out of memory) give the widths and an image's rows; text rows are counted by tokenising
        every text."""
        if self.pooling != "none":
            return [1] * len(self.exs), 0
        _, contents, _ = self._load(0, min(self.batch_size, 8, len(self.exs)))
        if not contents:                                   # nothing readable in the first batch: plan by count
            return [1] * len(self.exs), 0
        batch = self.tower.prepare(contents, role=self.role)
        acts = self.encoder.run(self.modality, batch.to(self.encoder.device), self.sites)
        shapes = [pool_rows(acts[str(s)], batch, self.pooling, self.include_special, s)[0].shape for s in self.sites]
        d = max(int(np.prod(shape[1:])) for shape in shapes)
        if self.modality is Modality.IMAGE:                # every image has the same number of patches
            return [-(-max(shape[0] for shape in shapes) // len(contents))] * len(self.exs), d
        counts = []
        for i in range(0, len(self.exs), 256):
            b = self.tower.prepare([e.content for _, e in self.exs[i:i + 256]], role=self.role)
            keep = b.mask_bt if self.include_special else b.mask_bt & ~b.special_bt
            counts += keep.sum(1).tolist()
        return counts, d

    def _load(self, start: int, stop: int) -> tuple[list[int], list[Any], list[dict[str, Any]]]:
        local, contents, skipped = [], [], []
        for j in range(start, stop):
            idx, ex = self.exs[j]
            if self.modality is Modality.TEXT:
                local.append(j)
                contents.append(ex.content)
                continue
            try:
                contents.append(load_image(ex.content, f"input item {idx} (id {ex.id!r})"))
                local.append(j)
            except InputError as e:
                if self.on_error == "raise":
                    raise
                skipped.append({"index": j, "id": ex.id, "reason": str(e)})
        return local, contents, skipped

    def prepare(self, shard: int) -> _Prepared:
        """Load and tokenise/transform one shard's inputs on the CPU (runs ahead, in a thread)."""
        local, contents, skipped = self._load(*self.config.shard_range(shard))
        size = self.batch_size
        batches = [self.tower.prepare(contents[i : i + size], role=self.role) for i in range(0, len(contents), size)]
        return _Prepared(shard, local, contents, skipped, size, batches)

    def _forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        try:
            return self.encoder.run(self.modality, batch.to(self.encoder.device), self.sites)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not _is_oom(e) or len(batch.mask_bt) == 1:
                raise
            if self.encoder.device.type == "cuda":
                torch.cuda.empty_cache()
            raise _Backoff() from e

    def compute(self, prep: _Prepared, io: ThreadPoolExecutor):
        """Run the model over a prepared shard, pool each site, and queue the shard's write."""
        shard, local, contents, skipped = prep.shard, prep.local, prep.contents, prep.skipped
        parts: dict[str, list[tuple]] = {str(s): [] for s in self.sites}
        tokens: dict[str, list[str]] = {str(s): [] for s in self.sites}
        truncated, i, smallest = 0, 0, self.batch_size
        ready = dict(zip(range(0, len(contents), prep.size), prep.batches, strict=True))
        while i < len(contents):
            size = self.batch_size
            batch = ready.get(i) if size == prep.size else None
            if batch is None:  # re-batch after an out-of-memory back-off
                batch = self.tower.prepare(contents[i : i + size], role=self.role)
            try:
                acts = self._forward(batch)
            except _Backoff:
                self.batch_size = max(1, self.batch_size // 2)
                continue
            truncated += batch.truncated
            smallest = min(smallest, size)                 # a batch halved after running out of memory
            for site in self.sites:
                rows, item, pos, spec = pool_rows(acts[str(site)], batch, self.pooling, self.include_special, site)
                rows, item, pos, spec = (_to_host(t) for t in (rows, item, pos, spec))
                parts[str(site)].append((rows, item + i, pos, spec))
                if self.pooling == "none" and rows.dim() == 2 and site.layer is not None:
                    per_item = batch.tokens
                    tokens[str(site)] += [per_item[a][p] for a, p in zip(item.tolist(), pos.tolist(), strict=True)]
            i += len(batch.mask_bt)
        if self.encoder.device.type == "cuda":
            torch.cuda.current_stream(self.encoder.device).synchronize()  # pinned copies have landed
        jobs = []
        for site in self.sites:
            name = str(site)
            rows, item, pos, spec = (_column(parts[name], j, empty) for j, empty in enumerate(_EMPTY))
            rows = rows.float()
            example = torch.as_tensor(local, dtype=torch.int64)[item] if len(local) else item
            bad = sorted({self.exs[int(e)][1].id for e in example[~torch.isfinite(rows).all(1)]}) if len(rows) else []
            if bad and self.on_nonfinite == "raise":
                raise NonFiniteError(f"non-finite activations at {name} for example ids {bad[:10]}"
                                     f"{' ...' if len(bad) > 10 else ''}; try dtype='fp32'")
            toks = tokens[name] if self.pooling == "none" and site.layer is not None else None
            extra = {"truncated": truncated, "skipped": skipped, "nonfinite": bad, "batch_size": smallest,
                     "device": str(self.encoder.device)}
            jobs.append((self.writers[name], rows, example, pos, spec, toks, extra))
        return io.submit(lambda: [w.write_shard(shard, *args) for w, *args in jobs])


# Empty stand-ins for (rows, batch item, position, special) when a shard produced no rows.
_EMPTY = (torch.zeros(0, 0), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.int32),
          torch.zeros(0, dtype=torch.bool))


def _column(parts: list[tuple], j: int, empty: torch.Tensor) -> torch.Tensor:
    """Concatenate column ``j`` of a shard's per-batch (rows, item, position, special) parts."""
    return torch.cat([p[j] for p in parts]) if parts else empty


@dataclass
class _Prepared:
    """One shard's inputs, loaded and batched on the CPU ahead of the forward pass."""

    shard: int
    local: list[int]
    contents: list[Any]
    skipped: list[dict[str, Any]]
    size: int
    batches: list[Batch]


class _Backoff(Exception):
    """Internal: the batch did not fit; halve and retry."""
