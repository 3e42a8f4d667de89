"""The studies' one way to stores and SAEs: the pipeline's extract and train steps, so keys, reuse and integrity
checks are exactly those of the CLI, the demo and the notebooks (nothing here caches or chains on its own).

Random-init nulls are registry names too (``offline:e5-small+random-init-0``, ``...+random-image-0``).
"""

from __future__ import annotations

from pathlib import Path

from mmfeatures.disk import read_json
from mmfeatures.pipeline import ExtractStep, TrainStep, run


def store(model: str, site: str, *, pooling: str = "none", data: str = "concepts"):
    """The ActivationStore of ``model`` at ``site`` for ``data`` (extracted once, then reused by its key)."""
    return stores(model, (site,), pooling=pooling, data=data)[site]


def stores(model: str, sites: tuple[str, ...], *, pooling: str = "none", data: str = "concepts",
           languages: tuple[str, ...] = ()) -> dict:
    """{site: ActivationStore} of ``model`` for ``data`` in ``languages`` (all when empty), in one pass over the
    model (extracted once, then reused by its key)."""
    record = run(ExtractStep(model=model, sites=tuple(sites), data=data, pooling=pooling, languages=languages,
                             device="cpu", progress=False))
    return {site: record.store(site) for site in sites}


def sae(store, width: int, k: int, epochs: int, **fields):
    """(SAE, its final training metrics) for a TopK SAE on ``store`` (trained once, then loaded by its key).
    ``fields`` are further TrainStep fields (seed, batch_size, dead_tokens, ...)."""
    record = run(TrainStep(store=str(store.path), width=width, k=k, epochs=epochs, device="cpu", progress=False,
                           **fields))
    folder = Path(record.artifact("sae").path)
    return record.sae(), read_json(folder / "metrics.json", f"delete {folder}; the study retrains it").get("final", {})


def sae_folder(store, width: int, k: int, epochs: int, **fields) -> str:
    """The folder of the TopK SAE ``sae`` trains (trained once, then found by its key)."""
    record = run(TrainStep(store=str(store.path), width=width, k=k, epochs=epochs, device="cpu", progress=False,
                           **fields))
    return record.artifact("sae").path
