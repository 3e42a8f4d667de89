"""Steering by clamping or adding an SAE feature at a site, as a context manager.

Inside ``with steer(encoder, site, sae, feature, value=...)`` every forward pass of ``encoder`` rewrites
the site's output x (per position) as

- ``mode="clamp"``: decode(z') + (x - decode(z)), with z = encode(x) and z' = z with feature f set to
  ``value``. The SAE's reconstruction error is kept, so the only change is the feature's;
- ``mode="add"``: x + value * d_f, with d_f the feature's unit decoder direction.

``positions`` limits the rewrite to those token positions (default: all); they index the token axis of
(batch, tokens, d) outputs, as transformers models produce (not open_clip's sequence-first blocks). The hook is removed on exit,
also when the body raises, so the model is always restored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from mmfeatures.errors import InputError, SiteError


def _require_decoder(sae) -> None:
    if not hasattr(sae, "W_dec"):
        from mmfeatures.sae.pretrained import EncoderOnlyError

        raise EncoderOnlyError(f"{type(sae).__name__} has no decoder, so a clamped or added feature cannot be "
                               "written back into the model; steer with an SAE that has W_dec (e.g. one from "
                               "mmf.train or an SAELens folder)")


@contextlib.contextmanager
def steer(encoder, site: str, sae, feature: int, *, value: float, mode: str = "clamp",
          positions: Sequence[int] | None = None, positions_bt: torch.Tensor | None = None) -> Iterator[None]:
    """Rewrite ``site``'s output while the block runs (see the module docstring). ``positions_bt`` (batch, tokens)
    bool limits the rewrite to those positions of the one batch run inside the block (``embed_with`` passes each
    batch's content tokens)."""
    if mode not in ("clamp", "add"):
        raise InputError(f"mode={mode!r}; use 'clamp' or 'add'")
    _require_decoder(sae)
    if not 0 <= feature < sae.d_sae:
        raise InputError(f"feature {feature} is out of range for an SAE with {sae.d_sae} latents")
    parsed = encoder.check_site(site)
    if parsed.layer is None:
        raise SiteError(f"steering needs a layer site, not {site!r}; e.g. 'text.layer.6.resid'")
    module = encoder.tower(parsed.modality).layer_module(parsed.layer, parsed.kind)
    direction = sae.W_dec[feature].detach()
    direction = direction / direction.norm().clamp_min(1e-12)

    def rewrite(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != sae.d_in:
            raise SiteError(f"site {site!r} of {encoder.name} has width {x.shape[-1]} but the SAE expects "
                            f"d_in={sae.d_in}; use an SAE trained on this site")
        flat = x.reshape(-1, x.shape[-1]).float()
        with torch.no_grad():
            if mode == "add":
                new = flat + value * direction.to(flat.device)
            else:
                rows = flat.to(sae.W_dec.device)                   # the SAE may live on another device
                z = sae.encode(rows)
                z = z.to_dense() if z.is_sparse else z
                steered = z.clone()
                steered[:, feature] = value
                new = (sae.decode(steered) + (rows - sae.decode(z))).to(flat.device)
        new = new.reshape(x.shape).to(x.dtype)
        if positions_bt is not None:
            return _where(positions_bt, new, x, site)
        if positions is None:
            return new
        out = x.clone()
        out[:, list(positions)] = new[:, list(positions)]
        return out

    with _rewritten(module, rewrite):
        yield


def _where(positions_bt: torch.Tensor, new: torch.Tensor, x: torch.Tensor, site: str) -> torch.Tensor:
    if positions_bt.shape != x.shape[:2]:
        raise SiteError(f"positions_bt has shape {tuple(positions_bt.shape)} but site {site!r} gives "
                        f"{tuple(x.shape[:2])} (batch, tokens); pass the mask of the batch run in the block")
    return torch.where(positions_bt.to(x.device)[..., None], new, x)


@contextlib.contextmanager
def _rewritten(module, rewrite) -> Iterator[None]:
    """A forward hook that replaces ``module``'s (first) output by ``rewrite(output)``; always removed."""
    def hook(_module, _args, output):
        if isinstance(output, tuple):
            return (rewrite(output[0]), *output[1:])
        return rewrite(output)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def shift(encoder, site: str, vector: torch.Tensor, positions_bt: torch.Tensor | None = None) -> Iterator[None]:
    """Add ``vector`` to ``site``'s output while the block runs (at every position, or at ``positions_bt`` of the
    one batch run inside it): e.g. a mean-difference steering vector, or a random direction."""
    parsed = encoder.check_site(site)
    if parsed.layer is None:
        raise SiteError(f"steering needs a layer site, not {site!r}; e.g. 'text.layer.6.resid'")
    module = encoder.tower(parsed.modality).layer_module(parsed.layer, parsed.kind)

    def rewrite(x: torch.Tensor) -> torch.Tensor:
        if vector.shape != (x.shape[-1],):
            raise SiteError(f"the steering vector has shape {tuple(vector.shape)} but site {site!r} has width "
                            f"{x.shape[-1]}")
        new = x + vector.to(x.device, x.dtype)
        return new if positions_bt is None else _where(positions_bt, new, x, site)

    with _rewritten(module, rewrite):
        yield


@contextlib.contextmanager
def splice(encoder, site: str, replacement, positions_bt: torch.Tensor | None = None) -> Iterator[None]:
    """Run ``encoder`` with ``site``'s output replaced: by an SAE's reconstruction (pass the SAE), by zeros
    (``"zero"``), or by a fixed vector such as the dataset mean (a tensor of the site's width). ``positions_bt``
    (batch, tokens) bool limits the replacement to those positions of the one batch run inside the block (e.g.
    content tokens: ``batch.mask_bt & ~batch.special_bt``)."""
    parsed = encoder.check_site(site)
    if parsed.layer is None:
        raise SiteError(f"splicing needs a layer site, not {site!r}; e.g. 'text.layer.6.resid'")
    module = encoder.tower(parsed.modality).layer_module(parsed.layer, parsed.kind)
    if not isinstance(replacement, (str, torch.Tensor)):
        _require_decoder(replacement)

    def rewrite(x: torch.Tensor) -> torch.Tensor:
        new = replaced(x)
        return new if positions_bt is None else _where(positions_bt, new, x, site)

    def replaced(x: torch.Tensor) -> torch.Tensor:
        if isinstance(replacement, str):
            if replacement != "zero":
                raise InputError(f"replacement {replacement!r}; use an SAE, 'zero' or a mean vector")
            return torch.zeros_like(x)
        if isinstance(replacement, torch.Tensor):
            if replacement.shape != (x.shape[-1],):
                raise SiteError(f"replacement vector has shape {tuple(replacement.shape)} but site {site!r} "
                                f"has width {x.shape[-1]}")
            return replacement.to(x.device, x.dtype).expand_as(x).clone()
        if x.shape[-1] != replacement.d_in:
            raise SiteError(f"site {site!r} of {encoder.name} has width {x.shape[-1]} but the SAE expects "
                            f"d_in={replacement.d_in}; use an SAE trained on this site")
        flat = x.reshape(-1, x.shape[-1]).float().to(replacement.W_dec.device)
        with torch.no_grad():
            z = replacement.encode(flat)
            recon = replacement.decode(z.to_dense() if z.is_sparse else z)
        return recon.reshape(x.shape).to(x.device, x.dtype)

    with _rewritten(module, rewrite):
        yield


def max_activation(sae, x: torch.Tensor, feature: int, batch_size: int = 4096) -> float:
    """The largest activation of ``feature`` over rows ``x`` (for clamping to c x the observed maximum)."""
    best = 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            z = sae.encode(x[start:start + batch_size].float())
            z = z.to_dense() if z.is_sparse else z
            best = max(best, float(z[:, feature].max()))
    return best


def retrieval_curve(encoder, site: str, sae, feature: int, queries: Sequence[str], pool: Sequence[str],
                    target: Sequence[bool], values: Sequence[float], *, mode: str = "clamp",
                    batch_size: int = 64, pool_embeddings=None):
    """How far steering moves the ``target`` pool sentences up the retrieval ranking.

    For each value c: embed ``queries`` while steering (c is the clamp value, or the added multiple of the
    decoder direction), rank ``pool`` by cosine for each query, and record the best rank of any target
    sentence (0 = top). Returns (values, ranks of shape (len(values), len(queries))). Pass
    ``pool_embeddings`` (``embed_normalized(encoder, pool)``) to reuse them across calls."""
    import numpy as np

    target = np.asarray(target, bool)
    if target.shape != (len(pool),) or not target.any() or target.all():
        raise InputError("target must mark some, but not all, of the pool sentences")
    pool_emb = embed_normalized(encoder, pool, batch_size) if pool_embeddings is None else pool_embeddings
    ranks = []
    for value in values:
        with steer(encoder, site, sae, feature, value=float(value), mode=mode):
            q = embed_normalized(encoder, queries, batch_size)
        ranks.append(best_target_rank(q, pool_emb, target))
    return np.asarray(values, float), np.array(ranks)


def best_target_rank(queries, pool, target):
    """For each (unit-norm) query row: the rank (0 = top) of the best-ranked ``target`` row of ``pool``."""
    import numpy as np

    position = np.argsort(np.argsort(-(queries @ pool.T), axis=1), axis=1)   # rank of every pool row per query
    return position[:, np.asarray(target, bool)].min(1)


WHERE = ("content", "every")
"""Positions an edit rewrites: content tokens (where the SAEs here were trained to read; special tokens and padding
keep their activations), or every position."""


def embed_with(encoder, site: str, edit, inputs: Sequence, *, where: str = "content", batch_size: int = 64):
    """Unit-norm embeddings (numpy) of ``inputs`` (texts or images, the site's modality) with ``edit(positions_bt)``,
    a context manager that rewrites ``site`` at those positions (``steer``, ``shift`` or ``splice`` with the
    mask), active while each batch runs; ``where`` picks the positions (``WHERE``)."""
    import numpy as np

    if where not in WHERE:
        raise InputError(f"where {where!r}; use one of {', '.join(WHERE)}")
    tower = encoder.tower(encoder.check_site(site).modality)
    outs = []
    for start in range(0, len(inputs), batch_size):
        batch = tower.prepare(list(inputs[start:start + batch_size])).to(encoder.device)
        positions = batch.mask_bt & ~batch.special_bt if where == "content" else batch.mask_bt
        with edit(positions), encoder.autocast(), torch.no_grad():
            outs.append(tower.embed(batch).float().cpu())
    emb = torch.cat(outs)
    return np.asarray((emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy())


def embed_normalized(encoder, texts: Sequence[str], batch_size: int = 64):
    """Unit-norm text embeddings as a numpy array (cosine = dot product)."""
    import numpy as np

    emb = encoder.embed_text(list(texts), batch_size=batch_size).float()
    emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return np.asarray(emb.numpy())


def zero_shot_curve(encoder, site: str, sae, feature: int, images: Sequence, labels: Sequence[str],
                    target: int, values: Sequence[float], *, mode: str = "clamp", template: str = "a photo of {}"):
    """For a two-tower model: steer ``site`` (in either tower) and record the zero-shot probability of
    label ``target`` for each image. Returns (values, probabilities of shape (len(values), len(images)))."""
    import numpy as np

    if not 0 <= target < len(labels):
        raise InputError(f"target {target} is not an index into the {len(labels)} labels")
    prompts = [template.format(label) for label in labels]
    probs = []
    for value in values:
        with steer(encoder, site, sae, feature, value=float(value), mode=mode):
            img = encoder.embed_image(list(images)).float()
            txt = encoder.embed_text(prompts).float()
        img = img / img.norm(dim=1, keepdim=True).clamp_min(1e-12)
        txt = txt / txt.norm(dim=1, keepdim=True).clamp_min(1e-12)
        probs.append(torch.softmax(100.0 * img @ txt.T, dim=1)[:, target].numpy())
    return np.asarray(values, float), np.array(probs)
