"""The on-disk layout of an activation store: its config (whose key names the folder), the statistics and
provenance records, and where each shard's files live. See store.py for the layout itself."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfeatures.disk import (
    artifact_key,
    matches,
)
from mmfeatures.errors import CorruptFileError

METADATA = "metadata.json"
STORE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


RERUN = "rerun the same extract() call (or `mmfeatures extract`) to recompute it"

SHARD_EXAMPLES = 1024
"""The most examples in one shard."""
SHARD_BYTES = 64 << 20
"""The most bytes of rows in one shard (64 MiB): with long documents a shard holds fewer examples, so the memory
of extracting, reading and encoding a shard does not grow with document length."""


def plan_shards(rows: Sequence[int], row_bytes: int, max_examples: int = SHARD_EXAMPLES,
                max_bytes: int = SHARD_BYTES) -> tuple[int, ...]:
    """The first example of each shard: runs of consecutive examples of at most ``max_examples`` examples and
    ``max_bytes`` bytes of rows (``rows[i]`` rows of ``row_bytes`` bytes for example i); an example larger than
    ``max_bytes`` alone is a shard of its own.

    >>> plan_shards([1] * 5, 4, max_examples=2)
    (0, 2, 4)
    >>> plan_shards([3, 3, 3, 1, 1], 4, max_bytes=20)     # rows of 12, 12, 12, 4 and 4 bytes
    (0, 1, 2)
    """
    cutter = ShardCutter(max_examples, max_bytes)
    return tuple(i for i, n in enumerate(rows) if cutter.starts_shard(n * row_bytes))


class ShardCutter:
    """The one rule that cuts examples into shards, fed one example at a time (``plan_shards`` plans with it up front,
    ``write_store`` while it streams): a new shard starts at the first example, after ``max_examples`` examples, and
    where the example's bytes would take the shard past ``max_bytes``."""

    def __init__(self, max_examples: int = SHARD_EXAMPLES, max_bytes: int = SHARD_BYTES):
        if max_examples < 1 or max_bytes < 1:
            raise ValueError(f"shard_examples ({max_examples}) and shard_bytes ({max_bytes}) must be >= 1")
        self.max_examples, self.max_bytes = max_examples, max_bytes
        self.count, self.size = max_examples, max_bytes       # the first example always starts a shard

    def starts_shard(self, nbytes: int) -> bool:
        """Whether the next example, of ``nbytes`` bytes of rows, begins a new shard (then counted in it)."""
        new = self.count == self.max_examples or self.size + nbytes > self.max_bytes
        if new:
            self.count, self.size = 0, 0
        self.count, self.size = self.count + 1, self.size + nbytes
        return new


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
    shards: tuple[int, ...]
    """The first example of each shard (the layout of the files; ``plan_shards`` bounds each shard in examples
    and in bytes)."""
    batch_size: int | None = None
    """Examples per forward pass: padding to the longest example of a batch changes the last bits of the values
    (up to 7e-7 on e5), so two batch sizes are two stores, never one store mixed from both. A batch halved after
    an out-of-memory error is recorded in that shard's sidecar (``batch_size``). None for written stores."""

    def __post_init__(self):
        if self.store_dtype not in STORE_DTYPES:
            raise ValueError(f"store_dtype {self.store_dtype!r} is not allowed; use 'fp32' or 'bf16' "
                             "(fp16 overflows on activation outliers)")
        shards = tuple(self.shards) if isinstance(self.shards, (list, tuple)) else self.shards
        object.__setattr__(self, "shards", shards)
        valid = isinstance(shards, tuple) and all(type(s) is int for s in shards) and (
            shards[:1] == (0,) and list(shards) == sorted(set(shards)) and shards[-1] < self.n_examples
            if self.n_examples else shards == ())
        if not valid:
            raise ValueError(f"shards = {self.shards!r} for {self.n_examples} examples; give the first example of each "
                             "shard, increasing from 0 (plan_shards makes them)")

    @property
    def summary(self) -> str:
        """A short human description, for messages and headers."""
        return f"{self.model} {self.site}, pooling {self.pooling}, role {self.role}, {self.n_examples} examples"

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
        try:
            return cls(**config)
        except (TypeError, ValueError) as e:
            raise CorruptFileError(f"{path / METADATA} holds an invalid store config ({e}); delete {path} and "
                                   f"{RERUN}") from None

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    def shard_range(self, index: int) -> tuple[int, int]:
        """The examples [start, stop) of shard ``index``."""
        stop = self.shards[index + 1] if index + 1 < len(self.shards) else self.n_examples
        return self.shards[index], stop


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


def shard_paths(root: Path, index: int) -> tuple[Path, Path, Path]:
    stem = root / "shards" / f"{index:05d}"
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json"), Path(f"{stem}.tokens.json")


def shard_checksum(info: dict[str, Any], file: str = "data") -> str | None:
    """The recorded checksum of a shard's ``data`` or ``tokens`` file (XXH3-128, see ``disk.FAST``); stores
    written before 0.x's switch record SHA-256 under ``sha256``/``tokens_sha256``, which still verify."""
    prefix = "" if file == "data" else "tokens_"
    return info.get(f"{prefix}checksum") or info.get(f"{prefix}sha256")


def shard_info(root: Path, index: int, verify: bool) -> dict[str, Any] | None:
    """A shard's sidecar if the shard is complete and intact, else None."""
    data_path, side_path, tok_path = shard_paths(root, index)
    try:
        info = json.loads(side_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None                                    # no (or a torn) completion marker: recompute the shard
    if not isinstance(info, dict) or not data_path.is_file() or data_path.stat().st_size != info.get("nbytes"):
        return None
    if verify and not (matches(data_path, shard_checksum(info)) and _counts_agree(data_path, info)):
        return None
    tokens = shard_checksum(info, "tokens")
    if verify and (not matches(tok_path, tokens) if tokens else tok_path.exists()):
        return None                                    # damaged token strings, or a token file with no checksum
    return info


def _counts_agree(data_path: Path, info: dict[str, Any]) -> bool:
    """Whether the sidecar's counts are the shard file's shapes (read from its safetensors header): a store shard's
    ``rows`` x ``d`` acts, a latent shard's ``rows`` + 1 row pointers and ``nnz`` values. The checksum covers the
    file, not the sidecar, so an edited count would otherwise pass and break every later read."""
    try:
        with open(data_path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size)) if 0 < size < 1 << 24 else {}
    except (OSError, ValueError):
        return False
    shape = {name: t.get("shape") for name, t in header.items() if isinstance(t, dict)}
    if "acts" in shape:
        return shape["acts"] == [info.get("rows"), info.get("d")]
    if "row_ptr" in shape:
        return shape["row_ptr"] == [_plus_one(info.get("rows"))] and shape.get("value") == [info.get("nnz")]
    return False


def _plus_one(n: Any) -> Any:
    return n + 1 if isinstance(n, int) and not isinstance(n, bool) else None
