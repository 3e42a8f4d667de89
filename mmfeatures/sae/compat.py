"""Whether an SAE may read a store: the same model (or its one-tower random null) and site, and width."""

from __future__ import annotations

import re

from mmfeatures.activations import ActivationStore


def check_compatible(sae, store: ActivationStore) -> None:
    """Refuse an SAE on a store of another model, site or width; the error names both sides and the fix.

    What the SAE records (``metadata``: model_name, hook_name, store_key) is compared with the store. Two sites
    of one model that write to its shared embedding space (``text.embed`` and ``image.embed`` of a two-tower
    model) count as the same site: that is how a text-trained SAE reads pictures. The same holds for the model
    with one tower re-initialised (``<model>+random-image-0``): its other tower is the SAE's own, and its random
    tower's embeddings are what a cross-modal falsification check feeds the SAE."""
    from mmfeatures.errors import SiteError

    meta = getattr(sae, "metadata", None) or {}
    model = meta.get("model_name") or getattr(sae, "model_name", None)
    site = meta.get("hook_name") or getattr(sae, "hook_name", None)
    here = f"store {store.path} ({store.config.model}, {store.config.site}, width {store.d})"
    fix = "use an SAE trained on this model and site, or extract the site the SAE was trained on"
    if model is not None and model != store.config.model and not _one_tower_null(model, store.config.model,
                                                                                  store.config.site):
        raise SiteError(f"the SAE was trained on model {model!r} ({site}) but the {here} is of another model; {fix}")
    shared_space = site is not None and site.endswith(".embed") and store.config.site.endswith(".embed")
    if site is not None and site != store.config.site and not shared_space:
        raise SiteError(f"the SAE was trained on site {site!r} of {model or 'its model'} but the {here} holds "
                        f"another site; {fix}")
    if sae.d_in != store.d:
        raise SiteError(f"the SAE reads width {sae.d_in} but the {here} holds width {store.d}; {fix}")


def _one_tower_null(model: str, other: str, site: str) -> bool:
    """True when ``other`` is ``model`` with one tower re-initialised and ``site`` is the shared embedding space
    or a site of the untouched tower."""
    found = re.fullmatch(re.escape(model) + r"\+random-(text|image)-\d+", other)
    return bool(found) and (site.endswith(".embed") or not site.startswith(found.group(1) + "."))
