"""How well an SAE reconstructs a store it may never have seen: NMSE, L0 and dead latents, streamed."""

from __future__ import annotations

from typing import Any

import torch

from mmfeatures.activations import ActivationStore

DENSE = 0.1
"""A latent firing on more than this fraction of rows counts as dense."""


@torch.no_grad()
def evaluate_sae(sae, store: ActivationStore, *, max_rows: int | None = None, batch_size: int = 4096,
                 progress: bool = False, rates: bool = False) -> dict[str, Any]:
    """Reconstruction metrics of ``sae`` on the rows of ``store`` (the first ``max_rows``, in order), one batch
    in memory at a time.

    - ``nmse``: squared error over the squared distance to the store's mean (0 = perfect; 1 = no better than
      the mean), so it is comparable across stores of different scale; ``explained_variance`` is 1 - nmse;
    - ``l0``: mean active latents per row, measured; ``dead_fraction``: latents that never fire on these rows;
      ``dense_fraction``: latents firing on more than ``DENSE`` of them; with ``rates``, ``fire_rate``: each
      latent's firing rate (a list, for the density histogram);
    - ``shrinkage``: mean over rows of |reconstruction| / |x| (below 1: the SAE shrinks what it reconstructs, as an
      L1 penalty does).

    >>> evaluate_sae(load_sae("data:e5-small-layer8-seed0"), store)["nmse"]   # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from mmfeatures.sae.compat import check_compatible

    check_compatible(sae, store)
    mean = store.stats().mean_d.float()
    n = store.n_rows if max_rows is None else min(max_rows, store.n_rows)
    err = var = active = ratio = 0.0
    fired = torch.zeros(sae.d_sae, dtype=torch.int64)
    seen = 0
    with tqdm(total=n, desc="evaluate SAE", unit="row", disable=not progress, leave=False) as bar:
        for x in store.batches(batch_size, shuffle=False):
            x = x[: n - seen].float()
            z = sae.encode(x)
            recon = sae.decode(z)
            err += float((recon - x).pow(2).sum())
            var += float((x - mean).pow(2).sum())
            ratio += float((recon.norm(dim=1) / x.norm(dim=1).clamp_min(1e-12)).sum())
            nonzero = z != 0
            active += float(nonzero.sum())
            fired += nonzero.sum(0)
            seen += len(x)
            bar.update(len(x))
            if seen >= n:
                break
    rate = fired.double() / max(seen, 1)
    nmse = err / max(var, 1e-12)
    return {"rows": seen, "nmse": nmse, "explained_variance": 1 - nmse, "l0": active / max(seen, 1),
            "dead_fraction": float((fired == 0).double().mean()), "dense_fraction": float((rate > DENSE).double().mean()),
            "shrinkage": ratio / max(seen, 1), **({"fire_rate": rate.tolist()} if rates else {})}
