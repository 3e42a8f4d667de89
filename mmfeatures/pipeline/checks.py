"""Checks that the inputs of a step are what the step's options claim they are: random-init copies that are copies
of the model analysed, and seeds that are different SAEs. Without them a record states a baseline or an interval
that was never computed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mmfeatures.errors import InputError

RANDOM_COPY = re.compile(r"\+random-(init|image)-\d+$")
"""How a registry name marks a random-init copy: '<model>+random-init-<seed>' (every tower) or
'<model>+random-image-<seed>' (the image tower only)."""


def architecture(model: str) -> str:
    """A model's name without its '+random-init-<seed>' (or '+random-image-<seed>') suffix."""
    return RANDOM_COPY.sub("", model)


def check_random_copies(pairs: Sequence[tuple[Any, Any]], option: str, of: str = "the model") -> None:
    """Each (null store, store it stands for) pair holds a random-init copy of the store's model (its architecture,
    another model name) at the store's site and pooling; otherwise InputError names the store and what to give.
    A copy with a random image tower ('+random-image-<seed>') keeps the text tower, so its text stores may be the
    model's own."""
    image_only = any(re.search(r"\+random-image-\d+$", n.config.model) for n, _ in pairs)
    for null, store in pairs:
        model, base = null.config.model, store.config.model
        same_place = (null.config.site, null.config.pooling) == (store.config.site, store.config.pooling)
        kept_tower = model == base and image_only and null.config.site.startswith("text.")
        if architecture(model) != architecture(base) or (model == base and not kept_tower) or not same_place:
            raise InputError(f"{option} {null.path} is {model} {null.config.site} ({null.config.pooling} pooling), "
                             f"not a random-init copy of {of} ({base}): give a store of {architecture(base)}+random-init-"
                             f"<seed> at {store.config.site} with {store.config.pooling} pooling, over the same inputs")


def check_distinct(option: str, saes: Sequence[tuple[str, Any]]) -> None:
    """The SAEs named by (path, loaded SAE) pairs are different SAEs (compared by their weights and architecture,
    so one folder under two spellings, or a copy of it, counts once); an interval over seeds that draws one SAE
    twice would be narrower than it is."""
    from mmfeatures.sae.latents import sae_digest

    seen: dict[str, str] = {}
    for path, sae in saes:
        digest = sae_digest(sae)
        if digest in seen:
            raise InputError(f"{option}: {path} is the same SAE as {seen[digest]} (identical weights); give SAEs that "
                             "differ in seed, each once, or drop the repeat")
        seen[digest] = str(path)
