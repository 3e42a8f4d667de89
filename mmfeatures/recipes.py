"""Shared, cached building blocks for the notebooks and the demo: the same store or SAE is computed once.

- ``concept_store``: token (or pooled) activations of the built-in concept sentences at one site,
  in the user cache's ``stores/`` (shared with ``mmfeatures extract`` and the demo) (extraction is resumable and reused when complete).
- ``cached_sae``: an SAE trained on a store, under a folder keyed by the store and the config, so a
  second notebook (or a rerun) loads it instead of training again.

>>> store = concept_store("offline:e5-small", "text.layer.8.resid")      # doctest: +SKIP
>>> sae = cached_sae(store, TrainConfig(TopK(k=16), 1536))                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from mmfeatures.activations import ActivationStore, extract
from mmfeatures.datasets import ConceptDataset
from mmfeatures.disk import cache_dir, config_hash
from mmfeatures.encoders import Encoder, load_encoder
from mmfeatures.sae import SAE, TrainConfig, load_sae, train


def concept_dataset(languages: Sequence[str] | None = None) -> ConceptDataset:
    ds = ConceptDataset.builtin(["concepts"])
    return ds.select(languages=list(languages)) if languages else ds


def concept_store(model: str | Encoder = "offline:e5-small", site: str = "text.layer.8.resid", *,
                  pooling: str = "none", languages: Sequence[str] | None = None, role: str | None = None,
                  store_dir: str | Path | None = None, batch_size: int = 64) -> ActivationStore:
    """Activations of the concept sentences (all 16 languages unless ``languages``) at ``site``."""
    encoder = load_encoder(model) if isinstance(model, str) else model
    result = extract(encoder, concept_dataset(languages), [site], pooling=pooling, role=role, batch_size=batch_size,
                     store_dir=store_dir, progress=False)
    return result.stores[site]


def _default_config(config: TrainConfig, store: ActivationStore, epochs: int) -> TrainConfig:
    if config.total_rows is None:
        config = dataclasses.replace(config, total_rows=store.n_rows * epochs)
    return config


def cached_sae(store: ActivationStore, config: TrainConfig, *, epochs: int = 3,
               folder: str | Path | None = None, progress: bool = False) -> SAE:
    """``config`` trained on ``store`` (``epochs`` passes unless ``total_rows`` is set), or loaded if done."""
    return cached_saes(store, [config], epochs=epochs, folder=folder, progress=progress)[0]


def sae_folders(store: ActivationStore, configs: Sequence[TrainConfig], *, epochs: int = 3,
                folder: str | Path | None = None) -> tuple[list[TrainConfig], list[Path]]:
    """The completed configs (named, ``total_rows`` set) and the folder each SAE is (or will be) saved in."""
    configs = [_default_config(c, store, epochs) for c in configs]
    configs = [c if c.name else dataclasses.replace(c, name=f"sae{i}") for i, c in enumerate(configs)]
    key = config_hash({"store": str(store.path), "configs": [repr(c) for c in configs]})
    out = Path(folder) if folder is not None else cache_dir("recipes", "saes", key)
    return configs, [out / c.name for c in configs]


def cached_saes(store: ActivationStore, configs: Sequence[TrainConfig], *, epochs: int = 3,
                folder: str | Path | None = None, progress: bool = False) -> list[SAE]:
    """Several SAEs trained in one pass over ``store`` (they must share batch settings), cached together."""
    configs, paths = sae_folders(store, configs, epochs=epochs, folder=folder)
    if all((p / "cfg.json").is_file() for p in paths):
        return [load_sae(str(p)) for p in paths]
    result = train(store, configs, paths[0].parent, progress=progress)
    return result if isinstance(result, list) else [result]


def check_sizes(**sizes: tuple[float, float]) -> None:
    """Parameters-cell guard: ``check_sizes(N_PERM=(N_PERM, 20))`` raises naming the parameter and its minimum."""
    from mmfeatures.errors import InputError

    for name, (value, minimum) in sizes.items():
        if value < minimum:
            raise InputError(f"parameter {name} = {value} is too small for this notebook's statistics; "
                             f"set it to at least {minimum} in the parameters cell")
