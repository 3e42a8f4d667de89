"""Row labels (concept, language, modality, sentence) and unit activations for the analyses.

Activations reach the analyses as an array ``Z`` of shape (rows, units): SAE latents ("features")
or raw dimensions ("neurons"). ``Labels`` carries one concept, language and modality per row.
``unit_activations`` turns a store into such an array: either the raw dimensions or an SAE's
latents, max-pooled to one row per example when the store holds tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmfeatures.errors import InputError
from mmfeatures.sae import check_compatible


@dataclass(frozen=True)
class Labels:
    """Per-row labels. ``language`` is '' for rows without one (images); ``group`` aligns translations:
    rows with the same concept and group (e.g. 'sentence 1') say the same thing in different languages."""

    concept: np.ndarray
    language: np.ndarray
    modality: np.ndarray
    group: np.ndarray = field(default=None)  # type: ignore[assignment]
    example_id: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        n = len(self.concept)
        for name in ("concept", "language", "modality", "group", "example_id"):
            value = getattr(self, name)
            value = np.asarray([""] * n if value is None else ["" if v is None else str(v) for v in value],
                               dtype=object)
            if len(value) != n:
                raise InputError(f"Labels.{name} has {len(value)} entries but concept has {n}; one per row")
            object.__setattr__(self, name, value)
        if n == 0:
            raise InputError("Labels are empty; give at least one row")

    def __len__(self) -> int:
        return len(self.concept)

    def require_concepts(self) -> None:
        """Raise naming the first row without a concept id (concept analyses need one per row)."""
        missing = np.flatnonzero(self.concept == "")
        if len(missing):
            raise InputError(f"{len(missing)} rows have no concept (first: row {missing[0]}, example "
                             f"{self.example_id[missing[0]]!r}); give every example a concept id or drop it")

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> Labels:
        """From example records (``store.examples`` or ``Example.record()``); a record without a ``group`` has
        group ''."""
        return cls(np.array([r.get("concept") or "" for r in records], dtype=object),
                   np.array([r.get("language") or "" for r in records], dtype=object),
                   np.array([r.get("modality") or "text" for r in records], dtype=object),
                   np.array([r.get("group") or "" for r in records], dtype=object),
                   np.array([r.get("id", "") for r in records], dtype=object))

    @classmethod
    def concat(cls, *parts: Labels) -> Labels:
        """The rows of several label sets, in order (e.g. image rows, then text rows)."""
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("concept", "language", "modality", "group", "example_id")))

    def take(self, index: np.ndarray) -> Labels:
        return Labels(self.concept[index], self.language[index], self.modality[index], self.group[index],
                      self.example_id[index])

    def codes(self, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
        """Integer codes of a label column and the sorted category names."""
        values = getattr(self, name)
        cats, codes = np.unique(values.astype(str), return_inverse=True)
        return codes.astype(np.int64), tuple(cats)

    def onehot(self, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
        codes, cats = self.codes(name)
        out = np.zeros((len(codes), len(cats)), np.float32)
        out[np.arange(len(codes)), codes] = 1.0
        return out, cats

    def mask(self, **where: str | tuple[str, ...]) -> np.ndarray:
        """Rows whose labels match, e.g. ``mask(modality="text")``."""
        keep = np.ones(len(self), bool)
        for name, value in where.items():
            allowed = {value} if isinstance(value, str) else set(value)
            column = getattr(self, name)
            keep &= np.fromiter((v in allowed for v in column), bool, len(column))
        return keep


def pool_by_example(z: np.ndarray, example_index: np.ndarray, how: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """Pool token rows to one row per example (``max`` as Anthropic's feature activations, or ``mean``).
    Returns (pooled rows, the example index of each)."""
    if how not in ("max", "mean"):
        raise InputError(f"pooling {how!r}; use 'max' or 'mean'")
    import warnings

    import torch

    examples, inverse = np.unique(np.asarray(example_index), return_inverse=True)
    src, index = torch.from_numpy(np.ascontiguousarray(z, np.float32)), torch.from_numpy(inverse.ravel())
    if how == "max":               # index_reduce_ is torch's fast segment max (numpy's maximum.at is ~40x slower)
        out = torch.full((len(examples), src.shape[1]), -torch.inf)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
            out.index_reduce_(0, index, src, "amax")
    else:
        out = torch.zeros(len(examples), src.shape[1]).index_add_(0, index, src)
        out /= torch.bincount(index, minlength=len(examples))[:, None]
    return out.numpy(), examples


def encode_rows(sae: Any, x: Any, *, batch_size: int = 4096, device: str = "cpu") -> np.ndarray:
    """``sae``'s latents for the rows of ``x`` as a dense float32 array, encoded batch by batch."""
    import torch

    x = torch.as_tensor(np.asarray(x, np.float32) if not isinstance(x, torch.Tensor) else x)
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            latents = sae.encode(x[start:start + batch_size].to(device, torch.float32))
            parts.append((latents.to_dense() if latents.is_sparse else latents).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, sae.d_sae), np.float32)


def pooled_units(store: Any, sae: Any = None, *, pool: str = "max", batch_size: int = 4096, device: str = "cpu",
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(Z, example index of each row): the store's rows, or ``sae``'s latents of them (anything with
    ``encode``), pooled per example for token stores, streamed shard by shard and batch by batch. Memory holds
    examples x units and one batch of rows x units, never all rows x units."""
    import warnings

    import torch
    from tqdm.auto import tqdm

    if pool not in ("max", "mean"):
        raise InputError(f"pooling {pool!r}; use 'max' or 'mean'")
    tokens = store.config.pooling == "none"
    parts, owners = [], []
    bar = tqdm(total=store.n_rows, unit="row", unit_scale=True, desc="encode" if sae is not None else "read",
               disable=not progress, leave=False)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
        for _, shard in store.iter_shards():
            x, example = shard["acts"], shard["example"].numpy()
            if not len(x):
                continue
            examples, inverse = np.unique(example, return_inverse=True) if tokens else (example, None)
            out, chunks = None, []
            for start in range(0, len(x), batch_size):
                z = x[start:start + batch_size].to(device, torch.float32)
                if sae is not None:
                    z = sae.encode(z)
                    z = z.to_dense() if z.is_sparse else z
                z = z.float().cpu()
                bar.update(len(z))
                if not tokens:
                    chunks.append(z)
                    continue
                index = torch.from_numpy(inverse.ravel()[start:start + batch_size])
                if out is None:
                    out = torch.full((len(examples), z.shape[1]), -torch.inf) if pool == "max" else \
                        torch.zeros(len(examples), z.shape[1])
                if pool == "max":
                    out.index_reduce_(0, index, z, "amax")
                else:
                    out.index_add_(0, index, z)
            if tokens and pool == "mean":
                out /= torch.bincount(torch.from_numpy(inverse.ravel()), minlength=len(examples))[:, None]
            parts.append(out.numpy() if tokens else torch.cat(chunks).numpy())
            owners.append(examples)
    bar.close()
    width = store.d if sae is None else sae.d_sae
    if not parts:
        return np.zeros((0, width), np.float32), np.zeros(0, np.int64)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32), np.concatenate(owners)


def unit_activations(store: Any, sae: Any = None, *, pool: str = "max", batch_size: int = 4096,
                     device: str = "cpu", progress: bool = False, latents: Any = None) -> tuple[np.ndarray, Labels]:
    """(Z, labels) with one row per example: the store's raw dimensions, or ``sae``'s latents.

    Token stores (pooling 'none') are pooled per example after encoding (max by default), so a
    feature's activation on a sentence is its strongest activation on any of its tokens. Streamed
    (``pooled_units``): memory holds examples x units, not rows x units. ``latents``: the store's
    ``encode_store(store, sae)`` set, read instead of encoding again (checked against both)."""
    if sae is not None:
        check_compatible(sae, store)
    if latents is not None:
        latents.check(store, sae)
        z, index = latents.pooled(pool, tokens=store.config.pooling == "none")
    else:
        z, index = pooled_units(store, sae, pool=pool, batch_size=batch_size, device=device, progress=progress)
    return z, Labels.from_records([store.examples[i] for i in index])
