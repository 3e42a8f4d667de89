"""ActivationStore: one site's activations on disk, sharded, checksummed, resumable.

Layout (docs/disk-layout.md)::

    <root>/<model-slug>/<site>-<pooling>-<hash16>/
        metadata.json          schema version, config, status, manifest of complete shards
        examples.jsonl         one line per input example: index, id, modality, concept, language
        shards/00000.safetensors   acts (rows, d), example (rows,), position (rows,), special (rows,)
        shards/00000.tokens.json   token strings per row (per-token stores only)
        shards/00000.json          sidecar: rows, example range, sha256 and size; written last
        stats.safetensors      mean (d,) and mean norm, computed once on first use

A shard counts only when its sidecar exists and its file matches the recorded size (and, when
verified, the SHA-256). A crash leaves at most a shard without a sidecar; it is recomputed.

Identity: the folder name ends in the store's key (``disk.artifact_key`` of its ``StoreConfig``: model and
weights fingerprint, site, pooling, role, special tokens, dtypes, data fingerprint). Integrity: every file a
reader opens (shards, token lists, the examples table, the statistics) is checked against its recorded
SHA-256 the first time this process opens it; a mismatch raises CorruptFileError with the fix.
"""

from __future__ import annotations

import functools
import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfeatures.activations.layout import (  # noqa: F401 - the store's public vocabulary, re-exported
    METADATA,
    RERUN,
    STORE_DTYPES,
    Provenance,
    Stats,
    StoreConfig,
    shard_checksum,
    shard_info,
    shard_paths,
)
from mmfeatures.activations.writer import StoreWriter  # noqa: F401
from mmfeatures.disk import (
    check_file,
    file_sha256,
    read_checked,
    read_header,
    read_json,
    release_freed_memory,
    write_text_atomic,
)
from mmfeatures.errors import CorruptFileError, InputError


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


SHUFFLE_BYTES = 512 << 20
"""The default shuffle buffer of ``ActivationStore.batches`` (training's): 512 MiB of float32 rows."""


class ActivationStore:
    """Read side: arrays, provenance, random access, statistics and shuffled batches.

    >>> store = ActivationStore(path)                               # doctest: +SKIP
    >>> store.d, store.n_rows, store.select(language="ja")[:3]      # doctest: +SKIP
    """

    CACHED_SHARDS = 4
    """Recently read shards kept per store (memory: at most this many shards)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        fix = f"delete {self.path} and {RERUN}"
        header = read_header(self.path, METADATA, fix=fix)
        if header is None:
            raise FileNotFoundError(f"no activation store at {self.path} (no {METADATA}); pass a folder that "
                                    "`mmfeatures extract` or extract() printed")
        if header.get("status") != "complete":
            raise CorruptFileError(f"{self.path} is an unfinished store (status {header.get('status')!r}); "
                                   "rerun the same extract() call to complete it")
        self.config = StoreConfig.from_header(header, self.path)
        shards = header.get("shards")
        if not isinstance(shards, list) or not all(isinstance(x, dict) and "rows" in x for x in shards):
            raise CorruptFileError(f"{self.path / METADATA} has no valid 'shards' manifest; {fix}")
        if len(shards) != self.config.n_shards:
            raise CorruptFileError(f"{self.path / METADATA} lists {len(shards)} shards where its config needs "
                                   f"{self.config.n_shards}; {fix}")
        rows = sum(int(x["rows"]) for x in shards)
        if header.get("n_rows") != rows:
            raise CorruptFileError(f"{self.path / METADATA} says n_rows = {header.get('n_rows')} but its shards hold "
                                   f"{rows} rows; {fix}")
        if header.get("key") != self.config.key:
            raise CorruptFileError(f"{self.path / METADATA} records key {header.get('key')!r} but its config hashes "
                                   f"to {self.config.key!r}: the file was edited or damaged; {fix}")
        self.header = header
        self.shards: list[dict[str, Any]] = shards
        self.d: int = int(header["d"])
        self.n_rows: int = rows
        self._offsets = np.cumsum([0] + [int(x["rows"]) for x in shards])
        self._cache: OrderedDict[int, dict[str, torch.Tensor]] = OrderedDict()

    @property
    def key(self) -> str:
        """The store's identity (``disk.artifact_key`` of its config); SAEs and results record it."""
        return self.config.key

    def __repr__(self) -> str:
        return (f"ActivationStore({self.config.model}, {self.config.site}, pooling={self.config.pooling}, "
                f"rows={self.n_rows}, d={self.d})")

    def __len__(self) -> int:
        return self.n_rows

    @functools.cached_property
    def examples(self) -> list[dict[str, Any]]:
        path = self.path / "examples.jsonl"
        check_file(path, self.header.get("examples_sha256"), f"delete {self.path} and {RERUN}")
        out = []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise CorruptFileError(f"{path} line {number} is damaged ({e}); delete {self.path} and "
                                           f"{RERUN}") from None
        if len(out) != self.config.n_examples:
            raise CorruptFileError(f"{path} holds {len(out)} examples, its config {self.config.n_examples}; "
                                   f"delete {self.path} and {RERUN}")
        return out

    def verify(self) -> list[int]:
        """Indices of shards whose file is missing, truncated or fails its checksum."""
        return [s["index"] for s in self.shards if shard_info(self.path, s["index"], verify=True) is None]

    def _shard(self, index: int) -> dict[str, torch.Tensor]:
        """A shard's tensors (the few most recent are kept), checked on this process's first read."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        return self._remember(index, self._read(index))

    def _remember(self, index: int, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._cache[index] = tensors
        while len(self._cache) > self.CACHED_SHARDS:
            self._cache.popitem(last=False)
        return tensors

    def _read(self, index: int) -> dict[str, torch.Tensor]:
        """Read, verify (XXH3-128, once per process) and parse one shard; touches no shared state, so it may
        run in a helper thread."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        data_path = shard_paths(self.path, index)[0]
        info = self.shards[index]
        data = read_checked(data_path, shard_checksum(info), RERUN)
        try:
            tensors = load(data)
        except (SafetensorError, ValueError, RuntimeError) as e:
            raise CorruptFileError(f"shard {data_path} cannot be read ({e}); {RERUN}") from None
        acts = tensors.get("acts")
        if acts is None or acts.dim() != 2 or acts.shape[0] != int(info["rows"]) or \
                (acts.shape[0] and acts.shape[1] != self.d):
            shape = None if acts is None else tuple(acts.shape)
            raise CorruptFileError(f"shard {data_path} holds acts of shape {shape} but the manifest says "
                                   f"({info['rows']}, {self.d}); {RERUN}")
        return tensors

    READ_AHEAD = 2
    """Shards read and verified ahead of the caller, each in its own helper thread (hashing releases the GIL)."""

    def iter_shards(self, indices: Sequence[int] | None = None) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """(index, tensors) for ``indices`` (default all) in order. The next ``READ_AHEAD`` shards are read and
        verified in helper threads while the caller works on this one, so the checksums of a first read overlap
        with real work. At most ``READ_AHEAD`` shards are in memory beyond the caller's."""
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        order = list(range(len(self.shards)) if indices is None else indices)
        if not order:
            return
        with ThreadPoolExecutor(max_workers=self.READ_AHEAD) as pool:
            ahead = deque(pool.submit(self._cached_or_read, i) for i in order[:self.READ_AHEAD])
            for k, index in enumerate(order):
                tensors = ahead.popleft().result()
                if k + self.READ_AHEAD < len(order):
                    ahead.append(pool.submit(self._cached_or_read, order[k + self.READ_AHEAD]))
                yield index, tensors             # not kept in the shard cache: a pass holds only what it reads
        release_freed_memory()

    def _cached_or_read(self, index: int) -> dict[str, torch.Tensor]:
        cached = self._cache.get(index)
        return cached if cached is not None else self._read(index)

    def shard_acts(self, index: int) -> torch.Tensor:
        return self._shard(index)["acts"]

    def array(self, dtype=np.float32) -> np.ndarray:
        """All rows as one (n_rows, d) array (loads everything; see batches() for streaming)."""
        if not self.shards:
            return np.zeros((0, self.d), dtype)
        return torch.cat([t["acts"].float() for _, t in self.iter_shards()]).numpy().astype(dtype, copy=False)

    def rows(self, index: Sequence[int] | np.ndarray) -> torch.Tensor:
        """(len(index), d) float32 rows by global row index, in the order given."""
        idx = np.asarray(index, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_rows):
            raise IndexError(f"row index out of range 0..{self.n_rows - 1}")
        out = torch.empty(len(idx), self.d, dtype=torch.float32)
        shard_of = np.searchsorted(self._offsets, idx, side="right") - 1
        for s in np.unique(shard_of):
            sel = np.nonzero(shard_of == s)[0]
            out[sel] = self.shard_acts(int(s))[torch.from_numpy(idx[sel] - self._offsets[s])].float()
        return out

    def provenance(self) -> Provenance:
        """Per-row provenance (read once: a complete store never changes)."""
        return self._provenance

    def _tokens(self, index: int, n_rows: int) -> list[str]:
        path = shard_paths(self.path, index)[2]
        recorded = shard_checksum(self.shards[index], "tokens")
        if not recorded and path.exists():             # a token file whose checksum was removed: not trusted
            raise CorruptFileError(f"{path} has no recorded checksum in its shard's sidecar (tokens_checksum is "
                                   f"{recorded!r}); {RERUN}")
        if not recorded:                                # a store without token strings (pooled, or written)
            return [""] * n_rows
        check_file(path, recorded, RERUN)
        tokens = read_json(path, RERUN)
        if not isinstance(tokens, list) or len(tokens) != n_rows:
            raise CorruptFileError(f"{path} holds {len(tokens) if isinstance(tokens, list) else tokens!r} tokens "
                                   f"for {n_rows} rows; {RERUN}")
        return tokens

    @functools.cached_property
    def _provenance(self) -> Provenance:
        ex, pos, spec, tokens = [], [], [], []
        for i, shard in self.iter_shards():
            ex.append(shard["example"].numpy())
            pos.append(shard["position"].numpy())
            spec.append(shard["special"].numpy())
            tokens += self._tokens(i, len(ex[-1]))
        return Provenance(_cat(ex, np.int64), _cat(pos, np.int32), _cat(spec, bool), tokens, self.examples)

    @functools.cached_property
    def _row_example(self) -> np.ndarray:
        """(n_rows,) the example index of every row; only the small 'example' tensors are read (each file is
        checked against its checksum first, once per process)."""
        from safetensors import safe_open

        parts = []
        for i in range(len(self.shards)):
            data_path = shard_paths(self.path, i)[0]
            if i in self._cache:
                parts.append(self._cache[i]["example"].numpy())
                continue
            check_file(data_path, shard_checksum(self.shards[i]), RERUN)
            with safe_open(str(data_path), framework="np") as f:
                parts.append(f.get_tensor("example"))
        return _cat(parts, np.int64)

    def select(self, concept: str | None = None, language: str | None = None,
               modality: str | None = None, example_id: str | None = None) -> np.ndarray:
        """Row indices whose example matches every given field; a value that no example has is an error naming the
        closest one (language 'jp': did you mean 'ja'?), not an empty selection."""
        import difflib

        from mmfeatures.datasets.languages import suggest_language

        keep = np.ones(len(self.examples), dtype=bool)
        for key, want in (("concept", concept), ("language", language), ("modality", modality), ("id", example_id)):
            if want is None:
                continue
            have = np.array([e[key] == want for e in self.examples])
            if not have.any():
                values = sorted({str(e[key]) for e in self.examples if e[key] is not None})
                close = (suggest_language(want, values) if key == "language" else
                         next(iter(difflib.get_close_matches(str(want), values, n=1)), None))
                hint = f"did you mean {close!r}? " if close else ""
                raise InputError(f"no example of {self.path} has {key} {want!r}; {hint}it has "
                                 f"{', '.join(values[:12]) or 'none'}{' ...' if len(values) > 12 else ''}")
            keep &= have
        return np.nonzero(keep[self._row_example])[0]

    def _buffers(self, order: list[int], most: int, budget: int) -> list[list[int]]:
        """``order`` cut into consecutive groups of at most ``most`` shards whose float32 rows stay within ``budget``
        bytes (a group always takes one shard, however large)."""
        groups: list[list[int]] = []
        used = 0
        for i in order:
            nbytes = (self._offsets[i + 1] - self._offsets[i]) * self.d * 4
            if groups and len(groups[-1]) < most and used + nbytes <= budget:
                groups[-1].append(i)
                used += nbytes
            else:
                groups.append([i])
                used = nbytes
        return groups

    def stats(self) -> Stats:
        """Mean and mean norm over all rows, computed once and stored in stats.safetensors beside a record
        of the shards it came from; recomputed when any shard was."""
        from safetensors.torch import load_file, save_file

        path, record = self.path / "stats.safetensors", self.path / "stats.json"
        shards = [shard_checksum(s) for s in self.shards]
        saved = read_json(record, f"delete {record}; statistics are recomputed on next use") \
            if record.is_file() and path.is_file() else None
        if saved is not None and saved.get("shards") == shards:
            check_file(path, saved.get("sha256"), f"delete {path} and {record}; statistics are recomputed on next use")
            t = load_file(str(path))
            return Stats(t["mean"], float(t["mean_norm"]), float(t["mean_sq_norm"]), int(t["n_rows"]),
                         int(t["n_nonfinite"]))
        total = torch.zeros(self.d, dtype=torch.float64)
        norm_sum = sq_sum = 0.0
        n = bad = 0
        for _, shard in self.iter_shards():
            a = shard["acts"].double()
            finite = torch.isfinite(a).all(1)
            bad += int((~finite).sum())
            a = a[finite]
            n += len(a)
            total += a.sum(0)
            sq = a.pow(2).sum(1)
            norm_sum += float(sq.sqrt().sum())
            sq_sum += float(sq.sum())
        stats = Stats((total / max(n, 1)).float(), norm_sum / max(n, 1), sq_sum / max(n, 1), n, bad)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        save_file({"mean": stats.mean_d, "mean_norm": torch.tensor(stats.mean_norm),
                   "mean_sq_norm": torch.tensor(stats.mean_sq_norm), "n_rows": torch.tensor(stats.n_rows),
                   "n_nonfinite": torch.tensor(stats.n_nonfinite)}, str(tmp))
        os.replace(tmp, path)
        write_text_atomic(record, json.dumps({"sha256": file_sha256(path), "shards": shards}))
        return stats

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0, buffer_shards: int = 4,
                normalize: str = "none", drop_last: bool = False, start_batch: int = 0,
                buffer_bytes: int = SHUFFLE_BYTES) -> Iterator[torch.Tensor]:
        """(batch_size, d) float32 batches, shuffled within a buffer of at most ``buffer_shards`` shards and about
        ``buffer_bytes`` of float32 rows (never less than one shard): memory follows bytes, not the number of
        examples, so a store of long documents does not fill it.

        ``normalize``: 'none'; 'center' (subtract the mean); 'scale' (multiply by
        ``input_scale()``, so the mean squared norm is d, as Anthropic's SAEs are trained).
        ``start_batch`` skips that many batches without reading the shards they come from (the
        shuffle depends only on row counts), so a resumed job starts where it stopped, cheaply.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"batch_size = {batch_size!r}; give a whole number of rows >= 1, e.g. 4096")
        if normalize not in ("none", "center", "scale"):
            raise InputError(f"normalize={normalize!r}; use 'none', 'center' or 'scale'")
        if isinstance(buffer_bytes, bool) or not isinstance(buffer_bytes, (int, np.integer)) or buffer_bytes < 1:
            raise InputError(f"buffer_bytes = {buffer_bytes!r}; give a number of bytes >= 1, e.g. {SHUFFLE_BYTES}")
        return self._batches(int(batch_size), shuffle, seed, buffer_shards, normalize, drop_last, start_batch,
                             int(buffer_bytes))

    def _batches(self, batch_size: int, shuffle: bool, seed: int, buffer_shards: int, normalize: str,
                 drop_last: bool, start_batch: int, buffer_bytes: int) -> Iterator[torch.Tensor]:
        stats = self.stats() if normalize != "none" else None
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.shards)) if shuffle else np.arange(len(self.shards))
        carry_idx = np.zeros(0, dtype=np.int64)  # global row ids left over from the last buffer
        carry: torch.Tensor | None = torch.zeros(0, self.d)  # their data (None while skipping)
        groups = self._buffers([int(i) for i in order], max(buffer_shards, 1), buffer_bytes)
        stream = self.iter_shards([i for g in self._groups_read(groups, batch_size, start_batch) for i in groups[g]])
        produced = 0
        for group in groups:
            idx = np.concatenate([carry_idx, *[np.arange(self._offsets[i], self._offsets[i + 1]) for i in group]])
            perm = rng.permutation(len(idx)) if shuffle else np.arange(len(idx))
            n_full = len(idx) // batch_size
            if produced + n_full <= start_batch:  # every batch of this buffer is skipped: read nothing
                produced += n_full
                carry_idx, carry = idx[perm[n_full * batch_size :]], None
                continue
            head = carry if carry is not None else self.rows(carry_idx)
            buf = torch.cat([head, *[next(stream)[1]["acts"].float() for _ in group]])[torch.from_numpy(perm)]
            for b in range(n_full):
                if produced >= start_batch:
                    yield self._normalise(buf[b * batch_size : (b + 1) * batch_size], stats, normalize)
                produced += 1
            carry_idx, carry = idx[perm[n_full * batch_size :]], buf[n_full * batch_size :]
        if len(carry_idx) and not drop_last and produced >= start_batch:
            yield self._normalise(carry if carry is not None else self.rows(carry_idx), stats, normalize)

    def _groups_read(self, groups: list[list[int]], batch_size: int, start_batch: int) -> list[int]:
        """The buffer groups ``_batches`` reads (not wholly skipped by ``start_batch``), from row counts alone."""
        read, carry, produced = [], 0, 0
        for g, group in enumerate(groups):
            n = carry + sum(int(self.shards[i]["rows"]) for i in group)
            n_full = n // batch_size
            if produced + n_full > start_batch:
                read.append(g)
            produced, carry = produced + n_full, n - n_full * batch_size
        return read

    def _normalise(self, x: torch.Tensor, stats: Stats | None, how: str) -> torch.Tensor:
        if how == "center":
            return x - stats.mean_d
        if how == "scale":
            return x * self.input_scale()
        return x

    def input_scale(self) -> float:
        """The factor that makes the rows' mean squared norm equal d."""
        return (self.d / max(self.stats().mean_sq_norm, 1e-24)) ** 0.5
