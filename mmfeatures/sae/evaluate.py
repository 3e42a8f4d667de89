"""How well an SAE reconstructs a store it may never have seen: NMSE, L0 and dead latents, streamed."""

from __future__ import annotations

from typing import Any

import torch

from mmfeatures.activations import ActivationStore


@torch.no_grad()
def evaluate_sae(sae, store: ActivationStore, *, max_rows: int | None = None, batch_size: int = 4096,
                 progress: bool = False) -> dict[str, Any]:
    """Reconstruction metrics of ``sae`` on the rows of ``store`` (the first ``max_rows``, in order), one batch
    in memory at a time.

    - ``nmse``: squared error over the squared distance to the store's mean (0 = perfect; 1 = no better than
      the mean), so it is comparable across stores of different scale;
    - ``l0``: mean active latents per row; ``dead_fraction``: latents that never fire on these rows.

    >>> evaluate_sae(load_sae("data:e5-small-l8-s0"), store)["nmse"]   # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from mmfeatures.sae.compat import check_compatible

    check_compatible(sae, store)
    mean = store.stats().mean_d.float()
    n = store.n_rows if max_rows is None else min(max_rows, store.n_rows)
    err = var = active = 0.0
    fired = torch.zeros(sae.d_sae, dtype=torch.bool)
    seen = 0
    with tqdm(total=n, desc="evaluate SAE", unit="row", disable=not progress, leave=False) as bar:
        for x in store.batches(batch_size, shuffle=False):
            x = x[: n - seen].float()
            z = sae.encode(x)
            err += float((sae.decode(z) - x).pow(2).sum())
            var += float((x - mean).pow(2).sum())
            nonzero = z != 0
            active += float(nonzero.sum())
            fired |= nonzero.any(0)
            seen += len(x)
            bar.update(len(x))
            if seen >= n:
                break
    return {"rows": seen, "nmse": err / max(var, 1e-12), "l0": active / max(seen, 1),
            "dead_fraction": float((~fired).float().mean())}
