"""StoreWriter: writes one store's shards for extract(); safe to resume, and to share across torchrun ranks."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from mmfeatures.activations.layout import METADATA, RERUN, STORE_DTYPES, StoreConfig, shard_info, shard_paths
from mmfeatures.disk import (
    FAST,
    check_key,
    file_checksum,
    file_sha256,
    read_header,
    remove_stale_temporaries,
    write_header,
    write_text_atomic,
)
from mmfeatures.errors import CorruptFileError


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
        try:
            header = read_header(self.root, METADATA, fix=RERUN)
        except CorruptFileError as e:             # the folder is named by this key; shards are checked one by one
            warnings.warn(f"{e}; rewriting the header and keeping the intact shards", stacklevel=3)
            header = None
        check_key(self.root, "activation store", self.config.key, self.config.summary, header)
        lines = "".join(json.dumps({"index": i, **ex}, ensure_ascii=False) + "\n" for i, ex in enumerate(examples))
        path = self.root / "examples.jsonl"
        if not path.is_file() or path.read_text(encoding="utf-8") != lines:
            write_text_atomic(path, lines)
        if header is None:
            write_header(self.root, "activation-store", filename=METADATA, status="partial", key=self.config.key,
                         config=asdict(self.config), summary=self.config.summary)

    def complete_shards(self, verify: bool = True, indices: Sequence[int] | None = None) -> dict[int, dict[str, Any]]:
        """Sidecars of the shards (all, or ``indices``) that are complete, with matching checksums if verify."""
        done = {}
        for index in range(self.config.n_shards) if indices is None else indices:
            info = shard_info(self.root, index, verify=verify)
            if info is not None:
                done[index] = info
        return done

    def write_shard(self, index: int, acts_nd: torch.Tensor, example_n: torch.Tensor, position_n: torch.Tensor,
                    special_n: torch.Tensor, tokens: list[str] | None, extra: dict[str, Any],
                    span: tuple[int, int] | None = None) -> dict[str, Any]:
        """Write shard ``index`` (its examples ``span``, by default the config's plan) and then its sidecar."""
        from safetensors.torch import save_file

        data_path, side_path, tok_path = shard_paths(self.root, index)
        tensors = {"acts": acts_nd.to(STORE_DTYPES[self.config.store_dtype]).contiguous(),
                   "example": example_n.to(torch.int64).contiguous(),
                   "position": position_n.to(torch.int32).contiguous(),
                   "special": special_n.to(torch.bool).contiguous()}
        tmp = data_path.with_name(f".{data_path.name}.tmp-{os.getpid()}")
        save_file(tensors, str(tmp), metadata={"site": self.config.site, "shard": str(index)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, data_path)
        tokens_sum = None
        if tokens is not None:
            write_text_atomic(tok_path, json.dumps(tokens, ensure_ascii=False))
            tokens_sum = file_checksum(tok_path, FAST)
        start, stop = span if span is not None else self.config.shard_range(index)
        info = {"index": index, "examples": [start, stop], "rows": int(acts_nd.shape[0]),
                "d": int(acts_nd.shape[1]), "nbytes": data_path.stat().st_size,
                "checksum": file_checksum(data_path, FAST), "tokens_checksum": tokens_sum, **extra}
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
            summary=self.config.summary,
            config=asdict(self.config), examples_sha256=file_sha256(self.root / "examples.jsonl"),
            d=max((s["d"] for s in manifest), default=0), n_rows=sum(s["rows"] for s in manifest),
            truncated=sum(s.get("truncated", 0) for s in manifest),
            skipped=[x for s in manifest for x in s.get("skipped", [])], shards=manifest)

