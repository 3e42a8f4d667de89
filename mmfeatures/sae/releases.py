"""SAELens releases by name, and files of hub repos from the Hugging Face cache, never hanging (docs/formats.md).

A release (``gpt2-small-res-jb``) and an SAE id (``blocks.8.hook_resid_pre``) resolve through SAELens's own
directory of pretrained SAEs (its ``pretrained_saes.yaml``: repo id, folder, conversion, config overrides, norm
scaling factor) when ``sae_lens`` is importable; without it a release must be given as its repo id and the SAE id
as the folder in that repo. The files then come from the Hugging Face cache; a download happens only when the hub
answers, and offline (``HF_HUB_OFFLINE=1``) a missing file fails at once with the command that fetches it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, NamedTuple

from mmfeatures.errors import InputError, ModelNotAvailableError


class Release(NamedTuple):
    """Where one SAE of a SAELens release lives and how SAELens reads it."""

    repo_id: str
    folder: str
    """Path of the SAE's folder in the repo."""
    conversion: str | None
    """SAELens's conversion function; None: the folder is in the SAELens layout."""
    overrides: dict[str, Any]
    """cfg.json keys SAELens overrides for this release."""
    norm_scaling_factor: float | None
    """The input scale folded into the weights when cfg.json says normalize_activations 'expected_average_only_in'."""
    model: str | None


def lookup(release: str, sae_id: str) -> Release:
    """Resolve ``release`` and ``sae_id`` through SAELens's directory, or as ``<org>/<repo>`` and a folder."""
    try:
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    except ImportError:
        directory = None
    else:
        directory = get_pretrained_saes_directory()
    if directory is not None and release in directory:
        info = directory[release]
        if sae_id not in info.saes_map:
            close = difflib.get_close_matches(sae_id, list(info.saes_map), n=3, cutoff=0.5)
            raise InputError(f"SAELens release {release!r} has no SAE {sae_id!r}; "
                             f"{f'did you mean {close}? ' if close else ''}it has {len(info.saes_map)}, e.g. "
                             f"{sorted(info.saes_map)[:5]}")
        return Release(info.repo_id, info.saes_map[sae_id], info.conversion_func, dict(info.config_overrides or {}),
                       info.norm_scaling_factor.get(sae_id), info.model)
    if release.count("/") == 1:                     # a hub repo id and the folder in it
        return Release(release, sae_id.strip("/"), None, {}, None, None)
    if directory is None:
        raise InputError(f"SAELens release {release!r}: sae_lens is not installed here, so release names cannot be "
                         "resolved; give the repo id and the folder instead, 'saelens:<org>/<repo>:<folder>' (SAELens's "
                         "pretrained_saes.yaml lists both), or pip install sae-lens")
    close = difflib.get_close_matches(release, list(directory), n=3, cutoff=0.5)
    raise InputError(f"unknown SAELens release {release!r}; {f'did you mean {close}? ' if close else ''}or give a "
                     "hub repo id: 'saelens:<org>/<repo>:<folder>'")


def fetch(repo: str, path: str, name: str) -> Path:
    """The local copy of ``path`` (a file or folder; '' for the whole repo) of hub repo ``repo``: from the cache, or
    downloaded when the hub answers. ``name`` is what the user asked for, for messages."""
    from mmfeatures.encoders.hub import hub_reachable, resolve_hf

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    why = "HF_HUB_OFFLINE=1 is set" if offline else "the Hugging Face hub is not reachable from here"
    patterns = [path, f"{path}/*"] if path else ["*"]
    command = f"hf download {repo}" + (f" --include '{path}' '{path}/*'" if path else "")
    missing = ModelNotAvailableError(
        f"{name}: {repo}{'/' + path if path else ''} is not in the Hugging Face cache and {why}. On a "
        f"machine with access run: {command} (then copy ~/.cache/huggingface here)")
    try:
        root = resolve_hf(repo, patterns=patterns)
    except ModelNotAvailableError:
        raise missing from None
    local = root / path if path else root
    if not local.exists():                          # the repo is cached, but not this path
        if not hub_reachable():
            raise missing
        from huggingface_hub import snapshot_download

        local = Path(snapshot_download(repo, allow_patterns=patterns, etag_timeout=10)) / path
    if not local.exists():
        raise FileNotFoundError(f"{name}: the hub repo {repo} has no {path!r}")
    return local


def saelens_overrides(cfg: dict[str, Any], where: Any) -> dict[str, Any]:
    """cfg.json keys to set so a config SAELens wrote before 6.0 reads as a 6.0 one (as SAELens's own
    handle_pre_6_0_config does): architecture from activation_fn_str, normalize_activations as a name."""
    version = cfg.get("sae_lens_version") or (cfg.get("metadata") or {}).get("sae_lens_version")
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        major = 0
    if major >= 6:
        return {}
    out: dict[str, Any] = {}
    activation = cfg.get("activation_fn", cfg.get("activation_fn_str", "relu"))
    k = (cfg.get("activation_fn_kwargs") or {}).get("k")
    if activation not in ("relu", "topk"):
        raise InputError(f"{where}: activation_fn {activation!r} is not one mmfeatures can represent (relu, topk); "
                         "load it with SAELens")
    if "architecture" not in cfg:
        out["architecture"] = "topk" if activation == "topk" and k is not None else "standard"
    if out.get("architecture", cfg.get("architecture")) == "topk" and "k" not in cfg and k is not None:
        out["k"] = k
    norm = cfg.get("normalize_activations")
    if isinstance(norm, bool) or norm is None:
        out["normalize_activations"] = "expected_average_only_in" if norm else "none"
    return out
