"""Encoded latents as an artifact: a store's rows through an SAE, written once as sparse shards and read by every
analysis, so nothing encodes the same rows twice.

    <root>/<model-slug>/<site>-<latent-key>/
        metadata.json              kind latent-set, status partial | complete, key, config (LatentConfig)
        shards/NNNNN.safetensors   one per store shard: CSR rows (row_ptr int64, index int32, value fp32) and
                                   each row's example index (int64)
        shards/NNNNN.json          the shard's sidecar (rows, nnz, checksum): its completion marker

The key covers the store's key, a digest of the SAE's weights and ``top``, so a retrained SAE or a rebuilt
store gets another set. ``encode_store`` resumes from the last complete shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfeatures.activations.layout import shard_checksum, shard_info, shard_paths
from mmfeatures.disk import (
    FAST,
    artifact_key,
    cache_dir,
    check_key,
    file_checksum,
    read_checked,
    read_header,
    release_freed_memory,
    remove_stale_temporaries,
    write_header,
    write_text_atomic,
)
from mmfeatures.errors import CorruptFileError, InputError

METADATA = "metadata.json"
RERUN = "rerun the step (or encode_store(store, sae)): it recomputes the damaged shard"


def sae_digest(sae: Any) -> str:
    """SHA-256 (24 hex digits) of an SAE's class, its architecture (every field: k, thresholds' rule, prefixes),
    width and every parameter and buffer. The architecture decides the code as much as the weights do: the same
    tensors with another k give other latents."""
    arch = getattr(sae, "arch", None)
    h = hashlib.sha256(f"{type(sae).__name__}|{type(arch).__name__}|{arch!r}|{getattr(sae, 'd_in', '')}|"
                       f"{sae.d_sae}".encode())
    state = sae.state_dict() if hasattr(sae, "state_dict") else {}
    for name in sorted(state):
        h.update(name.encode() + state[name].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


@dataclass(frozen=True)
class LatentConfig:
    """What determines a latent set's content."""

    store: str
    """The store's key."""
    sae: str
    """``sae_digest`` of the SAE."""
    d_sae: int
    top: int | None
    """Entries kept per row, largest first (None: every non-zero latent, exact)."""
    n_shards: int
    batch_size: int | None = None
    """Rows per encoder matmul: the blocking changes the last bits of the values (up to 1e-5 at width 1,536), so
    another batch size is another set, never a set mixed from two."""

    @property
    def key(self) -> str:
        return artifact_key("latent-set", asdict(self))


class LatentSet:
    """A complete latent set on disk; ``pooled`` gives one row per example as analyses want it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        header = read_header(self.path, METADATA, fix=RERUN)
        if header is None or header.get("kind") != "latent-set":
            raise InputError(f"{self.path} is not a latent set (no {METADATA} of kind latent-set); pass the folder "
                             "encode_store returned")
        if header.get("status") != "complete":
            raise CorruptFileError(f"{self.path} is an interrupted latent set; {RERUN}")
        self.header = header
        self.config = LatentConfig(**header["config"])

    @property
    def n_rows(self) -> int:
        return int(self.header["n_rows"])

    def check(self, store: Any, sae: Any) -> None:
        """Raise naming both sides when this set was not made from ``store`` and ``sae``."""
        if self.config.store != store.config.key:
            raise InputError(f"latent set {self.path} was encoded from store key {self.config.store}, not from "
                             f"{store.path} (key {store.config.key}); encode this store: encode_store(store, sae)")
        if sae is not None and self.config.sae != sae_digest(sae):
            raise InputError(f"latent set {self.path} was encoded by an SAE with digest {self.config.sae}; this SAE's "
                             f"is {sae_digest(sae)} (retrained or another one): encode_store(store, sae) again")

    def iter_shards(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(row_ptr, index, value, example) per shard, each checked against its recorded checksum."""
        from safetensors.torch import load

        for info in self.header["shards"]:
            data = read_checked(shard_paths(self.path, info["index"])[0], shard_checksum(info), RERUN)
            t = load(data)
            yield t["row_ptr"], t["index"], t["value"], t["example"]

    def pooled(self, pool: str = "max", tokens: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(examples x d_sae, example index of each row): max (or mean) over each example's rows; ``tokens``
        False keeps one row per stored row. Latents are non-negative, so an absent entry is a zero."""
        if pool not in ("max", "mean"):
            raise InputError(f"pooling {pool!r}; use 'max' or 'mean'")
        shards = self.header["shards"]
        counts = [s["rows"] if not tokens else s.get("examples") for s in shards]
        # Written in place when the sidecars give each shard's example count (no second copy of examples x d_sae).
        whole = np.zeros((sum(counts), self.config.d_sae), np.float32) if None not in counts else None
        parts, owners, at = [], [], 0
        for row_ptr, index, value, example in self.iter_shards():
            rows = torch.repeat_interleave(torch.arange(len(example)), row_ptr.diff())
            examples, inverse = (np.unique(example.numpy(), return_inverse=True) if tokens else
                                 (example.numpy(), np.arange(len(example))))
            inverse = torch.from_numpy(np.asarray(inverse).ravel())
            flat = inverse[rows] * self.config.d_sae + index.long()
            out = (torch.from_numpy(whole[at:at + len(examples)]) if whole is not None else
                   torch.zeros(len(examples), self.config.d_sae))
            if pool == "max":
                out.view(-1).scatter_reduce_(0, flat, value.float(), "amax")
            else:
                out.view(-1).index_add_(0, flat, value.float())
                out /= torch.bincount(inverse, minlength=len(examples))[:, None]
            if whole is None:
                parts.append(out.numpy())
            owners.append(examples)
            at += len(examples)
        if whole is None:
            whole = np.concatenate(parts) if parts else np.zeros((0, self.config.d_sae), np.float32)
        return whole, (np.concatenate(owners) if owners else np.zeros(0, np.int64))


def _csr_rows(sae: Any, x: torch.Tensor, top: int | None,
              scratch: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(entries per row, column indices, values) of a batch's non-zero latents, row-major with columns ascending
    in each row; ``top`` keeps each row's largest. A TopK SAE gives its k entries directly (no dense n x d_sae)."""
    from mmfeatures.sae.modeling import SAE, TopK

    if isinstance(sae, SAE) and type(sae.arch) is TopK:
        usable = scratch is not None and x.device == scratch.device and x.dtype == scratch.dtype
        value, index = sae.encode_topk(x, scratch[:len(x)] if usable else None)
        value, index = value.float().cpu(), index.cpu()
        if top is not None and top < value.shape[1]:
            value, keep = value.topk(top, dim=1)
            index, order = index.gather(1, keep).sort(dim=1)
            value = value.gather(1, order)
        nonzero = value != 0
        return nonzero.sum(1), index[nonzero].int(), value[nonzero]
    z = sae.encode(x)
    z = (z.to_dense() if z.is_sparse else z).float().cpu()
    if top is not None and top < z.shape[1]:
        value, index = z.topk(top, dim=1)
        z = torch.zeros_like(z).scatter_(1, index, value)
    nonzero = z != 0
    return nonzero.sum(1), nonzero.nonzero()[:, 1].int(), z[nonzero]


def encode_store(store: Any, sae: Any, *, top: int | None = None, root: str | os.PathLike | None = None,
                 batch_size: int = 4096, device: str = "cpu", progress: bool | None = True) -> LatentSet:
    """Encode every row of ``store`` through ``sae`` once, into a sparse latent set (reused by its key, resumed
    shard by shard). ``top`` keeps each row's largest entries only (default: every non-zero, exact). ``progress``
    None shows the bar (rows/s) only on a terminal."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from mmfeatures.sae.compat import check_compatible

    check_compatible(sae, store)
    if top is not None and top < 1:
        raise InputError(f"top = {top}; keep at least 1 entry per row, or None for every non-zero")
    config = LatentConfig(store.config.key, sae_digest(sae), int(sae.d_sae), top, len(store.shards), batch_size)
    folder = Path(root) if root is not None else cache_dir("latents")
    folder = folder / store.path.parent.name / f"{store.config.site}-{config.key}"     # the store's model slug
    try:
        header = read_header(folder, METADATA, fix=RERUN)
    except CorruptFileError as e:                 # derived data: a damaged header is rewritten, shards are rechecked
        warnings.warn(f"{e}; recomputing what is damaged", stacklevel=2)
        header = None
    check_key(folder, "latent set", config.key, f"{store.config.summary} through an SAE of {sae.d_sae}", header)
    if header is not None and header.get("status") == "complete":
        if all(shard_info(folder, i, verify=True) for i in range(config.n_shards)):
            return LatentSet(folder)
        header = None                             # a damaged shard or sidecar: recompute it, keep the others
    (folder / "shards").mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder / "shards")
    if header is None:
        write_header(folder, "latent-set", filename=METADATA, status="partial", key=config.key, config=asdict(config))
    todo = [i for i in range(config.n_shards) if shard_info(folder, i, verify=True) is None]
    bar = tqdm(total=sum(int(store.shards[i]["rows"]) for i in todo), unit="row", unit_scale=True,
               desc=f"encode {store.config.site}", disable=None if progress is None else not progress)
    from mmfeatures.sae.modeling import SAE, TopK

    scratch = (torch.empty(batch_size, sae.d_sae, device=device, dtype=sae.W_enc.dtype)   # one pre-activation buffer
               if todo and isinstance(sae, SAE) and type(sae.arch) is TopK else None)
    for index, shard in store.iter_shards(todo):
        x, parts = shard["acts"], []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                parts.append(_csr_rows(sae, x[start:start + batch_size].to(device, torch.float32), top, scratch))
                bar.update(len(parts[-1][0]))
        counts = torch.cat([c for c, _, _ in parts]) if parts else torch.zeros(0, dtype=torch.int64)
        tensors = {"row_ptr": torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]),
                   "example": shard["example"].to(torch.int64).contiguous(),
                   "index": torch.cat([i for _, i, _ in parts]) if parts else torch.zeros(0, dtype=torch.int32),
                   "value": torch.cat([v for _, _, v in parts]) if parts else torch.zeros(0)}
        data_path, side_path, _ = shard_paths(folder, index)
        tmp = data_path.with_name(f".{data_path.name}.tmp-{os.getpid()}")
        save_file(tensors, str(tmp))
        with open(tmp, "rb+") as f:                # on disk before the sidecar that marks it complete
            os.fsync(f.fileno())
        os.replace(tmp, data_path)
        info = {"index": index, "rows": len(x), "examples": int(tensors["example"].unique().numel()),
                "nnz": int(tensors["value"].numel()),
                "nbytes": data_path.stat().st_size, "checksum": file_checksum(data_path, FAST)}
        write_text_atomic(side_path, json.dumps(info))
    bar.close()
    del scratch
    release_freed_memory()
    shards = [shard_info(folder, i, verify=False) for i in range(config.n_shards)]
    write_header(folder, "latent-set", filename=METADATA, status="complete", key=config.key, config=asdict(config),
                 n_rows=sum(s["rows"] for s in shards), nnz=sum(s["nnz"] for s in shards), shards=shards)
    return LatentSet(folder)
