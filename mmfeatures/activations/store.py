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
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfeatures.disk import (
    artifact_key,
    check_file,
    check_key,
    file_sha256,
    read_header,
    read_json,
    remove_stale_temporaries,
    write_header,
    write_text_atomic,
)
from mmfeatures.errors import CorruptFileError, InputError

METADATA = "metadata.json"
STORE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


RERUN = "rerun the same extract() call (or `mmfeatures extract`) to recompute it"


@dataclass(frozen=True)
class StoreConfig:
    """Everything that determines a store's content, and nothing else; its key names the folder."""

    model: str
    """Registry name of the encoder."""
    weights: str
    """Fingerprint of the tower's weights (``weights_fingerprint``): a random-init copy or another
    checkpoint under the same name gets another store."""
    site: str
    """Hook site, e.g. 'text.layer.6.resid'."""
    pooling: str
    """'mean', 'cls', 'eos' or 'none' (per-token rows)."""
    role: str | None
    """The text role ('query', 'passage', 'raw' or None for the model's default): it sets the prompt
    prefix, so it changes the tokens."""
    include_special: bool
    """Whether BOS/CLS/EOS positions enter pooled means and per-token rows."""
    store_dtype: str
    """'fp32' or 'bf16' on disk (never fp16: activations overflow it)."""
    compute_dtype: str
    """Autocast precision of the forward pass."""
    dataset: str
    """Fingerprint of the examples (ids, provenance, content)."""
    n_examples: int
    shard_examples: int
    """Examples per shard (the layout of the files)."""

    def __post_init__(self):
        if self.store_dtype not in STORE_DTYPES:
            raise ValueError(f"store_dtype {self.store_dtype!r} is not allowed; use 'fp32' or 'bf16' "
                             "(fp16 overflows on activation outliers)")
        if self.shard_examples < 1:
            raise ValueError(f"shard_examples must be >= 1, got {self.shard_examples}")

    @property
    def key(self) -> str:
        return artifact_key("activation-store", asdict(self))

    @classmethod
    def from_header(cls, header: dict[str, Any], path: Path) -> StoreConfig:
        """The config a store's metadata records; an older or damaged one names the fix."""
        config = header.get("config")
        names = {f.name for f in fields(cls)}
        if not isinstance(config, dict) or set(config) != names:
            have = sorted(config) if isinstance(config, dict) else config
            raise CorruptFileError(f"{path / METADATA} describes a store of another layout (config fields {have}; "
                                   f"this mmfeatures expects {sorted(names)}); it was written by another version: "
                                   f"delete {path} and {RERUN}")
        return cls(**config)

    @property
    def n_shards(self) -> int:
        return -(-self.n_examples // self.shard_examples)

    def shard_range(self, index: int) -> tuple[int, int]:
        start = index * self.shard_examples
        return start, min(start + self.shard_examples, self.n_examples)


@dataclass(frozen=True)
class Stats:
    """Normalisation statistics over all rows of a store."""

    mean_d: torch.Tensor
    mean_norm: float
    """Mean L2 norm of the rows (before centring)."""
    mean_sq_norm: float
    """Mean squared L2 norm of the rows; 'scale' makes it d (Anthropic's input scaling)."""
    n_rows: int
    """Finite rows the statistics are over."""
    n_nonfinite: int = 0
    """Rows with NaN/inf, left out of the statistics (kept in the store as extracted)."""


@dataclass(frozen=True)
class Provenance:
    """One entry per row: which example, where in it, and what the example was."""

    example_index: np.ndarray
    position: np.ndarray
    """Token/patch position, or -1 for pooled rows."""
    special: np.ndarray
    token: list[str]
    """Token string per row ('' for pooled rows)."""
    examples: list[dict[str, Any]]
    """The examples table, indexed by example_index."""

    def __len__(self) -> int:
        return len(self.example_index)

    def column(self, name: str) -> list[Any]:
        """A per-row column of the examples table, e.g. 'id', 'concept', 'language', 'modality'."""
        return [self.examples[i][name] for i in self.example_index]

    def to_pandas(self):
        import pandas as pd

        df = pd.DataFrame({"example_index": self.example_index, "position": self.position,
                           "special": self.special, "token": self.token})
        for name in ("id", "concept", "language", "modality"):
            df[name] = self.column(name)
        return df


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _shard_paths(root: Path, index: int) -> tuple[Path, Path, Path]:
    stem = root / "shards" / f"{index:05d}"
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json"), Path(f"{stem}.tokens.json")


class StoreWriter:
    """Writes one store's shards; used by extract(). Safe to resume, and to share across ranks."""

    def __init__(self, root: Path, config: StoreConfig):
        self.root, self.config = root, config

    def start(self, examples: Sequence[dict[str, Any]]) -> None:
        """Create the folder, examples table and a 'partial' header if they do not exist yet; clean what a
        killed run left behind (temporary files of dead processes)."""
        (self.root / "shards").mkdir(parents=True, exist_ok=True)
        for folder in (self.root, self.root / "shards"):
            remove_stale_temporaries(folder)
        header = read_header(self.root, METADATA, fix=f"delete {self.root} and {RERUN}")
        check_key(self.root, "activation store", self.config.key, f"{self.config.model} {self.config.site}", header)
        lines = "".join(json.dumps({"index": i, **ex}, ensure_ascii=False) + "\n" for i, ex in enumerate(examples))
        path = self.root / "examples.jsonl"
        if not path.is_file() or path.read_text(encoding="utf-8") != lines:
            write_text_atomic(path, lines)
        if header is None:
            write_header(self.root, "activation-store", filename=METADATA, status="partial", key=self.config.key,
                         config=asdict(self.config))

    def complete_shards(self, verify: bool = True, indices: Sequence[int] | None = None) -> dict[int, dict[str, Any]]:
        """Sidecars of the shards (all, or ``indices``) that are complete, with matching checksums if verify."""
        done = {}
        for index in range(self.config.n_shards) if indices is None else indices:
            info = shard_info(self.root, index, verify=verify)
            if info is not None:
                done[index] = info
        return done

    def write_shard(self, index: int, acts_nd: torch.Tensor, example_n: torch.Tensor, position_n: torch.Tensor,
                    special_n: torch.Tensor, tokens: list[str] | None, extra: dict[str, Any]) -> dict[str, Any]:
        from safetensors.torch import save_file

        data_path, side_path, tok_path = _shard_paths(self.root, index)
        tensors = {"acts": acts_nd.to(STORE_DTYPES[self.config.store_dtype]).contiguous(),
                   "example": example_n.to(torch.int64).contiguous(),
                   "position": position_n.to(torch.int32).contiguous(),
                   "special": special_n.to(torch.bool).contiguous()}
        tmp = data_path.with_name(f".{data_path.name}.tmp-{os.getpid()}")
        save_file(tensors, str(tmp), metadata={"site": self.config.site, "shard": str(index)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, data_path)
        tokens_sha = None
        if tokens is not None:
            write_text_atomic(tok_path, json.dumps(tokens, ensure_ascii=False))
            tokens_sha = file_sha256(tok_path)
        start, stop = self.config.shard_range(index)
        info = {"index": index, "examples": [start, stop], "rows": int(acts_nd.shape[0]),
                "d": int(acts_nd.shape[1]), "nbytes": data_path.stat().st_size,
                "sha256": file_sha256(data_path), "tokens_sha256": tokens_sha, **extra}
        write_text_atomic(side_path, json.dumps(info, ensure_ascii=False))  # the completion marker
        return info

    def finish(self) -> dict[str, Any]:
        """Mark the store complete once every shard is; returns the header."""
        done = self.complete_shards(verify=False)
        missing = [i for i in range(self.config.n_shards) if i not in done]
        assert not missing, f"cannot finish {self.root}: shards {missing[:5]} are incomplete"
        manifest = [done[i] for i in range(self.config.n_shards)]
        return write_header(
            self.root, "activation-store", filename=METADATA, status="complete", key=self.config.key,
            config=asdict(self.config), examples_sha256=file_sha256(self.root / "examples.jsonl"),
            d=max((s["d"] for s in manifest), default=0), n_rows=sum(s["rows"] for s in manifest),
            truncated=sum(s.get("truncated", 0) for s in manifest),
            skipped=[x for s in manifest for x in s.get("skipped", [])], shards=manifest)


def shard_info(root: Path, index: int, verify: bool) -> dict[str, Any] | None:
    """A shard's sidecar if the shard is complete and intact, else None."""
    data_path, side_path, tok_path = _shard_paths(root, index)
    try:
        info = json.loads(side_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None                                    # no (or a torn) completion marker: recompute the shard
    if not isinstance(info, dict) or not data_path.is_file() or data_path.stat().st_size != info.get("nbytes"):
        return None
    if verify and file_sha256(data_path) != info.get("sha256"):
        return None
    tokens = info.get("tokens_sha256")
    if verify and tokens and (not tok_path.is_file() or file_sha256(tok_path) != tokens):
        return None
    return info


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
        """A shard's tensors, checked against its SHA-256 on this process's first read."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        from safetensors import SafetensorError
        from safetensors.torch import load

        data_path = _shard_paths(self.path, index)[0]
        info = self.shards[index]
        check_file(data_path, info.get("sha256"), RERUN)
        try:
            tensors = load(data_path.read_bytes())
        except (SafetensorError, ValueError, RuntimeError) as e:
            raise CorruptFileError(f"shard {data_path} cannot be read ({e}); {RERUN}") from None
        acts = tensors.get("acts")
        if acts is None or acts.dim() != 2 or acts.shape[0] != int(info["rows"]) or \
                (acts.shape[0] and acts.shape[1] != self.d):
            shape = None if acts is None else tuple(acts.shape)
            raise CorruptFileError(f"shard {data_path} holds acts of shape {shape} but the manifest says "
                                   f"({info['rows']}, {self.d}); {RERUN}")
        self._cache[index] = tensors
        while len(self._cache) > self.CACHED_SHARDS:
            self._cache.popitem(last=False)
        return tensors

    def shard_acts(self, index: int) -> torch.Tensor:
        return self._shard(index)["acts"]

    def array(self, dtype=np.float32) -> np.ndarray:
        """All rows as one (n_rows, d) array (loads everything; see batches() for streaming)."""
        if not self.shards:
            return np.zeros((0, self.d), dtype)
        return torch.cat([self.shard_acts(i).float() for i in range(len(self.shards))]).numpy().astype(dtype, copy=False)

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
        path = _shard_paths(self.path, index)[2]
        sha = self.shards[index].get("tokens_sha256")
        if not sha:
            return [""] * n_rows
        check_file(path, sha, RERUN)
        tokens = read_json(path, RERUN)
        if not isinstance(tokens, list) or len(tokens) != n_rows:
            raise CorruptFileError(f"{path} holds {len(tokens) if isinstance(tokens, list) else tokens!r} tokens "
                                   f"for {n_rows} rows; {RERUN}")
        return tokens

    @functools.cached_property
    def _provenance(self) -> Provenance:
        ex, pos, spec, tokens = [], [], [], []
        for i in range(len(self.shards)):
            shard = self._shard(i)
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
            data_path = _shard_paths(self.path, i)[0]
            if i in self._cache:
                parts.append(self._cache[i]["example"].numpy())
                continue
            check_file(data_path, self.shards[i].get("sha256"), RERUN)
            with safe_open(str(data_path), framework="np") as f:
                parts.append(f.get_tensor("example"))
        return _cat(parts, np.int64)

    def select(self, concept: str | None = None, language: str | None = None,
               modality: str | None = None, example_id: str | None = None) -> np.ndarray:
        """Row indices whose example matches every given field."""
        keep = np.ones(len(self.examples), dtype=bool)
        for key, want in (("concept", concept), ("language", language), ("modality", modality), ("id", example_id)):
            if want is not None:
                keep &= np.array([e[key] == want for e in self.examples])
        return np.nonzero(keep[self._row_example])[0]

    def stats(self) -> Stats:
        """Mean and mean norm over all rows, computed once and stored in stats.safetensors beside a record
        of the shards it came from; recomputed when any shard was."""
        from safetensors.torch import load_file, save_file

        path, record = self.path / "stats.safetensors", self.path / "stats.json"
        shards = [s.get("sha256") for s in self.shards]
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
        for i in range(len(self.shards)):
            a = self.shard_acts(i).double()
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
                normalize: str = "none", drop_last: bool = False, start_batch: int = 0) -> Iterator[torch.Tensor]:
        """(batch_size, d) float32 batches; memory holds at most ``buffer_shards`` shards.

        ``normalize``: 'none'; 'center' (subtract the mean); 'scale' (multiply by
        ``input_scale()``, so the mean squared norm is d, as Anthropic's SAEs are trained).
        ``start_batch`` skips that many batches without reading the shards they come from (the
        shuffle depends only on row counts), so a resumed job starts where it stopped, cheaply.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"batch_size = {batch_size!r}; give a whole number of rows >= 1, e.g. 4096")
        if normalize not in ("none", "center", "scale"):
            raise InputError(f"normalize={normalize!r}; use 'none', 'center' or 'scale'")
        return self._batches(int(batch_size), shuffle, seed, buffer_shards, normalize, drop_last, start_batch)

    def _batches(self, batch_size: int, shuffle: bool, seed: int, buffer_shards: int, normalize: str,
                 drop_last: bool, start_batch: int) -> Iterator[torch.Tensor]:
        stats = self.stats() if normalize != "none" else None
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.shards)) if shuffle else np.arange(len(self.shards))
        carry_idx = np.zeros(0, dtype=np.int64)  # global row ids left over from the last buffer
        carry: torch.Tensor | None = torch.zeros(0, self.d)  # their data (None while skipping)
        produced = 0
        for start in range(0, len(order), max(buffer_shards, 1)):
            group = [int(i) for i in order[start : start + buffer_shards]]
            idx = np.concatenate([carry_idx, *[np.arange(self._offsets[i], self._offsets[i + 1]) for i in group]])
            perm = rng.permutation(len(idx)) if shuffle else np.arange(len(idx))
            n_full = len(idx) // batch_size
            if produced + n_full <= start_batch:  # every batch of this buffer is skipped: read nothing
                produced += n_full
                carry_idx, carry = idx[perm[n_full * batch_size :]], None
                continue
            head = carry if carry is not None else self.rows(carry_idx)
            buf = torch.cat([head, *[self.shard_acts(i).float() for i in group]])[torch.from_numpy(perm)]
            for b in range(n_full):
                if produced >= start_batch:
                    yield self._normalise(buf[b * batch_size : (b + 1) * batch_size], stats, normalize)
                produced += 1
            carry_idx, carry = idx[perm[n_full * batch_size :]], buf[n_full * batch_size :]
        if len(carry_idx) and not drop_last and produced >= start_batch:
            yield self._normalise(carry if carry is not None else self.rows(carry_idx), stats, normalize)

    def _normalise(self, x: torch.Tensor, stats: Stats | None, how: str) -> torch.Tensor:
        if how == "center":
            return x - stats.mean_d
        if how == "scale":
            return x * self.input_scale()
        return x

    def input_scale(self) -> float:
        """The factor that makes the rows' mean squared norm equal d."""
        return (self.d / max(self.stats().mean_sq_norm, 1e-24)) ** 0.5
