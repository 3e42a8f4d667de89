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
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfeatures.disk import file_sha256, read_header, write_header, write_text_atomic
from mmfeatures.errors import CorruptFileError

METADATA = "metadata.json"
STORE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class StoreConfig:
    """Everything that determines a store's content; its hash names the folder."""

    model: str
    """Registry name of the encoder."""
    site: str
    """Hook site, e.g. 'text.layer.6.resid'."""
    pooling: str
    """'mean', 'cls', 'eos' or 'none' (per-token rows)."""
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
    """Examples per shard."""
    mmfeatures_version: str

    def __post_init__(self):
        if self.store_dtype not in STORE_DTYPES:
            raise ValueError(f"store_dtype {self.store_dtype!r} is not allowed; use 'fp32' or 'bf16' "
                             "(fp16 overflows on activation outliers)")
        if self.shard_examples < 1:
            raise ValueError(f"shard_examples must be >= 1, got {self.shard_examples}")

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
        """Create the folder, examples table and a 'partial' header if they do not exist yet."""
        (self.root / "shards").mkdir(parents=True, exist_ok=True)
        if not (self.root / "examples.jsonl").is_file():
            lines = "".join(json.dumps({"index": i, **ex}, ensure_ascii=False) + "\n" for i, ex in enumerate(examples))
            write_text_atomic(self.root / "examples.jsonl", lines)
        header = read_header(self.root, METADATA)
        if header is None:
            write_header(self.root, "activation-store", filename=METADATA, status="partial",
                         config=asdict(self.config))
        elif header.get("config") != asdict(self.config):
            raise CorruptFileError(f"{self.root}: metadata.json describes another configuration; "
                                   "delete the folder to rebuild it")

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
        if tokens is not None:
            write_text_atomic(tok_path, json.dumps(tokens, ensure_ascii=False))
        start, stop = self.config.shard_range(index)
        info = {"index": index, "examples": [start, stop], "rows": int(acts_nd.shape[0]),
                "d": int(acts_nd.shape[1]), "nbytes": data_path.stat().st_size,
                "sha256": file_sha256(data_path), **extra}
        write_text_atomic(side_path, json.dumps(info, ensure_ascii=False))  # the completion marker
        return info

    def finish(self) -> dict[str, Any]:
        """Mark the store complete once every shard is; returns the header."""
        done = self.complete_shards(verify=False)
        missing = [i for i in range(self.config.n_shards) if i not in done]
        assert not missing, f"cannot finish {self.root}: shards {missing[:5]} are incomplete"
        manifest = [done[i] for i in range(self.config.n_shards)]
        return write_header(
            self.root, "activation-store", filename=METADATA, status="complete", config=asdict(self.config),
            d=max((s["d"] for s in manifest), default=0), n_rows=sum(s["rows"] for s in manifest),
            truncated=sum(s.get("truncated", 0) for s in manifest),
            skipped=[x for s in manifest for x in s.get("skipped", [])], shards=manifest)


def shard_info(root: Path, index: int, verify: bool) -> dict[str, Any] | None:
    """A shard's sidecar if the shard is complete and intact, else None."""
    data_path, side_path, _ = _shard_paths(root, index)
    try:
        info = json.loads(side_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not data_path.is_file() or data_path.stat().st_size != info.get("nbytes"):
        return None
    if verify and file_sha256(data_path) != info.get("sha256"):
        return None
    return info


class ActivationStore:
    """Read side: arrays, provenance, random access, statistics and shuffled batches.

    >>> store = ActivationStore(path)                               # doctest: +SKIP
    >>> store.d, store.n_rows, store.select(language="ja")[:3]      # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        header = read_header(self.path, METADATA)
        if header is None:
            raise FileNotFoundError(f"no activation store at {self.path} (no {METADATA})")
        if header.get("status") != "complete":
            raise CorruptFileError(f"{self.path} is an unfinished store (status {header.get('status')!r}); "
                                   "rerun the same extract() call to complete it")
        self.header = header
        self.config = StoreConfig(**header["config"])
        self.shards: list[dict[str, Any]] = header["shards"]
        self.d: int = header["d"]
        self.n_rows: int = header["n_rows"]
        self._offsets = np.cumsum([0] + [s["rows"] for s in self.shards])

    def __repr__(self) -> str:
        return (f"ActivationStore({self.config.model}, {self.config.site}, pooling={self.config.pooling}, "
                f"rows={self.n_rows}, d={self.d})")

    def __len__(self) -> int:
        return self.n_rows

    @functools.cached_property
    def examples(self) -> list[dict[str, Any]]:
        with open(self.path / "examples.jsonl", encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def verify(self) -> list[int]:
        """Indices of shards whose file is missing, truncated or fails its checksum."""
        return [s["index"] for s in self.shards if shard_info(self.path, s["index"], verify=True) is None]

    @functools.lru_cache(maxsize=4)  # noqa: B019 - a few recently used shards, per store
    def _shard(self, index: int) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        data_path = _shard_paths(self.path, index)[0]
        info = self.shards[index]
        if not data_path.is_file() or data_path.stat().st_size != info["nbytes"]:
            raise CorruptFileError(f"shard {data_path} is missing or truncated; rerun extract() to recompute it")
        return load_file(str(data_path))

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

    @functools.cached_property
    def _provenance(self) -> Provenance:
        ex, pos, spec, tokens = [], [], [], []
        for i in range(len(self.shards)):
            shard = self._shard(i)
            ex.append(shard["example"].numpy())
            pos.append(shard["position"].numpy())
            spec.append(shard["special"].numpy())
            tok_path = _shard_paths(self.path, i)[2]
            tokens += json.loads(tok_path.read_text()) if tok_path.is_file() else [""] * len(ex[-1])
        return Provenance(_cat(ex, np.int64), _cat(pos, np.int32), _cat(spec, bool), tokens, self.examples)

    @functools.cached_property
    def _row_example(self) -> np.ndarray:
        """(n_rows,) the example index of every row; only the small 'example' tensors are read."""
        from safetensors import safe_open

        parts = []
        for i in range(len(self.shards)):
            with safe_open(str(_shard_paths(self.path, i)[0]), framework="np") as f:
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
        """Mean and mean norm over all rows, computed once and stored in stats.safetensors."""
        from safetensors.torch import load_file, save_file

        path = self.path / "stats.safetensors"
        if path.is_file():
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
        return stats

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0, buffer_shards: int = 4,
                normalize: str = "none", drop_last: bool = False, start_batch: int = 0) -> Iterator[torch.Tensor]:
        """(batch_size, d) float32 batches; memory holds at most ``buffer_shards`` shards.

        ``normalize``: 'none'; 'center' (subtract the mean); 'scale' (multiply by
        ``input_scale()``, so the mean squared norm is d, as Anthropic's SAEs are trained).
        ``start_batch`` skips that many batches without reading the shards they come from (the
        shuffle depends only on row counts), so a resumed job starts where it stopped, cheaply.
        """
        if normalize not in ("none", "center", "scale"):
            raise ValueError(f"normalize={normalize!r}; use 'none', 'center' or 'scale'")
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
